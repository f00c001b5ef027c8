"""WADO-RS metadata kept per stored file (issue 16; REQ: VIEW transport, DSEC-10): the template built once — by
the worker when it drains the study's ingest outbox row (engine/imaging/events.py, engine/dicomweb/prebuild.py; a
receiver never builds), else by the first request — renders byte for byte what the
previous implementation answered (metadata.instance_json: built per request) on pydicom's test files (native,
compressed, multi-frame, SR, big endian, character sets) and a GB18030 name; the series answer is the same from the
database after a restart, gzip-coded when asked; an instance moved to a transcoded copy (its file rewritten, a new
content key) and an instance re-sent with other content (a conflict: the original stays) answer what their stored
file holds; a removed file's template goes with it (orphan sweep, delete_if_unreferenced).
"""

from __future__ import annotations

import gzip
import json
import warnings
from pathlib import Path
from typing import Any

import pydicom.data
import pytest
from flask import Flask
from flask.testing import FlaskClient
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid
from sqlalchemy import delete, func, select

from dicom import receiving
from engine import config, uow
from engine.actor import Actor
from engine.dicomweb import metadata, prebuild, wado
from engine.dicomweb.models import InstanceMetadata
from engine.imaging import events, ingest, targets
from engine.imaging.ingest import CONFLICT, IngestState
from engine.imaging.models import Instance, Study
from engine.imaging.source import Source
from engine.imaging.storage import ObjectStore
from tests.dicom import archive
from tests.dicom.conftest import add_node
from tests.factories import login, make_user

BASE = "http://telerad.example:8443/dicomweb"
ACCEPT = {"Accept": "application/dicom+json"}


def _files() -> list[Path]:
    root = Path(pydicom.data.__file__).parent / "test_files"
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in (".dcm", ""))


def _gb18030(path: Path) -> Path:
    ds = Dataset()
    ds.SpecificCharacterSet = "GB18030"
    ds.SOPClassUID, ds.SOPInstanceUID = SecondaryCaptureImageStorage, generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientName, ds.PatientID, ds.Modality = "Zhang^San=张^三", "P1", "OT"
    ds.StudyDescription, ds.ImageComments = "胸部 CT\\平扫", "第一行"
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = 2, 2, 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = b"\x00\x01\x02\x03"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)
    return path


def _rendered(path: Path, ref: wado.InstanceRef) -> bytes:
    token, doc = metadata.build(path)
    # through the database's form: the token as stored, the document as stored
    return metadata.Template(doc, metadata._mark_of(token)).render(wado.instance_url(BASE, ref))


@pytest.mark.parametrize("path", [*_files(), None], ids=lambda p: p.name if p else "gb18030")
def test_kept_template_renders_the_previous_answer_byte_for_byte(path: Path | None, tmp_path: Path) -> None:
    path = path or _gb18030(tmp_path / "gb18030.dcm")
    ref = wado.InstanceRef("1.2.3", "1.2.3.4", "1.2.3.4.5", "", "", path, "k")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            want = metadata.instance_json(ref, BASE)
        except Exception as exc:  # noqa: BLE001 - a file neither can read: the same failure
            with pytest.raises(type(exc)):
                metadata.build(path)
            return
        got = _rendered(path, ref)
    assert got == want
    if path.name == "gb18030.dcm":
        assert "张^三".encode() in got  # UTF-8 in the JSON, as before


# -- the route -------------------------------------------------------------------------------------------------------
def _client(app: Flask) -> FlaskClient:
    c = app.test_client()
    login(c, make_user(app, "registrar", institution_code="M01"))
    return c


def _previous(app: Flask, study: str, series: str) -> bytes:
    """What the route answered before issue 16: each instance's JSON built from its file (metadata.instance_json)."""
    metadata.forget()
    with app.app_context(), uow.unit_of_work() as s:
        st = s.execute(select(Study).where(Study.study_instance_uid == study)).scalar_one()
        refs = wado.select_instances(st, series)
    base = "http://localhost/dicomweb"
    out = b"[" + b",".join(metadata.instance_json(r, base) for r in refs) + b"]"
    metadata.forget()
    return out


def _kept(app: Flask) -> int:
    with app.app_context(), uow.unit_of_work() as s:
        return int(s.execute(select(func.count()).select_from(InstanceMetadata)).scalar_one())


def _get(c: FlaskClient, study: str, series: str, **headers: str) -> Any:
    r = c.get(f"/dicomweb/studies/{study}/series/{series}/metadata", headers={**ACCEPT, **headers})
    assert r.status_code == 200, r.data[:300]
    return r


def _series(n: int) -> list[Dataset]:
    study, series = generate_uid(), generate_uid()
    out = []
    for i in range(n):
        ds = archive.from_file(_files_named("CT_small.dcm"), StudyInstanceUID=study, SeriesInstanceUID=series)
        ds.InstanceNumber = i + 1
        ds.PatientName = "Wang^Wu=王^五"
        ds.SpecificCharacterSet = "GB18030"
        out.append(ds)
    return out


def _files_named(name: str) -> Path:
    return Path(pydicom.data.__file__).parent / "test_files" / name


def _receive(
    app: Flask, datasets: list[Dataset], node: int, state: IngestState | None = None, drain: bool = True
) -> list[Any]:
    """Through the one receive path (engine/imaging/receive.py), which builds no template; then (`drain`) the
    worker's drain of the outbox."""
    settings: config.Settings = app.extensions["telerad_settings"]
    info = archive.node_info(app, node)
    tmp = settings.storage_dir / "dicom" / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    rx = receiving.receiver(app, settings)
    results = []
    before = _kept(app)
    try:
        state = state or IngestState(Source.device(info, "127.0.0.1", via="c-store"))
        for ds in datasets:
            path = tmp / f"in-{generate_uid()}.dcm"
            ds.save_as(path, enforce_file_format=True)
            results.append(rx.receive(state, path))
    finally:
        receiving.close(rx)
    assert _kept(app) == before  # a receiver never builds
    if drain:
        with app.app_context():
            events.drain()
    return results


def test_series_metadata_prebuilt_at_receipt_kept_and_gzip(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    datasets = _series(4)
    study, series = str(datasets[0].StudyInstanceUID), str(datasets[0].SeriesInstanceUID)
    _receive(app, datasets, add_node(app, "MODALITY1"))
    assert _kept(app) == 4  # built by the worker's drain, not by a request
    want = _previous(app, study, series)
    c = _client(app)

    def refuse(path: Path) -> Any:
        raise AssertionError(f"built again: {path}")

    monkeypatch.setattr(metadata, "build", refuse)  # every answer below comes from what was kept
    r = _get(c, study, series)
    assert r.data == want
    assert r.headers["Vary"] == "Accept-Encoding"
    assert "Content-Encoding" not in r.headers
    metadata.forget()  # as after a restart: from the database
    assert _get(c, study, series).data == want
    r = _get(c, study, series, **{"Accept-Encoding": "br, gzip;q=0.8"})
    assert r.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(r.data) == want
    assert len(r.data) < len(want)
    assert "Content-Encoding" not in _get(c, study, series, **{"Accept-Encoding": "gzip;q=0, br"}).headers
    docs = json.loads(want)
    assert docs[0]["00100010"]["Value"] == [{"Alphabetic": "Wang^Wu", "Ideographic": "王^五"}]
    assert docs[0]["7FE00010"]["BulkDataURI"].startswith(f"http://localhost/dicomweb/studies/{study}/series/")


def test_metadata_built_by_the_first_request_when_not_prebuilt(app: Flask) -> None:
    datasets = _series(3)
    study, series = str(datasets[0].StudyInstanceUID), str(datasets[0].SeriesInstanceUID)
    archive.ingest(app, add_node(app, "MODALITY1"), datasets)  # the indexing step alone: nothing prebuilt
    assert _kept(app) == 0
    want = _previous(app, study, series)
    assert _get(_client(app), study, series).data == want
    assert _kept(app) == 3
    metadata.forget()
    assert _get(_client(app), study, series).data == want


def test_metadata_follows_a_rewritten_file_and_ignores_a_conflicting_resend(app: Flask) -> None:
    datasets = _series(2)
    study, series = str(datasets[0].StudyInstanceUID), str(datasets[0].SeriesInstanceUID)
    node = add_node(app, "MODALITY1")
    _receive(app, datasets, node)
    c = _client(app)
    before = _get(c, study, series).data
    assert before == _previous(app, study, series)
    # re-sent with other content: kept aside as a conflict (DSEC-06), the stored instance and its answer unchanged
    other = archive.from_file(_files_named("CT_small.dcm"), StudyInstanceUID=study, SeriesInstanceUID=series)
    other.SOPInstanceUID = datasets[0].SOPInstanceUID
    other.file_meta.MediaStorageSOPInstanceUID = other.SOPInstanceUID
    other.PatientName, other.InstanceNumber = "Changed^Name", 1
    assert _receive(app, [other], node)[0].outcome == CONFLICT
    assert _get(c, study, series).data == before
    # the file rewritten (moved to a JPEG-LS lossless copy, IMG-04/IMG-09): a new key, its own template
    with app.app_context():
        with uow.unit_of_work() as s:
            builtin_id = targets.builtin_target(s).id
            inst_id, old_key = s.execute(
                select(Instance.id, Instance.storage_key).where(Instance.sop_instance_uid == datasets[0].SOPInstanceUID)
            ).one()
        assert targets.relocate_instance(inst_id, builtin_id, "jpegls")
        with uow.unit_of_work() as s:
            new_key, ts = s.execute(
                select(Instance.storage_key, Instance.transfer_syntax_uid).where(Instance.id == inst_id)
            ).one()
    assert new_key != old_key
    with app.app_context(), uow.unit_of_work() as s:  # delete_if_unreferenced took the old file's template too
        assert s.get(InstanceMetadata, old_key) is None
    after = _get(c, study, series).data
    assert after == _previous(app, study, series)
    assert after != before
    assert json.loads(after)[0]["7FE00010"]["vr"] == "OB"  # encapsulated now, as its file says
    assert ts == "1.2.840.10008.1.2.4.80"


def test_drain_builds_what_each_receipt_added_and_what_came_after_its_row(app: Flask) -> None:
    datasets = _series(5)
    study, series = str(datasets[0].StudyInstanceUID), str(datasets[0].SeriesInstanceUID)
    node = add_node(app, "MODALITY1")
    info = archive.node_info(app, node)
    state = IngestState(Source.device(info, "127.0.0.1", via="c-store"))
    _receive(app, datasets[:2], node, state)  # the receipt's row (with its first instance) drained: 2 built
    assert _kept(app) == 2
    _receive(app, datasets[2:3], node, state)  # the same receipt goes on: no new row, the study is watched
    assert _kept(app) == 3
    prebuild.forget()  # a worker restarted: nothing watched
    _receive(app, datasets[3:4], node, state, drain=False)
    with app.app_context():
        assert events.drain() == 0
    assert _kept(app) == 3  # left to the first request
    _receive(app, datasets[4:], node)  # a later receipt of the study: its own row, the study's missing built
    assert _kept(app) == 5
    with app.app_context(), uow.unit_of_work():
        st = uow.session().execute(select(Study).where(Study.study_instance_uid == study)).scalar_one()
        assert prebuild.missing_of_study(st.id) == []
    assert _get(_client(app), study, series).data == _previous(app, study, series)


def test_orphan_sweep_deletes_the_removed_files_templates(app: Flask) -> None:
    datasets = _series(2)
    _receive(app, datasets, add_node(app, "MODALITY1"))
    assert _kept(app) == 2
    settings: config.Settings = app.extensions["telerad_settings"]
    store = ObjectStore(settings.storage_dir / "dicom")
    with app.app_context(), uow.unit_of_work() as s:
        gone, kept = s.execute(select(Instance.id, Instance.storage_key).order_by(Instance.id)).all()
        s.execute(delete(Instance).where(Instance.id == gone.id))  # its row gone: the file an orphan
    with app.app_context(), uow.unit_of_work():
        assert ingest.sweep_store(Actor.system("test"), store, older_than_min=0) == 1
    assert not store.exists(gone.storage_key)
    with app.app_context(), uow.unit_of_work() as s:
        assert s.get(InstanceMetadata, gone.storage_key) is None
        assert s.get(InstanceMetadata, kept.storage_key) is not None  # still named by its row
