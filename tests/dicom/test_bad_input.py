"""SECURITY.md §C1 bad-input catalogue at the association/PDU and DIMSE layers, with hand-built PDUs (REQ: DSEC-04,
DSEC-07, DSEC-08, DSEC-09): after every bad input the SCP still answers C-ECHO, stores the next good instance with
0x0000 and holds nothing half-stored (no temp file, no row without its file). Calling-AE variants, the 0xFFFFFFFF
PDU length before association, mismatched Affected UIDs (via pynetdicom) and idle connections are in
test_security.py; this file adds the raw-socket cases and a hypothesis fuzz of the data set parse path."""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from pathlib import Path

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset
from sqlalchemy import select

from dicom import status
from dicom.scp import Running
from engine.imaging.models import Instance, InstanceConflict
from tests.dicom import rawpdu, synthetic
from tests.dicom.conftest import count, echo_ok, rows, store
from tests.dicom.rawpdu import (
    A_ABORT,
    A_ASSOCIATE_AC,
    A_ASSOCIATE_RJ,
    EXPLICIT_LE,
    IMPLICIT_LE,
    P_DATA_TF,
    VERIFICATION,
    RawAssociation,
)

CT = synthetic.CT_IMAGE
MR = "1.2.840.10008.5.1.4.1.1.4"
DEFLATE = "1.2.840.10008.1.2.1.99"
BIG_ENDIAN = "1.2.840.10008.1.2.2"


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def no_half_stored(app: Flask, scp: Running) -> None:
    """No temp file left in the store, no index row without its file (REQ: DSEC-05)."""
    deadline = time.monotonic() + 5
    while list(scp.ctx.store.tmp_dir.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)  # an association being torn down closes its file a moment later
    assert list(scp.ctx.store.tmp_dir.iterdir()) == []
    for key, digest in rows(app, select(Instance.storage_key, Instance.sha256)):
        assert scp.ctx.store.verify(key, digest)


def healthy(app: Flask, scp: Running, tmp_path: Path, aet: str = "MODALITY1") -> None:
    """After a bad input: C-ECHO answers, the next good instance gets 0x0000, nothing half-stored."""
    assert echo_ok(scp.port, aet)
    before = count(app, Instance)
    good = synthetic.ct(tmp_path / f"good-{time.monotonic_ns()}.dcm")
    assert store(scp.port, aet, [good]) == [status.SUCCESS]
    assert count(app, Instance) == before + 1
    no_half_stored(app, scp)


def establish(
    scp: Running, contexts: list[tuple[int, str, list[str]]] | None = None, *, max_pdu: int | None = 16384
) -> tuple[RawAssociation, dict[int, int]]:
    conn = RawAssociation(scp.port, timeout=5)
    conn.send(rawpdu.associate_rq(contexts=contexts, max_pdu=max_pdu))
    reply = conn.read()
    assert reply is not None
    assert reply.kind == A_ASSOCIATE_AC, reply
    return conn, rawpdu.accepted_contexts(reply.body)


def ct_dataset(**tags: object) -> Dataset:
    ds = synthetic.image(synthetic.base(CT, modality="CT"))
    for k, v in tags.items():
        setattr(ds, k, v)
    return ds


def send_store(conn: RawAssociation, cid: int, ds: Dataset, message_id: int = 1, **kw: object) -> None:
    body = rawpdu.dataset_bytes(ds)
    conn.send(rawpdu.pdata((cid, 0x03, rawpdu.store_rq(str(ds.SOPClassUID), str(ds.SOPInstanceUID), message_id))))
    conn.send(rawpdu.pdata((cid, 0x02, body)))


# -- presentation contexts -----------------------------------------------------------------------------------------
def test_c1_zero_presentation_contexts(app: Flask, scp: Running, modality: str, tmp_path: Path) -> None:
    with RawAssociation(scp.port, timeout=5) as conn:
        conn.send(rawpdu.associate_rq(contexts=[]))
        reply = conn.read()
        # Refused (RJ/abort), or accepted with nothing usable: either way no DIMSE can follow.
        assert reply is None or reply.kind in (A_ASSOCIATE_RJ, A_ABORT, A_ASSOCIATE_AC)
        if reply is not None and reply.kind == A_ASSOCIATE_AC:
            assert rawpdu.accepted_contexts(reply.body) == {}
            conn.send(rawpdu.pdata((1, 0x03, rawpdu.echo_rq())))
            assert rawpdu.response_status(conn) is None
    healthy(app, scp, tmp_path)


def test_c1_more_than_128_contexts_and_duplicate_ids(app: Flask, scp: Running, modality: str, tmp_path: Path) -> None:
    contexts = [(1 + 2 * (i % 128), VERIFICATION, [IMPLICIT_LE]) for i in range(200)]  # 200 items, ids repeat
    with RawAssociation(scp.port, timeout=5) as conn:
        conn.send(rawpdu.associate_rq(contexts=contexts))
        reply = conn.read()
        assert reply is None or reply.kind in (A_ASSOCIATE_RJ, A_ABORT, A_ASSOCIATE_AC)
        if reply is not None and reply.kind == A_ASSOCIATE_AC:
            accepted = rawpdu.accepted_contexts(reply.body)
            assert len(accepted) <= 128
            assert all(cid % 2 == 1 for cid in accepted)
    healthy(app, scp, tmp_path)


def test_c1_even_context_ids(app: Flask, scp: Running, modality: str, tmp_path: Path) -> None:
    with RawAssociation(scp.port, timeout=5) as conn:
        conn.send(rawpdu.associate_rq(contexts=[(2, VERIFICATION, [IMPLICIT_LE]), (4, CT, [EXPLICIT_LE])]))
        reply = conn.read()
        assert reply is None or reply.kind in (A_ASSOCIATE_RJ, A_ABORT, A_ASSOCIATE_AC)
        if reply is not None and reply.kind == A_ASSOCIATE_AC:
            conn.send(rawpdu.pdata((2, 0x03, rawpdu.echo_rq())))
            st_ = rawpdu.response_status(conn)
            assert st_ in (None, status.SUCCESS)
    healthy(app, scp, tmp_path)


@pytest.mark.parametrize(
    ("abstract", "syntaxes"),
    [
        ("1.2.826.0.1.3680043.8.498.424242", [EXPLICIT_LE]),  # unknown abstract syntax
        (CT, [BIG_ENDIAN]),  # retired big endian only
        (CT, [DEFLATE]),  # deflate only
        (CT, ["1.2.826.0.1.3680043.8.498.5.5"]),  # unknown transfer syntax
    ],
    ids=["unknown_abstract", "big_endian_only", "deflate_only", "unknown_ts"],
)
def test_c1_dsec09_unusable_only_context_then_data_on_it(
    app: Flask, scp: Running, modality: str, tmp_path: Path, abstract: str, syntaxes: list[str]
) -> None:
    with RawAssociation(scp.port, timeout=5) as conn:
        conn.send(rawpdu.associate_rq(contexts=[(1, abstract, syntaxes)]))
        reply = conn.read()
        assert reply is not None
        if reply.kind == A_ASSOCIATE_AC:
            assert rawpdu.accepted_contexts(reply.body)[1] in (0x03, 0x04)  # abstract / transfer syntax refused
            # The peer sends a C-STORE on the refused context anyway: never stored.
            ds = ct_dataset()
            send_store(conn, 1, ds)
            assert rawpdu.response_status(conn) is None
        else:
            assert reply.kind in (A_ASSOCIATE_RJ, A_ABORT)
    assert count(app, Instance) == 0
    healthy(app, scp, tmp_path)


# -- maximum PDU length --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("max_pdu", [0, 8, 0xFFFFFFFF], ids=["unlimited", "8_bytes", "4GB"])
def test_c1_dsec07_peer_max_pdu_extremes(app: Flask, scp: Running, modality: str, tmp_path: Path, max_pdu: int) -> None:
    """The peer's maximum PDU 0 ("unlimited"), 8 bytes, 0xFFFFFFFF: echo and store still answered (or refused)."""
    conn, accepted = establish(scp, [(1, VERIFICATION, [IMPLICIT_LE]), (3, CT, [EXPLICIT_LE])], max_pdu=max_pdu)
    with conn:
        assert accepted == {1: 0, 3: 0}
        conn.send(rawpdu.pdata((1, 0x03, rawpdu.echo_rq())))
        assert rawpdu.response_status(conn) in (status.SUCCESS, None)
        ds = ct_dataset()
        send_store(conn, 3, ds, message_id=2)
        assert rawpdu.response_status(conn) in (status.SUCCESS, None)
    healthy(app, scp, tmp_path)


# -- PDU length lies and sequencing --------------------------------------------------------------------------------
def test_c1_dsec07_pdata_header_claiming_4gb_aborts_with_flat_rss(
    app: Flask, scp: Running, modality: str, tmp_path: Path
) -> None:
    """Inside an established association a P-DATA-TF header claims ~4 GB: refused before allocation (the pynetdicom
    #1086 class), the connection is closed and this process's RSS stays flat."""
    healthy(app, scp, tmp_path)  # warm up: first-use allocations are not the attack's
    before = rss_kib()
    for _ in range(5):
        conn, _ = establish(scp)
        with conn:
            conn.send(struct.pack(">BBI", P_DATA_TF, 0, 0xFFFFFFF0) + b"\0" * 1024)
            assert conn.refused()
            assert conn.read() is None  # and closed at once
    assert rss_kib() - before < 20 * 1024  # 20 MiB: noise, not a 4 GB buffer
    healthy(app, scp, tmp_path)


def test_c1_pdu_length_larger_than_sent_times_out(app: Flask, scp: Running, modality: str, tmp_path: Path) -> None:
    """A PDU header promising more bytes than are sent (a stall) is dropped after the network timeout."""
    scp.ae.network_timeout = 1
    conn, _ = establish(scp)
    with conn:
        body = rawpdu.pdata((1, 0x03, rawpdu.echo_rq()))
        conn.send(body[:2] + struct.pack(">I", len(body) + 100) + body[6:])  # 100 bytes short, forever
        started = time.monotonic()
        assert conn.refused()
        assert conn.read() is None
        assert time.monotonic() - started < 8
    healthy(app, scp, tmp_path)


def test_c1_pdata_before_association(app: Flask, scp: Running, modality: str, tmp_path: Path) -> None:
    with RawAssociation(scp.port, timeout=5) as conn:
        conn.send(rawpdu.pdata((1, 0x03, rawpdu.echo_rq())))
        assert conn.refused()
    assert count(app, Instance) == 0
    healthy(app, scp, tmp_path)


@pytest.mark.parametrize(
    "payload",
    [
        b"GET / HTTP/1.1\r\nHost: telerad\r\n\r\n",
        # A TLS 1.2 ClientHello record header + the start of its handshake message.
        bytes.fromhex("16030100a5010000a10303") + os.urandom(32) + b"\x00\x00\x02\x00\x2f\x01\x00",
        b"\x00" * 64,
    ],
    ids=["http_get", "tls_client_hello", "zeros"],
)
def test_c1_non_dicom_bytes_to_plain_port(
    app: Flask, scp: Running, modality: str, tmp_path: Path, payload: bytes
) -> None:
    with RawAssociation(scp.port, timeout=5) as conn:
        conn.send(payload)
        assert conn.refused()
    healthy(app, scp, tmp_path)


def test_c1_dsec07_slowloris_trickle_dropped_while_legitimate_association_succeeds(
    app: Flask, scp: Running, modality: str, tmp_path: Path
) -> None:
    """Several peers trickle an A-ASSOCIATE-RQ one byte at a time: each is dropped after the ACSE timeout, and a
    legitimate association succeeds meanwhile."""
    scp.ae.acse_timeout = 1
    rq = rawpdu.associate_rq()
    conns = [RawAssociation(scp.port, timeout=5) for _ in range(5)]
    dropped: list[float] = []
    started = time.monotonic()

    def trickle(conn: RawAssociation) -> None:
        for i in range(len(rq)):
            try:
                conn.send(rq[i : i + 1])
            except OSError:
                dropped.append(time.monotonic() - started)
                return
            time.sleep(0.3)

    threads = [threading.Thread(target=trickle, args=(c,), daemon=True) for c in conns]
    for t in threads:
        t.start()
    try:
        assert echo_ok(scp.port, modality)
        for t in threads:
            t.join(timeout=15)
        assert len(dropped) == len(conns)  # every trickler was cut off before sending its whole request
        assert max(dropped) < 8
    finally:
        for c in conns:
            c.close()
    healthy(app, scp, tmp_path)


# -- DIMSE sequencing and teardown mid-dataset ---------------------------------------------------------------------
def _store_contexts(scp: Running) -> tuple[RawAssociation, dict[int, int]]:
    return establish(scp, [(1, VERIFICATION, [IMPLICIT_LE]), (3, CT, [EXPLICIT_LE]), (5, MR, [EXPLICIT_LE])])


@pytest.mark.parametrize("how", ["a_abort", "tcp_rst", "a_release", "close"])
def test_c1_teardown_mid_dataset_leaves_nothing_half_stored(
    app: Flask, scp: Running, modality: str, tmp_path: Path, how: str
) -> None:
    """Half a data set, then A-ABORT, TCP RST, A-RELEASE-RQ or a plain close: no row, no temp file, no object."""
    ds = ct_dataset()
    body = rawpdu.dataset_bytes(ds)
    conn, _ = _store_contexts(scp)
    conn.send(rawpdu.pdata((3, 0x03, rawpdu.store_rq(CT, str(ds.SOPInstanceUID)))))
    conn.send(rawpdu.pdata((3, 0x00, body[: len(body) // 2])))  # not the last fragment
    time.sleep(0.2)  # the SCP has opened its temp file
    if how == "a_abort":
        conn.send(rawpdu.pdu(A_ABORT, b"\0\0\0\0"))
    elif how == "a_release":
        conn.send(rawpdu.pdu(0x05, b"\0\0\0\0"))
    elif how == "tcp_rst":
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()
    assert count(app, Instance) == 0
    no_half_stored(app, scp)
    assert [k for k, _ in scp.ctx.store.iter_keys()] == []
    healthy(app, scp, tmp_path)


def test_c1_data_pdv_before_command_pdv(app: Flask, scp: Running, modality: str, tmp_path: Path) -> None:
    ds = ct_dataset()
    conn, _ = _store_contexts(scp)
    with conn:
        conn.send(rawpdu.pdata((3, 0x02, rawpdu.dataset_bytes(ds))))  # a last data fragment, no command yet
        assert conn.refused()
    assert count(app, Instance) == 0
    healthy(app, scp, tmp_path)


def test_c1_pdv_for_unknown_context_id(app: Flask, scp: Running, modality: str, tmp_path: Path) -> None:
    ds = ct_dataset()
    conn, _ = _store_contexts(scp)
    with conn:
        send_store(conn, 99, ds)  # context 99 was never proposed
        assert rawpdu.response_status(conn) is None  # aborted, never answered
    assert count(app, Instance) == 0
    healthy(app, scp, tmp_path)


def test_c1_wrong_last_fragment_bits(app: Flask, scp: Running, modality: str, tmp_path: Path) -> None:
    """The command set never marked last; its data set then arrives: refused or aborted, never stored."""
    ds = ct_dataset()
    conn, _ = _store_contexts(scp)
    with conn:
        conn.send(rawpdu.pdata((3, 0x01, rawpdu.store_rq(CT, str(ds.SOPInstanceUID)))))  # command, not last
        conn.send(rawpdu.pdata((3, 0x02, rawpdu.dataset_bytes(ds))))
        conn.send(rawpdu.pdu(0x05, b"\0\0\0\0"))  # A-RELEASE-RQ
        try:
            while (reply := conn.read()) is not None and reply.kind == P_DATA_TF:
                pass
        except TimeoutError:
            pass
    assert count(app, Instance) == 0
    healthy(app, scp, tmp_path)


def test_c1_message_id_reuse_within_an_association(app: Flask, scp: Running, modality: str, tmp_path: Path) -> None:
    """Sequential reuse of a MessageID (no asynchronous window negotiated): each request answered once, in order."""
    first, second = ct_dataset(), ct_dataset()
    conn, _ = _store_contexts(scp)
    with conn:
        send_store(conn, 3, first, message_id=7)
        assert rawpdu.response_status(conn) == status.SUCCESS
        send_store(conn, 3, second, message_id=7)
        assert rawpdu.response_status(conn) == status.SUCCESS
        conn.send(rawpdu.pdata((1, 0x03, rawpdu.echo_rq(7))))
        assert rawpdu.response_status(conn) == status.SUCCESS
    assert count(app, Instance) == 2
    healthy(app, scp, tmp_path)


@pytest.mark.parametrize(
    ("command_class", "dataset_class", "context"),
    [
        (MR, CT, 3),  # the command says MR, the data set (on the CT context) says CT
        (MR, MR, 3),  # command and data set agree on MR, but the context is CT's
        (synthetic.RT_PLAN, synthetic.RT_PLAN, 3),  # a refused SOP class smuggled over the CT context (DSEC-09)
    ],
    ids=["command_vs_dataset", "context_vs_both", "rt_plan_over_ct_context"],
)
def test_c1_dsec04_affected_sop_class_must_match_context_and_dataset(
    app: Flask, scp: Running, modality: str, tmp_path: Path, command_class: str, dataset_class: str, context: int
) -> None:
    ds = ct_dataset(SOPClassUID=dataset_class)
    conn, _ = _store_contexts(scp)
    with conn:
        conn.send(rawpdu.pdata((context, 0x03, rawpdu.store_rq(command_class, str(ds.SOPInstanceUID)))))
        conn.send(rawpdu.pdata((context, 0x02, rawpdu.dataset_bytes(ds))))
        result = rawpdu.response_status(conn)
    assert result in (None, status.SOP_CLASS_NOT_SUPPORTED, status.STORE_DATASET_MISMATCH), hex(result or 0)
    assert count(app, Instance) == 0
    no_half_stored(app, scp)
    healthy(app, scp, tmp_path)


def test_c1_store_declares_dataset_but_sends_none(app: Flask, scp: Running, modality: str, tmp_path: Path) -> None:
    """A C-STORE-RQ announcing a data set, followed by another command instead: never stored, nothing left."""
    ds = ct_dataset()
    conn, _ = _store_contexts(scp)
    with conn:
        conn.send(rawpdu.pdata((3, 0x03, rawpdu.store_rq(CT, str(ds.SOPInstanceUID)))))
        conn.send(rawpdu.pdata((1, 0x03, rawpdu.echo_rq(2))))  # a command where the data set should be
        conn.send(rawpdu.pdu(0x05, b"\0\0\0\0"))
        try:
            while (reply := conn.read()) is not None and reply.kind == P_DATA_TF:
                pass
        except TimeoutError:
            pass
    assert count(app, Instance) == 0
    healthy(app, scp, tmp_path)


def test_c1_store_declares_no_dataset_but_sends_one(app: Flask, scp: Running, modality: str, tmp_path: Path) -> None:
    ds = ct_dataset()
    conn, _ = _store_contexts(scp)
    with conn:
        cmd = rawpdu.store_rq(CT, str(ds.SOPInstanceUID), has_dataset=False)
        conn.send(rawpdu.pdata((3, 0x03, cmd)))
        conn.send(rawpdu.pdata((3, 0x02, rawpdu.dataset_bytes(ds))))
        try:
            result = rawpdu.response_status(conn)
        except TimeoutError:
            result = None
        assert result is None or result >= 0xA000
    assert count(app, Instance) == 0
    healthy(app, scp, tmp_path)


# -- DSEC-08: fuzz of the receive-and-parse path -------------------------------------------------------------------
_FUZZ_BASE = ct_dataset(
    SOPInstanceUID="1.2.826.0.1.3680043.8.498.1001",
    StudyInstanceUID="1.2.826.0.1.3680043.8.498.1002",
    SeriesInstanceUID="1.2.826.0.1.3680043.8.498.1003",
    PatientName="Fuzz^Base",
)
_FUZZ_BYTES = rawpdu.dataset_bytes(_FUZZ_BASE)
_ACCEPTABLE = {status.SUCCESS, status.STORE_CANNOT_UNDERSTAND, status.STORE_DATASET_MISMATCH}


@st.composite
def mutated_dataset(draw: st.DrawFn) -> bytes:
    """The base CT data set with byte flips, a truncation, an inserted run, a lying length field — or plain noise."""
    kind = draw(st.sampled_from(["flip", "truncate", "insert", "length", "noise"]))
    data = bytearray(_FUZZ_BYTES)
    if kind == "noise":
        return draw(st.binary(min_size=0, max_size=2048))
    if kind == "truncate":
        return bytes(data[: draw(st.integers(0, len(data) - 1))])
    if kind == "insert":
        at = draw(st.integers(0, len(data)))
        return bytes(data[:at] + draw(st.binary(min_size=1, max_size=64)) + data[at:])
    if kind == "length":
        # Overwrite 2 or 4 bytes at an element boundary-ish offset with a huge or odd length.
        at = draw(st.integers(0, len(data) - 4))
        value = draw(st.sampled_from([0xFFFFFFFF, 0xFFFFFFFE, 0x7FFFFFFF, 0x10000, 1, 3]))
        data[at : at + 4] = struct.pack("<I", value)
        return bytes(data)
    for _ in range(draw(st.integers(1, 16))):
        at = draw(st.integers(0, len(data) - 1))
        data[at] = draw(st.integers(0, 255))
    return bytes(data)


def _fuzz_one(app: Flask, scp: Running, body: bytes) -> None:
    conn, _ = _store_contexts(scp)
    with conn:
        uid = str(_FUZZ_BASE.SOPInstanceUID)
        conn.send(rawpdu.pdata((3, 0x03, rawpdu.store_rq(CT, uid))))
        conn.send(rawpdu.pdata((3, 0x02, body)))
        result = rawpdu.response_status(conn)
        assert result in _ACCEPTABLE, hex(result) if result is not None else "no response"
        conn.send(rawpdu.pdu(0x05, b"\0\0\0\0"))  # A-RELEASE-RQ
        assert conn.read() is not None  # A-RELEASE-RP: the association is still orderly
    no_half_stored(app, scp)


def _fuzz(app: Flask, scp: Running, tmp_path: Path, examples: int) -> None:
    healthy(app, scp, tmp_path)
    before = rss_kib()

    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(body=mutated_dataset())
    def run(body: bytes) -> None:
        _fuzz_one(app, scp, body)

    run()
    assert rss_kib() - before < 30 * 1024  # no leak per input
    healthy(app, scp, tmp_path)
    # Whatever was accepted is one instance under the command's UID (the Affected UID must equal the data set's);
    # a different content under that UID is a conflict kept aside, never a second row.
    base = str(_FUZZ_BASE.SOPInstanceUID)
    assert count(app, Instance, Instance.sop_instance_uid == base) <= 1
    assert {r[0] for r in rows(app, select(InstanceConflict.sop_instance_uid))} <= {base}


def test_dsec08_fuzz_dataset_parse_path(app: Flask, scp: Running, modality: str, tmp_path: Path) -> None:
    _fuzz(app, scp, tmp_path, 50)


@pytest.mark.slow
def test_dsec08_fuzz_dataset_parse_path_long(app: Flask, scp: Running, modality: str, tmp_path: Path) -> None:
    _fuzz(app, scp, tmp_path, 3000)
