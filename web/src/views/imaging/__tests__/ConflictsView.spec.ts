import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import * as imagingApi from '@/api/imaging'
import ConflictsView from '../ConflictsView.vue'
import { M01, click, mountAs, type, visible } from './helpers'

vi.mock('@/api/imaging', () => ({ listConflicts: vi.fn(), resolveConflict: vi.fn() }))

const OPEN = {
  id: 3,
  status: 'open',
  institution: M01,
  sop_instance_uid: '1.2.3.4',
  sop_class_uid: '1.2.840.10008.5.1.4.1.1.2',
  size: 200,
  sha256: 'b'.repeat(64),
  calling_aet: 'CT01',
  received_at: '2026-01-02T00:00:00Z',
  instance_id: 9,
  original_size: 100,
  original_sha256: 'a'.repeat(64),
  original_received_at: '2026-01-01T00:00:00Z',
  study_id: 5,
  study_instance_uid: '1.2.3',
  patient_name: '李^四',
  resolved_by: null,
  resolved_at: null,
  note: null,
}

describe('ConflictsView (DSEC-06)', () => {
  beforeEach(() => {
    vi.mocked(imagingApi.listConflicts).mockResolvedValue({ items: [OPEN], total: 1, page: 1, page_size: 20 } as never)
  })
  afterEach(() => {
    document.body.innerHTML = ''
    vi.clearAllMocks()
  })

  it('lists open conflicts and marks one resolved with a note', async () => {
    const w = await mountAs(ConflictsView, ['dicom.conflict.manage'])
    expect(imagingApi.listConflicts).toHaveBeenCalledWith(expect.objectContaining({ status: 'open' }))
    expect(w.text()).toContain('1.2.3.4')
    expect(w.text()).toContain('100 → 200')
    await click(visible('conflict-resolve')[0])
    await click(visible('resolve-confirm')[0])
    expect(imagingApi.resolveConflict).not.toHaveBeenCalled()
    expect(document.body.querySelectorAll('.el-form-item.is-error')).toHaveLength(1)
    vi.mocked(imagingApi.resolveConflict).mockResolvedValue({ ...OPEN, status: 'resolved' } as never)
    await type('resolve-note', '设备重发，保留原影像')
    await click(visible('resolve-confirm')[0])
    expect(imagingApi.resolveConflict).toHaveBeenCalledWith(3, '设备重发，保留原影像')
    expect(imagingApi.listConflicts).toHaveBeenCalledTimes(2)
  })

  it('shows who resolved a conflict and the note', async () => {
    vi.mocked(imagingApi.listConflicts).mockResolvedValue({
      items: [{ ...OPEN, status: 'resolved', resolved_by: 'sysadm', resolved_at: '2026-01-03T02:00:00Z', note: '已核对' }],
      total: 1,
      page: 1,
      page_size: 20,
    } as never)
    await mountAs(ConflictsView, ['dicom.conflict.manage'])
    const state = visible('conflict-state')[0]!.textContent!
    expect(state).toContain('sysadm 于 2026-01-03 10:00 处理')
    expect(state).toContain('已核对')
    expect(visible('conflict-resolve')).toHaveLength(0)
  })
})
