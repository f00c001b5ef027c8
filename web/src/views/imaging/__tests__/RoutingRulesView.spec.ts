import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { flushPromises } from '@vue/test-utils'
import { ApiError } from '@/api/http'
import * as imagingApi from '@/api/imaging'
import * as institutionsApi from '@/api/institutions'
import RoutingRulesView from '../RoutingRulesView.vue'
import { M01, click, mountAs, type, visible } from './helpers'

vi.mock('@/api/imaging', () => ({
  listRules: vi.fn(),
  createRule: vi.fn(),
  updateRule: vi.fn(),
  deleteRule: vi.fn(),
  listNodes: vi.fn(),
  listStorageTargets: vi.fn(),
  listCompressionPolicies: vi.fn(),
}))
vi.mock('@/api/institutions', () => ({ listInstitutions: vi.fn() }))

const CT = { id: 4, aet: 'CT_M01', host: '10.0.0.4', port: null, institution: M01, allow: ['store'], enabled: true }
const AI = { id: 7, aet: 'AI_NODE', host: '10.0.0.7', port: 104, institution: M01, allow: ['echo'], enabled: true }
const RULE = {
  id: 1,
  name: 'CT 胸部 → AI',
  priority: 50,
  enabled: true,
  stop: false,
  node_ids: [4],
  institution_ids: [],
  modalities: ['CT'],
  body_parts: ['CHEST'],
  sop_classes: [],
  study_description_contains: '',
  series_description_contains: '',
  storage_target_id: 2,
  storage_compression: '',
  forward_node_ids: [7],
  forward_compression: 'j2k',
  created_at: '2026-01-01T00:00:00Z',
  updated_at: '2026-01-01T00:00:00Z',
}

describe('RoutingRulesView (DCM-02, IMG-03, IMG-07)', () => {
  beforeEach(() => {
    vi.mocked(imagingApi.listRules).mockResolvedValue([RULE] as never)
    vi.mocked(imagingApi.listNodes).mockResolvedValue([CT, AI] as never)
    vi.mocked(imagingApi.listStorageTargets).mockResolvedValue([
      { id: 2, code: 'archive', name: '归档存储', enabled: true },
    ] as never)
    vi.mocked(imagingApi.listCompressionPolicies).mockResolvedValue([
      { code: 'j2k', name: 'JPEG 2000 无损', lossy: false },
    ] as never)
    vi.mocked(institutionsApi.listInstitutions).mockResolvedValue([M01] as never)
  })
  afterEach(() => {
    document.body.innerHTML = ''
    vi.clearAllMocks()
  })

  it('lists rules with their conditions and actions in Chinese', async () => {
    await mountAs(RoutingRulesView, ['dicom.routing.read', 'dicom.routing.manage'])
    await flushPromises()
    const conditions = visible('rule-conditions').map((e) => e.textContent!.trim())
    expect(conditions).toEqual(['发送设备：CT_M01', '设备类型：CT', '检查部位：CHEST'])
    const actions = visible('rule-actions').map((e) => e.textContent!.trim())
    expect(actions).toEqual(['存储目标：归档存储', '转发到节点：AI_NODE（JPEG 2000 无损）'])
    expect(visible('rule-state')[0]!.textContent).toContain('启用')
  })

  it('creates a rule, shows the server field error, and toggles one', async () => {
    await mountAs(RoutingRulesView, ['dicom.routing.read', 'dicom.routing.manage'])
    await click(visible('rule-new')[0])
    await click(visible('rule-save')[0])
    expect(imagingApi.createRule).not.toHaveBeenCalled()
    expect(document.body.querySelectorAll('.el-form-item.is-error')).toHaveLength(1)

    vi.mocked(imagingApi.createRule).mockRejectedValueOnce(
      new ApiError(400, 'validation_error', '提交的信息有误', {
        fields: { 'modalities.0': ['设备类型须为 1–16 位字母或数字'] },
      }),
    )
    await type('rule-name', 'MR → PACS')
    await click(visible('rule-save')[0])
    expect(imagingApi.createRule).toHaveBeenCalledWith(expect.objectContaining({ name: 'MR → PACS', priority: 100 }))
    expect(visible('rule-error')[0]!.textContent).toContain('提交的信息有误')
    const invalid = document.body.querySelectorAll('.el-form-item.is-error')
    expect(invalid).toHaveLength(1)
    expect(invalid[0]!.textContent).toContain('设备类型')

    vi.mocked(imagingApi.updateRule).mockResolvedValue({ ...RULE, enabled: false } as never)
    await click(visible('rule-toggle')[0])
    expect(imagingApi.updateRule).toHaveBeenCalledWith(1, { enabled: false })
    expect(imagingApi.listRules).toHaveBeenCalledTimes(2)
  })

  it('edits a rule keeping its conditions', async () => {
    await mountAs(RoutingRulesView, ['dicom.routing.read', 'dicom.routing.manage'])
    await click(visible('rule-edit')[0])
    await type('rule-study-contains', '胸部')
    vi.mocked(imagingApi.updateRule).mockResolvedValue(RULE as never)
    await click(visible('rule-save')[0])
    expect(imagingApi.updateRule).toHaveBeenCalledWith(
      1,
      expect.objectContaining({
        name: 'CT 胸部 → AI',
        node_ids: [4],
        modalities: ['CT'],
        forward_node_ids: [7],
        forward_compression: 'j2k',
        study_description_contains: '胸部',
      }),
    )
  })

  it('is read-only without dicom.routing.manage', async () => {
    await mountAs(RoutingRulesView, ['dicom.routing.read'])
    expect(visible('rule-new')).toHaveLength(0)
    expect(visible('rule-edit')).toHaveLength(0)
  })
})
