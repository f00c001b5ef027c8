"""STOW-RS over a real server (issue 15): telerad served by waitress as `telerad web` serves it, real HTTP clients —
dicomweb-client's store_instances, concurrent clients, a chunked body over the cap, a declared length over the
server's limit (REQ: DSEC-05, WEB-06, CLOUD-01)."""

from __future__ import annotations

import io
import os
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from flask import Flask
from pydicom import dcmread
from pydicom.dataset import Dataset
from waitress.server import create_server

from api.dicomweb import stow as stow_view
from engine import config
from engine.audit import AuditEvent
from engine.imaging.models import Instance
from tests.dicom.conftest import count
from tests.dicomweb.test_stow import CT_TYPE, chinese, fresh, multipart, registrar
from tests.factories import Session

__all__ = ["registrar"]  # the 登记员 fixture of test_stow.py


# -- a real HTTP client over a real server --------------------------------------------------------------------------
@pytest.fixture
def live(app: Flask, settings: config.Settings) -> Iterator[str]:
    """telerad served by waitress on a free loopback port, prepared as `telerad web` prepares it.
    (Minimal; tests/dicomweb/conftest.py of the QIDO helper provides the shared one.)"""
    limit = stow_view.prepare_server(app, settings)  # as `telerad web` does
    server = create_server(app, host="127.0.0.1", port=0, threads=4, max_request_body_size=limit)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.effective_port}"
    server.close()
    thread.join(5)


def _http_session(base: str, sess: Session) -> requests.Session:
    http = requests.Session()
    r = http.post(f"{base}/api/auth/login", json={"username": sess.user.username, "password": sess.user.password})
    assert r.status_code == 200
    http.headers["X-CSRF-Token"] = r.json()["csrf_token"]
    return http


def test_dicomweb_client_store_instances(app: Flask, live: str, registrar: Session, tmp_path: Path) -> None:
    """dicomweb-client's store_instances over waitress, with the browser's session and CSRF header: stored."""
    http = _http_session(live, registrar)
    client = DICOMwebClient(url=f"{live}/dicomweb", session=http)
    datasets: list[Dataset] = [
        dcmread(io.BytesIO(fresh("CT_small.dcm"))),
        dcmread(io.BytesIO(chinese(tmp_path, "王^五", "GB18030"))),
    ]
    result = client.store_instances(datasets)
    assert [str(i.ReferencedSOPInstanceUID) for i in result.ReferencedSOPSequence] == [
        str(d.SOPInstanceUID) for d in datasets
    ]
    assert count(app, Instance) == 2
    assert count(app, AuditEvent, AuditEvent.event_type == "permission_denied") == 0


def test_live_chunked_over_cap_413_in_chinese(
    app: Flask, live: str, registrar: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chunked body (no Content-Length) over the cap through waitress: 413 with the Chinese message."""
    monkeypatch.setattr(config.current(), "stow_max_bytes", 2 * 1024 * 1024)
    http = _http_session(live, registrar)
    payload = multipart([fresh("CT_small.dcm"), os.urandom(2 * 1024 * 1024 + 100_000)])

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(payload), 65536):
            yield payload[i : i + 65536]

    r = http.post(f"{live}/dicomweb/studies", data=chunks(), headers={"Content-Type": CT_TYPE})
    assert r.status_code == 413
    assert r.json()["code"] == "stow_too_large"
    assert "上限 2 MB，未存储任何实例" in r.json()["message"]  # waitress de-chunks it and declares its length
    assert count(app, Instance) == 0


def test_live_concurrent_requests(app: Flask, live: str, registrar: Session) -> None:
    """Four clients storing at once (four waitress threads, each receiving its parts in threads of its own): every
    instance stored once, each request answered 200."""
    http = _http_session(live, registrar)
    bodies = [multipart([fresh("CT_small.dcm") for _ in range(5)]) for _ in range(4)]
    with ThreadPoolExecutor(4) as pool:
        answers = list(
            pool.map(lambda b: http.post(f"{live}/dicomweb/studies", data=b, headers={"Content-Type": CT_TYPE}), bodies)
        )
    assert [a.status_code for a in answers] == [200] * 4
    assert count(app, Instance) == 20


def test_live_declared_over_server_limit_refused_unread(app: Flask, live: str, settings: config.Settings) -> None:
    """Through waitress, a Content-Length beyond its body limit (the cap plus 2 MiB) is refused at once, before the
    app runs and without the body being sent (waitress's own plain 413)."""
    port = int(live.rsplit(":", 1)[1])
    declared = stow_view.server_body_limit(settings) + 1
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            (
                f"POST /dicomweb/studies HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {CT_TYPE}\r\n"
                f"Content-Length: {declared}\r\n\r\n"
            ).encode()
        )
        reply = sock.recv(4096)
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert count(app, Instance) == 0
