"""Where each frame of a stored instance lies in its file (WADO-RS frames; issue 15).

A frame request used to parse the file's header with pydicom, and for encapsulated data walk its fragments, on every
request. Stored files are content-addressed and never change under their path (engine/imaging/storage.py), so what
a frame request needs — transfer syntax, frame count, Photometric Interpretation, the native frame size or each
encapsulated frame's fragments as (file offset, length) — is read once per path and kept (`index_of`: a bounded
LRU, weighted by frame count). A frame is then one pread per fragment.

Fragments are found by their item headers alone (8 bytes each; no fragment is read): frames by the Basic Offset
Table, or one fragment per frame (always so with an Extended Offset Table, PS3.5 A.4), or every fragment for a
single frame. Otherwise (several frames, no offset table, fragments ≠ frames) the frame boundaries are in the data
itself: `spans` is None and pydicom's get_frame cuts the frames from the file as before.
"""

from __future__ import annotations

import os
import struct
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.dicomweb.rawheader import read_header_fast
from engine.dicomweb.wado import Header, read_header
from engine.imaging.native import IMAGE_KEYWORDS, UNCOMPRESSED

Span = tuple[int, int]  # (file offset, length) of one fragment's value
ITEM, DELIMITER = (0xFFFE, 0xE000), (0xFFFE, 0xE0DD)
UNDEFINED = 0xFFFFFFFF


@dataclass(frozen=True)
class FrameIndex:
    """What serving a stored instance's frames needs from its file."""

    ts: str
    frames: int
    pi: str
    pixel_offset: int | None  # the Pixel Data value's first byte; None: no pixel data
    bits: int = 0
    pixels: int = 0  # rows × columns × samples per pixel of one frame
    spans: tuple[tuple[Span, ...], ...] | None = None  # encapsulated: each frame's fragments
    extended: tuple[bytes, bytes] | None = None  # the Extended Offset Table (for pydicom, when spans is None)
    # (keyword, value) of native.IMAGE_KEYWORDS: decoding a frame cut by `spans` needs no header read (issue 16)
    image: tuple[tuple[str, Any], ...] = ()

    @property
    def weight(self) -> int:
        return 1 + (len(self.spans) if self.spans else 0)


def _int(value: object, default: int = 0) -> int:
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return default


def _plain(value: object) -> Any:
    """An image attribute's value as plain data (the sandbox takes plain data only): int or str."""
    if isinstance(value, int):
        return int(value)
    return str(value) if value is not None else None


def build(path: Path, header: Header) -> FrameIndex:
    """The index of `path` from its header (read by engine/dicomweb/wado.py read_header)."""
    ds = header.ds
    frames = _int(ds.get("NumberOfFrames", 1) or 1, 1)
    base = {
        "ts": header.ts,
        "frames": frames,
        "pi": str(ds.get("PhotometricInterpretation", "")),
        "pixel_offset": header.pixel_offset,
        "bits": _int(ds.get("BitsAllocated", 0)),
        "pixels": _int(ds.get("Rows", 0)) * _int(ds.get("Columns", 0)) * _int(ds.get("SamplesPerPixel", 1) or 1, 1),
    }
    if header.pixel_offset is None or header.ts in UNCOMPRESSED:
        return FrameIndex(**base)  # type: ignore[arg-type]
    extended = None
    base["image"] = tuple((k, _plain(ds.get(k))) for k in IMAGE_KEYWORDS if k in ds)
    if "ExtendedOffsetTable" in ds and "ExtendedOffsetTableLengths" in ds:
        extended = (bytes(ds.ExtendedOffsetTable), bytes(ds.ExtendedOffsetTableLengths))
    try:
        spans = _frame_spans(path, header.pixel_offset, frames)
    except (OSError, ValueError, struct.error):
        spans = None  # malformed: pydicom reports it frame by frame
    return FrameIndex(**base, spans=spans, extended=extended)  # type: ignore[arg-type]


def _frame_spans(path: Path, offset: int, frames: int) -> tuple[tuple[Span, ...], ...] | None:
    """Each frame's fragments, by the item headers of the encapsulated Pixel Data starting at `offset`; None when
    the frame boundaries are not in the item structure.

    Raises:
        ValueError: the items are not a Basic Offset Table item, fragments and a sequence delimiter.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        head = os.pread(fd, 8, offset)
        if len(head) < 8 or struct.unpack_from("<HH", head) != ITEM:
            raise ValueError("no Basic Offset Table item")
        (length,) = struct.unpack_from("<I", head, 4)
        if length == UNDEFINED or length % 4:
            raise ValueError("bad Basic Offset Table length")
        table = os.pread(fd, length, offset + 8)
        bot = list(struct.unpack(f"<{length // 4}I", table)) if length else []
        first = pos = offset + 8 + length
        fragments: list[tuple[int, int, int]] = []  # (item position relative to the first, value offset, length)
        while True:
            item = os.pread(fd, 8, pos)
            if len(item) < 8:
                raise ValueError("no sequence delimiter")
            group, elem, size = struct.unpack("<HHI", item)
            if (group, elem) == DELIMITER:
                break
            if (group, elem) != ITEM or size == UNDEFINED:
                raise ValueError("not a fragment item")
            fragments.append((pos - first, pos + 8, size))
            pos += 8 + size
    finally:
        os.close(fd)
    if bot:
        if len(bot) != frames:
            return None
        bounds = [*bot, 1 << 62]
        return tuple(
            tuple((value, size) for rel, value, size in fragments if bounds[i] <= rel < bounds[i + 1])
            for i in range(frames)
        )
    if frames == 1:
        return (tuple((value, size) for _rel, value, size in fragments),)
    if len(fragments) == frames:
        return tuple(((value, size),) for _rel, value, size in fragments)
    return None


class _Cache:
    """path → FrameIndex, least recently used out first, at most `capacity` frames' worth."""

    def __init__(self, capacity: int = 1_000_000) -> None:
        self.capacity = capacity
        self._items: OrderedDict[str, FrameIndex] = OrderedDict()
        self._weight = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> FrameIndex | None:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key: str, index: FrameIndex) -> None:
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._weight -= old.weight
            self._items[key] = index
            self._weight += index.weight
            while self._weight > self.capacity and len(self._items) > 1:
                _k, gone = self._items.popitem(last=False)
                self._weight -= gone.weight


_cache = _Cache()


def index_of(path: Path, header: Header | None = None) -> FrameIndex:
    """The frame index of a stored file (`header`: already read), from the cache when it was seen before.

    Raises:
        OSError, ValueError: the file cannot be read.
    """
    key = str(path)
    found = _cache.get(key)
    if found is None:
        found = build(path, header if header is not None else (read_header_fast(path) or read_header(path)))
        _cache.put(key, found)
    return found


def read_spans(fd: int, spans: tuple[Span, ...]) -> bytes:
    """One frame's bytes: its fragments' values, read by pread.

    Raises:
        ValueError: the file ends inside a fragment.
    """
    parts = [os.pread(fd, size, offset) for offset, size in spans]
    if any(len(p) != size for p, (_o, size) in zip(parts, spans, strict=True)):
        raise ValueError("像素数据不完整")
    return parts[0] if len(parts) == 1 else b"".join(parts)
