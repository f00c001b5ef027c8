"""Role integrity across the alliance (issue 11): where each role may be held, on every grant path; member custom
roles; case migration through the visibility module; fixed built-in roles; one-domain custom roles; the central
hospital's last administrators; MFA by permission; the upgrade removing illegal grants.

REQ: AC-02, AC-03, AC-05, AC-07, AUTH-06 (SECURITY.md); ARCHITECTURE.md "Roles and who sees what".
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from engine import config, uow
from engine.accounts import demo
from engine.accounts.models import Institution, LoginThrottle, Role, RolePermission, User, UserSession
from engine.accounts.permissions import (
    ADMIN_DOMAINS,
    ADMIN_ROLE_CODES,
    ANY,
    BUILTIN_ROLES,
    BY_CODE,
    CATALOGUE,
    CENTRAL,
    central_only,
    permission_scope,
)
from engine.accounts.seed import sync_catalogue
from engine.actor import Actor
from engine.audit import AuditEvent
from engine.cases import processes
from engine.cases.models import Case
from engine.db import utcnow
from engine.errors import Forbidden, ValidationFailed
from engine.workflow import specs
from telerad import jobs
from tests.api.test_cases_flow import APPROVE, Team, complete, new_case, ok, refused
from tests.api.test_tasks_concurrency import race
from tests.conftest import TEST_SECRET
from tests.factories import (
    Session,
    anon_csrf,
    as_user,
    audit_count,
    crawl_refused,
    institution,
    make_user,
    registration_form,
    role_id,
)

CENTRAL_ONLY_ROLES = ["report_l1", "report_l2", "report_l3", "dispatcher", "qc_expert", "process_admin"]
CENTRAL_ONLY_PERMISSIONS = sorted(p.code for p in CATALOGUE if p.scope == CENTRAL)
TELERAD = Path(sys.executable).with_name("telerad")
PID = "remote_diagnosis"


def _roles_of(app: Flask, user_id: int) -> list[str]:
    with app.app_context():
        return sorted(r.code for r in uow.session().get(User, user_id).roles)


def _failures(app: Flask, event_type: str) -> int:
    with app.app_context():
        stmt = select(AuditEvent.id).where(AuditEvent.event_type == event_type, AuditEvent.outcome == "failure")
        return len(uow.session().execute(stmt).all())


def _code(r: Any) -> tuple[int, str]:
    return r.status_code, (r.get_json() or {}).get("code", "")


# --- where each role may be held (§1) ---------------------------------------------------------------------------


def test_ac03_builtin_role_scopes_follow_the_architecture_table() -> None:
    scopes = {r.code: r.scope for r in BUILTIN_ROLES}
    assert sorted(c for c, s in scopes.items() if s == CENTRAL) == sorted(CENTRAL_ONLY_ROLES)
    assert {c for c, s in scopes.items() if s == ANY} == {
        "registrar", "requester", "qc_director", "sys_admin", "sec_admin", "audit_admin"
    }  # fmt: skip
    for r in BUILTIN_ROLES:  # a declared scope never widens what the role's permissions need, except that the
        if r.code in ADMIN_ROLE_CODES:  # administrators' central-only functions are refused by the function
            assert {BY_CODE[c].domain for c in central_only(r.permissions)} <= set(ADMIN_DOMAINS), r.code
        else:
            assert permission_scope(r.permissions) in (ANY, r.scope), r.code
    assert {"task.read", "task.claim", "task.assign", "report.write", "process.deploy"} <= set(CENTRAL_ONLY_PERMISSIONS)
    assert {"dicom.routing.manage", "dicom.storage.manage"} <= set(CENTRAL_ONLY_PERMISSIONS)


@pytest.mark.parametrize("code", CENTRAL_ONLY_ROLES)
def test_ac02_member_sec_admin_cannot_grant_a_central_only_role_through_the_api(app: Flask, client: Any, code: str):
    m01 = institution(app, "M01")
    m01_sec = as_user(app, "sec_admin", institution_code="M01")
    m01_sys = as_user(app, "sys_admin", institution_code="M01")
    staff = make_user(app, "requester", institution_code="M01")
    created = ok(
        m01_sys.post("/api/users", json={"username": f"c_{code}", "full_name": "新医生", "institution_id": m01.id}), 201
    )
    form = registration_form(f"r_{code}", m01.id)
    reg = client.post("/api/registrations", data=form, headers={"X-CSRF-Token": anon_csrf(client)}).get_json()
    central = role_id(app, code)
    attempts = (
        m01_sec.put(f"/api/users/{staff.id}/roles", json={"role_ids": [central]}),  # user roles update
        m01_sec.put(f"/api/users/{staff.id}/roles", json={"role_ids": [role_id(app, "requester"), central]}),
        m01_sec.post(f"/api/accounts/reviews/{created['id']}/approve", json={"role_ids": [central]}),  # approval
        m01_sec.post(f"/api/accounts/reviews/{reg['id']}/approve", json={"role_ids": [central]}),  # registration
        as_user(app, "sec_admin").put(f"/api/users/{staff.id}/roles", json={"role_ids": [central]}),  # central too
    )
    for r in attempts:
        assert _code(r) == (400, "central_only_role"), r.get_json()
        assert "只能授予中心医院的账号" in r.get_json()["message"]
    assert _failures(app, "account_roles_changed") == len(attempts)  # each refusal is audited
    assert _roles_of(app, staff.id) == ["requester"]
    assert _roles_of(app, created["id"]) == _roles_of(app, reg["id"]) == []
    # Roles a member hospital may hold go through the same three paths.
    ok(m01_sec.put(f"/api/users/{staff.id}/roles", json={"role_ids": [role_id(app, "qc_director")]}))
    ok(m01_sec.post(f"/api/accounts/reviews/{created['id']}/approve", json={"role_ids": [role_id(app, "registrar")]}))
    ok(m01_sec.post(f"/api/accounts/reviews/{reg['id']}/approve", json={"role_ids": [role_id(app, "requester")]}))


def _cli(settings: config.Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "TELERAD_MODE": "test",
        "TELERAD_INSTANCE_DIR": str(settings.instance_dir),
        "TELERAD_DATABASE_URL": settings.database_url,
        "TELERAD_SECRET_KEY": TEST_SECRET,
    }
    return subprocess.run([str(TELERAD), *args], env=env, capture_output=True, text=True, timeout=120, check=False)


def test_ac02_cli_refuses_central_only_roles_for_a_member_account(app: Flask, settings: config.Settings) -> None:
    member = make_user(app, "requester", institution_code="M01")
    doctor = make_user(app, "report_l1")
    for code in CENTRAL_ONLY_ROLES:
        r = _cli(settings, "user", "roles", "--username", member.username, "--role", code)
        assert r.returncode == 1, r.stdout
        assert "只能授予中心医院的账号" in r.stderr
        assert "(central_only_role)" in r.stderr
        assert "Traceback" not in r.stderr
    assert _roles_of(app, member.id) == ["requester"]
    r = _cli(settings, "user", "roles", "--username", member.username, "--role", "sys_admin", "--role", "audit_admin")
    assert (r.returncode, "(separation_of_duties)" in r.stderr) == (1, True)
    r = _cli(settings, "user", "roles", "--username", member.username, "--role", "registrar", "--role", "requester")
    assert r.returncode == 0, r.stderr
    assert _roles_of(app, member.id) == ["registrar", "requester"]
    assert _cli(settings, "user", "roles", "--username", doctor.username, "--role", "report_l2").returncode == 0
    assert _roles_of(app, doctor.id) == ["report_l2"]
    # A mistyped institution no longer creates a second "central hospital" (which would see every hospital).
    r = _cli(settings, "create-admin", "--username", "m99sec", "--role", "sec_admin", "--institution", "M99")
    assert (r.returncode, "机构 M99 不存在" in r.stderr) == (1, True)
    with app.app_context():
        kinds = uow.session().execute(select(Institution.kind).where(Institution.kind == "central")).all()
        assert len(kinds) == 1


@pytest.mark.parametrize("code", CENTRAL_ONLY_ROLES)
def test_ac02_demo_seeding_refuses_a_central_only_role_at_a_member_hospital(app: Flask, monkeypatch: Any, code: str):
    bad = demo.DemoAccount("m01_wrong", "Wrong#2026tr", code, "M01", "错误授权")
    shipped = demo.DEMO_ACCOUNTS
    monkeypatch.setattr(demo, "DEMO_ACCOUNTS", (*shipped[:2], bad))
    with app.app_context():
        with pytest.raises(ValidationFailed) as exc, uow.unit_of_work():
            demo.load_demo()
        assert exc.value.code == "central_only_role"
        assert uow.session().execute(select(User.id)).first() is None  # nothing was seeded
    monkeypatch.setattr(demo, "DEMO_ACCOUNTS", shipped)  # the shipped demo accounts all pass the same rules
    with app.app_context(), uow.unit_of_work():
        assert demo.load_demo() == len(shipped)


def test_ac02_a_member_custom_role_with_a_central_only_permission_is_refused(app: Flask) -> None:
    m01 = institution(app, "M01")
    m01_sec = as_user(app, "sec_admin", institution_code="M01")
    central_sec = as_user(app, "sec_admin")
    for n, perm in enumerate(CENTRAL_ONLY_PERMISSIONS):
        body = {"code": f"m01_r{n}", "name": f"越权{n}", "permissions": [perm]}
        for sess, extra in ((m01_sec, {}), (central_sec, {"institution_id": m01.id})):
            r = sess.post("/api/roles", json=body | extra)
            assert _code(r) == (400, "central_only_permission"), (perm, r.get_json())
            assert r.get_json()["details"]["permissions"] == [perm]
    own = ok(
        m01_sec.post("/api/roles", json={"code": "m01_cases", "name": "一院申请", "permissions": ["case.read"]}), 201
    )
    assert own["scope"] == ANY
    r = m01_sec.put(f"/api/roles/{own['id']}/permissions", json={"permissions": ["menu.processes", "process.deploy"]})
    assert _code(r) == (400, "central_only_permission")
    # A global role with a central-only permission is for central staff only ...
    pool = {"code": "pool_team", "name": "抢单组", "permissions": ["menu.pool", "task.assign"]}
    glob = ok(central_sec.post("/api/roles", json=pool), 201)
    assert glob["scope"] == CENTRAL
    member = make_user(app, "requester", institution_code="M01")
    for sess in (central_sec, m01_sec):
        assert _code(sess.put(f"/api/users/{member.id}/roles", json={"role_ids": [glob["id"]]})) == (
            400,
            "central_only_role",
        )
    ok(central_sec.put(f"/api/users/{make_user(app, 'report_l1').id}/roles", json={"role_ids": [glob["id"]]}))
    # ... and a global role a member account holds cannot gain one.
    shared = ok(
        central_sec.post("/api/roles", json={"code": "readers", "name": "查阅", "permissions": ["case.read"]}), 201
    )
    ok(central_sec.put(f"/api/users/{member.id}/roles", json={"role_ids": [shared["id"]]}))
    r = central_sec.put(f"/api/roles/{shared['id']}/permissions", json={"permissions": ["case.read", "task.read"]})
    assert _code(r) == (409, "role_held_out_of_scope")
    assert central_sec.get(f"/api/roles/{shared['id']}").get_json()["permissions"] == ["case.read"]


# --- migration through the visibility module (§1) ---------------------------------------------------------------


def _v2(pa: Session) -> int:
    bpmn, _ = specs.read_files(PID)
    xml = bpmn[f"{PID}.bpmn"].replace('name="审核医生审核"', 'name="审核医生终审"')
    return int(ok(pa.post("/api/processes/deploy", json={"process_id": PID, "bpmn_xml": xml}), 201)["id"])


def _deployment(app: Flask, case_id: int) -> int:
    with app.app_context():
        return int(uow.session().get(Case, case_id).deployment_id)


def test_ac02_migrating_a_case_outside_the_scope_is_the_same_404_as_an_unknown_id(app: Flask) -> None:
    team = Team(app)
    pa = as_user(app, "process_admin")
    running, closed = new_case(team.req)["id"], new_case(team.req)["id"]
    ok(complete(team.l3, team.to_level(closed, "review_level3").id, APPROVE))
    v2 = _v2(pa)
    alerts = audit_count(app, "security_alert")
    unknown = pa.post(f"/api/processes/{v2}/migrate", json={"case_ids": [2_000_000]})
    foreign = pa.post(f"/api/processes/{v2}/migrate", json={"case_ids": [closed]})
    assert (unknown.status_code, unknown.get_data()) == (foreign.status_code, foreign.get_data())
    assert unknown.status_code == 404
    assert audit_count(app, "security_alert") == alerts + 1  # the foreign id is an alert, the unknown one not
    before = _deployment(app, running)
    refused(pa.post(f"/api/processes/{v2}/migrate", json={"case_ids": [running, closed]}), 404)
    assert _deployment(app, running) == before  # nothing moved
    assert ok(pa.post(f"/api/processes/{v2}/migrate", json={"case_ids": [running]})) == {"migrated": 1}


def test_ac03_a_member_hospital_user_is_refused_deploy_and_migrate(app: Flask) -> None:
    pa = as_user(app, "process_admin")
    v2 = _v2(pa)
    other = new_case(as_user(app, "requester", institution_code="M02"))["id"]
    # A process administrator at a member hospital (a grant the old code let through, written directly here).
    m01_pa = as_user(app, "process_admin", institution_code="M01")
    bpmn, _ = specs.read_files(PID)
    xml = bpmn[f"{PID}.bpmn"].replace('name="审核医生审核"', 'name="成员医院改流程"')
    before = _deployment(app, other)
    refused(m01_pa.post("/api/processes/deploy", json={"process_id": PID, "bpmn_xml": xml}), 403)
    for ids in ([other], [2_000_000]):
        refused(m01_pa.post(f"/api/processes/{v2}/migrate", json={"case_ids": ids}), 403)
    assert m01_pa.get("/api/processes").status_code == 403
    assert "menu.processes" not in m01_pa.get("/api/auth/me").get_json()["menus"]
    assert _deployment(app, other) == before
    with app.app_context():  # the engine refuses too, whatever the caller's permissions
        m01 = institution(app, "M01")
        actor = Actor(1, "x", m01.id, "member", "M01", frozenset({"process_admin"}), frozenset({"process.deploy"}))
        for call in (lambda: processes.migrate(actor, [other], v2), lambda: processes.deploy_edit(actor, PID, xml)):
            with pytest.raises(Forbidden) as exc:
                call()
            assert exc.value.code == "central_only"
        uow.rollback()


# --- fixed built-in roles, one-domain custom roles (§2) -----------------------------------------------------------


def test_ac05_builtin_role_permission_sets_are_fixed(app: Flask) -> None:
    sec = as_user(app, "sec_admin")
    for rd in BUILTIN_ROLES:
        rid = role_id(app, rd.code)
        for perms in (sorted(rd.permissions | {"user.manage", "role.manage", "audit.read"}), [], ["menu.home"]):
            r = sec.put(f"/api/roles/{rid}/permissions", json={"permissions": perms})
            assert _code(r) == (403, "builtin_role_fixed"), rd.code
        assert sec.get(f"/api/roles/{rid}").get_json()["permissions"] == sorted(rd.permissions)
    rid = role_id(app, "qc_director")  # enabling and disabling stay possible
    assert ok(sec.patch(f"/api/roles/{rid}", json={"enabled": False}))["enabled"] is False
    assert ok(sec.patch(f"/api/roles/{rid}", json={"enabled": True}))["enabled"] is True


def test_ac05_a_custom_role_is_built_from_one_domain(app: Flask) -> None:
    sec = as_user(app, "sec_admin")
    mixes = (
        ["case.read", "process.read"],
        ["menu.users", "user.read", "image.read"],
        ["user.read", "role.manage"],
        ["process.deploy", "dicom.node.read"],
        ["audit.read", "case.read"],
    )
    role = ok(
        sec.post("/api/roles", json={"code": "one", "name": "单类", "permissions": ["menu.home", "case.read"]}), 201
    )
    for n, perms in enumerate(mixes):
        r = sec.post("/api/roles", json={"code": f"mix{n}", "name": f"混合{n}", "permissions": perms})
        assert _code(r) == (400, "separation_of_duties"), perms
        assert _code(sec.put(f"/api/roles/{role['id']}/permissions", json={"permissions": perms})) == (
            400,
            "separation_of_duties",
        )
    assert sec.get(f"/api/roles/{role['id']}").get_json()["permissions"] == ["case.read", "menu.home"]


def test_auth06_mfa_follows_the_permissions_not_role_codes(app: Flask, client: Any) -> None:
    sec = as_user(app, "sec_admin")
    cases = {
        "role_keepers": (["menu.roles", "role.read", "role.manage"], "mfa_required"),
        "flow_viewers": (["menu.processes", "process.read"], "mfa_required"),
        "case_readers": (["menu.cases", "case.read"], "active"),
    }
    for code, (perms, state) in cases.items():
        role = ok(sec.post("/api/roles", json={"code": code, "name": code, "permissions": perms}), 201)
        user = make_user(app)
        ok(sec.put(f"/api/users/{user.id}/roles", json={"role_ids": [role["id"]]}))
        c = app.test_client()
        body = ok(c.post("/api/auth/login", json={"username": user.username, "password": user.password}))
        assert body["state"] == state, code
        if state == "mfa_required":
            assert c.get("/api/roles" if code == "role_keepers" else "/api/processes").status_code == 403
            assert set(crawl_refused(app, c, body["csrf_token"], "mfa_required").values()) == {(403, "mfa_required")}


# --- the central hospital's last administrators (§2) --------------------------------------------------------------


def _last_admin(r: Any, perm: str) -> None:
    body = r.get_json()
    assert (r.status_code, body["code"], body["details"]["permissions"]) == (409, "last_admin", [perm]), body
    assert "中心医院" in body["message"]


def test_ac05_the_last_holder_of_each_admin_permission_cannot_be_removed(app: Flask) -> None:
    sec, sysadmin = as_user(app, "sec_admin"), as_user(app, "sys_admin")
    auditor = make_user(app, "audit_admin")
    make_user(app, "sec_admin", institution_code="M01")  # a member hospital's holder does not count
    for code, perm in (("sec_admin", "role.manage"), ("sys_admin", "user.manage"), ("audit_admin", "audit.read")):
        _last_admin(sec.patch(f"/api/roles/{role_id(app, code)}", json={"enabled": False}), perm)  # role disable
    _last_admin(sysadmin.patch(f"/api/users/{auditor.id}", json={"enabled": False}), "audit.read")  # user disable
    _last_admin(sysadmin.patch(f"/api/users/{sec.user.id}", json={"enabled": False}), "role.manage")
    _last_admin(sec.put(f"/api/users/{auditor.id}/roles", json={"role_ids": []}), "audit.read")  # role removal
    _last_admin(sec.put(f"/api/users/{sysadmin.user.id}/roles", json={"role_ids": []}), "user.manage")
    # A second holder of audit.read lets the auditor go; then that custom role is the last way (permission edit).
    team = ok(sec.post("/api/roles", json={"code": "aud_team", "name": "审计组", "permissions": ["audit.read"]}), 201)
    ok(sec.put(f"/api/users/{make_user(app).id}/roles", json={"role_ids": [team["id"]]}))
    ok(sysadmin.patch(f"/api/users/{auditor.id}", json={"enabled": False}))
    _last_admin(sec.put(f"/api/roles/{team['id']}/permissions", json={"permissions": ["menu.audit"]}), "audit.read")
    _last_admin(sec.patch(f"/api/roles/{team['id']}", json={"enabled": False}), "audit.read")
    # A locked second holder does not count; unlocked, it does.
    sec2 = make_user(app, "sec_admin")
    with app.app_context():
        uow.session().add(
            LoginThrottle(username_norm=sec2.username, failures=0, locked_until=utcnow() + timedelta(minutes=30))
        )
        uow.commit()
    _last_admin(sysadmin.patch(f"/api/users/{sec.user.id}", json={"enabled": False}), "role.manage")
    assert sec.post(f"/api/users/{sec2.id}/unlock").status_code == 204
    ok(sysadmin.patch(f"/api/users/{sec.user.id}", json={"enabled": False}))
    with app.app_context():
        assert all(uow.session().execute(select(Role.enabled).where(Role.builtin.is_(True))).scalars())


def test_ac05_two_admins_disabling_the_last_two_holders_at_once_leave_one(app: Flask) -> None:
    first, second = make_user(app, "sec_admin"), make_user(app, "sec_admin")
    a1, a2 = as_user(app, "sys_admin"), as_user(app, "sys_admin")
    target = {a1.user.id: first.id, a2.user.id: second.id}
    results = race([a1, a2], lambda s: s.patch(f"/api/users/{target[s.user.id]}", json={"enabled": False}))
    assert sorted(results) == [(200, ""), (409, "last_admin")]
    with app.app_context():
        enabled = [uow.session().get(User, uid).enabled for uid in (first.id, second.id)]
    assert sorted(enabled) == [False, True]


def test_ac07_the_inactivity_job_spares_the_last_holders_with_an_alert(app: Flask, client: Any) -> None:
    sec, older_sec = make_user(app, "sec_admin"), make_user(app, "sec_admin")
    sysadmin, auditor = make_user(app, "sys_admin"), make_user(app, "audit_admin")
    doctor, m01_sec = make_user(app, "report_l1"), make_user(app, "sec_admin", institution_code="M01")
    everyone = (sec, older_sec, sysadmin, auditor, doctor, m01_sec)
    with app.app_context():
        rows = [uow.session().get(User, u.id) for u in everyone]
        for row in rows:
            row.last_active_at = utcnow() - timedelta(days=120 if row.id == older_sec.id else 100)
        uow.commit()
        with uow.unit_of_work():
            assert jobs.disable_inactive() == 3
        enabled = {u.username: uow.session().get(User, u.id).enabled for u in everyone}
        stmt = select(AuditEvent.object_id, AuditEvent.reason).where(AuditEvent.event_type == "security_alert")
        alerts = dict(uow.session().execute(stmt).tuples().all())
    assert enabled == {
        sec.username: True, older_sec.username: False, sysadmin.username: True, auditor.username: True,
        doctor.username: False, m01_sec.username: False,
    }  # fmt: skip
    assert set(alerts) == {str(sec.id), str(sysadmin.id), str(auditor.id)}
    assert all("最后一个" in r and "90 天" in r for r in alerts.values())
    with app.app_context(), uow.unit_of_work():
        assert jobs.disable_inactive() == 0
    assert audit_count(app, "security_alert") == 3  # once a day, not once an hour
    # The kept holder can still log in (the login-time inactivity rule spares it too); others cannot.
    assert ok(client.post("/api/auth/login", json={"username": sysadmin.username, "password": sysadmin.password}))
    r = app.test_client().post("/api/auth/login", json={"username": doctor.username, "password": doctor.password})
    assert _code(r) == (401, "account_disabled")


# --- the upgrade (catalogue sync) removes illegal grants (§1) -------------------------------------------------------


def test_ac02_upgrade_sync_removes_illegal_grants_and_audits_each(app: Flask) -> None:
    doctor = make_user(app, "requester", "report_l1", institution_code="M01")
    m02_pa = make_user(app, "process_admin", institution_code="M02")
    m02_reader = make_user(app, "requester", institution_code="M02")
    central = make_user(app, "report_l1")
    with app.app_context():
        s = uow.session()
        m01 = s.execute(select(Institution).where(Institution.code == "M01")).unique().scalar_one()
        own = Role(code="m01_pool", name="一院抢单", institution_id=m01.id, builtin=False, enabled=True)
        own.permissions = [RolePermission(permission_code=c) for c in ("case.read", "menu.cases", "task.assign")]
        glob = Role(code="night", name="夜班读片", builtin=False, enabled=True)
        glob.permissions = [RolePermission(permission_code=c) for c in ("menu.tasks", "task.read")]
        registrar = (
            s.execute(select(Role).where(Role.code == "registrar", Role.builtin.is_(True))).unique().scalar_one()
        )
        registrar.permissions.append(RolePermission(permission_code="user.manage"))  # a hollowed-out built-in role
        s.add_all([own, glob])
        holders = [(s.get(User, doctor.id), own), (s.get(User, m02_reader.id), glob)]
        for user, role in holders:
            user.roles.append(role)
        uow.commit()
    session = Session(app.test_client(), doctor)
    with app.app_context():
        with uow.unit_of_work():
            sync_catalogue()
        stmt = select(AuditEvent.event_type, AuditEvent.object_id, AuditEvent.details).where(
            AuditEvent.username == "upgrade"
        )
        events = uow.session().execute(stmt.order_by(AuditEvent.id)).tuples().all()
        perms = {r.code: r.permission_codes for r in uow.session().execute(select(Role)).unique().scalars()}
    assert _roles_of(app, doctor.id) == ["m01_pool", "requester"]
    assert (_roles_of(app, m02_pa.id), _roles_of(app, m02_reader.id)) == ([], ["requester"])
    assert _roles_of(app, central.id) == ["report_l1"]
    assert perms["m01_pool"] == ["case.read", "menu.cases"]
    assert perms["registrar"] == sorted(next(r.permissions for r in BUILTIN_ROLES if r.code == "registrar"))
    removed = {(oid, d["removed"]) for t, oid, d in events if t == "account_roles_changed"}
    assert removed == {(str(doctor.id), "report_l1"), (str(m02_pa.id), "process_admin"), (str(m02_reader.id), "night")}
    assert sorted(d["removed"] for t, _, d in events if t == "role_permissions_changed") == [
        ["task.assign"],
        ["user.manage"],
    ]
    assert session.get("/api/auth/me").status_code == 401  # the holder's session ended
    with app.app_context():
        with uow.unit_of_work():
            sync_catalogue()  # idempotent: nothing more to remove, nothing more audited
        again = uow.session().execute(select(AuditEvent.id).where(AuditEvent.username == "upgrade")).all()
        assert len(again) == len(events)
        assert uow.session().execute(select(UserSession.id).where(UserSession.user_id == doctor.id)).first() is None
