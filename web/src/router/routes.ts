import type { RouteRecordRaw } from 'vue-router'
import { fetchEarly } from '@/viewer/core/early'
import { previewSettled } from '@/viewer/core/bootBridge'

declare module 'vue-router' {
  interface RouteMeta {
    /** Reachable without login. */
    public?: boolean
    /** Menu code the user must hold (from /api/auth/me `menus`). */
    menu?: string
    /** Alternatively: any one of these menu codes. */
    anyMenu?: string[]
    /** Function permission the user must hold (e.g. `case.create`). */
    perm?: string
    /** vue-i18n key for the document title. */
    titleKey?: string
  }
}

export const routes: RouteRecordRaw[] = [
  {
    path: '/login',
    name: 'login',
    component: () => import('@/views/auth/LoginView.vue'),
    meta: { public: true, titleKey: 'login.heading' },
  },
  {
    path: '/login/mfa',
    name: 'login-mfa',
    component: () => import('@/views/auth/LoginView.vue'),
    props: { initialStep: 'mfa' },
    meta: { public: true, titleKey: 'mfa.heading' },
  },
  {
    path: '/login/password',
    name: 'login-password',
    component: () => import('@/views/auth/LoginView.vue'),
    props: { initialStep: 'password' },
    meta: { public: true, titleKey: 'password.heading' },
  },
  {
    path: '/register',
    name: 'register',
    component: () => import('@/views/register/RegisterView.vue'),
    meta: { public: true, titleKey: 'register.heading' },
  },
  {
    path: '/register/status',
    name: 'register-status',
    component: () => import('@/views/register/RegisterStatusView.vue'),
    meta: { public: true, titleKey: 'regStatus.heading' },
  },
  {
    // issue 15: OAuth consent for a third-party viewer; needs a logged-in user, no menu (GET /oauth/authorize).
    path: '/oauth-consent',
    name: 'oauth-consent',
    component: () => import('@/views/oauth/ConsentView.vue'),
    meta: { titleKey: 'consent.heading' },
  },
  {
    // issue 16 (RPT-12, UX R23): the viewer window opened from the report page, following it over BroadcastChannel.
    path: '/viewer/window',
    name: 'viewer-window',
    component: () => import('@/viewer/sync/ViewerWindowView.vue'),
    meta: { titleKey: 'viewer.title' },
  },
  {
    // issue 16: the viewer, full window (its own lazy chunk with Cornerstone3D). Any logged-in user; the server's
    // visibility rule decides whether the study shows (REQ: VIEW-01).
    path: '/viewer/studies/:studyUid',
    name: 'viewer',
    component: () => import('@/views/viewer/ViewerView.vue'),
    props: true,
    meta: { titleKey: 'viewer.title' },
    // the series list and first metadata load while the viewer chunk does (UX R18)
    beforeEnter: (to) => {
      const inst = typeof to.query.institution === 'string' ? to.query.institution : undefined
      fetchEarly(String(to.params.studyUid), inst)
      // Cornerstone3D's chunk (the largest) loads beside the page's own chunk — once the boot preview is painted
      // (web/src/boot/preview.ts) — and initialises as soon as it is in (the viewer's controller awaits the same)
      previewSettled(String(to.params.studyUid), inst)
        .then(() => import('@/viewer/core/controller'))
        .then(() => import('@/viewer/core/init'))
        .then((m) => m.initCornerstone())
        .catch(() => undefined)
    },
  },
  {
    path: '/',
    component: () => import('@/layouts/AppLayout.vue'),
    children: [
      // The guard sends '/' to the first menu the user holds.
      { path: '', name: 'root', component: { render: () => null } },
      {
        path: 'home',
        name: 'home',
        component: () => import('@/views/home/HomeView.vue'),
        meta: { menu: 'menu.home', titleKey: 'menu.home' },
      },
      {
        path: 'profile',
        name: 'profile',
        component: () => import('@/views/profile/ProfileView.vue'),
        meta: { menu: 'menu.profile', titleKey: 'menu.profile' },
      },
      {
        path: 'admin/reviews',
        name: 'admin-reviews',
        component: () => import('@/views/admin/ReviewsView.vue'),
        meta: { menu: 'menu.account_review', titleKey: 'menu.accountReview' },
      },
      {
        path: 'admin/users',
        name: 'admin-users',
        component: () => import('@/views/admin/UsersView.vue'),
        meta: { menu: 'menu.users', titleKey: 'menu.users' },
      },
      {
        path: 'admin/roles',
        name: 'admin-roles',
        component: () => import('@/views/admin/RolesView.vue'),
        meta: { menu: 'menu.roles', titleKey: 'menu.roles' },
      },
      {
        // issue 14: the institution's and its roles' default per-user settings (系统管理员).
        path: 'admin/settings/defaults',
        name: 'admin-setting-defaults',
        component: () => import('@/views/admin/SettingDefaultsView.vue'),
        meta: { perm: 'setting.default.manage', titleKey: 'menu.settingDefaults' },
      },
      {
        path: 'admin/audit',
        name: 'admin-audit',
        component: () => import('@/views/admin/AuditView.vue'),
        meta: { menu: 'menu.audit', titleKey: 'menu.audit' },
      },
      {
        path: 'tasks',
        name: 'tasks',
        component: () => import('@/views/tasks/TasksView.vue'),
        meta: { menu: 'menu.tasks', titleKey: 'menu.tasks' },
      },
      {
        // The generated form page (JSON Forms, lazily loaded with its chunk).
        path: 'tasks/:id(\\d+)',
        name: 'task-form',
        component: () => import('@/views/tasks/TaskFormView.vue'),
        props: true,
        meta: { anyMenu: ['menu.tasks', 'menu.pool'], titleKey: 'menu.taskForm' },
      },
      {
        path: 'pool',
        name: 'pool',
        component: () => import('@/views/tasks/PoolView.vue'),
        meta: { menu: 'menu.pool', titleKey: 'menu.pool' },
      },
      {
        path: 'cases',
        name: 'cases',
        component: () => import('@/views/cases/CasesView.vue'),
        meta: { menu: 'menu.cases', titleKey: 'menu.cases' },
      },
      {
        path: 'cases/new',
        name: 'case-new',
        component: () => import('@/views/cases/CaseCreateView.vue'),
        meta: { menu: 'menu.cases', perm: 'case.create', titleKey: 'menu.caseNew' },
      },
      {
        path: 'cases/:id(\\d+)',
        name: 'case-detail',
        component: () => import('@/views/cases/CaseDetailView.vue'),
        props: true,
        meta: { anyMenu: ['menu.cases', 'menu.tasks', 'menu.pool'], titleKey: 'menu.caseDetail' },
      },
      {
        path: 'admin/processes',
        name: 'admin-processes',
        component: () => import('@/views/admin/ProcessesView.vue'),
        meta: { menu: 'menu.processes', titleKey: 'menu.processes' },
      },
      {
        path: 'admin/turnaround-rules',
        name: 'admin-turnaround-rules',
        component: () => import('@/views/admin/TurnaroundRulesView.vue'),
        meta: { menu: 'menu.turnaround', titleKey: 'menu.turnaround' },
      },
      {
        path: 'imaging/studies',
        name: 'imaging-studies',
        component: () => import('@/views/imaging/StudiesView.vue'),
        meta: { menu: 'menu.imaging', titleKey: 'menu.imaging' },
      },
      {
        path: 'admin/dicom/nodes',
        name: 'dicom-nodes',
        component: () => import('@/views/imaging/DevicesView.vue'),
        meta: { menu: 'menu.dicom_nodes', titleKey: 'menu.dicomNodes' },
      },
      {
        path: 'admin/dicom/conflicts',
        name: 'dicom-conflicts',
        component: () => import('@/views/imaging/ConflictsView.vue'),
        meta: { menu: 'menu.dicom_conflicts', titleKey: 'menu.dicomConflicts' },
      },
      {
        path: 'admin/dicom/unmatched',
        name: 'dicom-unmatched',
        component: () => import('@/views/imaging/UnmatchedView.vue'),
        meta: { menu: 'menu.dicom_unmatched', titleKey: 'menu.dicomUnmatched' },
      },
      {
        path: 'admin/dicom/routing',
        name: 'dicom-routing',
        component: () => import('@/views/imaging/RoutingRulesView.vue'),
        meta: { menu: 'menu.dicom_routing', titleKey: 'menu.dicomRouting' },
      },
      {
        path: 'admin/dicom/forward',
        name: 'dicom-forward',
        component: () => import('@/views/imaging/ForwardQueueView.vue'),
        meta: { menu: 'menu.dicom_forward', titleKey: 'menu.dicomForward' },
      },
      {
        path: 'admin/dicom/storage',
        name: 'dicom-storage',
        component: () => import('@/views/imaging/StorageView.vue'),
        meta: { menu: 'menu.dicom_storage', titleKey: 'menu.dicomStorage' },
      },
      {
        path: 'admin/oauth-clients',
        name: 'oauth-clients',
        component: () => import('@/views/admin/OAuthClientsView.vue'),
        meta: { menu: 'menu.oauth_clients', titleKey: 'menu.oauthClients' },
      },
      {
        // issue 17: report templates and phrases (REQ: RPT-03, RPT-07, DICT-02; UX R5, R6)
        path: 'admin/templates',
        name: 'admin-templates',
        component: () => import('@/views/admin/TemplatesAdminView.vue'),
        meta: { menu: 'menu.templates', titleKey: 'menu.templates' },
      },
      {
        path: '403',
        name: 'forbidden',
        component: () => import('@/views/errors/ForbiddenView.vue'),
        meta: { titleKey: 'errors.forbiddenTitle' },
      },
    ],
  },
  {
    path: '/:pathMatch(.*)*',
    name: 'not-found',
    component: () => import('@/views/errors/NotFoundView.vue'),
    meta: { public: true, titleKey: 'errors.notFoundTitle' },
  },
]
