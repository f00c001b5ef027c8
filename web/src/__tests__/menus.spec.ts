import { describe, expect, it } from 'vitest'
import { buildMenus, landingPath, MENU_DEFS } from '../menus'
import { routes } from '../router/routes'

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

  it('lands on /home when allowed, else on the first menu', () => {
    expect(landingPath(['menu.audit', 'menu.home'])).toBe('/home')
    expect(landingPath(['menu.audit'])).toBe('/admin/audit')
    expect(landingPath([])).toBe('/home')
  })
})
