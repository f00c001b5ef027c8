"""Second factor (TOTP) for the three administrators: pending state, replay, lockout, enrolment (AUTH-06)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest
import time_machine
from flask.testing import FlaskClient
from sqlalchemy import select, update

from engine import uow
from engine.accounts.models import User
from engine.audit import AuditEvent
from tests.factories import Session, audit_count, crawl_refused, make_user


def post_login(client: FlaskClient, username: str, password: str):  # type: ignore[no-untyped-def]
    return client.post("/api/auth/login", json={"username": username, "password": password})


def post_code(client: FlaskClient, csrf: str, code: str):  # type: ignore[no-untyped-def]
    return client.post("/api/auth/mfa", json={"code": code}, headers={"X-CSRF-Token": csrf})


def wrong_code(secret: str) -> str:
    """A six-digit code that is valid for none of the accepted steps (now, -30 s, +30 s)."""
    totp = pyotp.TOTP(secret)
    now = datetime.now(UTC).timestamp()
    valid = {totp.at(now + off) for off in (-30, 0, 30)}
    code = int(totp.at(now))
    while f"{code:06d}" in valid:
        code = (code + 1) % 1_000_000
    return f"{code:06d}"


@pytest.mark.parametrize("role", ["sys_admin", "sec_admin", "audit_admin"])
def test_auth06_admin_with_password_only_is_refused_everywhere(app, client, role):  # type: ignore[no-untyped-def]
    admin = make_user(app, role)
    r = post_login(client, admin.username, admin.password)
    assert r.status_code == 200
    body = r.get_json()
    assert (body["state"], body["mfa_enrolled"]) == ("mfa_required", True)
    refused = crawl_refused(app, client, body["csrf_token"], "mfa_required")
    assert "GET /api/users" in refused
    assert "POST /api/auth/password" in refused
    assert "GET /api/audit/events" in refused
    assert len(refused) >= 25
    assert set(refused.values()) == {(403, "mfa_required")}, refused
    me = client.get("/api/auth/me").get_json()
    assert (me["state"], me["permissions"], me["menus"]) == ("mfa_required", [], [])
    with app.app_context():
        assert uow.session().get(User, admin.id).last_login_at is None  # the login is not complete yet


def test_auth06_replayed_code_is_refused(app):  # type: ignore[no-untyped-def]
    admin = make_user(app, "sec_admin")
    assert admin.totp_secret
    totp = pyotp.TOTP(admin.totp_secret)
    t0 = datetime.now(UTC)
    with time_machine.travel(t0, tick=False):
        first = app.test_client()
        code = totp.now()
        r = post_code(first, post_login(first, admin.username, admin.password).get_json()["csrf_token"], code)
        assert r.status_code == 200
        assert r.get_json()["state"] == "active"
        second = app.test_client()
        csrf = post_login(second, admin.username, admin.password).get_json()["csrf_token"]
        r = post_code(second, csrf, code)
        assert r.status_code == 401
        assert r.get_json()["code"] == "invalid_mfa_code"
    with time_machine.travel(t0 + timedelta(seconds=30), tick=False):
        # The old code is still inside the ±1 step window, but its step has been used.
        assert post_code(second, csrf, code).status_code == 401
        r = post_code(second, csrf, totp.now())
        assert r.status_code == 200
        assert r.get_json()["state"] == "active"
    with app.app_context():
        reasons = (
            uow.session()
            .execute(select(AuditEvent.reason).where(AuditEvent.event_type == "mfa_failure"))
            .scalars()
            .all()
        )
    assert reasons == ["验证码重放", "验证码重放"]


def test_auth06_sixth_wrong_code_locks_the_account(app, client):  # type: ignore[no-untyped-def]
    admin = make_user(app, "audit_admin")
    assert admin.totp_secret
    t0 = datetime.now(UTC)
    with time_machine.travel(t0, tick=False):
        csrf = post_login(client, admin.username, admin.password).get_json()["csrf_token"]
        for _ in range(5):
            r = post_code(client, csrf, wrong_code(admin.totp_secret))
            assert r.status_code == 401
        r = post_code(client, csrf, wrong_code(admin.totp_secret))
        assert r.status_code == 423
        assert r.get_json()["code"] == "account_locked"
        assert post_code(client, csrf, pyotp.TOTP(admin.totp_secret).now()).status_code == 423
        assert client.get("/api/users").status_code == 403
    assert audit_count(app, "login_locked") == 1
    with time_machine.travel(t0 + timedelta(minutes=31), tick=False):
        other = app.test_client()
        csrf = post_login(other, admin.username, admin.password).get_json()["csrf_token"]
        assert post_code(other, csrf, pyotp.TOTP(admin.totp_secret).now()).status_code == 200


def test_auth06_enrolment_for_an_admin_without_totp(app, client):  # type: ignore[no-untyped-def]
    admin = make_user(app, "sys_admin")
    with app.app_context():
        uow.session().execute(update(User).where(User.id == admin.id).values(totp_enabled=False, totp_secret_enc=None))
        uow.commit()
    body = post_login(client, admin.username, admin.password).get_json()
    assert (body["state"], body["mfa_enrolled"]) == ("mfa_required", False)
    csrf = body["csrf_token"]
    assert post_code(client, csrf, "123456").status_code == 401  # no secret yet: nothing can match
    assert client.get("/api/auth/mfa/enroll").status_code in (404, 405)  # a secret is written: never on GET
    assert client.post("/api/auth/mfa/enroll").status_code == 403  # CSRF token required
    r = client.post("/api/auth/mfa/enroll", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200
    secret, uri = r.get_json()["secret"], r.get_json()["otpauth_uri"]
    assert re.fullmatch(r"[A-Z2-7]{32}", secret)
    parts = urlsplit(uri)
    assert (parts.scheme, parts.netloc) == ("otpauth", "totp")
    assert parse_qs(parts.query)["secret"] == [secret]
    assert admin.username in parts.path
    assert client.get("/api/users").status_code == 403  # enrolment alone grants nothing
    r = post_code(client, csrf, pyotp.TOTP(secret).now())
    assert r.status_code == 200
    assert (r.get_json()["state"], r.get_json()["mfa_enrolled"]) == ("active", True)
    assert client.get("/api/users").status_code == 200
    with app.app_context():
        row = uow.session().get(User, admin.id)
        assert row.totp_enabled is True
        assert row.totp_secret_enc
        assert secret not in row.totp_secret_enc
    assert audit_count(app, "mfa_enrolled") == 1
    # Once enrolled, a password-only session cannot replace the secret.
    with time_machine.travel(datetime.now(UTC) + timedelta(seconds=60), tick=False):
        again = app.test_client()
        body2 = post_login(again, admin.username, admin.password).get_json()
        assert body2["mfa_enrolled"] is True
        r = again.post("/api/auth/mfa/enroll", headers={"X-CSRF-Token": body2["csrf_token"]})
        assert r.status_code == 403
        assert r.get_json()["code"] == "mfa_enroll_not_allowed"


def test_auth06_non_admin_session_cannot_use_the_mfa_endpoints(app):  # type: ignore[no-untyped-def]
    doctor = Session(app.test_client(), make_user(app, "report_l3"))
    for r in (doctor.post("/api/auth/mfa", json={"code": "123456"}), doctor.post("/api/auth/mfa/enroll")):
        assert r.status_code == 403
        assert r.get_json()["code"] == "mfa_not_required"
    assert doctor.get("/api/auth/me").get_json()["state"] == "active"
    anonymous = app.test_client()
    assert anonymous.post("/api/auth/mfa/enroll").status_code in (401, 403)  # no session: never 2xx
