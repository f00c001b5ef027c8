import { cleanParams, http } from './http'
import type { Paged, ReviewDetail, ReviewItem, ReviewStatus } from './types'

export interface ReviewQuery {
  status: ReviewStatus
  q?: string
  page?: number
  page_size?: number
}

export async function listReviews(query: ReviewQuery): Promise<Paged<ReviewItem>> {
  const { data } = await http.get<Paged<ReviewItem>>('/accounts/reviews', { params: cleanParams({ ...query }) })
  return data
}

export async function getReview(id: number): Promise<ReviewDetail> {
  const { data } = await http.get<ReviewDetail>(`/accounts/reviews/${id}`)
  return data
}

export async function approveReview(id: number, roleIds: number[]): Promise<void> {
  await http.post(`/accounts/reviews/${id}/approve`, { role_ids: roleIds })
}

export async function rejectReview(id: number, reason: string): Promise<void> {
  await http.post(`/accounts/reviews/${id}/reject`, { reason })
}
