"""Where each top-level element of a stored Part-10 file lies, without parsing any value — for the decoder in the
sandbox (engine/imaging/native.py; REQ: DCM-04, DSEC-08; issue 12 §3).

Decoding a compressed instance changes a handful of elements (Pixel Data and a few image attributes) and copies
every other one as stored. Reading the whole data set with pydicom only to learn where those elements lie cost
~0.7 ms of a CT slice's ~2.4 ms in the sandbox (pydicom builds an element object for each of ~270 elements); this
walks the element headers, skipping values, sequences and encapsulated fragments by their lengths and delimiters.

It reads explicit VR little endian data sets (every compressed transfer syntax is), with nested sequences and items
of defined or undefined length, and implicit VR inside an undefined-length UN (PS3.5 §6.2.2). Anything it does not
expect — a length past the end, tags out of order, an unknown VR, a missing delimiter, nesting deeper than
MAX_DEPTH — returns None and the caller reads the file with pydicom instead (the receive path validated the
structure already: engine/imaging/validate.py; this only has to be right for what it accepts).
"""

from __future__ import annotations

import struct

MAX_DEPTH = 64  # sequences nested in sequences
_LONG = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"})
_SHORT = frozenset(
    {b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO", b"LT", b"PN", b"SH", b"SL", b"SS"}
    | {b"ST", b"TM", b"UI", b"UL", b"US"}
)
_UNDEFINED = 0xFFFFFFFF
_HEADER = struct.Struct("<HH2sH")
_ITEM = struct.Struct("<HHI")
_LONG_LENGTH = struct.Struct("<I")


class _Bad(Exception):
    pass


def _items(raw: bytes, pos: int, implicit: bool, depth: int) -> int:
    """Past the sequence delimiter of an undefined-length sequence (or encapsulated Pixel Data) whose first item
    starts at `pos`; `depth` counts the sequences it is nested in, itself included."""
    if depth > MAX_DEPTH:
        raise _Bad("nested too deep")
    end = len(raw)
    while pos + 8 <= end:
        group, elem, length = _ITEM.unpack_from(raw, pos)
        if group != 0xFFFE:
            raise _Bad("not an item")
        pos += 8
        if elem == 0xE0DD:  # sequence delimitation item
            return pos
        if elem != 0xE000:
            raise _Bad("not an item")
        if length == _UNDEFINED:
            pos = _data_set(raw, pos, implicit, depth, nested=True)
        else:
            pos += length
            if pos > end:
                raise _Bad("item past the end")
    raise _Bad("no sequence delimiter")


def _data_set(raw: bytes, pos: int, implicit: bool, depth: int, nested: bool) -> int:
    """Past the item delimiter of a nested data set (`nested`) or at the end of the top-level one; the top-level
    one is what `spans` records."""
    end = len(raw)
    while pos < end:
        if pos + 8 > end:
            raise _Bad("element header past the end")
        group, elem, vr, short = _HEADER.unpack_from(raw, pos)
        if nested and group == 0xFFFE and elem == 0xE00D:  # item delimitation item
            return pos + 8
        if implicit:
            (length,) = _LONG_LENGTH.unpack_from(raw, pos + 4)
            header, long_vr = 8, True
        elif vr in _LONG:
            if pos + 12 > end:
                raise _Bad("element header past the end")
            (length,) = _LONG_LENGTH.unpack_from(raw, pos + 8)
            header, long_vr = 12, True
        elif vr in _SHORT:
            length, header, long_vr = short, 8, False
        else:
            raise _Bad(f"VR {vr!r}")
        pos += header
        if long_vr and length == _UNDEFINED:
            pos = _items(raw, pos, implicit or vr == b"UN", depth + 1)
        else:
            pos += length
            if pos > end:
                raise _Bad("value past the end")
    if nested:
        raise _Bad("no item delimiter")
    return pos


def spans(raw: bytes, start: int) -> dict[int, tuple[int, int]] | None:
    """{tag: (start, stop)} of each top-level element of the explicit VR little endian data set in `raw` from
    `start` to its end, in ascending tag order, tiling it exactly; None when the data set is not as expected."""
    out: dict[int, tuple[int, int]] = {}
    pos, end, last = start, len(raw), -1
    try:
        while pos < end:
            if pos + 8 > end:
                return None
            group, elem, vr, short = _HEADER.unpack_from(raw, pos)
            tag = group << 16 | elem
            if tag <= last or group == 0xFFFE:
                return None
            last = tag
            if vr in _LONG:
                if pos + 12 > end:
                    return None
                (length,) = _LONG_LENGTH.unpack_from(raw, pos + 8)
                stop = pos + 12 + length
                if length == _UNDEFINED:
                    stop = _items(raw, pos + 12, vr == b"UN", 1)
            elif vr in _SHORT:
                stop = pos + 8 + short
            else:
                return None
            if stop > end:
                return None
            out[tag] = (pos, stop)
            pos = stop
    except (_Bad, struct.error, RecursionError):
        return None
    return out


def meta(raw: bytes) -> tuple[str, int] | None:
    """(Transfer Syntax UID, offset of the data set) of a Part-10 file, from its File Meta Information (explicit VR
    little endian, group 0002); None when it is not a Part-10 file as expected."""
    if raw[128:132] != b"DICM":
        return None
    pos, end, syntax = 132, len(raw), None
    try:
        while pos + 8 <= end:
            group, elem, vr, short = _HEADER.unpack_from(raw, pos)
            if group != 0x0002:
                break
            if vr in _LONG:
                (length,) = _LONG_LENGTH.unpack_from(raw, pos + 8)
                header = 12
            elif vr in _SHORT:
                length, header = short, 8
            else:
                return None
            if length == _UNDEFINED or pos + header + length > end:
                return None
            if elem == 0x0010:
                syntax = raw[pos + header : pos + header + length].rstrip(b"\0 ").decode("ascii")
            pos += header + length
    except (struct.error, UnicodeDecodeError):
        return None
    return (syntax, pos) if syntax else None
