"""Structural check of a received data set, to its last byte, before it may be acknowledged (REQ: DSEC-05, DSEC-08).

A C-STORE success (or any other way in: C-GET, STOW-RS, uploads) promises a whole, parseable instance. This walks
a Part-10 file — File Meta Information, then the data set in its transfer syntax — without decoding values:

- every element's header and value fit inside the element, item, sequence or data set that holds it; tags ascend
  within each data set and item (PS3.5 §7.1); explicit VRs are known ones; undefined lengths only where PS3.5 §7.1.2
  allows them (SQ, UN holding implicit VR little endian items, encapsulated Pixel Data);
- sequences and items of defined and undefined length are balanced and end where they say; nesting is bounded;
- the data set ends exactly at the end of its last element (no trailing partial element);
- native Pixel Data (and Float / Double Float Pixel Data) has the length its Image Pixel attributes give: Rows ×
  Columns × SamplesPerPixel × NumberOfFrames × BitsAllocated bits, rounded up to whole bytes and padded to even
  (1-bit multi-frame passes); YBR_FULL_422 / YBR_PARTIAL_422 hold two samples per pixel, YBR_PARTIAL_420 one and
  a half (PS3.3 C.7.6.3.1.2);
- encapsulated Pixel Data (PS3.5 A.4) is a Basic Offset Table item, fragment items of defined length and a sequence
  delimiter, with at least one fragment per frame; the transfer syntax decides native versus encapsulated.

Values are never decoded except the six small Image Pixel attributes. The file is read in 64 KiB blocks with
`os.pread` at the positions the walk reaches, so long values (pixel data, fragments) are skipped, never read:
memory is bounded whatever the size. Deflated data sets (not accepted by the SCP, DSEC-09) are inflated with a cap.
Cost: see bench/bench_validate.py.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Collection
from typing import Any

from pydicom._uid_dict import UID_dictionary
from pydicom.datadict import DicomDictionary

from engine.imaging.ingest import BROKEN_REASON_PREFIX, InvalidInstance

IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
DEFLATED = {"1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.8.1"}  # Deflated Explicit VR LE; Deflated Image Frame
NATIVE = {IMPLICIT_LE, EXPLICIT_LE, EXPLICIT_BE, "1.2.840.10008.1.2.1.99"}  # all else: encapsulated Pixel Data

BLOCK = 64 * 1024
COLLECT_MAX_BYTES = 64 * 1024
PAD_MAX = 64 * 1024  # zero bytes tolerated after native pixel data
MAX_DEPTH = 64  # sequences nested deeper are refused (SECURITY.md §C1: 10,000 deep)
DEFLATE_MAX_BYTES = 64 * 1024 * 1024
DEFLATE_MAX_RATIO = 100  # DSEC-09: a deflated data set expanding beyond 100× (and past 1 MiB) is refused

_UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_PIXEL_DATA, _FLOAT_PIXEL_DATA, _DOUBLE_PIXEL_DATA = 0x7FE00010, 0x7FE00008, 0x7FE00009
_SOP_CLASS, _ENCAPSULATED_DOCUMENT = 0x00080016, 0x00420011
_SAMPLES, _PHOTOMETRIC, _FRAMES, _ROWS, _COLUMNS, _BITS_ALLOCATED = (
    0x00280002,
    0x00280004,
    0x00280008,
    0x00280010,
    0x00280011,
    0x00280100,
)
_IMAGE_ATTRS = frozenset({_SAMPLES, _PHOTOMETRIC, _FRAMES, _ROWS, _COLUMNS, _BITS_ALLOCATED})
_PIXEL_TAGS = frozenset({_PIXEL_DATA, _FLOAT_PIXEL_DATA, _DOUBLE_PIXEL_DATA})
_LONG_VRS = frozenset(b"OB OD OF OL OV OW SQ SV UC UN UR UT UV".split())
_SHORT_VRS = frozenset(b"AE AS AT CS DA DS DT FL FD IS LO LT PN SH SL SS ST TM UI UL US".split())
_EXPLICIT = {True: struct.Struct("<HH2sH"), False: struct.Struct(">HH2sH")}
_IMPLICIT = {True: struct.Struct("<HHI"), False: struct.Struct(">HHI")}
_U32 = {True: struct.Struct("<I"), False: struct.Struct(">I")}
_U16 = {True: struct.Struct("<H"), False: struct.Struct(">H")}
_CODECS = {  # (explicit, little) -> (element header unpack, u32 unpack)
    (explicit, little): ((_EXPLICIT if explicit else _IMPLICIT)[little].unpack_from, _U32[little].unpack_from)
    for explicit in (True, False)
    for little in (True, False)
}

# code -> (Chinese reason after the common prefix, ASCII ErrorComment; a command set has no character set)
_REASONS = {
    "file_meta": ("文件元信息（Part 10 头）缺失或损坏", "File Meta malformed"),
    "transfer_syntax": ("不支持的传输语法或压缩数据无法展开", "Transfer syntax unusable"),
    "truncated": ("数据集不完整，在传输中被截断", "Data set truncated"),
    "length": ("元素长度超出其所在的序列、条目或数据集", "Length beyond container"),
    "delimiter": ("序列或条目的分隔符不匹配", "Unbalanced delimiter"),
    "vr": ("元素的值表示（VR）非法或不允许未定义长度", "Invalid VR/undefined length"),
    "order": ("元素标签未按升序排列", "Tags out of order"),
    "nesting": ("序列嵌套层数过多", "Sequences nested too deep"),
    "pixel_attributes": ("像素数据缺少或含有无效的图像属性", "Image Pixel attributes invalid"),
    "pixel_length": ("像素数据长度与图像属性不符", "Pixel Data length mismatch"),
    "pixel_encoding": ("像素数据的封装方式与传输语法不符", "Pixel Data encoding vs syntax"),
    "pixel_fragments": ("压缩像素数据的条目结构错误或片段少于帧数", "Encapsulated Pixel Data malformed"),
    "content_missing": ("图像缺少像素数据或封装文档缺少文档内容", "Pixel Data or document missing"),
}


class BrokenDataset(InvalidInstance):
    """The received data set is not a whole, well-formed instance (REQ: DSEC-05, DSEC-08). `details` carry the byte
    offset, the tag when known and an ASCII `comment` for the DIMSE ErrorComment (≤ 64 characters)."""


def _broken(code: str, offset: int, tag: int | None = None, note: str = "") -> BrokenDataset:
    reason, comment = _REASONS[code]
    details: dict[str, Any] = {"offset": offset}
    where = f" @{offset}"
    if tag is not None:
        details["tag"] = f"({tag >> 16:04X},{tag & 0xFFFF:04X})"
        where = f" {details['tag']}{where}"
    if note:
        details["note"] = note
    details["comment"] = (comment + where)[:64]
    return BrokenDataset(f"dataset_{code}", f"{BROKEN_REASON_PREFIX}{reason}", details)


def check_file(
    path: str | os.PathLike[str], transfer_syntax: str | None = None, collect: Collection[int] = ()
) -> tuple[str, dict[int, bytes]]:
    """Walk the Part-10 file at `path` to its last byte; `transfer_syntax` overrides the one in its meta group
    (the negotiated one, which dicom/fastpath.py also wrote there).

    Returns the transfer syntax and the raw values of the top-level elements whose tags are in `collect` (values
    longer than COLLECT_MAX_BYTES are left out), so a caller that indexes a few tags needs no second pass over the
    header (engine/imaging/header.read_meta).

    Raises:
        BrokenDataset: the first structural defect found (code `dataset_*`, Chinese message, offset in details).
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        walk = _Walk(fd, size, os.pread(fd, min(size, BLOCK), 0), collect)
        start, meta_syntax = walk.meta()
        syntax = (transfer_syntax or meta_syntax).rstrip("\0 ")
        if syntax in DEFLATED:
            walk = _inflated(fd, size, start, collect)
            start = 0
        walk.run(start, syntax)
    finally:
        os.close(fd)
    return syntax, walk.found


def check_bytes(data: bytes, transfer_syntax: str, collect: Collection[int] = ()) -> dict[int, bytes]:
    """The same check for a data set held in memory (no File Meta Information), e.g. a DICOMweb part."""
    walk = _Walk(-1, len(data), data, collect)
    if transfer_syntax in DEFLATED:
        walk = _inflate(data, 0, collect)
    walk.run(0, transfer_syntax)
    return walk.found


def _inflated(fd: int, size: int, start: int, collect: Collection[int]) -> _Walk:
    return _inflate(os.pread(fd, size - start, start), start, collect)


def _inflate(raw: bytes, offset: int, collect: Collection[int]) -> _Walk:
    cap = min(DEFLATE_MAX_BYTES, max(DEFLATE_MAX_RATIO * len(raw), 1024 * 1024))
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        data = inflater.decompress(raw, cap + 1)
    except zlib.error as exc:
        raise _broken("transfer_syntax", offset, note="deflate") from exc
    if len(data) > cap or inflater.unconsumed_tail:
        raise _broken("transfer_syntax", offset, note="deflate bomb")
    return _Walk(-1, len(data), data, collect)


class _Walk:
    """The walk over one data set: a window `buf` of the file starting at absolute offset `base`."""

    __slots__ = ("fd", "size", "buf", "base", "encapsulated", "collect", "last_collected", "found", "bulk", "image")

    def __init__(self, fd: int, size: int, buf: bytes, collect: Collection[int] = ()) -> None:
        self.fd = fd
        self.size = size
        self.buf = buf
        self.base = 0
        self.encapsulated = False
        self.collect = frozenset(collect) | {_SOP_CLASS}
        self.bulk = False  # top-level Pixel Data (any of the three) or Encapsulated Document seen
        self.image = False  # top-level Rows seen: the data set declares an image
        self.last_collected = max(self.collect, default=-1)
        self.found: dict[int, bytes] = {}

    def _need(self, pos: int, n: int, limit: int, tag: int | None = None) -> int:
        """Make `n` bytes at absolute `pos` readable; the position of `pos` in `buf`. Past `limit` is a defect."""
        if pos + n > limit:
            raise _broken("truncated" if limit >= self.size else "length", pos, tag)
        rel = pos - self.base
        if rel < 0 or rel + n > len(self.buf):
            if self.fd < 0:
                raise _broken("truncated", pos, tag)
            self.buf = os.pread(self.fd, min(max(n, BLOCK), self.size - pos), pos)
            self.base = pos
            if len(self.buf) < n:  # the file shrank under us
                raise _broken("truncated", pos, tag)
            rel = 0
        return rel

    def _read(self, pos: int, n: int) -> bytes:
        """`n` bytes at `pos` (within the file: the caller checked)."""
        rel = self._need(pos, n, self.size)
        return self.buf[rel : rel + n]

    def meta(self) -> tuple[int, str]:
        """Skip the preamble and File Meta Information (explicit VR little endian); (data set offset, syntax)."""
        if self.size < 132 or self.buf[128:132] != b"DICM":
            raise _broken("file_meta", 128)
        pos, syntax, hdr, u32 = 132, "", _EXPLICIT[True], _U32[True]
        while pos + 8 <= self.size:
            rel = self._need(pos, 8, self.size)
            group, elem, vr, length = hdr.unpack_from(self.buf, rel)
            if group != 0x0002:
                break
            if vr in _LONG_VRS:
                length = u32.unpack_from(self.buf, self._need(pos + 8, 4, self.size))[0]
                vpos = pos + 12
            elif vr in _SHORT_VRS:
                vpos = pos + 8
            else:
                raise _broken("file_meta", pos, 0x00020000 | elem)
            if length == _UNDEFINED or vpos + length > self.size:
                raise _broken("file_meta", pos, 0x00020000 | elem)
            if elem == 0x0010:
                rel = self._need(vpos, length, self.size)
                syntax = self.buf[rel : rel + length].decode("ascii", "replace").rstrip("\0 ")
            pos = vpos + length
        if not syntax:
            raise _broken("file_meta", pos, 0x00020010)
        return pos, syntax

    def run(self, start: int, syntax: str) -> None:
        self.encapsulated = syntax not in NATIVE
        explicit, little = syntax != IMPLICIT_LE, syntax != EXPLICIT_BE
        if start >= self.size:
            raise _broken("truncated", start)  # a data set of nothing
        self.dataset(start, self.size, 0, explicit, little)
        # A data set cut at an element boundary before its bulk data is structurally whole, but a data set that
        # declares an image (Rows) without Pixel Data, or an Encapsulated PDF/CDA/… without its document, is not
        # (PS3.3 C.7.6.3, A.45). Header-only files of image classes (pydicom's DICOMDIR test files) carry no Rows.
        sop_class = self.found.get(_SOP_CLASS, b"").decode("ascii", "replace").rstrip("\0 ")
        if not self.bulk and (self.image or sop_class in _DOCUMENT_CLASSES):
            raise _broken("content_missing", self.size)

    def dataset(self, pos: int, end: int, depth: int, explicit: bool, little: bool) -> int:
        """Walk the elements from `pos` to `end` (a defined length), or to an item delimiter when `end` is -1.

        The hot loop of the check (~0.3 µs per element): module constants are bound to locals, the common element
        (a short value inside the current window) takes no call but the header unpack."""
        limit = end if end >= 0 else self.size
        unpack, u32 = _CODECS[explicit, little]
        long_vrs, short_vrs, sq_tags, first_special = _LONG_VRS, _SHORT_VRS, _SQ_TAGS, _SAMPLES
        collect = self.collect
        last_collected = -1 if depth else self.last_collected
        last = -1
        attrs: dict[int, bytes] | None = None
        buf, base = self.buf, self.base
        vr = b""
        while pos != end:
            rel = pos - base
            if pos + 8 > limit or rel < 0 or rel + 8 > len(buf):
                rel = self._need(pos, 8, limit)
                buf, base = self.buf, self.base
            if explicit:
                group, elem, vr, length = unpack(buf, rel)
            else:
                group, elem, length = unpack(buf, rel)
            tag = (group << 16) | elem
            if tag <= last or group == 0xFFFE:
                if group != 0xFFFE:
                    raise _broken("order", pos, tag)
                length = u32(buf, rel + 4)[0]
                if tag == _ITEM_END and end < 0 and length == 0:
                    return pos + 8
                raise _broken("delimiter", pos, tag)
            last = tag
            if not explicit:
                vpos = pos + 8
            elif vr in short_vrs:
                vpos = pos + 8
            elif vr in long_vrs:
                if rel + 12 > len(buf):
                    rel = self._need(pos, 12, limit, tag)
                    buf, base = self.buf, self.base
                length = u32(buf, rel + 8)[0]
                vpos = pos + 12
            else:
                raise _broken("vr", pos, tag)
            if length == 0xFFFFFFFF:
                if tag == _PIXEL_DATA:
                    pos = self.fragments(vpos, pos, depth, little, attrs)
                    self.bulk = self.bulk or depth == 0
                elif vr == b"SQ" or not explicit:
                    pos = self.sequence(vpos, -1, depth + 1, explicit, little)
                elif vr == b"UN":  # PS3.5 §6.2.2: a sequence in implicit VR little endian
                    pos = self.sequence(vpos, -1, depth + 1, False, True)
                else:
                    raise _broken("vr", pos, tag)
                buf, base = self.buf, self.base
                continue
            nxt = vpos + length
            if nxt > limit:
                raise _broken("truncated" if limit >= self.size else "length", pos, tag)
            if tag <= last_collected and tag in collect and length <= COLLECT_MAX_BYTES:
                rel = self._need(vpos, length, limit, tag)
                buf, base = self.buf, self.base
                self.found[tag] = buf[rel : rel + length]
            if vr == b"SQ" or (not explicit and tag in sq_tags):
                self.sequence(vpos, nxt, depth + 1, explicit, little)
                buf, base = self.buf, self.base
            elif tag >= first_special:
                if tag in _IMAGE_ATTRS and length <= 64:
                    rel = self._need(vpos, length, limit, tag)
                    buf, base = self.buf, self.base
                    if attrs is None:
                        attrs = {}
                    attrs[tag] = buf[rel : rel + length]
                    if tag == _ROWS and depth == 0:
                        self.image = True
                elif tag in _PIXEL_TAGS:
                    self.native(pos, vpos, tag, length, depth, little, attrs)
                    self.bulk = self.bulk or depth == 0
                    buf, base = self.buf, self.base
                elif tag == _ENCAPSULATED_DOCUMENT and depth == 0:
                    self.bulk = True
            pos = nxt
        return pos

    def sequence(self, pos: int, end: int, depth: int, explicit: bool, little: bool) -> int:
        """Items from `pos` to `end`, or to the sequence delimiter when `end` is -1."""
        if depth > MAX_DEPTH:
            raise _broken("nesting", pos)
        limit = end if end >= 0 else self.size
        unpack = _IMPLICIT[little].unpack_from  # item and delimiter headers carry no VR in any syntax
        while pos != end:
            rel = pos - self.base
            if pos + 8 > limit or rel < 0 or rel + 8 > len(self.buf):
                rel = self._need(pos, 8, limit)
            group, elem, length = unpack(self.buf, rel)
            tag = (group << 16) | elem
            if tag == _ITEM:
                if length == _UNDEFINED:
                    pos = self.dataset(pos + 8, -1, depth, explicit, little)
                    continue
                if pos + 8 + length > limit:
                    raise _broken("truncated" if limit >= self.size else "length", pos, tag)
                pos = self.dataset(pos + 8, pos + 8 + length, depth, explicit, little)
            elif tag == _SEQ_END and end < 0 and length == 0:
                return pos + 8
            else:
                raise _broken("delimiter", pos, tag)
        return pos

    def native(
        self, pos: int, vpos: int, tag: int, length: int, depth: int, little: bool, attrs: dict[int, bytes] | None
    ) -> None:
        """A native Pixel Data element (at `pos`, its value of `length` bytes at `vpos`): the length its Image Pixel
        attributes give."""
        if tag == _PIXEL_DATA and self.encapsulated and depth == 0:
            raise _broken("pixel_encoding", pos, tag)
        if depth and (attrs is None or _ROWS not in attrs):
            return  # nested pixel data without its own attributes (e.g. a private icon): structure only
        image = _image(attrs or {}, little, pos)
        if image is None:
            raise _broken("pixel_attributes", pos, tag)
        rows, columns, samples, bits, frames, photometric = image
        if tag != _PIXEL_DATA:
            bits = 32 if tag == _FLOAT_PIXEL_DATA else 64
        total = rows * columns * samples * frames * bits
        if samples == 3 and photometric in ("YBR_FULL_422", "YBR_PARTIAL_422"):
            total = total // 3 * 2
        elif samples == 3 and photometric == "YBR_PARTIAL_420":
            total = total // 2
        expected = (total + 7) // 8
        expected += expected & 1
        if length == expected:
            return
        # Zero bytes after the pixels, fewer than one frame and at most PAD_MAX, are trailing padding (pydicom's
        # MR_small_padded.dcm; pydicom and dcmtk read it, some writers pad to a block size). Short data, an odd
        # length, a whole extra frame or non-zero excess (e.g. full RGB under YBR_FULL_422) is a defect.
        excess = length - expected
        if (
            excess < 0
            or excess & 1
            or excess >= min((total // frames + 7) // 8, PAD_MAX + 1)
            or self._read(vpos + expected, excess).strip(b"\0")
        ):
            raise _broken("pixel_length", pos, tag, f"{length} != {expected}")

    def fragments(self, vpos: int, pos: int, depth: int, little: bool, attrs: dict[int, bytes] | None) -> int:
        """Encapsulated Pixel Data (PS3.5 A.4): a Basic Offset Table item, fragment items, a sequence delimiter."""
        if not self.encapsulated:
            raise _broken("pixel_encoding", pos, _PIXEL_DATA)
        hdr, count, frames = _IMPLICIT[little], -1, 1  # count: fragments after the Basic Offset Table
        if depth == 0 or (attrs is not None and _FRAMES in attrs):
            declared = _frames(attrs or {})
            if declared is None:
                raise _broken("pixel_attributes", pos, _FRAMES)
            frames = declared
        p = vpos
        while True:
            rel = self._need(p, 8, self.size, _PIXEL_DATA)
            group, elem, length = hdr.unpack_from(self.buf, rel)
            tag = (group << 16) | elem
            if tag == _SEQ_END:
                if length != 0 or count < 0:
                    raise _broken("pixel_fragments", p, tag)
                break
            if tag != _ITEM or length == _UNDEFINED or (count < 0 and length % 4):
                raise _broken("pixel_fragments", p, tag)
            if p + 8 + length > self.size:
                raise _broken("truncated", p, tag)
            count += 1
            p += 8 + length
        if count < frames:
            raise _broken("pixel_fragments", p, _PIXEL_DATA, f"{count} fragments < {frames} frames")
        return p + 8


def _frames(attrs: dict[int, bytes]) -> int | None:
    raw = attrs.get(_FRAMES)
    if raw is None:
        return 1
    try:
        frames = int(raw.decode("ascii").strip("\0 "))
    except (UnicodeDecodeError, ValueError):
        return None
    return frames if frames > 0 else None


def _image(attrs: dict[int, bytes], little: bool, pos: int) -> tuple[int, int, int, int, int, str] | None:
    """(rows, columns, samples per pixel, bits allocated, frames, photometric) or None when one is missing/invalid."""
    u16 = _U16[little]
    values = []
    for tag in (_ROWS, _COLUMNS, _SAMPLES, _BITS_ALLOCATED):
        raw = attrs.get(tag)
        if raw is None and tag == _SAMPLES:
            raw = b"\1\0" if little else b"\0\1"  # Type 1, but absent in some monochrome files: one sample
        if raw is None or len(raw) != 2:
            return None
        values.append(u16.unpack(raw)[0])
    rows, columns, samples, bits = values
    frames = _frames(attrs)
    if frames is None or not rows or not columns or samples not in (1, 3, 4) or not bits:
        return None
    photometric = attrs.get(_PHOTOMETRIC, b"").decode("ascii", "replace").strip("\0 ")
    return rows, columns, samples, bits, frames, photometric


# Tags whose VR is SQ in the data dictionary: sequences of defined length in implicit VR are walked too.
_SQ_TAGS = frozenset(tag for tag, entry in DicomDictionary.items() if entry[0] == "SQ")
# SOP classes whose instances need their document: every "Encapsulated … Storage" class of pydicom's UID dictionary.
_DOCUMENT_CLASSES = frozenset(
    uid for uid, entry in UID_dictionary.items() if entry[1] == "SOP Class" and entry[0].startswith("Encapsulated ")
)
