/**
 * Menu code → route/label mapping. The backend decides which menus a user sees
 * (`menus` in GET /api/auth/me); codes not listed here are ignored. Later
 * features add their entries here.
 */
export interface MenuDef {
  code: string
  path: string
  /** vue-i18n key of the label. */
  labelKey: string
  /** Icon component name from @element-plus/icons-vue. */
  icon: string
}

export const MENU_DEFS: readonly MenuDef[] = [
  { code: 'menu.home', path: '/home', labelKey: 'menu.home', icon: 'HomeFilled' },
  { code: 'menu.profile', path: '/profile', labelKey: 'menu.profile', icon: 'User' },
  { code: 'menu.account_review', path: '/admin/reviews', labelKey: 'menu.accountReview', icon: 'Stamp' },
  { code: 'menu.users', path: '/admin/users', labelKey: 'menu.users', icon: 'UserFilled' },
  { code: 'menu.roles', path: '/admin/roles', labelKey: 'menu.roles', icon: 'Lock' },
  { code: 'menu.audit', path: '/admin/audit', labelKey: 'menu.audit', icon: 'Document' },
  { code: 'menu.tasks', path: '/tasks', labelKey: 'menu.tasks', icon: 'List' },
  { code: 'menu.pool', path: '/pool', labelKey: 'menu.pool', icon: 'Collection' },
  { code: 'menu.cases', path: '/cases', labelKey: 'menu.cases', icon: 'Files' },
  { code: 'menu.processes', path: '/admin/processes', labelKey: 'menu.processes', icon: 'Connection' },
  { code: 'menu.turnaround', path: '/admin/turnaround-rules', labelKey: 'menu.turnaround', icon: 'Timer' },
  { code: 'menu.imaging', path: '/imaging/studies', labelKey: 'menu.imaging', icon: 'Picture' },
  { code: 'menu.dicom_nodes', path: '/admin/dicom/nodes', labelKey: 'menu.dicomNodes', icon: 'Monitor' },
  { code: 'menu.dicom_conflicts', path: '/admin/dicom/conflicts', labelKey: 'menu.dicomConflicts', icon: 'Warning' },
  { code: 'menu.dicom_unmatched', path: '/admin/dicom/unmatched', labelKey: 'menu.dicomUnmatched', icon: 'QuestionFilled' },
  { code: 'menu.dicom_routing', path: '/admin/dicom/routing', labelKey: 'menu.dicomRouting', icon: 'Guide' },
  { code: 'menu.dicom_forward', path: '/admin/dicom/forward', labelKey: 'menu.dicomForward', icon: 'Promotion' },
  { code: 'menu.dicom_storage', path: '/admin/dicom/storage', labelKey: 'menu.dicomStorage', icon: 'Coin' },
  { code: 'menu.oauth_clients', path: '/admin/oauth-clients', labelKey: 'menu.oauthClients', icon: 'Key' },
  // issue 17: report templates and phrases (REQ: RPT-03, RPT-07, DICT-02; UX R5, R6)
  { code: 'menu.templates', path: '/admin/templates', labelKey: 'menu.templates', icon: 'Notebook' },
]

/**
 * Pages behind a function permission rather than a menu code of their own, shown in the sidebar
 * right after the menu named by `after` (or last when the user lacks that menu). They are not
 * landing pages: `landing_page` holds menu codes only.
 */
export interface PermMenuDef extends MenuDef {
  perm: string
  after: string
}

export const PERM_MENU_DEFS: readonly PermMenuDef[] = [
  // issue 14: the institution's and its roles' default per-user settings (系统管理员).
  {
    code: 'setting.default.manage',
    perm: 'setting.default.manage',
    after: 'menu.users',
    path: '/admin/settings/defaults',
    labelKey: 'menu.settingDefaults',
    icon: 'Setting',
  },
]

const BY_CODE = new Map(MENU_DEFS.map((m) => [m.code, m]))

export function menuByCode(code: string): MenuDef | undefined {
  return BY_CODE.get(code)
}

/**
 * Sidebar entries for the given menu codes, in the server's order, without
 * duplicates; unknown codes are dropped. With `perms`, the pages of
 * PERM_MENU_DEFS the user holds the permission of join after their menu.
 */
export function buildMenus(
  codes: readonly string[] | null | undefined,
  perms?: readonly string[] | null,
): MenuDef[] {
  const held = new Set(perms ?? [])
  const extra = PERM_MENU_DEFS.filter((d) => held.has(d.perm))
  const seen = new Set<string>()
  const out: MenuDef[] = []
  for (const code of codes || []) {
    const def = BY_CODE.get(code)
    if (def && !seen.has(code)) {
      seen.add(code)
      out.push(def)
      for (const e of extra) if (e.after === code && !seen.has(e.code)) (seen.add(e.code), out.push(e))
    }
  }
  for (const e of extra) if (!seen.has(e.code)) (seen.add(e.code), out.push(e))
  return out
}

/** The pages a user may choose as their landing page: the menus they hold. */
export function landingChoices(codes: readonly string[] | null | undefined): MenuDef[] {
  return buildMenus(codes)
}

/**
 * Where to land after login when no `next` is given: the user's `landing_page` setting when it is
 * a menu they hold, else 首页 when allowed, else their first menu. Never a page they may not open.
 */
export function landingPath(codes: readonly string[] | null | undefined, preferred?: unknown): string {
  const menus = buildMenus(codes)
  const chosen = typeof preferred === 'string' ? menus.find((m) => m.code === preferred) : undefined
  if (chosen) return chosen.path
  if (menus.some((m) => m.code === 'menu.home')) return '/home'
  return menus[0]?.path ?? '/home'
}
