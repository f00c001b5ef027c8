import { describe, expect, it } from 'vitest'
import { buildMenus, landingPath, MENU_DEFS } from '../menus'
import { routes } from '../router/routes'
import { icons } from '../icons'
import { createAppI18n } from '../i18n'

describe('menu builder', () => {
  it('maps menu codes to routes and labels, in the server order', () => {
    const menus = buildMenus(['menu.users', 'menu.home', 'menu.audit'])
    expect(menus.map((m) => [m.code, m.path, m.labelKey])).toEqual([
      ['menu.users', '/admin/users', 'menu.users'],
      ['menu.home', '/home', 'menu.home'],
      ['menu.audit', '/admin/audit', 'menu.audit'],
    ])
  })

  it('drops unknown codes and duplicates', () => {
    const menus = buildMenus(['menu.home', 'menu.worklist', 'menu.home', 'bogus', 'menu.roles'])
    expect(menus.map((m) => m.code)).toEqual(['menu.home', 'menu.roles'])
  })

  it('handles missing input', () => {
    expect(buildMenus(undefined)).toEqual([])
    expect(buildMenus(null)).toEqual([])
  })

  it('maps every contract menu code', () => {
    const expected: Record<string, string> = {
      'menu.home': '/home',
      'menu.profile': '/profile',
      'menu.account_review': '/admin/reviews',
      'menu.users': '/admin/users',
      'menu.roles': '/admin/roles',
      'menu.audit': '/admin/audit',
      'menu.tasks': '/tasks',
      'menu.pool': '/pool',
      'menu.cases': '/cases',
      'menu.processes': '/admin/processes',
      'menu.turnaround': '/admin/turnaround-rules',
      'menu.imaging': '/imaging/studies',
      'menu.dicom_nodes': '/admin/dicom/nodes',
      'menu.dicom_conflicts': '/admin/dicom/conflicts',
      'menu.dicom_unmatched': '/admin/dicom/unmatched',
      'menu.dicom_routing': '/admin/dicom/routing',
      'menu.dicom_forward': '/admin/dicom/forward',
      'menu.dicom_storage': '/admin/dicom/storage',
      'menu.oauth_clients': '/admin/oauth-clients',
      'menu.templates': '/admin/templates',
    }
    expect(Object.fromEntries(MENU_DEFS.map((m) => [m.code, m.path]))).toEqual(expected)
  })

  it('every menu has a route guarded by the same menu code', () => {
    const layout = routes.find((r) => r.path === '/')!
    for (const m of MENU_DEFS) {
      const child = layout.children!.find((c) => '/' + c.path === m.path)
      expect(child, m.code).toBeDefined()
      expect(child!.meta?.menu).toBe(m.code)
    }
  })

  it('maps the case-engine menu codes to their pages, labels and icons', () => {
    const menus = buildMenus(['menu.tasks', 'menu.pool', 'menu.cases', 'menu.processes'])
    expect(menus.map((m) => [m.code, m.path, m.labelKey])).toEqual([
      ['menu.tasks', '/tasks', 'menu.tasks'],
      ['menu.pool', '/pool', 'menu.pool'],
      ['menu.cases', '/cases', 'menu.cases'],
      ['menu.processes', '/admin/processes', 'menu.processes'],
    ])
    for (const m of menus) expect(icons).toHaveProperty(m.icon)
    const zh = createAppI18n('zh-CN').global
    expect(menus.map((m) => zh.t(m.labelKey))).toEqual(['我的任务', '抢单池', '远程诊断申请', '流程管理'])
  })

  it('sub-pages of the new menus are routed (create form, detail pages)', () => {
    const layout = routes.find((r) => r.path === '/')!
    const byPath = Object.fromEntries(layout.children!.map((c) => [c.path, c]))
    expect(byPath['cases/new'].meta).toMatchObject({ menu: 'menu.cases', perm: 'case.create' })
    expect(byPath['cases/:id(\\d+)'].meta?.anyMenu).toContain('menu.cases')
    expect(byPath['tasks/:id(\\d+)'].meta?.anyMenu).toEqual(['menu.tasks', 'menu.pool'])
  })

  it('maps the routing, forward-queue and storage menus (DCM-02, IMG-08, IMG-09) with labels and icons', () => {
    const menus = buildMenus(['menu.dicom_routing', 'menu.dicom_forward', 'menu.dicom_storage'])
    for (const m of menus) expect(icons).toHaveProperty(m.icon)
    const zh = createAppI18n('zh-CN').global
    expect(menus.map((m) => zh.t(m.labelKey))).toEqual(['路由规则', '转发队列', '存储管理'])
  })

  it('lands on /home when allowed, else on the first menu', () => {
    expect(landingPath(['menu.audit', 'menu.home'])).toBe('/home')
    expect(landingPath(['menu.audit'])).toBe('/admin/audit')
    expect(landingPath([])).toBe('/home')
  })
})
