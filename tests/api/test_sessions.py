"""Server-side sessions: timeouts, logout, fixation, cookies, production start-up (AUTH-05/07, SESS-01..06)."""

from __future__ import annotations

import logging
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyotp
import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from engine import config, uow
from engine.accounts.auth import token_hash
from engine.accounts.models import UserSession
from engine.audit import AuditEvent
from tests.conftest import make_settings
from tests.factories import Session, as_user, login, make_user, role_id

COOKIE = "telerad_session"
TELERAD = Path(sys.executable).parent / "telerad"


def token_of(client: FlaskClient, name: str = COOKIE) -> str:
    cookie = client.get_cookie(name)
    assert cookie is not None
    assert cookie.value
    return cookie.value


def replay(app: Flask, token: str, url: str = "/api/auth/me"):  # type: ignore[no-untyped-def]
    """The same cookie from another browser."""
    other = app.test_client()
    other.set_cookie(COOKIE, token)
    return other.get(url)


def session_rows(app: Flask, user_id: int) -> set[str]:
    with app.app_context():
        return set(uow.session().execute(select(UserSession.id).where(UserSession.user_id == user_id)).scalars())


def count(app: Flask, model: type, *where: object) -> int:
    with app.app_context():
        return int(uow.session().execute(select(func.count()).select_from(model).where(*where)).scalar_one())


def cookie_attrs(header: str) -> tuple[str, set[str]]:
    name_value, *attrs = [p.strip() for p in header.split(";")]
    return name_value.split("=", 1)[0], {a.lower() for a in attrs}


@contextmanager
def built_app(settings: config.Settings) -> Iterator[Flask]:
    from api.app import create_app
    from api.extensions import db

    application = create_app(settings)
    try:
        yield application
    finally:
        with application.app_context():
            db.session.remove()
            db.engine.dispose()


def production_settings(database_url: str, instance: Path) -> config.Settings:
    env = {
        "TELERAD_MODE": "production",
        "TELERAD_INSTANCE_DIR": str(instance),
        "TELERAD_DATABASE_URL": database_url,
        "TELERAD_SECRET_KEY": secrets.token_urlsafe(36),  # 48 bytes
        "TELERAD_ARGON2_TIME_COST": "1",
        "TELERAD_ARGON2_MEMORY_KIB": "1024",
        "TELERAD_LOGIN_IP_LIMIT": "100000 per minute",
    }
    return config.load_settings(env)


# --- AUTH-05 ---------------------------------------------------------------------------------------


def test_auth05_idle_timeout_is_30_minutes_and_deletes_the_row(app):  # type: ignore[no-untyped-def]
    user = make_user(app, "report_l1")
    a, b = app.test_client(), app.test_client()
    t0 = datetime.now(UTC)
    with time_machine.travel(t0, tick=False):
        login(a, user)
        login(b, user)
    with time_machine.travel(t0 + timedelta(minutes=29), tick=False):
        assert a.get("/api/auth/me").status_code == 200
    with time_machine.travel(t0 + timedelta(minutes=31), tick=False):
        r = b.get("/api/auth/me")
        assert r.status_code == 401
        assert r.get_json()["code"] == "unauthenticated"
        assert a.get("/api/auth/me").status_code == 200  # it was seen two minutes ago
    assert session_rows(app, user.id) == {token_hash(token_of(a))}
    assert count(app, AuditEvent, AuditEvent.event_type == "session_expired") == 1


def test_auth05_admin_idle_timeout_is_15_minutes(app):  # type: ignore[no-untyped-def]
    first, second = make_user(app, "sys_admin"), make_user(app, "sec_admin")
    doctor = make_user(app, "report_l1")
    clients = {u.username: app.test_client() for u in (first, second, doctor)}
    t0 = datetime.now(UTC)
    with time_machine.travel(t0, tick=False):
        for u in (first, second, doctor):
            login(clients[u.username], u)
    with time_machine.travel(t0 + timedelta(minutes=14), tick=False):
        assert clients[first.username].get("/api/users").status_code == 200
    with time_machine.travel(t0 + timedelta(minutes=16), tick=False):
        assert clients[second.username].get("/api/users").status_code == 401
        assert clients[doctor.username].get("/api/auth/me").status_code == 200
    assert session_rows(app, second.id) == set()


def test_auth05_absolute_timeout_despite_continuous_activity(app, client):  # type: ignore[no-untyped-def]
    user = make_user(app, "report_l1")
    t0 = datetime.now(UTC)
    with time_machine.travel(t0, tick=False):
        login(client, user)
    for minute in range(10, 12 * 60, 10):
        with time_machine.travel(t0 + timedelta(minutes=minute), tick=False):
            assert client.get("/api/auth/me").status_code == 200, minute
    with time_machine.travel(t0 + timedelta(hours=12, minutes=1), tick=False):
        assert client.get("/api/auth/me").status_code == 401
    assert session_rows(app, user.id) == set()


# --- SESS-01 / SESS-02 -----------------------------------------------------------------------------


def test_sess01_cookie_replayed_after_logout_is_rejected(app, client):  # type: ignore[no-untyped-def]
    user = make_user(app, "report_l1")
    csrf = login(client, user)
    token = token_of(client)
    assert replay(app, token).status_code == 200
    r = client.post("/api/auth/logout", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 204
    assert client.get_cookie(COOKIE) is None
    r = replay(app, token)
    assert r.status_code == 401
    assert r.get_json()["code"] == "unauthenticated"
    assert session_rows(app, user.id) == set()


def test_sess02_forged_cookie_set_before_login_is_not_kept(app, client):  # type: ignore[no-untyped-def]
    user = make_user(app, "report_l1")
    forged = "attacker-chosen-session-id-0123456789"
    client.set_cookie(COOKIE, forged)
    login(client, user)
    assert token_of(client) != forged
    assert client.get("/api/auth/me").status_code == 200
    assert replay(app, forged).status_code == 401
    assert token_hash(forged) not in session_rows(app, user.id)


def test_sess02_planted_session_of_another_login_ends_at_login(app):  # type: ignore[no-untyped-def]
    attacker, victim = make_user(app, "report_l1"), make_user(app, "report_l2")
    attacker_client = app.test_client()
    login(attacker_client, attacker)
    planted = token_of(attacker_client)
    browser = app.test_client()
    browser.set_cookie(COOKIE, planted)
    login(browser, victim)
    assert token_of(browser) != planted
    assert browser.get("/api/auth/me").get_json()["username"] == victim.username
    assert replay(app, planted).status_code == 401
    assert attacker_client.get("/api/auth/me").status_code == 401


def test_sess02_mfa_success_and_password_change_rotate_the_id(app, client):  # type: ignore[no-untyped-def]
    admin = make_user(app, "sec_admin")
    assert admin.totp_secret
    r = client.post("/api/auth/login", json={"username": admin.username, "password": admin.password})
    pending, pending_csrf = token_of(client), r.get_json()["csrf_token"]
    r = client.post(
        "/api/auth/mfa", json={"code": pyotp.TOTP(admin.totp_secret).now()}, headers={"X-CSRF-Token": pending_csrf}
    )
    assert r.status_code == 200
    active, csrf = token_of(client), r.get_json()["csrf_token"]
    assert active != pending
    assert csrf != pending_csrf
    assert replay(app, pending).status_code == 401
    r = client.post(
        "/api/auth/password",
        json={"old_password": admin.password, "new_password": "Kp7$vW2qZ9m!"},
        headers={"X-CSRF-Token": csrf},
    )
    assert r.status_code == 200
    assert token_of(client) not in (active, pending)
    assert replay(app, active).status_code == 401
    assert client.get("/api/users").status_code == 200
    assert session_rows(app, admin.id) == {token_hash(token_of(client))}


# --- SESS-03 / AUTH-07: cookies and production start-up --------------------------------------------


def test_sess03_demo_cookie_attributes(database_url, tmp_path):  # type: ignore[no-untyped-def]
    with built_app(make_settings(database_url, tmp_path / "demo", mode="demo")) as application:
        user = make_user(application, "report_l1")
        r = application.test_client().post(
            "/api/auth/login", json={"username": user.username, "password": user.password}
        )
        assert r.status_code == 200
        [header] = [h for h in r.headers.getlist("Set-Cookie") if h.startswith(f"{COOKIE}=")]
        name, attrs = cookie_attrs(header)
        assert name == COOKIE
        assert {"httponly", "samesite=lax", "path=/"} <= attrs
        assert not any(a.startswith("domain") for a in attrs)


def test_sess03_production_cookie_is_host_prefixed_and_secure(database_url, tmp_path):  # type: ignore[no-untyped-def]
    with built_app(production_settings(database_url, tmp_path / "prod")) as application:
        user = make_user(application, "report_l1")
        client = application.test_client()
        body = {"username": user.username, "password": user.password}
        r = client.post("/api/auth/login", json=body, base_url="https://localhost")
        assert r.status_code == 200
        [header] = r.headers.getlist("Set-Cookie")
        name, attrs = cookie_attrs(header)
        assert name == "__Host-telerad_session"
        assert {"secure", "httponly", "samesite=lax", "path=/"} <= attrs
        assert not any(a.startswith("domain") for a in attrs)
        assert "max-age=31536000" in r.headers["Strict-Transport-Security"]
        assert client.get("/api/auth/me", base_url="https://localhost").status_code == 200


def test_auth07_production_plain_http_login_is_redirected_unprocessed(database_url, tmp_path):  # type: ignore[no-untyped-def]
    with built_app(production_settings(database_url, tmp_path / "prod")) as application:
        user = make_user(application, "report_l1")
        audit_before = count(application, AuditEvent)
        r = application.test_client().post(
            "/api/auth/login", json={"username": user.username, "password": user.password}
        )
        assert r.status_code == 301
        assert r.headers["Location"] == "https://localhost/api/auth/login"
        assert r.data == b""
        assert not r.headers.getlist("Set-Cookie")
        assert count(application, AuditEvent) == audit_before
        assert session_rows(application, user.id) == set()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({}, "TELERAD_SECRET_KEY"),
        ({"TELERAD_SECRET_KEY": "x" * 31}, "TELERAD_SECRET_KEY"),
        ({"TELERAD_SECRET_KEY": secrets.token_urlsafe(36), "TELERAD_DEBUG": "1"}, "TELERAD_DEBUG"),
    ],
    ids=["unset", "31-bytes", "debug-on"],
)
def test_sess03_production_refuses_to_start_unsafely(tmp_path, extra, message):  # type: ignore[no-untyped-def]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), "TELERAD_MODE": "production"}
    env |= {"TELERAD_INSTANCE_DIR": str(tmp_path / "instance"), "TELERAD_HTTP_PORT": "0", **extra}
    proc = subprocess.run([str(TELERAD), "web"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr
    assert "telerad web on" not in proc.stdout


# --- SESS-04 ---------------------------------------------------------------------------------------


def test_sess04_role_change_ends_every_session(app):  # type: ignore[no-untyped-def]
    user = make_user(app, "report_l1")
    a, b = Session(app.test_client(), user), Session(app.test_client(), user)
    sec = as_user(app, "sec_admin")
    r = sec.put(f"/api/users/{user.id}/roles", json={"role_ids": [role_id(app, "report_l2")]})
    assert r.status_code == 200
    assert a.get("/api/auth/me").status_code == 401
    assert b.get("/api/auth/me").status_code == 401
    assert session_rows(app, user.id) == set()
    fresh = Session(app.test_client(), user)
    assert [x["code"] for x in fresh.get("/api/auth/me").get_json()["roles"]] == ["report_l2"]


def test_sess04_password_change_in_one_session_ends_the_others(app):  # type: ignore[no-untyped-def]
    user = make_user(app, "report_l1")
    a, b = Session(app.test_client(), user), Session(app.test_client(), user)
    r = a.post("/api/auth/password", json={"old_password": user.password, "new_password": "Lz8&qTn4#Wd"})
    assert r.status_code == 200
    assert b.get("/api/auth/me").status_code == 401
    assert a.get("/api/auth/me").status_code == 200
    assert session_rows(app, user.id) == {token_hash(token_of(a.client))}


def test_sess04_disabling_the_account_ends_its_sessions(app):  # type: ignore[no-untyped-def]
    user = make_user(app, "report_l1")
    a, b = Session(app.test_client(), user), Session(app.test_client(), user)
    sys_admin = as_user(app, "sys_admin")
    r = sys_admin.patch(f"/api/users/{user.id}", json={"enabled": False})
    assert r.status_code == 200
    assert r.get_json()["enabled"] is False
    assert a.get("/api/auth/me").status_code == 401
    assert b.get("/api/auth/me").status_code == 401
    r = app.test_client().post("/api/auth/login", json={"username": user.username, "password": user.password})
    assert (r.status_code, r.get_json()["code"]) == (401, "account_disabled")


# --- SESS-05 (listing and revoking) / SESS-06 ------------------------------------------------------


def test_sess05_user_lists_and_revokes_own_sessions(app):  # type: ignore[no-untyped-def]
    user = make_user(app, "report_l1")
    a = Session(app.test_client(), user)
    b = Session(app.test_client(), user)
    stranger = Session(app.test_client(), make_user(app, "report_l1"))
    listed = a.get("/api/auth/sessions").get_json()
    assert len(listed) == 2
    assert [s["current"] for s in listed].count(True) == 1
    other_id = next(s["id"] for s in listed if not s["current"])
    stranger_id = stranger.get("/api/auth/sessions").get_json()[0]["id"]
    assert a.delete(f"/api/auth/sessions/{stranger_id}").status_code == 404
    assert stranger.get("/api/auth/me").status_code == 200
    assert a.delete(f"/api/auth/sessions/{other_id}").status_code == 204
    assert b.get("/api/auth/me").status_code == 401
    assert [s["current"] for s in a.get("/api/auth/sessions").get_json()] == [True]
    assert count(app, AuditEvent, AuditEvent.event_type == "session_revoked") == 1


URL_SECRET = re.compile(r"(?:^|[?&/])(?:token|access_token|sid)=", re.IGNORECASE)


def test_sess06_session_token_never_in_urls_bodies_or_logs(app, client, caplog):  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG)
    for name in list(logging.root.manager.loggerDict):
        caplog.set_level(logging.DEBUG, logger=name)
    admin = make_user(app, "sys_admin")
    login(client, admin)
    token = token_of(client)
    spec = client.get("/api/openapi.json").get_json()
    assert len(spec["paths"]) >= 25
    for path, operations in spec["paths"].items():
        assert not URL_SECRET.search(path), path
        for op in operations.values():
            for param in op.get("parameters", []) if isinstance(op, dict) else []:
                if param.get("in") in ("query", "path"):
                    assert param["name"].lower() not in {"token", "access_token", "sid", "session"}, (path, param)
    bodies = [client.get(url) for url in ("/api/auth/me", "/api/auth/sessions", "/api/users")]
    assert [r.status_code for r in bodies] == [200, 200, 200]
    for r in bodies:
        text = r.get_data(as_text=True)
        assert token not in text
        assert token_hash(token) not in text
        assert not URL_SECRET.search(text)
        assert all(token not in v for k, v in r.headers.items() if k.lower() != "set-cookie")
    assert caplog.records
    assert token not in caplog.text
