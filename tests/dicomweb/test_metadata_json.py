"""WADO-RS metadata from raw elements (engine/dicomweb/rawjson.py; issue 15): the same DICOM JSON document as
pydicom's own conversion (engine/dicomweb/wado.py metadata_of) — BulkDataURIs and nested sequences included — on
every readable file of pydicom's test data (explicit and implicit VR, big endian, character sets, private tags,
sequences) and on Chinese names in ISO_IR 192 and GB18030.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pydicom.data
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from engine.dicomweb import metadata, wado

BASE = "http://telerad.example:8443/dicomweb"


def _files() -> list[Path]:
    """pydicom's own test files (those shipped with it: nothing is downloaded)."""
    root = Path(pydicom.data.__file__).parent / "test_files"
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in (".dcm", ""))


def _same(path: Path) -> None:
    ref = wado.InstanceRef("1.2.3", "1.2.3.4", "1.2.3.4.5", "", "", path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            want = wado.metadata_of(ref, BASE)
        except Exception:  # noqa: BLE001 - a file pydicom cannot read is not served by either
            pytest.skip(f"pydicom cannot read {path.name}")
        got = metadata.metadata_doc(ref, BASE)
    assert json.dumps(got, sort_keys=True) == json.dumps(want, sort_keys=True)


@pytest.mark.parametrize("path", _files(), ids=lambda p: p.name)
def test_raw_metadata_is_pydicoms_on_its_test_files(path: Path) -> None:
    _same(path)


@pytest.mark.parametrize("charset", ["ISO_IR 192", "GB18030"])
@pytest.mark.parametrize("ts", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_raw_metadata_of_chinese_text_sequences_and_bulk(tmp_path: Path, charset: str, ts: str) -> None:
    ds = Dataset()
    ds.SpecificCharacterSet = charset
    ds.SOPClassUID, ds.SOPInstanceUID = SecondaryCaptureImageStorage, generate_uid()
    ds.PatientName = "Wang^Xiaoming=王^小明"
    ds.PatientID, ds.StudyDescription = "  P1 ", "胸部 CT\\平扫 "
    ds.ImageComments = "第一行\\第二行 "
    ds.Modality, ds.ImageType = "OT", ["DERIVED", "", "AXIAL"]
    ds.InstanceNumber, ds.ImagePositionPatient, ds.SliceThickness = "7", ["-1.5", "2", "1e2"], ""
    ds.Rows, ds.Columns, ds.LossyImageCompressionRatio = 2, 2, None
    item = Dataset()
    item.CodeMeaning, item.CodeValue = "肺", "39607008"
    item.add_new(0x00091010, "OB", b"\x01" * 2000)  # a private bulk value inside an item
    ds.AnatomicRegionSequence = [item, Dataset()]
    ds.add_new(0x00091010, "LO", "TELERAD")
    ds.RedPaletteColorLookupTableData = b"\x02" * 16
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ts
    path = tmp_path / "chinese.dcm"
    ds.save_as(path, enforce_file_format=True)
    _same(path)
    doc = metadata.metadata_doc(wado.InstanceRef("1.2.3", "1.2.3.4", "1.2.3.4.5", "", "", path), BASE)
    assert doc["00100010"]["Value"] == [{"Alphabetic": "Wang^Xiaoming", "Ideographic": "王^小明"}]
    assert doc["00081030"]["Value"] == ["胸部 CT", "平扫"]
    assert doc["00082218"]["Value"][0]["00091010"]["BulkDataURI"].endswith("/bulkdata/00082218/0/00091010")
