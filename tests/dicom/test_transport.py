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
from dicom.transport import FastAssociation, FastDUL, FastSocket
from tests.dicom.conftest import associate

VERIFICATION = "1.2.840.10008.1.1"


def test_pinned_pynetdicom_version_and_internals() -> None:
    assert pynetdicom.__version__ == "3.0.4"  # transport.py subclasses internals: re-check them on any upgrade
    assert "_run_loop_delay" in DULServiceProvider.__init__.__code__.co_names
    assert "to_provider_queue" in DULServiceProvider.__init__.__code__.co_names
    assert "_run_reactor" in Association.__dict__
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
