"""WADO-RS frame requests reuse the caller's study resolution and pixel-access decision for at most
`dicomweb_decision_ttl_s` seconds (engine/dicomweb/decisions.py; issue 16; REQ: AC-02, DSEC-03, SESS-01): a lost
access ends within the TTL, logout and a removed role at once, and one caller's decision never serves another.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from pydicom import dcmread
from pydicom.uid import generate_uid
from sqlalchemy import delete, select, update

from engine import config, uow
from engine.accounts.models import Institution, user_role
from engine.dicomweb import decisions
from engine.imaging.models import Study
from tests import factories
from tests.dicom.archive import ingest
from tests.dicom.conftest import add_node, sample_file
from tests.factories import login, make_user

OCTET = {"Accept": 'multipart/related; type="application/octet-stream"; transfer-syntax=*'}


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    decisions.clear()
    yield
    decisions.clear()


@pytest.fixture
def frame_url(app: Flask, tmp_path: Path) -> str:
    """One MR instance stored by member hospital M01; the URL of its first frame."""
    ds = dcmread(sample_file("MR_small.dcm"))
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = generate_uid(), generate_uid(), generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ingest(app, add_node(app, "MODALITY1"), [ds])
    return (
        f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}/frames/1"
    )


def _payload(body: bytes) -> bytes:
    """The one part's bytes of a multipart/related answer."""
    return body.split(b"\r\n\r\n", 1)[1].rsplit(b"\r\n--", 1)[0]


def _ttl(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    monkeypatch.setattr(config.current(), "dicomweb_decision_ttl_s", seconds)


def _client(app: Flask, institution: str = "M01") -> tuple[FlaskClient, factories.TestUser, str]:
    user = make_user(app, "requester", institution_code=institution)
    c = app.test_client()
    return c, user, login(c, user)


def _move_study(app: Flask, url: str, to: str) -> None:
    """A revocation the request guard cannot see: the study now belongs to another institution."""
    uid = url.split("/")[3]
    with app.app_context():
        s = uow.session()
        inst = s.execute(select(Institution.id).where(Institution.code == to)).scalar_one()
        s.execute(update(Study).where(Study.study_instance_uid == uid).values(institution_id=inst))
        uow.commit()


def test_ac02_frame_access_lost_ends_within_the_ttl(
    app: Flask, frame_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _ttl(monkeypatch, 1.0)
    c, _user, _csrf = _client(app)
    first = c.get(frame_url, headers=OCTET)
    assert first.status_code == 200
    assert first.headers["X-Telerad-Institution"] == "M01"
    again = c.get(frame_url, headers=OCTET)  # served from the decision: same body and headers
    assert again.status_code == 200
    assert _payload(again.data) == _payload(first.data)  # the multipart boundary is random
    assert again.headers["X-Telerad-Study-Choice"] == first.headers["X-Telerad-Study-Choice"]
    _move_study(app, frame_url, "M02")
    deadline = time.monotonic() + 1.0 + 0.5
    while c.get(frame_url, headers=OCTET).status_code == 200:  # may lag by the TTL, no more
        assert time.monotonic() < deadline, "frame access outlived the decision TTL"
        time.sleep(0.1)
    r = c.get(frame_url, headers=OCTET)
    assert r.status_code == 404
    assert r.json is not None
    assert r.json["code"] == "not_found"


def test_ac02_frame_access_with_ttl_zero_ends_at_once(
    app: Flask, frame_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _ttl(monkeypatch, 0)
    c, _user, _csrf = _client(app)
    assert c.get(frame_url, headers=OCTET).status_code == 200
    _move_study(app, frame_url, "M02")
    assert c.get(frame_url, headers=OCTET).status_code == 404


def test_sess01_frame_access_ends_at_logout_and_role_removal_at_once(
    app: Flask, frame_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _ttl(monkeypatch, 5.0)
    c, _user, csrf = _client(app)
    cookie = c.get_cookie(config.current().session_cookie_name)
    assert cookie is not None
    assert c.get(frame_url, headers=OCTET).status_code == 200
    assert c.post("/api/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
    assert c.get(frame_url, headers=OCTET).status_code == 401  # logged out: the session is checked per request
    replay = app.test_client()  # the old cookie, replayed within the TTL
    replay.set_cookie(config.current().session_cookie_name, cookie.value)
    assert replay.get(frame_url, headers=OCTET).status_code == 401
    c2, user2, _csrf2 = _client(app)
    assert c2.get(frame_url, headers=OCTET).status_code == 200
    with app.app_context():
        uow.session().execute(delete(user_role).where(user_role.c.user_id == user2.id))
        uow.commit()
    r = c2.get(frame_url, headers=OCTET)
    assert r.status_code == 403  # the role's permissions are read per request; the kept decision is not consulted
    assert r.json is not None
    assert r.json["code"] == "forbidden"


def test_ac02_a_kept_decision_never_serves_another_caller(
    app: Flask, frame_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _ttl(monkeypatch, 5.0)
    mine, _u1, _c1 = _client(app, "M01")
    assert mine.get(frame_url, headers=OCTET).status_code == 200
    other, _u2, _c2 = _client(app, "M02")  # another hospital's clinician, same URL, within the TTL
    r = other.get(frame_url, headers=OCTET)
    assert r.status_code == 404
    assert r.json is not None
    assert r.json["code"] == "not_found"
    colleague, _u3, _c3 = _client(app, "M01")  # the same hospital: decided for that user, not borrowed
    assert colleague.get(frame_url, headers=OCTET).status_code == 200
    assert len(decisions._cache._items) == 2  # one decision per caller (M02's refusal is not kept)
