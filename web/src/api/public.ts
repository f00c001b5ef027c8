import { http } from './http'
import type { PublicInstitution } from './types'

export async function listPublicInstitutions(): Promise<PublicInstitution[]> {
  const { data } = await http.get<PublicInstitution[]>('/public/institutions')
  return data
}
