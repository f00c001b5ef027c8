import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { flushPromises } from '@vue/test-utils'
import * as imagingApi from '@/api/imaging'
import ForwardQueueView from '../ForwardQueueView.vue'
import { click, mountAs, visible } from './helpers'

vi.mock('@/api/imaging', () => ({ listForwardJobs: vi.fn(), retryForwardJob: vi.fn(), listNodes: vi.fn() }))

function job(id: number, state: string, extra: Record<string, unknown> = {}) {
  return {
    id,
    state,
    attempts: state === 'failed' ? 30 : 1,
    next_attempt_at: state === 'pending' ? '2026-01-02T00:00:00Z' : null,
    last_error: state === 'failed' ? '发送失败：连接被拒绝' : '',
    compression: '',
    rule_id: 1,
    node: { id: 7, aet: 'AI_NODE' },
    instance_id: 100 + id,
    sop_instance_uid: `1.2.3.${id}`,
    study_id: 5,
    study_instance_uid: '1.2.3',
    patient_name: '王^五',
    created_at: '2026-01-01T00:00:00Z',
    updated_at: '2026-01-01T00:00:00Z',
    ...extra,
  }
}

const PAGE = {
  items: [job(1, 'pending'), job(2, 'sending'), job(3, 'done'), job(4, 'failed')],
  total: 4,
  page: 1,
  page_size: 20,
  counts: { pending: 1, sending: 1, done: 1, failed: 1 },
}

describe('ForwardQueueView (IMG-08)', () => {
  beforeEach(() => {
    vi.mocked(imagingApi.listForwardJobs).mockResolvedValue(PAGE as never)
    vi.mocked(imagingApi.listNodes).mockResolvedValue([{ id: 7, aet: 'AI_NODE', port: 104 }] as never)
  })
  afterEach(() => {
    document.body.innerHTML = ''
    vi.clearAllMocks()
    vi.useRealTimers()
  })

  it('shows each state as a Chinese tag with attempts and the last error; retries a failed job', async () => {
    await mountAs(ForwardQueueView, ['dicom.forward.read', 'dicom.forward.manage'])
    expect(visible('forward-job-state').map((e) => e.textContent!.trim())).toEqual(['待发送', '发送中', '已完成', '失败'])
    expect(visible('forward-job-error')[3]!.textContent).toBe('发送失败：连接被拒绝')
    expect(visible('forward-state-failed')[0]!.textContent).toContain('失败（1）')
    expect(visible('forward-retry')).toHaveLength(1) // only the failed job
    vi.mocked(imagingApi.retryForwardJob).mockResolvedValue(job(4, 'pending') as never)
    await click(visible('forward-retry')[0])
    expect(imagingApi.retryForwardJob).toHaveBeenCalledWith(4)
    expect(imagingApi.listForwardJobs).toHaveBeenCalledTimes(2)
  })

  it('filters by state and refreshes itself until auto refresh is switched off', async () => {
    vi.useFakeTimers()
    await mountAs(ForwardQueueView, ['dicom.forward.read'])
    expect(visible('forward-retry')).toHaveLength(0) // no manage permission
    await click(visible('forward-state-failed')[0]!.querySelector('input') ?? visible('forward-state-failed')[0])
    expect(imagingApi.listForwardJobs).toHaveBeenLastCalledWith(expect.objectContaining({ state: 'failed', page: 1 }))
    const calls = vi.mocked(imagingApi.listForwardJobs).mock.calls.length
    vi.advanceTimersByTime(10_000)
    await flushPromises()
    expect(vi.mocked(imagingApi.listForwardJobs).mock.calls.length).toBe(calls + 1)
    await click(visible('forward-auto')[0])
    vi.advanceTimersByTime(30_000)
    await flushPromises()
    expect(vi.mocked(imagingApi.listForwardJobs).mock.calls.length).toBe(calls + 1)
  })
})
