import { afterEach, describe, expect, it, vi } from 'vitest'
import * as imagingApi from '@/api/imaging'
import UnmatchedView from '../UnmatchedView.vue'
import { M01, mountAs, visible } from './helpers'

vi.mock('@/api/imaging', () => ({ listUnmatched: vi.fn() }))

describe('UnmatchedView (IMG-06)', () => {
  afterEach(() => {
    document.body.innerHTML = ''
    vi.clearAllMocks()
  })

  it('lists unmatched studies with the reason', async () => {
    vi.mocked(imagingApi.listUnmatched).mockResolvedValue({
      items: [
        {
          id: 1,
          reason: 'no_exam',
          reason_name: '无对应检查申请',
          description: '检查号 ACC-9 无对应检查',
          created_at: '2026-01-02T00:00:00Z',
          resolved_at: null,
          institution: M01,
          study: { patient_name: '王^五', patient_id: 'P-9', accession_number: 'ACC-9', modalities: ['DX'] },
        },
      ],
      total: 1,
      page: 1,
      page_size: 20,
    } as never)
    const w = await mountAs(UnmatchedView, ['dicom.unmatched.read'])
    expect(imagingApi.listUnmatched).toHaveBeenCalledWith(expect.objectContaining({ status: 'open' }))
    expect(w.text()).toContain('王^五')
    expect(w.text()).toContain('ACC-9')
    expect(visible('unmatched-reason')[0]!.textContent).toBe('无对应检查申请')
  })
})
