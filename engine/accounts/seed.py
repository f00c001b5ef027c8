"""Idempotent seeding of the permission catalogue and built-in roles, and the demo data set."""

from __future__ import annotations

from sqlalchemy import delete, select

from engine import audit, uow
from engine.accounts import integrity
from engine.accounts.models import (
    Department,
    Institution,
    Permission,
    Role,
    RolePermission,
    UserSession,
    user_role,
)
from engine.accounts.permissions import BUILTIN_ROLES, CATALOGUE
from engine.actor import Actor


def sync_catalogue() -> None:
    """Bring the permission table and the built-in roles in line with the code (run at start-up and upgrade).

    Built-in roles' permission sets are fixed by code (issue 11): what an administrator added or removed earlier is
    put back, and grants that break where a role may be held are removed (engine/accounts/integrity.py); each
    change is audited."""
    s = uow.session()
    existing = {p.code: p for p in s.execute(select(Permission)).scalars()}
    for i, d in enumerate(CATALOGUE):
        row = existing.pop(d.code, None) or Permission(code=d.code)
        row.name, row.kind, row.parent_code, row.domain, row.sort = d.name, d.kind, d.parent, d.domain, i
        s.add(row)
    for stale in existing.values():
        s.delete(stale)
    s.flush()
    roles = {r.code: r for r in s.execute(select(Role).where(Role.builtin.is_(True))).unique().scalars()}
    for rd in BUILTIN_ROLES:
        role = roles.get(rd.code)
        if role is None:
            role = Role(code=rd.code, name=rd.name, description=rd.description, builtin=True, enabled=True)
            role.permissions = [RolePermission(permission_code=c) for c in sorted(rd.permissions)]
            s.add(role)
            continue
        before = set(role.permission_codes)
        if before != set(rd.permissions):
            role.permissions = [RolePermission(permission_code=c) for c in sorted(rd.permissions)]
            s.flush()
            for uid in s.execute(select(user_role.c.user_id).where(user_role.c.role_id == role.id)).scalars():
                s.execute(delete(UserSession).where(UserSession.user_id == uid))
            audit.record(
                Actor.system("upgrade"),
                "role_permissions_changed",
                object_type="role",
                object_id=role.id,
                reason="内置角色的权限由系统固定，升级时按当前版本设置",
                details={"added": sorted(rd.permissions - before), "removed": sorted(before - rd.permissions)},
            )
    s.flush()
    integrity.enforce_scopes()


# The buyer's alliance: one central hospital and five member hospitals (REQUIREMENTS.md context).
DEMO_INSTITUTIONS = (
    ("CENTRAL", "医联体中心医院", "central"),
    ("M01", "第一成员医院", "member"),
    ("M02", "第二成员医院", "member"),
    ("M03", "第三成员医院", "member"),
    ("M04", "第四成员医院", "member"),
    ("M05", "第五成员医院", "member"),
)
DEMO_DEPARTMENTS = {
    "central": (("RAD", "放射科"), ("US", "超声科"), ("INFO", "信息科")),
    "member": (("RAD", "放射科"), ("OPD", "门诊部"), ("INFO", "信息科")),
}


def ensure_institutions() -> dict[str, Institution]:
    s = uow.session()
    by_code = {i.code: i for i in s.execute(select(Institution)).unique().scalars()}
    central = by_code.get("CENTRAL")
    for code, name, kind in DEMO_INSTITUTIONS:
        if code in by_code:
            continue
        inst = Institution(
            code=code, name=name, kind=kind, parent_id=central.id if central and kind == "member" else None
        )
        s.add(inst)
        s.flush()
        if kind == "central":
            central = inst
        for dcode, dname in DEMO_DEPARTMENTS[kind]:
            s.add(Department(institution_id=inst.id, code=dcode, name=dname))
        by_code[code] = inst
    s.flush()
    return by_code
