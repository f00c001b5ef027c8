"""engine/imaging/header.py reads the same indexed values as pydicom (it replaces pydicom on the hot path,
DSEC-05), from the raw values the structural check (engine/imaging/validate.py) collects on its walk, in every syntax
it walks."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset

from engine.imaging.header import meta_from, read_meta
from engine.imaging.ingest import InvalidInstance
from tests.dicom import synthetic
from tests.dicom.conftest import sample_file

FILES = [
    "CT_small.dcm",
    "MR_small.dcm",
    "MR_small_implicit.dcm",
    "MR_small_RLE.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
    "JPEG2000.dcm",
    "693_J2KI.dcm",
    "SC_rgb_jpeg_dcmtk.dcm",
    "JPGExtended.dcm",
    "examples_jpeg2k.dcm",
    "test-SR.dcm",
    "rtplan.dcm",
    "liver_1frame.dcm",
    "MR_small_bigendian.dcm",  # big endian: pydicom's fallback before the one-pass read
    "image_dfl.dcm",  # deflated
]


def _pydicom_meta(path: Path) -> object:
    ds: Dataset = dcmread(path, stop_before_pixels=True)
    return meta_from(ds.get, str(ds.file_meta.TransferSyntaxUID))


@pytest.mark.parametrize("name", FILES)
def test_header_scanner_matches_pydicom(name: str) -> None:
    path = sample_file(name)
    assert read_meta(path) == _pydicom_meta(path)


def test_header_scanner_refuses_what_is_not_a_whole_part10_data_set(tmp_path: Path) -> None:
    """No File Meta, a truncated header, pixel data without its image attributes: refused (DSEC-08), where the
    scanner before issue 12 handed such files to pydicom, which indexed what it could."""
    truncated = tmp_path / "t.dcm"
    truncated.write_bytes(sample_file("CT_small.dcm").read_bytes()[:1000])  # inside the data set's header
    for path, code in (
        (sample_file("no_meta.dcm"), "dataset_file_meta"),
        (truncated, "dataset_truncated"),
        (sample_file("nested_priv_SQ.dcm"), "dataset_pixel_attributes"),
    ):
        with pytest.raises(InvalidInstance) as err:
            read_meta(path)
        assert err.value.code == code


@pytest.mark.parametrize(("name", "charset"), [("张^三", "ISO_IR 192"), ("李^四=Li^Si", "GB18030")])
def test_header_scanner_decodes_chinese_names(tmp_path: Path, name: str, charset: str) -> None:
    path = synthetic.chinese(tmp_path / "zh.dcm", name, charset, StudyDescription="胸部平扫")
    meta = read_meta(path)
    assert meta.patient_name == name
    assert meta.study_description == "胸部平扫"
    assert meta == _pydicom_meta(path)


def test_header_scanner_skips_undefined_length_sequences(tmp_path: Path) -> None:
    ds = dcmread(synthetic.ct(tmp_path / "a.dcm"))
    inner = Dataset()
    inner.ReferencedSOPInstanceUID = "1.2.3"
    inner.ReferencedSOPClassUID = "1.2.4"
    ds.ReferencedImageSequence = [inner, inner]  # (0008,1140), before the patient module
    ds.ReferencedImageSequence.is_undefined_length = True
    for item in ds.ReferencedImageSequence:
        item.is_undefined_length_sequence_item = True
    path = tmp_path / "seq.dcm"
    ds.save_as(path)
    assert read_meta(path) == _pydicom_meta(path)
