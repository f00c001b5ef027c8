"""Account and role write operations: registration, review, user admin, roles (REQ: ACCT-01..05, AC-05)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from engine import audit, uow
from engine.accounts import auth, integrity
from engine.accounts.models import Department, Institution, LoginThrottle, Role, RolePermission, User, user_role
from engine.accounts.passwords import check_policy, generate_temporary_password, normalise_username
from engine.accounts.permissions import ADMIN_ROLE_CODES, BY_CODE, mixes_admin_domains
from engine.actor import Actor
from engine.attachments import services as attachments
from engine.crypto import mask_id_number, mask_phone
from engine.db import utcnow
from engine.errors import AuthenticationFailed, Conflict, Forbidden, NotFound, ValidationFailed
from engine.visibility import get_visible

USERNAME_RE = re.compile(r"^[A-Za-z0-9_.\-\u4e00-\u9fff]{3,32}$")
PHONE_RE = re.compile(r"^1[3-9]\d{9}$", re.ASCII)  # \d would accept full-width digits
ID_RE = re.compile(r"^\d{17}[\dXx]$", re.ASCII)
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def valid_id_number(value: str) -> bool:
    """GB 11643 check digit of an 18-digit resident ID number."""
    if not ID_RE.match(value):
        return False
    total = sum(int(d) * w for d, w in zip(value[:17], _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11] == value[17].upper()


@dataclass
class Profile:
    full_name: str
    institution_id: int
    department_id: int | None
    title: str
    phone: str | None
    id_number: str | None


def _field_errors(p: Profile, require_pii: bool) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if not p.full_name or len(p.full_name) > 32 or any(ord(c) < 32 for c in p.full_name):
        errors["full_name"] = ["请填写姓名（不超过 32 个字符）"]
    if p.phone or require_pii:
        if not p.phone or not PHONE_RE.match(p.phone):
            errors["phone"] = ["手机号格式不正确"]
    if p.id_number or require_pii:
        if not p.id_number or not valid_id_number(p.id_number):
            errors["id_number"] = ["身份证号格式不正确"]
    if len(p.title or "") > 32:
        errors["title"] = ["职称不超过 32 个字符"]
    return errors


def _check_profile(p: Profile, require_pii: bool) -> Institution:
    errors = _field_errors(p, require_pii)
    s = uow.session()
    inst = s.get(Institution, p.institution_id)
    if inst is None or not inst.enabled:
        errors["institution_id"] = ["机构不存在"]
    if p.department_id is not None:
        dep = s.get(Department, p.department_id)
        if dep is None or dep.institution_id != p.institution_id:
            errors["department_id"] = ["科室不属于所选机构"]
    if errors:
        raise ValidationFailed("validation_error", "提交的信息有误", {"fields": errors})
    assert inst is not None
    return inst


def _apply_profile(user: User, p: Profile) -> None:
    c = auth.cipher()
    user.full_name = p.full_name
    user.institution_id = p.institution_id
    user.department_id = p.department_id
    user.title = p.title or ""
    if p.phone:
        user.phone_enc, user.phone_masked = c.encrypt_str(p.phone), mask_phone(p.phone)
    if p.id_number:
        user.id_number_enc, user.id_number_masked = (
            c.encrypt_str(p.id_number.upper()),
            mask_id_number(p.id_number.upper()),
        )


def _check_username(username: str) -> str:
    # AUTH-01: the uniqueness check on the normalised name comes first, so "admin " or full-width "ａｄｍｉｎ"
    # answer 409 username_taken when "admin" exists (not a format error that hides the clash).
    norm = normalise_username(username or "")
    if uow.session().execute(select(User.id).where(User.username_norm == norm)).first():
        raise Conflict("username_taken", "用户名已被使用")
    if not USERNAME_RE.match(username or ""):
        raise ValidationFailed(
            "validation_error", "提交的信息有误", {"fields": {"username": ["用户名为 3-32 位字母、数字、汉字或 _ . -"]}}
        )
    return norm


def register(
    actor: Actor, username: str, password: str, profile: Profile, photos: dict[str, tuple[str | None, bytes]]
) -> User:
    """Self-registration (自助注册, REQ: ACCT-04): the account waits for review with its photos.

    Raises:
        ValidationFailed, Conflict: bad fields, weak password, bad photo, taken username.
    """
    norm = _check_username(username)
    _check_profile(profile, require_pii=True)
    check_policy(password, username)
    missing = [k for k in ("id_card", "qualification") if k not in photos]
    if missing:
        raise ValidationFailed(
            "validation_error", "请上传身份证和资格证照片", {"fields": {f"{k}_photo": ["必须上传"] for k in missing}}
        )
    s = uow.session()
    user = User(
        username=username.strip(),
        username_norm=norm,
        password_hash=auth.hash_password(password),
        review_status="pending",
        registration_source="self",
        submitted_at=utcnow(),
    )
    _apply_profile(user, profile)
    s.add(user)
    try:
        s.flush()
    except IntegrityError as exc:
        raise Conflict("username_taken", "用户名已被使用") from exc
    for kind, (name, data) in photos.items():
        attachments.save_image(user, kind, name, data)
    audit.record(actor, "account_registered", object_type="user", object_id=user.id, username=user.username)
    return user


def _authenticate_applicant(actor: Actor, username: str, password: str) -> User:
    # AUTH-04: this checks a password too, so it shares the login lockout (no lockout-free guessing oracle).
    s = uow.session()
    norm = normalise_username(username)
    auth._check_locked(actor, norm, username, utcnow())
    user = s.execute(select(User).where(User.username_norm == norm)).unique().scalar_one_or_none()
    if not auth.verify_password(user.password_hash if user else None, password) or user is None:
        auth._count_failure(norm, username, actor, "登录")
        raise AuthenticationFailed(*auth.INVALID)
    return user


def registration_status(actor: Actor, username: str, password: str) -> User:
    """The applicant's own view of their review (REQ: ACCT-03)."""
    return _authenticate_applicant(actor, username, password)


def resubmit(
    actor: Actor, username: str, password: str, profile: Profile, photos: dict[str, tuple[str | None, bytes]]
) -> User:
    """A rejected applicant fixes the application and sends it back to review (REQ: ACCT-03).

    Raises:
        AuthenticationFailed: wrong credentials. Conflict: the account is not in the rejected state.
    """
    user = _authenticate_applicant(actor, username, password)
    if user.review_status != "rejected":
        raise Conflict("not_rejected", "只有被拒绝的申请可以重新提交")
    _check_profile(profile, require_pii=not (user.phone_enc and user.id_number_enc))
    _apply_profile(user, profile)
    s = uow.session()
    for kind, (name, data) in photos.items():
        for old in s.query(attachments.Attachment).filter_by(owner_user_id=user.id, kind=kind, deleted_at=None):
            old.deleted_at = utcnow()
        attachments.save_image(user, kind, name, data)
    user.review_status = "pending"
    user.submitted_at = utcnow()
    audit.record(actor, "account_resubmitted", object_type="user", object_id=user.id, username=user.username)
    return user


def create_user(actor: Actor, username: str, profile: Profile, source: str = "admin") -> tuple[User, str]:
    """An administrator creates an account; it goes through the same review (REQ: ACCT-03).

    Returns the user and its one-time initial password (to be changed at first login).
    """
    norm = _check_username(username)
    inst = _check_profile(profile, require_pii=False)
    if not actor.is_central and inst.id != actor.institution_id:
        raise NotFound()
    initial = generate_temporary_password()
    user = User(
        username=username.strip(),
        username_norm=norm,
        password_hash=auth.hash_password(initial),
        must_change_password="first_login",
        review_status="pending",
        registration_source=source,
        created_by_id=actor.user_id,
        submitted_at=utcnow(),
    )
    _apply_profile(user, profile)
    uow.session().add(user)
    uow.session().flush()
    audit.record(actor, "account_created", object_type="user", object_id=user.id)
    return user, initial


def _roles_for_grant(actor: Actor, user: User, role_ids: list[int]) -> list[Role]:
    s = uow.session()
    ids = sorted(set(role_ids))
    roles = list(s.execute(select(Role).where(Role.id.in_(ids))).unique().scalars()) if ids else []
    if len(roles) != len(ids):
        raise ValidationFailed("unknown_role", "角色不存在")
    check_roles(actor, user, roles)
    if user.id == actor.user_id:
        raise Forbidden("self_grant", "不能给自己分配角色")
    return roles


def check_roles(actor: Actor, user: User, roles: list[Role]) -> None:
    """The rules of every grant path (API, CLI, demo): enabled, the user's institution's roles, 三权分立 (AC-05),
    and each role held only where it may be (AC-02/03)."""
    for role in roles:
        if not role.enabled:
            raise ValidationFailed("role_disabled", f"角色“{role.name}”已停用")
        if role.institution_id is not None and role.institution_id != user.institution_id:
            raise ValidationFailed("role_out_of_scope", f"角色“{role.name}”不适用于该用户所在机构")
    codes = {r.code for r in roles if r.builtin}
    admin = codes & ADMIN_ROLE_CODES
    if len(admin) > 1:
        raise ValidationFailed("separation_of_duties", "系统管理员、安全管理员、审计管理员三者互斥，不能授予同一账号")
    if admin and len(roles) > 1:
        raise ValidationFailed("separation_of_duties", "管理员角色不能与业务角色同时授予")
    perms: set[str] = set()
    for r in roles:
        perms |= set(r.permission_codes)
    # A built-in administrator role is granted alone (checked above) and its grants are fixed by code; the
    # 安全管理员 reads users (a sys-domain permission) by design, so only combinations are checked here.
    if not admin and mixes_admin_domains(perms):
        raise ValidationFailed("separation_of_duties", "所选角色合并后跨越系统、安全、审计三类管理权限")
    integrity.check_grant(actor, user, roles)


def approve(actor: Actor, user_id: int, role_ids: list[int]) -> User:
    """Approve an application with one or more roles (REQ: ACCT-03; only 安全管理员 grants, AC-05)."""
    user = get_visible(actor, User, user_id, object_type="user")
    if user.review_status != "pending":
        raise Conflict("not_pending", "该申请不在待审核状态")
    if not role_ids:
        raise ValidationFailed("validation_error", "请至少选择一个角色", {"fields": {"role_ids": ["必选"]}})
    roles = _roles_for_grant(actor, user, role_ids)
    user.roles = roles
    user.review_status = "approved"
    user.reject_reason = None
    user.reviewed_at = utcnow()
    user.reviewed_by_id = actor.user_id
    user.last_active_at = utcnow()
    audit.record(
        actor,
        "account_approved",
        object_type="user",
        object_id=user.id,
        details={"roles": sorted(r.code for r in roles)},
    )
    return user


def reject(actor: Actor, user_id: int, reason: str) -> User:
    """Reject an application with a mandatory reason; the applicant can fix and resubmit."""
    reason = (reason or "").strip()
    if not reason or len(reason) > 500:
        raise ValidationFailed("validation_error", "请填写拒绝原因（不超过 500 字）", {"fields": {"reason": ["必填"]}})
    user = get_visible(actor, User, user_id, object_type="user")
    if user.review_status != "pending":
        raise Conflict("not_pending", "该申请不在待审核状态")
    user.review_status = "rejected"
    user.reject_reason = reason
    user.reviewed_at = utcnow()
    user.reviewed_by_id = actor.user_id
    audit.record(actor, "account_rejected", object_type="user", object_id=user.id, reason=reason)
    return user


def set_roles(actor: Actor, user_id: int, role_ids: list[int]) -> User:
    """Replace an approved user's roles; their sessions end (SESS-04)."""
    user = get_visible(actor, User, user_id, object_type="user")
    if user.review_status != "approved":
        raise Conflict("not_approved", "账号尚未审核通过")
    roles = _roles_for_grant(actor, user, role_ids)
    before = sorted(r.code for r in user.roles)
    with integrity.keeping_admin_coverage():  # AC-05: the last holder of role.manage/user.manage/audit.read
        user.roles = roles
    auth.kill_user_sessions(user.id)
    audit.record(
        actor,
        "account_roles_changed",
        object_type="user",
        object_id=user.id,
        details={"before": before, "after": sorted(r.code for r in roles)},
    )
    return user


def update_user(actor: Actor, user_id: int, changes: dict[str, Any]) -> User:
    """Edit profile fields or enable/disable an account; disabling ends its sessions (SESS-04)."""
    user = get_visible(actor, User, user_id, object_type="user")
    if "enabled" in changes and changes["enabled"] != user.enabled:
        if user.id == actor.user_id:
            raise Forbidden("self_disable", "不能停用自己的账号")
        with integrity.keeping_admin_coverage():
            user.enabled = bool(changes["enabled"])
        user.disabled_reason = None if user.enabled else "admin"
        if user.enabled:
            user.last_active_at = utcnow()
        else:
            auth.kill_user_sessions(user.id)
        audit.record(
            actor, "account_enabled" if user.enabled else "account_disabled", object_type="user", object_id=user.id
        )
    profile_keys = {"full_name", "department_id", "title", "phone"} & changes.keys()
    if profile_keys:
        p = Profile(
            full_name=changes.get("full_name", user.full_name),
            institution_id=user.institution_id,
            department_id=changes.get("department_id", user.department_id),
            title=changes.get("title", user.title),
            phone=changes.get("phone"),
            id_number=None,
        )
        _check_profile(p, require_pii=False)
        _apply_profile(user, p)
        audit.record(
            actor, "account_updated", object_type="user", object_id=user.id, details={"fields": sorted(profile_keys)}
        )
    return user


def unlock(actor: Actor, user_id: int) -> None:
    user = get_visible(actor, User, user_id, object_type="user")
    uow.session().execute(delete(LoginThrottle).where(LoginThrottle.username_norm == user.username_norm))
    audit.record(actor, "account_unlocked", object_type="user", object_id=user.id)


def reset_password(actor: Actor, user_id: int) -> str:
    """Admin reset: a temporary password, forced change at next login, all sessions end (AUTH-03, SESS-04)."""
    user = get_visible(actor, User, user_id, object_type="user")
    if user.id == actor.user_id:
        raise Forbidden("self_reset", "请在个人中心修改自己的密码")
    temp = generate_temporary_password()
    auth.set_password(user, temp, must_change="admin_reset")
    auth.kill_user_sessions(user.id)
    audit.record(actor, "password_reset", object_type="user", object_id=user.id)
    return temp


# --- roles -------------------------------------------------------------------------------------

ROLE_CODE_RE = re.compile(r"^[a-z][a-z0-9_]{1,31}$")


def _check_permissions(codes: list[str], institution: Institution | None) -> set[str]:
    unknown = [c for c in codes if c not in BY_CODE]
    if unknown:
        raise ValidationFailed("unknown_permission", "权限不存在", {"unknown": unknown[:20]})
    perms = set(codes)
    integrity.check_custom_permissions(perms, institution)
    return perms


def create_role(
    actor: Actor, code: str, name: str, description: str, institution_id: int | None, permissions: list[str]
) -> Role:
    """Create a custom role, global (central staff only) or for one institution (REQ: ACCT-01/02)."""
    if not ROLE_CODE_RE.match(code or ""):
        raise ValidationFailed(
            "validation_error", "角色编码为 2-32 位小写字母、数字或下划线", {"fields": {"code": ["格式不正确"]}}
        )
    if not (name or "").strip() or len(name) > 32:
        raise ValidationFailed("validation_error", "请填写角色名称（不超过 32 字）", {"fields": {"name": ["必填"]}})
    if institution_id is None and not actor.is_central:
        institution_id = actor.institution_id
    inst = get_visible(actor, Institution, institution_id, object_type="institution") if institution_id else None
    perms = _check_permissions(permissions, inst)
    s = uow.session()
    clash = select(Role.id).where(Role.code == code)
    if (
        s.execute(clash.where(Role.institution_id.is_(None))).first()
        or s.execute(clash.where(Role.institution_id == institution_id)).first()
    ):
        raise Conflict("role_code_taken", "角色编码已存在")
    role = Role(
        code=code,
        name=name.strip(),
        description=(description or "")[:500],
        institution_id=institution_id,
        builtin=False,
        enabled=True,
    )
    role.permissions = [RolePermission(permission_code=c) for c in sorted(perms)]
    s.add(role)
    s.flush()
    audit.record(
        actor,
        "role_created",
        object_type="role",
        object_id=role.id,
        details={"code": code, "permissions": sorted(perms)},
    )
    return role


def _editable_role(actor: Actor, role_id: int) -> Role:
    role = get_visible(actor, Role, role_id, object_type="role")
    if role.institution_id is None and not actor.is_central:
        raise Forbidden("role_readonly", "只能修改本机构的角色")
    return role


def update_role(actor: Actor, role_id: int, changes: dict[str, Any]) -> Role:
    role = _editable_role(actor, role_id)
    if "name" in changes:
        if not (changes["name"] or "").strip() or len(changes["name"]) > 32:
            raise ValidationFailed("validation_error", "请填写角色名称（不超过 32 字）", {"fields": {"name": ["必填"]}})
        role.name = changes["name"].strip()
    if "description" in changes:
        role.description = (changes["description"] or "")[:500]
    if "enabled" in changes and bool(changes["enabled"]) != role.enabled:
        with integrity.keeping_admin_coverage():
            role.enabled = bool(changes["enabled"])
        for uid in uow.session().execute(select(user_role.c.user_id).where(user_role.c.role_id == role.id)).scalars():
            auth.kill_user_sessions(uid)
    audit.record(actor, "role_updated", object_type="role", object_id=role.id, details={"fields": sorted(changes)})
    return role


def set_role_permissions(actor: Actor, role_id: int, permissions: list[str]) -> Role:
    """Grant menu/function permissions to a role (REQ: ACCT-02). Holders' sessions end (SESS-04)."""
    role = _editable_role(actor, role_id)
    if role.builtin:  # fixed by code (issue 11): 登记员 cannot be turned into an administrator without MFA
        raise Forbidden("builtin_role_fixed", "内置角色的权限由系统固定，不可修改；请新建自定义角色")
    perms = _check_permissions(permissions, role.institution)
    integrity.check_holders(role, perms)
    before = set(role.permission_codes)
    with integrity.keeping_admin_coverage():
        role.permissions = [RolePermission(permission_code=c) for c in sorted(perms)]
    for uid in uow.session().execute(select(user_role.c.user_id).where(user_role.c.role_id == role.id)).scalars():
        auth.kill_user_sessions(uid)
    audit.record(
        actor,
        "role_permissions_changed",
        object_type="role",
        object_id=role.id,
        details={"added": sorted(perms - before), "removed": sorted(before - perms)},
    )
    return role


def delete_role(actor: Actor, role_id: int) -> None:
    role = _editable_role(actor, role_id)
    if role.builtin:
        raise Forbidden("builtin_role", "内置角色不能删除")
    s = uow.session()
    holders = s.execute(select(func.count()).select_from(user_role).where(user_role.c.role_id == role.id)).scalar()
    if holders:
        raise Conflict("role_in_use", f"仍有 {holders} 个用户持有该角色，不能删除")
    audit.record(actor, "role_deleted", object_type="role", object_id=role.id, details={"code": role.code})
    s.delete(role)
