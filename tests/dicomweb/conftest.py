"""DICOMweb test fixtures (issue 15): telerad served over real HTTP, `dicomweb-client` as the client.

dicomweb-client needs a real URL and a `requests.Session`; the session logs in through `/api/auth/login` (and
`/api/auth/mfa` for roles that need a second factor) and so carries the session cookie, with the CSRF header set for
the unsafe methods (STOW-RS from the browser's session). Every test here keeps its own database copy (tests/dicomweb
is not under SAVEPOINT_PATHS): the server answers from its own threads and connections, so seeded rows are committed.

    def test_x(app, dicomweb):
        dicomweb.seed(archive.small_series(3, PatientName="Wang^Wu"), institution="M01")  # the real receive path
        user, client = dicomweb.client("report_l1")            # a DICOMwebClient logged in as a new user
        studies = client.search_for_studies(search_filters={"PatientName": "wang*"})
        r = dicomweb.get(user, "/dicomweb/studies", params={...})  # raw requests.Response for status/header checks
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pyotp
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from flask import Flask
from pydicom.dataset import Dataset
from werkzeug.serving import make_server

from dicom import receiving
from engine import config
from engine.imaging.ingest import IngestState
from engine.imaging.source import Source
from tests.dicom import archive
from tests.dicom.conftest import add_node
from tests.factories import TestUser, make_user


@pytest.fixture
def dicomweb_server(app: Flask) -> Iterator[str]:
    """The test app (its own fresh database) served over HTTP on a free loopback port, a thread per request; the
    base URL. werkzeug's server, not waitress: it shuts down cleanly between tests (`shutdown()` ends
    `serve_forever()`), where closing waitress's sockets under its running loop raised EBADF in its thread."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="dicomweb-test-server", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def http_session(base: str, user: TestUser) -> requests.Session:
    """A `requests.Session` logged in as `user` over HTTP (TOTP when the user has a second factor)."""
    s = requests.Session()
    r = s.post(f"{base}/api/auth/login", json={"username": user.username, "password": user.password}, timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    if body["state"] == "mfa_required":
        assert user.totp_secret
        r = s.post(
            f"{base}/api/auth/mfa",
            json={"code": pyotp.TOTP(user.totp_secret).now()},
            headers={"X-CSRF-Token": body["csrf_token"]},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        body = r.json()
    assert body["state"] == "active", body
    s.headers["X-CSRF-Token"] = str(body["csrf_token"])
    return s


@dataclass
class DicomWeb:
    """What a DICOMweb test needs: the server's URL, seeded studies, logged-in users and clients."""

    app: Flask
    base: str
    _nodes: dict[str, int] = field(default_factory=dict)
    _sessions: dict[int, requests.Session] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """The DICOMweb service root (`…/dicomweb`), as dicomweb-client wants it."""
        return f"{self.base}/dicomweb"

    def node(self, institution: str) -> int:
        """A DICOM device of `institution` (created once per test) as which seeded instances arrive."""
        if institution not in self._nodes:
            self._nodes[institution] = add_node(self.app, f"DW{institution}"[:16], institution=institution)
        return self._nodes[institution]

    def seed(self, datasets: list[Dataset], *, institution: str = "M01") -> list[int]:
        """Receive `datasets` through the one receive path (engine/imaging/receive.py `Receiver.receive`: validator,
        durable store, index, matching to exams, routing) as sent by a device of `institution`; the instance ids."""
        settings: config.Settings = self.app.extensions["telerad_settings"]
        node = archive.node_info(self.app, self.node(institution))
        tmp = settings.storage_dir / "dicom" / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        rx = receiving.receiver(self.app, settings)
        ids: list[int] = []
        try:
            state = IngestState(Source.device(node, "127.0.0.1", via="c-store"))
            for ds in datasets:
                path = tmp / f"in-{ds.SOPInstanceUID}.dcm"
                ds.save_as(path, enforce_file_format=True)
                result = rx.receive(state, path)
                assert result.instance_id is not None
                ids.append(result.instance_id)
        finally:
            receiving.close(rx)
        return ids

    def user(self, *roles: str, institution_code: str = "CENTRAL", **kw: Any) -> TestUser:
        return make_user(self.app, *roles, institution_code=institution_code, **kw)

    def session(self, user: TestUser) -> requests.Session:
        if user.id not in self._sessions:
            self._sessions[user.id] = http_session(self.base, user)
        return self._sessions[user.id]

    def client_for(self, user: TestUser) -> DICOMwebClient:
        return DICOMwebClient(url=self.url, session=self.session(user))

    def client(self, *roles: str, institution_code: str = "CENTRAL", **kw: Any) -> tuple[TestUser, DICOMwebClient]:
        """A new user holding `roles` and a DICOMwebClient logged in as them."""
        user = self.user(*roles, institution_code=institution_code, **kw)
        return user, self.client_for(user)

    def get(self, user: TestUser, path: str, **kw: Any) -> requests.Response:
        """A raw GET as `user` (status codes, headers, error bodies that dicomweb-client turns into exceptions)."""
        kw.setdefault("timeout", 60)
        return self.session(user).get(f"{self.base}{path}", **kw)

    def close(self) -> None:
        for s in self._sessions.values():
            s.close()


@pytest.fixture
def dicomweb(app: Flask, dicomweb_server: str) -> Iterator[DicomWeb]:
    dw = DicomWeb(app, dicomweb_server)
    yield dw
    dw.close()
