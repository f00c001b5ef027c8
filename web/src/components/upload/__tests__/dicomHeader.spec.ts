// REQ: REG-16 — the uploader sniffs "DICM" at byte 128 and reads the header it needs before sending.
import { describe, expect, it } from 'vitest'
import { isDicom, isZip, parseHeader } from '../dicomHeader'
import { CT_CLASS, dicomFile } from './fixtures'

describe('reg16 sniff', () => {
  it('tells DICOM (DICM at 128) from anything else', () => {
    expect(isDicom(dicomFile())).toBe(true)
    const text = new TextEncoder().encode('DICM is not at the start of a DICOM file'.repeat(10))
    expect(isDicom(text)).toBe(false)
    expect(isDicom(new Uint8Array(131))).toBe(false)
    const shifted = new Uint8Array(200)
    shifted.set(new TextEncoder().encode('DICM'), 0)
    expect(isDicom(shifted)).toBe(false)
    expect(parseHeader(text)).toBeNull()
  })

  it('knows a zip by its signature', () => {
    expect(isZip(new Uint8Array([0x50, 0x4b, 3, 4, 0]))).toBe(true)
    expect(isZip(dicomFile())).toBe(false)
  })
})

describe('reg16 header', () => {
  it('reads explicit VR little endian', () => {
    const h = parseHeader(dicomFile({ sop: '1.2.9', study: '1.2.840.99', patientId: 'P-7', accession: 'A77' }))!
    expect(h.transferSyntaxUid).toBe('1.2.840.10008.1.2.1')
    expect(h.sopClassUid).toBe(CT_CLASS)
    expect(h.sopInstanceUid).toBe('1.2.9')
    expect(h.studyInstanceUid).toBe('1.2.840.99')
    expect(h.seriesInstanceUid).toBe('1.2.3.4.1')
    expect(h.patientId).toBe('P-7')
    expect(h.accessionNumber).toBe('A77')
    expect(h.modality).toBe('CT')
    expect(h.studyDate).toBe('20261207')
    expect(h.patientName).toBe('ZHANG^SAN')
  })

  it('reads implicit VR little endian past undefined-length sequences', () => {
    const seq = {
      tag: 0x00081140,
      vr: 'SQ',
      undefinedLength: true,
      value: [[{ tag: 0x00081155, vr: 'UI', value: '1.9.9' }], [{ tag: 0x00081150, vr: 'UI', value: '1.9.8' }]],
    }
    for (const ts of ['1.2.840.10008.1.2', '1.2.840.10008.1.2.1', '1.2.840.10008.1.2.4.70']) {
      const h = parseHeader(dicomFile({ ts, extra: [seq], study: '1.2.5', patientId: 'IMPL' }))!
      expect(h.studyInstanceUid).toBe('1.2.5')
      expect(h.patientId).toBe('IMPL')
    }
  })

  it('decodes a Chinese name by its character set', () => {
    const gb = new Uint8Array([0xd5, 0xc5, 0x5e, 0xc8, 0xfd]) // 张^三 in GB18030
    expect(parseHeader(dicomFile({ charset: 'GB18030', patientName: gb }))!.patientName).toBe('张^三')
    expect(parseHeader(dicomFile({ charset: 'ISO_IR 192', patientName: '李^四' }))!.patientName).toBe('李^四')
  })

  it('returns what it read of a truncated or deflated file', () => {
    const full = dicomFile({ sop: '1.2.77' })
    const cut = parseHeader(full.subarray(0, 300))!
    expect(cut.sopInstanceUid).toBe('1.2.77') // from the File Meta Information
    const deflated = parseHeader(dicomFile({ ts: '1.2.840.10008.1.2.1.99', sop: '1.2.78' }))!
    expect(deflated.sopInstanceUid).toBe('1.2.78')
    expect(deflated.studyInstanceUid).toBe('')
  })
})
