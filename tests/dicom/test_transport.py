"""The pynetdicom internals dicom/transport.py relies on (pinned 3.0.4), checked on a live association."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

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
    threads_before = threading.active_count()  # earlier tests on this worker may have left pools and watchdogs
    assoc = associate(scp.port, modality, [(VERIFICATION, [ExplicitVRLittleEndian])])
    try:
        _server_side(scp)
        start_cpu = time.thread_time()
        t0 = time.process_time()
        time.sleep(1.0)
        used = time.process_time() - t0 - (time.thread_time() - start_cpu)
        assert used < 0.3, f"{used:.2f} s CPU in 1 s while idle"
        assert threading.active_count() - threads_before < 10  # one association: a handful of threads, both sides
    finally:
        assoc.release()


def test_fastpath_response_command_set_decodes_as_pynetdicom_would() -> None:
    from io import BytesIO

    from pynetdicom.dimse_primitives import C_STORE
    from pynetdicom.dsutils import decode

    from dicom.dimse_encode import store_response_pdata

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


def _store_rq_command(move_originator: bool = False) -> bytes:
    """A C-STORE-RQ command set as pynetdicom's SCU encodes it."""
    from io import BytesIO

    from pynetdicom.dimse_messages import C_STORE_RQ
    from pynetdicom.dimse_primitives import C_STORE
    from pynetdicom.dsutils import encode

    prim = C_STORE()
    prim.MessageID = 7
    prim.AffectedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    prim.AffectedSOPInstanceUID = "1.2.826.0.1.3680043.8.498.123"
    prim.Priority = 2
    if move_originator:
        prim.MoveOriginatorApplicationEntityTitle = "MOVESCU"
        prim.MoveOriginatorMessageID = 3
    prim.DataSet = BytesIO(b"\x08\x00\x16\x00\x00\x00\x00\x00")
    msg = C_STORE_RQ()
    msg.primitive_to_message(prim)
    raw = encode(msg.command_set, True, True)
    assert raw is not None
    return raw


def _pynetdicom_primitive(raw: bytes) -> Any:
    from io import BytesIO

    from pynetdicom.dimse_messages import C_STORE_RQ
    from pynetdicom.dsutils import decode

    msg = C_STORE_RQ()
    msg.command_set = decode(BytesIO(raw), True, True)
    msg.data_set = BytesIO()
    msg.context_id = 1
    msg._data_set_path = msg._data_set_file = None
    return msg.message_to_primitive()


def test_fastpath_store_command_gives_the_primitive_pynetdicom_would() -> None:
    """The hand-read C-STORE-RQ command set (dicom/fastpath.store_command) yields the C_STORE primitive that
    pynetdicom's decode + message_to_primitive yield, with and without the C-MOVE originator."""
    from io import BytesIO
    from types import SimpleNamespace

    from dicom.fastpath import store_command, store_primitive

    names = (
        "MessageID",
        "AffectedSOPClassUID",
        "AffectedSOPInstanceUID",
        "Priority",
        "MoveOriginatorApplicationEntityTitle",
        "MoveOriginatorMessageID",
    )
    for move in (False, True):
        raw = _store_rq_command(move)
        params = store_command(raw)
        assert params is not None
        message = SimpleNamespace(data_set=BytesIO(), context_id=1, _data_set_path=None, _data_set_file=None)
        ours, theirs = store_primitive(message, params), _pynetdicom_primitive(raw)
        assert [getattr(ours, n) for n in names] == [getattr(theirs, n) for n in names]
        assert ours.MoveOriginatorApplicationEntityTitle == ("MOVESCU" if move else None)


def test_fastpath_store_command_leaves_anything_unusual_to_pydicom() -> None:
    """REQ: DSEC-08 — only a plain C-STORE-RQ is read by hand; anything else (another command, no data set, an element
    not in PS3.7 Table 9.3-1 or given twice, a truncated, non-ASCII or multi-valued value) goes to pydicom: None."""
    import struct

    from dicom.fastpath import store_command

    raw = _store_rq_command()

    def element(elem: int, value: bytes) -> bytes:
        return struct.pack("<HHI", 0, elem, len(value)) + value

    def replaced(elem: int, value: bytes) -> bytes:
        out, pos = b"", 0
        while pos < len(raw):
            _, e, n = struct.unpack_from("<HHI", raw, pos)
            out += element(e, value) if e == elem else raw[pos : pos + 8 + n]
            pos += 8 + n
        return out

    assert store_command(raw) is not None
    assert store_command(replaced(0x0100, b"\x30\x00")) is None  # C-ECHO-RQ
    assert store_command(replaced(0x0800, b"\x01\x01")) is None  # no data set announced
    assert store_command(raw + element(0x0600, b"AE")) is None  # not a C-STORE-RQ element
    assert store_command(raw + element(0x0110, b"\x01\x00")) is None  # MessageID twice
    assert store_command(raw[:-3]) is None  # truncated
    assert store_command(replaced(0x1000, "1.2.3\u00e9".encode("latin-1") + b"\0")) is None  # non-ASCII
    assert store_command(replaced(0x1000, b"1.2.3\\1.2.4")) is None  # two values
    assert store_command(replaced(0x0110, b"\x07")) is None  # a US of one byte


def test_fastpath_find_response_matches_pynetdicoms_encoding() -> None:
    """C-FIND-RSP sent in one P-DATA-TF by the fast path: the command set decodes to what pynetdicom would send,
    the identifier follows unchanged; too big for the peer's PDU, or a failure with details, falls back (None)."""
    from io import BytesIO

    from pydicom.dataset import Dataset
    from pynetdicom.dimse_primitives import C_FIND
    from pynetdicom.dsutils import decode, encode

    from dicom.dimse_encode import find_response_pdata

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
