import { http } from './http'

/** One of my notifications (GET /api/notifications). Names are Chinese from the server; codes are never shown. */
export interface NotificationItem {
  id: number
  kind: string
  kind_name: string
  severity: 'info' | 'warning' | 'critical'
  severity_name: string
  text: string
  link: string | null
  occurrences: number
  created_at: string
  updated_at: string
  read: boolean
  read_at: string | null
  needs_ack: boolean
  acknowledged_at: string | null
  acknowledged_by_name: string | null
}

export interface NotificationPage {
  items: NotificationItem[]
  total: number
  page: number
  page_size: number
}

export interface NotificationSummary {
  unread: number
  critical_pending: number
}

/** The poll: one cheap query on the server. Silent: a failed poll must not toast every 30 s. */
export async function getNotificationSummary(): Promise<NotificationSummary> {
  const { data } = await http.get<NotificationSummary>('/notifications/summary', { silent: true })
  return data
}

export async function listNotifications(
  params: { page?: number; page_size?: number; unread?: boolean; critical_pending?: boolean } = {},
): Promise<NotificationPage> {
  const { data } = await http.get<NotificationPage>('/notifications', { params })
  return data
}

export async function markNotificationRead(id: number): Promise<NotificationItem> {
  const { data } = await http.post<NotificationItem>(`/notifications/${id}/read`)
  return data
}

export async function markAllNotificationsRead(): Promise<number> {
  const { data } = await http.post<{ marked: number }>('/notifications/read-all')
  return data.marked
}

export async function acknowledgeNotification(id: number): Promise<NotificationItem> {
  const { data } = await http.post<NotificationItem>(`/notifications/${id}/acknowledge`)
  return data
}
