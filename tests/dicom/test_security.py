"""DICOM security rows DSEC-01/02/04/07/09/10 against the running SCP, with real peers; after every bad input the
SCP still answers C-ECHO, stores the next good instance and holds nothing half-stored (SECURITY.md §C1)."""

from __future__ import annotations

import socket
import struct
import time
from pathlib import Path

import pytest
from flask import Flask
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.filewriter import dcmwrite
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian, ExplicitVRLittleEndian
from pynetdicom import _config

from dicom import status
from dicom.scp import Running
from engine import uow
from engine.actor import Actor
from engine.imaging import services
from engine.imaging.models import Instance, Study
from tests.dicom import synthetic
from tests.dicom.conftest import (
    add_node,
    associate,
    audit_events,
    count,
    dcmtk,
    echo_ok,
    fresh_copy,
    sample_file,
    store,
    worker_applies_ingest_events,
)

CT = synthetic.CT_IMAGE
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
VERIFICATION = "1.2.840.10008.1.1"


def alerts(app: Flask, code: str | None = None) -> list[object]:
    found = audit_events(app, "security_alert")
    return [e for e in found if code is None or (e.details or {}).get("code") == code]  # type: ignore[attr-defined]


def still_healthy(app: Flask, scp: Running, aet: str, tmp_path: Path) -> None:
    """After a bad input: C-ECHO answers, the next good instance is stored, no temp file is left behind."""
    assert echo_ok(scp.port, aet)
    before = count(app, Instance)
    good = synthetic.ct(tmp_path / f"good-{time.monotonic_ns()}.dcm")
    assert store(scp.port, aet, [good]) == [status.SUCCESS]
    assert count(app, Instance) == before + 1
    assert list(scp.ctx.store.tmp_dir.iterdir()) == []


def store_files(scp: Running) -> list[Path]:
    return [p for p in scp.ctx.store.root.rglob("*") if p.is_file()]


# -- DSEC-01 / DSEC-02: who may associate --------------------------------------------------------------------------
def test_dsec01_unknown_ae_rejected_and_alerted(app: Flask, scp: Running, modality: str, tmp_path: Path) -> None:
    assoc = associate(scp.port, "INTRUDER", [(VERIFICATION, [ExplicitVRLittleEndian])])
    assert assoc.is_rejected
    assert assoc.acceptor.primitive.result == 0x01
    assert assoc.acceptor.primitive.diagnostic == 0x03
    assert dcmtk("echoscu", "-aet", "INTRUDER", "-aec", "TELERAD", "127.0.0.1", str(scp.port)).returncode != 0
    found = alerts(app, "unknown_aet")
    assert len(found) == 2
    assert found[0].details["dicom_event"] == "110113"  # type: ignore[attr-defined]
    still_healthy(app, scp, modality, tmp_path)


@pytest.mark.parametrize("calling", ["", " " * 16, "A" * 17, "BAD\\AE", "\u5f20\u4e09", "X\x07Y"])
def test_dsec01_malformed_calling_ae_rejected(
    app: Flask, scp: Running, modality: str, tmp_path: Path, calling: str
) -> None:
    """§C1: empty, blank, over-long, backslash, GB18030/Chinese and control-character calling AE titles."""
    raw = calling.encode("gb18030")[:16].ljust(16, b" ")
    sock = socket.create_connection(("127.0.0.1", scp.port), timeout=10)
    try:
        sock.sendall(_associate_rq(raw, b"TELERAD".ljust(16)))
        reply = sock.recv(10)
    finally:
        sock.close()
    # A-ASSOCIATE-RJ, or A-ABORT where pynetdicom's PDU decoder already refuses the title (blank).
    assert reply[:1] in (b"\x03", b"\x07"), f"expected A-ASSOCIATE-RJ or A-ABORT, got {reply!r}"
    still_healthy(app, scp, modality, tmp_path)


def test_dsec01_known_ae_from_wrong_address_rejected(app: Flask, scp: Running, tmp_path: Path) -> None:
    add_node(app, "CT_ROOM2", host="127.0.0.2")
    assoc = associate(scp.port, "CT_ROOM2", [(VERIFICATION, [ExplicitVRLittleEndian])])
    assert assoc.is_rejected
    assert len(alerts(app, "wrong_address")) == 1
    # From its registered address the same device is accepted.
    from pynetdicom import AE

    ae = AE(ae_title="CT_ROOM2")
    ae.add_requested_context(VERIFICATION)
    ok = ae.associate("127.0.0.1", scp.port, ae_title="TELERAD", bind_address=("127.0.0.2", 0))
    assert ok.is_established
    assert ok.send_c_echo().Status == status.SUCCESS
    ok.release()


def test_dsec01_spoke_without_find_is_refused(app: Flask, scp: Running, tmp_path: Path) -> None:
    add_node(app, "SPOKE1", allow="echo,store")
    assoc = associate(scp.port, "SPOKE1", [(STUDY_ROOT_FIND, [ExplicitVRLittleEndian])])
    assert assoc.is_established
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.PatientName = "*"
    responses = list(assoc.send_c_find(query, STUDY_ROOT_FIND))
    assoc.release()
    assert [int(r[0].Status) for r in responses] == [status.REFUSED_NOT_AUTHORIZED]
    assert len(alerts(app, "op")) == 1
    still_healthy(app, scp, "SPOKE1", tmp_path)


def test_dsec01_store_only_device_cannot_echo_and_disabled_device_is_rejected(
    app: Flask, scp: Running, tmp_path: Path
) -> None:
    node_id = add_node(app, "STOREONLY", allow="store")
    assert not echo_ok(scp.port, "STOREONLY")
    assert store(scp.port, "STOREONLY", [synthetic.ct(tmp_path / "a.dcm")]) == [status.SUCCESS]
    # A change of the device list applies to the next association, without a restart (issue 4).
    with app.app_context(), uow.unit_of_work():
        services.update_node(Actor.system("test"), node_id, allow="echo")
    assert echo_ok(scp.port, "STOREONLY")
    assert store(scp.port, "STOREONLY", [synthetic.ct(tmp_path / "b.dcm")]) == [status.REFUSED_NOT_AUTHORIZED]
    with app.app_context(), uow.unit_of_work():
        services.update_node(Actor.system("test"), node_id, enabled=False)
    assert associate(scp.port, "STOREONLY", [(VERIFICATION, [ExplicitVRLittleEndian])]).is_rejected
    assert len(alerts(app, "disabled")) == 1
    assert count(app, Instance) == 1


def test_dsec02_wrong_called_ae_rejected(app: Flask, scp: Running, modality: str) -> None:
    assoc = associate(scp.port, modality, [(VERIFICATION, [ExplicitVRLittleEndian])], called="WRONG")
    assert assoc.is_rejected
    assert assoc.acceptor.primitive.diagnostic == 0x07
    assert dcmtk("echoscu", "-aet", modality, "-aec", "WRONG", "127.0.0.1", str(scp.port)).returncode != 0
    assert len(audit_events(app, "security_alert")) == 2


# -- DSEC-04: UIDs and command/data set consistency ----------------------------------------------------------------
# Full-width digits and embedded NULs are covered in test_storage_uids.py (pynetdicom's SCU cannot encode them).
BAD_UIDS = ["../../../../tmp/pwned", "/etc/cron.d/x", "1.2.3/../x", "1.2.abc", "1.02.3", "1..2", "1.2.", ".1.2"]


@pytest.mark.parametrize("field", ["SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"])
@pytest.mark.parametrize("bad", BAD_UIDS)
def test_dsec04_bad_uid_refused_nothing_written(
    app: Flask, scp: Running, modality: str, tmp_path: Path, field: str, bad: str
) -> None:
    ds = dcmread(synthetic.ct(tmp_path / "bad.dcm"))
    setattr(ds, field, bad)
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    before = store_files(scp)
    statuses = store(scp.port, modality, [ds])
    assert statuses[0] in (status.STORE_CANNOT_UNDERSTAND, status.STORE_DATASET_MISMATCH), statuses
    assert count(app, Instance) == 0
    assert count(app, Study) == 0
    assert store_files(scp) == before  # nothing written, inside or outside the store
    assert not Path("/tmp/pwned").exists()
    assert not Path("/etc/cron.d/x").exists()
    assert len(audit_events(app, "dicom_store_failed")) == 1
    still_healthy(app, scp, modality, tmp_path)


def test_dsec04_over_long_uid_refused(app: Flask, scp: Running, modality: str, tmp_path: Path) -> None:
    ds = dcmread(synthetic.ct(tmp_path / "long.dcm"))
    ds.StudyInstanceUID = "1." + "2" * 70
    assert store(scp.port, modality, [ds]) == [status.STORE_CANNOT_UNDERSTAND]
    assert count(app, Study) == 0
    still_healthy(app, scp, modality, tmp_path)


def test_dsec04_missing_study_uid_refused(app: Flask, scp: Running, modality: str, tmp_path: Path) -> None:
    ds = dcmread(synthetic.ct(tmp_path / "nostudy.dcm"))
    del ds.StudyInstanceUID
    assert store(scp.port, modality, [ds]) == [status.STORE_CANNOT_UNDERSTAND]
    still_healthy(app, scp, modality, tmp_path)


@pytest.mark.parametrize("which", ["instance", "class"])
def test_dsec04_affected_uid_must_equal_dataset_uid(
    app: Flask, scp: Running, modality: str, tmp_path: Path, which: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command's Affected SOP Instance/Class UID (taken from the file meta here) differs from the data set."""
    ds = dcmread(synthetic.ct(tmp_path / "src.dcm"))
    if which == "instance":
        ds.file_meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.8.498.999"
    else:
        ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"  # MR; the data set says CT
    path = tmp_path / "mismatch.dcm"
    dcmwrite(path, ds, enforce_file_format=False)
    monkeypatch.setattr(_config, "STORE_SEND_CHUNKED_DATASET", True)
    meta = dcmread(path).file_meta
    assoc = associate(scp.port, modality, [(str(meta.MediaStorageSOPClassUID), [ExplicitVRLittleEndian])])
    rsp = assoc.send_c_store(str(path))
    assoc.release()
    assert int(rsp.Status) == status.STORE_DATASET_MISMATCH
    assert count(app, Instance) == 0
    monkeypatch.setattr(_config, "STORE_SEND_CHUNKED_DATASET", False)
    still_healthy(app, scp, modality, tmp_path)


# -- DSEC-07: resource limits --------------------------------------------------------------------------------------
def test_dsec07_ninth_association_from_one_ae_rejected(app: Flask, scp: Running, modality: str, tmp_path: Path) -> None:
    cap = scp.ctx.limits.per_ae
    assert cap == 8
    open_assocs = [associate(scp.port, modality, [(VERIFICATION, [ExplicitVRLittleEndian])]) for _ in range(cap)]
    try:
        assert all(a.is_established for a in open_assocs)
        ninth = associate(scp.port, modality, [(VERIFICATION, [ExplicitVRLittleEndian])])
        assert ninth.is_rejected
        assert (ninth.acceptor.primitive.result, ninth.acceptor.primitive.diagnostic) == (0x02, 0x02)
        assert len(alerts(app, "limit")) == 1
        # Another device is not affected by this one's cap.
        add_node(app, "OTHER1")
        assert echo_ok(scp.port, "OTHER1")
    finally:
        for a in open_assocs:
            a.release()
    deadline = time.monotonic() + 5
    while scp.ctx.limits.by_node and time.monotonic() < deadline:
        time.sleep(0.05)
    assert scp.ctx.limits.by_node == {}
    still_healthy(app, scp, modality, tmp_path)


def _associate_rq(calling: bytes, called: bytes) -> bytes:
    """A minimal A-ASSOCIATE-RQ PDU (PS3.8 9.3.2) proposing Verification, for raw-socket tests."""

    def item(kind: int, body: bytes) -> bytes:
        return struct.pack(">BBH", kind, 0, len(body)) + body

    app_ctx = item(0x10, b"1.2.840.10008.3.1.1.1")
    pres = item(0x20, bytes([1, 0, 0, 0]) + item(0x30, VERIFICATION.encode()) + item(0x40, b"1.2.840.10008.1.2"))
    user = item(0x50, item(0x51, struct.pack(">I", 16384)) + item(0x52, b"1.2.3.4"))
    body = struct.pack(">HH", 1, 0) + called + calling + b"\0" * 32 + app_ctx + pres + user
    return struct.pack(">BBI", 0x01, 0, len(body)) + body


def test_dsec07_pdu_length_lie_closes_connection(app: Flask, scp: Running, modality: str, tmp_path: Path) -> None:
    """A PDU header claiming 0xFFFFFFFF bytes: refused before any allocation, the connection is closed."""
    sock = socket.create_connection(("127.0.0.1", scp.port), timeout=10)
    try:
        sock.sendall(struct.pack(">BBI", 0x01, 0, 0xFFFFFFFF) + b"\0" * 64)
        try:
            reply = sock.recv(1024)
        except ConnectionResetError:
            reply = b""
        # Closed, or A-ABORT (service-user or, from dicom/transport.py, service-provider source) then closed.
        assert reply in (b"", bytes.fromhex("07000000000400000000"), bytes.fromhex("07000000000400000200"))
    finally:
        sock.close()
    still_healthy(app, scp, modality, tmp_path)


def test_dsec07_idle_connections_dropped_after_acse_timeout(
    app: Flask, scp: Running, modality: str, tmp_path: Path
) -> None:
    scp.ae.acse_timeout = 1
    idle = [socket.create_connection(("127.0.0.1", scp.port), timeout=10) for _ in range(20)]
    try:
        assert echo_ok(scp.port, modality)  # a legitimate association succeeds in parallel
        start = time.monotonic()
        for s in idle:
            assert s.recv(1) == b""  # closed by the SCP
        assert time.monotonic() - start < 8
    finally:
        for s in idle:
            s.close()
    still_healthy(app, scp, modality, tmp_path)


# -- DSEC-09: SOP-class and transfer-syntax allowlists -------------------------------------------------------------
@pytest.mark.parametrize(
    ("abstract", "syntax"),
    [
        (synthetic.RT_PLAN, ExplicitVRLittleEndian),  # RT Plan
        ("1.2.826.0.1.3680043.8.498.7777", ExplicitVRLittleEndian),  # private SOP class
        (CT, DeflatedExplicitVRLittleEndian),  # Deflate off (decompression bombs)
        (CT, ExplicitVRBigEndian),  # retired big endian
    ],
)
def test_dsec09_context_rejected(
    app: Flask, scp: Running, modality: str, tmp_path: Path, abstract: str, syntax: str
) -> None:
    assoc = associate(scp.port, modality, [(abstract, [syntax]), (CT, [ExplicitVRLittleEndian])])
    assert assoc.is_established
    rejected = {(str(cx.abstract_syntax), cx.result) for cx in assoc.rejected_contexts}
    accepted = {str(cx.abstract_syntax) for cx in assoc.accepted_contexts}
    assoc.release()
    assert any(a == abstract and r in (0x03, 0x04) for a, r in rejected), rejected
    assert accepted == {CT}
    still_healthy(app, scp, modality, tmp_path)


def test_dsec09_storescu_rt_plan_not_stored(app: Flask, scp: Running, modality: str, tmp_path: Path) -> None:
    res = dcmtk("storescu", "-R", "-aet", modality, "-aec", "TELERAD", "127.0.0.1", str(scp.port),
                str(sample_file("rtplan.dcm")))  # fmt: skip
    assert "no presentation context" in (res.stdout + res.stderr).lower() or res.returncode != 0
    assert count(app, Instance) == 0
    still_healthy(app, scp, modality, tmp_path)


# -- DSEC-10: audit events -----------------------------------------------------------------------------------------
def test_dsec10_association_store_and_query_audited(app: Flask, scp: Running, modality: str, tmp_path: Path) -> None:
    f = fresh_copy(sample_file("CT_small.dcm"), tmp_path / "a.dcm")
    assert store(scp.port, modality, [f]) == [status.SUCCESS]
    res = dcmtk("findscu", "-S", "-aet", modality, "-aec", "TELERAD", "-k", "QueryRetrieveLevel=STUDY",
                "-k", "PatientName=*", "127.0.0.1", str(scp.port))  # fmt: skip
    assert res.returncode == 0, res.stderr
    accepted = audit_events(app, "dicom_association_accepted")
    assert len(accepted) == 2
    assert accepted[0].ip == "127.0.0.1"
    assert accepted[0].institution_code == "M01"
    # The receipt queued its audit event in the index transaction (engine/imaging/outbox.py); the worker chains it
    assert audit_events(app, "dicom_instances_stored") == []
    assert worker_applies_ingest_events(app) == 1
    assert worker_applies_ingest_events(app) == 0  # applied once
    stored = audit_events(app, "dicom_instances_stored")
    assert [e.details["dicom_event"] for e in stored] == ["110104"]
    assert stored[0].patient_id == str(dcmread(f).PatientID)
    assert stored[0].username == f"dicom:{modality}"
    assert stored[0].institution_code == "M01"
    assert stored[0].ip == "127.0.0.1"
    assert stored[0].details["received_at"] <= stored[0].ts.isoformat()
    queries = audit_events(app, "dicom_query")
    assert len(queries) == 1
    assert queries[0].details["dicom_event"] == "110112"
    assert queries[0].details["results"] == 1
