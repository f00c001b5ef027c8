/**
 * Sanitise a post-login redirect target taken from `?next=`.
 *
 * Only same-origin, relative paths are accepted: the value must start with a
 * single "/" that is not followed by another "/" or a "\" (browsers treat
 * "/\evil.com" like "//evil.com"). Anything else — absolute URLs, protocol-
 * relative URLs, backslashes, control characters — falls back to "/".
 */
export function safeNext(raw: unknown, fallback = '/'): string {
  const value = Array.isArray(raw) ? raw[0] : raw
  if (typeof value !== 'string' || value.length === 0 || value.length > 2048) return fallback
  if (!value.startsWith('/')) return fallback
  if (value.startsWith('//')) return fallback
  // Backslashes and control / whitespace characters are never legitimate here.
  // eslint-disable-next-line no-control-regex
  if (/[\\\u0000-\u0020\u007f]/.test(value)) return fallback
  // Percent-encoded slashes/backslashes right after the leading slash.
  if (/^\/(%2f|%5c)/i.test(value)) return fallback
  return value
}

/** Paths where a `next` parameter makes no sense (auth pages themselves). */
export function isAuthPagePath(path: string): boolean {
  return path === '/login' || path.startsWith('/login/') || path.startsWith('/login?')
}
