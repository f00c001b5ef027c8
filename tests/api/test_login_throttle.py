"""Login throttling behind one NAT address: per (address, username) and per address, trusted NAT networks (AUTH-04).

Issue 11 §5: one typist failing repeatedly from a hospital's NAT address must not lock out the hospital; a spray
across usernames still trips the per-address ceiling; while throttled a correct password gets the identical answer.
tests/conftest.py sets TELERAD_LOGIN_IP_LIMIT very high for the suite: every test here sets its own ceilings.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyotp
import pytest
import time_machine
from argon2 import PasswordHasher
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from engine import config, uow
from engine.accounts.models import LoginThrottle
from engine.audit import AuditEvent
from tests.conftest import make_settings
from tests.factories import audit_count, make_user

WRONG = "Wrong#Passw0rd"
NAT = "203.0.113.10"
DEFAULTS = {  # the shipped defaults (engine/config.py), which the suite's conftest raises for other tests
    "login_user_ip_limit": config.Settings.login_user_ip_limit,
    "login_ip_limit": config.Settings.login_ip_limit,
    "login_trusted_ip_limit": config.Settings.login_trusted_ip_limit,
}
VARYING = {"Date", "X-Request-ID"}
REPO = Path(__file__).resolve().parents[2]


@contextmanager
def built_app(
    database_url: str, instance: Path, *, api_rate_limit: str | None = None, **overrides: object
) -> Iterator[Flask]:
    from api.app import create_app
    from api.extensions import db

    settings = make_settings(database_url, instance, **overrides)
    if api_rate_limit:
        settings.extra["api_rate_limit"] = api_rate_limit
    application = create_app(settings)
    try:
        yield application
    finally:
        with application.app_context():
            db.session.remove()
            db.engine.dispose()


def login(client: FlaskClient, ip: str, username: str, password: str) -> Any:
    return client.post(
        "/api/auth/login", json={"username": username, "password": password}, environ_base={"REMOTE_ADDR": ip}
    )


def statuses(client: FlaskClient, ip: str, attempts: list[tuple[str, str]]) -> list[int]:
    return [login(client, ip, u, p).status_code for u, p in attempts]


def password_checks(app: Flask) -> int:
    """Wrong passwords that reached the password check (each leaves one login_failure event with this reason)."""
    return reasons(app, "login_failure").count("用户名或密码错误")


def reasons(app: Flask, event_type: str) -> list[str]:
    with app.app_context():
        return list(
            uow.session().execute(select(AuditEvent.reason).where(AuditEvent.event_type == event_type)).scalars()
        )


def assert_identical_429(answers: list[Any]) -> None:
    """The throttled answer, byte for byte the same for every attempt whatever its password or code."""
    first = answers[0]
    assert first.status_code == 429
    assert first.get_json() == {"code": "rate_limited", "message": "登录尝试过于频繁，请稍后再试", "details": {}}
    for other in answers[1:]:
        assert other.status_code == first.status_code
        assert other.data == first.data
        # Every header the same, names and values, but the date and the random per-request correlation id.
        assert sorted(other.headers.keys()) == sorted(first.headers.keys())
        assert sorted((k, v) for k, v in other.headers.items() if k not in VARYING) == sorted(
            (k, v) for k, v in first.headers.items() if k not in VARYING
        )
        assert "Set-Cookie" not in other.headers


def spy_password_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    verified: list[str] = []
    real_verify = PasswordHasher.verify

    def spy(self: PasswordHasher, hash: str, password: str) -> bool:  # noqa: A002
        verified.append(hash)
        return real_verify(self, hash, password)

    monkeypatch.setattr(PasswordHasher, "verify", spy)
    return verified


# --- one typist behind a NAT address --------------------------------------------------------------


def test_auth04_one_typist_behind_nat_does_not_lock_out_colleagues(database_url, tmp_path):  # type: ignore[no-untyped-def]
    """Shipped defaults; the general per-address request limit is set low to show it does not apply to login."""
    with built_app(database_url, tmp_path / "i", api_rate_limit="50 per minute", **DEFAULTS) as app:
        typist, colleague, other = (make_user(app, "report_l1") for _ in range(3))
        client = app.test_client()
        got = statuses(client, NAT, [(typist.username, WRONG)] * 200)
        # The account lockout (5 in 15 min) answers first and says why; the (address, user) ceiling (10) then stops
        # the retries before they use up the hospital's shared budget.
        assert got == [401] * 5 + [423] * 5 + [429] * 190
        r = login(client, NAT, colleague.username, colleague.password)
        assert r.status_code == 200, r.get_json()
        assert r.get_json()["state"] == "active"
        assert login(app.test_client(), NAT, other.username, WRONG).status_code == 401
        assert login(app.test_client(), NAT, other.username, other.password).status_code == 200
        # The 190 refused attempts reached no password check.
        with app.app_context():
            row = uow.session().get(LoginThrottle, typist.username)
            assert row is not None
            assert row.locked_until is not None


def test_auth04_same_address_and_username_is_throttled(database_url, tmp_path):  # type: ignore[no-untyped-def]
    with built_app(
        database_url, tmp_path / "i", login_user_ip_limit="3 per 5 minutes", login_ip_limit="50 per 5 minutes"
    ) as app:
        bob = make_user(app, "report_l1", username="bob")
        client = app.test_client()
        assert statuses(client, NAT, [("bob", WRONG)] * 3) == [401] * 3
        # Normalised like the account lockout: case, width and surrounding spaces do not give a fresh count.
        for variant in ("bob", "BOB ", "ｂｏｂ"):
            r = login(client, NAT, variant, WRONG)
            assert r.status_code == 429, variant
            assert r.get_json()["code"] == "rate_limited"
        r = login(client, NAT, "bob", bob.password)
        assert r.status_code == 429
        assert client.get_cookie("telerad_session") is None
        assert password_checks(app) == 3
        # Recorded once for the window, however many attempts were refused.
        assert [x for x in reasons(app, "login_failure") if "同一来源地址" in (x or "")] == [
            "同一来源地址对该账号登录失败次数达到上限（3 次/5 分钟），暂停从该地址登录"
        ]
        # The same account from another address is not held by this address's count (3 < the 5 of the lockout).
        assert login(app.test_client(), "198.51.100.21", "bob", bob.password).status_code == 200


# --- spray across usernames -----------------------------------------------------------------------


def test_auth04_address_ceiling_trips_for_a_spray_across_usernames(database_url, tmp_path):  # type: ignore[no-untyped-def]
    with built_app(
        database_url, tmp_path / "i", login_user_ip_limit="10 per 5 minutes", login_ip_limit="20 per 5 minutes"
    ) as app:
        user = make_user(app, "report_l1")
        client = app.test_client()
        got = statuses(client, "198.51.100.7", [(f"victim{i}", WRONG) for i in range(200)])
        assert got == [401] * 20 + [429] * 180
        r = login(client, "198.51.100.7", user.username, user.password)
        assert r.status_code == 429
        assert r.get_json()["code"] == "rate_limited"
        assert login(app.test_client(), "198.51.100.8", user.username, user.password).status_code == 200
        assert password_checks(app) == 20
        alerts = reasons(app, "security_alert")
        assert alerts == ["来源地址 198.51.100.7 登录失败次数达到上限（20 次/5 分钟），该地址暂停登录"]


def test_auth04_ipv6_addresses_of_one_slash64_share_the_address_ceiling(database_url, tmp_path):  # type: ignore[no-untyped-def]
    """One IPv6 subscriber holds a whole /64: rotating the interface bits must not reset the count."""
    with built_app(
        database_url, tmp_path / "i", login_user_ip_limit="10 per 5 minutes", login_ip_limit="20 per 5 minutes"
    ) as app:
        user = make_user(app, "report_l1")
        client = app.test_client()
        got = [login(client, f"2001:db8:1:2::{i:x}", f"victim{i}", WRONG).status_code for i in range(1, 41)]
        assert got == [401] * 20 + [429] * 20
        assert login(client, "2001:db8:1:2:ffff::1", user.username, user.password).status_code == 429
        assert login(client, "2001:db8:1:3::1", user.username, user.password).status_code == 200


def test_auth04_trusted_nat_network_gets_the_higher_address_ceiling(database_url, tmp_path):  # type: ignore[no-untyped-def]
    with built_app(
        database_url,
        tmp_path / "i",
        login_user_ip_limit="10 per 5 minutes",
        login_ip_limit="5 per 5 minutes",
        login_trusted_networks="203.0.113.0/24, 2001:db8:feed::/48",
        login_trusted_ip_limit="15 per 5 minutes",
    ) as app:
        client = app.test_client()
        assert statuses(client, "203.0.113.9", [(f"a{i}", WRONG) for i in range(30)]) == [401] * 15 + [429] * 15
        assert statuses(client, "2001:db8:feed:1::9", [(f"b{i}", WRONG) for i in range(30)]) == [401] * 15 + [429] * 15
        assert statuses(client, "198.51.100.9", [(f"c{i}", WRONG) for i in range(30)]) == [401] * 5 + [429] * 25
        # The (address, user) ceiling applies inside a trusted network too.
        assert statuses(client, "203.0.113.77", [("d", WRONG)] * 12) == [401] * 5 + [423] * 5 + [429] * 2


# --- no password oracle ---------------------------------------------------------------------------


@pytest.mark.parametrize("full", ["address_user", "address"])
def test_auth04_correct_password_while_throttled_gets_the_identical_answer(database_url, tmp_path, monkeypatch, full):  # type: ignore[no-untyped-def]
    limits = (
        {"login_user_ip_limit": "3 per 5 minutes", "login_ip_limit": "100 per 5 minutes"}
        if full == "address_user"
        else {"login_user_ip_limit": "10 per 5 minutes", "login_ip_limit": "3 per 5 minutes"}
    )
    with built_app(database_url, tmp_path / "i", **limits) as app:
        user = make_user(app, "report_l1")
        client = app.test_client()
        names = [user.username] * 3 if full == "address_user" else ["x1", "x2", user.username]
        assert statuses(client, NAT, [(n, WRONG) for n in names]) == [401] * 3
        verified = spy_password_checks(monkeypatch)
        answers = [
            login(app.test_client(), NAT, user.username, password)
            for password in (WRONG, user.password, WRONG, user.password)
        ]
        assert verified == []  # the password was not looked at: no timing difference either
        assert_identical_429(answers)
        with app.app_context():
            assert (
                uow.session()
                .execute(select(func.count()).select_from(AuditEvent).where(AuditEvent.event_type == "login_success"))
                .scalar_one()
                == 0
            )


# --- the applicant's registration-status check shares the login counters --------------------------


def check_status(client: FlaskClient, ip: str, username: str, password: str) -> Any:
    return client.post(
        "/api/registrations/status",
        json={"username": username, "password": password},
        environ_base={"REMOTE_ADDR": ip},
    )


def test_auth04_one_applicant_behind_nat_does_not_lock_out_the_status_check(database_url, tmp_path):  # type: ignore[no-untyped-def]
    """Shipped defaults: the status check had its own 30 failures per address, then 429 for every applicant."""
    with built_app(database_url, tmp_path / "i", **DEFAULTS) as app:
        typist, colleague = (make_user(app, review_status="pending") for _ in range(2))
        client = app.test_client()
        got = [check_status(client, NAT, typist.username, WRONG).status_code for _ in range(40)]
        assert got == [401] * 5 + [423] * 5 + [429] * 30
        r = check_status(app.test_client(), NAT, colleague.username, colleague.password)
        assert r.status_code == 200, r.get_json()
        assert r.get_json()["review_status"] == "pending"


@pytest.mark.parametrize("full", ["address_user", "address"])
def test_auth04_registration_status_shares_the_login_counters_and_the_identical_429(  # type: ignore[no-untyped-def]
    database_url, tmp_path, monkeypatch, full
):
    """The status check verifies a password too: one allowance with login, not a second one for a sprayer."""
    limits = (
        {"login_user_ip_limit": "3 per 5 minutes", "login_ip_limit": "100 per 5 minutes"}
        if full == "address_user"
        else {"login_user_ip_limit": "10 per 5 minutes", "login_ip_limit": "3 per 5 minutes"}
    )
    with built_app(database_url, tmp_path / "i", **limits) as app:
        applicant = make_user(app, review_status="pending")
        names = [applicant.username] * 3 if full == "address_user" else ["x1", "x2", applicant.username]
        client = app.test_client()
        # Failures through either route fill the same counters.
        got = [
            login(client, NAT, names[0], WRONG).status_code,
            check_status(client, NAT, names[1], WRONG).status_code,
            login(client, NAT, names[2], WRONG).status_code,
        ]
        assert got == [401] * 3
        verified = spy_password_checks(monkeypatch)
        answers = [
            check_status(app.test_client(), NAT, applicant.username, password)
            for password in (WRONG, applicant.password, WRONG, applicant.password)
        ]
        answers.append(login(app.test_client(), NAT, applicant.username, applicant.password))
        assert verified == []  # the password was not looked at
        assert_identical_429(answers)  # the status check's 429 is login's, whatever the password
        # Another address is not held (3 failures are fewer than the account lockout's 5).
        r = check_status(app.test_client(), "198.51.100.21", applicant.username, applicant.password)
        assert r.status_code == 200
        assert r.get_json()["review_status"] == "pending"
        assert len(verified) == 1


# --- the second factor (TOTP) step ----------------------------------------------------------------


def wrong_code(secret: str) -> str:
    """A six-digit code valid for none of the accepted steps (the tests freeze the clock)."""
    totp = pyotp.TOTP(secret)
    now = datetime.now(UTC).timestamp()
    valid = {totp.at(now + off) for off in (-30, 0, 30)}
    return next(f"{c:06d}" for c in range(1_000_000) if f"{c:06d}" not in valid)


def mfa_pending(app: Flask, ip: str, user: Any) -> tuple[FlaskClient, str]:
    """A client whose password login succeeded from `ip` and now waits for its second factor; and its CSRF token."""
    client = app.test_client()
    r = login(client, ip, user.username, user.password)
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["state"] == "mfa_required"
    return client, r.get_json()["csrf_token"]


def submit_code(client: FlaskClient, ip: str, csrf: str, code: str) -> Any:
    return client.post(
        "/api/auth/mfa", json={"code": code}, headers={"X-CSRF-Token": csrf}, environ_base={"REMOTE_ADDR": ip}
    )


def test_auth04_failed_totp_codes_are_throttled_per_address_and_user_not_per_hospital(  # type: ignore[no-untyped-def]
    database_url, tmp_path, monkeypatch
):
    """AUTH-04: per-address throttling applies to the 2FA step; below the account lockout (5) to show it is not it."""
    with built_app(
        database_url, tmp_path / "i", login_user_ip_limit="3 per 5 minutes", login_ip_limit="100 per 5 minutes"
    ) as app:
        typist, colleague = make_user(app, "sec_admin"), make_user(app, "sec_admin")
        assert typist.totp_secret
        assert colleague.totp_secret
        with time_machine.travel(datetime.now(UTC), tick=False):
            client, csrf = mfa_pending(app, NAT, typist)
            bad, good = wrong_code(typist.totp_secret), pyotp.TOTP(typist.totp_secret).now()
            assert [submit_code(client, NAT, csrf, bad).status_code for _ in range(3)] == [401] * 3
            checked: list[float] = []
            real_at = pyotp.TOTP.at

            def spy(self: pyotp.TOTP, for_time: Any, *args: Any) -> str:
                checked.append(for_time)
                return real_at(self, for_time, *args)

            monkeypatch.setattr(pyotp.TOTP, "at", spy)
            answers = [submit_code(client, NAT, csrf, code) for code in (bad, good, bad, good)]
            # The same counters as the password: the typist's correct password from this address is held too.
            answers.append(login(app.test_client(), NAT, typist.username, typist.password))
            assert checked == []  # no code was checked: no oracle for the right code
            assert_identical_429(answers)
            monkeypatch.undo()
            # A colleague behind the same NAT address: codes checked as usual, and the right one lets him in.
            other, other_csrf = mfa_pending(app, NAT, colleague)
            assert submit_code(other, NAT, other_csrf, wrong_code(colleague.totp_secret)).status_code == 401
            r = submit_code(other, NAT, other_csrf, pyotp.TOTP(colleague.totp_secret).now())
            assert r.status_code == 200, r.get_json()
            assert r.get_json()["state"] == "active"
            # Not an account lockout: the typist completes from another address.
            elsewhere, elsewhere_csrf = mfa_pending(app, "198.51.100.21", typist)
            r = submit_code(elsewhere, "198.51.100.21", elsewhere_csrf, good)
            assert r.status_code == 200, r.get_json()
            assert r.get_json()["state"] == "active"
        assert reasons(app, "mfa_failure") == ["验证码错误"] * 4  # 3 of the typist's, 1 of the colleague's
        assert [x for x in reasons(app, "login_failure") if "同一来源地址" in (x or "")] == [
            "同一来源地址对该账号登录失败次数达到上限（3 次/5 分钟），暂停从该地址登录"
        ]


def test_auth04_failed_totp_codes_across_accounts_trip_the_address_ceiling(database_url, tmp_path):  # type: ignore[no-untyped-def]
    with built_app(
        database_url, tmp_path / "i", login_user_ip_limit="10 per 5 minutes", login_ip_limit="4 per 5 minutes"
    ) as app:
        admins = [make_user(app, "sec_admin") for _ in range(3)]
        with time_machine.travel(datetime.now(UTC), tick=False):
            pending = [mfa_pending(app, NAT, a) for a in admins]  # successful password checks do not count
            got = [
                submit_code(c, NAT, csrf, wrong_code(str(a.totp_secret))).status_code
                for a, (c, csrf) in zip(admins[:2], pending[:2], strict=True)
                for _ in range(2)
            ]
            assert got == [401] * 4
            client, csrf = pending[2]
            good = pyotp.TOTP(str(admins[2].totp_secret)).now()
            r = submit_code(client, NAT, csrf, good)
            assert r.status_code == 429
            assert r.get_json()["code"] == "rate_limited"
            # The count belongs to the address, not to the session: the same session from another address goes on.
            r = submit_code(client, "198.51.100.8", csrf, good)
            assert r.status_code == 200, r.get_json()
            assert r.get_json()["state"] == "active"
        assert reasons(app, "security_alert") == [f"来源地址 {NAT} 登录失败次数达到上限（4 次/5 分钟），该地址暂停登录"]


# --- the per-account lockout still works ----------------------------------------------------------


def test_auth04_per_account_lockout_still_works_across_addresses(database_url, tmp_path):  # type: ignore[no-untyped-def]
    with built_app(database_url, tmp_path / "i", **DEFAULTS) as app:
        user = make_user(app, "report_l1")
        t0 = datetime.now(UTC)
        with time_machine.travel(t0, tick=False):
            # Five failures spread over five addresses: no address ceiling is near, the account locks all the same.
            for i in range(5):
                assert login(app.test_client(), f"198.51.100.{30 + i}", user.username, WRONG).status_code == 401
            r = login(app.test_client(), "198.51.100.40", user.username, user.password)
            assert r.status_code == 423
            assert r.get_json()["code"] == "account_locked"
            # From one address the lockout answers until that address's (address, user) ceiling (10) is reached.
            got = statuses(app.test_client(), "198.51.100.41", [(user.username, user.password)] * 11)
            assert got == [423] * 10 + [429]
        assert audit_count(app, "login_locked") == 1
        with time_machine.travel(t0 + timedelta(minutes=31), tick=False):
            r = login(app.test_client(), "198.51.100.41", user.username, user.password)
            assert r.status_code == 200
            assert r.get_json()["state"] == "active"


# --- concurrency ----------------------------------------------------------------------------------


@pytest.mark.parametrize("same_user", [False, True])
def test_auth04_concurrent_attempts_cannot_overshoot_a_ceiling(database_url, tmp_path, same_user):  # type: ignore[no-untyped-def]
    """Each attempt reserves its unit atomically before the password check: 40 threads at once, exactly 4 checked."""
    with built_app(
        database_url, tmp_path / "i", login_user_ip_limit="4 per 5 minutes", login_ip_limit="4 per 5 minutes"
    ) as app:
        n = 40
        barrier = threading.Barrier(n)
        results: list[int] = []
        lock = threading.Lock()

        def attempt(i: int) -> None:
            client = app.test_client()
            barrier.wait()
            status = login(client, NAT, "carol" if same_user else f"nobody{i}", WRONG).status_code
            with lock:
                results.append(status)

        threads = [threading.Thread(target=attempt, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == [401] * 4 + [429] * (n - 4)
        assert password_checks(app) == 4


# --- several web processes share the counts through redis -----------------------------------------


@pytest.fixture
def redis_uri(tmp_path: Path) -> Iterator[str]:
    """A private redis-server (nothing kept on disk), so no other user of the machine's redis is touched."""
    exe = shutil.which("redis-server")
    if exe is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but redis-server is not installed")
        pytest.skip("redis-server 未安装，跳过多进程共享限流计数的测试")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(  # noqa: S603 - fixed arguments
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as c:
                    c.sendall(b"PING\r\n")
                    if c.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


WORKER = """
import json, sys
from pathlib import Path
from api.app import create_app
from tests.conftest import make_settings

spec = json.loads(sys.argv[1])
app = create_app(make_settings(spec["url"], Path(spec["instance"]), **spec["overrides"]))
client = app.test_client()
print("ready", flush=True)
sys.stdin.readline()
out = []
for ip, username, password in spec["attempts"]:
    r = client.post("/api/auth/login", json={"username": username, "password": password},
                    environ_base={"REMOTE_ADDR": ip})
    out.append(r.status_code)
print(json.dumps(out), flush=True)
"""


def run_workers(database_url: str, tmp_path: Path, overrides: dict[str, str], *attempts: list[list[str]]) -> list:
    """One web process per attempt list, each with its own app and storage connection, started together."""
    procs = []
    for i, todo in enumerate(attempts):
        spec = {"url": database_url, "instance": str(tmp_path / f"w{i}"), "overrides": overrides, "attempts": todo}
        procs.append(
            subprocess.Popen(  # noqa: S603 - this interpreter, fixed script
                [sys.executable, "-c", WORKER, json.dumps(spec)],
                cwd=REPO,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
        )
    for p in procs:
        assert p.stdout is not None
        assert p.stdout.readline().strip() == "ready"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    out = []
    for p in procs:
        stdout, _ = p.communicate(timeout=120)
        assert p.returncode == 0
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


def test_auth04_ceilings_are_shared_by_web_processes_through_redis(database_url, tmp_path, redis_uri):  # type: ignore[no-untyped-def]
    overrides = {
        "ratelimit_storage_uri": redis_uri,
        "login_user_ip_limit": "4 per 5 minutes",
        "login_ip_limit": "12 per 5 minutes",
    }
    with built_app(database_url, tmp_path / "main", **overrides) as app:
        alice, bob = make_user(app, "report_l1"), make_user(app, "report_l1")
        # Two web processes spray one address at the same time: together they get exactly the ceiling.
        spray_a = [[NAT, f"a{i}", WRONG] for i in range(10)]
        spray_b = [[NAT, f"b{i}", WRONG] for i in range(10)]
        got_a, got_b = run_workers(database_url, tmp_path, overrides, spray_a, spray_b)
        assert sorted(got_a + got_b) == [401] * 12 + [429] * 8
        assert login(app.test_client(), NAT, alice.username, alice.password).status_code == 429
        # One process fails bob from a second address; this process (a third) sees that (address, user) full.
        (got,) = run_workers(database_url, tmp_path, overrides, [["203.0.113.11", bob.username, WRONG]] * 4)
        assert got == [401] * 4
        r = login(app.test_client(), "203.0.113.11", bob.username, bob.password)
        assert r.status_code == 429
        assert login(app.test_client(), "203.0.113.11", alice.username, alice.password).status_code == 200
        assert password_checks(app) == 16


# --- configuration --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("TELERAD_LOGIN_USER_IP_LIMIT", "ten per minute"),
        ("TELERAD_LOGIN_IP_LIMIT", "0 per 5 minutes"),
        ("TELERAD_LOGIN_TRUSTED_IP_LIMIT", ""),
        ("TELERAD_LOGIN_TRUSTED_NETWORKS", "203.0.113.0/24,hospital-nat"),
    ],
)
def test_auth04_bad_throttle_settings_refuse_to_start(tmp_path, key, value):  # type: ignore[no-untyped-def]
    env = {"TELERAD_MODE": "test", "TELERAD_INSTANCE_DIR": str(tmp_path), key: value}
    with pytest.raises(config.ConfigError, match=key):
        config.load_settings(env)


def test_auth04_throttle_settings_are_read_from_the_environment(tmp_path):  # type: ignore[no-untyped-def]
    s = config.load_settings(
        {
            "TELERAD_MODE": "test",
            "TELERAD_INSTANCE_DIR": str(tmp_path),
            "TELERAD_LOGIN_USER_IP_LIMIT": "8 per 10 minutes",
            "TELERAD_LOGIN_IP_LIMIT": "60 per 5 minutes",
            "TELERAD_LOGIN_TRUSTED_NETWORKS": "203.0.113.10, 10.20.0.0/16",
            "TELERAD_LOGIN_TRUSTED_IP_LIMIT": "600 per 5 minutes",
        }
    )
    assert (s.login_user_ip_limit, s.login_ip_limit, s.login_trusted_ip_limit) == (
        "8 per 10 minutes",
        "60 per 5 minutes",
        "600 per 5 minutes",
    )
    assert s.login_trusted_networks == "203.0.113.10, 10.20.0.0/16"
    defaults = config.load_settings({"TELERAD_MODE": "test", "TELERAD_INSTANCE_DIR": str(tmp_path)})
    assert (defaults.login_user_ip_limit, defaults.login_ip_limit, defaults.login_trusted_ip_limit) == (
        "10 per 5 minutes",
        "100 per 5 minutes",
        "1000 per 5 minutes",
    )
    assert defaults.login_trusted_networks == ""
