"""Login: default credentials, username normalisation, lockout, per-IP throttling, last-login info (AUTH-01/04/10)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyotp
import pytest
import time_machine
from argon2 import PasswordHasher
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from engine import uow
from engine.accounts.models import LoginThrottle, User
from tests.conftest import make_settings
from tests.factories import Session, anon_csrf, audit_count, institution, make_user, registration_form

WRONG = "Wrong#Passw0rd"


def post_login(client: FlaskClient, username: str, password: str, **kw: object):  # type: ignore[no-untyped-def]
    return client.post("/api/auth/login", json={"username": username, "password": password}, **kw)


def wrong_code(secret: str) -> str:
    """A six-digit code that is valid for none of the accepted steps (now, -30 s, +30 s)."""
    totp = pyotp.TOTP(secret)
    now = datetime.now(UTC).timestamp()
    valid = {totp.at(now + off) for off in (-30, 0, 30)}
    code = int(totp.at(now))
    while f"{code:06d}" in valid:
        code = (code + 1) % 1_000_000
    return f"{code:06d}"


@contextmanager
def built_app(database_url: str, instance: Path, **overrides: object) -> Iterator[Flask]:
    from api.app import create_app
    from api.extensions import db

    application = create_app(make_settings(database_url, instance, **overrides))
    try:
        yield application
    finally:
        with application.app_context():
            db.session.remove()
            db.engine.dispose()


# --- AUTH-01 ---------------------------------------------------------------------------------------


DEFAULT_CREDENTIALS = [
    ("admin", "admin"),
    ("admin", "123456"),
    ("root", "root"),
    ("test", "test"),
    ("sysadmin", "sysadmin"),
]


def test_auth01_default_credentials_rejected_on_fresh_database(app, client):  # type: ignore[no-untyped-def]
    with app.app_context():  # a fresh install ships no account at all, so no built-in superuser either
        assert uow.session().execute(select(func.count()).select_from(User)).scalar_one() == 0
    for username, password in DEFAULT_CREDENTIALS:
        r = post_login(client, username, password)
        assert r.status_code == 401, (username, password)
        assert r.get_json()["code"] == "invalid_credentials"
        assert client.get_cookie("telerad_session") is None


@pytest.mark.parametrize("variant", ["Admin", "ADMIN", "admin ", " admin", "ａｄｍｉｎ", "ＡＤＭＩＮ"])
def test_auth01_username_variants_taken_via_admin_create(app, variant):  # type: ignore[no-untyped-def]
    make_user(app, "report_l1", username="admin")
    sys_admin = Session(app.test_client(), make_user(app, "sys_admin"))
    body = {"username": variant, "full_name": "重名测试", "institution_id": institution(app, "CENTRAL").id}
    r = sys_admin.post("/api/users", json=body)
    assert r.status_code == 409, r.get_json()
    assert r.get_json()["code"] == "username_taken"


@pytest.mark.parametrize("variant", ["Admin", "admin ", "ａｄｍｉｎ"])
def test_auth01_username_variants_taken_via_self_registration(app, client, variant):  # type: ignore[no-untyped-def]
    make_user(app, "report_l1", username="admin")
    token = anon_csrf(client)
    form = registration_form(variant, institution(app, "M01").id)
    r = client.post("/api/registrations", data=form, headers={"X-CSRF-Token": token})
    assert r.status_code == 409, r.get_json()
    assert r.get_json()["code"] == "username_taken"


# --- AUTH-04 ---------------------------------------------------------------------------------------


def test_auth04_five_failures_lock_then_correct_password_works_after_31_minutes(app, client):  # type: ignore[no-untyped-def]
    user = make_user(app, "report_l1")
    t0 = datetime.now(UTC)
    with time_machine.travel(t0, tick=False):
        for _ in range(5):
            assert post_login(client, user.username, WRONG).status_code == 401
        r = post_login(client, user.username, user.password)
        assert r.status_code == 423
        assert r.get_json()["code"] == "account_locked"
        assert client.get_cookie("telerad_session") is None
    assert audit_count(app, "login_locked") == 1
    with time_machine.travel(t0 + timedelta(minutes=29), tick=False):
        assert post_login(client, user.username, user.password).status_code == 423
    with time_machine.travel(t0 + timedelta(minutes=31), tick=False):
        r = post_login(client, user.username, user.password)
        assert r.status_code == 200
        assert r.get_json()["state"] == "active"


def test_auth04_unknown_and_known_user_answers_are_byte_identical(app, monkeypatch):  # type: ignore[no-untyped-def]
    user = make_user(app, "report_l1")
    verified: list[str] = []
    real_verify = PasswordHasher.verify

    def spy(self: PasswordHasher, hash: str, password: str) -> bool:  # noqa: A002
        verified.append(hash)
        return real_verify(self, hash, password)

    monkeypatch.setattr(PasswordHasher, "verify", spy)
    known = post_login(app.test_client(), user.username, WRONG)
    unknown = post_login(app.test_client(), "nobody-here", WRONG)
    assert known.status_code == unknown.status_code == 401
    assert known.data == unknown.data
    assert known.headers["Content-Type"] == unknown.headers["Content-Type"]
    assert set(known.headers.keys()) == set(unknown.headers.keys())
    # Mechanism behind the equal timing: the unknown user is checked against a dummy hash of the same cost.
    assert len(verified) == 2
    params = [h.split("$")[3] for h in verified]
    assert verified[0].startswith("$argon2id$")
    assert verified[1].startswith("$argon2id$")
    assert params[0] == params[1]


def test_auth04_lockout_counts_unknown_usernames_after_normalisation(app, client):  # type: ignore[no-untyped-def]
    for _ in range(5):
        assert post_login(client, "ghost", WRONG).status_code == 401
    for variant in ("ghost", "GHOST ", "ｇｈｏｓｔ"):
        r = post_login(client, variant, WRONG)
        assert r.status_code == 423, variant
        assert r.get_json()["code"] == "account_locked"
    with app.app_context():
        row = uow.session().get(LoginThrottle, "ghost")
        assert row is not None
        assert row.locked_until is not None


def test_auth04_security_admin_unlock_clears_the_lock(app, client):  # type: ignore[no-untyped-def]
    user = make_user(app, "report_l1")
    for _ in range(5):
        post_login(client, user.username, WRONG)
    assert post_login(client, user.username, user.password).status_code == 423
    sec = Session(app.test_client(), make_user(app, "sec_admin"))
    assert sec.get(f"/api/users/{user.id}").get_json()["locked"] is True
    assert sec.post(f"/api/users/{user.id}/unlock").status_code == 204
    assert sec.get(f"/api/users/{user.id}").get_json()["locked"] is False
    assert audit_count(app, "account_unlocked") == 1
    assert post_login(client, user.username, user.password).status_code == 200


def test_auth04_registration_status_shares_the_lockout(app, client):  # type: ignore[no-untyped-def]
    """The applicant status check verifies a password too: it must not be a lockout-free guessing oracle."""
    user = make_user(app, "report_l1")
    for _ in range(5):
        r = client.post("/api/registrations/status", json={"username": user.username, "password": WRONG})
        assert r.status_code == 401
    r = client.post("/api/registrations/status", json={"username": user.username, "password": user.password})
    assert r.status_code == 423
    assert post_login(client, user.username, user.password).status_code == 423


def test_auth04_per_ip_throttle_ignores_rotating_forwarded_headers(database_url, tmp_path):  # type: ignore[no-untyped-def]
    with built_app(database_url, tmp_path / "throttled", login_ip_limit="10 per 5 minutes") as application:
        user = make_user(application, "report_l1")
        client = application.test_client()
        attacker = {"REMOTE_ADDR": "198.51.100.7"}
        statuses = []
        for i in range(200):
            spoof = {"X-Forwarded-For": f"203.0.113.{i % 250}", "X-Real-IP": f"192.0.2.{i % 250}"}
            r = post_login(client, f"victim{i}", WRONG, headers=spoof, environ_base=attacker)
            statuses.append(r.status_code)
        assert statuses[:10] == [401] * 10
        assert statuses[10:] == [429] * 190
        r = post_login(client, user.username, user.password, environ_base=attacker)
        assert r.status_code == 429
        assert r.get_json()["code"] == "rate_limited"
        # Another address is not throttled, and the throttled attempts reached no password check.
        other = application.test_client()
        assert (
            post_login(other, user.username, user.password, environ_base={"REMOTE_ADDR": "198.51.100.8"}).status_code
            == 200
        )
        with application.app_context():
            counted = uow.session().execute(select(func.count()).select_from(LoginThrottle)).scalar_one()
        assert counted == 10


def test_auth04_mfa_failures_count_toward_the_lockout(app, client):  # type: ignore[no-untyped-def]
    admin = make_user(app, "audit_admin")
    assert admin.totp_secret
    t0 = datetime.now(UTC)
    with time_machine.travel(t0, tick=False):
        for _ in range(2):
            assert post_login(client, admin.username, WRONG).status_code == 401
        r = post_login(client, admin.username, admin.password)
        assert r.status_code == 200
        assert r.get_json()["state"] == "mfa_required"
        csrf = r.get_json()["csrf_token"]
        for _ in range(3):
            r = client.post(
                "/api/auth/mfa", json={"code": wrong_code(admin.totp_secret)}, headers={"X-CSRF-Token": csrf}
            )
            assert r.status_code == 401
        # Two bad passwords + three bad codes = five failures: even the right code is refused now.
        r = client.post(
            "/api/auth/mfa", json={"code": pyotp.TOTP(admin.totp_secret).now()}, headers={"X-CSRF-Token": csrf}
        )
        assert r.status_code == 423
        assert post_login(app.test_client(), admin.username, admin.password).status_code == 423


def test_auth04_correct_password_does_not_reset_pending_mfa_failures(app, client):  # type: ignore[no-untyped-def]
    """Otherwise whoever holds the password gets unlimited TOTP guesses: log in, 4 guesses, log in again..."""
    admin = make_user(app, "sys_admin")
    assert admin.totp_secret
    t0 = datetime.now(UTC)
    with time_machine.travel(t0, tick=False):
        statuses = []
        for _round in range(2):
            r = post_login(client, admin.username, admin.password)
            statuses.append(r.status_code)
            if r.status_code != 200:
                break
            csrf = r.get_json()["csrf_token"]
            for _ in range(4):
                r = client.post(
                    "/api/auth/mfa", json={"code": wrong_code(admin.totp_secret)}, headers={"X-CSRF-Token": csrf}
                )
                statuses.append(r.status_code)
        assert statuses[:6] == [200, 401, 401, 401, 401, 200]
        assert 423 in statuses
        assert post_login(app.test_client(), admin.username, admin.password).status_code == 423


# --- AUTH-10 ---------------------------------------------------------------------------------------


def test_auth10_me_shows_previous_login_and_failures_since(app):  # type: ignore[no-untyped-def]
    user = make_user(app, "report_l1")
    t1 = datetime.now(UTC).replace(microsecond=0)
    first = app.test_client()
    with time_machine.travel(t1, tick=False):
        r = post_login(first, user.username, user.password, environ_base={"REMOTE_ADDR": "10.1.1.1"})
        csrf = r.get_json()["csrf_token"]
        me = first.get("/api/auth/me").get_json()
        assert me["last_login_at"] is None
        assert me["failed_logins_since_last"] == 0
        assert first.post("/api/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
    second = app.test_client()
    remote = {"REMOTE_ADDR": "10.2.2.2"}
    with time_machine.travel(t1 + timedelta(hours=2), tick=False):
        assert post_login(second, user.username, WRONG, environ_base=remote).status_code == 401
        assert post_login(second, user.username, WRONG, environ_base=remote).status_code == 401
        assert post_login(second, user.username, user.password, environ_base=remote).status_code == 200
        me = second.get("/api/auth/me", environ_base=remote).get_json()
    assert datetime.fromisoformat(me["last_login_at"]) == t1
    assert me["failed_logins_since_last"] == 2
    assert me["last_login_ip"] == "10.1.1.1"
