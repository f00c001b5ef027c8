import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { ApiError } from '@/api/http'
import * as imagingApi from '@/api/imaging'
import StorageView from '../StorageView.vue'
import { click, mountAs, type, visible } from './helpers'

vi.mock('@/api/imaging', () => ({
  listStorageTargets: vi.fn(),
  createStorageTarget: vi.fn(),
  setDefaultStorageTarget: vi.fn(),
  listStorageTasks: vi.fn(),
  createStorageTask: vi.fn(),
}))

const LOCAL = {
  id: 1,
  code: 'local',
  name: '本地存储',
  kind: 'filesystem',
  root_path: '/var/lib/telerad/dicom',
  enabled: true,
  is_default: true,
  builtin: true,
  instance_count: 12,
  created_at: '2026-01-01T00:00:00Z',
}
const NAS = { ...LOCAL, id: 2, code: 'nas', name: 'NAS 归档', root_path: '/mnt/nas', is_default: false, builtin: false }
const TASK = {
  id: 9,
  kind: 'sync',
  source: { id: 1, code: 'local', name: '本地存储' },
  target: { id: 2, code: 'nas', name: 'NAS 归档' },
  filter: {},
  state: 'running',
  total: 12,
  done: 6,
  percent: 50,
  copied: 6,
  missing: 0,
  mismatched: 0,
  errors: 0,
  last_error: '',
  created_by: 'sysadm',
  created_at: '2026-01-01T00:00:00Z',
  started_at: '2026-01-01T00:00:01Z',
  finished_at: null,
}

describe('StorageView (IMG-09)', () => {
  beforeEach(() => {
    vi.mocked(imagingApi.listStorageTargets).mockResolvedValue([LOCAL, NAS] as never)
    vi.mocked(imagingApi.listStorageTasks).mockResolvedValue([TASK] as never)
  })
  afterEach(() => {
    document.body.innerHTML = ''
    vi.clearAllMocks()
  })

  it('lists targets and tasks with their progress', async () => {
    await mountAs(StorageView, ['dicom.storage.read', 'dicom.storage.manage'])
    expect(document.body.textContent).toContain('/mnt/nas')
    expect(visible('target-default')).toHaveLength(1)
    expect(visible('task-state')[0]!.textContent).toContain('执行中')
    expect(visible('task-count')[0]!.textContent).toBe('6 / 12')
    expect(visible('task-progress')[0]!.getAttribute('aria-valuenow')).toBe('50')
    expect(visible('task-result')[0]!.textContent).toBe('复制 6，缺失 0，不一致 0，错误 0')
    vi.mocked(imagingApi.setDefaultStorageTarget).mockResolvedValue({ ...NAS, is_default: true } as never)
    await click(visible('target-set-default')[0])
    expect(imagingApi.setDefaultStorageTarget).toHaveBeenCalledWith(2)
  })

  it('registers a target and shows the server error on its field', async () => {
    await mountAs(StorageView, ['dicom.storage.read', 'dicom.storage.manage'])
    await click(visible('target-new')[0])
    await type('target-code', 'nas2')
    await type('target-root', 'relative/path')
    await click(visible('target-save')[0])
    expect(imagingApi.createStorageTarget).not.toHaveBeenCalled() // not absolute
    vi.mocked(imagingApi.createStorageTarget).mockRejectedValueOnce(
      new ApiError(400, 'target_exists', '存储目标 nas2 已存在', { fields: { code: ['存储目标 nas2 已存在'] } }),
    )
    await type('target-root', '/mnt/nas2')
    await click(visible('target-save')[0])
    expect(imagingApi.createStorageTarget).toHaveBeenCalledWith({
      code: 'nas2',
      name: '',
      root_path: '/mnt/nas2',
      is_default: false,
    })
    expect(visible('target-error')[0]!.textContent).toContain('存储目标 nas2 已存在')
  })

  it('creates a migrate task between two targets', async () => {
    await mountAs(StorageView, ['dicom.storage.read', 'dicom.storage.manage'])
    await click(visible('task-new')[0])
    await click(visible('task-save')[0])
    expect(imagingApi.createStorageTask).not.toHaveBeenCalled()
    expect(document.body.querySelectorAll('.el-form-item.is-error')).toHaveLength(2)
    await click(visible('task-kind-migrate')[0])
    expect(document.body.textContent).toContain('迁移：复制并校验后切换存储位置')
    await click(visible('task-source')[0])
    await click(document.body.querySelectorAll('.task-source-popper .el-select-dropdown__item')[0])
    await click(visible('task-target')[0])
    await click(document.body.querySelectorAll('.task-target-popper .el-select-dropdown__item')[1])
    await type('task-modality', 'ct')
    vi.mocked(imagingApi.createStorageTask).mockResolvedValue({ ...TASK, kind: 'migrate', state: 'pending' } as never)
    await click(visible('task-save')[0])
    expect(imagingApi.createStorageTask).toHaveBeenCalledWith({
      kind: 'migrate',
      source_id: 1,
      target_id: 2,
      filter: { modality: 'CT' },
    })
  })

  it('is read-only without dicom.storage.manage', async () => {
    await mountAs(StorageView, ['dicom.storage.read'])
    expect(visible('target-new')).toHaveLength(0)
    expect(visible('task-new')).toHaveLength(0)
    expect(visible('target-set-default')).toHaveLength(0)
  })
})
