import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import * as reportsApi from '@/api/reports'
import { ApiError } from '@/api/http'
import type { Revision } from '@/api/types'
import { AUTOSAVE_MS, createReportSession } from '../reportSession'

vi.mock('@/api/reports', () => ({
  lockReport: vi.fn(),
  unlockReport: vi.fn(),
  unlockReportOnUnload: vi.fn(),
  saveDraft: vi.fn(),
  listRevisions: vi.fn(),
  printReport: vi.fn(),
}))

const T0 = Date.parse('2025-01-01T00:00:00Z')

function rev(id: number): Revision {
  return {
    id,
    seq: id,
    level: 'l1',
    author: { id: 7, full_name: '李医生' },
    created_at: new Date(Date.now()).toISOString(),
    signed: false,
    findings: null,
    impression: null,
    recommendation: null,
    positive: null,
    changes: [],
  }
}

describe('report editing session (lock + autosave)', () => {
  const text = { findings: '两肺纹理清晰' as string | null, impression: '未见异常' as string | null }
  const getDraft = () => ({ ...text, recommendation: null, positive: '阴性' as const })

  beforeEach(() => {
    vi.useFakeTimers()
    vi.setSystemTime(T0)
    text.findings = '两肺纹理清晰'
    text.impression = '未见异常'
    vi.mocked(reportsApi.lockReport).mockReset()
    vi.mocked(reportsApi.unlockReport).mockReset().mockResolvedValue(undefined)
    vi.mocked(reportsApi.saveDraft).mockReset()
    vi.mocked(reportsApi.unlockReportOnUnload).mockReset()
  })

  afterEach(() => {
    vi.useRealTimers()
  })

  it('acquires the lock, then autosaves every 30 s with the lock token, only when the text changed', async () => {
    vi.mocked(reportsApi.lockReport).mockResolvedValue({ lock_token: 41, expires_at: new Date(T0 + 15 * 60_000).toISOString() })
    vi.mocked(reportsApi.saveDraft).mockImplementation(async () => rev(1))
    const onSaved = vi.fn()
    const s = createReportSession({ reportId: 9, getDraft, onSaved })

    expect(await s.acquire()).toBe(true)
    expect(reportsApi.lockReport).toHaveBeenCalledWith(9)
    expect(s.state).toMatchObject({ status: 'held', token: 41 })

    await vi.advanceTimersByTimeAsync(AUTOSAVE_MS)
    expect(reportsApi.saveDraft).not.toHaveBeenCalled() // nothing changed yet

    text.findings = '右肺上叶见结节'
    await vi.advanceTimersByTimeAsync(AUTOSAVE_MS - 1)
    expect(reportsApi.saveDraft).not.toHaveBeenCalled()
    await vi.advanceTimersByTimeAsync(1)
    expect(reportsApi.saveDraft).toHaveBeenCalledTimes(1)
    expect(reportsApi.saveDraft).toHaveBeenCalledWith(9, 41, {
      findings: '右肺上叶见结节',
      impression: '未见异常',
      recommendation: null,
      positive: '阴性',
    })
    expect(onSaved).toHaveBeenCalledTimes(1)
    expect(s.state.lastSavedAt).toBeTruthy()
    expect(s.isDirty()).toBe(false)

    await vi.advanceTimersByTimeAsync(AUTOSAVE_MS)
    expect(reportsApi.saveDraft).toHaveBeenCalledTimes(1) // saved text is not saved again
    s.stop()
  })

  it('Ctrl+S path: save() saves at once when changed, save(true) even when not', async () => {
    vi.mocked(reportsApi.lockReport).mockResolvedValue({ lock_token: 5, expires_at: new Date(T0 + 600_000).toISOString() })
    vi.mocked(reportsApi.saveDraft).mockImplementation(async () => rev(2))
    const s = createReportSession({ reportId: 3, getDraft })
    await s.acquire()
    expect(await s.save()).toBe(false)
    text.impression = '考虑炎症'
    expect(await s.save()).toBe(true)
    expect(vi.mocked(reportsApi.saveDraft).mock.calls[0][1]).toBe(5)
    expect(await s.save(true)).toBe(true)
    expect(reportsApi.saveDraft).toHaveBeenCalledTimes(2)
    s.stop()
  })

  it('409 report_locked: read-only with the holder and expiry, no autosave', async () => {
    vi.mocked(reportsApi.lockReport).mockRejectedValue(
      new ApiError(409, 'report_locked', '报告正在被他人编辑', {
        holder: { id: 8, full_name: '王医生' },
        expires_at: '2025-01-01T00:10:00Z',
      }),
    )
    const s = createReportSession({ reportId: 9, getDraft })
    expect(await s.acquire()).toBe(false)
    expect(s.state.status).toBe('locked_by_other')
    expect(s.state.otherHolder).toEqual({ id: 8, full_name: '王医生' })
    expect(s.state.otherExpiresAt).toBe('2025-01-01T00:10:00Z')
    text.findings = 'changed'
    await vi.advanceTimersByTimeAsync(AUTOSAVE_MS * 2)
    expect(reportsApi.saveDraft).not.toHaveBeenCalled()
    expect(await s.save(true)).toBe(false)
  })

  it('409 lock_lost on autosave: status lost with the kept draft revision, autosave stops, no unlock', async () => {
    vi.mocked(reportsApi.lockReport).mockResolvedValue({ lock_token: 41, expires_at: new Date(T0 + 900_000).toISOString() })
    vi.mocked(reportsApi.saveDraft).mockRejectedValue(
      new ApiError(409, 'lock_lost', '编辑锁已失效，内容已保存为草稿', { revision_id: 77 }),
    )
    const s = createReportSession({ reportId: 9, getDraft })
    await s.acquire()
    text.findings = '新的所见'
    await vi.advanceTimersByTimeAsync(AUTOSAVE_MS)
    expect(s.state).toMatchObject({ status: 'lost', token: null, lostRevisionId: 77 })
    await vi.advanceTimersByTimeAsync(AUTOSAVE_MS * 3)
    expect(reportsApi.saveDraft).toHaveBeenCalledTimes(1)
    await s.release()
    expect(reportsApi.unlockReport).not.toHaveBeenCalled()
  })

  it('other save errors keep the lock and show the message', async () => {
    vi.mocked(reportsApi.lockReport).mockResolvedValue({ lock_token: 1, expires_at: new Date(T0 + 900_000).toISOString() })
    vi.mocked(reportsApi.saveDraft).mockRejectedValueOnce(new ApiError(0, 'network_error', '网络错误'))
    const s = createReportSession({ reportId: 9, getDraft })
    await s.acquire()
    text.findings = 'x'
    expect(await s.save()).toBe(false)
    expect(s.state).toMatchObject({ status: 'held', saveError: '网络错误' })
    s.stop()
  })

  it('renews the lock when it is about to expire and uses the new token', async () => {
    vi.mocked(reportsApi.lockReport)
      .mockResolvedValueOnce({ lock_token: 1, expires_at: new Date(T0 + 80_000).toISOString() })
      .mockResolvedValueOnce({ lock_token: 2, expires_at: new Date(T0 + 900_000).toISOString() })
    vi.mocked(reportsApi.saveDraft).mockImplementation(async () => rev(3))
    const s = createReportSession({ reportId: 9, getDraft })
    await s.acquire()
    await vi.advanceTimersByTimeAsync(AUTOSAVE_MS) // 50 s left → renewed
    expect(reportsApi.lockReport).toHaveBeenCalledTimes(2)
    expect(s.state.token).toBe(2)
    text.findings = 'y'
    await s.save()
    expect(vi.mocked(reportsApi.saveDraft).mock.calls[0][1]).toBe(2)
    s.stop()
  })

  it('release() saves pending text, then unlocks with the token; pagehide uses the keepalive unlock', async () => {
    vi.mocked(reportsApi.lockReport).mockResolvedValue({ lock_token: 41, expires_at: new Date(T0 + 900_000).toISOString() })
    vi.mocked(reportsApi.saveDraft).mockImplementation(async () => rev(4))
    const s = createReportSession({ reportId: 9, getDraft })
    await s.acquire()
    s.releaseOnUnload()
    expect(reportsApi.unlockReportOnUnload).toHaveBeenCalledWith(9, 41)
    text.findings = 'pending'
    await s.release()
    expect(reportsApi.saveDraft).toHaveBeenCalledTimes(1)
    expect(reportsApi.unlockReport).toHaveBeenCalledWith(9, 41)
    expect(s.state.status).toBe('released')
    await s.release()
    expect(reportsApi.unlockReport).toHaveBeenCalledTimes(1)
  })

  it('after a submit the lock is not released again', async () => {
    vi.mocked(reportsApi.lockReport).mockResolvedValue({ lock_token: 41, expires_at: new Date(T0 + 900_000).toISOString() })
    const s = createReportSession({ reportId: 9, getDraft })
    await s.acquire()
    s.markSubmitted()
    await s.release()
    expect(reportsApi.unlockReport).not.toHaveBeenCalled()
  })
})
