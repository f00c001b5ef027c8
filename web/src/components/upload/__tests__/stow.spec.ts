// REQ: REG-16 — batches, the multipart body, the Store Instances Response per file, retry and cancel.
import { Blob as NodeBlob } from 'node:buffer'
import { beforeAll, describe, expect, it, vi } from 'vitest'
import {
  Cancelled,
  MAX_BYTES,
  MAX_FILES,
  multipartBody,
  newBoundary,
  parseStowResponse,
  planBatches,
  sendWithRetry,
  StowError,
  type StowReply,
} from '../stow'

const MB = 1024 * 1024

// jsdom's Blob reads no bytes back (no arrayBuffer/stream): Node's does, as a browser's does.
beforeAll(() => vi.stubGlobal('Blob', NodeBlob))

describe('reg16 batches', () => {
  it('caps files and bytes per request', () => {
    const files = Array.from({ length: 120 }, () => ({ size: 100 }))
    expect(planBatches(files).map((b) => b.length)).toEqual([MAX_FILES, MAX_FILES, 20])
    const big = [{ size: 40 * MB }, { size: 30 * MB }, { size: 20 * MB }, { size: 100 * MB }, { size: 1 }]
    expect(planBatches(big).map((b) => b.map((f) => f.size / MB))).toEqual([[40], [30, 20], [100], [1 / MB]])
    expect(MAX_BYTES).toBe(64 * MB)
    expect(planBatches([])).toEqual([])
  })

  it('builds a multipart/related body of application/dicom parts', async () => {
    const b = newBoundary()
    expect(b).toMatch(/^telerad-[0-9a-f]{32}$/)
    expect(newBoundary()).not.toBe(b)
    const body = multipartBody([new Uint8Array([1, 2]), new Uint8Array([3])], b)
    const text = new TextDecoder('latin1').decode(new Uint8Array(await body.arrayBuffer()))
    expect(text).toBe(
      `--${b}\r\nContent-Type: application/dicom\r\n\r\n\x01\x02\r\n--${b}\r\nContent-Type: application/dicom\r\n\r\n\x03\r\n--${b}--\r\n`,
    )
  })
})

describe('reg16 response', () => {
  it('reads stored, warned, refused and unreadable parts', () => {
    const body = {
      '00081199': {
        vr: 'SQ',
        Value: [
          { '00081155': { Value: ['1.1'] }, '00081190': { Value: ['http://h/dicomweb/studies/9.8/series/7/instances/1.1'] } },
          {
            '00081155': { Value: ['1.2'] },
            '00081190': { Value: ['http://h/dicomweb/studies/9.8/series/7/instances/1.2'] },
            '00081196': { Value: [0xb000] },
            '0040A160': { Value: ['已有相同 SOP Instance UID 但内容不同的实例，本实例已另存待处理'] },
          },
        ],
      },
      '00081198': { Value: [{ '00081155': { Value: ['1.3'] }, '00081197': { Value: [0xa700] }, '0040A160': { Value: ['存储空间不足，未存储'] } }] },
      '0008119A': { Value: [{ '0040A160': { Value: ['不是 DICOM'] } }] },
    }
    const out = parseStowResponse(body)
    expect(out.instances).toEqual([
      { sopInstanceUid: '1.1', studyInstanceUid: '9.8', stored: true, reason: '', status: null },
      { sopInstanceUid: '1.2', studyInstanceUid: '9.8', stored: true, reason: expect.stringContaining('另存'), status: 0xb000 },
      { sopInstanceUid: '1.3', studyInstanceUid: '', stored: false, reason: '存储空间不足，未存储', status: 0xa700 },
    ])
    expect(out.other).toEqual(['不是 DICOM'])
    expect(parseStowResponse(null)).toEqual({ instances: [], other: [] })
  })
})

describe('reg16 retry', () => {
  const ok: StowReply = { status: 200, outcomes: { instances: [], other: [] } }
  const opts = { csrfToken: async () => 't', sleep: async () => undefined }

  it('retries network errors and 5xx, then succeeds', async () => {
    const send = vi
      .fn()
      .mockRejectedValueOnce(new StowError(0, 'network_error', '网络错误'))
      .mockRejectedValueOnce(new StowError(503, 'busy', '忙'))
      .mockResolvedValueOnce(ok)
    const onRetry = vi.fn()
    const sleeps: number[] = []
    const r = await sendWithRetry(new Blob([]), 'b', { ...opts, send, onRetry, sleep: async (ms) => void sleeps.push(ms) })
    expect(r).toBe(ok)
    expect(send).toHaveBeenCalledTimes(3)
    expect(onRetry.mock.calls.map((c) => c[0])).toEqual([1, 2])
    expect(sleeps).toEqual([1000, 3000])
  })

  it('gives up after the last delay, and never retries a final refusal', async () => {
    const send = vi.fn().mockRejectedValue(new StowError(502, 'bad_gateway', '网关错误'))
    await expect(sendWithRetry(new Blob([]), 'b', { ...opts, send, delays: [1, 1] })).rejects.toThrow('网关错误')
    expect(send).toHaveBeenCalledTimes(3)
    for (const status of [400, 401, 403, 413, 415]) {
      const once = vi.fn().mockRejectedValue(new StowError(status, 'x', `拒绝 ${status}`))
      await expect(sendWithRetry(new Blob([]), 'b', { ...opts, send: once })).rejects.toThrow(`拒绝 ${status}`)
      expect(once).toHaveBeenCalledTimes(1)
    }
  })

  it('repeats a CSRF refusal once with a fresh token', async () => {
    const send = vi.fn().mockRejectedValueOnce(new StowError(403, 'csrf_failed', 'CSRF')).mockResolvedValueOnce(ok)
    const refreshCsrf = vi.fn(async () => 'new')
    expect(await sendWithRetry(new Blob([]), 'b', { ...opts, send, refreshCsrf })).toBe(ok)
    expect(refreshCsrf).toHaveBeenCalledTimes(1)
  })

  it('stops waiting when cancelled', async () => {
    const ctl = new AbortController()
    const send = vi.fn().mockRejectedValue(new StowError(0, 'network_error', '网络错误'))
    const p = sendWithRetry(new Blob([]), 'b', { csrfToken: async () => null, send, signal: ctl.signal, delays: [60_000] })
    await Promise.resolve()
    ctl.abort()
    await expect(p).rejects.toBeInstanceOf(Cancelled)
  })
})
