"""WADO-RS frames (PS3.18 §10.4.1.1.4; issue 15): frames of one stored instance, as stored or as native pixels.

Frames go out as stored — cut from the file by the fragment spans of its frame index (engine/dicomweb/frame_index.py:
read once per stored file, then one pread per fragment), else by pydicom's `get_frame` on the open file (no other
frame is read, nothing is decoded) — when the Accept header takes the stored syntax's media type (image/jpeg,
image/jls, image/jp2, image/jpx, image/dicom-rle), `*/*`, or any type with `transfer-syntax=*` (application/
octet-stream parts then carry the stored syntax's UID). Native frames (application/octet-stream, explicit VR little
endian) of uncompressed data are byte ranges of the stored Pixel Data; of compressed data they are decoded in
engine/imaging/transcode.py's sandboxed pool, frame by frame: a frame that does not decode fails alone. The
negotiation and the decoded form are engine/dicomweb/negotiate.py's (issue 16), shared with other frame routes.
"""

from __future__ import annotations

import os

from pydicom.encaps import get_frame

from engine.dicomweb import negotiate
from engine.dicomweb.frame_index import FrameIndex, index_of, read_spans
from engine.dicomweb.media import MediaRange, NotAcceptable
from engine.dicomweb.negotiate import FRAME_MEDIA, OCTET, FramePlan  # noqa: F401 - the frames API, re-exported
from engine.dicomweb.wado import Header, InstanceRef
from engine.errors import NotFound, ValidationFailed
from engine.imaging.native import UNCOMPRESSED

MAX_FRAMES = 65535


def parse_frame_list(raw: str) -> list[int]:
    """A 1-based frame list ("1,3,5").

    Raises:
        ValidationFailed: not a comma-separated list of positive integers, or too long.
    """
    parts = [p.strip() for p in raw.split(",")]
    if not parts or len(parts) > MAX_FRAMES or not all(p.isdigit() and 0 < int(p) <= MAX_FRAMES for p in parts):
        raise ValidationFailed("bad_frame_list", "帧号列表格式不正确（从 1 开始、以逗号分隔的正整数）")
    return [int(p) for p in parts]


def check_frames(header: Header | FrameIndex, numbers: list[int]) -> None:
    """Raises NotFound when the instance has no pixel data or a frame number is past its last frame."""
    if header.pixel_offset is None:
        raise NotFound("frame_not_found", "该实例没有像素数据")
    over = [n for n in numbers if n > header.frames]
    if over:
        raise NotFound("frame_not_found", f"帧号超出范围（共 {header.frames} 帧）", {"frames": over[:16]})


def plan_frames(ranges: list[MediaRange], stored_ts: str) -> FramePlan:
    """The first acceptable form for frames stored in `stored_ts`, in the Accept header's order (with the decoding
    pool's queue taken into account: engine/dicomweb/negotiate.py).

    Raises:
        NotAcceptable: only forms telerad cannot make were asked for (it never re-compresses).
    """
    return negotiate.negotiate_frame_syntax(ranges, stored_ts)


def frame_ranges(ranges: list[MediaRange]) -> list[MediaRange]:
    """The Accept ranges that can name frame parts (multipart/related of any image or octet-stream type)."""
    return [
        r
        for r in ranges
        if r.media in ("*/*", "multipart/related", "multipart/*") or r.media == OCTET or r.media.startswith("image/")
    ] or []


def native_frame_size(index: FrameIndex) -> int:
    if index.bits == 1 and index.pixels % 8:
        raise NotAcceptable("1 位数据的帧不按字节对齐，无法单独提供", {"bits_allocated": 1})
    return index.pixels * index.bits // 8


def stored_frames(ref: InstanceRef, index: FrameIndex, numbers: list[int]) -> list[tuple[bool, bytes | str]]:
    """The frames as stored: byte ranges of native Pixel Data, or encapsulated frames cut from the file (by the
    frame index's fragment spans, else by pydicom's get_frame)."""
    assert index.pixel_offset is not None
    out: list[tuple[bool, bytes | str]] = []
    if index.ts in UNCOMPRESSED:
        size = native_frame_size(index)
        fd = os.open(ref.path, os.O_RDONLY)
        try:
            for n in numbers:
                data = os.pread(fd, size, index.pixel_offset + (n - 1) * size)
                out.append((True, data) if len(data) == size else (False, "像素数据不完整"))
        finally:
            os.close(fd)
        return out
    if index.spans is not None:
        fd = os.open(ref.path, os.O_RDONLY)
        try:
            for n in numbers:
                try:
                    out.append((True, read_spans(fd, index.spans[n - 1])))
                except (ValueError, OSError) as exc:
                    out.append((False, f"{type(exc).__name__}: {str(exc)[:200]}"))
        finally:
            os.close(fd)
        return out
    with open(ref.path, "rb") as fp:
        for n in numbers:
            fp.seek(index.pixel_offset)
            try:
                frame = get_frame(fp, n - 1, number_of_frames=index.frames, extended_offsets=index.extended)
                out.append((True, frame))
            except (ValueError, KeyError, IndexError, OSError) as exc:
                out.append((False, f"{type(exc).__name__}: {str(exc)[:200]}"))
    return out


def get_frames(
    ref: InstanceRef, header: Header | FrameIndex, numbers: list[int], how: FramePlan
) -> tuple[str, list[tuple[bool, bytes | str]]]:
    """The frames in the planned form and the Photometric Interpretation of the data sent (`header`: the file's
    header as read, or its frame index, engine/dicomweb/frame_index.py): negotiate.frame_bytes_in.

    Raises:
        TranscodeError: the instance cannot be decoded at all (or the sandbox's limits were exceeded).
    """
    index = header if isinstance(header, FrameIndex) else index_of(ref.path, header)
    return negotiate.frame_bytes_in(how, ref, index, numbers)
