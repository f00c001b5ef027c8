import { describe, expect, it } from 'vitest'
import type { Permission } from '@/api/types'
import { buildPermissionTree, leafKeys, needsStrictMode } from '../permissionTree'

const perms: Permission[] = [
  { code: 'menu.users', name: '用户管理', kind: 'menu', parent: null, domain: 'admin' },
  { code: 'user.read', name: '查看用户', kind: 'function', parent: 'menu.users', domain: 'admin' },
  { code: 'user.manage', name: '管理用户', kind: 'function', parent: 'menu.users', domain: 'admin' },
  { code: 'menu.audit', name: '审计日志', kind: 'menu', parent: null, domain: 'audit' },
  { code: 'audit.export', name: '导出', kind: 'function', parent: 'menu.audit', domain: 'audit' },
  { code: 'orphan.fn', name: '孤立', kind: 'function', parent: 'menu.gone', domain: 'x' },
]

describe('permission tree', () => {
  it('nests functions under their menu and keeps orphans as roots', () => {
    const tree = buildPermissionTree(perms)
    expect(tree.map((n) => n.code)).toEqual(['menu.users', 'menu.audit', 'orphan.fn'])
    expect(tree[0].children.map((n) => n.code)).toEqual(['user.read', 'user.manage'])
    expect(tree[0].label).toBe('用户管理')
  })

  it('only passes leaves to the linked tree', () => {
    expect(leafKeys(['menu.users', 'user.read', 'menu.audit', 'audit.export'], perms)).toEqual([
      'user.read',
      'audit.export',
    ])
  })

  it('opens in strict mode when linked mode could not show the grant exactly', () => {
    expect(needsStrictMode(['menu.users', 'user.read'], perms)).toBe(false)
    expect(needsStrictMode(['menu.users'], perms)).toBe(true)
    expect(needsStrictMode(['user.read'], perms)).toBe(true)
  })
})
