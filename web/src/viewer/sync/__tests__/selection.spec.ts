// REQ: RPT-12, REC-11/12, RPT-05 (UX R13, R18, R23) — selections in step between the report window and the viewer
// window: a series or key image picked in the report's 图像 card is shown in the viewer window (also when it comes
// while that window is still opening the study); a key image marked in the viewer window reaches the report's card,
// a change there reloads the viewer's list; the next exam named by the report window becomes the viewer's list.
import { afterEach, describe, expect, it, vi } from 'vitest'

vi.mock('@/api/viewer', () => ({
  getKeyImages: vi.fn(async () => ({ version: 2, can_edit: true, items: [] })),
  putKeyImages: vi.fn(async (_s: string, v: number, items: unknown[]) => ({ version: v + 1, items })),
}))
vi.mock('@/viewer/persist/navigate', () => ({ showImage: vi.fn(async () => true) }))

import * as api from '@/api/viewer'
import * as navigate from '@/viewer/persist/navigate'
import { KeyImageSession } from '@/viewer/persist/keyImages'
import { clearReadingList, nextStudy } from '@/viewer/readingList'
import { SyncEndpoint, type ChannelLike } from '../protocol'
import {
  announceKeyImages,
  announceNext,
  announceStudy,
  onShowRequest,
  onViewerMessage,
  reportEndpoint,
  resetReportLink,
  showInViewer,
  viewerLinked,
} from '../reportLink'
import { linkViewerWindow, type ShownViewer } from '../viewerLink'

/** The report endpoint's channel and a viewer endpoint on an in-memory bus (as in protocol.spec.ts). */
function pairUp() {
  const members = new Set<ChannelLike>()
  const make = (): ChannelLike => {
    const ch: ChannelLike = {
      onmessage: null,
      postMessage(data) {
        for (const m of members) if (m !== ch) m.onmessage?.({ data: structuredClone(data) } as MessageEvent)
      },
      close() {
        members.delete(ch)
      },
    }
    members.add(ch)
    return ch
  }
  const report = reportEndpoint(1)
  // the module's endpoint posts through a real BroadcastChannel: route its posts onto the bus too
  const reportCh = make()
  const posted = vi.spyOn(report as unknown as { channel: ChannelLike }, 'channel', 'get')
  posted.mockReturnValue(reportCh)
  reportCh.onmessage = (ev) => report.receive(ev.data)
  const viewer = new SyncEndpoint({ userId: 1, pair: report.pair, role: 'viewer', channel: make() })
  return { report, viewer }
}

const STUDY = { studyUid: '1.2.840.7', institution: 'M01', caseId: 3 }
const tick = () => new Promise((r) => setTimeout(r, 0))

function fakeViewer(studyUid = STUDY.studyUid): ShownViewer & { controller: { assign: ReturnType<typeof vi.fn>; setActive: ReturnType<typeof vi.fn> } } {
  return {
    ctx: { studyUid } as ShownViewer['ctx'],
    controller: {
      state: { viewports: [{ seriesUid: '1.2.840.7.1' }, { seriesUid: '1.2.840.7.2' }], active: 0 },
      assign: vi.fn(async () => undefined),
      setActive: vi.fn(),
    },
  } as never
}

afterEach(() => {
  resetReportLink()
  clearReadingList()
  vi.clearAllMocks()
})

describe('rpt12 selections between the windows', () => {
  it('shows a series and a key image picked in the report window in the viewer window', async () => {
    const { viewer } = pairUp()
    let shown: ShownViewer | null = null
    const link = linkViewerWindow(viewer, () => STUDY, () => shown)
    announceStudy(1, STUDY)
    viewer.send('hello', { role: 'viewer' })
    expect(viewerLinked.value).toBe(true)

    // picked while the viewer window is still opening the study: kept until it is ready
    expect(showInViewer(1, { study: STUDY, seriesUid: '1.2.840.7.3' })).toBe(true)
    await tick()
    const v = fakeViewer()
    shown = v
    link.ready()
    await tick()
    expect(v.controller.assign).toHaveBeenCalledWith(0, '1.2.840.7.3')

    // a series already in a viewport: that viewport becomes active
    showInViewer(1, { study: STUDY, seriesUid: '1.2.840.7.2' })
    await tick()
    expect(v.controller.setActive).toHaveBeenCalledWith(1)

    // a key image: the stack moves to it
    showInViewer(1, { study: STUDY, seriesUid: '1.2.840.7.1', sopUid: '1.2.840.7.1.9', frame: 2 })
    await tick()
    await tick()
    expect(navigate.showImage).toHaveBeenCalledWith(v.ctx, { seriesUid: '1.2.840.7.1', sopUid: '1.2.840.7.1.9', frame: 2 })
    link.dispose()
  })

  it('without a viewer window: shown in this window\'s viewer when it has one, else not (the caller opens one)', () => {
    pairUp()
    expect(showInViewer(1, { study: STUDY, seriesUid: '1.2.840.7.3' })).toBe(false)
    const here = vi.fn(() => true)
    onShowRequest(here)
    expect(showInViewer(1, { study: STUDY, seriesUid: '1.2.840.7.3' })).toBe(true)
    expect(here).toHaveBeenCalledWith({ study: STUDY, seriesUid: '1.2.840.7.3' })
  })

  it('a key image marked in the viewer window reaches the report; a change in the report reloads the viewer', async () => {
    const { viewer } = pairUp()
    const link = linkViewerWindow(viewer, () => STUDY, () => null)
    const inReport = vi.fn()
    onViewerMessage('key-images', inReport)
    const session = new KeyImageSession(STUDY.studyUid, 'M01')
    await session.load()
    const r = await session.toggle({ studyUid: STUDY.studyUid, seriesUid: '1.2.840.7.1', sopUid: '1.2.840.7.1.4', frame: 1, imageId: '' })
    expect(r.ok).toBe(true)
    expect(inReport).toHaveBeenCalledWith({ studyUid: STUDY.studyUid, sopUids: ['1.2.840.7.1.4'] }, expect.anything())

    vi.mocked(api.getKeyImages).mockClear()
    announceKeyImages(1, STUDY.studyUid, ['1.2.840.7.1.4'])
    await tick()
    expect(api.getKeyImages).toHaveBeenCalledWith(STUDY.studyUid, 'M01')
    session.close()
    link.dispose()
  })

  it('the next exam named by the report window becomes the viewer window\'s reading list', async () => {
    const { viewer } = pairUp()
    const link = linkViewerWindow(viewer, () => STUDY, () => null)
    viewer.send('hello', { role: 'viewer' })
    const NEXT = { studyUid: '1.2.840.8', institution: 'M01', caseId: 4 }
    announceNext(1, NEXT)
    expect(await nextStudy(STUDY)).toEqual(NEXT)
    link.dispose()
  })
})
