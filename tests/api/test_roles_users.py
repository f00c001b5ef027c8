"""Roles and users administration: role CRUD and search, enable/disable, grants, per-institution roles, user list
paging and account actions (REQ: ACCT-01, ACCT-02, ACCT-05, SESS-04, WEB-06)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pyotp
from sqlalchemy import func, select

from engine import uow
from engine.accounts import auth
from engine.accounts.models import Institution, Role, User
from engine.audit import AuditEvent
from engine.db import utcnow
from tests import factories
from tests.factories import Session, as_user, institution, make_user, role_id


def _create_role(admin: Session, code: str, name: str, permissions: list[str], **extra: Any) -> dict[str, Any]:
    r = admin.post("/api/roles", json={"code": code, "name": name, "permissions": permissions, **extra})
    assert r.status_code == 201, r.get_json()
    return dict(r.get_json())


def _with_totp(app: Any, user: factories.TestUser) -> factories.TestUser:
    """Give an account a TOTP secret: its roles now give an administrator permission, and a second factor follows
    the permissions (AUTH-06, issue 11)."""
    secret = pyotp.random_base32()
    with app.app_context():
        row = uow.session().get(User, user.id)
        row.totp_secret_enc, row.totp_enabled = auth.cipher().encrypt_str(secret), True
        uow.commit()
    return dataclasses.replace(user, totp_secret=secret)


def _mfa_session(app: Any, user: factories.TestUser) -> Session:
    """Log in with TOTP again: the last used step is cleared so a login in the same 30 s is not a replay."""
    with app.app_context():
        uow.session().get(User, user.id).totp_last_step = None
        uow.commit()
    return Session(app.test_client(), user)


def _role_names(admin: Session, **params: Any) -> list[str]:
    r = admin.get("/api/roles", query_string=params)
    assert r.status_code == 200
    return [x["name"] for x in r.get_json()]


def _events(app: Any, event_type: str, object_id: object) -> int:
    with app.app_context():
        stmt = select(func.count(AuditEvent.id)).where(
            AuditEvent.event_type == event_type, AuditEvent.object_id == str(object_id)
        )
        return int(uow.session().execute(stmt).scalar_one())


def test_acct02_role_crud_search_and_status_filter(app):  # type: ignore[no-untyped-def]
    sec = as_user(app, "sec_admin")
    role = _create_role(sec, "ct_reader", "CT阅片组", ["menu.home"], description="负责 CT 阅片")
    assert (role["builtin"], role["enabled"], role["institution"], role["user_count"]) == (False, True, None, 0)
    assert _role_names(sec, q="CT阅片") == ["CT阅片组"]
    assert _role_names(sec, q="不存在的角色") == []
    assert "审核医生" in _role_names(sec, q="审核")
    assert sec.get(f"/api/roles/{role['id']}").get_json()["description"] == "负责 CT 阅片"

    r = sec.post("/api/roles", json={"code": "ct_reader", "name": "重复编码"})
    assert r.status_code == 409
    assert r.get_json()["code"] == "role_code_taken"
    r = sec.post("/api/roles", json={"code": "Bad Code!", "name": "格式错误"})
    assert r.status_code == 400

    r = sec.patch(f"/api/roles/{role['id']}", json={"name": "CT/MR 阅片组", "enabled": False})
    assert r.status_code == 200
    assert (r.get_json()["name"], r.get_json()["enabled"]) == ("CT/MR 阅片组", False)
    assert _role_names(sec, q="CT阅片") == []
    assert _role_names(sec, enabled="false") == ["CT/MR 阅片组"]
    assert "CT/MR 阅片组" not in _role_names(sec, enabled="true")

    assert sec.delete(f"/api/roles/{role['id']}").status_code == 204
    assert sec.get(f"/api/roles/{role['id']}").status_code == 404
    for event in ("role_created", "role_updated", "role_deleted"):
        assert _events(app, event, role["id"]) == 1


def test_acct02_disabling_a_role_ends_holder_sessions_and_drops_its_permissions(app):  # type: ignore[no-untyped-def]
    sec = as_user(app, "sec_admin")
    role = _create_role(sec, "user_viewer", "用户查看", ["menu.users", "user.read"])
    holder = make_user(app, "report_l1", institution_code="CENTRAL")
    r = sec.put(f"/api/users/{holder.id}/roles", json={"role_ids": [role_id(app, "report_l1"), role["id"]]})
    assert r.status_code == 200, r.get_json()

    holder = _with_totp(app, holder)  # user.read is an administrator permission: MFA follows it (issue 11)
    session = _mfa_session(app, holder)
    me = session.get("/api/auth/me").get_json()
    assert {"user.read", "menu.users"} <= set(me["permissions"])
    assert "menu.users" in me["menus"]
    assert session.get("/api/users").status_code == 200

    assert sec.patch(f"/api/roles/{role['id']}", json={"enabled": False}).status_code == 200
    assert session.get("/api/auth/me").status_code == 401  # SESS-04: the holder's session ended

    session = _mfa_session(app, holder)
    me = session.get("/api/auth/me").get_json()
    assert [r["code"] for r in me["roles"]] == ["report_l1"]
    assert "user.read" not in me["permissions"]
    assert "menu.users" not in me["menus"]
    assert session.get("/api/users").status_code == 403

    assert sec.patch(f"/api/roles/{role['id']}", json={"enabled": True}).status_code == 200
    assert session.get("/api/auth/me").status_code == 401
    session = _mfa_session(app, holder)
    assert "menu.users" in session.get("/api/auth/me").get_json()["menus"]


def test_acct02_granting_permissions_changes_holder_menus_after_relogin(app):  # type: ignore[no-untyped-def]
    sec = as_user(app, "sec_admin")
    role = _create_role(sec, "qc_team", "质控小组", ["menu.home"])
    holder = make_user(app, "qc_expert")
    assert sec.put(f"/api/users/{holder.id}/roles", json={"role_ids": [role["id"]]}).status_code == 200
    session = Session(app.test_client(), holder)
    assert session.get("/api/auth/me").get_json()["menus"] == ["menu.home", "menu.profile"]
    assert session.get("/api/audit/events").status_code == 403

    r = sec.put(f"/api/roles/{role['id']}/permissions", json={"permissions": ["menu.audit", "audit.read"]})
    assert r.status_code == 200
    assert r.get_json()["permissions"] == ["audit.read", "menu.audit"]
    assert _events(app, "role_permissions_changed", role["id"]) == 1
    assert session.get("/api/auth/me").status_code == 401

    holder = _with_totp(app, holder)  # audit.read now needs a second factor (AUTH-06 by permission)
    session = _mfa_session(app, holder)
    me = session.get("/api/auth/me").get_json()
    assert me["menus"] == ["menu.home", "menu.profile", "menu.audit"]
    assert session.get("/api/audit/events").status_code == 200

    r = sec.put(f"/api/roles/{role['id']}/permissions", json={"permissions": ["menu.nonexistent"]})
    assert r.status_code == 400
    assert r.get_json()["code"] == "unknown_permission"
    for builtin in ("sec_admin", "registrar"):  # built-in roles' permission sets are fixed (issue 11)
        r = sec.put(f"/api/roles/{role_id(app, builtin)}/permissions", json={"permissions": ["menu.home"]})
        assert (r.status_code, r.get_json()["code"]) == (403, "builtin_role_fixed")


def test_acct01_roles_are_bound_to_the_creating_institution(app):  # type: ignore[no-untyped-def]
    m01_sec = as_user(app, "sec_admin", institution_code="M01")
    m02_sec = as_user(app, "sec_admin", institution_code="M02")
    central_sec = as_user(app, "sec_admin")
    role = _create_role(m01_sec, "m01_reader", "一院阅片", ["menu.home"])
    assert role["institution"]["code"] == "M01"

    assert m02_sec.get(f"/api/roles/{role['id']}").status_code == 404
    assert m02_sec.patch(f"/api/roles/{role['id']}", json={"name": "抢占"}).status_code == 404
    assert "一院阅片" not in _role_names(m02_sec)
    assert "一院阅片" in _role_names(m01_sec)
    assert central_sec.get(f"/api/roles/{role['id']}").status_code == 200

    m02 = institution(app, "M02")
    r = m01_sec.post("/api/roles", json={"code": "foreign", "name": "别院角色", "institution_id": m02.id})
    assert r.status_code == 404
    r = m01_sec.patch(f"/api/roles/{role_id(app, 'report_l1')}", json={"name": "改内置"})
    assert r.status_code == 403
    assert r.get_json()["code"] == "role_readonly"

    central_user = make_user(app, "report_l1")
    r = central_sec.put(f"/api/users/{central_user.id}/roles", json={"role_ids": [role["id"]]})
    assert r.status_code == 400
    assert r.get_json()["code"] == "role_out_of_scope"
    m01_user = make_user(app, "report_l1", institution_code="M01")
    r = m01_sec.put(f"/api/users/{m01_user.id}/roles", json={"role_ids": [role["id"]]})
    assert r.status_code == 200
    assert [x["code"] for x in r.get_json()["roles"]] == ["m01_reader"]


def test_acct02_builtin_and_in_use_roles_cannot_be_deleted(app):  # type: ignore[no-untyped-def]
    sec = as_user(app, "sec_admin")
    for code in ("report_l1", "sys_admin"):
        r = sec.delete(f"/api/roles/{role_id(app, code)}")
        assert r.status_code == 403
        assert r.get_json()["code"] == "builtin_role"
    role = _create_role(sec, "night_shift", "夜班组", ["menu.home"])
    holder = make_user(app, "report_l2")
    sec.put(f"/api/users/{holder.id}/roles", json={"role_ids": [role["id"], role_id(app, "report_l2")]})
    r = sec.delete(f"/api/roles/{role['id']}")
    assert r.status_code == 409
    assert r.get_json()["code"] == "role_in_use"
    assert sec.get(f"/api/roles/{role['id']}").get_json()["user_count"] == 1
    assert sec.put(f"/api/users/{holder.id}/roles", json={"role_ids": [role_id(app, "report_l2")]}).status_code == 200
    assert sec.delete(f"/api/roles/{role['id']}").status_code == 204
    with app.app_context():
        assert uow.session().execute(select(func.count(Role.id)).where(Role.builtin.is_(True))).scalar_one() == 12


def _bulk_users(app: Any, code: str, n: int) -> None:
    with app.app_context():
        s = uow.session()
        inst_id = s.execute(select(Institution.id).where(Institution.code == code)).scalar_one()
        for i in range(n):
            name = f"bulk{code.lower()}{i:03d}"
            s.add(
                User(
                    username=name,
                    username_norm=name,
                    full_name=f"批量{i:03d}",
                    institution_id=inst_id,
                    password_hash="!",
                    review_status="approved",
                    enabled=i % 10 != 0,
                    last_active_at=utcnow(),
                )
            )
        uow.commit()


def test_acct05_users_list_search_filter_and_web06_page_cap(app):  # type: ignore[no-untyped-def]
    _bulk_users(app, "M03", 105)
    sysadmin = as_user(app, "sys_admin")
    m03 = institution(app, "M03")

    r = sysadmin.get("/api/users", query_string={"page_size": 1000000, "institution_id": m03.id})
    body = r.get_json()
    assert (body["page_size"], len(body["items"]), body["total"]) == (100, 100, 105)
    page2 = sysadmin.get("/api/users", query_string={"page_size": 100, "page": 2, "institution_id": m03.id}).get_json()
    assert len(page2["items"]) == 5
    assert not {u["id"] for u in body["items"]} & {u["id"] for u in page2["items"]}
    assert sysadmin.get("/api/users", query_string={"page": -3, "page_size": -1}).get_json()["page"] == 1

    found = sysadmin.get("/api/users", query_string={"q": "批量042"}).get_json()
    assert [u["username"] for u in found["items"]] == ["bulkm03042"]
    disabled = sysadmin.get("/api/users", query_string={"enabled": "false", "institution_id": m03.id}).get_json()
    assert disabled["total"] == 11
    assert all(u["enabled"] is False and u["institution"]["code"] == "M03" for u in disabled["items"])
    r = sysadmin.get("/api/users", query_string={"sort": "password_hash"})
    assert r.status_code == 400


def _login(client: Any, username: str, password: str) -> Any:
    return client.post("/api/auth/login", json={"username": username, "password": password})


def test_acct05_disable_enable_unlock_and_reset_password(app, client):  # type: ignore[no-untyped-def]
    sysadmin = as_user(app, "sys_admin")
    sec = as_user(app, "sec_admin")
    user = make_user(app, "report_l1", institution_code="M01")
    session = Session(app.test_client(), user)

    r = sysadmin.patch(f"/api/users/{user.id}", json={"enabled": False})
    assert r.status_code == 200
    assert r.get_json()["enabled"] is False
    assert session.get("/api/auth/me").status_code == 401
    r = _login(client, user.username, user.password)
    assert r.status_code == 401
    assert r.get_json()["code"] == "account_disabled"
    r = sysadmin.patch(f"/api/users/{sysadmin.user.id}", json={"enabled": False})
    assert r.status_code == 403
    assert r.get_json()["code"] == "self_disable"
    assert sysadmin.patch(f"/api/users/{user.id}", json={"enabled": True}).status_code == 200
    assert _login(client, user.username, user.password).status_code == 200

    for _ in range(5):
        assert _login(client, user.username, "Wrong#Pass2026").status_code == 401
    r = _login(client, user.username, user.password)
    assert r.status_code == 423
    assert sec.get(f"/api/users/{user.id}").get_json()["locked"] is True
    assert sysadmin.post(f"/api/users/{user.id}/unlock").status_code == 403  # unlocking is the 安全管理员's
    assert sec.post(f"/api/users/{user.id}/unlock").status_code == 204
    assert sec.get(f"/api/users/{user.id}").get_json()["locked"] is False
    assert _events(app, "account_unlocked", user.id) == 1
    session = Session(app.test_client(), user)

    assert sysadmin.post(f"/api/users/{user.id}/reset-password").status_code == 403
    r = sec.post(f"/api/users/{sec.user.id}/reset-password")
    assert r.status_code == 403
    assert r.get_json()["code"] == "self_reset"
    r = sec.post(f"/api/users/{user.id}/reset-password")
    assert r.status_code == 200
    temporary = r.get_json()["temporary_password"]
    assert session.get("/api/auth/me").status_code == 401
    assert _login(client, user.username, user.password).status_code == 401
    r = _login(client, user.username, temporary)
    assert r.status_code == 200
    assert (r.get_json()["state"], r.get_json()["reason"]) == ("password_change_required", "admin_reset")
    assert _events(app, "password_reset", user.id) == 1
