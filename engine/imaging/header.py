"""The indexed tags of a received Part-10 file (PS3.5 §7, PS3.10 §7), read on the structural check's walk.

`read_meta` is what the receive service (engine/imaging/receive.py) indexes, whatever the source: the structure of
the whole data set is checked by engine/imaging/validate.py (REQ: DSEC-05, DSEC-08), which hands over the raw values
of the top-level WANTED elements it passes — one pass over the header, in every syntax the validator walks (little
and big endian, implicit and explicit VR, deflated), never the pixel data — and they are decoded here with pydicom's
character-set functions. (Before issue 12 a separate scanner stopped after (0020,0013), with pydicom as its
fallback; the check walks the whole data set anyway, so a second pass would only cost time.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydicom.charset import convert_encodings, decode_bytes
from pydicom.multival import MultiValue
from pydicom.valuerep import PersonName

from engine.imaging import validate
from engine.imaging.ingest import InstanceMeta, InvalidInstance

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


def _decode(raw: dict[int, bytes]) -> dict[str, object]:
    charsets = raw.get(0x00080005, b"").decode("ascii", "replace").strip(" \0").split("\\")
    encodings = convert_encodings([c.strip() for c in charsets if c.strip()] or ["ISO_IR 6"])
    out: dict[str, object] = {}
    for tag, value in raw.items():
        keyword, kind = WANTED.get(tag, ("", "cs"))
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
    """The InstanceMeta of decoded values (`get(keyword)`: the decoded WANTED values, or a pydicom Dataset), cut to
    the index columns' widths."""
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
    """Check the structure of the whole received Part-10 file and read its indexed tags on the same walk (REQ:
    DSEC-05, DSEC-08: before anything is placed or indexed).

    Raises:
        InvalidInstance: the data set is not whole and well-formed (validate.BrokenDataset), or an indexed value
            cannot be decoded.
    """
    syntax, raw = validate.check_file(path, collect=WANTED)
    try:
        return meta_from(_decode(raw).get, syntax)
    except Exception as exc:  # any decode error of untrusted bytes is a refusal, never a crash (DSEC-08)
        raise InvalidInstance("unreadable", "数据集无法解析", {"error": type(exc).__name__}) from exc
