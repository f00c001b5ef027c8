import { describe, expect, it } from 'vitest'
import { flushPromises, mount } from '@vue/test-utils'
import { defineComponent, h, ref } from 'vue'
import ElementPlus from 'element-plus'
import { JsonForms } from '@jsonforms/vue'
import type { JsonSchema, UISchemaElement } from '@jsonforms/core'
import { createAppI18n } from '@/i18n'
import { createFormsAjv, elementRenderers, mapServerErrors, rejectReasonError, toInstancePath } from '..'
import type { ErrorObject } from '../validator'
import { l2Schema, l2Ui, tableSchema } from '../../../tests/unit/fixtures/forms'

function mountForm(schema: object, uischema: object | undefined, data: Record<string, unknown>, extra: ErrorObject[] = []) {
  const state = ref({ data, errors: [] as unknown[] })
  const mode = ref<'ValidateAndHide' | 'ValidateAndShow'>('ValidateAndShow')
  const Host = defineComponent({
    setup() {
      const ajv = createFormsAjv()
      return () =>
        h(JsonForms, {
          data: state.value.data,
          schema: schema as JsonSchema,
          uischema: uischema as UISchemaElement | undefined,
          renderers: elementRenderers,
          ajv,
          validationMode: mode.value,
          additionalErrors: extra,
          onChange: (e: { data: Record<string, unknown>; errors: unknown[] }) => {
            state.value = { data: e.data, errors: e.errors }
          },
        })
    },
  })
  const wrapper = mount(Host, { global: { plugins: [ElementPlus, createAppI18n('zh-CN')] }, attachTo: document.body })
  return { wrapper, state, mode }
}

describe('JSON Forms with the Element Plus renderers', () => {
  it('renders a report review form: textareas, radio from oneOf titles, hidden reason', async () => {
    const { wrapper } = mountForm(l2Schema, l2Ui, { findings: '两肺纹理清晰', impression: '未见异常', positive: '阴性' })
    await flushPromises()
    expect(wrapper.find('textarea[data-testid="form-input-findings"]').element).toBeTruthy()
    expect((wrapper.find('textarea[data-testid="form-input-findings"]').element as HTMLTextAreaElement).value).toBe(
      '两肺纹理清晰',
    )
    expect(wrapper.find('[data-testid="form-field-decision"]').text()).toContain('确认')
    expect(wrapper.find('[data-testid="form-field-decision"]').text()).toContain('驳回')
    expect(wrapper.find('[data-testid="form-option-positive-阳性"]').exists()).toBe(true)
    expect(wrapper.find('fieldset.jf-group legend').text()).toBe('报告')
    // The SHOW rule (evaluated by the CSP-safe validator) hides 驳回原因 until 驳回 is chosen.
    expect(wrapper.find('[data-testid="form-field-reject_reason"]').exists()).toBe(false)
    wrapper.unmount()
  })

  it('shows the required reason once 驳回 is chosen and clears it when typed', async () => {
    const { wrapper, state } = mountForm(l2Schema, l2Ui, { findings: 'a', impression: 'b', positive: '阴性' })
    await flushPromises()
    await wrapper.find('[data-testid="form-option-decision-reject"] input').setValue(true)
    await flushPromises()
    expect(state.value.data.decision).toBe('reject')
    const field = wrapper.find('[data-testid="form-field-reject_reason"]')
    expect(field.exists()).toBe(true)
    expect(wrapper.find('[data-testid="form-error-reject_reason"]').text()).toBe('此项为必填项')
    expect(state.value.errors.length).toBeGreaterThan(0)
    await wrapper.find('input[data-testid="form-input-reject_reason"]').setValue('描述与图像不符')
    await flushPromises()
    expect(wrapper.find('[data-testid="form-error-reject_reason"]').exists()).toBe(false)
    expect(state.value.errors).toEqual([])
    wrapper.unmount()
  })

  it('an emptied text field counts as missing', async () => {
    const { wrapper, state } = mountForm(l2Schema, l2Ui, { findings: 'a', impression: 'b', positive: '阴性', decision: 'approve' })
    await flushPromises()
    expect(state.value.errors).toEqual([])
    await wrapper.find('textarea[data-testid="form-input-impression"]').setValue('')
    await flushPromises()
    expect(state.value.data.impression).toBeUndefined()
    expect(wrapper.find('[data-testid="form-error-impression"]').text()).toBe('此项为必填项')
    wrapper.unmount()
  })

  it('shows server errors (additionalErrors) under the matching control', async () => {
    const mapped = mapServerErrors(l2Schema as JsonSchema, [{ path: 'impression', message: '诊断意见不能少于 2 个字' }])
    const { wrapper } = mountForm(l2Schema, l2Ui, { findings: 'a', impression: 'b', positive: '阴性', decision: 'approve' }, mapped.fieldErrors)
    await flushPromises()
    expect(wrapper.find('[data-testid="form-error-impression"]').text()).toBe('诊断意见不能少于 2 个字')
    wrapper.unmount()
  })

  it('edits an array as a table: add a row, fill cells, remove it', async () => {
    const { wrapper, state } = mountForm(tableSchema, undefined, { exams: [] })
    await flushPromises()
    expect(wrapper.find('[data-testid="form-array-exams"]').text()).toContain('暂无数据')
    await wrapper.find('[data-testid="form-array-add-exams"]').trigger('click')
    await flushPromises()
    expect((state.value.data.exams as unknown[]).length).toBe(1)
    expect(wrapper.find('[data-testid="form-array-exams"] thead').text()).toContain('检查部位')
    await wrapper.find('input[data-testid="form-input-exams.0.body_part"]').setValue('胸部')
    await flushPromises()
    expect((state.value.data.exams as Record<string, unknown>[])[0].body_part).toBe('胸部')
    // modality is required in the row: the cell shows the message.
    expect(wrapper.find('[data-testid="form-error-exams.0.modality"]').text()).toBe('此项为必填项')
    expect(wrapper.find('[data-testid="form-input-exams.0.exam_date"]').exists()).toBe(true)
    expect(wrapper.find('[data-testid="form-input-exams.0.urgent"]').exists()).toBe(true)
    expect(wrapper.find('[data-testid="form-input-exams.0.films"]').exists()).toBe(true)
    await wrapper.find('[data-testid="form-array-remove-exams"]').trigger('click')
    await flushPromises()
    expect(state.value.data.exams).toEqual([])
    expect(wrapper.find('[data-testid="form-error-exams"]').text()).toBe('至少 1 项')
    wrapper.unmount()
  })
})

describe('server error mapping and the reject guard', () => {
  it.each([
    ['findings', '/findings'],
    ['/findings', '/findings'],
    ['exams.0.body_part', '/exams/0/body_part'],
    ['exams[0].body_part', '/exams/0/body_part'],
    ['$.exams[0].body_part', '/exams/0/body_part'],
    ['#/properties/findings', '/findings'],
    ['', ''],
    ['$', ''],
  ])('%s → %s', (input, expected) => {
    expect(toInstancePath(input)).toBe(expected)
  })

  it('keeps errors of unknown fields for the general alert', () => {
    const res = mapServerErrors(l2Schema as JsonSchema, [
      { path: 'findings', message: '太短' },
      { path: '', message: '报告已被他人修改' },
      { path: 'nope', message: '未知' },
    ])
    expect(res.fieldErrors.map((e) => [e.instancePath, e.message])).toEqual([['/findings', '太短']])
    expect(res.general).toEqual(['报告已被他人修改', 'nope：未知'])
    expect(mapServerErrors(l2Schema as JsonSchema, undefined)).toEqual({ fieldErrors: [], general: [] })
  })

  it('requires a reason when rejecting', () => {
    const s = l2Schema as JsonSchema
    expect(rejectReasonError(s, { decision: 'approve' }, 'x')).toBeNull()
    expect(rejectReasonError(s, { decision: 'reject', reject_reason: '  ' }, '请填写')?.instancePath).toBe('/reject_reason')
    expect(rejectReasonError(s, { decision: 'reject', reject_reason: '图像不清' }, 'x')).toBeNull()
    expect(rejectReasonError({ type: 'object', properties: {} }, { decision: 'reject' }, 'x')).toBeNull()
  })
})
