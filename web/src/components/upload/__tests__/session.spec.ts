// REQ: REG-16 — one upload end to end without a server: sniff, skip non-DICOM, batch, per-file results, link, cancel.
import { Blob as NodeBlob } from 'node:buffer'
import { beforeAll, describe, expect, it, vi } from 'vitest'
import { BlobWriter, Uint8ArrayReader, ZipWriter } from '@zip.js/zip.js'
import { counts, percent, UploadSession, type UploadDeps } from '../session'
import { parseHeader } from '../dicomHeader'
import type { NamedFile } from '../sources'
import { StowError, type StowReply } from '../stow'
import type { ExamStudy } from '../api'
import { dicomFile } from './fixtures'

beforeAll(() => vi.stubGlobal('Blob', NodeBlob))

const STUDY = '1.2.826.1'

function dcm(i: number, patientId = 'P001'): NamedFile {
  return { file: new Blob([dicomFile({ sop: `1.2.9.${i}`, study: STUDY, patientId })]), path: `CT/IM${i}` }
}

/** A fake STOW-RS server: reads each part's SOP UID from the body, refuses those in `refuse`. */
function fakeServer(refuse: Set<string>, calls: number[]) {
  return async (body: Blob): Promise<StowReply> => {
    const bytes = new Uint8Array(await body.arrayBuffer())
    const text = new TextDecoder('latin1').decode(bytes)
    const sops = [...text.matchAll(/DICM/g)].map((m) => parseHeader(bytes.subarray(m.index! - 128))!.sopInstanceUid)
    calls.push(sops.length)
    return {
      status: 200,
      outcomes: {
        instances: sops.map((sop) =>
          refuse.has(sop)
            ? { sopInstanceUid: sop, studyInstanceUid: '', stored: false, reason: '实例数据不完整，未存储', status: 0xa900 }
            : { sopInstanceUid: sop, studyInstanceUid: STUDY, stored: true, reason: sop.endsWith('.3') ? '相同实例已存储' : '', status: null },
        ),
        other: [],
      },
    }
  }
}

function deps(over: Partial<UploadDeps> = {}): UploadDeps & { linked: string[][] } {
  const linked: string[][] = []
  return {
    examId: 7,
    patientNo: 'P001',
    csrfToken: async () => 'tok',
    refreshCsrf: async () => 'tok',
    link: async (_exam, uids) => {
      linked.push(uids)
      return uids.map((u) => ({ study_instance_uid: u, linked_now: true }) as ExamStudy)
    },
    confirmMismatch: async () => true,
    linked,
    ...over,
  }
}

describe('reg16 upload session', () => {
  it('uploads a folder and a zip in batches, skips non-DICOM, reports each file and links the study', async () => {
    const w = new ZipWriter(new BlobWriter('application/zip'), { useWebWorkers: false })
    await w.add('DISK/IM10', new Uint8ArrayReader(dicomFile({ sop: '1.2.9.10', study: STUDY })))
    await w.add('DISK/IM11', new Uint8ArrayReader(dicomFile({ sop: '1.2.9.11', study: STUDY })))
    const zip = await w.close()
    const calls: number[] = []
    const d = deps({ retry: { send: fakeServer(new Set(['1.2.9.2']), calls) }, maxFiles: 2 })
    const session = new UploadSession(d)
    const files = [dcm(1), dcm(2), dcm(3), { file: new Blob(['not an image']), path: 'CT/notes.txt' }, { file: zip, path: 'cd.zip' }]
    const s = await session.run(files)
    expect(s.phase).toBe('done')
    const byName = Object.fromEntries(s.rows.map((r) => [r.name, [r.status, r.reason || r.reasonKey]]))
    expect(byName).toEqual({
      'CT/IM1': ['stored', ''],
      'CT/IM2': ['refused', '实例数据不完整，未存储'],
      'CT/IM3': ['duplicate', '相同实例已存储'],
      'CT/notes.txt': ['skipped', 'not_dicom'],
      'cd.zip › DISK/IM10': ['stored', ''],
      'cd.zip › DISK/IM11': ['stored', ''],
    })
    expect(calls).toEqual([2, 2, 1]) // five DICOM files, at most two a request
    expect(counts(s.rows)).toEqual({ stored: 4, refused: 1, skipped: 1, other: 0 })
    expect(percent(s)).toBe(100)
    expect(d.linked).toEqual([[STUDY]])
    expect(s.linked[0]!.study_instance_uid).toBe(STUDY)
  })

  it('asks before sending images of another PatientID, and sends nothing if told no', async () => {
    const send = vi.fn()
    const confirmMismatch = vi.fn(async () => false)
    const session = new UploadSession(deps({ confirmMismatch, retry: { send } }))
    const s = await session.run([dcm(1), dcm(2, 'OTHER')])
    expect(confirmMismatch).toHaveBeenCalledWith(['OTHER'])
    expect(send).not.toHaveBeenCalled()
    expect(s.phase).toBe('cancelled')
    expect(s.rows.every((r) => r.status === 'cancelled')).toBe(true)
  })

  it('stops on cancel, and still links what was stored', async () => {
    const calls: number[] = []
    const server = fakeServer(new Set(), calls)
    let session: UploadSession | null = null
    const send = vi.fn(async (body: Blob) => {
      const reply = await server(body)
      session!.cancel() // the user cancels while the first request is answered
      return reply
    })
    const d = deps({ retry: { send }, maxFiles: 1 })
    session = new UploadSession(d)
    const s = await session.run([dcm(1), dcm(2), dcm(4)])
    expect(s.phase).toBe('cancelled')
    expect(s.rows.map((r) => r.status)).toEqual(['stored', 'cancelled', 'cancelled'])
    expect(send).toHaveBeenCalledTimes(1)
    expect(d.linked).toEqual([[STUDY]])
  })

  it('a lost session ends the upload; a refused batch does not', async () => {
    const send = vi
      .fn()
      .mockRejectedValueOnce(new StowError(413, 'too_large', '上传内容过大'))
      .mockRejectedValueOnce(new StowError(401, 'unauthenticated', '登录已失效，请重新登录'))
    const s = await new UploadSession(deps({ retry: { send }, maxFiles: 1 })).run([dcm(1), dcm(2), dcm(4)])
    expect(s.rows.map((r) => [r.status, r.reason])).toEqual([
      ['error', '上传内容过大'],
      ['error', '登录已失效，请重新登录'],
      ['cancelled', ''],
    ])
    expect(s.fatal).toBe('登录已失效，请重新登录')
  })
})
