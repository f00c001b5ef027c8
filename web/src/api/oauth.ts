import { http } from './http'

/** OAuth 2.0 clients of DICOMweb (issue 15): the 系统管理员's admin API and the consent page's API. */
export type OAuthScope = 'dicomweb.read' | 'dicomweb.write' | 'ai.write'
export const OAUTH_SCOPES: readonly OAuthScope[] = ['dicomweb.read', 'dicomweb.write', 'ai.write']

/** The vue-i18n key of a scope's label (dots in a key would be read as a path). */
export function scopeLabelKey(scope: OAuthScope): string {
  return `oauth.scope.${scope.replace('.', '_')}`
}

export interface OAuthClient {
  client_id: string
  name: string
  institution_code: string
  institution_name: string
  scopes: { code: OAuthScope; label: string }[]
  public: boolean
  redirect_uris: string[]
  created_at: string
  created_by: string | null
  revoked_at: string | null
  revoked_by: string | null
}

export interface OAuthClientCreated extends OAuthClient {
  /** Shown once; null for a public client. */
  client_secret: string | null
}

export interface OAuthClientInput {
  name: string
  institution_code: string
  scopes: OAuthScope[]
  redirect_uris: string[]
  public: boolean
}

export async function listOAuthClients(): Promise<OAuthClient[]> {
  const { data } = await http.get<OAuthClient[]>('/oauth-clients')
  return data
}

export async function createOAuthClient(body: OAuthClientInput): Promise<OAuthClientCreated> {
  const { data } = await http.post<OAuthClientCreated>('/oauth-clients', body)
  return data
}

export async function revokeOAuthClient(clientId: string): Promise<OAuthClient> {
  const { data } = await http.post<OAuthClient>(`/oauth-clients/${encodeURIComponent(clientId)}/revoke`)
  return data
}

export interface ConsentInfo {
  client_name: string
  institution_name: string
  scopes: { code: OAuthScope; label: string }[]
  redirect_uri: string
}

/** The authorization request's query string travels unchanged to /oauth/consent (outside /api). */
export async function getConsent(query: string): Promise<ConsentInfo> {
  const { data } = await http.get<ConsentInfo>(`/oauth/consent?${query}`, { baseURL: '/' })
  return data
}

export async function decideConsent(query: string, approve: boolean): Promise<string> {
  const { data } = await http.post<{ redirect_to: string }>(`/oauth/consent?${query}`, { approve }, { baseURL: '/' })
  return data.redirect_to
}
