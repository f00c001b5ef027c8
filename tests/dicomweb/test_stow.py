"""STOW-RS (PS3.18 §10.5; issue 15): instances stored over HTTP go through the one receive path — rows, files, outbox
events as for a C-STORE, under the sender's institution (REQ: DSEC-03/04/05/06/08, IMG-06, CLOUD-01); the body is
streamed under the route's own cap (413, nothing stored), with bounded memory; session, CSRF and permission apply."""

from __future__ import annotations

import io
import os
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid
from sqlalchemy import select

from api.dicomweb import stow as stow_view
from dicom.scp import Running
from engine import config
from engine.imaging.models import Instance, InstanceConflict, Series, Study
from tests.dicom import synthetic
from tests.dicom.conftest import add_node, audit_events, count, dataset_bytes, rows, scp, worker_applies_ingest_events
from tests.dicom.conftest import store as cstore
from tests.factories import Session, as_user, institution

__all__ = ["scp"]  # the SCP fixture of the DICOM tests (tests/dicom/conftest.py)

BOUNDARY = "telerad-stow-test"
CT_TYPE = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'


def multipart(parts: list[bytes], boundary: str = BOUNDARY) -> bytes:
    out = b""
    for data in parts:
        out += f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def fresh(src: str | Path, **tags: Any) -> bytes:
    """A pydicom test file (bundled, never downloaded) or a file on disk, with fresh UIDs (or the given values)."""
    path = src if isinstance(src, Path) else get_testdata_file(src, download=False)
    assert path is not None, f"pydicom test file {src} is not bundled"
    ds = dcmread(path)
    ds.StudyInstanceUID = tags.pop("StudyInstanceUID", generate_uid())
    ds.SeriesInstanceUID = tags.pop("SeriesInstanceUID", generate_uid())
    ds.SOPInstanceUID = tags.pop("SOPInstanceUID", generate_uid())
    for key, value in tags.items():
        setattr(ds, key, value)
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def chinese(tmp_path: Path, name: str, charset: str, **tags: Any) -> bytes:
    path = synthetic.chinese(tmp_path / f"{uuid.uuid4().hex}.dcm", name, charset, **tags)
    return path.read_bytes()


def post(sess: Session, body: bytes, study: str | None = None, **kw: Any) -> Any:
    url = "/dicomweb/studies" + (f"/{study}" if study else "")
    return sess.post(url, data=body, headers={"Content-Type": CT_TYPE, **kw.pop("headers", {})}, **kw)


def store_dir(settings: config.Settings) -> Path:
    return settings.storage_dir / "dicom"


def tmp_files(settings: config.Settings) -> list[str]:
    tmp = store_dir(settings) / "tmp"
    return sorted(os.listdir(tmp)) if tmp.exists() else []


def referenced(body: dict[str, Any]) -> list[dict[str, Any]]:
    return list(body.get("00081199", {}).get("Value", []))


def failed(body: dict[str, Any]) -> list[dict[str, Any]]:
    return list(body.get("00081198", {}).get("Value", []))


def value(item: dict[str, Any], tag: str) -> Any:
    return item[tag]["Value"][0]


@pytest.fixture
def registrar(app: Flask) -> Session:
    """The 登记员 of member hospital M01: holds image.write (the role that registers exams uploads their images)."""
    institution(app, "M01")
    return as_user(app, "registrar", institution_code="M01")


# -- stored like a C-STORE ----------------------------------------------------------------------------------------
# REQ: DSEC-03, DSEC-05, IMG-06, CLOUD-01
def test_stow_several_instances_rows_files_outbox(
    app: Flask, settings: config.Settings, registrar: Session, tmp_path: Path
) -> None:
    """Three instances (a CT, Chinese names in ISO_IR 192 and GB18030): 200, each in ReferencedSOPSequence with its
    RetrieveURL; rows under the sender's institution, files under their content key, the studies' outbox events
    (audit "dicom_instances_stored" via stow-rs, exam match) applied by the worker."""
    ct = fresh("CT_small.dcm")
    utf8 = chinese(tmp_path, "张^三=", "ISO_IR 192")
    gb = chinese(tmp_path, "李^四", "GB18030")
    r = post(registrar, multipart([ct, utf8, gb]))
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.mimetype == "application/dicom+json"
    assert r.headers["Cache-Control"] == "no-store"
    body = r.get_json()
    refs = referenced(body)
    sent = [dcmread(io.BytesIO(b)) for b in (ct, utf8, gb)]
    assert [value(i, "00081155") for i in refs] == [str(d.SOPInstanceUID) for d in sent]
    for item, ds in zip(refs, sent, strict=True):
        assert value(item, "00081150") == str(ds.SOPClassUID)
        assert value(item, "00081190").endswith(
            f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
        )
    assert "00081198" not in body
    m01 = institution(app, "M01").id
    stored = rows(app, select(Instance.sop_instance_uid, Instance.institution_id, Instance.storage_key, Instance.size))
    assert sorted(s[0] for s in stored) == sorted(str(d.SOPInstanceUID) for d in sent)
    assert {s[1] for s in stored} == {m01}
    for _, _, key, size in stored:
        assert (store_dir(settings) / key).stat().st_size == size
    names = {n for (n,) in rows(app, select(Study.patient_name))}
    assert {"张^三", "李^四"} <= names
    assert tmp_files(settings) == []
    assert worker_applies_ingest_events(app) == 3  # one outbox row per new study
    events = audit_events(app, "dicom_instances_stored")
    assert len(events) == 3
    assert {e.details["via"] for e in events} == {"stow-rs"}
    assert {e.username for e in events} == {registrar.user.username}


# REQ: DSEC-03, DSEC-05, DSEC-06
def test_stow_indexes_like_c_store(
    app: Flask, settings: config.Settings, scp: Running, registrar: Session, tmp_path: Path
) -> None:
    """The same two instances (a GB18030 name and a CT) sent to two institutions' archives, by C-STORE from an M02
    device and by STOW-RS from an M01 user: the same study, series and instance rows (but for ids, timestamps and the
    sender), the same data set stored, one outbox event per study each."""
    institution(app, "M02")
    add_node(app, "MOD_M02", institution="M02", allow="echo,store")
    study = generate_uid()
    files = [  # one patient's study (the study row takes the tags of whichever instance arrives first)
        synthetic.chinese(tmp_path / "a.dcm", "赵^六", "GB18030", StudyInstanceUID=study),
        synthetic.ct(tmp_path / "b.dcm", StudyInstanceUID=study, PatientName="赵^六", SpecificCharacterSet="GB18030"),
    ]
    assert cstore(scp.port, "MOD_M02", [str(f) for f in files]) == [0, 0]
    assert post(registrar, multipart([f.read_bytes() for f in files])).status_code == 200

    def by_institution(model: Any, skip: set[str]) -> dict[int, list[tuple[Any, ...]]]:
        cols = [c for c in model.__table__.columns if c.name not in skip]
        out: dict[int, list[tuple[Any, ...]]] = {}
        for row in rows(app, select(model.institution_id, *cols)):
            out.setdefault(row[0], []).append(tuple(row[1:]))
        return {k: sorted(v, key=repr) for k, v in out.items()}

    m01, m02 = institution(app, "M01").id, institution(app, "M02").id
    sender = {"id", "institution_id", "created_at", "updated_at", "received_at", "source_node_id", "node_id"}
    for model, skip in (
        (Study, sender),
        (Series, sender | {"study_id"}),
        # the C-STORE file's meta header is the SCP's own (File Meta Information is not sent over DIMSE)
        (Instance, sender | {"study_id", "series_id", "calling_aet", "size", "sha256", "storage_key"}),
    ):
        got = by_institution(model, skip)
        assert got[m01] == got[m02], model.__name__
    keys: dict[str, dict[int, str]] = {}
    for uid, inst_id, key in rows(
        app, select(Instance.sop_instance_uid, Instance.institution_id, Instance.storage_key)
    ):
        keys.setdefault(uid, {})[inst_id] = key
    root = store_dir(settings)
    for by_inst in keys.values():
        assert dataset_bytes(root / by_inst[m01]) == dataset_bytes(root / by_inst[m02])
    assert worker_applies_ingest_events(app) == 2
    vias = sorted(e.details["via"] for e in audit_events(app, "dicom_instances_stored"))
    assert vias == ["c-store", "stow-rs"]


# REQ: DSEC-04, DSEC-08
def test_stow_broken_instance_refused_with_reason_others_stored(
    app: Flask, settings: config.Settings, registrar: Session
) -> None:
    """A truncated instance between two good ones: 202; it is in FailedSOPSequence with FailureReason 0xC000 and a
    Chinese reason, audited as the sender's failure, never stored; the others are."""
    good1, good2 = fresh("CT_small.dcm"), fresh("MR_small.dcm")
    whole = fresh("CT_small.dcm")
    broken = whole[: len(whole) * 2 // 3]
    r = post(registrar, multipart([good1, broken, good2]))
    assert r.status_code == 202, r.get_data(as_text=True)
    body = r.get_json()
    assert len(referenced(body)) == 2
    (item,) = failed(body)
    assert value(item, "00081155") == str(dcmread(io.BytesIO(whole)).SOPInstanceUID)
    assert value(item, "00081197") == 0xC000
    assert "损坏" in value(item, "0040A160") or "截断" in value(item, "0040A160")
    assert count(app, Instance) == 2
    assert len(audit_events(app, "dicom_store_failed")) == 1
    assert tmp_files(settings) == []


# REQ: DSEC-04
def test_stow_all_failed_is_409_and_garbage_part_in_other_failures(app: Flask, registrar: Session) -> None:
    r = post(registrar, multipart([b"not dicom at all" * 20]))
    assert r.status_code == 409
    body = r.get_json()
    (other,) = body["0008119A"]["Value"]
    assert value(other, "00081197") == 0xC000
    assert value(other, "0040A160")
    assert count(app, Instance) == 0


# REQ: DSEC-06
def test_stow_duplicates_and_conflicts(app: Flask, registrar: Session) -> None:
    """The same instance twice is stored once (an identical resend); the same UID with other content is kept aside
    as a conflict (DSEC-06) and answered with the configured conflict status (default success)."""
    ct = fresh("CT_small.dcm")
    r = post(registrar, multipart([ct, ct]))
    assert r.status_code == 200
    assert len(referenced(r.get_json())) == 2
    assert count(app, Instance) == 1
    ds = dcmread(io.BytesIO(ct))
    other = fresh(
        "CT_small.dcm",
        StudyInstanceUID=ds.StudyInstanceUID,
        SeriesInstanceUID=ds.SeriesInstanceUID,
        SOPInstanceUID=ds.SOPInstanceUID,
        PatientName="Other^Content",
    )
    r = post(registrar, multipart([other]))
    assert r.status_code == 200
    assert count(app, Instance) == 1
    assert count(app, InstanceConflict) == 1


# REQ: DSEC-04
def test_study_scoped_stow_refuses_other_study(app: Flask, registrar: Session) -> None:
    study = generate_uid()
    mine = fresh("CT_small.dcm", StudyInstanceUID=study)
    foreign = fresh("MR_small.dcm")
    r = post(registrar, multipart([mine, foreign]), study=study)
    assert r.status_code == 202
    body = r.get_json()
    assert value(body, "00081190").endswith(f"/dicomweb/studies/{study}")
    (item,) = failed(body)
    assert value(item, "00081155") == str(dcmread(io.BytesIO(foreign)).SOPInstanceUID)
    assert value(item, "00081197") == 0xA900
    assert "不一致" in value(item, "0040A160")
    assert rows(app, select(Study.study_instance_uid)) == [(study,)]


def test_bad_requests(app: Flask, registrar: Session) -> None:
    ct = fresh("CT_small.dcm")
    r = registrar.post("/dicomweb/studies", data=ct, headers={"Content-Type": "application/dicom"})
    assert r.status_code == 415
    assert r.get_json()["code"] == "unsupported_media_type"
    r = registrar.post(
        "/dicomweb/studies",
        data=multipart([ct]),
        headers={"Content-Type": f'multipart/related; type="application/dicom+xml"; boundary={BOUNDARY}'},
    )
    assert r.status_code == 415
    r = post(registrar, multipart([ct])[:-30])  # no close delimiter
    assert r.status_code == 400
    assert r.get_json()["code"] == "bad_multipart"
    r = post(registrar, multipart([ct]), study="not-a-uid")
    assert r.status_code == 400
    assert count(app, Instance) == 0


# -- size cap -----------------------------------------------------------------------------------------------------
class _FiveGigabytes(io.RawIOBase):
    """A body of 5 GB that must never be read (the test client asks its length by seeking)."""

    size = 5 * 1024**3

    def __init__(self) -> None:
        self.pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = {0: offset, 1: self.pos + offset, 2: self.size + offset}[whence]
        return self.pos

    def tell(self) -> int:
        return self.pos

    def readinto(self, b: Any) -> int:
        raise AssertionError("the body of an over-cap request was read")


# REQ: WEB-06
def test_declared_5gb_refused_413_without_reading(app: Flask, registrar: Session) -> None:
    """Content-Length 5 GB (over the default 4 GB cap, far over the app-wide 10 MB limit): 413 in Chinese, the body
    never read."""
    r = registrar.client.post(
        "/dicomweb/studies",
        input_stream=_FiveGigabytes(),
        headers={"Content-Type": CT_TYPE, "X-CSRF-Token": registrar.csrf},
    )
    assert r.status_code == 413
    assert r.get_json()["code"] == "stow_too_large"
    assert r.get_json()["details"]["content_length"] == 5 * 1024**3
    assert "上限" in r.get_json()["message"]


# REQ: WEB-06, DSEC-05
def test_chunked_body_over_cap_413_nothing_stored(
    app: Flask, settings: config.Settings, registrar: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No Content-Length (a chunked body, the server terminating the stream): counted while read; over the cap
    (here 3 MiB) the request answers 413 and nothing of it is stored — not even its complete first instance."""
    monkeypatch.setattr(config.current(), "stow_max_bytes", 3 * 1024 * 1024)
    first = fresh("CT_small.dcm")
    big = synthetic.image(synthetic.base(synthetic.CT_IMAGE, modality="CT"), rows=1024, cols=1024, frames=4)
    buf = io.BytesIO()
    big.save_as(buf, enforce_file_format=True)
    r = registrar.client.post(
        "/dicomweb/studies",
        input_stream=io.BytesIO(multipart([first, buf.getvalue()])),
        headers={"Content-Type": CT_TYPE, "X-CSRF-Token": registrar.csrf, "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert r.status_code == 413, r.get_data(as_text=True)
    assert r.get_json()["code"] == "stow_too_large"
    assert "未存储任何实例" in r.get_json()["message"]
    assert "content_length" not in r.get_json()["details"]  # counted while read, not declared
    assert count(app, Instance) == 0
    assert tmp_files(settings) == []


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


# REQ: WEB-06
def test_200mb_part_with_bounded_memory(
    app: Flask, settings: config.Settings, registrar: Session, tmp_path: Path
) -> None:
    """A 200 MiB multi-frame instance (400 frames of 512×512 16-bit), far over the app-wide 10 MB limit: stored,
    byte for byte, while this process's RSS grows by less than 64 MiB (the body is never held in memory)."""
    frames, frame = 400, 512 * 512 * 2
    ds = synthetic.base("1.2.840.10008.5.1.4.1.1.7.3", modality="OT")  # Multi-frame Grayscale Word SC
    ds.Rows = ds.Columns = 512
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.NumberOfFrames = 1, "MONOCHROME2", frames
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    head = io.BytesIO()
    ds.save_as(head, enforce_file_format=True)
    body = tmp_path / "body.bin"
    chunk = bytes(range(256)) * 4096  # 1 MiB
    with body.open("wb") as fh:
        fh.write(f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode())
        fh.write(head.getvalue() + b"\xe0\x7f\x10\x00OW\0\0" + (frames * frame).to_bytes(4, "little"))
        for _ in range(frames * frame // len(chunk)):
            fh.write(chunk)
        fh.write(f"\r\n--{BOUNDARY}--\r\n".encode())
    post(registrar, multipart([fresh("CT_small.dcm")]))  # warm up: first-use allocations are not this test's
    peak = before = _rss_kib()
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.05):
            peak = max(peak, _rss_kib())

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        with body.open("rb") as fh:
            r = registrar.client.post(
                "/dicomweb/studies",
                input_stream=fh,
                headers={
                    "Content-Type": CT_TYPE,
                    "Content-Length": str(body.stat().st_size),
                    "X-CSRF-Token": registrar.csrf,
                },
            )
    finally:
        done.set()
        sampler.join()
    peak = max(peak, _rss_kib())
    assert r.status_code == 200, r.get_data(as_text=True)
    assert peak - before < 64 * 1024, f"RSS grew {(peak - before) // 1024} MiB while storing 200 MiB"
    (size,) = rows(app, select(Instance.size).where(Instance.sop_instance_uid == str(ds.SOPInstanceUID)))[0]
    assert size == len(head.getvalue()) + 12 + frames * frame
    assert tmp_files(settings) == []


# -- who may ------------------------------------------------------------------------------------------------------
# REQ: AC-01, WEB-01
def test_stow_needs_session_csrf_and_permission(app: Flask, registrar: Session) -> None:
    body = multipart([fresh("CT_small.dcm")])
    # Without a session or token: 401 before any CSRF check (api/security.py), with a Bearer challenge under
    # /dicomweb; a browser session without the CSRF header: 403; a bearer client skips CSRF.
    anonymous = app.test_client()
    for headers in ({}, {"X-CSRF-Token": "forged-token-forged-token"}):
        r = anonymous.post("/dicomweb/studies", data=body, headers={"Content-Type": CT_TYPE, **headers})
        assert (r.status_code, r.get_json()["code"]) == (401, "unauthenticated")
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
    r = registrar.client.post("/dicomweb/studies", data=body, headers={"Content-Type": CT_TYPE})
    assert (r.status_code, r.get_json()["code"]) == (403, "csrf_failed")
    requester = as_user(app, "requester", institution_code="M01")  # reads images, uploads none
    r = post(requester, body)
    assert r.status_code == 403
    assert r.get_json()["code"] == "forbidden"
    assert count(app, Instance) == 0


# REQ: DSEC-03
def test_source_is_the_user_or_the_oauth_client(app: Flask, registrar: Session) -> None:
    from engine.actor import Actor

    user = Actor(user_id=7, username="u", institution_id=3, institution_code="M01", ip="10.0.0.1")
    src = stow_view.stow_source(user)
    assert (src.kind, src.institution_id, src.via, src.actor) == ("user", 3, "stow-rs", user)
    client = Actor(user_id=None, username="oauth:ai-1", institution_id=4, institution_code="M02", ip="10.0.0.2")
    src = stow_view.stow_source(client)
    assert (src.kind, src.institution_id, src.actor.username, src.ip) == ("client", 4, "oauth:ai-1", "10.0.0.2")
