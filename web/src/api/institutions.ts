import { http } from './http'
import type { Institution } from './types'

export async function listInstitutions(): Promise<Institution[]> {
  const { data } = await http.get<Institution[]>('/institutions')
  return data
}
