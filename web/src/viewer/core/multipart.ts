/**
 * An incremental multipart/related parser (RFC 2046 §5.1, RFC 2387) for WADO-RS answers read from a ReadableStream
 * (issue 16, the series' pixel data in a few requests): bytes are pushed as they arrive, split anywhere — inside a
 * boundary line, a header or a payload — and each part is handed out as soon as its last byte is in.
 *
 * A part with a `Content-Length` header (telerad's pixeldata parts) is copied straight into a buffer of that size,
 * never searched; one without is ended by the next delimiter, searched for. Only a closing boundary ends the message:
 * `finish()` throws when the stream ended before it (a server that cut the answer short).
 */

export interface MultipartPart {
  /** Header names in lower case. */
  headers: Record<string, string>
  body: Uint8Array
}

export class MultipartError extends Error {}

const MAX_HEADER_BYTES = 16 * 1024
const CRLF = new Uint8Array([13, 10])
const CRLFCRLF = new Uint8Array([13, 10, 13, 10])

function ascii(text: string): Uint8Array {
  const out = new Uint8Array(text.length)
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i) & 0xff
  return out
}

/** The first index of `needle` in `hay` at or after `from`, or -1. */
export function indexOf(hay: Uint8Array, needle: Uint8Array, from = 0): number {
  const first = needle[0]
  const last = hay.length - needle.length
  let i = from
  while (i <= last) {
    i = hay.indexOf(first, i)
    if (i < 0 || i > last) return -1
    let j = 1
    while (j < needle.length && hay[i + j] === needle[j]) j++
    if (j === needle.length) return i
    i++
  }
  return -1
}

function startsWith(hay: Uint8Array, needle: Uint8Array, at = 0): boolean {
  if (hay.length - at < needle.length) return false
  for (let j = 0; j < needle.length; j++) if (hay[at + j] !== needle[j]) return false
  return true
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (!a.length) return b
  if (!b.length) return a
  const out = new Uint8Array(a.length + b.length)
  out.set(a, 0)
  out.set(b, a.length)
  return out
}

/** The boundary of a multipart Content-Type header value, or null. */
export function boundaryOf(contentType: string | null): string | null {
  if (!contentType || !/^\s*multipart\//i.test(contentType)) return null
  const m = contentType.match(/;\s*boundary=(?:"([^"]+)"|([^;\s]+))/i)
  return m ? (m[1] ?? m[2]) : null
}

function parseHeaders(raw: Uint8Array): Record<string, string> {
  const headers: Record<string, string> = {}
  let text = ''
  for (let i = 0; i < raw.length; i++) text += String.fromCharCode(raw[i])
  for (const line of text.split('\r\n')) {
    if (!line) continue
    const colon = line.indexOf(':')
    if (colon <= 0) throw new MultipartError(`bad part header: ${line.slice(0, 80)}`)
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
  }
  return headers
}

type State = 'preamble' | 'boundary-end' | 'headers' | 'sized' | 'sized-end' | 'searched' | 'done'

export class MultipartParser {
  private readonly dashBoundary: Uint8Array
  private readonly delimiter: Uint8Array
  private buf: Uint8Array = new Uint8Array(0)
  private state: State = 'preamble'
  private headers: Record<string, string> = {}
  private body: Uint8Array | null = null
  private filled = 0
  private searchFrom = 0

  constructor(boundary: string) {
    this.dashBoundary = ascii(`--${boundary}`)
    this.delimiter = ascii(`\r\n--${boundary}`)
  }

  get done(): boolean {
    return this.state === 'done'
  }

  /** Feed the next bytes; the parts completed by them, in order. */
  push(chunk: Uint8Array): MultipartPart[] {
    const out: MultipartPart[] = []
    let data = chunk
    if (this.state === 'sized') data = this.fill(data, out)
    if (this.state === 'done' || !data.length) return out
    this.buf = concat(this.buf, data)
    while (this.step(out)) {
      /* each step consumes from buf or changes state */
    }
    return out
  }

  /** The stream ended: throws unless the closing boundary was read. */
  finish(): void {
    if (this.state !== 'done') throw new MultipartError('the multipart answer ended before its closing boundary')
  }

  /** Copy into the sized part's body; the bytes left over. */
  private fill(data: Uint8Array, out: MultipartPart[]): Uint8Array {
    const body = this.body as Uint8Array
    const n = Math.min(body.length - this.filled, data.length)
    body.set(data.subarray(0, n), this.filled)
    this.filled += n
    if (this.filled === body.length) {
      out.push({ headers: this.headers, body })
      this.body = null
      this.state = 'sized-end'
    }
    return data.subarray(n)
  }

  /** One step of the state machine over `buf`; false when it needs more bytes (or is done). */
  private step(out: MultipartPart[]): boolean {
    const buf = this.buf
    switch (this.state) {
      case 'preamble': {
        const at = indexOf(buf, this.dashBoundary)
        if (at < 0) {
          this.buf = buf.subarray(Math.max(0, buf.length - this.dashBoundary.length + 1)) // may start a boundary
          return false
        }
        this.buf = buf.subarray(at + this.dashBoundary.length)
        this.state = 'boundary-end'
        return true
      }
      case 'boundary-end': {
        // "--" closes the message; otherwise optional transport padding (spaces, tabs) then CRLF
        if (buf.length < 2) return false
        if (buf[0] === 45 && buf[1] === 45) {
          this.state = 'done'
          this.buf = new Uint8Array(0)
          return false
        }
        let i = 0
        while (i < buf.length && (buf[i] === 32 || buf[i] === 9)) i++
        if (buf.length - i < 2) return false
        if (!startsWith(buf, CRLF, i)) throw new MultipartError('a boundary line does not end in CRLF')
        this.buf = buf.subarray(i + 2)
        this.state = 'headers'
        return true
      }
      case 'headers': {
        let end: number
        let skip: number
        if (startsWith(buf, CRLF)) {
          end = 0 // no headers at all
          skip = 2
        } else {
          end = indexOf(buf, CRLFCRLF)
          skip = 4
          if (end < 0) {
            if (buf.length > MAX_HEADER_BYTES) throw new MultipartError('part headers too long')
            return false
          }
        }
        this.headers = parseHeaders(buf.subarray(0, end))
        this.buf = buf.subarray(end + skip)
        const length = this.headers['content-length']
        if (length !== undefined && /^\d+$/.test(length)) {
          this.body = new Uint8Array(Number(length))
          this.filled = 0
          this.state = 'sized'
          if (this.body.length === 0) {
            out.push({ headers: this.headers, body: this.body })
            this.state = 'sized-end'
            return true
          }
          const rest = this.fill(this.buf, out)
          this.buf = rest
          return (this.state as State) === 'sized-end'
        }
        this.state = 'searched'
        this.searchFrom = 0
        return true
      }
      case 'sized-end': {
        if (buf.length < this.delimiter.length) return false
        if (!startsWith(buf, this.delimiter)) throw new MultipartError('a part is longer than its Content-Length')
        this.buf = buf.subarray(this.delimiter.length)
        this.state = 'boundary-end'
        return true
      }
      case 'searched': {
        const at = indexOf(buf, this.delimiter, this.searchFrom)
        if (at < 0) {
          this.searchFrom = Math.max(0, buf.length - this.delimiter.length + 1)
          return false
        }
        out.push({ headers: this.headers, body: buf.slice(0, at) })
        this.buf = buf.subarray(at + this.delimiter.length)
        this.state = 'boundary-end'
        return true
      }
      default:
        return false
    }
  }
}

/** The transfer syntax of a frame part: its `transfer-syntax` parameter, else its media type's (PS3.18 8.7.3.5). */
const SYNTAX_OF_MEDIA: Record<string, string> = {
  'application/octet-stream': '1.2.840.10008.1.2.1',
  'image/jpeg': '1.2.840.10008.1.2.4.50',
  'image/jls': '1.2.840.10008.1.2.4.80',
  'image/jp2': '1.2.840.10008.1.2.4.90',
  'image/jpx': '1.2.840.10008.1.2.4.92',
  'image/dicom-rle': '1.2.840.10008.1.2.5',
}

export function partTransferSyntax(contentType: string | undefined): string | undefined {
  if (!contentType) return SYNTAX_OF_MEDIA['application/octet-stream']
  const m = contentType.match(/;\s*transfer-syntax="?([0-9.]+)"?/i)
  if (m) return m[1]
  return SYNTAX_OF_MEDIA[contentType.split(';')[0].trim().toLowerCase()]
}
