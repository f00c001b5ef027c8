"""A stored Part-10 file's header up to its Pixel Data, read from one buffer (WADO-RS metadata and frame index;
issue 15).

engine/dicomweb/wado.py `read_header` has pydicom read the file (dcmread, stopped before the Pixel Data): ~0.27 ms
for a CT header, a quarter of a series' metadata. The common file — preamble, explicit VR little-endian File Meta
Information, a little-endian data set whose elements all have a defined length — is read here from one buffer into
the same raw elements pydicom's data_element_generator yields (tag, VR, length, value, value position, encoding),
in a Dataset pydicom converts on access as it would its own. Anything else — no preamble, a big-endian or deflated
syntax, an element of undefined length (pydicom parses those sequences eagerly), a VR pydicom would guess at, a
header past MAX_HEADER — is left to `read_header` (None here). tests/dicomweb/test_metadata_json.py compares the
documents on pydicom's test files.
"""

from __future__ import annotations

import struct
from pathlib import Path

from pydicom.dataelem import DataElement, RawDataElement, empty_value_for_VR
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.tag import BaseTag
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32, VR

from engine.dicomweb.wado import Header

FIRST_READ = 16 << 10
MAX_HEADER = 4 << 20
IMPLICIT_LE = "1.2.840.10008.1.2"
_NOT_LITTLE = frozenset({"1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"})  # big endian, deflated
_VRS = {v.value.encode("ascii"): v.value for v in VR if len(v.value) == 2}
_LONG = frozenset(v for v in _VRS.values() if v in EXPLICIT_VR_LENGTH_32)
_PIXELS = frozenset({0x7FE00010, 0x7FE00009, 0x7FE00008})  # pydicom's stop_before_pixels
_UNDEFINED = 0xFFFFFFFF
_short = struct.Struct("<HH2sH").unpack_from
_implicit = struct.Struct("<HHL").unpack_from
_long = struct.Struct("<L").unpack_from


class _Buffer:
    """The file's first bytes, read further on demand (up to MAX_HEADER)."""

    def __init__(self, fp: object) -> None:
        self.fp = fp
        self.data = fp.read(FIRST_READ)  # type: ignore[attr-defined]
        self.eof = len(self.data) < FIRST_READ

    def has(self, end: int) -> bool:
        """Whether bytes up to `end` are in the buffer (reading more if need be)."""
        while end > len(self.data) and not self.eof:
            if len(self.data) >= MAX_HEADER:
                return False
            more = self.fp.read(max(end - len(self.data), len(self.data)))  # type: ignore[attr-defined]
            self.eof = not more
            self.data += more
        return end <= len(self.data)


Elements = dict[BaseTag, DataElement | RawDataElement]


def _elements(buf: _Buffer, pos: int, implicit: bool, group_only: int | None = None) -> tuple[Elements, int] | None:
    """Raw elements from `pos` to the Pixel Data, the end of the file, or (`group_only`) the end of that group;
    and where they stopped. None: something only pydicom should read."""
    out: Elements = {}
    data = buf.data
    while True:
        if not buf.has(pos + 8):
            if pos == len(buf.data) and buf.eof:
                return out, pos
            return None
        data = buf.data
        if implicit:
            group, elem, length = _implicit(data, pos)
            vr = None
            start = pos + 8
        else:
            group, elem, raw_vr, length = _short(data, pos)
            vr = _VRS.get(raw_vr)
            if vr is None:  # pydicom would guess (implicit VR switch, unknown VR)
                return None
            start = pos + 8
            if vr in _LONG:
                if not buf.has(pos + 12):
                    return None
                data = buf.data
                (length,) = _long(data, pos + 8)
                start = pos + 12
        tag = group << 16 | elem
        if (group_only is not None and group != group_only) or tag in _PIXELS:
            return out, pos
        if tag == 0xFFFEE00D or length == _UNDEFINED:
            return None
        if not buf.has(start + length):
            return None
        data = buf.data
        value = data[start : start + length] if length else empty_value_for_VR(vr, raw=True)
        out[BaseTag(tag)] = RawDataElement(BaseTag(tag), vr, length, value, start, implicit, True)  # type: ignore[arg-type]
        pos = start + length


def read_header_fast(path: Path) -> Header | None:
    """`read_header(path)` for the common file (see the module docstring); None when pydicom should read it.

    Raises:
        OSError: the file cannot be read.
    """
    with open(path, "rb") as fp:
        buf = _Buffer(fp)
        if not buf.has(132) or buf.data[128:132] != b"DICM":
            return None
        meta = _elements(buf, 132, False, group_only=2)
        if meta is None:
            return None
        meta_elements, pos = meta
        ts_elem = meta_elements.get(BaseTag(0x00020010))
        if ts_elem is None or not isinstance(ts_elem.value, bytes):
            return None
        ts = ts_elem.value.decode("ascii", "replace").rstrip("\x00 ")
        if ts in _NOT_LITTLE:
            return None
        implicit = ts == IMPLICIT_LE
        if implicit and buf.has(pos + 6) and buf.data[pos + 4 : pos + 6] in _VRS:
            return None  # looks explicit: pydicom checks and switches
        found = _elements(buf, pos, implicit)
        if found is None:
            return None
        elements, pos = found
        head = buf.data[pos : pos + 12] if buf.has(pos + 12) else buf.data[pos:]
    file_meta = FileMetaDataset(Dataset(meta_elements))
    ds = FileDataset(str(path), Dataset(elements), b"\0" * 128, file_meta, implicit, True)
    ds.set_original_encoding(implicit, True, ds._character_set)
    header = Header(ds, ts)
    if len(head) >= 8 and struct.unpack_from("<HH", head) == (0x7FE0, 0x0010):
        if implicit:
            (length,) = struct.unpack_from("<I", head, 4)
            header.pixel_offset, header.pixel_vr = pos + 8, "OW"
        else:
            if len(head) < 12:
                return None
            header.pixel_vr = head[4:6].decode("ascii", "replace")
            (length,) = struct.unpack_from("<I", head, 8)
            header.pixel_offset = pos + 12
        header.pixel_length = None if length == _UNDEFINED else length
    return header
