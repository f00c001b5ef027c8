"""Role integrity across the alliance (issue 11; REQ: AC-02, AC-03, AC-05, AC-07, AUTH-06).

- Where a role may be held: a grant outside a role's scope is refused on every path (user roles, approval,
  CLI, demo), and existing ones are removed at upgrade (`enforce_scopes`, called by the catalogue sync).
- Custom roles are built from one domain only and within the scope rules (`check_custom_permissions`).
- The central hospital always keeps an enabled, unlocked account holding each of role.manage, user.manage and
  audit.read: changes that would lose one are refused (`keeping_admin_coverage`), and the inactivity rule spares
  such last holders with a security alert instead (`spare_inactive`, `spared_at_login`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, exists, func, or_, select, text

from engine import audit, uow
from engine.accounts.models import Institution, LoginThrottle, Role, RolePermission, User, UserSession, user_role
from engine.accounts.permissions import (
    BY_CODE,
    CENTRAL,
    MEMBER,
    PROTECTED_PERMISSIONS,
    central_only,
    custom_role_domains,
    mixes_admin_domains,
    permission_scope,
    role_scope,
    scope_allows,
)
from engine.actor import Actor
from engine.audit import AuditEvent
from engine.db import utcnow
from engine.errors import Conflict, ValidationFailed

KIND_NAMES = {CENTRAL: "中心医院", MEMBER: "成员医院"}


def scope_of(role: Role) -> str | None:
    return role_scope(role.code, role.builtin, set(role.permission_codes))


def _names(codes: Iterable[str]) -> str:
    return "、".join(BY_CODE[c].name for c in codes if c in BY_CODE)


def scope_error(role: Role, user: User) -> ValidationFailed | None:
    """The refusal of granting `role` to `user`, or None when the role may be held at the user's institution."""
    scope = scope_of(role)
    kind = user.institution.kind
    if scope_allows(scope, kind):
        return None
    details = {"role": role.code, "institution_kind": kind}
    if scope is None:
        return ValidationFailed(
            "role_unassignable", f"角色“{role.name}”同时包含只限中心医院和只限成员医院的权限", details
        )
    return ValidationFailed(
        f"{scope}_only_role",
        f"角色“{role.name}”只能授予{KIND_NAMES[scope]}的账号，“{user.institution.name}”不能持有",
        details,
    )


def check_grant(actor: Actor, user: User, roles: Iterable[Role]) -> None:
    """Refuse (400, audited) a grant of a role outside where it may be held (REQ: AC-02, AC-03)."""
    for role in roles:
        err = scope_error(role, user)
        if err is not None:
            audit.record(
                actor,
                "account_roles_changed",
                outcome="failure",
                object_type="user",
                object_id=user.id,
                reason=err.message,
                details={"refused": role.code, "code": err.code},
            )
            raise err


def check_custom_permissions(perms: set[str], institution: Institution | None) -> None:
    """A custom role: one domain only (三权分立, AC-05), and held somewhere — a member hospital's own role holds
    no central-only permission (AC-02/03)."""
    if mixes_admin_domains(perms):
        raise ValidationFailed("separation_of_duties", "一个角色不能同时包含系统、安全、审计中两类以上的管理权限")
    if len(custom_role_domains(perms)) > 1:
        raise ValidationFailed(
            "separation_of_duties", "自定义角色只能包含同一类权限（系统、安全、审计、业务或流程管理之一）"
        )
    scope = permission_scope(perms)
    if scope is None:
        raise ValidationFailed("role_unassignable", "一个角色不能同时包含只限中心医院和只限成员医院的权限")
    if institution is not None and not scope_allows(scope, institution.kind):
        codes = central_only(perms) if scope == CENTRAL else sorted(perms)
        raise ValidationFailed(
            "central_only_permission" if scope == CENTRAL else "member_only_permission",
            f"“{institution.name}”的角色不能包含只限{KIND_NAMES[scope]}的权限：{_names(codes)}",
            {"permissions": codes},
        )


def check_holders(role: Role, perms: set[str]) -> None:
    """A role's new permission set must still be holdable by everyone who holds the role."""
    scope = permission_scope(perms)
    s = uow.session()
    kinds = set(
        s.execute(
            select(Institution.kind)
            .join(User, User.institution_id == Institution.id)
            .join(user_role, user_role.c.user_id == User.id)
            .where(user_role.c.role_id == role.id)
            .distinct()
        ).scalars()
    )
    bad = sorted(k for k in kinds if not scope_allows(scope, k))
    if bad:
        who = "、".join(KIND_NAMES.get(k, k) for k in bad)
        where = KIND_NAMES.get(scope or "", "特定机构")
        raise Conflict(
            "role_held_out_of_scope",
            f"{who}的账号持有该角色，不能加入只限{where}的权限",
            {"institution_kinds": bad},
        )


# --- the central hospital's last administrators -------------------------------------------------------------


def _lock(s: Any) -> None:
    # PostgreSQL: serialise the check-then-change of coverage across transactions. SQLite runs BEGIN IMMEDIATE.
    if s.get_bind().dialect.name == "postgresql":
        s.execute(text("SELECT pg_advisory_xact_lock(7302)"))


def holders() -> dict[str, dict[int, datetime | None]]:
    """permission → {user id: last active} of the central hospital's enabled, approved, unlocked accounts holding it
    through an enabled role."""
    now = utcnow()
    locked = exists().where(LoginThrottle.username_norm == User.username_norm, LoginThrottle.locked_until > now)
    rows = uow.session().execute(
        select(RolePermission.permission_code, User.id, User.last_active_at)
        .join(Role, Role.id == RolePermission.role_id)
        .join(user_role, user_role.c.role_id == Role.id)
        .join(User, User.id == user_role.c.user_id)
        .join(Institution, Institution.id == User.institution_id)
        .where(
            RolePermission.permission_code.in_(PROTECTED_PERMISSIONS),
            Role.enabled.is_(True),
            User.enabled.is_(True),
            User.review_status == "approved",
            Institution.kind == CENTRAL,
            ~locked,
        )
    )
    out: dict[str, dict[int, datetime | None]] = {}
    for perm, uid, last in rows:
        out.setdefault(perm, {})[uid] = last
    return out


@contextmanager
def keeping_admin_coverage() -> Iterator[None]:
    """Run a change (role disable, user disable, role removal, role permission edit) and refuse it (409) if it
    leaves the central hospital with no enabled, unlocked account holding role.manage, user.manage or audit.read."""
    s = uow.session()
    _lock(s)
    before = set(holders())
    yield
    s.flush()
    lost = sorted(before - set(holders()))
    if lost:
        raise Conflict(
            "last_admin",
            f"操作被拒绝：中心医院将不再有可用账号持有“{_names(lost)}”权限，请先为其他账号授予该权限",
            {"permissions": lost},
        )


def _last_holder_reason(perms: list[str], days: int) -> str:
    return f"中心医院最后一个可用的“{_names(perms)}”权限持有账号超过 {days} 天未登录，未自动停用，请尽快处理"


def _alert_once_a_day(actor: Actor, user_id: int, reason: str) -> None:
    since = utcnow() - timedelta(days=1)
    recent = uow.session().execute(
        select(func.count(AuditEvent.id)).where(
            AuditEvent.event_type == "security_alert",
            AuditEvent.object_type == "user",
            AuditEvent.object_id == str(user_id),
            AuditEvent.reason == reason,
            AuditEvent.ts > since,
        )
    )
    if not recent.scalar_one():
        audit.security_alert(actor, "user", user_id, reason)


def _ts(value: datetime | None) -> float:
    return value.timestamp() if value else 0.0


def spare_inactive(candidate_ids: set[int], days: int) -> set[int]:
    """Of the accounts about to be disabled for inactivity (AC-07), those to keep: for each protected permission
    whose every central holder is a candidate, one holder (the most recently active), with a security alert."""
    s = uow.session()
    _lock(s)
    spared: dict[int, list[str]] = {}
    for perm, hs in sorted(holders().items()):
        if not hs or any(uid not in candidate_ids for uid in hs):
            continue
        kept = [uid for uid in hs if uid in spared]
        keep = kept[0] if kept else max(hs, key=lambda u: (_ts(hs[u]), -u))
        spared.setdefault(keep, []).append(perm)
    for uid, perms in spared.items():
        _alert_once_a_day(Actor.system("worker"), uid, _last_holder_reason(perms, days))
    return set(spared)


def spared_at_login(user: User, actor: Actor, days: int) -> bool:
    """At login, an account past the inactivity limit is kept when it is the central hospital's last holder of a
    protected permission (AC-07), with a security alert."""
    if user.institution.kind != CENTRAL:
        return False
    lost = sorted(perm for perm, hs in holders().items() if set(hs) == {user.id})
    if lost:
        _alert_once_a_day(actor, user.id, _last_holder_reason(lost, days))
    return bool(lost)


# --- upgrade: grants that break the rules are removed, each removal audited ----------------------------------


def enforce_scopes() -> int:
    """Remove central-only permissions from member hospitals' own roles, then every grant of a role outside where
    it may be held; audit each removal and end the sessions of the accounts concerned. Returns the count."""
    s = uow.session()
    actor = Actor.system("upgrade")
    removed = 0
    member_roles = select(Role).join(Institution, Institution.id == Role.institution_id)
    for role in s.execute(member_roles.where(Institution.kind == MEMBER)).unique().scalars():
        bad = set(central_only(set(role.permission_codes)))
        if not bad:
            continue
        role.permissions = [p for p in role.permissions if p.permission_code not in bad]
        audit.record(
            actor,
            "role_permissions_changed",
            object_type="role",
            object_id=role.id,
            reason="成员医院的角色不能包含只限中心医院的权限，升级时移除",
            details={"added": [], "removed": sorted(bad)},
        )
        for uid in s.execute(select(user_role.c.user_id).where(user_role.c.role_id == role.id)).scalars():
            s.execute(delete(UserSession).where(UserSession.user_id == uid))
        removed += len(bad)
    s.flush()
    kinds = (CENTRAL, MEMBER)
    refused = {
        r.id: [k for k in kinds if not scope_allows(scope_of(r), k)] for r in s.execute(select(Role)).unique().scalars()
    }
    pairs = [(rid, kind) for rid, ks in refused.items() for kind in ks]
    if not pairs:
        return removed
    holders_stmt = (
        select(User.id)
        .join(Institution, Institution.id == User.institution_id)
        .join(user_role, user_role.c.user_id == User.id)
        .where(or_(*(and_(user_role.c.role_id == rid, Institution.kind == kind) for rid, kind in pairs)))
    )
    ids = sorted(set(s.execute(holders_stmt).scalars()))
    for user in s.execute(select(User).where(User.id.in_(ids)).order_by(User.id)).unique().scalars() if ids else []:
        illegal = [r for r in user.roles if scope_error(r, user) is not None]
        if not illegal:
            continue
        before = sorted(r.code for r in user.roles)
        user.roles = [r for r in user.roles if r not in illegal]
        s.execute(delete(UserSession).where(UserSession.user_id == user.id))
        for role in illegal:
            err = scope_error(role, user)
            audit.record(
                actor,
                "account_roles_changed",
                object_type="user",
                object_id=user.id,
                reason=f"升级时移除不符合授予范围的角色：{err.message if err else role.name}",
                details={"before": before, "removed": role.code},
            )
            removed += 1
    s.flush()
    return removed
