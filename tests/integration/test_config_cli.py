"""Configuration rules and the `telerad` command: db upgrade, demo data, create-admin (SESS-03, WEB-05, AUTH-06)."""

from __future__ import annotations

import os
import re
import stat
import subprocess
from pathlib import Path
from typing import Any

import pyotp
import pytest
from sqlalchemy import func, select

from api.app import create_app
from api.extensions import db
from engine import config, uow
from engine.accounts.demo import DEMO_ACCOUNTS
from engine.accounts.models import User
from tests.conftest import TEST_SECRET

ROOT = Path(__file__).resolve().parents[2]
STRONG = "p" * 40


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("TELERAD_")} | env
    return subprocess.run(
        [str(ROOT / ".venv/bin/telerad"), *args], env=full, capture_output=True, text=True, timeout=120, check=False
    )


# --- load_settings ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "match"),
    [
        ({"TELERAD_MODE": "staging"}, "TELERAD_MODE"),
        ({"TELERAD_MODE": "production"}, "SECRET_KEY"),
        ({"TELERAD_MODE": "production", "TELERAD_SECRET_KEY": "x" * 31}, "SECRET_KEY"),
        ({"TELERAD_MODE": "production", "TELERAD_SECRET_KEY": "密" * 10}, "SECRET_KEY"),  # 30 bytes
        ({"TELERAD_MODE": "production", "TELERAD_SECRET_KEY": STRONG, "TELERAD_DEBUG": "1"}, "DEBUG"),
        ({"TELERAD_MODE": "production", "TELERAD_SECRET_KEY": STRONG, "TELERAD_DEBUG": "true"}, "DEBUG"),
        ({"TELERAD_MODE": "demo", "TELERAD_HTTP_PORT": "eighty"}, "TELERAD_HTTP_PORT"),
    ],
)
def test_sess03_unsafe_configuration_is_refused(tmp_path: Path, env: dict[str, str], match: str) -> None:
    with pytest.raises(config.ConfigError, match=match):
        config.load_settings({"TELERAD_INSTANCE_DIR": str(tmp_path), **env})


def test_sess03_production_accepts_a_strong_secret_and_writes_no_file(tmp_path: Path) -> None:
    s = config.load_settings(
        {"TELERAD_MODE": " Production ", "TELERAD_SECRET_KEY": "k" * 32, "TELERAD_INSTANCE_DIR": str(tmp_path)}
    )
    assert s.production
    assert s.secret_key == "k" * 32
    assert s.session_cookie_name == "__Host-telerad_session"
    assert not (tmp_path / "secret_key").exists()


def test_sess03_demo_generates_and_reuses_a_private_secret(tmp_path: Path) -> None:
    env = {"TELERAD_MODE": "demo", "TELERAD_INSTANCE_DIR": str(tmp_path / "inst")}
    first = config.load_settings(env)
    path = tmp_path / "inst" / "secret_key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first.secret_key.encode()) >= config.MIN_SECRET_BYTES
    assert first.secret_key == path.read_text().strip()
    assert config.load_settings(env).secret_key == first.secret_key  # reused, not regenerated
    assert first.session_cookie_name == "telerad_session"
    assert first.database_url == f"sqlite:///{(tmp_path / 'inst' / 'telerad.db').resolve()}"
    other = config.load_settings({"TELERAD_MODE": "demo", "TELERAD_INSTANCE_DIR": str(tmp_path / "other")})
    assert other.secret_key != first.secret_key
    explicit = config.load_settings({**env, "TELERAD_SECRET_KEY": STRONG})
    assert explicit.secret_key == STRONG


def test_config_defaults_match_the_baseline(tmp_path: Path) -> None:
    s = config.load_settings({"TELERAD_MODE": "test", "TELERAD_INSTANCE_DIR": str(tmp_path)})
    assert (s.argon2_time_cost, s.argon2_memory_kib) == (2, 19456)
    assert (s.idle_timeout_min, s.admin_idle_timeout_min, s.absolute_timeout_hours) == (30, 15, 12)
    assert (s.password_max_age_days, s.password_history, s.inactive_disable_days) == (90, 5, 90)
    assert (s.lockout_threshold, s.lockout_window_min, s.lockout_duration_min) == (5, 15, 30)
    assert s.audit_retention_days == 180
    assert not s.debug


# --- telerad db upgrade + demo --------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_instance(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    inst = tmp_path_factory.mktemp("demo")
    env = {"TELERAD_MODE": "demo", "TELERAD_INSTANCE_DIR": str(inst)}
    up = run(env, "db", "upgrade")
    assert up.returncode == 0, up.stderr
    first = run(env, "demo")
    assert first.returncode == 0, first.stderr
    assert f"新增 {len(DEMO_ACCOUNTS)} 个" in first.stdout
    return env


def user_count(app: Any) -> int:
    with app.app_context():
        return int(uow.session().execute(select(func.count(User.id))).scalar_one())


def demo_app(env: dict[str, str]) -> Any:
    return create_app(config.load_settings(env))


def test_acct_readme_lists_the_demo_accounts() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for d in DEMO_ACCOUNTS:
        assert re.search(rf"^\| {re.escape(d.username)} \| {re.escape(d.password)} \|", readme, re.M), d.username
        if d.totp_secret:
            assert f"`{d.totp_secret}`" in readme


def test_acct_demo_accounts_log_in_with_readme_passwords(demo_instance: dict[str, str]) -> None:
    app = demo_app(demo_instance)
    try:
        assert user_count(app) == len(DEMO_ACCOUNTS)
        for d in DEMO_ACCOUNTS:
            c = app.test_client()
            r = c.post("/api/auth/login", json={"username": d.username, "password": d.password})
            assert r.status_code == 200, (d.username, r.get_json())
            body = r.get_json()
            if d.totp_secret:
                assert body["state"] == "mfa_required", d.username
                r = c.post(
                    "/api/auth/mfa",
                    json={"code": pyotp.TOTP(d.totp_secret).now()},
                    headers={"X-CSRF-Token": body["csrf_token"]},
                )
                assert r.status_code == 200, (d.username, r.get_json())
                body = r.get_json()
            assert body["state"] == "active", d.username  # past the first-login change
            me = c.get("/api/auth/me").get_json()
            assert [role["code"] for role in me["roles"]] == [d.role]
            assert me["institution"]["code"] == d.institution
    finally:
        with app.app_context():
            db.engine.dispose()


def test_acct_demo_twice_adds_nothing(demo_instance: dict[str, str]) -> None:
    again = run(demo_instance, "demo")
    assert again.returncode == 0, again.stderr
    assert "新增 0 个" in again.stdout
    app = demo_app(demo_instance)
    try:
        assert user_count(app) == len(DEMO_ACCOUNTS)
    finally:
        with app.app_context():
            db.engine.dispose()


def test_sess03_production_refuses_demo_data(demo_instance: dict[str, str]) -> None:
    prod = {**demo_instance, "TELERAD_MODE": "production", "TELERAD_SECRET_KEY": STRONG}
    r = run(prod, "demo")
    assert r.returncode == 2
    assert "演示模式" in r.stderr
    with pytest.raises(config.ConfigError, match="demo accounts exist"):
        create_app(config.load_settings(prod))
    r = run(prod, "audit", "verify")  # every command builds the app, so every command refuses
    assert r.returncode == 2
    assert "demo accounts exist" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize(
    ("command", "extra"),
    [
        (("demo",), {}),
        (("db", "upgrade"), {"TELERAD_SECRET_KEY": "short"}),
        (("audit", "verify"), {"TELERAD_SECRET_KEY": STRONG, "TELERAD_DEBUG": "1"}),
        (("create-admin", "--username", "x1", "--role", "sys_admin"), {"TELERAD_AUDIT_RETENTION_DAYS": "30"}),
    ],
)
def test_sess03_every_command_exits_2_on_unsafe_production_config(
    tmp_path: Path, command: tuple[str, ...], extra: dict[str, str]
) -> None:
    r = run({"TELERAD_MODE": "production", "TELERAD_INSTANCE_DIR": str(tmp_path), **extra}, *command)
    assert r.returncode == 2
    assert "配置错误 / configuration error" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "telerad.db").exists()  # nothing was touched


# --- telerad create-admin -------------------------------------------------------------------------


def test_auth06_create_admin_prints_credentials_that_must_be_changed(
    app: Any, database_url: str, tmp_path: Path
) -> None:
    env = {
        "TELERAD_MODE": "test",
        "TELERAD_DATABASE_URL": database_url,
        "TELERAD_SECRET_KEY": TEST_SECRET,
        "TELERAD_INSTANCE_DIR": str(tmp_path / "cli"),
    }
    r = run(env, "create-admin", "--username", "auditor1", "--role", "audit_admin")
    assert r.returncode == 0, r.stderr
    temp = re.search(r"临时密码（首次登录须修改）: (\S+)", r.stdout)
    secret = re.search(r"TOTP 密钥: ([A-Z2-7]+)", r.stdout)
    assert temp
    assert secret
    assert f"otpauth://totp/telerad:auditor1?secret={secret.group(1)}" in r.stdout
    dup = run(env, "create-admin", "--username", "AUDITOR1 ", "--role", "sys_admin")
    assert dup.returncode == 1
    assert "已存在" in dup.stderr

    c = app.test_client()
    assert c.post("/api/auth/login", json={"username": "auditor1", "password": "wrong#Pass1234"}).status_code == 401
    body = c.post("/api/auth/login", json={"username": "auditor1", "password": temp.group(1)}).get_json()
    assert body["state"] == "mfa_required"
    h = {"X-CSRF-Token": body["csrf_token"]}
    assert c.get("/api/audit/events").status_code == 403
    body = c.post("/api/auth/mfa", json={"code": pyotp.TOTP(secret.group(1)).now()}, headers=h).get_json()
    assert (body["state"], body["reason"]) == ("password_change_required", "first_login")
    h = {"X-CSRF-Token": body["csrf_token"]}
    r = c.get("/api/audit/events")
    assert (r.status_code, r.get_json()["code"]) == (403, "password_change_required")
    r = c.post("/api/auth/password", json={"old_password": temp.group(1), "new_password": "Short#1a"}, headers=h)
    assert (r.status_code, r.get_json()["code"]) == (400, "password_policy")  # admins need 12 characters
    new = "Aud1tor#Strong2026"
    r = c.post("/api/auth/password", json={"old_password": temp.group(1), "new_password": new}, headers=h)
    assert r.status_code == 200
    assert r.get_json()["state"] == "active"
    assert c.get("/api/audit/events").status_code == 200
    me = c.get("/api/auth/me").get_json()
    assert [role["code"] for role in me["roles"]] == ["audit_admin"]
    assert me["institution"]["code"] == "CENTRAL"
    with app.app_context():
        user = uow.session().execute(select(User).where(User.username_norm == "auditor1")).unique().scalar_one()
        assert (user.registration_source, user.review_status, user.must_change_password) == ("cli", "approved", None)
        assert user.totp_enabled
        assert secret.group(1) not in (user.totp_secret_enc or "")
