"""Transfer-syntax negotiation of WADO-RS frames (PS3.18 §8.7.3; issue 16) and the frames' bytes in the chosen
syntax — shared by every route that sends frames (instance frames, and a series' pixel data in one multipart).

`negotiate_frame_syntax(ranges, stored)`: the Accept header's ranges are tried in preference order (q, then as
written; engine/dicomweb/media.py parse_accept); each range names a part media type and may name a transfer syntax:
- the stored syntax's own media type (image/jpeg, image/jls, image/jp2, image/jpx, image/dicom-rle; PS3.18 Table
  8.7.3-2), `type/*`, `*/*`, or any type with `transfer-syntax=*` → the frames as stored, unchanged;
- application/octet-stream with `transfer-syntax=1.2.840.10008.1.2.1` (or none: explicit VR little endian is the
  default of PS3.18 Table 8.7.3-5) → native pixels: the stored bytes when the data is uncompressed, else decoded in
  engine/imaging/transcode.py's sandboxed pool (DSEC-08: the pool's memory, CPU and wall-clock limits);
- nothing acceptable → 406 `not_acceptable` (telerad never re-compresses; details name the stored syntax and what
  could be sent).
`busy=True` (the decoding pool has a queue, `decoder_busy`): when the client also accepts the stored syntax at a
lower preference, that is chosen instead of decoding — the browser decodes then (issue 16: the viewer on a LAN
asks `…transfer-syntax=1.2.840.10008.1.2.1, …transfer-syntax=*;q=0.5`).

`frame_bytes_in(plan, ref, index, numbers)`: the frames in the planned form. Decoded frames are cut from the file
by the frame index (no header is parsed in the worker), decoded in one sandbox call per instance, and kept in
engine/dicomweb/frame_cache.py for the next request.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.dicomweb import frame_cache
from engine.dicomweb.frame_index import FrameIndex
from engine.dicomweb.media import ANY_SYNTAX, EXPLICIT_VR_LE, MediaRange, NotAcceptable
from engine.dicomweb.wado import InstanceRef
from engine.imaging import transcode
from engine.imaging.native import DECODABLE, UNCOMPRESSED, TranscodeError

OCTET = "application/octet-stream"
# PS3.18 Table 8.7.3-2: the media type of each compressed transfer syntax's frames.
FRAME_MEDIA = {
    "1.2.840.10008.1.2.4.50": "image/jpeg",
    "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg",
    "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.80": "image/jls",
    "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2",
    "1.2.840.10008.1.2.4.91": "image/jp2",
    "1.2.840.10008.1.2.4.92": "image/jpx",
    "1.2.840.10008.1.2.4.93": "image/jpx",
    "1.2.840.10008.1.2.5": "image/dicom-rle",
}
BUSY_WAITING_PER_WORKER = 4  # calls queued per decoder before the stored syntax is preferred (when accepted)

Frame = tuple[bool, bytes | str]  # (True, bytes) or (False, why it failed)


@dataclass(frozen=True)
class FramePlan:
    """How the frames go out: `media` of each part and the transfer syntax (`stored`: cut as stored)."""

    media: str
    ts: str
    stored: bool

    @property
    def part_type(self) -> str:
        """The Content-Type of each part (PS3.18 §8.7.3.5.2: the transfer syntax named)."""
        return f"{self.media}; transfer-syntax={self.ts}"


def _plan_of(r: MediaRange, stored_ts: str) -> FramePlan | None:
    """What one Accept range lets telerad send for frames stored in `stored_ts`, or None."""
    stored_media = FRAME_MEDIA.get(stored_ts, OCTET)
    part = r.part_type or (r.media if r.media not in ("multipart/related", "multipart/*") else "*/*")
    ts = r.syntax
    as_stored = ts in (None, ANY_SYNTAX, stored_ts)
    if part == "*/*" and as_stored:
        return FramePlan(stored_media, stored_ts, True)
    if part != OCTET and MediaRange(part).matches(stored_media) and as_stored:
        return FramePlan(stored_media, stored_ts, True)
    if MediaRange(part).matches(OCTET) and (ts or EXPLICIT_VR_LE) in (EXPLICIT_VR_LE, ANY_SYNTAX):
        # `transfer-syntax=*`: any syntax will do, so the stored one (PS3.18 §8.7.3.5.2), cut from the file and
        # labelled with its UID — what viewers ask for (OHIF, dicomweb-client) and Orthanc answers (issue 15)
        if stored_ts in UNCOMPRESSED or ts == ANY_SYNTAX:
            return FramePlan(OCTET, stored_ts, True)
        if stored_ts in DECODABLE:
            return FramePlan(OCTET, EXPLICIT_VR_LE, False)
    return None


def acceptable_plans(ranges: list[MediaRange], stored_ts: str) -> list[FramePlan]:
    """Every form the Accept ranges allow for frames stored in `stored_ts`, most preferred first, each once."""
    out: list[FramePlan] = []
    for r in ranges:
        plan = _plan_of(r, stored_ts)
        if plan is not None and plan not in out:
            out.append(plan)
    return out


def negotiate_frame_syntax(ranges: list[MediaRange], stored_ts: str, *, busy: bool | None = None) -> FramePlan:
    """The form to send frames stored in `stored_ts` in: the first acceptable one; when the decoding pool is busy
    (`busy`; None: `decoder_busy()` is asked when it matters), the first one that needs no decoding if the client
    accepts one.

    Raises:
        NotAcceptable: only forms telerad cannot make were asked for (it never re-compresses).
    """
    plans = acceptable_plans(ranges, stored_ts)
    if not plans:
        can = [FRAME_MEDIA.get(stored_ts, OCTET)]
        if stored_ts in UNCOMPRESSED or stored_ts in DECODABLE:
            can.append(f"{OCTET}; transfer-syntax={EXPLICIT_VR_LE}")
        raise NotAcceptable(
            "无法以请求的媒体类型或传输语法提供这些帧（本系统只发送原始存储的格式或未压缩格式）",
            {"stored_transfer_syntax": stored_ts, "available": can},
        )
    fallback = next((p for p in plans if p.stored), None)
    if not plans[0].stored and fallback is not None and (decoder_busy() if busy is None else busy):
        return fallback
    return plans[0]


def decoder_busy() -> bool:
    """The decoding pool has a queue (many frames asked for uncompressed at once, e.g. several viewers)."""
    pool = transcode.transcoder()
    return pool.waiting() >= BUSY_WAITING_PER_WORKER * pool.workers


def frame_bytes_in(
    plan: FramePlan, ref: InstanceRef, index: FrameIndex, numbers: list[int], keep: bool = True
) -> tuple[str, list[Frame]]:
    """Frames `numbers` (1-based, checked against `index`) of the stored instance `ref` in the form `plan`, and the
    Photometric Interpretation of the data sent; a frame that cannot be read or decoded is (False, reason), alone.
    Decoded frames are looked up in the decoded-frame cache and, with `keep`, kept there; a whole series streamed
    once (pixeldata) passes keep=False: it would only push out what per-frame readers use, and the viewer keeps
    the series itself.

    Raises:
        TranscodeError: the instance cannot be decoded at all (or the sandbox's limits were exceeded).
    """
    from engine.dicomweb.frames import stored_frames  # cutting frames from the file (frames.py imports this module)

    if plan.stored:
        return index.pi, stored_frames(ref, index, numbers)
    if index.ts not in DECODABLE:
        raise TranscodeError(f"无法解码传输语法 {index.ts}")
    cache = frame_cache.cache()
    path = str(ref.path)
    found: dict[int, Frame] = {}
    pi = index.pi
    if cache is not None:
        for n in numbers:
            hit = cache.get(ref.sop_uid, n, path)
            if hit is not None:
                pi, found[n] = hit[0], (True, hit[1])
    todo = [n for n in dict.fromkeys(numbers) if n not in found]
    if todo:
        decoded_pi, decoded = _decode(ref, index, todo)
        pi = decoded_pi
        for n, frame in zip(todo, decoded, strict=True):
            found[n] = frame
            if keep and cache is not None and frame[0] and isinstance(frame[1], bytes):
                cache.put(ref.sop_uid, n, path, decoded_pi, frame[1])
    return pi, [found[n] for n in numbers]


def _decode(ref: InstanceRef, index: FrameIndex, numbers: list[int]) -> tuple[str, list[Frame]]:
    """Frames decoded in the sandboxed pool: cut here and decoded from the index's image attributes when the frame
    boundaries are known, else read by the worker from the file; when the decoder dies on one of several frames (a
    malformed frame can crash a codec: the sandbox catches it), one at a time, so only that frame fails."""
    pool = transcode.transcoder()

    def run(some: list[int]) -> tuple[str, list[Frame]]:
        if index.spans is not None and index.image:
            from engine.dicomweb.frames import stored_frames

            cut = stored_frames(ref, index, some)
            ok = [n for n, (good, _v) in zip(some, cut, strict=True) if good]
            pi, decoded = pool.decode(index.ts, index.image, [v for good, v in cut if good and isinstance(v, bytes)])
            by_number = dict(zip(ok, decoded, strict=True))
            return pi, [by_number.get(n, frame) for n, frame in zip(some, cut, strict=True)]
        return pool.frames(ref.path, some)

    try:
        return run(numbers)
    except TranscodeError:
        if len(numbers) == 1:
            raise
    out: list[Frame] = []
    pi = index.pi
    for number in numbers:
        try:
            pi, [one] = run([number])
        except TranscodeError as exc:
            one = (False, str(exc))
        out.append(one)
    return pi, out
