"""POST /oauth/token with client credentials: tokens, scopes, lifetime, lockout and throttling (issue 15).

REQ: DSEC-11, AUTH-04.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import time_machine
from sqlalchemy import select

from engine import uow
from engine.accounts.models import LoginThrottle
from engine.audit import AuditEvent
from engine.oauth.models import OAuthClient, OAuthToken
from tests.api.oauth_support import basic, client_token, make_client
from tests.factories import audit_count

CJK = re.compile(r"[\u4e00-\u9fff]")


def test_dsec11_client_credentials_round_trip_returns_an_opaque_bearer_token_stored_hashed(app, client):  # type: ignore[no-untyped-def]
    client_id, secret = make_client(app)
    assert secret is not None
    r = client_token(client, client_id, secret)
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == "dicomweb.read dicomweb.write"
    assert len(body["access_token"]) >= 40
    assert r.headers["Cache-Control"] == "no-store"
    assert "Set-Cookie" not in r.headers
    with app.app_context():
        s = uow.session()
        row = s.execute(select(OAuthToken)).scalar_one()
        stored = s.execute(select(OAuthClient)).unique().scalar_one()
        # Neither the token nor the secret is stored as such, only their SHA-256.
        assert row.token_hash != body["access_token"]
        assert len(row.token_hash) == 64
        assert body["access_token"] not in (row.token_hash, row.scope)
        assert stored.secret_hash != secret
        assert len(stored.secret_hash or "") == 64
        assert row.expires_at - row.issued_at == timedelta(seconds=3600)
    assert audit_count(app, "oauth_client_created") == 1
    with app.app_context():
        issued = (
            uow.session().execute(select(AuditEvent).where(AuditEvent.event_type == "oauth_token_issued")).scalar_one()
        )
    # Audited as the client of its institution, never with the token.
    assert (issued.username, issued.institution_code, issued.object_id) == (f"oauth:{client_id}", "CENTRAL", client_id)
    assert body["access_token"] not in f"{issued.reason} {issued.details}"


def test_dsec11_scope_subset_and_scope_outside_the_client_refused(app, client):  # type: ignore[no-untyped-def]
    client_id, secret = make_client(app, "dicomweb.read dicomweb.write ai.write")
    r = client_token(client, client_id, secret, scope="dicomweb.read")
    assert r.status_code == 200
    assert r.get_json()["scope"] == "dicomweb.read"
    narrow_id, narrow_secret = make_client(app, "dicomweb.read")
    r = client_token(client, narrow_id, narrow_secret, scope="dicomweb.read ai.write")
    assert r.status_code == 400
    body = r.get_json()
    assert body["error"] == "invalid_scope"
    assert CJK.search(body["error_description"])


def test_dsec11_token_lifetime_is_configurable(app, client, settings):  # type: ignore[no-untyped-def]
    settings.oauth_token_lifetime_s = 120
    client_id, secret = make_client(app)
    assert client_token(client, client_id, secret).get_json()["expires_in"] == 120


def test_dsec11_errors_are_rfc6749_json_with_chinese_descriptions(app, client):  # type: ignore[no-untyped-def]
    client_id, secret = make_client(app)
    r = client.post("/oauth/token", data={"grant_type": "password"}, headers=basic(client_id, secret))
    assert r.status_code == 400
    assert r.get_json()["error"] == "unsupported_grant_type"
    assert CJK.search(r.get_json()["error_description"])
    r = client.post("/oauth/token", data={"grant_type": "client_credentials"})  # no client authentication
    assert r.status_code in (400, 401)
    assert r.get_json()["error"] == "invalid_client"
    # A public client (no secret) may not use client credentials.
    pub_id, _ = make_client(app, "dicomweb.read", redirect_uris=["https://viewer.example.org/cb"], public=True)
    r = client.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": pub_id})
    assert r.status_code in (400, 401)
    assert r.get_json()["error"] == "invalid_client"


def test_auth04_five_wrong_secrets_lock_the_client_then_it_works_after_31_minutes(app, client):  # type: ignore[no-untyped-def]
    client_id, secret = make_client(app)
    t0 = datetime.now(UTC)
    with time_machine.travel(t0, tick=False):
        for _ in range(5):
            r = client_token(client, client_id, "wrong-secret")
            assert r.status_code == 401
            assert r.get_json()["error"] == "invalid_client"
        r = client_token(client, client_id, secret)
        assert r.status_code == 423
        assert r.get_json()["error"] == "invalid_client"
        assert "锁定" in r.get_json()["error_description"]
    assert audit_count(app, "oauth_client_locked") == 1
    with app.app_context():
        failures = uow.session().execute(
            select(AuditEvent.username, AuditEvent.outcome).where(AuditEvent.event_type == "oauth_client_auth_failure")
        )
        assert set(failures.all()) == {(f"oauth:{client_id}", "failure")}
    with time_machine.travel(t0 + timedelta(minutes=29), tick=False):
        assert client_token(client, client_id, secret).status_code == 423
    with time_machine.travel(t0 + timedelta(minutes=31), tick=False):
        assert client_token(client, client_id, secret).status_code == 200
    with app.app_context():  # a success clears the counter
        assert uow.session().get(LoginThrottle, f"oauth:{client_id}") is None


def test_auth04_unknown_client_and_wrong_secret_answers_are_identical(app, client):  # type: ignore[no-untyped-def]
    client_id, _ = make_client(app)
    known = client_token(client, client_id, "wrong-secret")
    unknown = client_token(client, "0123456789abcdef01234567", "wrong-secret")
    assert known.status_code == unknown.status_code == 401
    assert known.data == unknown.data
    assert known.headers["WWW-Authenticate"] == unknown.headers["WWW-Authenticate"]
    # An unknown client id locks like a known one (nothing tells them apart).
    for _ in range(4):
        client_token(client, "0123456789abcdef01234567", "wrong-secret")
    assert client_token(client, "0123456789abcdef01234567", "wrong-secret").status_code == 423


def test_auth04_failures_from_one_address_are_throttled_across_client_ids(app, client, settings):  # type: ignore[no-untyped-def]
    settings.login_ip_limit = "3 per 5 minutes"
    for i in range(3):
        assert client_token(client, f"nosuchclient{i:04d}", "x").status_code == 401
    r = client_token(client, "nosuchclient9999", "x")
    assert r.status_code == 429
    assert r.get_json()["error"] == "slow_down"
    assert CJK.search(r.get_json()["error_description"])


def test_dsec11_revoked_client_cannot_get_a_token(app, client):  # type: ignore[no-untyped-def]
    from engine.actor import Actor
    from engine.oauth import clients

    client_id, secret = make_client(app)
    with app.app_context(), uow.unit_of_work():
        clients.revoke(Actor.system("test"), client_id)
    r = client_token(client, client_id, secret)
    assert r.status_code == 401
    assert r.get_json()["error"] == "invalid_client"
