"""WADO-RS Retrieve Pixel Data of a series (PS3.18 §10.4.1.1.5, issue 16; REQ: VIEW-01, UX R18): the frames of many
instances in ONE multipart/related response, so that a viewer loads a 1,000-slice series in a few requests instead
of a request per frame.

Each part is one frame with the headers a frames response (engine/dicomweb/frames.py) would give it — `Content-Type`
with its media type and `transfer-syntax` — plus `Content-Location` naming that frame's own resource
(…/instances/{sop}/frames/{n}: the client keys the part by it) and `Content-Length` (the client skips the payload
instead of searching it for the boundary). Frames go out in the order of the selection: the series' instances in
series order (`offset`, `limit`), or the instances the request lists (`instances=uid,uid,…`, in that order); every
frame of a multi-frame instance, in frame order.

One negotiation for every frame route (engine/dicomweb/negotiate.py): the form is `negotiate_frame_syntax` of each
stored transfer syntax among the instances (the index row's), decided before the status goes out — instances that
no accepted form fits are left out (206 with a Warning), none at all is 406; a file whose syntax is not its row's
is negotiated again by its own. The bytes are `frame_bytes_in`'s: cut from the file, or decoded in the sandboxed
pool from the frame index's image attributes (and kept in the decoded-frame cache), as the frames route sends them.

The stream asks for one instance at a time (a multi-frame instance: FRAME_BYTES_PER_CALL of native pixels at a
time) and keeps the next ones coming while the current one is sent (transcode.Prefetch): when frames are decoded,
as many at once as the pool has decoders, at most one more waiting — the server holds a few instances' frames,
never the series.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from engine.dicomweb import negotiate
from engine.dicomweb.frame_index import FrameIndex, index_of
from engine.dicomweb.media import MediaRange, Multipart, NotAcceptable
from engine.dicomweb.negotiate import FramePlan
from engine.dicomweb.wado import InstanceFailed, InstanceRef
from engine.errors import NotFound, ValidationFailed
from engine.imaging import transcode
from engine.imaging.native import TranscodeError

MAX_LISTED = 1000  # SOP Instance UIDs in one `instances=` (a URL of ~65 kB at most)
MAX_LIMIT = 65535
FRAME_BYTES_PER_CALL = 8 << 20  # native pixels asked of frame_bytes_in at once (a multi-frame instance in pieces)
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")


@dataclass(frozen=True)
class Selection:
    """Which instances of the series, in which order: `listed` SOP Instance UIDs, else `offset`/`limit` of the
    series' instance order."""

    listed: tuple[str, ...] | None = None
    offset: int = 0
    limit: int | None = None


def _int_param(raw: str | None, name: str, low: int, high: int) -> int | None:
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ValidationFailed(f"bad_{name}", f"参数 {name} 须为 {low} 到 {high} 的整数")
    return int(raw)


def parse_selection(args: Mapping[str, str]) -> Selection:
    """The selection of a request's query (`instances`, `offset`, `limit`).

    Raises:
        ValidationFailed: a malformed or too long list, a number out of range, or a list with offset/limit.
    """
    raw = args.get("instances")
    offset = _int_param(args.get("offset"), "offset", 0, MAX_LIMIT)
    limit = _int_param(args.get("limit"), "limit", 1, MAX_LIMIT)
    if raw is None:
        return Selection(None, offset or 0, limit)
    if offset is not None or limit is not None:
        raise ValidationFailed("bad_pixeldata_query", "instances 参数不能与 offset、limit 同时使用")
    uids = [u.strip() for u in raw.split(",")]
    if (
        not uids
        or len(uids) > MAX_LISTED
        or len(set(uids)) != len(uids)
        or not all(len(u) <= 64 and _UID.match(u) for u in uids)
    ):
        raise ValidationFailed(
            "bad_instance_list", f"instances 须为以逗号分隔、互不重复的实例 UID（最多 {MAX_LISTED} 个）"
        )
    return Selection(tuple(uids))


def select(listed: dict[str, InstanceRef], sel: Selection) -> list[InstanceRef]:
    """The series' instances (`listed`, in series order) the selection names, in its order.

    Raises:
        NotFound: a listed UID is not in the series. ValidationFailed: `offset` is past the last instance.
    """
    if sel.listed is not None:
        missing = [u for u in sel.listed if u not in listed]
        if missing:
            raise NotFound("not_found", "实例不存在", {"instances": missing[:16]})
        return [listed[u] for u in sel.listed]
    refs = list(listed.values())
    if sel.offset >= len(refs):
        raise ValidationFailed("bad_offset", f"offset 超出序列的实例数（共 {len(refs)} 个）", {"instances": len(refs)})
    return refs[sel.offset : sel.offset + sel.limit if sel.limit is not None else None]


def plan_all(refs: list[InstanceRef], ranges: list[MediaRange]) -> dict[str, FramePlan | None]:
    """The form of each stored transfer syntax among `refs` (None: not acceptable), by negotiate_frame_syntax — the
    frames route's rule, the decoding pool's queue included.

    Raises:
        NotAcceptable: no instance can be sent in an accepted form.
    """
    plans: dict[str, FramePlan | None] = {}
    for ts in dict.fromkeys(r.ts for r in refs):
        try:
            plans[ts] = negotiate.negotiate_frame_syntax(ranges, ts)
        except NotAcceptable:
            plans[ts] = None
    if not any(plans.values()):
        raise NotAcceptable(details={"stored": sorted(plans)[:8]})
    return plans


def left_out(refs: list[InstanceRef], plans: dict[str, FramePlan | None]) -> list[InstanceRef]:
    """The instances with pixel data that no accepted form fits (an SR among them has no frames to leave out)."""
    out = []
    for ref in refs:
        if plans.get(ref.ts) is None:
            try:
                if index_of(ref.path).pixel_offset is None:
                    continue
            except (OSError, ValueError):
                pass  # unreadable: counted as not sent
            out.append(ref)
    return out


@dataclass(frozen=True)
class _Piece:
    """Frames `numbers` of one instance in the form `plan` (`last`: its last piece), or why the instance cannot be
    sent (`error`, found while planning it)."""

    ref: InstanceRef
    plan: FramePlan
    index: FrameIndex | None = None
    numbers: tuple[int, ...] = ()
    last: bool = True
    error: Exception | None = None


def frames_per_call(index: FrameIndex) -> int:
    """How many frames of an instance one frame_bytes_in call takes: FRAME_BYTES_PER_CALL of native pixels."""
    size = index.pixels * max(index.bits, 8) // 8
    return max(1, FRAME_BYTES_PER_CALL // size) if size > 0 else 1


def _produce(piece: _Piece) -> list[bytes] | Exception:
    """The frames of a piece (run ahead in a Prefetch thread), or what went wrong: a frame that cannot be read or
    decoded fails its instance (never a series with a frame silently gone)."""
    if piece.error is not None:
        return piece.error
    assert piece.index is not None
    numbers = list(piece.numbers)
    try:
        _pi, frames = negotiate.frame_bytes_in(piece.plan, piece.ref, piece.index, numbers, keep=False)
    except (OSError, ValueError, KeyError, IndexError, NotAcceptable, TranscodeError) as exc:
        return exc
    out: list[bytes] = []
    for n, (ok, value) in zip(numbers, frames, strict=True):
        if not ok or not isinstance(value, bytes):
            return TranscodeError(f"帧 {n} 无法读取或解码：{value!s}"[:300])
        out.append(value)
    return out


class FrameStream:
    """The multipart/related body: a part per frame, read (or decoded) from the files while it is sent.

    As wado.InstanceStream: `start()`, before the status goes out, waits for the first frames (a failure there is
    an error answer); once the body has begun, a frame that cannot be read or decoded ends it with InstanceFailed,
    without the closing boundary (the client's parser fails, and the viewer asks for the missing frames one by one).
    Instances without pixel data (an SR in the series) have no frames and are passed over. `close()` (the body's
    end, or the client gone) cancels what has not been asked for and waits for the calls under way.
    """

    def __init__(
        self,
        refs: list[InstanceRef],
        plans: dict[str, FramePlan | None],
        mp: Multipart,
        base: str,
        ranges: list[MediaRange],
    ) -> None:
        self.refs = [r for r in refs if plans.get(r.ts) is not None]
        self.plans = plans
        self.ranges = ranges
        self.mp = mp
        self.base = base
        self.sent = 0  # instances whose frames all went out
        self.frames = 0
        decoding = any(p is not None and not p.stored for p in plans.values())
        workers = transcode.transcoder().workers if decoding else 1
        self._ahead = transcode.Prefetch(self._pieces(), _produce, workers=workers, ahead=workers + 1)
        self._results = iter(self._ahead)
        self._first: tuple[_Piece, list[bytes]] | None = None

    def _pieces(self) -> Iterator[_Piece]:
        """Each instance's frames in pieces of frames_per_call (the file's own syntax decides its form)."""
        for ref in self.refs:
            plan = self.plans[ref.ts]
            assert plan is not None
            try:
                index = index_of(ref.path)
                if index.pixel_offset is None:
                    continue
                if index.ts != ref.ts:  # the index row and the file disagree: the file decides
                    plan = negotiate.negotiate_frame_syntax(self.ranges, index.ts)
            except (OSError, ValueError, NotAcceptable) as exc:
                yield _Piece(ref, plan, error=exc)
                continue
            per = frames_per_call(index)
            for first in range(1, index.frames + 1, per):
                numbers = tuple(range(first, min(first + per, index.frames + 1)))
                yield _Piece(ref, plan, index, numbers, last=numbers[-1] == index.frames)

    def _next(self) -> tuple[_Piece, list[bytes]] | None:
        for piece, out in self._results:
            if isinstance(out, Exception):
                raise InstanceFailed(piece.ref, piece.plan.ts, out, self.sent)
            return piece, out
        return None

    def start(self) -> bool:
        """Wait for the first frames; False when the selection has no frames at all.

        Raises:
            InstanceFailed: the first instance with pixel data cannot be read or decoded.
        """
        try:
            self._first = self._next()
        except InstanceFailed:
            self.close()
            raise
        if self._first is None:
            self.close()
            return False
        return True

    def _parts(self, piece: _Piece, frames: list[bytes]) -> Iterator[bytes]:
        ref = piece.ref
        url = f"{self.base}/studies/{ref.study_uid}/series/{ref.series_uid}/instances/{ref.sop_uid}/frames/"
        for number, data in zip(piece.numbers, frames, strict=True):
            headers = {"Content-Location": f"{url}{number}", "Content-Length": str(len(data))}
            yield from self.mp.part([data], piece.plan.part_type, headers)
            self.frames += 1
        if piece.last:
            self.sent += 1

    def body(self) -> Iterator[bytes]:
        """The parts, then the closing boundary — or InstanceFailed, without it (see the class)."""
        try:
            current, self._first = self._first, None
            while current is not None:
                yield from self._parts(*current)
                current = self._next()
            yield self.mp.close()
        finally:
            self.close()

    def close(self) -> None:
        self._ahead.close()
