"""DICOMweb per principal (issue 15): QIDO-RS searches audited as DSEC-10's query (110112), once per request, and the
rate limit counted per user or OAuth client (REQ: DSEC-10, WEB-06, DSEC-11).

Over the Flask test client: these tests count requests and audit rows, not bytes on the wire (the live server of
`dicomweb` only seeds through the real receive path).
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from pydicom.uid import generate_uid

from tests.api.oauth_support import basic, bearer, make_client
from tests.dicom import archive, synthetic
from tests.dicom.conftest import add_node, audit_events
from tests.dicomweb.conftest import DicomWeb
from tests.factories import Session, as_user, login


def _client_token(app: Flask, client_id: str, secret: str) -> str:
    r = app.test_client().post(
        "/oauth/token", data={"grant_type": "client_credentials"}, headers=basic(client_id, secret)
    )
    assert r.status_code == 200, r.get_json()
    return str(r.get_json()["access_token"])


def _second_session(app: Flask, first: Session) -> FlaskClient:
    """Another login of the same user: another session (another cookie)."""
    client = app.test_client()
    login(client, first.user)
    return client


# REQ: DSEC-10
def test_qido_search_is_audited_once_per_request_as_a_query(app: Flask, dicomweb: DicomWeb) -> None:
    studies = [archive.small_series(1, PatientName=f"Wang^{n}", StudyDate="20250301")[0] for n in "ABC"]
    dicomweb.seed(studies, institution="M01")  # the receive path indexes the names and dates
    doctor = as_user(app, "requester", institution_code="M01")
    r = doctor.client.get(
        "/dicomweb/studies", query_string={"PatientName": "wang*", "StudyDate": "20250101-20251231", "limit": "10"}
    )
    assert r.status_code == 200
    assert len(r.get_json()) == 3
    (event,) = audit_events(app, "dicom_query")  # one per request, not per matching study
    assert (event.username, event.user_id, event.institution_code) == (doctor.user.username, doctor.user.id, "M01")
    assert (event.object_type, event.object_id, event.outcome) == ("dicom_query", "STUDY", "success")
    assert event.details == {
        "level": "STUDY",
        "keys": {"PatientName": "wang*", "StudyDate": "20250101-20251231"},
        "results": 3,
        "via": "qido",
        "resource": "studies",
        "dicom_event": "110112",
    }

    uid = str(studies[0].StudyInstanceUID)
    assert doctor.client.get(f"/dicomweb/studies/{uid}/series", query_string={"Modality": "CT"}).status_code == 200
    assert doctor.client.get("/dicomweb/studies", query_string={"PatientID": "none"}).status_code == 204
    assert doctor.client.get("/dicomweb/studies", query_string={"Nonsense": "1"}).status_code == 400  # not run
    events = audit_events(app, "dicom_query")
    assert len(events) == 3
    scoped, empty = events[1].details, events[2].details
    assert (scoped["level"], scoped["resource"], scoped["results"]) == ("SERIES", "study_series", 1)
    assert scoped["keys"] == {"Modality": "CT", "StudyInstanceUID": uid}
    assert (empty["keys"], empty["results"]) == ({"PatientID": "none"}, 0)

    # a machine client: audited under its own name and institution, with its client id
    client_id, secret = make_client(app, "dicomweb.read", institution="M01")
    assert secret is not None
    token = _client_token(app, client_id, secret)
    r = app.test_client().get("/dicomweb/studies", query_string={"institution": "M01"}, headers=bearer(token))
    assert r.status_code == 200
    event = audit_events(app, "dicom_query")[-1]
    assert (event.username, event.user_id, event.institution_code) == (f"oauth:{client_id}", None, "M01")
    assert (event.details["client_id"], event.details["institution"], event.details["results"]) == (client_id, "M01", 3)


def _status(client: FlaskClient, path: str = "/dicomweb/studies", **kw: Any) -> int:
    return client.get(path, **kw).status_code


# REQ: WEB-06, DSEC-11
def test_rate_limit_is_per_user_and_per_client_not_per_session(app: Flask) -> None:
    app.extensions["telerad_settings"].dicomweb_rate_limit = "5 per minute"
    first = as_user(app, "requester", institution_code="M01")
    other_tab = _second_session(app, first)
    assert [_status(first.client) for _ in range(3)] == [204] * 3
    assert [_status(other_tab) for _ in range(2)] == [204] * 2
    r = other_tab.get("/dicomweb/studies")  # the sixth request of this user, from either session
    assert r.status_code == 429
    body = r.get_json()
    assert body["code"] == "dicomweb_rate_limited"
    assert "请求过于频繁" in body["message"]
    assert "5 次/分钟" in body["message"]
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    assert _status(first.client) == 429
    assert _status(as_user(app, "requester", institution_code="M01").client) == 204  # another user, same address
    assert first.client.get("/api/auth/me").status_code == 200  # /api keeps its own limit

    # a client's tokens share the client's budget
    client_id, secret = make_client(app, "dicomweb.read", institution="M01")
    assert secret is not None
    tokens = [_client_token(app, client_id, secret) for _ in range(2)]
    anon = app.test_client()
    assert [_status(anon, headers=bearer(tokens[i % 2])) for i in range(5)] == [204] * 5
    assert _status(anon, headers=bearer(tokens[0])) == 429
    assert _status(anon, headers=bearer(tokens[1])) == 429


# REQ: WEB-06
def test_unauthenticated_requests_are_counted_per_address(app: Flask) -> None:
    app.extensions["telerad_settings"].dicomweb_rate_limit = "5 per minute"
    anon = app.test_client()
    forged = {"Authorization": "Bearer " + "x" * 43}
    assert [_status(anon, headers=forged) for _ in range(5)] == [401] * 5
    assert _status(anon, headers=forged) == 429
    doctor = as_user(app, "requester", institution_code="M01")
    assert _status(doctor.client) == 429  # the same address: a flood of bad credentials stops it too


# REQ: WEB-06, DSEC-11 — issue 15: "the rate limit does not trip on a 1,000-frame series"
def test_default_limit_lets_a_viewer_load_a_1000_frame_series(app: Flask) -> None:
    assert app.extensions["telerad_settings"].dicomweb_rate_limit == "6000 per minute"
    ds = synthetic.image(synthetic.base(synthetic.CT_IMAGE, modality="CT"), rows=4, cols=4, frames=1000)
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    archive.ingest(app, add_node(app, "MODF1", institution="M01"), [ds])
    viewer = as_user(app, "requester", institution_code="M01").client
    study, series, sop = str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)
    base = f"/dicomweb/studies/{study}/series/{series}"
    started = time.monotonic()
    statuses = [_status(viewer, "/dicomweb/studies", query_string={"StudyInstanceUID": study})]
    statuses.append(_status(viewer, f"/dicomweb/studies/{study}/series"))
    statuses.append(_status(viewer, f"{base}/metadata"))
    octet = {"Accept": 'multipart/related; type="application/octet-stream"; transfer-syntax=*'}
    statuses += [_status(viewer, f"{base}/instances/{sop}/frames/{n}", headers=octet) for n in range(1, 1001)]
    assert statuses.count(200) == len(statuses), {s: statuses.count(s) for s in set(statuses)}
    assert time.monotonic() - started < 600


@pytest.fixture(autouse=True)
def _default_limit(app: Flask) -> Any:
    saved = app.extensions["telerad_settings"].dicomweb_rate_limit
    yield
    app.extensions["telerad_settings"].dicomweb_rate_limit = saved
