"""The pynetdicom internals dicom/transport.py relies on (pinned 3.0.4), checked on a live association."""

from __future__ import annotations

import socket
import threading
import time

import pynetdicom
from flask import Flask
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom.association import Association
from pynetdicom.dul import DULServiceProvider

from dicom import status
from dicom.scp import Running
from dicom.transport import FastAssociation, FastDUL, FastSocket, MonotonicTimer
from tests.dicom.conftest import associate

VERIFICATION = "1.2.840.10008.1.1"


def test_pinned_pynetdicom_version_and_internals() -> None:
    assert pynetdicom.__version__ == "3.0.4"  # transport.py subclasses internals: re-check them on any upgrade
    assert "_run_loop_delay" in DULServiceProvider.__init__.__code__.co_names
    assert "to_provider_queue" in DULServiceProvider.__init__.__code__.co_names
    assert "_run_reactor" in Association.__dict__
    # dicom/fastpath.py: messages become primitives through message_to_primitive, which copies _data_set_path.
    from pynetdicom.dimse_messages import DIMSEMessage

    assert "_data_set_path" in DIMSEMessage.message_to_primitive.__code__.co_names
    assert "run_reactor" in Association.__dict__


def _server_side(scp: Running) -> FastAssociation:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        live = [a for a in scp.servers[0].active_associations if a.is_established]
        if live:
            assert isinstance(live[0], FastAssociation)
            return live[0]
        time.sleep(0.01)
    raise AssertionError("no server-side association")


def test_acceptor_uses_fast_transport_and_shared_contexts(app: Flask, scp: Running, modality: str) -> None:
    assoc = associate(scp.port, modality, [(VERIFICATION, [ExplicitVRLittleEndian])])
    try:
        server_assoc = _server_side(scp)
        assert isinstance(server_assoc.dul, FastDUL)
        assert server_assoc.dul._run_loop_delay == 0
        assert server_assoc.dul.artim_timer.timeout == scp.ae.acse_timeout
        assert server_assoc.dul._idle_timer.timeout == scp.ae.network_timeout  # not pynetdicom's default Timer(60)
        assert isinstance(server_assoc.dul._idle_timer, MonotonicTimer)
        assert server_assoc.acceptor.supported_contexts is scp.servers[0].contexts  # no per-association deepcopy
        sock = server_assoc.dul.socket
        assert isinstance(sock, FastSocket)
        assert sock.socket is not None
        assert sock.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        assert sock.max_read == scp.ae.maximum_pdu_size + 1024
        # Many messages on one association are answered (the event-driven loop never stalls).
        for _ in range(50):
            assert assoc.send_c_echo().Status == status.SUCCESS
    finally:
        assoc.release()


def test_association_request_is_answered_without_select_timeout(app: Flask, scp: Running, modality: str) -> None:
    """The A-ASSOCIATE-RQ is read in the DUL loop that still has Evt5 queued: the next select must not wait its
    50 ms timeout before the request is handled (issue 4: echoscu took ~98 ms against Orthanc's ~20 ms)."""
    timings = []
    for _ in range(7):
        t0 = time.perf_counter()
        assoc = associate(scp.port, modality, [(VERIFICATION, [ExplicitVRLittleEndian])])
        timings.append(time.perf_counter() - t0)
        assoc.release()
    timings.sort()
    assert timings[3] < 0.045, f"median association setup {timings[3] * 1000:.0f} ms"


def test_idle_association_thread_blocks_instead_of_polling(app: Flask, scp: Running, modality: str) -> None:
    """An idle association costs (almost) no CPU: its DUL waits in select, its reactor on the message queue."""
    assoc = associate(scp.port, modality, [(VERIFICATION, [ExplicitVRLittleEndian])])
    try:
        _server_side(scp)
        start_cpu = time.thread_time()
        t0 = time.process_time()
        time.sleep(1.0)
        used = time.process_time() - t0 - (time.thread_time() - start_cpu)
        assert used < 0.3, f"{used:.2f} s CPU in 1 s while idle"
        assert threading.active_count() < 50
    finally:
        assoc.release()


def test_fastpath_response_command_set_decodes_as_pynetdicom_would() -> None:
    from io import BytesIO

    from pynetdicom.dimse_primitives import C_STORE
    from pynetdicom.dsutils import decode

    from dicom.fastpath import store_response_pdata

    rsp = C_STORE()
    rsp.MessageIDBeingRespondedTo = 7
    rsp.AffectedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    rsp.AffectedSOPInstanceUID = "1.2.3.45"
    rsp.Status = 0xA700
    (context_id, pdv) = store_response_pdata(rsp, 5).presentation_data_value_list[0]
    assert context_id == 5
    assert pdv[0] == 0x03  # command, last fragment
    cs = decode(BytesIO(pdv[1:]), True, True)
    assert cs.CommandGroupLength == len(pdv) - 1 - 12
    assert (cs.CommandField, cs.MessageIDBeingRespondedTo, cs.CommandDataSetType) == (0x8001, 7, 0x0101)
    assert (cs.Status, cs.AffectedSOPClassUID, cs.AffectedSOPInstanceUID) == (
        0xA700,
        rsp.AffectedSOPClassUID,
        "1.2.3.45",
    )


def test_fastpath_find_response_matches_pynetdicoms_encoding() -> None:
    """C-FIND-RSP sent in one P-DATA-TF by the fast path: the command set decodes to what pynetdicom would send,
    the identifier follows unchanged; too big for the peer's PDU, or a failure with details, falls back (None)."""
    from io import BytesIO

    from pydicom.dataset import Dataset
    from pynetdicom.dimse_primitives import C_FIND
    from pynetdicom.dsutils import decode, encode

    from dicom.fastpath import find_response_pdata

    ident = Dataset()
    ident.PatientName, ident.StudyInstanceUID, ident.QueryRetrieveLevel = "张^三", "1.2.3.4", "STUDY"
    ident.SpecificCharacterSet = "ISO_IR 192"
    raw = encode(ident, True, True)
    rsp = C_FIND()
    rsp.MessageIDBeingRespondedTo, rsp.AffectedSOPClassUID, rsp.Status = 9, "1.2.840.10008.5.1.4.1.2.2.1", 0xFF00
    rsp.Identifier = BytesIO(raw)
    pdvs = find_response_pdata(rsp, 3, 16384).presentation_data_value_list  # type: ignore[union-attr]
    assert [(c, v[0]) for c, v in pdvs] == [(3, 0x03), (3, 0x02)]  # command then data set, each last fragment
    cs = decode(BytesIO(pdvs[0][1][1:]), True, True)
    assert cs.CommandGroupLength == len(pdvs[0][1]) - 1 - 12
    assert (cs.CommandField, cs.MessageIDBeingRespondedTo, cs.CommandDataSetType, cs.Status) == (0x8020, 9, 1, 0xFF00)
    assert cs.AffectedSOPClassUID == rsp.AffectedSOPClassUID
    assert pdvs[1][1][1:] == raw
    assert find_response_pdata(rsp, 3, len(raw) // 2) is None  # over the peer's maximum PDU: pynetdicom fragments
    final = C_FIND()
    final.MessageIDBeingRespondedTo, final.AffectedSOPClassUID, final.Status = 9, rsp.AffectedSOPClassUID, 0x0000
    (only,) = find_response_pdata(final, 3, 0).presentation_data_value_list  # type: ignore[union-attr]
    assert decode(BytesIO(only[1][1:]), True, True).CommandDataSetType == 0x0101  # no identifier
    failed = C_FIND()
    failed.MessageIDBeingRespondedTo, failed.AffectedSOPClassUID, failed.Status = 9, rsp.AffectedSOPClassUID, 0xA900
    failed.ErrorComment = "bad query"
    assert find_response_pdata(failed, 3, 0) is None


def test_fastpath_stored_file_meta_and_digest(app: Flask, scp: Running, modality: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import hashlib

    from pydicom import dcmread
    from sqlalchemy import select

    from engine.imaging.models import Instance
    from tests.dicom import synthetic
    from tests.dicom.conftest import rows, store

    src = synthetic.ct(tmp_path / "a.dcm")
    assert store(scp.port, modality, [src]) == [status.SUCCESS]
    key, digest, size = rows(app, select(Instance.storage_key, Instance.sha256, Instance.size))[0]
    path = scp.ctx.store.path(key)
    raw = path.read_bytes()
    assert hashlib.sha256(raw).hexdigest() == digest  # hashed while written, equals the file
    assert len(raw) == size
    meta = dcmread(path).file_meta
    ds = dcmread(src)
    assert meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert meta.MediaStorageSOPClassUID == ds.SOPClassUID
    assert meta.TransferSyntaxUID == ds.file_meta.TransferSyntaxUID
    assert meta.SourceApplicationEntityTitle == modality
    assert meta.ImplementationVersionName == "TELERAD_1"


def test_sqlite_receiver_commits_sync_the_wal(app: Flask, scp: Running) -> None:
    """REQ: DSEC-05 — a C-STORE success promises a durable index row: WAL + synchronous=FULL (NORMAL survives a
    process crash but not a power loss)."""
    from sqlalchemy import text

    from engine import uow

    with app.app_context():
        s = uow.session()
        if s.get_bind().dialect.name != "sqlite":
            return  # PostgreSQL: synchronous_commit stays on (the server's default)
        assert s.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
