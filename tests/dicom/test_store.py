"""C-ECHO and C-STORE against real peers (dcmtk storescu/echoscu, pynetdicom): stored as received, indexed, durable,
idempotent (REQ: DCM-02, DCM-03, IMG-01, DSEC-03, DSEC-05, DSEC-06)."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid
from sqlalchemy import select

from dicom import status
from dicom.scp import Running
from engine.accounts.models import Institution
from engine.imaging.exam_models import IngestEvent
from engine.imaging.models import Instance, InstanceConflict, Series, Study
from engine.imaging.storage import ObjectStore
from tests.conftest import BACKEND, database_backends, terminate_backends
from tests.dicom import synthetic
from tests.dicom.conftest import (
    add_node,
    associate,
    audit_events,
    count,
    dataset_bytes,
    dcmtk,
    echo_ok,
    fresh_copy,
    rows,
    sample_file,
    scalar,
    store,
    worker_applies_ingest_events,
)

# pydicom's bundled test files: every listed modality family and transfer syntax of issue 4 that ships locally.
BUNDLED = [
    "CT_small.dcm",  # CT, explicit VR LE
    "MR_small.dcm",  # MR
    "MR_small_RLE.dcm",  # RLE Lossless
    "MR_small_jpeg_ls_lossless.dcm",  # JPEG-LS Lossless
    "JPEGLSNearLossless_08.dcm",  # JPEG-LS near-lossless
    "MR_small_jp2klossless.dcm",  # JPEG 2000 Lossless
    "JPEG2000.dcm",  # JPEG 2000
    "693_J2KI.dcm",  # CT in JPEG 2000
    "SC_rgb_jpeg_dcmtk.dcm",  # JPEG Baseline
    "JPGExtended.dcm",  # JPEG Extended
    "SC_rgb_jpeg_gdcm.dcm",  # JPEG Lossless SV1
    "SC_rgb_rle.dcm",  # RLE, colour
    "examples_jpeg2k.dcm",  # US, JPEG 2000 lossless
    "test-SR.dcm",  # Comprehensive SR
]


# storescu proposes only uncompressed syntaxes unless told which compressed one to offer.
STORESCU_TS_FLAG = {
    "1.2.840.10008.1.2.4.50": "-xy",
    "1.2.840.10008.1.2.4.51": "-xx",
    "1.2.840.10008.1.2.4.70": "-xs",
    "1.2.840.10008.1.2.4.80": "-xt",
    "1.2.840.10008.1.2.4.81": "-xu",
    "1.2.840.10008.1.2.4.90": "-xv",
    "1.2.840.10008.1.2.4.91": "-xw",
    "1.2.840.10008.1.2.5": "-xr",
}


def storescu(port: int, aet: str, *files: Path) -> str:
    ts = str(dcmread(files[0], stop_before_pixels=True).file_meta.TransferSyntaxUID)
    flags = [STORESCU_TS_FLAG[ts]] if ts in STORESCU_TS_FLAG else []
    res = dcmtk(
        "storescu", "-v", "-R", *flags, "-aet", aet, "-aec", "TELERAD", "127.0.0.1", str(port), *map(str, files)
    )
    return res.stdout + res.stderr


def prepared(name: str, tmp_path: Path) -> Path:
    """A bundled file; those without Study/Series UIDs (not sendable as an instance) get them in a copy."""
    src = sample_file(name)
    if "StudyInstanceUID" in dcmread(src, stop_before_pixels=True):
        return src
    return fresh_copy(src, tmp_path / name)


def stored_file(app: Flask, scp: Running, sop_uid: str) -> Path:
    key = scalar(app, select(Instance.storage_key).where(Instance.sop_instance_uid == sop_uid))
    assert key, f"no index row for {sop_uid}"
    return ObjectStore(scp.ctx.store.root).path(key)


def test_dcm03_echo(scp: Running, modality: str) -> None:
    assert echo_ok(scp.port, modality)


@pytest.mark.parametrize("name", BUNDLED)
def test_dcm02_storescu_bundled_file_stored_as_received_and_indexed(
    app: Flask, scp: Running, modality: str, name: str, tmp_path: Path
) -> None:
    src = prepared(name, tmp_path)
    out = storescu(scp.port, modality, src)
    ds = dcmread(src, stop_before_pixels=True)
    assert "Success" in out or "status: 0x0000" in out.lower(), out
    path = stored_file(app, scp, str(ds.SOPInstanceUID))
    # Stored as storescu sent it: same transfer syntax, every value equal (storescu itself drops the
    # DataSetTrailingPadding some files carry and fixes OW to OB on encapsulated pixel data), never transcoded;
    # byte identity is checked in the next test, where the SCU sends the file's bytes.
    stored, original = dcmread(path), dcmread(src)
    assert stored.file_meta.TransferSyntaxUID == ds.file_meta.TransferSyntaxUID

    def values(ds: Dataset) -> list[tuple[int, object]]:  # group lengths are recomputed by storescu
        return [(e.tag, e.value) for e in ds if e.tag != 0xFFFCFFFC and e.tag.element != 0]

    assert values(stored) == values(original)
    inst = rows(app, select(Instance.sop_class_uid, Instance.transfer_syntax_uid, Instance.size, Instance.sha256))[0]
    assert inst.sop_class_uid == ds.SOPClassUID
    assert inst.transfer_syntax_uid == ds.file_meta.TransferSyntaxUID
    assert inst.size == path.stat().st_size
    assert ObjectStore(scp.ctx.store.root).verify(path.relative_to(scp.ctx.store.root).as_posix(), inst.sha256)
    study = rows(app, select(Study.study_instance_uid, Study.patient_id, Study.modalities))[0]
    assert study.study_instance_uid == ds.StudyInstanceUID
    assert study.patient_id == str(ds.get("PatientID", ""))
    if ds.get("Modality"):
        assert ds.Modality in study.modalities.split(",")
    assert count(app, Series) == 1


@pytest.mark.parametrize("name", BUNDLED)
def test_dcm02_stored_byte_identical_to_what_was_sent(
    app: Flask, scp: Running, modality: str, name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from pynetdicom import _config

    monkeypatch.setattr(_config, "STORE_SEND_CHUNKED_DATASET", True)  # the SCU sends the file's data set bytes
    src = prepared(name, tmp_path)
    assert store(scp.port, modality, [src]) == [status.SUCCESS]
    path = stored_file(app, scp, str(dcmread(src, stop_before_pixels=True).SOPInstanceUID))
    assert dataset_bytes(path) == dataset_bytes(src)


@pytest.mark.parametrize("maker", [synthetic.us_multiframe, synthetic.encapsulated_pdf])
def test_dcm02_storescu_synthetic_us_multiframe_and_pdf(
    app: Flask, scp: Running, modality: str, tmp_path: Path, maker: object
) -> None:
    src = maker(tmp_path / "in.dcm")  # type: ignore[operator]
    out = storescu(scp.port, modality, src)
    ds = dcmread(src, stop_before_pixels=True)
    path = stored_file(app, scp, str(ds.SOPInstanceUID))
    assert dataset_bytes(path) == dataset_bytes(src), out


def test_dcm02_many_instances_one_association_one_audit_per_study(
    app: Flask, scp: Running, modality: str, tmp_path: Path
) -> None:
    study_uid = "1.2.826.0.1.3680043.8.498.100"
    files = [
        fresh_copy(sample_file("CT_small.dcm"), tmp_path / f"{i}.dcm", StudyInstanceUID=study_uid, InstanceNumber=i)
        for i in range(20)
    ]
    for f in files[1:]:  # one series
        ds = dcmread(f)
        ds.SeriesInstanceUID = dcmread(files[0]).SeriesInstanceUID
        ds.save_as(f)
    assert store(scp.port, modality, files) == [status.SUCCESS] * 20
    assert count(app, Instance) == 20
    assert count(app, Study) == 1
    assert count(app, Series) == 1
    # REQ: DSEC-10 / issue 4: one audit event per association per study, not one per instance (queued in the
    # index transaction as one outbox row, chained by the worker).
    assert count(app, IngestEvent) == 1
    assert worker_applies_ingest_events(app) == 1
    events = audit_events(app, "dicom_instances_stored")
    assert len(events) == 1
    assert events[0].details["study_instance_uid"] == study_uid
    assert events[0].institution_code == "M01"


def test_dcm04_modalities_in_study_follow_new_series_in_and_across_associations(
    app: Flask, scp: Running, modality: str, tmp_path: Path
) -> None:
    """ModalitiesInStudy: a new study carries its first series' modality from the insert; a series of another
    modality (same association or a later one) adds it; another series of a known modality changes nothing."""
    study_uid = "1.2.826.0.1.3680043.8.498.200"

    def one(name: str, mod: str) -> Path:
        return fresh_copy(sample_file("CT_small.dcm"), tmp_path / name, StudyInstanceUID=study_uid, Modality=mod)

    def modalities() -> str:
        return str(scalar(app, select(Study.modalities).where(Study.study_instance_uid == study_uid)))

    assert store(scp.port, modality, [one("a.dcm", "CT")]) == [status.SUCCESS]
    assert modalities() == "CT"
    assert (
        store(scp.port, modality, [one("b.dcm", "CT"), one("c.dcm", "OT"), one("d.dcm", "CT")]) == [status.SUCCESS] * 3
    )
    assert modalities() == "CT,OT"
    assert store(scp.port, modality, [one("e.dcm", "MR")]) == [status.SUCCESS]
    assert modalities() == "CT,MR,OT"
    assert count(app, Series) == 5


def test_dsec06_identical_resend_is_idempotent(app: Flask, scp: Running, modality: str, tmp_path: Path) -> None:
    f = fresh_copy(sample_file("CT_small.dcm"), tmp_path / "a.dcm")
    assert store(scp.port, modality, [f]) == [status.SUCCESS]
    assert store(scp.port, modality, [f]) == [status.SUCCESS]
    assert count(app, Instance) == 1
    assert count(app, InstanceConflict) == 0
    assert worker_applies_ingest_events(app) == 2
    assert len(audit_events(app, "dicom_instances_stored")) == 2  # one per association
    assert echo_ok(scp.port, modality)


def test_dsec06_changed_content_is_kept_aside_original_untouched(
    app: Flask, scp: Running, modality: str, tmp_path: Path
) -> None:
    f = fresh_copy(sample_file("CT_small.dcm"), tmp_path / "a.dcm")
    assert store(scp.port, modality, [f]) == [status.SUCCESS]
    original = stored_file(app, scp, str(dcmread(f).SOPInstanceUID))
    before = original.read_bytes()
    ds = dcmread(f)
    pixels = bytearray(ds.PixelData)
    pixels[100] ^= 0xFF  # one changed pixel byte
    ds.PixelData = bytes(pixels)
    changed = tmp_path / "b.dcm"
    ds.save_as(changed)
    assert store(scp.port, modality, [changed]) == [scp.ctx.conflict_status]
    assert count(app, Instance) == 1
    assert original.read_bytes() == before
    conflicts = rows(app, select(InstanceConflict.storage_key, InstanceConflict.sha256, InstanceConflict.status))
    assert len(conflicts) == 1
    key, digest, state = conflicts[0]
    assert state == "open"
    kept = scp.ctx.store.path(key)
    assert kept != original
    assert dataset_bytes(kept) == dataset_bytes(changed)
    assert scp.ctx.store.verify(key, digest)
    assert len(audit_events(app, "dicom_instance_conflict")) == 1


def test_dsec06_conflict_status_is_configurable(app: Flask, scp: Running, modality: str, tmp_path: Path) -> None:
    scp.ctx.conflict_status = status.DUPLICATE_SOP_INSTANCE
    f = fresh_copy(sample_file("MR_small.dcm"), tmp_path / "a.dcm")
    assert store(scp.port, modality, [f]) == [status.SUCCESS]
    ds = dcmread(f)
    ds.PatientName = "Changed^Name"
    ds.save_as(f)
    assert store(scp.port, modality, [f]) == [status.DUPLICATE_SOP_INSTANCE]
    assert count(app, InstanceConflict) == 1


def test_dsec03_same_study_uid_from_two_institutions_is_two_studies(app: Flask, scp: Running, tmp_path: Path) -> None:
    add_node(app, "HOSP_A", institution="M01")
    add_node(app, "HOSP_B", institution="M02")
    a = fresh_copy(sample_file("CT_small.dcm"), tmp_path / "a.dcm", PatientID="12345")
    assert store(scp.port, "HOSP_A", [a]) == [status.SUCCESS]
    a_file = stored_file(app, scp, str(dcmread(a).SOPInstanceUID))
    a_bytes = a_file.read_bytes()
    # B sends the same Study, Series and SOP Instance UIDs and PatientID, claiming to be A by InstitutionName.
    b_ds = dcmread(a)
    b_ds.SpecificCharacterSet = "ISO_IR 192"
    b_ds.InstitutionName = "第一成员医院"
    b_ds.PatientName = "Other^Patient"
    b = tmp_path / "b.dcm"
    b_ds.save_as(b)
    assert store(scp.port, "HOSP_B", [b]) == [status.SUCCESS]
    studies = rows(
        app,
        select(Study.study_instance_uid, Institution.code, Study.patient_name)
        .join(Institution, Institution.id == Study.institution_id)
        .order_by(Institution.code),
    )
    assert [(r[1], r[2]) for r in studies] == [("M01", str(dcmread(a).PatientName)), ("M02", "Other^Patient")]
    assert studies[0][0] == studies[1][0]
    assert count(app, Instance) == 2
    assert count(app, InstanceConflict) == 0  # not a resend of A's instance: B's own
    assert a_file.read_bytes() == a_bytes


def test_dsec05_index_row_only_with_durable_file(app: Flask, scp: Running, modality: str, tmp_path: Path) -> None:
    files = [fresh_copy(sample_file("CT_small.dcm"), tmp_path / f"{i}.dcm") for i in range(5)]
    assert store(scp.port, modality, files) == [status.SUCCESS] * 5
    for key, digest in rows(app, select(Instance.storage_key, Instance.sha256)):
        assert scp.ctx.store.verify(key, digest)
        assert key.endswith(digest)
        assert "1.2" not in key
    assert list(scp.ctx.store.tmp_dir.iterdir()) == []  # no temp file left behind


def test_rel01_disk_nearly_full_answers_out_of_resources(
    app: Flask, scp: Running, modality: str, tmp_path: Path
) -> None:
    scp.ctx.disk_full_percent = 0.0  # any usage counts as full
    f = fresh_copy(sample_file("CT_small.dcm"), tmp_path / "a.dcm")
    assert store(scp.port, modality, [f]) == [status.STORE_OUT_OF_RESOURCES]
    assert count(app, Instance) == 0
    assert list(scp.ctx.store.tmp_dir.iterdir()) == []
    scp.ctx.disk_full_percent = 100.1
    assert store(scp.port, modality, [f]) == [status.SUCCESS]


@pytest.mark.skipif(BACKEND != "postgresql", reason="PostgreSQL 专用：SQLite 没有可断开的服务器连接")
def test_dsec05_store_survives_the_server_dropping_the_receivers_connection(
    app: Flask, scp: Running, modality: str, tmp_path: Path
) -> None:
    src = sample_file("CT_small.dcm")
    study, series = generate_uid(), generate_uid()
    files = [
        fresh_copy(src, tmp_path / f"{i}.dcm", StudyInstanceUID=study, SeriesInstanceUID=series) for i in range(10)
    ]
    assoc = associate(scp.port, modality, [(CTImageStorage, [ExplicitVRLittleEndian])])
    assert assoc.is_established
    statuses = []
    try:
        for i, f in enumerate(files):
            if i == 5:  # the receiver's connection was used moments ago: it is not pinged, its next use fails
                terminate_backends(database_backends(app))
            rsp = assoc.send_c_store(str(f))
            statuses.append(int(rsp.Status))
    finally:
        assoc.release()
    assert statuses == [status.SUCCESS] * 10
    assert count(app, Instance, Instance.study_id.isnot(None)) == 10
