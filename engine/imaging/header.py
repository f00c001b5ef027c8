"""Read the indexed tags of a received Part-10 file without pydicom's per-element machinery (PS3.5 §7, PS3.10 §7).

`read_meta` is what the receive service (engine/imaging/receive.py) indexes, whatever the source. `read_header`
is a small scanner over little-endian data sets (explicit or implicit VR) that stops after (0020,0013), skips every
value it does not need (sequences of undefined length included) and decodes the few it needs with pydicom's
character-set functions. Anything it does not expect — big endian, a value past the bytes read, a malformed
item — returns None and `read_meta` falls back to pydicom. Measured: ~0.1 ms instead of ~0.9 ms per small
instance. Neither ever reads the pixel data (REQ: DSEC-05).
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

from pydicom.charset import convert_encodings, decode_bytes
from pydicom.filereader import read_partial
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag, Tag
from pydicom.valuerep import PersonName

from engine.imaging.ingest import InstanceMeta, InvalidInstance

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


# -- the indexed tags, by the scanner or by pydicom ------------------------------------------------------------------
# The tags indexed at ingest (read with stop_before_pixels; REQ: DSEC-05 "never decode pixel data").
_META_TAGS: list[BaseTag | int] = [Tag(tag) for tag in WANTED]
_LAST_META_TAG = max(_META_TAGS)  # (0020,0013) InstanceNumber: parsing stops after it


def _past_meta_tags(tag: Any, vr: Any, length: int) -> bool:
    return bool(tag > _LAST_META_TAG)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, MultiValue | list):
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def _int(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def meta_from(get: Any, transfer_syntax: str) -> InstanceMeta:
    """The InstanceMeta of decoded values (`get(keyword)`: the scanner's dict or a pydicom Dataset), cut to the
    index columns' widths."""
    return InstanceMeta(
        sop_class_uid=_text(get("SOPClassUID")),
        sop_instance_uid=_text(get("SOPInstanceUID")),
        study_instance_uid=_text(get("StudyInstanceUID")),
        series_instance_uid=_text(get("SeriesInstanceUID")),
        transfer_syntax_uid=transfer_syntax,
        patient_id=_text(get("PatientID"))[:64],
        patient_name=_text(get("PatientName"))[:324],
        patient_birth_date=_text(get("PatientBirthDate"))[:8],
        patient_sex=_text(get("PatientSex"))[:16],
        study_date=_text(get("StudyDate"))[:8],
        study_time=_text(get("StudyTime"))[:16],
        accession_number=_text(get("AccessionNumber"))[:64],
        study_description=_text(get("StudyDescription"))[:256],
        study_id=_text(get("StudyID"))[:16],
        referring_physician=_text(get("ReferringPhysicianName"))[:324],
        modality=_text(get("Modality"))[:16],
        series_number=_int(get("SeriesNumber")),
        body_part=_text(get("BodyPartExamined"))[:64],
        series_description=_text(get("SeriesDescription"))[:256],
        instance_number=_int(get("InstanceNumber")),
    )


def read_meta(path: Path) -> InstanceMeta:
    """The indexed tags of a received Part-10 file, read without the pixel data: by the scanner above, or by
    pydicom up to the last indexed tag when the scanner declines.

    Raises:
        InvalidInstance: the file cannot be parsed.
    """
    try:
        fast = read_header(path)
        if fast is not None:
            syntax, values = fast
            return meta_from(values.get, syntax)
        with open(path, "rb") as fh:  # parse the header only up to the last indexed tag, never the pixel data
            ds = read_partial(fh, stop_when=_past_meta_tags, specific_tags=_META_TAGS, defer_size=4096)
        return meta_from(ds.get, str(ds.file_meta.get("TransferSyntaxUID", "")))
    except InvalidInstance:
        raise
    except Exception as exc:  # any parse error of untrusted bytes is a refusal, never a crash (DSEC-08)
        raise InvalidInstance("unreadable", "数据集无法解析", {"error": type(exc).__name__}) from exc
