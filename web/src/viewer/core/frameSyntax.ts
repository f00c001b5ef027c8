/**
 * Which form the viewer asks its frames in — the "bandwidth mode" (REQ: VIEW-01, UX R18; issue 16).
 *
 * JPEG lossless decodes in the browser with dicom-image-loader's pure-JS decoder at ~45 ms a 512×512 slice (one
 * web worker per spare core); telerad's server decodes the same slice in ~2 ms of CPU (libjpeg-turbo in its
 * sandboxed pool, engine/dicomweb/negotiate.py). Uncompressed the slice is ~512 KB instead of ~200 KB: the extra
 * ~300 KB costs less than the browser's decode when the link carries more than ~100 Mbit/s — a LAN, not a member
 * hospital's WAN link. So:
 * - `lan`: frames stored in a syntax that is slow to decode here (JPEG lossless, JPEG-LS, JPEG 2000) are asked
 *   uncompressed (explicit VR little endian), the stored syntax accepted at q=0.5 — the server sends that while its
 *   decoders are busy, and the browser decodes it as before;
 * - `wan`: always as stored (`transfer-syntax=*`): fewest bytes;
 * - `auto` (the default): `lan` when the server's host name is a loopback/private address or a local name, else
 *   `wan`. Telerad's central doctors read on the hospital network; member hospitals reach it over the internet.
 * JPEG extended (12-bit, process 2 & 4) is asked uncompressed first on either link: dicom-image-loader's decoder
 * (jpeg.js) reads wrong values from it (pydicom's JPGExtended.dcm: 13 where libjpeg and libjpeg-turbo decode 0),
 * and a wrong pixel value is worse than a slower image. Other uncompressed and lossy-JPEG data is always asked as stored (uncompressed already, or fast to decode and ~10×
 * smaller). The mode is the per-user setting `viewer.bandwidth_mode` (institution defaults apply).
 *
 * Nothing here knows Cornerstone: init.ts's `beforeSend` passes the stored syntax (the metadata's Available
 * Transfer Syntax UID, 0008,3002) to `frameAccept`, and a bulk series fetch can call the same function.
 */

export type BandwidthMode = 'auto' | 'lan' | 'wan'
export type Link = 'lan' | 'wan'

export const EXPLICIT_VR_LE = '1.2.840.10008.1.2.1'
const OCTET = 'multipart/related; type="application/octet-stream"'
/** Frames as stored, whatever the syntax (what dicom-image-loader asks by default). */
export const ACCEPT_AS_STORED = `${OCTET}; transfer-syntax=*`
/** Uncompressed preferred, the stored syntax as the fallback (PS3.18 §8.7.3: q orders the ranges). */
export const ACCEPT_UNCOMPRESSED_FIRST = `${OCTET}; transfer-syntax=${EXPLICIT_VR_LE}, ${ACCEPT_AS_STORED}; q=0.5`

/** Stored syntaxes whose frames decode slowly in the browser (pure JS, or large wasm codecs). */
export const SLOW_IN_BROWSER: ReadonlySet<string> = new Set([
  '1.2.840.10008.1.2.4.57', // JPEG Lossless, process 14
  '1.2.840.10008.1.2.4.70', // JPEG Lossless SV1
  '1.2.840.10008.1.2.4.80', // JPEG-LS lossless
  '1.2.840.10008.1.2.4.81', // JPEG-LS near-lossless
  '1.2.840.10008.1.2.4.90', // JPEG 2000 lossless
  '1.2.840.10008.1.2.4.91', // JPEG 2000
])

/** Stored syntaxes the browser decodes wrongly: asked uncompressed first whatever the link. */
export const WRONG_IN_BROWSER: ReadonlySet<string> = new Set([
  '1.2.840.10008.1.2.4.51', // JPEG Extended (process 2 & 4), 12-bit
])

export const BANDWIDTH_MODES: readonly BandwidthMode[] = ['auto', 'lan', 'wan']

function isPrivateIPv4(host: string): boolean {
  const m = host.match(/^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/)
  if (!m) return false
  const [a, b] = [Number(m[1]), Number(m[2])]
  return a === 10 || a === 127 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168) || (a === 169 && b === 254)
}

/** A loopback or private address, or a name that only resolves on a local network. */
export function isLocalHost(hostname: string): boolean {
  const host = hostname.toLowerCase().replace(/^\[|\]$/g, '')
  if (host === 'localhost' || host.endsWith('.localhost') || isPrivateIPv4(host)) return true
  if (host === '::1' || /^f[cd][0-9a-f]{2}:/.test(host) || /^fe[89ab][0-9a-f]:/.test(host)) return true
  if (/^::ffff:/.test(host)) return isPrivateIPv4(host.slice(7))
  if (!host.includes('.') && !host.includes(':')) return true // a bare intranet name ("pacs", "telerad")
  return /\.(local|lan|internal|intranet|home\.arpa)$/.test(host)
}

export function linkOf(mode: BandwidthMode, hostname: string): Link {
  if (mode === 'lan' || mode === 'wan') return mode
  return isLocalHost(hostname) ? 'lan' : 'wan'
}

/** The Accept header for frames stored in `storedSyntax` (unknown: as stored) over `link`. */
export function frameAccept(storedSyntax: string | undefined, link: Link): string {
  if (storedSyntax && WRONG_IN_BROWSER.has(storedSyntax)) return ACCEPT_UNCOMPRESSED_FIRST
  if (link === 'lan' && storedSyntax && SLOW_IN_BROWSER.has(storedSyntax)) return ACCEPT_UNCOMPRESSED_FIRST
  return ACCEPT_AS_STORED
}

let mode: BandwidthMode = 'auto'

/** The user's `viewer.bandwidth_mode` (unknown values count as `auto`). */
export function setBandwidthMode(value: unknown): void {
  mode = BANDWIDTH_MODES.includes(value as BandwidthMode) ? (value as BandwidthMode) : 'auto'
}

export function bandwidthMode(): BandwidthMode {
  return mode
}

/** The Accept header for frames stored in `storedSyntax`, by the current mode and this page's host. */
export function acceptFor(storedSyntax: string | undefined): string {
  const host = typeof location !== 'undefined' ? location.hostname : ''
  return frameAccept(storedSyntax, linkOf(mode, host))
}
