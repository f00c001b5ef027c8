// REQ: RPT-05, UX R13 — the report editor's 图像 card: the key images of the task's case with thumbnails, note and
// 打印; a change is saved with the version read; a click opens the viewer at the image in the viewer window.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { flushPromises, mount, type VueWrapper } from '@vue/test-utils'
import ElementPlus from 'element-plus'
import { createPinia } from 'pinia'
import * as api from '@/api/viewer'
import type { CaseStudyKeyImages } from '@/api/viewer'
import { createAppI18n } from '@/i18n'
import ImagesCard from '../ImagesCard.vue'

vi.mock('@/api/viewer', async (orig) => ({
  ...(await orig<typeof import('@/api/viewer')>()),
  getCaseKeyImages: vi.fn(),
  putKeyImages: vi.fn(),
}))

const STUDY: CaseStudyKeyImages = {
  study_uid: '1.2.3',
  institution: 'M01',
  study_date: '20261201',
  study_description: '胸部平扫',
  modalities: 'CT',
  of_case: true,
  version: 4,
  items: [
    { sop_uid: '1.2.3.4.5', series_uid: '1.2.3.4', frame: 1, note: '右肺结节', print: true, author: { id: 1, name: '张医生' } },
    { sop_uid: '1.2.3.4.6', series_uid: '1.2.3.4', frame: 2, note: '', print: false },
  ],
}
const EMPTY_PRIOR: CaseStudyKeyImages = { ...STUDY, study_uid: '9.9', of_case: false, version: 0, items: [] }

let wrapper: VueWrapper | null = null

async function mountCard(props: Record<string, unknown>) {
  wrapper = mount(ImagesCard, {
    props: { caseId: 5, ...props },
    global: { plugins: [createAppI18n('zh-CN'), ElementPlus, createPinia()] },
    attachTo: document.body,
  })
  await flushPromises()
  return wrapper
}

beforeEach(() => {
  vi.mocked(api.getCaseKeyImages).mockReset().mockResolvedValue([structuredClone(STUDY), structuredClone(EMPTY_PRIOR)])
  vi.mocked(api.putKeyImages)
    .mockReset()
    .mockImplementation(async (uid, version, items) => ({
      study_uid: uid,
      institution: 'M01',
      version: version + 1,
      items,
      can_edit: true,
      updated_by: null,
      updated_at: null,
      series_instance_uid: null,
      sop_instance_uid: null,
      stored: true,
    }))
})

afterEach(() => {
  wrapper?.unmount()
  wrapper = null
})

describe('ImagesCard', () => {
  it('test_rpt05_lists_key_images_with_thumbnails_notes_and_print', async () => {
    const w = await mountCard({ editable: true })
    expect(api.getCaseKeyImages).toHaveBeenCalledWith(5)
    expect(w.findAll('[data-testid="images-card-study"]')).toHaveLength(1) // the prior without key images is left out
    const items = w.findAll('[data-testid="images-card-item"]')
    expect(items).toHaveLength(2)
    const src = items[0].find('img').attributes('src')
    expect(src).toContain('/dicomweb/studies/1.2.3/series/1.2.3.4/instances/1.2.3.4.5/frames/1/rendered')
    expect(src).toContain('institution=M01')
    expect(w.text()).toContain('本申请检查')
    expect(w.text()).toContain('第 2 张')
    const boxes = w.findAll('[data-testid="images-card-print"] input')
    expect((boxes[0].element as HTMLInputElement).checked).toBe(true)
    expect((boxes[1].element as HTMLInputElement).checked).toBe(false)
  })

  it('test_rpt05_print_flag_saved_with_the_version_read', async () => {
    const w = await mountCard({ editable: true })
    await w.findAll('[data-testid="images-card-print"] input')[1].setValue(true)
    await flushPromises()
    expect(api.putKeyImages).toHaveBeenCalledTimes(1)
    const [uid, version, items, institution] = vi.mocked(api.putKeyImages).mock.calls[0]
    expect([uid, version, institution]).toEqual(['1.2.3', 4, 'M01'])
    expect(items.map((k) => k.print)).toEqual([true, true])
  })

  it('test_rpt05_click_opens_the_viewer_at_the_image', async () => {
    const open = vi.spyOn(window, 'open').mockReturnValue(null)
    const w = await mountCard({ editable: false })
    expect(w.find('[data-testid="images-card-note"]').exists()).toBe(false) // read-only: the note as text
    expect(w.text()).toContain('右肺结节')
    expect(w.find('[data-testid="images-card-print"] input').attributes('disabled')).toBeDefined()
    await w.findAll('[data-testid="images-card-thumb"]')[1].trigger('click')
    expect(open).toHaveBeenCalledWith(
      '/viewer/studies/1.2.3?series=1.2.3.4&sop=1.2.3.4.6&frame=2&institution=M01',
      'telerad-viewer',
    )
    open.mockRestore()
  })

  it('test_ux_r13_compact_strip_shows_only_when_there_are_key_images', async () => {
    const w = await mountCard({ compact: true })
    expect(w.findAll('[data-testid="key-image-strip-item"]')).toHaveLength(2)
    vi.mocked(api.getCaseKeyImages).mockResolvedValue([structuredClone(EMPTY_PRIOR)])
    window.dispatchEvent(new Event('focus'))
    await flushPromises()
    expect(w.findAll('[data-testid="key-image-strip-item"]')).toHaveLength(0)
    expect((w.find('[data-testid="key-image-strip"]').element as HTMLElement).style.display).toBe('none')
  })
})
