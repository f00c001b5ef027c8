// REQ: RPT-03 (issue 17; UX R5 "另存为模板 pre-fills the current text"): the report becomes a private template.
import { afterEach, describe, expect, it, vi } from 'vitest'
import { flushPromises, mount } from '@vue/test-utils'
import ElementPlus from 'element-plus'
import * as api from '@/api/templates'
import type { Template } from '@/api/templates'
import { ApiError } from '@/api/http'
import { createAppI18n } from '@/i18n'
import SaveAsTemplateDialog from '../SaveAsTemplateDialog.vue'

vi.mock('@/api/templates', async (orig) => ({
  ...(await orig<typeof import('@/api/templates')>()),
  createTemplate: vi.fn(),
}))

const REPORT = { findings: '右肺上叶见约8mm结节。', impression: '1. 右肺上叶结节。', recommendation: '', positive: '阳性' as const }

async function mountDialog(modality = 'ct', bodyPart = '胸部') {
  const w = mount(SaveAsTemplateDialog, {
    props: { modelValue: true, report: REPORT, modality, bodyPart },
    global: { plugins: [createAppI18n('zh-CN'), ElementPlus] },
    attachTo: document.body,
  })
  await flushPromises()
  return w
}

const byTestId = (id: string) => document.body.querySelector<HTMLElement>(`[data-testid="${id}"]`)!

describe('SaveAsTemplateDialog', () => {
  afterEach(() => {
    document.body.innerHTML = ''
    vi.mocked(api.createTemplate).mockReset()
  })

  it('saves the report as a private single template, pre-filled from the task', async () => {
    vi.mocked(api.createTemplate).mockResolvedValue({} as Template)
    const w = await mountDialog()
    expect((byTestId('save-template-body-part') as HTMLInputElement).value).toBe('胸部')
    byTestId('save-template-submit').click()
    await flushPromises()
    expect(api.createTemplate).not.toHaveBeenCalled() // no name yet
    const name = byTestId('save-template-name') as HTMLInputElement
    name.value = '我的肺结节'
    name.dispatchEvent(new Event('input'))
    await flushPromises()
    byTestId('save-template-submit').click()
    await flushPromises()
    expect(api.createTemplate).toHaveBeenCalledWith({
      name: '我的肺结节',
      kind: 'single',
      scope: 'private',
      category: 'abnormal', // 阳性 report
      modality: 'CT',
      body_part: '胸部',
      sections: { exam_method: '', findings: REPORT.findings, impression: REPORT.impression, recommendation: '', positive: '阳性' },
    })
    expect(w.emitted('update:modelValue')![0]).toEqual([false])
    expect(w.emitted('saved')).toHaveLength(1)
  })

  it('shows the server refusal in the dialog and stays open', async () => {
    vi.mocked(api.createTemplate).mockRejectedValue(new ApiError(400, 'validation_error', '输入有误', { fields: { name: ['名称过长'] } }))
    const w = await mountDialog('XX')
    const name = byTestId('save-template-name') as HTMLInputElement
    name.value = '模板'
    name.dispatchEvent(new Event('input'))
    await flushPromises()
    byTestId('save-template-submit').click()
    await flushPromises()
    expect(vi.mocked(api.createTemplate).mock.calls[0][0].modality).toBe('OT') // an unknown modality is 其他
    expect(byTestId('save-as-template-dialog').textContent).toContain('输入有误')
    expect(w.emitted('update:modelValue')).toBeUndefined()
  })
})
