"""What WADO-RS keeps per stored file, and the audit-once key it remembers (issue 15; REQ: VIEW transport, DSEC-10):
the frame index cuts the same bytes pydicom does (Basic Offset Table, one fragment per frame, several fragments of a
single frame, no table with fragments ≠ frames: pydicom's own cut), the metadata template gives metadata_of's
document under any base URL, and a key inserted by a transaction that rolled back is not remembered.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate, get_frame
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, RLELossless, generate_uid
from sqlalchemy import select

from engine import uow
from engine.actor import Actor
from engine.dicomweb import access_audit, frame_index, metadata, wado
from engine.dicomweb import json as dj
from engine.dicomweb.frames import stored_frames
from engine.dicomweb.models import StudyAccess
from engine.imaging.models import Study
from tests.dicom.archive import ingest
from tests.dicom.conftest import add_node


def _write(path: Path, pixel_data: bytes, frames: int, ts: str, **extra: Any) -> Path:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientName, ds.PatientID, ds.Modality = "Wang^Wu=王^五", "P1", "CT"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = 4, 4, 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.NumberOfFrames = frames
    for k, v in extra.items():
        setattr(ds, k, v)
    ds.PixelData = pixel_data
    ds["PixelData"].VR = "OB"
    if ts != ExplicitVRLittleEndian:
        ds["PixelData"].is_undefined_length = True
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ts
    ds.save_as(path, enforce_file_format=True)
    return path


def _ref(path: Path) -> wado.InstanceRef:
    return wado.InstanceRef("1.2", "1.2.3", "1.2.3.4", CTImageStorage, "", path)


FRAGMENTS = [b"\x01" * 10, b"\x02" * 6, b"\x03" * 12, b"\x04" * 4]


@pytest.mark.parametrize(
    ("name", "pixel_data", "frames"),
    [
        ("bot", encapsulate([FRAGMENTS[0] + FRAGMENTS[1], FRAGMENTS[2] + FRAGMENTS[3]], 2, has_bot=True), 2),
        ("one_per_frame", encapsulate(FRAGMENTS, has_bot=False), 4),
        ("single_frame", encapsulate([b"".join(FRAGMENTS)], 3, has_bot=False), 1),
    ],
    ids=["bot", "one_per_frame", "single_frame"],
)
def test_frame_index_cuts_the_frames_pydicom_cuts(tmp_path: Path, name: str, pixel_data: bytes, frames: int) -> None:
    path = _write(tmp_path / f"{name}.dcm", pixel_data, frames, RLELossless)
    index = frame_index.index_of(path)
    assert index.spans is not None
    assert len(index.spans) == frames
    got = stored_frames(_ref(path), index, list(range(1, frames + 1)))
    with open(path, "rb") as fp:
        ds = dcmread(fp, stop_before_pixels=True)
        offset = fp.tell() + 12
        want = []
        for n in range(frames):
            fp.seek(offset)
            want.append(get_frame(fp, n, number_of_frames=frames))
        assert ds.NumberOfFrames == frames
    assert got == [(True, w) for w in want]
    assert frame_index.index_of(path) is index  # kept: the file is read once


def test_frame_index_leaves_ambiguous_fragments_to_pydicom_and_native_frames_are_ranges(tmp_path: Path) -> None:
    # two frames in three fragments, no offset table: the boundaries are in the data (JPEG markers), not the items
    jpeg = [b"\xff\xd8" + b"\x05" * 6, b"\x06" * 4 + b"\xff\xd9", b"\xff\xd8" + b"\x07" * 4 + b"\xff\xd9"]
    path = _write(tmp_path / "ambiguous.dcm", encapsulate(jpeg, has_bot=False), 2, "1.2.840.10008.1.2.4.70")
    index = frame_index.index_of(path)
    assert index.spans is None
    assert stored_frames(_ref(path), index, [2, 1]) == [(True, jpeg[2]), (True, jpeg[0] + jpeg[1])]
    native = bytes(range(32))
    path = _write(tmp_path / "native.dcm", native, 2, ExplicitVRLittleEndian)
    index = frame_index.index_of(path)
    assert stored_frames(_ref(path), index, [2, 1]) == [(True, native[16:]), (True, native[:16])]


def test_metadata_template_is_metadata_of_under_any_base_url(tmp_path: Path) -> None:
    path = _write(tmp_path / "meta.dcm", bytes(range(16)), 1, ExplicitVRLittleEndian, IconImageSequence=[Dataset()])
    ref = _ref(path)
    for base in ("http://a.example/dicomweb", 'https://b.example:8443/dicomweb"x'):
        got = json.loads(metadata.instance_json(ref, base))
        assert got == json.loads(json.dumps(wado.metadata_of(ref, base)))
        assert got["7FE00010"]["BulkDataURI"] == f"{wado.instance_url(base, ref)}/bulkdata/7FE00010"
    assert got["00100010"]["Value"] == [{"Alphabetic": "Wang^Wu", "Ideographic": "王^五"}]


def test_access_key_of_a_rolled_back_transaction_is_not_remembered(app: Flask, tmp_path: Path) -> None:
    """DSEC-10: the day's audit event follows the key row; a key is remembered only once seen committed."""
    node = add_node(app, "MODALITY1")
    ds = dcmread(_write(tmp_path / "s.dcm", bytes(16), 1, ExplicitVRLittleEndian))
    ingest(app, node, [ds])
    actor = Actor(user_id=1, username="u", session_id=f"s-{generate_uid()}")

    def access() -> bool:
        study = uow.session().execute(select(Study)).scalars().one()
        return access_audit.accessed(actor, study, via="wado")

    with app.app_context():
        assert access() is True
        assert access() is False  # this transaction's own row
        uow.session().rollback()
        assert access() is True  # rolled back: inserted (and audited) again
        uow.commit()
        assert access() is False  # the row exists: remembered from now on
        uow.commit()
        rows = uow.session().execute(select(StudyAccess)).scalars().all()
        assert [(r.principal, r.day) for r in rows] == [(f"session:{actor.session_id}", access_audit.today())]
        assert isinstance(rows[0].day, date)
        uow.session().rollback()


@pytest.mark.parametrize(
    ("vr", "value"),
    [
        ("PN", "Wang^Xiaoming=王^小明"),
        ("PN", ["A^B", "=C^D", ""]),
        ("PN", None),
        ("DA", "20200101"),
        ("CS", ["CT", "MR"]),
        ("CS", []),
        ("IS", [1, "2"]),
        ("DS", ["1", "2.25"]),
        ("FD", 0.1),
        ("LO", 'quo"te\\back\nline\x00中文'),
    ],
)
def test_qido_element_text_is_the_element(vr: str, value: Any) -> None:
    """QIDO-RS writes each attribute as JSON text (engine/dicomweb/json.py element_json): the same object."""
    assert json.loads(dj.element_json(vr, value)) == dj.element("X", value, vr)
