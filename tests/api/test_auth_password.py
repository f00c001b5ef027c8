"""Password policy, expiry, history, forced changes and credential storage (AUTH-02, AUTH-03, AUTH-07)."""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyotp
import pytest
import time_machine
from argon2 import PasswordHasher
from flask.testing import FlaskClient
from sqlalchemy import select, update
from sqlalchemy.engine import make_url

from engine import uow
from engine.accounts import auth
from engine.accounts.models import PasswordHistory, User
from engine.accounts.passwords import policy_violations
from engine.actor import Actor
from engine.errors import ValidationFailed
from tests.factories import Session, anon_csrf, crawl_refused, institution, login, make_user, registration_form

WRONG = "Wrong#Passw0rd"
ARGON2ID = re.compile(r"^\$argon2id\$v=19\$m=\d+,t=\d+,p=\d+\$")


def post_login(client: FlaskClient, username: str, password: str):  # type: ignore[no-untyped-def]
    return client.post("/api/auth/login", json={"username": username, "password": password})


def change(client: FlaskClient, csrf: str, old: str, new: str):  # type: ignore[no-untyped-def]
    return client.post(
        "/api/auth/password", json={"old_password": old, "new_password": new}, headers={"X-CSRF-Token": csrf}
    )


# --- AUTH-02 ---------------------------------------------------------------------------------------

# (password, username, admin, rejected-by rule keyword or None when accepted)
CANDIDATES = [
    ("Xk9#mQ2!vR7p", "alice", False, None),
    ("Kp7$vW2q", "alice", False, None),  # exactly 8, four classes
    ("Kp7$vW2", "alice", False, "长度至少 8"),
    ("Kp7vW2qz", "alice", False, None),  # upper, lower, digit
    ("kp7$vw2q", "alice", False, None),  # lower, digit, symbol
    ("abcdefgh", "alice", False, "三类"),
    ("ABCDEFGH1", "alice", False, "三类"),
    ("12345678!", "alice", False, "三类"),
    ("correcthorsebatterystaple", "alice", False, "三类"),
    ("", "alice", False, "长度至少 8"),
    (" " * 10, "alice", False, "三类"),
    ("Password1!", "alice", False, "常见"),
    ("P@ssw0rd", "alice", False, "常见"),
    ("P@ssw0rd2026!", "alice", False, "常见"),  # a common word with digits and symbols appended
    ("Qwerty123!", "alice", False, "常见"),
    ("Dragon!!", "alice", False, "常见"),
    ("Hunter2!", "alice", False, "常见"),
    ("Alice#2026x", "alice", False, "用户名"),
    ("xxALICExx#9", "alice", False, "用户名"),
    ("ＡＬＩＣＥ#2026x", "alice", False, "用户名"),  # full-width letters normalise to the username
    ("Ali ce#2026x", "alice", False, None),
    ("密码Abc12345", "alice", False, None),
    ("密码密码1234", "alice", False, "三类"),
    ("Aa1!" + "x" * 124, "alice", False, None),  # 128 characters: the maximum
    ("Aa1!" + "x" * 125, "alice", False, "超过 128"),
    ("Kp7$vW2q\x00Z", "alice", False, "空字符"),
    ("Tr0ub4dor&3", "alice", False, None),
    ("Tr0ub4dor&3", "alice", True, "长度至少 12"),  # 11 characters is too short for an administrator
    ("Kp7$vW2qZ9m", "secadm", True, "长度至少 12"),
    ("Kp7$vW2qZ9m!", "secadm", True, None),
    ("Zhang#2026xy", "secadm", True, None),
    ("Password2026!", "secadm", True, "常见"),
    ("secadm#2026Xy", "secadm", True, "用户名"),
]


@pytest.mark.parametrize(("password", "username", "admin", "rule"), CANDIDATES)
def test_auth02_policy_table(password, username, admin, rule):  # type: ignore[no-untyped-def]
    problems = policy_violations(password, username, admin=admin)
    if rule is None:
        assert problems == []
    else:
        assert any(rule in p for p in problems), problems


def test_auth02_change_password_endpoint_enforces_the_policy(app, client):  # type: ignore[no-untyped-def]
    user = make_user(app, "report_l1", username="zhangwei")
    csrf = login(client, user)
    for weak in ("Sh0rt!", "Zhangwei#2026X", "Password1!", "abcdefghijkl", "P@ssw0rd2026!"):
        r = change(client, csrf, user.password, weak)
        assert r.status_code == 400, weak
        assert r.get_json()["code"] == "password_policy"
        assert r.get_json()["details"]["rules"]
    r = change(client, csrf, user.password, "Lz8&qTn4#Wd")
    assert r.status_code == 200
    assert post_login(app.test_client(), user.username, "Lz8&qTn4#Wd").status_code == 200


def test_auth02_administrators_need_twelve_characters(app, client):  # type: ignore[no-untyped-def]
    admin = make_user(app, "sec_admin")
    csrf = login(client, admin)
    r = change(client, csrf, admin.password, "Kp7$vW2qZ9m")
    assert r.status_code == 400
    assert r.get_json()["code"] == "password_policy"
    assert change(client, csrf, admin.password, "Kp7$vW2qZ9m!").status_code == 200


def test_auth02_self_registration_enforces_the_policy(app, client):  # type: ignore[no-untyped-def]
    token = anon_csrf(client)
    form = registration_form("wangfang", institution(app, "M02").id, password="wangfang123")
    r = client.post("/api/registrations", data=form, headers={"X-CSRF-Token": token})
    assert r.status_code == 400
    assert r.get_json()["code"] == "password_policy"


def test_auth02_one_megabyte_password_is_refused_before_hashing(app, client, monkeypatch):  # type: ignore[no-untyped-def]
    user = make_user(app, "report_l1")
    csrf = login(client, user)
    huge = "A1!b" * 250_000  # 1,000,000 characters

    def no_hashing(*_args: object, **_kw: object) -> None:
        pytest.fail("Argon2 was called for an oversize password")

    monkeypatch.setattr(PasswordHasher, "verify", no_hashing)
    monkeypatch.setattr(PasswordHasher, "hash", no_hashing)
    r = post_login(app.test_client(), user.username, huge)
    assert r.status_code == 400
    r = post_login(app.test_client(), user.username, "A1!b" * 32 + "x")  # 129 characters
    assert r.status_code == 400
    r = change(client, csrf, huge, "Lz8&qTn4#Wd")
    assert r.status_code == 400
    r = change(client, csrf, user.password, huge)
    assert r.status_code == 400
    with app.test_request_context(), pytest.raises(ValidationFailed) as exc:
        auth.login(user.username, huge, Actor.anonymous())
    assert exc.value.code == "input_too_long"


# --- AUTH-03 ---------------------------------------------------------------------------------------


def test_auth03_password_expires_after_90_days(app):  # type: ignore[no-untyped-def]
    user = make_user(app, "report_l1")
    t0 = datetime.now(UTC)
    for day in (30, 60, 89):  # the user keeps logging in, so the account is not disabled as inactive
        with time_machine.travel(t0 + timedelta(days=day), tick=False):
            r = post_login(app.test_client(), user.username, user.password)
            assert r.get_json()["state"] == "active", day
    client = app.test_client()
    with time_machine.travel(t0 + timedelta(days=91), tick=False):
        r = post_login(client, user.username, user.password)
        assert r.status_code == 200
        body = r.get_json()
        assert (body["state"], body["reason"]) == ("password_change_required", "password_expired")
        r = client.get("/api/auth/sessions")
        assert (r.status_code, r.get_json()["code"]) == (403, "password_change_required")
        assert client.get("/api/auth/me").get_json()["state"] == "password_change_required"
        r = change(client, body["csrf_token"], user.password, "Lz8&qTn4#Wd")
        assert r.status_code == 200
        assert r.get_json()["state"] == "active"
        assert client.get("/api/auth/sessions").status_code == 200


def test_auth03_expired_admin_is_refused_everywhere_until_changed(app, client):  # type: ignore[no-untyped-def]
    admin = make_user(app, "sys_admin")
    assert admin.totp_secret
    t0 = datetime.now(UTC)
    for day in (30, 60, 89):
        with time_machine.travel(t0 + timedelta(days=day), tick=False):
            login(app.test_client(), admin)
    with time_machine.travel(t0 + timedelta(days=91), tick=False):
        r = post_login(client, admin.username, admin.password)
        assert (r.get_json()["state"], r.get_json()["reason"]) == ("mfa_required", "password_expired")
        code = pyotp.TOTP(admin.totp_secret).now()
        r = client.post("/api/auth/mfa", json={"code": code}, headers={"X-CSRF-Token": r.get_json()["csrf_token"]})
        body = r.get_json()
        assert (body["state"], body["reason"]) == ("password_change_required", "password_expired")
        refused = crawl_refused(app, client, body["csrf_token"], "password_change_required")
        assert len(refused) >= 25
        assert set(refused.values()) == {(403, "password_change_required")}, refused
        assert change(client, body["csrf_token"], admin.password, "Kp7$vW2qZ9m!").status_code == 200
        assert client.get("/api/users").status_code == 200


def test_auth03_last_five_passwords_cannot_be_reused(app, client):  # type: ignore[no-untyped-def]
    user = make_user(app, "report_l1")
    history = [user.password] + [f"Hist#2026-{c}{c}x" for c in "abcd"]
    csrf = login(client, user)
    for old, new in zip(history, history[1:], strict=False):
        r = change(client, csrf, old, new)
        assert r.status_code == 200, r.get_json()
        csrf = r.get_json()["csrf_token"]
    current = history[-1]
    for reused in history:  # the current password and the four before it
        r = change(client, csrf, current, reused)
        assert r.status_code == 400, reused
        assert r.get_json()["code"] == "password_reused"
    r = change(client, csrf, current, "Hist#2026-eex")
    assert r.status_code == 200
    # Six changes back, the first password has left the window of five.
    r = change(client, r.get_json()["csrf_token"], "Hist#2026-eex", history[0])
    assert r.status_code == 200


def test_auth03_first_login_forces_a_change(app, client):  # type: ignore[no-untyped-def]
    user = make_user(app, "report_l2", must_change="first_login")
    r = post_login(client, user.username, user.password)
    body = r.get_json()
    assert (body["state"], body["reason"]) == ("password_change_required", "first_login")
    r = client.get("/api/auth/sessions")
    assert (r.status_code, r.get_json()["code"]) == (403, "password_change_required")
    r = change(client, body["csrf_token"], user.password, "Lz8&qTn4#Wd")
    assert r.status_code == 200
    assert r.get_json()["state"] == "active"
    assert client.get("/api/auth/sessions").status_code == 200
    with app.app_context():
        assert uow.session().get(User, user.id).must_change_password is None


def test_auth03_admin_reset_kills_sessions_and_forces_a_change(app):  # type: ignore[no-untyped-def]
    user = make_user(app, "report_l1")
    victim = Session(app.test_client(), user)
    assert victim.get("/api/auth/me").status_code == 200
    sec = Session(app.test_client(), make_user(app, "sec_admin"))
    r = sec.post(f"/api/users/{user.id}/reset-password")
    assert r.status_code == 200
    temp = r.get_json()["temporary_password"]
    assert policy_violations(temp, user.username, admin=True) == []
    assert victim.get("/api/auth/me").status_code == 401
    client = app.test_client()
    assert post_login(client, user.username, user.password).status_code == 401
    body = post_login(client, user.username, temp).get_json()
    assert (body["state"], body["reason"]) == ("password_change_required", "admin_reset")
    assert change(client, body["csrf_token"], temp, "weak").status_code == 400
    assert change(client, body["csrf_token"], temp, "Lz8&qTn4#Wd").get_json()["state"] == "active"


# --- AUTH-07 ---------------------------------------------------------------------------------------


def _database_text(database_url: str) -> bytes:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        db = Path(url.database or "")
        return b"".join(p.read_bytes() for p in (db, Path(f"{db}-wal")) if p.exists())
    assert shutil.which("pg_dump"), "pg_dump is needed to dump the PostgreSQL test database"
    cmd = ["pg_dump", "-h", url.host or "127.0.0.1", "-p", str(url.port or 5432), "-U", url.username or "postgres"]
    return subprocess.run([*cmd, url.database or ""], check=True, capture_output=True, timeout=60).stdout


def test_auth07_no_password_or_totp_secret_in_database_or_logs(app, database_url, caplog):  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG)
    for name in list(logging.root.manager.loggerDict):
        caplog.set_level(logging.DEBUG, logger=name)
    user = make_user(app, "report_l1")
    client = app.test_client()
    assert post_login(client, user.username, WRONG).status_code == 401
    csrf = login(client, user)
    new_password = "Lz8&qTn4#Wd-07"
    assert change(client, csrf, user.password, new_password).status_code == 200
    admin = make_user(app, "sec_admin")
    with app.app_context():
        uow.session().execute(update(User).where(User.id == admin.id).values(totp_enabled=False, totp_secret_enc=None))
        uow.commit()
    admin_client = app.test_client()
    r = post_login(admin_client, admin.username, admin.password)
    csrf = r.get_json()["csrf_token"]
    enrolled = admin_client.post("/api/auth/mfa/enroll", headers={"X-CSRF-Token": csrf}).get_json()["secret"]
    r = admin_client.post("/api/auth/mfa", json={"code": pyotp.TOTP(enrolled).now()}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200
    other_admin = make_user(app, "audit_admin")
    login(app.test_client(), other_admin)

    with app.app_context():
        hashes = list(uow.session().execute(select(User.password_hash)).scalars())
        hashes += list(uow.session().execute(select(PasswordHistory.password_hash)).scalars())
    assert len(hashes) >= 4
    assert all(ARGON2ID.match(h) for h in hashes), hashes
    dump = _database_text(database_url)
    logs = caplog.text
    assert b"login_success" in dump
    # The capture reached SQL statement logging, where bound parameters would show a leaked credential.
    assert any(r.name.startswith("sqlalchemy.engine") for r in caplog.records)
    secrets_used = [user.password, new_password, WRONG, admin.password, other_admin.password, enrolled]
    secrets_used.append(other_admin.totp_secret or "")
    for secret in secrets_used:
        assert secret.encode() not in dump, "a credential is stored in clear in the database"
        assert secret not in logs, "a credential appears in the log output"
