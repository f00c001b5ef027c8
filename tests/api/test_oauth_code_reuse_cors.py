"""The token endpoint for browser-based viewers (issue 15; REQ: DSEC-11): a second exchange of an authorization code
is refused and revokes the token the first one got (RFC 6749 §4.1.2), and CORS lets exactly the viewer's own origin
read the answer."""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from flask import Flask
from sqlalchemy import select

from engine import uow
from engine.oauth.models import OAuthAuthorizationCode, OAuthToken
from tests.api.oauth_support import VIEWER_CB, add_probe, bearer, make_client, pkce_pair
from tests.factories import Session, as_user, audit_count

pytestmark = pytest.mark.copied_db  # adds a route to its app; threads redeem at once

VIEWER = "https://viewer.example.org"


@pytest.fixture
def app(app):  # type: ignore[no-untyped-def]
    add_probe(app)
    return app


def _code(app: Flask, doctor: Session, client_id: str) -> tuple[str, str]:
    """A fresh authorization code the doctor approved for the viewer, and its PKCE verifier."""
    verifier, challenge = pkce_pair()
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": VIEWER_CB,
            "scope": "dicomweb.read",
            "state": "s1",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    r = doctor.post(f"/oauth/consent?{query}", json={"approve": True})
    assert r.status_code == 200, r.get_json()
    return parse_qs(urlsplit(r.get_json()["redirect_to"]).query)["code"][0], verifier


def _redeem(app: Flask, client_id: str, code: str, verifier: str, **headers: str) -> Any:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": VIEWER_CB,
        "client_id": client_id,
        "code_verifier": verifier,
    }
    return app.test_client().post("/oauth/token", data=form, headers=headers)


def _viewer(app: Flask, uri: str = VIEWER_CB) -> str:
    client_id, _ = make_client(app, "dicomweb.read", redirect_uris=[uri], public=True, name="OHIF 阅片")
    return client_id


def _probe(app: Flask, token: str) -> int:
    return int(app.test_client().get("/dicomweb/probe/read", headers=bearer(token)).status_code)


def test_dsec11_a_reused_code_is_refused_and_revokes_its_token(app: Flask) -> None:
    client_id = _viewer(app)
    doctor = as_user(app, "report_l1")
    code, verifier = _code(app, doctor, client_id)
    first = _redeem(app, client_id, code, verifier)
    assert first.status_code == 200, first.get_json()
    token = first.get_json()["access_token"]
    assert _probe(app, token) == 200
    other_code, other_verifier = _code(app, doctor, client_id)  # another code of the same viewer and doctor
    other = _redeem(app, client_id, other_code, other_verifier).get_json()["access_token"]

    again = _redeem(app, client_id, code, verifier)  # RFC 6749 §4.1.2: the code was used already
    assert again.status_code == 400
    assert again.get_json()["error"] == "invalid_grant"
    assert "已使用" in again.get_json()["error_description"]
    assert _probe(app, token) == 401  # the token issued from that code is revoked, also after the 400's rollback
    assert _probe(app, other) == 200  # tokens of other codes are not
    assert audit_count(app, "oauth_code_reused") == 1
    assert _redeem(app, client_id, code, verifier).status_code == 400  # and again: still refused, audited
    assert audit_count(app, "oauth_code_reused") == 2
    with app.app_context():
        s = uow.session()
        row = s.execute(select(OAuthAuthorizationCode).where(OAuthAuthorizationCode.used_at.is_not(None))).first()
        assert row is not None
        revoked = s.execute(select(OAuthToken.code_id).where(OAuthToken.revoked_at.is_not(None))).scalars().all()
        assert len(revoked) == 1
        assert revoked[0] is not None


def test_dsec11_two_simultaneous_exchanges_of_one_code_leave_no_valid_token(app: Flask) -> None:
    client_id = _viewer(app)
    doctor = as_user(app, "report_l1")
    code, verifier = _code(app, doctor, client_id)
    start = threading.Barrier(2)
    answers: list[Any] = []

    def redeem() -> None:
        start.wait()
        answers.append(_redeem(app, client_id, code, verifier))

    threads = [threading.Thread(target=redeem) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(a.status_code for a in answers) == [200, 400]
    (won,) = [a for a in answers if a.status_code == 200]
    assert _probe(app, won.get_json()["access_token"]) == 401  # the loser's attempt is a reuse: revoked


def test_dsec11_token_endpoint_cors_only_for_the_clients_registered_origins(app: Flask) -> None:
    client_id = _viewer(app)
    _viewer(app, "http://127.0.0.1:8310/cb")  # another viewer, on another origin
    doctor = as_user(app, "report_l1")
    code, verifier = _code(app, doctor, client_id)
    c = app.test_client()

    # preflight: answered for a registered origin, POST and Content-Type only, no credentials, no wildcard
    pre = {"Origin": VIEWER, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    r = c.options("/oauth/token", headers=pre)
    assert r.status_code == 200
    assert r.headers["Access-Control-Allow-Origin"] == VIEWER
    assert r.headers["Access-Control-Allow-Methods"] == "POST"
    assert r.headers["Access-Control-Allow-Headers"] == "Content-Type"
    assert "Access-Control-Allow-Credentials" not in r.headers
    assert "Origin" in r.headers["Vary"]
    for origin in ("https://evil.example.com", "http://viewer.example.org", "https://viewer.example.org:8443", "null"):
        r = c.options("/oauth/token", headers={**pre, "Origin": origin})
        assert "Access-Control-Allow-Origin" not in r.headers, origin
    r = c.options("/oauth/token", headers={**pre, "Access-Control-Request-Method": "DELETE"})
    assert "Access-Control-Allow-Origin" not in r.headers

    # the exchange itself: the requesting client's origins only
    r = _redeem(app, client_id, code, verifier, Origin="https://VIEWER.example.org:443")
    assert r.status_code == 200, r.get_json()
    assert r.headers["Access-Control-Allow-Origin"] == "https://VIEWER.example.org:443"  # the same origin, echoed
    assert "Access-Control-Allow-Credentials" not in r.headers
    r = _redeem(app, client_id, code, verifier, Origin=VIEWER)  # an error answer is readable by the viewer too
    assert (r.status_code, r.headers["Access-Control-Allow-Origin"]) == (400, VIEWER)
    r = _redeem(app, client_id, code, verifier, Origin="http://127.0.0.1:8310")  # another client's origin
    assert "Access-Control-Allow-Origin" not in r.headers

    # every other route is unchanged: no CORS headers
    for path in ("/oauth/authorize", "/oauth/consent", "/api/auth/me", "/dicomweb/studies"):
        r = c.options(path, headers=pre)
        assert "Access-Control-Allow-Origin" not in r.headers, path
        r = c.get(path, headers={"Origin": VIEWER})
        assert "Access-Control-Allow-Origin" not in r.headers, path
    assert "Access-Control-Allow-Origin" not in doctor.get("/api/auth/me", headers={"Origin": VIEWER}).headers


# REQ: WEB-06
def test_web06_token_endpoint_refuses_more_than_100_multipart_parts(app: Flask) -> None:
    form = {f"f{i}": "x" for i in range(120)}
    r = app.test_client().post(
        "/oauth/token", data={**form, "grant_type": "client_credentials"}, content_type="multipart/form-data"
    )
    assert r.status_code == 413
    assert r.get_json()["code"] == "too_large"
