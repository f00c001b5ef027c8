"""DICOM Structured Report text: the content tree of an SR instance as plain, structured text (REQ: DCM-06, IMG-05).

Read with pydicom (no pixel data), bounded in depth, item count and file size so a hostile SR cannot exhaust the
web process (DSEC-08). Character sets (ISO_IR 192, GB18030 …) are decoded by pydicom from (0008,0005).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from engine.errors import ValidationFailed

SR_PREFIX = "1.2.840.10008.5.1.4.1.1.88."  # every SR Storage SOP class (PS3.4 B.5: Basic Text … Enhanced Dose)
MAX_DEPTH = 32
MAX_ITEMS = 5000
MAX_BYTES = 64 * 1024 * 1024

RELATIONSHIPS = {
    "CONTAINS": "包含",
    "HAS PROPERTIES": "属性",
    "HAS OBS CONTEXT": "观察上下文",
    "HAS ACQ CONTEXT": "采集上下文",
    "HAS CONCEPT MOD": "概念修饰",
    "INFERRED FROM": "推断自",
    "SELECTED FROM": "选自",
}


def is_sr_class(sop_class_uid: str) -> bool:
    """True for the SR Storage SOP classes (Basic/Enhanced/Comprehensive SR, Key Object Selection, dose reports)."""
    return (sop_class_uid or "").startswith(SR_PREFIX)


def _meaning(seq: Any) -> str | None:
    if not seq:
        return None
    item = seq[0]
    return str(item.get("CodeMeaning", "") or item.get("CodeValue", "")) or None


def _value(item: Dataset) -> str | None:
    vt = str(item.get("ValueType", ""))
    if vt == "TEXT":
        return str(item.get("TextValue", ""))
    if vt == "CODE":
        return _meaning(item.get("ConceptCodeSequence"))
    if vt == "NUM":
        seq = item.get("MeasuredValueSequence")
        if not seq:
            return None
        mv = seq[0]
        units = mv.get("MeasurementUnitsCodeSequence")
        unit = str(units[0].get("CodeValue", "")) if units else ""
        number = str(mv.get("NumericValue", ""))
        return f"{number} {unit}".strip() if unit and unit != "1" else number
    if vt == "DATETIME":
        return str(item.get("DateTime", ""))
    if vt == "DATE":
        return str(item.get("Date", ""))
    if vt == "TIME":
        return str(item.get("Time", ""))
    if vt == "PNAME":
        return str(item.get("PersonName", ""))
    if vt == "UIDREF":
        return str(item.get("UID", ""))
    if vt in ("IMAGE", "COMPOSITE", "WAVEFORM"):
        refs = item.get("ReferencedSOPSequence")
        return f"引用实例 {refs[0].get('ReferencedSOPInstanceUID', '')}" if refs else "引用实例"
    if vt in ("SCOORD", "SCOORD3D", "TCOORD"):
        return f"坐标 ({str(item.get('GraphicType', '') or item.get('TemporalRangeType', ''))})"
    return None


class _Walker:
    def __init__(self) -> None:
        self.count = 0
        self.lines: list[str] = []

    def items(self, seq: Any, depth: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if not seq:
            return out
        if depth > MAX_DEPTH:
            raise ValidationFailed("sr_too_deep", f"结构化报告嵌套超过 {MAX_DEPTH} 层")
        for item in seq:
            self.count += 1
            if self.count > MAX_ITEMS:
                raise ValidationFailed("sr_too_large", f"结构化报告内容超过 {MAX_ITEMS} 项")
            concept = _meaning(item.get("ConceptNameCodeSequence"))
            text = _value(item)
            vt = str(item.get("ValueType", ""))
            rel = str(item.get("RelationshipType", "")) or None
            label = concept or ""
            line = f"{label}：{text}" if label and text else (label or text or "")
            if line:
                self.lines.append("  " * depth + line)
            children = self.items(item.get("ContentSequence"), depth + 1)
            out.append({"relationship": rel, "value_type": vt, "concept": concept, "text": text, "children": children})
        return out


def extract(ds: Dataset) -> dict[str, Any]:
    """The content tree of an SR data set: title, flags, nested items and an indented text rendering.

    Raises:
        ValidationFailed: the tree is deeper or larger than the bounds.
    """
    walker = _Walker()
    title = _meaning(ds.get("ConceptNameCodeSequence"))
    if title:
        walker.lines.append(title)
    content = walker.items(ds.get("ContentSequence"), 1 if title else 0)
    return {
        "title": title,
        "completion_flag": str(ds.get("CompletionFlag", "")) or None,
        "verification_flag": str(ds.get("VerificationFlag", "")) or None,
        "content": content,
        "text": "\n".join(walker.lines),
    }


def read_sr(path: Path) -> dict[str, Any]:
    """Read an SR file from the object store and extract its text (see `extract`).

    Raises:
        ValidationFailed: the file is too large, not DICOM, or its content cannot be read.
    """
    if path.stat().st_size > MAX_BYTES:
        raise ValidationFailed("sr_too_large", "结构化报告文件过大")
    try:
        ds = dcmread(path, stop_before_pixels=True)
        return extract(ds)
    except ValidationFailed:
        raise
    except (InvalidDicomError, ValueError, KeyError, AttributeError, TypeError, LookupError) as exc:
        raise ValidationFailed("sr_unreadable", "无法读取结构化报告内容") from exc
