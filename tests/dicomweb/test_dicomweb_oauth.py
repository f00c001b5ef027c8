"""A machine client (OAuth 2.0 client credentials) on real DICOMweb routes (issue 15; REQ: DSEC-11, DSEC-03,
DSEC-10): it sees the studies of the institution it is bound to and nothing else, reads their pixels, its access is
audited once per study and day under its own name, and its token is refused in the query string and after revocation.
"""

from __future__ import annotations

import requests
from dicomweb_client.api import DICOMwebClient
from flask import Flask
from pydicom.uid import generate_uid
from sqlalchemy import func, select

from engine import uow
from engine.actor import Actor
from engine.audit import AuditEvent
from engine.oauth import clients
from tests.api.oauth_support import basic, make_client
from tests.dicom.archive import small_series
from tests.dicomweb.conftest import DicomWeb


def _token(base: str, client_id: str, secret: str) -> str:
    r = requests.post(
        f"{base}/oauth/token", data={"grant_type": "client_credentials"}, headers=basic(client_id, secret), timeout=30
    )
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def _session(token: str) -> requests.Session:
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {token}"
    return s


def test_dsec11_a_client_sees_its_institutions_studies_only_and_reads_their_pixels(
    app: Flask, dicomweb: DicomWeb
) -> None:
    ours = small_series(2, PatientName="Zhang^San", PatientID="OA-1")
    theirs = small_series(1, PatientName="Li^Si", PatientID="OA-2")
    shared_uid = generate_uid()  # one StudyInstanceUID stored at both institutions (DSEC-03 keeps them apart)
    ours_shared = small_series(1, StudyInstanceUID=shared_uid, PatientID="OA-3")
    theirs_shared = small_series(1, StudyInstanceUID=shared_uid, PatientID="OA-4")
    dicomweb.seed(ours + ours_shared, institution="M01")
    dicomweb.seed(theirs + theirs_shared, institution="M02")
    client_id, secret = make_client(app, "dicomweb.read", institution="M01")
    assert secret is not None
    token = _token(dicomweb.base, client_id, secret)
    session = _session(token)
    dw = DICOMwebClient(url=dicomweb.url, session=session)

    found = {s["0020000D"]["Value"][0] for s in dw.search_for_studies()}
    assert found == {ours[0].StudyInstanceUID, shared_uid}
    (copy,) = dw.search_for_studies(search_filters={"StudyInstanceUID": shared_uid})
    assert copy["00100020"]["Value"] == ["OA-3"]  # M01's copy, never M02's
    instances = dw.retrieve_study(ours[0].StudyInstanceUID)
    assert sorted(i.SOPInstanceUID for i in instances) == sorted(d.SOPInstanceUID for d in ours)
    r = session.get(f"{dicomweb.url}/studies/{theirs[0].StudyInstanceUID}/metadata", timeout=30)
    assert (r.status_code, r.json()["code"]) == (404, "not_found")
    r = session.get(f"{dicomweb.url}/studies/{shared_uid}/metadata", params={"institution": "M02"}, timeout=30)
    assert r.status_code == 404

    dw.retrieve_study(ours[0].StudyInstanceUID)  # the same day again: no second audit event
    with app.app_context(), uow.unit_of_work() as s:
        accessed = s.execute(
            select(AuditEvent.username, func.count())
            .where(AuditEvent.event_type == "dicomweb_study_accessed")
            .group_by(AuditEvent.username)
        ).all()
    # one retrieved study, once for the day (searches are not accesses of a study; refusals are not accesses)
    assert dict(accessed)[f"oauth:{client_id}"] == 1

    # never in the query string; a revoked client's token no longer works
    r = requests.get(f"{dicomweb.url}/studies", params={"access_token": token}, timeout=30)
    assert (r.status_code, r.json()["code"]) == (401, "token_in_query")
    with app.app_context(), uow.unit_of_work():
        clients.revoke(Actor.system("test"), client_id)
    r = session.get(f"{dicomweb.url}/studies", timeout=30)
    assert (r.status_code, r.json()["code"]) == (401, "invalid_token")


def test_dsec11_a_client_without_dicomweb_read_sees_nothing(app: Flask, dicomweb: DicomWeb) -> None:
    dicomweb.seed(small_series(1), institution="M01")
    client_id, secret = make_client(app, "ai.write", institution="M01")
    assert secret is not None
    r = _session(_token(dicomweb.base, client_id, secret)).get(f"{dicomweb.url}/studies", timeout=30)
    assert r.status_code == 403
