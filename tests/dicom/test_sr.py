"""SR documents (REQ: DCM-06, IMG-05): stored through the SCP like any instance, then their content tree read back as
text (engine/imaging/sr.py) — Basic Text, Enhanced and Comprehensive SR, Chinese in ISO_IR 192 and GB18030."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from sqlalchemy import select

from dicom import status
from dicom.scp import Running
from engine.errors import ValidationFailed
from engine.imaging import sr
from engine.imaging.models import Instance, Study
from tests.dicom import synthetic
from tests.dicom.conftest import dcmtk, rows, sample_file, scalar, store

BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"
ENHANCED_SR = "1.2.840.10008.5.1.4.1.1.88.22"
COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"


def code(value: str, meaning: str, scheme: str = "99TELERAD") -> Sequence:
    c = Dataset()
    c.CodeValue, c.CodingSchemeDesignator, c.CodeMeaning = value, scheme, meaning
    return Sequence([c])


def content(value_type: str, concept: tuple[str, str], relationship: str = "CONTAINS", **values: Any) -> Dataset:
    item = Dataset()
    item.RelationshipType = relationship
    item.ValueType = value_type
    item.ConceptNameCodeSequence = code(*concept)
    for key, value in values.items():
        setattr(item, key, value)
    return item


def num(concept: tuple[str, str], value: str, unit: str) -> Dataset:
    mv = Dataset()
    mv.NumericValue = value
    mv.MeasurementUnitsCodeSequence = code(unit, unit, "UCUM")
    return content("NUM", concept, MeasuredValueSequence=Sequence([mv]))


def chinese_report(path: Path, sop_class: str = ENHANCED_SR, charset: str = "ISO_IR 192") -> Path:
    """A synthetic radiology report SR with Chinese text, nested containers, CODE, NUM, PNAME and DATE items."""
    ds = synthetic.base(sop_class, modality="SR", charset=charset, PatientName="张^三")
    ds.ValueType = "CONTAINER"
    ds.ContinuityOfContent = "SEPARATE"
    ds.ConceptNameCodeSequence = code("18748-4", "影像诊断报告", "LN")
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "VERIFIED"
    findings = content("CONTAINER", ("121070", "检查所见"), ContinuityOfContent="SEPARATE")
    findings.ContentSequence = Sequence(
        [
            content("TEXT", ("121071", "所见"), TextValue="右肺上叶见一结节，边界清晰。"),
            num(("G-D7FE", "结节直径"), "8", "mm"),
            content("CODE", ("121139", "部位"), ConceptCodeSequence=code("T-28300", "右肺上叶", "SRT")),
        ]
    )
    impression = content("CONTAINER", ("121072", "诊断意见"), ContinuityOfContent="SEPARATE")
    impression.ContentSequence = Sequence(
        [content("TEXT", ("121073", "结论"), TextValue="考虑良性结节，建议 6 个月后复查。")]
    )
    ds.ContentSequence = Sequence(
        [
            content("PNAME", ("121008", "报告医生"), "HAS OBS CONTEXT", PersonName="李^四"),
            content("DATE", ("111060", "报告日期"), "HAS OBS CONTEXT", Date="20260301"),
            findings,
            impression,
        ]
    )
    if sop_class == BASIC_TEXT_SR:  # Basic Text SR: no NUM items (PS3.3 A.35.1)
        findings.ContentSequence = Sequence([i for i in findings.ContentSequence if i.ValueType != "NUM"])
    ds.save_as(path, enforce_file_format=True)
    return path


def stored_path(app: Flask, scp: Running, sop_uid: str) -> Path:
    key = scalar(app, select(Instance.storage_key).where(Instance.sop_instance_uid == sop_uid))
    assert key, f"{sop_uid} not indexed"
    return scp.ctx.store.path(key)


def flatten(items: list[dict[str, Any]]) -> list[tuple[str | None, str | None, str]]:
    out = []
    for item in items:
        out.append((item["concept"], item["text"], item["value_type"]))
        out += flatten(item["children"])
    return out


@pytest.mark.parametrize(
    ("sop_class", "charset"),
    [(ENHANCED_SR, "ISO_IR 192"), (COMPREHENSIVE_SR, "ISO_IR 192"), (BASIC_TEXT_SR, "GB18030")],
    ids=["enhanced_utf8", "comprehensive_utf8", "basic_text_gb18030"],
)
def test_dcm06_img05_store_then_read_chinese_sr(
    app: Flask, scp: Running, modality: str, tmp_path: Path, sop_class: str, charset: str
) -> None:
    src = chinese_report(tmp_path / "report.dcm", sop_class, charset)
    ds = dcmread(src)
    assert store(scp.port, modality, [src]) == [status.SUCCESS]
    study = rows(app, select(Study.modalities, Study.patient_name))[0]
    assert study.modalities == "SR"
    assert study.patient_name == "张^三"
    path = stored_path(app, scp, str(ds.SOPInstanceUID))
    assert sr.is_sr_class(str(ds.SOPClassUID))

    doc = sr.read_sr(path)
    assert doc["title"] == "影像诊断报告"
    assert (doc["completion_flag"], doc["verification_flag"]) == ("COMPLETE", "VERIFIED")
    # The tree: observation context, then two containers with their nested items.
    top = [(i["relationship"], i["value_type"], i["concept"]) for i in doc["content"]]
    assert top == [
        ("HAS OBS CONTEXT", "PNAME", "报告医生"),
        ("HAS OBS CONTEXT", "DATE", "报告日期"),
        ("CONTAINS", "CONTAINER", "检查所见"),
        ("CONTAINS", "CONTAINER", "诊断意见"),
    ]
    items = flatten(doc["content"])
    assert ("所见", "右肺上叶见一结节，边界清晰。", "TEXT") in items
    assert ("部位", "右肺上叶", "CODE") in items
    assert ("结论", "考虑良性结节，建议 6 个月后复查。", "TEXT") in items
    assert ("报告医生", "李^四", "PNAME") in items
    if sop_class != BASIC_TEXT_SR:
        assert ("结节直径", "8 mm", "NUM") in items
    lines = doc["text"].splitlines()
    assert lines[0] == "影像诊断报告"
    assert "    所见：右肺上叶见一结节，边界清晰。" in lines  # indented under 检查所见
    assert "  诊断意见" in lines


def test_dcm06_bundled_comprehensive_sr_via_storescu(app: Flask, scp: Running, modality: str) -> None:
    """pydicom's test-SR.dcm (Comprehensive SR, ISO_IR 100) sent by dcmtk's storescu, read back from the store."""
    src = sample_file("test-SR.dcm")
    res = dcmtk("storescu", "-aet", modality, "-aec", "TELERAD", "127.0.0.1", str(scp.port), str(src))
    assert res.returncode == 0, res.stderr
    doc = sr.read_sr(stored_path(app, scp, str(dcmread(src).SOPInstanceUID)))
    assert doc["title"] == "Diagnosis"
    items = flatten(doc["content"])
    assert ("Diameter", "3 cm", "NUM") in items
    assert ("Some UID", "1.2.3.4.5", "UIDREF") in items
    assert any(v == "SCOORD" for _, _, v in items)
    assert any(v == "TCOORD" for _, _, v in items)


def test_dcm06_sr_bounds_and_unreadable_files(tmp_path: Path) -> None:
    """A hostile SR cannot exhaust the reader (DSEC-08): depth and item caps; a non-DICOM file is refused."""
    ds = dcmread(chinese_report(tmp_path / "deep.dcm"))
    node = ds
    for _ in range(sr.MAX_DEPTH + 2):
        child = content("CONTAINER", ("121070", "层"))
        node.ContentSequence = Sequence([child])
        node = child
    with pytest.raises(ValidationFailed) as exc:
        sr.extract(ds)
    assert exc.value.code == "sr_too_deep"

    wide = dcmread(chinese_report(tmp_path / "wide.dcm"))
    wide.ContentSequence = Sequence([content("TEXT", ("1", "x"), TextValue="y") for _ in range(sr.MAX_ITEMS + 1)])
    with pytest.raises(ValidationFailed) as exc:
        sr.extract(wide)
    assert exc.value.code == "sr_too_large"

    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"not dicom at all" * 10)
    with pytest.raises(ValidationFailed) as exc:
        sr.read_sr(junk)
    assert exc.value.code == "sr_unreadable"
