"""The DICOM documents of the viewer's writes (issue 16; REQ: VIEW-08, RPT-05): the measurement report the browser
made (SR TID 1500, Cornerstone3D's adapters over dcmjs), checked before it is stored, and the Key Object Selection
document of the key images, made here with highdicom. Both are then stored through the one receive path
(engine/imaging/receive.py) under the study's own institution by the caller (api/viewer/views.py).

Nothing here writes the database or the store.
"""

from __future__ import annotations

import base64
import binascii
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO
from typing import Any

import highdicom
from highdicom.ko import KeyObjectSelection, KeyObjectSelectionDocument
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.sr.codedict import codes
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from engine.errors import ValidationFailed
from engine.imaging.models import Study

# The SR classes a TID 1500 measurement report may have: dcmjs writes Enhanced SR, Comprehensive 3D SR for
# measurements in a volume (PS3.4 B.5).
SR_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.88.22": "Enhanced SR",
    "1.2.840.10008.5.1.4.1.1.88.33": "Comprehensive SR",
    "1.2.840.10008.5.1.4.1.1.88.34": "Comprehensive 3D SR",
}
MAX_SR_BYTES = 512 * 1024  # base64 in a JSON body capped at 1 MB (api/security.py)
MAX_SR_DEPTH = 16
MANUFACTURER = "telerad"
SERIES_NUMBER_SR = 9901
SERIES_NUMBER_KOS = 9902


@dataclass(frozen=True)
class CheckedSr:
    raw: bytes
    sop_instance_uid: str
    series_instance_uid: str
    references: set[str]


def decode_base64(value: str, limit: int, code: str) -> bytes:
    """A base64 Part-10 field of a request.

    Raises:
        ValidationFailed: not base64, or over `limit` bytes.
    """
    if len(value) > (limit * 4) // 3 + 8:
        raise ValidationFailed(code, "DICOM 文档过大", {"limit": limit})
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValidationFailed(code, "DICOM 文档不是有效的 base64 编码") from None


def _references(ds: Dataset, depth: int = 0) -> Iterator[str]:
    """Every ReferencedSOPInstanceUID in the data set, at any depth (the content tree and the evidence)."""
    if depth > MAX_SR_DEPTH:
        raise ValidationFailed("sr_too_deep", "结构化报告的内容树层次过深")
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value:
                yield from _references(item, depth + 1)
        elif elem.keyword == "ReferencedSOPInstanceUID":
            yield str(elem.value)


def check_sr(raw: bytes, study: Study) -> tuple[CheckedSr, Dataset]:
    """The measurement report the browser made, if it is a TID 1500 SR of this study (the caller then checks that
    every image it references is an instance of the study: `CheckedSr.references`).

    Raises:
        ValidationFailed: unreadable, not an SR, not TID 1500, of another study or patient, references no image.
    """
    if len(raw) > MAX_SR_BYTES:
        raise ValidationFailed("sr_too_large", "结构化报告过大", {"limit": MAX_SR_BYTES})
    try:
        with warnings.catch_warnings():  # a non-conforming value is the receive path's to judge (and audit)
            warnings.simplefilter("ignore")
            ds = dcmread(BytesIO(raw))
            sop_class = str(ds.get("SOPClassUID", ""))
            template = ds.get("ContentTemplateSequence")
            template_id = str(template[0].get("TemplateIdentifier", "")) if template else ""
            study_uid, modality = str(ds.get("StudyInstanceUID", "")), str(ds.get("Modality", ""))
            patient_id = str(ds.get("PatientID", "") or "")
            refs = set(_references(ds))
            sop_uid, series_uid = str(ds.get("SOPInstanceUID", "")), str(ds.get("SeriesInstanceUID", ""))
    except (InvalidDicomError, ValueError, TypeError, KeyError, AttributeError, EOFError, OverflowError):
        raise ValidationFailed("sr_unreadable", "无法读取结构化报告（不是有效的 DICOM 文件）") from None
    if sop_class not in SR_CLASSES or modality != "SR":
        raise ValidationFailed(
            "sr_wrong_class", "上传的文档不是测量结构化报告（SR）", {"sop_class_uid": sop_class[:64]}
        )
    if template_id != "1500":
        raise ValidationFailed("sr_not_tid1500", "结构化报告不是 TID 1500 测量报告")
    if study_uid != study.study_instance_uid:
        raise ValidationFailed("sr_wrong_study", "结构化报告不属于本检查")
    if study.patient_id and patient_id != study.patient_id:
        raise ValidationFailed("sr_wrong_patient", "结构化报告的患者与本检查不一致")
    if not refs:
        raise ValidationFailed("sr_no_reference", "结构化报告未引用本检查的任何图像")
    if sop_uid in refs:
        raise ValidationFailed("sr_self_reference", "结构化报告引用了自身")
    return CheckedSr(raw, sop_uid, series_uid, refs), ds


@dataclass(frozen=True)
class KeyImageRef:
    """One selected image: its header (no pixel data) and the frames chosen in it (multi-frame)."""

    header: Dataset
    frames: list[int]


def build_kos(
    study: Study,
    images: list[KeyImageRef],
    *,
    series_uid: str,
    instance_number: int,
    author_name: str,
    description: str | None,
) -> tuple[bytes, str]:
    """The Key Object Selection document (TID 2010, title "Of Interest" from CID 7010) of the key images, as a
    Part-10 file in Explicit VR Little Endian; and its SOP Instance UID.

    Raises:
        ValidationFailed: highdicom refused the references (e.g. headers of another study).
    """
    observer = highdicom.sr.ObserverContext(
        observer_type=codes.DCM.Person,
        observer_identifying_attributes=highdicom.sr.PersonObserverIdentifyingAttributes(
            name=_person_name(author_name)
        ),
    )
    headers = [i.header for i in images]
    try:
        content = KeyObjectSelection(
            document_title=codes.DCM.OfInterest,
            referenced_objects=headers,
            observer_person_context=observer,
            description=description,
        )
        sop_uid = generate_uid()
        doc = KeyObjectSelectionDocument(
            evidence=_unique(headers),
            content=content,
            series_instance_uid=series_uid,
            series_number=SERIES_NUMBER_KOS,
            sop_instance_uid=sop_uid,
            instance_number=instance_number,
            manufacturer=MANUFACTURER,
            transfer_syntax_uid=ExplicitVRLittleEndian,
        )
    except (ValueError, TypeError, AttributeError) as exc:
        raise ValidationFailed("kos_failed", "无法生成关键图像文档", {"reason": str(exc)[:200]}) from None
    _add_frames(doc, images)
    doc.SpecificCharacterSet = "ISO_IR 192"
    doc.SeriesDescription = "关键图像"
    out = BytesIO()
    doc.save_as(out, enforce_file_format=True)
    return out.getvalue(), sop_uid


def _person_name(name: str) -> str:
    """The doctor's display name as a PN family name (a trailing ^: one component on purpose)."""
    return (name or "telerad").replace("^", " ").replace("\\", " ").replace("=", " ")[:62] + "^"


def _unique(headers: list[Dataset]) -> list[Dataset]:
    seen: set[str] = set()
    out = []
    for h in headers:
        if h.SOPInstanceUID not in seen:
            seen.add(h.SOPInstanceUID)
            out.append(h)
    return out


def _add_frames(doc: Dataset, images: list[KeyImageRef]) -> None:
    """Name the selected frames of multi-frame images in the IMAGE items' ReferencedSOPSequence (PS3.3 C.17.3.2.1;
    highdicom references the whole instance)."""
    frames = {str(i.header.SOPInstanceUID): i.frames for i in images if _frame_count(i.header) > 1}
    if not frames:
        return
    for item in doc.ContentSequence:
        for ref in item.get("ReferencedSOPSequence", []):
            chosen = frames.get(str(ref.ReferencedSOPInstanceUID))
            if chosen:
                ref.ReferencedFrameNumber = chosen if len(chosen) > 1 else chosen[0]


def _frame_count(header: Dataset) -> int:
    try:
        return int(header.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):
        return 1


def read_header(path: Any) -> Dataset:
    """A stored instance's header, without its pixel data."""
    return dcmread(path, stop_before_pixels=True)
