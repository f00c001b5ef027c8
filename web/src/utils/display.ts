import type { ActorRef, DepartmentRef } from '@/api/types'

export function deptName(d: DepartmentRef | string | null | undefined): string {
  if (!d) return '-'
  return typeof d === 'string' ? d : d.name
}

export function actorName(a: ActorRef | undefined): string {
  if (!a) return '-'
  if (typeof a === 'string') return a
  return a.full_name || a.username || '-'
}

export function rolesText(roles: unknown): string {
  if (!roles) return '-'
  if (typeof roles === 'string') return roles
  if (Array.isArray(roles)) {
    return (
      roles
        .map((r) => (typeof r === 'string' ? r : r && typeof r === 'object' ? (r as { name?: string; code?: string }).name || (r as { code?: string }).code || '' : ''))
        .filter(Boolean)
        .join('、') || '-'
    )
  }
  return '-'
}
