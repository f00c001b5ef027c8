/** Mainland mobile number (11 digits starting with 1). */
export const PHONE_RE = /^1[3-9]\d{9}$/
/** 18-character resident ID number (format only; the server checks it fully). */
export const ID_NUMBER_RE = /^\d{17}[\dXx]$/
export const USERNAME_RE = /^[A-Za-z0-9_.-]{3,32}$/

export const PHOTO_TYPES = ['image/jpeg', 'image/png']
export const PHOTO_MAX_BYTES = 10 * 1024 * 1024

export type PhotoProblem = 'type' | 'size' | null

export function checkPhoto(file: { type: string; size: number; name?: string }): PhotoProblem {
  const byName = /\.(jpe?g|png)$/i.test(file.name || '')
  const typeOk = file.type ? PHOTO_TYPES.includes(file.type) : byName
  if (!typeOk) return 'type'
  if (file.size > PHOTO_MAX_BYTES) return 'size'
  return null
}
