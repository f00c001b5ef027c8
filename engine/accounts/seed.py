"""Idempotent seeding of the permission catalogue and built-in roles, and the demo data set."""

from __future__ import annotations

from sqlalchemy import select

from engine import uow
from engine.accounts.models import Department, Institution, Permission, Role, RolePermission
from engine.accounts.permissions import BUILTIN_ROLES, CATALOGUE


def sync_catalogue() -> None:
    """Bring the permission table and the built-in roles in line with the code (run at start-up)."""
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
        elif rd.code in ("sys_admin", "sec_admin", "audit_admin"):
            # The three administrators' grants are fixed by code (三权分立); others may be re-granted in the UI.
            if set(role.permission_codes) != set(rd.permissions):
                role.permissions = [RolePermission(permission_code=c) for c in sorted(rd.permissions)]
        else:
            # Other built-in roles gain the defaults a new release adds; grants an admin added stay.
            missing = set(rd.permissions) - set(role.permission_codes)
            role.permissions += [RolePermission(permission_code=c) for c in sorted(missing)]
    s.flush()


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
