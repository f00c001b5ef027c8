import { AxiosError, AxiosHeaders, type AxiosAdapter, type AxiosResponse, type InternalAxiosRequestConfig } from 'axios'

export interface FakeRoute {
  status: number
  data?: unknown
}

/**
 * A fake axios adapter: `routes(config)` decides the response. Records every
 * request config it sees in `calls`.
 */
export function fakeAdapter(routes: (config: InternalAxiosRequestConfig) => FakeRoute) {
  const calls: InternalAxiosRequestConfig[] = []
  const adapter: AxiosAdapter = async (config) => {
    calls.push(config)
    const { status, data } = routes(config)
    const response: AxiosResponse = {
      data,
      status,
      statusText: String(status),
      headers: new AxiosHeaders(),
      config,
    }
    if (status >= 200 && status < 300) return response
    throw new AxiosError(`HTTP ${status}`, AxiosError.ERR_BAD_REQUEST, config, null, response)
  }
  return { adapter, calls }
}
