// Small DICOM files built byte by byte for the uploader's specs (PS3.10 preamble + meta, then the data set).
export interface El {
  tag: number
  vr: string
  value: Uint8Array | string | El[][] // items of a sequence
  undefinedLength?: boolean
}

const LONG = new Set(['OB', 'OW', 'SQ', 'UN', 'UT', 'OF', 'OD', 'OL', 'UC', 'UR'])
const enc = new TextEncoder()

function u16(n: number): number[] {
  return [n & 0xff, (n >> 8) & 0xff]
}
function u32(n: number): number[] {
  return [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff]
}

function valueBytes(e: El, explicit: boolean): number[] {
  if (Array.isArray(e.value)) {
    const out: number[] = []
    for (const item of e.value) {
      const body = item.flatMap((x) => element(x, explicit))
      if (e.undefinedLength) out.push(...u16(0xfffe), ...u16(0xe000), ...u32(0xffffffff), ...body, ...u16(0xfffe), ...u16(0xe00d), ...u32(0))
      else out.push(...u16(0xfffe), ...u16(0xe000), ...u32(body.length), ...body)
    }
    return out
  }
  const raw = typeof e.value === 'string' ? Array.from(enc.encode(e.value)) : Array.from(e.value)
  if (raw.length % 2) raw.push(e.vr === 'UI' || e.vr === 'OB' ? 0 : 0x20)
  return raw
}

export function element(e: El, explicit: boolean): number[] {
  const v = valueBytes(e, explicit)
  const head = [...u16(e.tag >>> 16), ...u16(e.tag & 0xffff)]
  const len = e.undefinedLength ? 0xffffffff : v.length
  const tail = e.undefinedLength ? [...u16(0xfffe), ...u16(0xe0dd), ...u32(0)] : []
  if (!explicit) return [...head, ...u32(len), ...v, ...tail]
  const vr = [e.vr.charCodeAt(0), e.vr.charCodeAt(1)]
  if (LONG.has(e.vr)) return [...head, ...vr, 0, 0, ...u32(len), ...v, ...tail]
  return [...head, ...vr, ...u16(len), ...v, ...tail]
}

export const CT_CLASS = '1.2.840.10008.5.1.4.1.1.2'

export function dicomFile(
  opts: { ts?: string; sop?: string; study?: string; series?: string; patientId?: string; accession?: string; extra?: El[]; pixels?: number; charset?: string; patientName?: Uint8Array | string } = {},
): Uint8Array<ArrayBuffer> {
  const ts = opts.ts ?? '1.2.840.10008.1.2.1'
  const sop = opts.sop ?? '1.2.3.4.5.6'
  const explicit = ts !== '1.2.840.10008.1.2'
  const metaEls: El[] = [
    { tag: 0x00020001, vr: 'OB', value: new Uint8Array([0, 1]) },
    { tag: 0x00020002, vr: 'UI', value: CT_CLASS },
    { tag: 0x00020003, vr: 'UI', value: sop },
    { tag: 0x00020010, vr: 'UI', value: ts },
  ]
  const metaBody = metaEls.flatMap((e) => element(e, true))
  const meta = [...element({ tag: 0x00020000, vr: 'UL', value: new Uint8Array(u32(metaBody.length)) }, true), ...metaBody]
  const ds: El[] = [
    ...(opts.charset ? [{ tag: 0x00080005, vr: 'CS', value: opts.charset }] : []),
    { tag: 0x00080016, vr: 'UI', value: CT_CLASS },
    { tag: 0x00080018, vr: 'UI', value: sop },
    { tag: 0x00080020, vr: 'DA', value: '20261207' },
    { tag: 0x00080050, vr: 'SH', value: opts.accession ?? 'ACC1' },
    { tag: 0x00080060, vr: 'CS', value: 'CT' },
    ...(opts.extra ?? []),
    { tag: 0x00100010, vr: 'PN', value: opts.patientName ?? 'ZHANG^SAN' },
    { tag: 0x00100020, vr: 'LO', value: opts.patientId ?? 'P001' },
    { tag: 0x0020000d, vr: 'UI', value: opts.study ?? '1.2.3.4' },
    { tag: 0x0020000e, vr: 'UI', value: opts.series ?? '1.2.3.4.1' },
    { tag: 0x7fe00010, vr: 'OW', value: new Uint8Array(opts.pixels ?? 64) },
  ]
  ds.sort((a, b) => a.tag - b.tag)
  const body = ds.flatMap((e) => element(e, explicit))
  const out = new Uint8Array(132 + meta.length + body.length)
  out.set(enc.encode('DICM'), 128)
  out.set(meta, 132)
  out.set(body, 132 + meta.length)
  return out
}
