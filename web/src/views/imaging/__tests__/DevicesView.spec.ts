import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import * as imagingApi from '@/api/imaging'
import * as institutionsApi from '@/api/institutions'
import { ApiError } from '@/api/http'
import DevicesView from '../DevicesView.vue'
import { M01, click, mountAs, type, visible } from './helpers'

vi.mock('@/api/imaging', () => ({
  listNodes: vi.fn(),
  createNode: vi.fn(),
  updateNode: vi.fn(),
  echoNode: vi.fn(),
}))
vi.mock('@/api/institutions', () => ({ listInstitutions: vi.fn() }))

const NODE = {
  id: 7,
  aet: 'CT01',
  host: '10.1.2.3',
  port: 104,
  institution: M01,
  allow: ['echo', 'store'],
  tls_required: false,
  cert_fingerprint: null,
  enabled: true,
  description: '一号 CT',
  created_at: '2026-01-01T00:00:00Z',
  updated_at: '2026-01-01T00:00:00Z',
}
const ADMIN = ['dicom.node.read', 'dicom.node.manage', 'dicom.scu']

describe('DevicesView (IMG-02)', () => {
  beforeEach(() => {
    vi.mocked(imagingApi.listNodes).mockResolvedValue([NODE] as never)
    vi.mocked(institutionsApi.listInstitutions).mockResolvedValue([{ ...M01, departments: [] }] as never)
  })
  afterEach(() => {
    document.body.innerHTML = ''
    vi.clearAllMocks()
  })

  it('lists devices with their institution and allowed operations', async () => {
    const w = await mountAs(DevicesView, ADMIN)
    expect(w.text()).toContain('CT01')
    expect(w.text()).toContain('10.1.2.3:104')
    expect(w.text()).toContain('第一成员医院')
    expect(w.text()).toContain('连通测试')
    expect(w.text()).toContain('发送影像')
  })

  it('registers a device and shows the backend Chinese error', async () => {
    const w = await mountAs(DevicesView, ADMIN)
    await click(visible('device-new')[0])
    await type('device-aet', 'MR01')
    await type('device-host', '10.1.2.3')
    vi.mocked(imagingApi.createNode).mockRejectedValueOnce(
      new ApiError(400, 'node_exists', '设备 MR01@10.1.2.3 已登记', { fields: { aet: ['同一主机上的 AE 名称已存在'] } }),
    )
    await click(visible('device-save')[0])
    expect(imagingApi.createNode).toHaveBeenCalledWith(
      expect.objectContaining({ aet: 'MR01', host: '10.1.2.3', institution_id: 2, allow: ['echo', 'store'] }),
    )
    expect(document.body.textContent).toContain('设备 MR01@10.1.2.3 已登记')
    // the field error lands on the AE form item (Element Plus shows it under the field)
    expect(document.body.querySelectorAll('.el-form-item.is-error')).toHaveLength(1)
    vi.mocked(imagingApi.createNode).mockResolvedValueOnce({ ...NODE, id: 8, aet: 'MR01' } as never)
    await click(visible('device-save')[0])
    expect(imagingApi.listNodes).toHaveBeenCalledTimes(2)
    w.unmount()
  })

  it('disables a device and runs the echo test with its result', async () => {
    await mountAs(DevicesView, ADMIN)
    vi.mocked(imagingApi.updateNode).mockResolvedValue({ ...NODE, enabled: false } as never)
    await click(visible('device-toggle')[0])
    expect(imagingApi.updateNode).toHaveBeenCalledWith(7, { enabled: false })
    vi.mocked(imagingApi.echoNode).mockResolvedValue({ ok: true, status: 0, message: '连通测试成功', elapsed_ms: 12 })
    await click(visible('device-echo')[0])
    expect(imagingApi.echoNode).toHaveBeenCalledWith(7)
    expect(visible('device-echo-result')[0]!.textContent).toContain('连通测试成功（12 ms）')
  })

  it('read-only users see no management buttons', async () => {
    await mountAs(DevicesView, ['dicom.node.read'])
    expect(visible('device-new')).toHaveLength(0)
    expect(visible('device-edit')).toHaveLength(0)
    expect(visible('device-echo')).toHaveLength(0)
  })
})
