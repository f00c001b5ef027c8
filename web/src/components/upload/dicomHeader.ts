/**
 * Manual upload (REQ: REG-16): is a file DICOM (PS3.10: 128-byte preamble, then "DICM"), and the few header
 * attributes the uploader needs before sending — the SOP Instance UID to match the STOW-RS answer to the file,
 * the study and the patient to check against the exam. Reads explicit and implicit VR little endian and explicit
 * big endian data sets from the first bytes of a file; stops after Series Instance UID (0020,000E). A deflated data
 * set gives only what its File Meta Information holds. Never throws on a truncated or odd file: what was read is
 * returned.
 */

export const HEAD_BYTES = 256 * 1024 // what is read of a file to sniff and parse its header

export interface DicomHeader {
  transferSyntaxUid: string
  sopClassUid: string
  sopInstanceUid: string
  studyInstanceUid: string
  seriesInstanceUid: string
  patientId: string
  patientName: string
  accessionNumber: string
  modality: string
  studyDate: string
}

const IMPLICIT_LE = '1.2.840.10008.1.2'
const EXPLICIT_BE = '1.2.840.10008.1.2.2'
const DEFLATED = ['1.2.840.10008.1.2.1.99', '1.2.840.10008.1.2.8.1']
// VRs with a 2-byte reserved field and a 4-byte length in explicit VR (PS3.5 7.1.2)
const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV'])
const UNDEFINED = 0xffffffff
const ITEM = 0xfffee000
const ITEM_END = 0xfffee00d
const SEQ_END = 0xfffee0dd
const LAST_TAG = 0x0020000e

const WANTED: Record<number, keyof DicomHeader | 'charset'> = {
  0x00020002: 'sopClassUid',
  0x00020003: 'sopInstanceUid',
  0x00020010: 'transferSyntaxUid',
  0x00080005: 'charset',
  0x00080016: 'sopClassUid',
  0x00080018: 'sopInstanceUid',
  0x00080020: 'studyDate',
  0x00080050: 'accessionNumber',
  0x00080060: 'modality',
  0x00100010: 'patientName',
  0x00100020: 'patientId',
  0x0020000d: 'studyInstanceUid',
  0x0020000e: 'seriesInstanceUid',
}

/** PS3.10: "DICM" at byte 128. */
export function isDicom(bytes: Uint8Array): boolean {
  return (
    bytes.length >= 132 && bytes[128] === 0x44 && bytes[129] === 0x49 && bytes[130] === 0x43 && bytes[131] === 0x4d
  )
}

/** A zip archive (local file header signature "PK\3\4", or an empty archive's "PK\5\6"). */
export function isZip(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b && (bytes[2] === 3 || bytes[2] === 5)
}

function charsetDecoder(charset: string): TextDecoder {
  // the last term of a multi-valued Specific Character Set names the encoding of non-ASCII text
  const terms = charset.split('\\').map((s) => s.trim().toUpperCase())
  const cs = terms[terms.length - 1] || terms[0] || ''
  const label =
    cs === 'ISO_IR 192'
      ? 'utf-8'
      : cs === 'GB18030' || cs === 'GBK' || cs.includes('ISO 2022 GBK') || cs.includes('58')
        ? 'gb18030'
        : 'latin1'
  try {
    return new TextDecoder(label)
  } catch {
    return new TextDecoder('utf-8')
  }
}

class Reader {
  pos = 0
  readonly b: Uint8Array
  readonly little: boolean
  readonly explicit: boolean
  readonly view: DataView
  constructor(b: Uint8Array, little: boolean, explicit: boolean) {
    this.b = b
    this.little = little
    this.explicit = explicit
    this.view = new DataView(b.buffer, b.byteOffset, b.byteLength)
  }
  has(n: number): boolean {
    return this.pos + n <= this.b.length
  }
  u16(): number {
    const v = this.view.getUint16(this.pos, this.little)
    this.pos += 2
    return v
  }
  u32(): number {
    const v = this.view.getUint32(this.pos, this.little)
    this.pos += 4
    return v
  }
  /** One element's header: tag, VR ('' when implicit or an item/delimiter) and value length; null at the end. */
  element(): { tag: number; vr: string; length: number } | null {
    if (!this.has(8)) return null
    const group = this.u16()
    const elem = this.u16()
    const tag = ((group << 16) | elem) >>> 0
    if (group === 0xfffe) return { tag, vr: '', length: this.u32() } // items and delimiters: never a VR
    if (!this.explicit) return { tag, vr: '', length: this.u32() }
    const vr = String.fromCharCode(this.b[this.pos]!, this.b[this.pos + 1]!)
    this.pos += 2
    if (LONG_VRS.has(vr)) {
      if (!this.has(6)) return null
      this.pos += 2
      return { tag, vr, length: this.u32() }
    }
    if (!this.has(2)) return null
    return { tag, vr, length: this.u16() }
  }
  /** Skip an undefined-length value (a sequence, or encapsulated pixel data): its items up to the delimiter. */
  skipUndefined(): boolean {
    for (;;) {
      const el = this.element()
      if (el === null) return false
      if (el.tag === SEQ_END) return true
      if (el.tag !== ITEM) return false
      if (el.length !== UNDEFINED) {
        this.pos += el.length
        continue
      }
      if (!this.skipItemElements()) return false
    }
  }
  /** Skip the elements of an undefined-length item up to its delimiter. */
  skipItemElements(): boolean {
    for (;;) {
      const el = this.element()
      if (el === null) return false
      if (el.tag === ITEM_END) return true
      if (el.length === UNDEFINED) {
        if (!this.skipUndefined()) return false
      } else {
        this.pos += el.length
      }
    }
  }
}

function text(bytes: Uint8Array, decoder: TextDecoder | null): string {
  const raw = decoder ? decoder.decode(bytes) : String.fromCharCode(...bytes)
  return raw.replace(/[\0 ]+$/, '').trim()
}

/** The header of a DICOM file from its first bytes (`isDicom` true); null if it is not DICOM. */
export function parseHeader(bytes: Uint8Array): DicomHeader | null {
  if (!isDicom(bytes)) return null
  const out: DicomHeader = {
    transferSyntaxUid: '',
    sopClassUid: '',
    sopInstanceUid: '',
    studyInstanceUid: '',
    seriesInstanceUid: '',
    patientId: '',
    patientName: '',
    accessionNumber: '',
    modality: '',
    studyDate: '',
  }
  // File Meta Information: always explicit VR little endian, group 0002
  const meta = new Reader(bytes, true, true)
  meta.pos = 132
  for (;;) {
    const start = meta.pos
    if (!meta.has(6) || meta.view.getUint16(meta.pos, true) !== 0x0002) {
      meta.pos = start
      break
    }
    const el = meta.element()
    if (el === null || el.length === UNDEFINED || !meta.has(el.length)) return out
    const key = WANTED[el.tag]
    if (key && key !== 'charset') out[key] = text(bytes.subarray(meta.pos, meta.pos + el.length), null)
    meta.pos += el.length
  }
  const ts = out.transferSyntaxUid
  if (DEFLATED.includes(ts)) return out
  const ds = new Reader(bytes, ts !== EXPLICIT_BE, ts !== IMPLICIT_LE)
  ds.pos = meta.pos
  let decoder: TextDecoder | null = null
  for (;;) {
    const el = ds.element()
    if (el === null || el.tag > LAST_TAG) break
    if (el.length === UNDEFINED) {
      if (!ds.skipUndefined()) break
      continue
    }
    if (!ds.has(el.length)) break
    const key = WANTED[el.tag]
    const value = bytes.subarray(ds.pos, ds.pos + el.length)
    if (key === 'charset') {
      decoder = charsetDecoder(text(value, null))
    } else if (key) {
      out[key] = text(value, key === 'patientName' ? decoder : null)
    }
    ds.pos += el.length
    if (el.tag === LAST_TAG) break
  }
  return out
}

/** Read a blob's first bytes (the whole blob if smaller). */
export async function readHead(blob: Blob, n = HEAD_BYTES): Promise<Uint8Array> {
  return new Uint8Array(await blob.slice(0, n).arrayBuffer())
}
