// REQ: RPT-12, REC-11/12 (UX R23) — the report window ⇄ viewer window channel: typed, versioned, paired messages;
// foreign, malformed, own and old messages are ignored.
import { describe, expect, it, vi } from 'vitest'
import { channelName, parseMessage, PROTOCOL, SyncEndpoint, VERSION, type ChannelLike } from '../protocol'
import { features, placement, sameRect, type ScreenDetailsLike } from '../viewerWindow'

/** An in-memory BroadcastChannel: every other member of the same bus receives what one posts (a structured copy). */
function bus() {
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
  return { make, members }
}

const STUDY = { studyUid: '1.2.840.1', institution: 'M01', caseId: 3, taskId: 9, label: 'RC1 · 张三 · CT 胸部' }

describe('rpt12 sync protocol', () => {
  it('carries a study from the report window to its viewer window, and images back', () => {
    const b = bus()
    const report = new SyncEndpoint({ userId: 1, pair: 'p1', role: 'report', channel: b.make() })
    const viewer = new SyncEndpoint({ userId: 1, pair: 'p1', role: 'viewer', channel: b.make() })
    const studies = vi.fn()
    const images = vi.fn()
    viewer.on('study', studies)
    report.on('image', images)
    const sent = report.send('study', STUDY)!
    expect(sent).toMatchObject({ proto: PROTOCOL, v: VERSION, pair: 'p1', from: report.id, seq: 1, type: 'study' })
    expect(studies).toHaveBeenCalledWith(STUDY, expect.objectContaining({ from: report.id, seq: 1 }))
    viewer.send('image', { studyUid: '1.2.840.1', seriesUid: '1.2.840.1.1', sopUid: '1.2.840.1.1.5', frame: 2 })
    expect(images.mock.calls[0]![0]).toEqual({ studyUid: '1.2.840.1', seriesUid: '1.2.840.1.1', sopUid: '1.2.840.1.1.5', frame: 2 })
    viewer.send('key-images', { studyUid: '1.2.840.1', sopUids: ['1.2.3', '1.2.4'] })
    const keys = vi.fn()
    report.on('key-images', keys)
    viewer.send('key-images', { studyUid: '1.2.840.1', sopUids: ['1.2.3'] })
    expect(keys).toHaveBeenCalledWith({ studyUid: '1.2.840.1', sopUids: ['1.2.3'] }, expect.anything())
  })

  it("ignores another pair's messages, its own, and old or replayed ones", () => {
    const b = bus()
    const report = new SyncEndpoint({ userId: 1, pair: 'p1', role: 'report', channel: b.make() })
    const viewer = new SyncEndpoint({ userId: 1, pair: 'p1', role: 'viewer', channel: b.make() })
    const stranger = new SyncEndpoint({ userId: 1, pair: 'p2', role: 'report', channel: b.make() })
    const got = vi.fn()
    viewer.on('study', got)
    report.on('study', got) // its own message never comes back to it
    stranger.send('study', { studyUid: '9.9' })
    expect(got).not.toHaveBeenCalled()
    const first = report.send('study', STUDY)!
    const second = report.send('study', { ...STUDY, studyUid: '1.2.840.2' })!
    expect(got.mock.calls.map((c) => c[0].studyUid)).toEqual(['1.2.840.1', '1.2.840.2'])
    expect(viewer.receive(first)).toBe(false) // replayed: older than the last from that sender
    expect(viewer.receive(second)).toBe(false)
    expect(viewer.receive({ ...second, seq: 3 })).toBe(true)
    expect(got).toHaveBeenCalledTimes(3)
  })

  it('rejects foreign protocols, other versions and malformed payloads', () => {
    const ok = { proto: PROTOCOL, v: VERSION, pair: 'p', from: 'a', seq: 1, ts: 1, type: 'study', payload: { studyUid: '1.2.3' } }
    expect(parseMessage(ok)).not.toBeNull()
    for (const bad of [
      null,
      'study',
      { ...ok, proto: 'other' },
      { ...ok, v: 2 },
      { ...ok, v: '1' },
      { ...ok, pair: '' },
      { ...ok, seq: -1 },
      { ...ok, seq: 1.5 },
      { ...ok, type: 'navigate' },
      { ...ok, payload: { studyUid: '../../etc' } },
      { ...ok, payload: { studyUid: '1.2.3', caseId: 'x' } },
      { ...ok, type: 'image', payload: { studyUid: '1.2', seriesUid: '1.3', sopUid: '1.4', frame: 0 } },
      { ...ok, type: 'key-images', payload: { studyUid: '1.2', sopUids: ['1.3', 'x'] } },
      { ...ok, type: 'hello', payload: { role: 'admin' } },
    ]) {
      expect(parseMessage(bad), JSON.stringify(bad)).toBeNull()
    }
    const b = bus()
    const viewer = new SyncEndpoint({ userId: 1, pair: 'p', role: 'viewer', channel: b.make() })
    const got = vi.fn()
    viewer.on('study', got)
    expect(viewer.receive({ ...ok, v: 2 })).toBe(false)
    expect(got).not.toHaveBeenCalled()
  })

  it('says bye and stops listening when closed; one channel per user', () => {
    const b = bus()
    const report = new SyncEndpoint({ userId: 1, pair: 'p1', role: 'report', channel: b.make() })
    const viewer = new SyncEndpoint({ userId: 1, pair: 'p1', role: 'viewer', channel: b.make() })
    const bye = vi.fn()
    report.on('bye', bye)
    viewer.close()
    expect(bye).toHaveBeenCalledWith({ role: 'viewer' }, expect.anything())
    expect(b.members.size).toBe(1)
    expect(viewer.send('hello', { role: 'viewer' })).toBeNull()
    expect(channelName(7)).toBe(`${PROTOCOL}.v${VERSION}.u7`)
    expect(channelName(7)).not.toBe(channelName(8))
  })
})

describe('rpt12 viewer window placement', () => {
  const left = { availLeft: 0, availTop: 0, availWidth: 1920, availHeight: 1040, isPrimary: true }
  const right = { availLeft: 1920, availTop: 0, availWidth: 2560, availHeight: 1400 }
  const two: ScreenDetailsLike = { screens: [left, right], currentScreen: left }

  it('goes to the second screen, or back where it was remembered', () => {
    expect(placement(two, null)).toEqual({ x: 1920, y: 0, width: 2560, height: 1400, screen: 1 })
    const saved = { x: 100, y: 50, width: 800, height: 600 }
    expect(placement(two, saved)).toEqual({ ...saved, screen: 0 })
    const gone = { x: 5000, y: 0, width: 800, height: 600 } // that screen is unplugged
    expect(placement(two, gone)!.screen).toBe(1)
    expect(placement({ screens: [left], currentScreen: left }, null)).toBeNull()
  })

  it('builds window.open features and compares rectangles', () => {
    expect(features(null)).toBe('popup=yes,width=1280,height=900')
    expect(features({ x: 10.4, y: -20, width: 50, height: 700 })).toBe('popup=yes,width=100,height=700,left=10,top=-20')
    expect(sameRect({ x: 1, y: 2, width: 300, height: 400 }, { x: 1, y: 2, width: 300, height: 400, screen: 1 })).toBe(true)
    expect(sameRect(undefined, { x: 1, y: 2, width: 300, height: 400 })).toBe(false)
  })
})

describe('rpt12 payloads from Vue state', () => {
  it('sends a reactive object as a plain copy (postMessage cannot clone a proxy)', async () => {
    const { reactive } = await import('vue')
    const posted: unknown[] = []
    const ch: ChannelLike = { onmessage: null, postMessage: (d) => void posted.push(structuredClone(d)), close() {} }
    const ep = new SyncEndpoint({ userId: 1, pair: 'p', role: 'report', channel: ch })
    const study = reactive({ studyUid: '1.2.3', institution: 'M01' })
    expect(() => ep.send('study', study)).not.toThrow()
    expect((posted[0] as { payload: unknown }).payload).toEqual({ studyUid: '1.2.3', institution: 'M01' })
  })
})
