/**
 * The report window ⇄ viewer window protocol (REQ: RPT-12, REC-11/12; UX R23): one BroadcastChannel per user,
 * messages typed and versioned, each pair of windows (a report window and the viewer window it opened) naming its
 * pairing id. A window ignores what is not for it: another protocol or major version, another user (another channel
 * name), another pair, its own messages, and anything older than the last message it took from that sender
 * (per-sender sequence numbers) — so a late or replayed message never moves the viewer back to an earlier exam.
 *
 * Messages:
 * - `hello` (viewer → report, on opening): "I am here"; the report window answers with its current `study`.
 * - `study` (report → viewer): show this study (the case/exam the doctor is reporting); `seq` of the sender.
 * - `next` (report → viewer): the exam after this one in the doctor's list, to prefetch (UX R18).
 * - `series` (both ways): the series selected (report → viewer: show it; viewer → report: it is shown).
 * - `image` (both ways): the image shown in the active viewport (viewer → report), or to show (report → viewer: a
 *   key image picked in the 图像 card).
 * - `key-images` (both ways): the key-image selection of the study changed (the receiver reads it again).
 * - `bye` (either, on closing).
 */

export const PROTOCOL = 'telerad.viewer-sync'
export const VERSION = 1

export type Role = 'report' | 'viewer'

export interface StudyPayload {
  studyUid: string
  institution?: string
  caseId?: number
  taskId?: number
  examId?: number
  /** For the viewer window's title: case number, patient, exam. */
  label?: string
}
export interface SeriesPayload {
  studyUid: string
  seriesUid: string
}
export interface ImagePayload {
  studyUid: string
  seriesUid: string
  sopUid: string
  frame: number
}
export interface KeyImagesPayload {
  studyUid: string
  sopUids: string[]
}

export interface Payloads {
  hello: { role: Role }
  study: StudyPayload
  next: StudyPayload
  series: SeriesPayload
  image: ImagePayload
  'key-images': KeyImagesPayload
  bye: { role: Role }
}
export type MessageType = keyof Payloads

export interface Envelope<T extends MessageType = MessageType> {
  proto: typeof PROTOCOL
  v: number
  pair: string
  from: string
  seq: number
  ts: number
  type: T
  payload: Payloads[T]
}

const UID = /^[0-9]+(\.[0-9]+)*$/
const MAX_KEY_IMAGES = 500

function isUid(v: unknown): v is string {
  return typeof v === 'string' && v.length <= 64 && UID.test(v)
}
function isObj(v: unknown): v is Record<string, unknown> {
  return !!v && typeof v === 'object' && !Array.isArray(v)
}
function optNum(v: unknown): boolean {
  return v === undefined || (typeof v === 'number' && Number.isInteger(v) && v > 0)
}
function optStr(v: unknown, max: number): boolean {
  return v === undefined || (typeof v === 'string' && v.length <= max)
}

const VALID: { [K in MessageType]: (p: Record<string, unknown>) => boolean } = {
  hello: (p) => p.role === 'report' || p.role === 'viewer',
  bye: (p) => p.role === 'report' || p.role === 'viewer',
  study: (p) =>
    isUid(p.studyUid) &&
    optStr(p.institution, 32) &&
    optStr(p.label, 200) &&
    optNum(p.caseId) &&
    optNum(p.taskId) &&
    optNum(p.examId),
  next: (p) => VALID.study(p),
  series: (p) => isUid(p.studyUid) && isUid(p.seriesUid),
  image: (p) =>
    isUid(p.studyUid) &&
    isUid(p.seriesUid) &&
    isUid(p.sopUid) &&
    typeof p.frame === 'number' &&
    Number.isInteger(p.frame) &&
    p.frame >= 1,
  'key-images': (p) =>
    isUid(p.studyUid) && Array.isArray(p.sopUids) && p.sopUids.length <= MAX_KEY_IMAGES && p.sopUids.every(isUid),
}

/** A well-formed message of this protocol and major version, or null (anything else is ignored). */
export function parseMessage(data: unknown): Envelope | null {
  if (!isObj(data) || data.proto !== PROTOCOL || data.v !== VERSION) return null
  const { pair, from, seq, ts, type, payload } = data
  if (typeof pair !== 'string' || !pair || pair.length > 64) return null
  if (typeof from !== 'string' || !from || from.length > 64) return null
  if (typeof seq !== 'number' || !Number.isInteger(seq) || seq < 0) return null
  if (typeof ts !== 'number' || !Number.isFinite(ts)) return null
  if (typeof type !== 'string' || !(type in VALID) || !isObj(payload)) return null
  if (!VALID[type as MessageType](payload)) return null
  return data as unknown as Envelope
}

export function channelName(userId: number | string): string {
  return `${PROTOCOL}.v${VERSION}.u${userId}`
}

export function randomId(): string {
  const b = new Uint8Array(9)
  crypto.getRandomValues(b)
  return Array.from(b, (x) => x.toString(36).padStart(2, '0')).join('')
}

/** What a window needs of a BroadcastChannel (a test passes its own). */
export interface ChannelLike {
  postMessage(data: unknown): void
  close(): void
  onmessage: ((ev: MessageEvent) => void) | null
}

type Handler<T extends MessageType> = (payload: Payloads[T], msg: Envelope<T>) => void

export interface SyncOptions {
  userId: number | string
  pair: string
  role: Role
  /** Defaults to a BroadcastChannel named `channelName(userId)`. */
  channel?: ChannelLike
  now?: () => number
}

/** One window's end of the pairing. */
export class SyncEndpoint {
  readonly id = randomId()
  readonly pair: string
  readonly role: Role
  private readonly channel: ChannelLike
  private readonly now: () => number
  private seq = 0
  private readonly lastSeen = new Map<string, number>()
  private readonly handlers = new Map<MessageType, Set<Handler<MessageType>>>()
  private closed = false

  constructor(opts: SyncOptions) {
    this.pair = opts.pair
    this.role = opts.role
    this.now = opts.now ?? Date.now
    this.channel = opts.channel ?? (new BroadcastChannel(channelName(opts.userId)) as unknown as ChannelLike)
    this.channel.onmessage = (ev) => this.receive(ev.data)
  }

  send<T extends MessageType>(type: T, payload: Payloads[T]): Envelope<T> | null {
    if (this.closed) return null
    const msg: Envelope<T> = {
      proto: PROTOCOL,
      v: VERSION,
      pair: this.pair,
      from: this.id,
      seq: ++this.seq,
      ts: this.now(),
      type,
      // a plain copy: a Vue reactive proxy cannot be cloned by postMessage (DataCloneError)
      payload: JSON.parse(JSON.stringify(payload)) as Payloads[T],
    }
    this.channel.postMessage(msg)
    return msg
  }

  on<T extends MessageType>(type: T, handler: Handler<T>): () => void {
    let set = this.handlers.get(type)
    if (!set) this.handlers.set(type, (set = new Set()))
    set.add(handler as unknown as Handler<MessageType>)
    return () => set!.delete(handler as unknown as Handler<MessageType>)
  }

  /** Take a message if it is for this window and newer than the last one from its sender. */
  receive(data: unknown): boolean {
    if (this.closed) return false
    const msg = parseMessage(data)
    if (!msg || msg.pair !== this.pair || msg.from === this.id) return false
    const last = this.lastSeen.get(msg.from) ?? 0
    if (msg.seq <= last) return false
    this.lastSeen.set(msg.from, msg.seq)
    for (const h of this.handlers.get(msg.type) ?? []) h(msg.payload, msg)
    return true
  }

  close(): void {
    if (this.closed) return
    this.send('bye', { role: this.role })
    this.closed = true
    this.channel.onmessage = null
    this.channel.close()
  }
}
