import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import * as imagingApi from '@/api/imaging'
import StudiesView from '../StudiesView.vue'
import { M01, click, mountAs, type, visible } from './helpers'

vi.mock('@/api/imaging', () => ({
  listStudies: vi.fn(),
  getStudy: vi.fn(),
  getSr: vi.fn(),
  listNodes: vi.fn(),
  sendStudy: vi.fn(),
}))

const STUDY = {
  id: 5,
  study_instance_uid: '1.2.3',
  patient_id: 'P-A',
  patient_name: '张^三',
  patient_sex: 'M',
  patient_birth_date: '',
  study_date: '20260102',
  study_time: '',
  accession_number: 'ACC-A',
  study_description: '胸部CT',
  modalities: ['CT', 'SR'],
  institution: M01,
  series_count: 2,
  instance_count: 3,
  exam_id: null,
  created_at: '2026-01-02T00:00:00Z',
}
const DETAIL = {
  ...STUDY,
  referring_physician: '',
  source_aet: 'CT01',
  series: [
    {
      id: 1,
      series_instance_uid: '1.2.3.1',
      modality: 'SR',
      series_number: 9,
      body_part: '',
      series_description: '报告',
      instances: [
        {
          id: 11,
          sop_instance_uid: '1.2.3.1.1',
          sop_class_uid: '1.2.840.10008.5.1.4.1.1.88.11',
          sop_class_name: 'Basic Text SR Storage',
          transfer_syntax_uid: '1.2.840.10008.1.2.1',
          instance_number: 1,
          size: 100,
          received_at: '2026-01-02T00:00:00Z',
          is_sr: true,
        },
      ],
    },
  ],
}

describe('StudiesView', () => {
  beforeEach(() => {
    vi.mocked(imagingApi.listStudies).mockResolvedValue({ items: [STUDY], total: 1, page: 1, page_size: 20 } as never)
    vi.mocked(imagingApi.getStudy).mockResolvedValue(DETAIL as never)
  })
  afterEach(() => {
    document.body.innerHTML = ''
    vi.clearAllMocks()
  })

  it('lists studies and searches by keyword', async () => {
    const w = await mountAs(StudiesView, ['image.read'])
    expect(w.text()).toContain('张^三')
    expect(w.text()).toContain('2026-01-02')
    expect(w.text()).toContain('CT/SR')
    expect(w.text()).toContain('2 / 3')
    await type('studies-q', ' ACC-A ')
    await click(visible('studies-search')[0])
    expect(imagingApi.listStudies).toHaveBeenLastCalledWith(expect.objectContaining({ q: 'ACC-A', page: 1 }))
  })

  it('opens the detail and shows the SR text (DCM-06)', async () => {
    await mountAs(StudiesView, ['image.read'])
    await click(visible('study-open')[0])
    expect(imagingApi.getStudy).toHaveBeenCalledWith(5)
    expect(document.body.textContent).toContain('序列 9（SR，1 幅）')
    expect(visible('study-send')).toHaveLength(0) // no dicom.scu
    vi.mocked(imagingApi.getSr).mockResolvedValue({
      instance_id: 11,
      sop_class_uid: '1.2.840.10008.5.1.4.1.1.88.11',
      title: '影像诊断报告',
      completion_flag: 'COMPLETE',
      verification_flag: 'UNVERIFIED',
      content: [],
      text: '影像诊断报告\n  诊断意见：右肺结节',
    })
    await click(visible('instance-sr')[0])
    expect(imagingApi.getSr).toHaveBeenCalledWith(11)
    expect(visible('sr-text')[0]!.textContent).toContain('诊断意见：右肺结节')
  })

  it('sends a study to a node when the user holds dicom.scu (DCM-04)', async () => {
    await mountAs(StudiesView, ['image.read', 'dicom.scu'])
    await click(visible('study-open')[0])
    vi.mocked(imagingApi.listNodes).mockResolvedValue([
      { id: 7, aet: 'PACS', host: 'h', port: 104, enabled: true },
      { id: 8, aet: 'NOPORT', host: 'h', port: null, enabled: true },
    ] as never)
    await click(visible('study-send')[0])
    expect(imagingApi.listNodes).toHaveBeenCalledWith({ enabled: 'true' })
    expect(visible('send-confirm')[0]!.hasAttribute('disabled')).toBe(true)
  })
})
