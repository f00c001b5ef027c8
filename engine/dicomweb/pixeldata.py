"""WADO-RS Retrieve Pixel Data of a series (PS3.18 §10.4.1.1.5, issue 16; REQ: VIEW-01, UX R18): the frames of many
instances in ONE multipart/related response, so that a viewer loads a 1,000-slice series in a few requests instead
of a request per frame.

Each part is one frame with the headers a frames response (engine/dicomweb/frames.py) would give it — `Content-Type`
with its media type and `transfer-syntax` — plus `Content-Location` naming that frame's own resource
(…/instances/{sop}/frames/{n}: the client keys the part by it) and `Content-Length` (the client skips the payload
instead of searching it for the boundary). Frames go out in the order of the selection: the series' instances in
series order (`offset`, `limit`), or the instances the request lists (`instances=uid,uid,…`, in that order); every
frame of a multi-frame instance, in frame order.

The forms are the frames resource's (`plan_frames`): native frames as stored, compressed frames as stored when the
Accept header takes the stored syntax (or `transfer-syntax=*`), else decoded in the sandboxed pool — a few frames at
a time, never a whole instance. Planned per stored transfer syntax (the index row's) before the status goes out:
instances that no accepted form fits are left out (206 with a Warning), none at all is 406. Files are read while the
body is sent, one frame (one pread per fragment) at a time: the server holds a frame, not the series.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from pydicom.encaps import get_frame

from engine.dicomweb.frame_index import FrameIndex, index_of, read_spans
from engine.dicomweb.frames import FramePlan, native_frame_size, plan_frames
from engine.dicomweb.media import MediaRange, Multipart, NotAcceptable
from engine.dicomweb.wado import InstanceFailed, InstanceRef
from engine.errors import NotFound, ValidationFailed
from engine.imaging import transcode
from engine.imaging.native import UNCOMPRESSED, TranscodeError

MAX_LISTED = 1000  # SOP Instance UIDs in one `instances=` (a URL of ~65 kB at most)
MAX_LIMIT = 65535
DECODE_BATCH = 4  # frames decoded per sandbox call when the stored syntax is not accepted
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
    """The form of each stored transfer syntax among `refs` (None: not acceptable).

    Raises:
        NotAcceptable: no instance can be sent in an accepted form.
    """
    plans: dict[str, FramePlan | None] = {}
    for ts in dict.fromkeys(r.ts for r in refs):
        try:
            plans[ts] = plan_frames(ranges, ts)
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


class FrameStream:
    """The multipart/related body: a part per frame, read from the files while it is sent.

    As wado.InstanceStream: `start()`, before the status goes out, reads up to the first frame (a failure there is
    an error answer); once the body has begun, a frame that cannot be read or decoded ends it with InstanceFailed,
    without the closing boundary (the client's parser fails, and the viewer asks for the missing frames one by one).
    Instances without pixel data (an SR in the series) have no frames and are passed over.
    """

    def __init__(self, refs: list[InstanceRef], plans: dict[str, FramePlan | None], mp: Multipart, base: str) -> None:
        self.refs = [r for r in refs if plans.get(r.ts) is not None]
        self.plans = plans
        self.mp = mp
        self.base = base
        self.sent = 0  # instances whose frames all went out
        self.frames = 0
        self._parts = self._generate()
        self._first: list[bytes] | None = None

    def start(self) -> bool:
        """Read up to the first frame; False when the selection has no frames at all.

        Raises:
            InstanceFailed: the first instance with pixel data cannot be read or decoded.
        """
        try:
            self._first = next(self._parts)
        except StopIteration:
            return False
        return True

    def body(self) -> Iterator[bytes]:
        if self._first is not None:
            yield from self._first
            self._first = None
            for part in self._parts:
                yield from part
        yield self.mp.close()

    def _generate(self) -> Iterator[list[bytes]]:
        for ref in self.refs:
            plan = self.plans[ref.ts]
            assert plan is not None
            try:
                index = index_of(ref.path)
            except (OSError, ValueError) as exc:
                raise InstanceFailed(ref, plan.ts, exc, self.sent) from exc
            if index.pixel_offset is None:
                continue
            if index.ts != ref.ts:  # the index row and the file disagree: the file decides
                try:
                    plan = plan_frames(self._ranges_of(plan), index.ts)
                except NotAcceptable as exc:
                    raise InstanceFailed(ref, index.ts, exc, self.sent) from exc
            url = f"{self.base}/studies/{ref.study_uid}/series/{ref.series_uid}/instances/{ref.sop_uid}/frames/"
            media = f"{plan.media}; transfer-syntax={plan.ts}"
            for number, data in _frames(ref, index, plan, self.sent):
                headers = {"Content-Location": f"{url}{number}", "Content-Length": str(len(data))}
                yield list(self.mp.part([data], media, headers))
                self.frames += 1
            self.sent += 1

    @staticmethod
    def _ranges_of(plan: FramePlan) -> list[MediaRange]:
        return [MediaRange("multipart/related", {"type": plan.media, "transfer-syntax": plan.ts})]


def _frames(ref: InstanceRef, index: FrameIndex, plan: FramePlan, sent: int) -> Iterator[tuple[int, bytes]]:
    """(frame number, bytes) of every frame of one instance, read (or decoded) one at a time."""
    assert index.pixel_offset is not None
    numbers = range(1, index.frames + 1)
    try:
        if not plan.stored:
            yield from _decoded(ref, index, list(numbers))
            return
        if index.ts in UNCOMPRESSED:
            size = native_frame_size(index)
            fd = os.open(ref.path, os.O_RDONLY)
            try:
                for n in numbers:
                    data = os.pread(fd, size, index.pixel_offset + (n - 1) * size)
                    if len(data) != size:
                        raise ValueError("像素数据不完整")
                    yield n, data
            finally:
                os.close(fd)
        elif index.spans is not None:
            fd = os.open(ref.path, os.O_RDONLY)
            try:
                for n in numbers:
                    yield n, read_spans(fd, index.spans[n - 1])
            finally:
                os.close(fd)
        else:
            with open(ref.path, "rb") as fp:
                for n in numbers:
                    fp.seek(index.pixel_offset)
                    yield n, get_frame(fp, n - 1, number_of_frames=index.frames, extended_offsets=index.extended)
    except (OSError, ValueError, KeyError, IndexError, NotAcceptable, TranscodeError) as exc:
        raise InstanceFailed(ref, plan.ts, exc, sent) from exc


def _decoded(ref: InstanceRef, index: FrameIndex, numbers: list[int]) -> Iterator[tuple[int, bytes]]:
    """Frames decoded to native bytes in the sandbox pool, DECODE_BATCH at a time.

    Raises:
        TranscodeError: a frame does not decode (the body is cut short: never a series with a frame silently gone).
    """
    pool = transcode.transcoder()
    for i in range(0, len(numbers), DECODE_BATCH):
        batch = numbers[i : i + DECODE_BATCH]
        _pi, results = pool.frames(ref.path, batch)
        for n, (ok, value) in zip(batch, results, strict=True):
            if not ok or not isinstance(value, bytes):
                raise TranscodeError(f"帧 {n} 无法解码：{value!s}"[:300])
            yield n, value
