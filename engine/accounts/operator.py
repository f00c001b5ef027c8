"""Operator commands on accounts (`telerad create-admin`, `telerad user roles`): the same grant rules as the API
(三权分立, where each role may be held, the central hospital's last administrators — REQ: AC-02/03/05, AUTH-06)."""

from __future__ import annotations

import pyotp
from sqlalchemy import or_, select

from engine import audit, uow
from engine.accounts import auth, integrity, services
from engine.accounts.models import Institution, Role, User
from engine.accounts.passwords import generate_temporary_password, normalise_username
from engine.accounts.seed import sync_catalogue
from engine.actor import Actor
from engine.db import utcnow
from engine.errors import Conflict, NotFound

CLI = Actor.system("cli")


def _institution(code: str) -> Institution:
    """The named institution; on a fresh database the first one is created as the central hospital."""
    s = uow.session()
    inst = s.execute(select(Institution).where(Institution.code == code)).unique().scalar()
    if inst is not None:
        return inst
    if s.execute(select(Institution.id)).first():
        # A typo must not create a second central hospital (which would see every hospital's data).
        raise NotFound("unknown_institution", f"机构 {code} 不存在")
    inst = Institution(code=code, name="中心医院", kind="central")
    s.add(inst)
    s.flush()
    return inst


def create_admin(username: str, role_code: str, full_name: str, institution_code: str) -> tuple[User, str, str]:
    """One of the three administrators with a temporary password and a TOTP secret. Returns (user, password,
    secret).

    Raises:
        NotFound: unknown institution. Conflict: the username exists. ValidationFailed: a grant rule.
    """
    sync_catalogue()
    s = uow.session()
    inst = _institution(institution_code)
    norm = normalise_username(username)
    if s.execute(select(User.id).where(User.username_norm == norm)).first():
        raise Conflict("username_taken", f"用户名 {username} 已存在")
    temp = generate_temporary_password()
    secret = pyotp.random_base32()
    role = s.execute(select(Role).where(Role.code == role_code, Role.builtin.is_(True))).unique().scalar_one()
    user = User(
        username=username,
        username_norm=norm,
        full_name=full_name or username,
        institution_id=inst.id,
        password_hash=auth.hash_password(temp),
        must_change_password="first_login",  # noqa: S106 — a reason code, not a password
        review_status="approved",
        registration_source="cli",
        reviewed_at=utcnow(),
        last_active_at=utcnow(),
        totp_secret_enc=auth.cipher().encrypt_str(secret),
        totp_enabled=True,
    )
    user.institution = inst
    services.check_roles(CLI, user, [role])
    user.roles = [role]
    s.add(user)
    s.flush()
    audit.record(CLI, "account_created", object_type="user", object_id=user.id, details={"role": role_code})
    return user, temp, secret


def set_roles(username: str, role_codes: list[str]) -> User:
    """Replace an approved account's roles by code (built-in, or a custom role of its institution or global).

    Raises:
        NotFound: unknown user or role. Conflict: not approved, or the last administrator would go.
        ValidationFailed: a grant rule (三权分立, a role outside where it may be held).
    """
    s = uow.session()
    user = s.execute(select(User).where(User.username_norm == normalise_username(username))).unique().scalar()
    if user is None:
        raise NotFound("unknown_user", f"用户 {username} 不存在")
    if user.review_status != "approved":
        raise Conflict("not_approved", "账号尚未审核通过")
    roles = []
    for code in dict.fromkeys(role_codes):
        candidates = select(Role).where(
            Role.code == code, or_(Role.institution_id.is_(None), Role.institution_id == user.institution_id)
        )
        role = s.execute(candidates.order_by(Role.builtin.desc(), Role.id)).unique().scalars().first()
        if role is None:
            raise NotFound("unknown_role", f"角色 {code} 不存在")
        roles.append(role)
    services.check_roles(CLI, user, roles)
    before = sorted(r.code for r in user.roles)
    with integrity.keeping_admin_coverage():
        user.roles = roles
    auth.kill_user_sessions(user.id)
    audit.record(
        CLI,
        "account_roles_changed",
        object_type="user",
        object_id=user.id,
        details={"before": before, "after": sorted(r.code for r in roles)},
    )
    return user
