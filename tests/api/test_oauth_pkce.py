"""Authorization code with PKCE (S256) for interactive viewers (issue 15; REQ: DSEC-11): consent by a logged-in
user, exact redirect URIs, single-use codes, and a token that acts as that user within the granted scopes."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from tests.api.oauth_support import VIEWER_CB, add_probe, bearer, make_client, pkce_pair
from tests.factories import as_user, audit_count

pytestmark = pytest.mark.copied_db  # adds a route to its app


@pytest.fixture
def app(app):  # type: ignore[no-untyped-def]
    add_probe(app)
    return app


def _query(client_id: str, challenge: str, **over: str) -> str:
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": VIEWER_CB,
        "scope": "dicomweb.read",
        "state": "xyz-123",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    params.update(over)
    return urlencode({k: v for k, v in params.items() if v != ""})


def _approve(s, query: str, approve: bool = True) -> str:  # type: ignore[no-untyped-def]
    r = s.post(f"/oauth/consent?{query}", json={"approve": approve})
    assert r.status_code == 200, r.get_json()
    return str(r.get_json()["redirect_to"])


def _redeem(client, client_id: str, code: str, verifier: str, redirect_uri: str = VIEWER_CB):  # type: ignore[no-untyped-def]
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "client_id": client_id,
        "code_verifier": verifier,
    }
    return client.post("/oauth/token", data=form)


def _public_viewer(app):  # type: ignore[no-untyped-def]
    client_id, _ = make_client(
        app, "dicomweb.read dicomweb.write", redirect_uris=[VIEWER_CB], public=True, name="OHIF 阅片"
    )
    return client_id


def test_dsec11_pkce_flow_end_to_end_acts_as_the_user_within_the_scopes(app, client):  # type: ignore[no-untyped-def]
    client_id = _public_viewer(app)
    verifier, challenge = pkce_pair()
    query = _query(client_id, challenge)
    # Not logged in: to the SPA's login page, which returns to the consent page.
    r = client.get(f"/oauth/authorize?{query}")
    assert r.status_code == 302
    target = urlsplit(r.headers["Location"])
    assert target.path == "/login"
    assert parse_qs(target.query)["next"][0] == f"/oauth-consent?{query}"
    doctor = as_user(app, "report_l1")
    r = doctor.get(f"/oauth/authorize?{query}")
    assert r.status_code == 302
    assert r.headers["Location"] == f"/oauth-consent?{query}"
    info = doctor.get(f"/oauth/consent?{query}")
    assert info.status_code == 200, info.get_json()
    assert info.get_json()["client_name"] == "OHIF 阅片"
    assert info.get_json()["scopes"] == [{"code": "dicomweb.read", "label": "读取影像（QIDO-RS / WADO-RS）"}]
    back = urlsplit(_approve(doctor, query))
    assert f"{back.scheme}://{back.netloc}{back.path}" == VIEWER_CB
    params = parse_qs(back.query)
    assert params["state"] == ["xyz-123"]
    code = params["code"][0]
    r = _redeem(app.test_client(), client_id, code, verifier)
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "dicomweb.read"
    assert "refresh_token" not in body
    who = app.test_client().get("/dicomweb/probe/read", headers=bearer(body["access_token"])).get_json()
    assert who["user_id"] == doctor.user.id
    assert who["username"] == doctor.user.username
    assert who["permissions"] == ["image.read"]  # the doctor's permissions ∩ the granted scope
    # The client may hold dicomweb.write, but the doctor has no image.write: still refused.
    assert app.test_client().post("/dicomweb/probe/write", headers=bearer(body["access_token"])).status_code == 403
    assert audit_count(app, "oauth_authorized") == 1
    assert audit_count(app, "oauth_token_issued") == 1


def test_dsec11_pkce_wrong_verifier_refused_and_code_single_use(app, client):  # type: ignore[no-untyped-def]
    client_id = _public_viewer(app)
    verifier, challenge = pkce_pair()
    doctor = as_user(app, "report_l1")
    code = parse_qs(urlsplit(_approve(doctor, _query(client_id, challenge))).query)["code"][0]
    r = _redeem(client, client_id, code, pkce_pair()[0])
    assert r.status_code == 400
    assert r.get_json()["error"] == "invalid_grant"
    assert "code_verifier" in r.get_json()["error_description"]
    r = _redeem(client, client_id, code, verifier, redirect_uri="https://viewer.example.org/other")
    assert r.status_code == 400
    assert r.get_json()["error"] == "invalid_grant"
    assert _redeem(client, client_id, code, verifier).status_code == 200
    r = _redeem(client, client_id, code, verifier)  # a second use
    assert r.status_code == 400
    assert r.get_json()["error"] == "invalid_grant"


def test_dsec11_pkce_required_with_s256_only(app, client):  # type: ignore[no-untyped-def]
    client_id = _public_viewer(app)
    doctor = as_user(app, "report_l1")
    verifier, challenge = pkce_pair()
    for query in (
        _query(client_id, "", code_challenge_method=""),  # no PKCE at all
        _query(client_id, verifier, code_challenge_method="plain"),
    ):
        r = doctor.get(f"/oauth/authorize?{query}")
        assert r.status_code == 302
        back = urlsplit(r.headers["Location"])
        assert f"{back.scheme}://{back.netloc}{back.path}" == VIEWER_CB  # the redirect URI was verified
        params = parse_qs(back.query)
        assert params["error"] == ["invalid_request"]
        assert params["state"] == ["xyz-123"]
        assert doctor.post(f"/oauth/consent?{query}", json={"approve": True}).status_code == 400


def test_dsec11_unregistered_redirect_uri_is_never_redirected_to(app, client):  # type: ignore[no-untyped-def]
    client_id = _public_viewer(app)
    doctor = as_user(app, "report_l1")
    _, challenge = pkce_pair()
    for uri in ("https://evil.example.com/cb", f"{VIEWER_CB}/", f"{VIEWER_CB}?x=1"):
        query = _query(client_id, challenge, redirect_uri=uri)
        r = doctor.get(f"/oauth/authorize?{query}")
        assert r.status_code == 400, uri
        assert r.get_json()["error"] == "invalid_request"
        assert "Location" not in r.headers
        r = doctor.post(f"/oauth/consent?{query}", json={"approve": True})
        assert r.status_code == 400
        assert r.get_json()["code"] == "invalid_authorization_request"


def test_dsec11_denied_consent_returns_access_denied(app, client):  # type: ignore[no-untyped-def]
    client_id = _public_viewer(app)
    doctor = as_user(app, "report_l1")
    _, challenge = pkce_pair()
    params = parse_qs(urlsplit(_approve(doctor, _query(client_id, challenge), approve=False)).query)
    assert params["error"] == ["access_denied"]
    assert "code" not in params


def test_dsec11_consent_needs_a_session_and_its_csrf_token(app, client):  # type: ignore[no-untyped-def]
    client_id = _public_viewer(app)
    _, challenge = pkce_pair()
    query = _query(client_id, challenge)
    assert client.get(f"/oauth/consent?{query}").status_code == 401
    doctor = as_user(app, "report_l1")
    r = doctor.client.post(f"/oauth/consent?{query}", json={"approve": True})
    assert r.status_code == 403
    assert r.get_json()["code"] == "csrf_failed"


def test_dsec11_confidential_client_authenticates_at_the_token_endpoint_too(app, client):  # type: ignore[no-untyped-def]
    from tests.api.oauth_support import basic

    client_id, secret = make_client(app, "dicomweb.read", redirect_uris=[VIEWER_CB], name="Weasis")
    doctor = as_user(app, "report_l1")
    verifier, challenge = pkce_pair()
    code = parse_qs(urlsplit(_approve(doctor, _query(client_id, challenge))).query)["code"][0]
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": VIEWER_CB, "code_verifier": verifier}
    r = client.post("/oauth/token", data={**form, "client_id": client_id})  # no secret: refused
    assert r.status_code in (400, 401)
    assert r.get_json()["error"] == "invalid_client"
    r = client.post("/oauth/token", data=form, headers=basic(client_id, secret or ""))
    assert r.status_code == 200, r.get_json()


def test_ac02_member_user_cannot_authorize_another_member_hospitals_client(app, client):  # type: ignore[no-untyped-def]
    client_id, _ = make_client(app, "dicomweb.read", "M01", redirect_uris=[VIEWER_CB], public=True)
    _, challenge = pkce_pair()
    query = _query(client_id, challenge)
    other = as_user(app, "requester", institution_code="M02")
    r = other.get(f"/oauth/consent?{query}")
    assert r.status_code == 403
    assert r.get_json()["code"] == "oauth_other_institution"
    own = as_user(app, "requester", institution_code="M01")
    assert own.get(f"/oauth/consent?{query}").status_code == 200
