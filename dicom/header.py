"""Read the indexed tags of a received Part-10 file without pydicom's per-element machinery (PS3.5 §7, PS3.10 §7).

A small scanner over little-endian data sets (explicit or implicit VR) that stops after (0020,0013), skips every
value it does not need (sequences of undefined length included) and decodes the few it needs with pydicom's
character-set functions. Anything it does not expect — big endian, a value past the bytes read, a malformed
item — returns None and the caller falls back to pydicom (handlers.read_meta). Measured: ~0.1 ms instead of
~0.9 ms per small instance.
"""

from __future__ import annotations

import struct
from pathlib import Path

from pydicom.charset import convert_encodings, decode_bytes
from pydicom.valuerep import PersonName

IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE_FAMILY = {  # every transfer syntax whose data set header is explicit VR little endian
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.4.50",
    "1.2.840.10008.1.2.4.51",
    "1.2.840.10008.1.2.4.57",
    "1.2.840.10008.1.2.4.70",
    "1.2.840.10008.1.2.4.80",
    "1.2.840.10008.1.2.4.81",
    "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.4.91",
    "1.2.840.10008.1.2.5",
}
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
_UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
READ_BYTES = 256 * 1024

# tag -> (keyword, kind)
WANTED = {
    0x00080005: ("SpecificCharacterSet", "cs"),
    0x00080016: ("SOPClassUID", "uid"),
    0x00080018: ("SOPInstanceUID", "uid"),
    0x00080020: ("StudyDate", "ascii"),
    0x00080030: ("StudyTime", "ascii"),
    0x00080050: ("AccessionNumber", "text"),
    0x00080060: ("Modality", "ascii"),
    0x00080090: ("ReferringPhysicianName", "pn"),
    0x00081030: ("StudyDescription", "text"),
    0x0008103E: ("SeriesDescription", "text"),
    0x00100010: ("PatientName", "pn"),
    0x00100020: ("PatientID", "text"),
    0x00100030: ("PatientBirthDate", "ascii"),
    0x00100040: ("PatientSex", "ascii"),
    0x00180015: ("BodyPartExamined", "ascii"),
    0x0020000D: ("StudyInstanceUID", "uid"),
    0x0020000E: ("SeriesInstanceUID", "uid"),
    0x00200010: ("StudyID", "text"),
    0x00200011: ("SeriesNumber", "ascii"),
    0x00200013: ("InstanceNumber", "ascii"),
}
LAST = 0x00200013


class _Unexpected(Exception):
    pass


def _element(buf: bytes, pos: int, explicit: bool) -> tuple[int, int, int]:
    """(tag, value length, value offset) of the element at `pos`."""
    if pos + 8 > len(buf):
        raise _Unexpected
    group, elem = struct.unpack_from("<HH", buf, pos)
    tag = (group << 16) | elem
    if group == 0xFFFE or not explicit:
        (length,) = struct.unpack_from("<I", buf, pos + 4)
        return tag, length, pos + 8
    vr = buf[pos + 4 : pos + 6]
    if vr in _LONG_VRS:
        if pos + 12 > len(buf):
            raise _Unexpected
        (length,) = struct.unpack_from("<I", buf, pos + 8)
        return tag, length, pos + 12
    (length,) = struct.unpack_from("<H", buf, pos + 6)
    return tag, length, pos + 8


def _skip_undefined(buf: bytes, pos: int, explicit: bool, depth: int = 0) -> int:
    """Skip a sequence (or UN) of undefined length starting at `pos` (its first item); returns the next offset."""
    if depth > 32:
        raise _Unexpected
    while True:
        tag, length, pos = _element(buf, pos, explicit)
        if tag == _SEQ_END:
            return pos
        if tag != _ITEM:
            raise _Unexpected
        if length != _UNDEFINED:
            pos += length
            continue
        while True:  # item of undefined length: a nested data set up to the item delimiter
            tag, length, pos = _element(buf, pos, explicit)
            if tag == _ITEM_END:
                break
            pos = _skip_undefined(buf, pos, explicit, depth + 1) if length == _UNDEFINED else pos + length


def _meta_end_and_syntax(buf: bytes) -> tuple[int, str]:
    if buf[128:132] != b"DICM":
        raise _Unexpected
    pos = 132
    syntax = ""
    while pos + 8 <= len(buf) and struct.unpack_from("<H", buf, pos)[0] == 0x0002:
        tag, length, vpos = _element(buf, pos, True)
        if tag == 0x00020010:
            syntax = buf[vpos : vpos + length].rstrip(b"\0 ").decode("ascii")
        pos = vpos + length
    return pos, syntax


def read_header(path: Path | str) -> tuple[str, dict[str, object]] | None:
    """(transfer syntax, {keyword: decoded value}) of the indexed tags, or None when the caller must use pydicom."""
    with open(path, "rb") as fh:
        buf = fh.read(READ_BYTES)
    try:
        pos, syntax = _meta_end_and_syntax(buf)
        if syntax == IMPLICIT_LE:
            explicit = False
        elif syntax in EXPLICIT_LE_FAMILY:
            explicit = True
        else:
            return None
        raw: dict[int, bytes] = {}
        while pos < len(buf):
            tag, length, vpos = _element(buf, pos, explicit)
            if tag > LAST:
                break
            if length == _UNDEFINED:
                pos = _skip_undefined(buf, vpos, explicit)
                continue
            if tag in WANTED:
                if vpos + length > len(buf):
                    raise _Unexpected
                raw[tag] = buf[vpos : vpos + length]
            pos = vpos + length
        else:  # ran out of bytes (truncated, or a header larger than READ_BYTES) before passing the last tag
            return None
    except (_Unexpected, struct.error, UnicodeDecodeError):
        return None
    return syntax, _decode(raw)


def _decode(raw: dict[int, bytes]) -> dict[str, object]:
    charsets = raw.get(0x00080005, b"").decode("ascii", "replace").strip(" \0").split("\\")
    encodings = convert_encodings([c.strip() for c in charsets if c.strip()] or ["ISO_IR 6"])
    out: dict[str, object] = {}
    for tag, value in raw.items():
        keyword, kind = WANTED[tag]
        if kind == "cs":
            continue
        if kind == "uid":
            out[keyword] = value.decode("ascii", "replace").rstrip("\0 ")
        elif kind == "ascii":
            out[keyword] = value.decode("ascii", "replace").strip("\0 ")
        elif kind == "pn":
            out[keyword] = str(PersonName(value.rstrip(b"\0 "), encodings=encodings)).strip()
        else:
            out[keyword] = decode_bytes(value.rstrip(b"\0 "), encodings, set()).strip()
    return out
