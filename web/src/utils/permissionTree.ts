import type { Permission } from '@/api/types'

export interface PermissionNode {
  code: string
  label: string
  kind: Permission['kind']
  children: PermissionNode[]
}

/**
 * Flat permission list → tree by `parent`. Orphans (parent not in the list)
 * become roots; input order is kept within each level.
 */
export function buildPermissionTree(perms: readonly Permission[]): PermissionNode[] {
  const nodes = new Map<string, PermissionNode>()
  for (const p of perms) nodes.set(p.code, { code: p.code, label: p.name, kind: p.kind, children: [] })
  const roots: PermissionNode[] = []
  for (const p of perms) {
    const node = nodes.get(p.code)!
    const parent = p.parent ? nodes.get(p.parent) : undefined
    if (parent && parent !== node) parent.children.push(node)
    else roots.push(node)
  }
  return roots
}

/** Codes of nodes that have children. */
export function parentCodes(perms: readonly Permission[]): Set<string> {
  const known = new Set(perms.map((p) => p.code))
  return new Set(perms.filter((p) => p.parent && known.has(p.parent)).map((p) => p.parent as string))
}

/**
 * Keys to pass to el-tree `setCheckedKeys` in linked (non-strict) mode: only
 * leaves, because checking a parent would check all its children.
 */
export function leafKeys(granted: readonly string[], perms: readonly Permission[]): string[] {
  const parents = parentCodes(perms)
  return granted.filter((c) => !parents.has(c))
}

/**
 * Linked mode (checking a parent checks its children, a partly checked parent
 * is saved too) cannot represent every grant exactly: a parent granted without
 * any child, or a child granted without its parent. For such roles the dialog
 * opens in strict mode so that saving does not silently change the grant.
 */
export function needsStrictMode(granted: readonly string[], perms: readonly Permission[]): boolean {
  const set = new Set(granted)
  const known = new Set(perms.map((p) => p.code))
  const childrenOf = new Map<string, string[]>()
  for (const p of perms) {
    if (p.parent && known.has(p.parent)) childrenOf.set(p.parent, [...(childrenOf.get(p.parent) ?? []), p.code])
  }
  for (const [parent, children] of childrenOf) {
    const anyChild = children.some((c) => set.has(c))
    if (set.has(parent) && !anyChild) return true
    if (!set.has(parent) && anyChild) return true
  }
  return false
}
