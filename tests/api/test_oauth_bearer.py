"""Bearer tokens in the request guard (issue 15; REQ: DSEC-11, WEB-01): only under /dicomweb/, never in the query
string, no CSRF and no cookies, invalid/expired/revoked tokens refused, scopes mapped to permissions.

A test-only DICOMweb route (tests/api/oauth_support.py add_probe) stands in for QIDO/WADO/STOW until they land.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from tests.api.oauth_support import add_probe, bearer, client_token, make_client
from tests.factories import as_user, audit_count

pytestmark = pytest.mark.copied_db  # adds a route to its app


@pytest.fixture
def app(app):  # type: ignore[no-untyped-def]
    add_probe(app)
    return app


def _token(app, client, scopes="dicomweb.read dicomweb.write", institution="M01", scope=None):  # type: ignore[no-untyped-def]
    client_id, secret = make_client(app, scopes, institution)
    r = client_token(client, client_id, secret, scope)
    assert r.status_code == 200, r.get_json()
    return client_id, r.get_json()["access_token"]


def test_dsec11_client_token_acts_as_the_client_of_its_institution_with_scope_permissions(app, client):  # type: ignore[no-untyped-def]
    client_id, token = _token(app, client)
    r = client.get("/dicomweb/probe/read", headers=bearer(token))
    assert r.status_code == 200, r.get_json()
    who = r.get_json()
    assert who["username"] == f"oauth:{client_id}"
    assert who["user_id"] is None
    assert who["institution"] == "M01"
    assert who["permissions"] == ["image.read", "image.write"]
    assert r.headers["Cache-Control"] == "no-store"
    assert "Set-Cookie" not in r.headers


def test_dsec11_bearer_requests_need_no_csrf_header_and_set_no_cookie(app, client):  # type: ignore[no-untyped-def]
    _, token = _token(app, client)
    r = client.post("/dicomweb/probe/write", headers=bearer(token))
    assert r.status_code == 200, r.get_json()
    assert "Set-Cookie" not in r.headers
    # The same POST on a browser session without the CSRF header is refused (the cookie is ambient).
    s = as_user(app, "registrar", institution_code="M01")
    r = s.client.post("/dicomweb/probe/write", headers={"X-CSRF-Token": ""})
    assert r.status_code == 403
    assert r.get_json()["code"] == "csrf_failed"
    # With a session cookie present, a bearer request ignores it: acts as the token, no cookie touched.
    r = s.client.post("/dicomweb/probe/write", headers=bearer(token))
    assert r.status_code == 200
    assert r.get_json()["username"].startswith("oauth:")
    assert "Set-Cookie" not in r.headers


def test_dsec11_scope_limits_the_permissions(app, client):  # type: ignore[no-untyped-def]
    _, token = _token(app, client, "dicomweb.read dicomweb.write", scope="dicomweb.read")
    assert client.get("/dicomweb/probe/read", headers=bearer(token)).status_code == 200
    r = client.post("/dicomweb/probe/write", headers=bearer(token))
    assert r.status_code == 403
    assert r.get_json()["code"] == "forbidden"
    assert 'error="insufficient_scope"' in r.headers["WWW-Authenticate"]
    assert audit_count(app, "permission_denied") == 1


def test_dsec11_bearer_refused_outside_dicomweb(app, client):  # type: ignore[no-untyped-def]
    _, token = _token(app, client)
    for url in ("/api/auth/me", "/api/users", "/oauth/consent"):
        r = client.get(url, headers=bearer(token))
        assert r.status_code == 401, url
        assert r.get_json()["code"] == "bearer_not_allowed"
        assert "DICOMweb" in r.get_json()["message"]


def test_dsec11_token_in_query_string_refused(app, client):  # type: ignore[no-untyped-def]
    _, token = _token(app, client)
    for url in ("/dicomweb/probe/read", "/api/auth/me", "/oauth/token"):
        r = client.get(f"{url}?access_token={token}")
        assert r.status_code == 401, url
        body = r.get_json()
        assert body["code"] == "token_in_query"
        assert "网址" in body["message"]
    r = client.get(f"/dicomweb/probe/read?access_token={token}", headers=bearer(token))  # even alongside a header
    assert r.status_code == 401
    assert r.get_json()["code"] == "token_in_query"


def _assert_invalid(r):  # type: ignore[no-untyped-def]
    assert r.status_code == 401
    assert r.get_json()["code"] == "invalid_token"
    assert r.get_json()["message"]
    assert r.headers["WWW-Authenticate"] == 'Bearer realm="telerad", error="invalid_token"'


def test_dsec11_unknown_expired_and_revoked_tokens_refused(app, client):  # type: ignore[no-untyped-def]
    _assert_invalid(client.get("/dicomweb/probe/read", headers=bearer("not-a-token")))
    t0 = datetime.now(UTC)
    with time_machine.travel(t0, tick=False):
        client_id, token = _token(app, client)
    with time_machine.travel(t0 + timedelta(seconds=3599), tick=False):
        assert client.get("/dicomweb/probe/read", headers=bearer(token)).status_code == 200
    with time_machine.travel(t0 + timedelta(seconds=3601), tick=False):
        _assert_invalid(client.get("/dicomweb/probe/read", headers=bearer(token)))
    _, fresh = _token(app, client)
    admin = as_user(app, "sys_admin")
    other_id, other = _token(app, client)
    r = admin.post(f"/api/oauth-clients/{other_id}/revoke")
    assert r.status_code == 200, r.get_json()
    _assert_invalid(client.get("/dicomweb/probe/read", headers=bearer(other)))
    assert client.get("/dicomweb/probe/read", headers=bearer(fresh)).status_code == 200  # other clients unaffected
    assert audit_count(app, "oauth_client_revoked") == 1


def test_dsec11_no_credentials_on_dicomweb_answers_401_with_a_bearer_challenge(app, client):  # type: ignore[no-untyped-def]
    r = client.get("/dicomweb/probe/read")
    assert r.status_code == 401
    assert r.get_json()["code"] == "unauthenticated"
    assert r.headers["WWW-Authenticate"] == 'Bearer realm="telerad"'


def test_ac02_member_client_never_holds_central_only_permissions(app, client):  # type: ignore[no-untyped-def]
    # All three scopes map to permissions any institution may hold; a member client holds them for its own data.
    _, token = _token(app, client, "dicomweb.read dicomweb.write ai.write", institution="M02")
    who = client.get("/dicomweb/probe/read", headers=bearer(token)).get_json()
    assert who["institution"] == "M02"
    assert who["permissions"] == ["ai.write", "image.read", "image.write"]
