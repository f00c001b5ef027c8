"""Login, second factor, password change and server-side sessions (REQ: AUTH-01..07, SESS-01..06)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyotp
from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.orm import Session, joinedload

from engine import audit, config, uow
from engine.accounts import integrity
from engine.accounts.models import (
    Institution,
    LoginThrottle,
    PasswordHistory,
    Role,
    RolePermission,
    User,
    UserSession,
    user_role,
)
from engine.accounts.passwords import (
    MAX_PASSWORD_LENGTH,
    check_policy,
    hash_password,
    normalise_username,
    verify_password,
)
from engine.accounts.permissions import is_admin_permission_set, needs_mfa
from engine.actor import Actor
from engine.crypto import FieldCipher
from engine.db import utcnow
from engine.errors import AuthenticationFailed, Forbidden, Locked, ValidationFailed

INVALID = ("invalid_credentials", "用户名或密码错误")


def cipher() -> FieldCipher:
    return FieldCipher(config.current().secret_key)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class LoginResult:
    token: str
    session: UserSession
    state: str
    reason: str | None
    mfa_enrolled: bool


def _role_permissions(user: User) -> set[str]:
    return {code for role in user.roles if role.enabled for code in role.permission_codes}


@dataclass(frozen=True)
class Grants:
    """What a user's enabled roles give: their codes and their permissions (BASELINE and the member-hospital cut
    are applied by engine/accounts/queries.py effective_permissions); `load_session_grants` reads them."""

    roles: frozenset[str]
    permissions: frozenset[str]


def user_needs_mfa(user: User) -> bool:
    """A second factor follows the permissions the account's roles give (any administrator or process permission),
    not role codes: a custom role with role.manage needs it too (REQ: AUTH-06, issue 11)."""
    return needs_mfa(_role_permissions(user)) or user.totp_enabled


def is_admin(user: User) -> bool:
    """Administrator rules (12-character passwords, one session, short idle timeout) follow admin-domain
    permissions, not role codes (issue 11)."""
    return is_admin_permission_set(_role_permissions(user))


def password_expired(user: User, now: datetime) -> bool:
    return now - user.password_changed_at > timedelta(days=config.current().password_max_age_days)


def _change_reason(user: User, now: datetime) -> str | None:
    if user.must_change_password:
        return user.must_change_password
    if password_expired(user, now):
        return "password_expired"
    return None


def _throttle_row(s: Session, norm: str) -> LoginThrottle | None:
    return s.get(LoginThrottle, norm)


def _check_locked(actor: Actor, norm: str, username: str, now: datetime) -> None:
    row = _throttle_row(uow.session(), norm)
    if row and row.locked_until and row.locked_until > now:
        audit.record(actor, "login_failure", outcome="failure", username=username, reason="账号已锁定")
        raise Locked(
            "account_locked",
            "登录失败次数过多，账号已锁定，请稍后再试或联系管理员解锁",
            {"locked_until": row.locked_until.isoformat()},
        )


def _count_failure(norm: str, username: str, actor: Actor, what: str) -> None:
    """Registered to run after the request's rollback, so the failure counts even though we answer 4xx."""
    settings = config.current()

    def apply(s: Session) -> None:
        now = utcnow()
        row = _throttle_row(s, norm)
        if row is None:
            row = LoginThrottle(username_norm=norm, failures=0, window_start=now)
            s.add(row)
        if now - row.window_start > timedelta(minutes=settings.lockout_window_min):
            row.failures, row.window_start = 0, now
        row.failures += 1
        s.execute(
            update(User)
            .where(User.username_norm == norm)
            .values(failed_logins_since_last=User.failed_logins_since_last + 1)
        )
        if row.failures >= settings.lockout_threshold:
            row.locked_until = now + timedelta(minutes=settings.lockout_duration_min)
            row.failures = 0
            reason = f"连续{what}失败次数过多，账号锁定"
            audit.append(
                s,
                audit.build_row(
                    actor, "login_locked", outcome="failure", object_type="user", username=username, reason=reason
                ),
            )
        s.flush()

    uow.after_rollback(apply)


def _new_session(user: User, state: str, actor: Actor) -> tuple[str, UserSession]:
    token = secrets.token_urlsafe(32)
    now = utcnow()
    sess = UserSession(
        id=token_hash(token),
        public_id=secrets.token_hex(8),
        user_id=user.id,
        state=state,
        csrf_token=secrets.token_urlsafe(32),
        created_at=now,
        last_seen_at=now,
        auth_at=now,
        ip=actor.ip,
        user_agent=(actor.user_agent or "")[:256],
    )
    uow.session().add(sess)
    return token, sess


def rotate_session(sess: UserSession) -> str:
    """Give the session a new id and CSRF token (anti-fixation on privilege change, SESS-02)."""
    s = uow.session()
    token = secrets.token_urlsafe(32)
    new = UserSession(
        id=token_hash(token),
        public_id=sess.public_id,
        user_id=sess.user_id,
        state=sess.state,
        csrf_token=secrets.token_urlsafe(32),
        created_at=sess.created_at,
        last_seen_at=utcnow(),
        auth_at=utcnow(),
        ip=sess.ip,
        user_agent=sess.user_agent,
        prev_login_at=sess.prev_login_at,
        prev_login_ip=sess.prev_login_ip,
        failed_before_login=sess.failed_before_login,
    )
    s.delete(sess)
    s.flush()
    s.add(new)
    s.flush()
    return token


def _complete_login(user: User, actor: Actor, sess: UserSession) -> None:
    now = utcnow()
    sess.prev_login_at, sess.prev_login_ip = user.last_login_at, user.last_login_ip
    sess.failed_before_login = user.failed_logins_since_last
    user.last_login_at = now
    user.last_login_ip = actor.ip
    user.failed_logins_since_last = 0
    user.last_active_at = now
    audit.record(actor_for(user, actor), "login_success", object_type="user", object_id=user.id)


def actor_for(
    user: User,
    meta: Actor,
    *,
    permissions: frozenset[str] = frozenset(),
    session_id: str | None = None,
    roles: frozenset[str] | None = None,
) -> Actor:
    """The Actor of `user`, carrying the request metadata (ip, user agent, request id) of `meta`; `roles`: the
    enabled role codes when known already (`Grants`)."""
    return Actor(
        user_id=user.id,
        username=user.username,
        institution_id=user.institution_id,
        institution_kind=user.institution.kind,
        institution_code=user.institution.code,
        roles=frozenset(user.role_codes) if roles is None else roles,
        permissions=permissions,
        ip=meta.ip,
        user_agent=meta.user_agent,
        request_id=meta.request_id,
        session_id=session_id,
    )


def login(username: str, password: str, actor: Actor, previous_token: str | None = None) -> LoginResult:
    """Check credentials and open a session.

    Raises:
        ValidationFailed: oversize input (checked before any hashing).
        Locked: too many failures for this normalised username (whether or not it exists).
        AuthenticationFailed: wrong credentials (identical for unknown users), or a disabled account.
        Forbidden: the account is still under review or was rejected.
    """
    if len(password) > MAX_PASSWORD_LENGTH or len(username) > 64:
        raise ValidationFailed("input_too_long", "用户名或密码过长")
    s = uow.session()
    settings = config.current()
    now = utcnow()
    norm = normalise_username(username)
    if previous_token:  # anti-fixation: a session id presented before login never survives it
        s.execute(delete(UserSession).where(UserSession.id == token_hash(previous_token)))
    _check_locked(actor, norm, username, now)
    user = s.execute(select(User).where(User.username_norm == norm)).unique().scalar_one_or_none()
    if not verify_password(user.password_hash if user else None, password) or user is None:
        audit.record(actor, "login_failure", outcome="failure", username=username, reason="用户名或密码错误")
        _count_failure(norm, username, actor, "登录")
        raise AuthenticationFailed(*INVALID)
    if not user_needs_mfa(user):  # AUTH-04: with a second factor, only its success resets the failure count
        s.execute(delete(LoginThrottle).where(LoginThrottle.username_norm == norm))
    user_actor = actor_for(user, actor)
    if user.review_status == "pending":
        raise Forbidden("account_pending", "账号正在审核中，请等待管理员审核")
    if user.review_status == "rejected":
        raise Forbidden(
            "account_rejected", "账号注册申请已被拒绝，请修改后重新提交", {"reject_reason": user.reject_reason}
        )
    last_active = user.last_active_at or user.reviewed_at or user.created_at
    inactive = user.enabled and now - last_active > timedelta(days=settings.inactive_disable_days)
    if inactive and not integrity.spared_at_login(user, user_actor, settings.inactive_disable_days):  # AC-07
        uid = user.id

        def disable(s2: Session) -> None:
            s2.execute(update(User).where(User.id == uid).values(enabled=False, disabled_reason="inactive"))
            reason = f"超过 {settings.inactive_disable_days} 天未登录，自动停用"
            audit.append(
                s2,
                audit.build_row(
                    user_actor, "account_disabled", outcome="failure", object_type="user", object_id=uid, reason=reason
                ),
            )

        uow.after_rollback(disable)
        raise AuthenticationFailed("account_disabled", "账号已停用，请联系管理员")
    if not user.enabled:
        audit.record(user_actor, "login_failure", outcome="failure", reason="账号已停用")
        raise AuthenticationFailed("account_disabled", "账号已停用，请联系管理员")
    reason = _change_reason(user, now)
    if user_needs_mfa(user):
        state = "mfa_required"
    elif reason:
        state = "password_change_required"
    else:
        state = "active"
    if is_admin(user) and settings.extra.get("admin_max_sessions", "1") == "1":
        # SESS-05: one session at a time for the three administrators.
        s.execute(delete(UserSession).where(UserSession.user_id == user.id))
    token, sess = _new_session(user, state, actor)
    if state == "active":
        _complete_login(user, actor, sess)
    return LoginResult(token, sess, state, reason, bool(user.totp_enabled))


def mfa_enroll(sess: UserSession) -> tuple[str, str]:
    """Start TOTP enrolment for an admin who has none yet: returns (secret, otpauth URI)."""
    user = sess.user
    if sess.state != "mfa_required" or user.totp_enabled:
        raise Forbidden("mfa_enroll_not_allowed", "当前状态不能绑定双因素认证")
    secret = pyotp.random_base32()
    user.totp_secret_enc = cipher().encrypt_str(secret)
    uri = pyotp.TOTP(secret).provisioning_uri(name=user.username, issuer_name="telerad 远程影像诊断平台")
    return secret, uri


def mfa_verify(sess: UserSession, code: str, actor: Actor) -> tuple[str, str | None]:
    """Check a TOTP code; replayed codes and wrong codes count as failures (REQ: AUTH-06).

    Returns the new session token (rotated) and the password-change reason if one is still due.

    Raises:
        Forbidden: the session is not waiting for a second factor.
        Locked: too many wrong codes.
        AuthenticationFailed: wrong or replayed code.
    """
    user = sess.user
    if sess.state != "mfa_required":
        raise Forbidden("mfa_not_required", "当前会话不需要双因素认证")
    now = utcnow()
    _check_locked(actor, user.username_norm, user.username, now)
    secret = cipher().decrypt_str(user.totp_secret_enc)
    code = (code or "").strip()
    totp = pyotp.TOTP(secret) if secret else None
    step = int(now.timestamp()) // 30
    matched: int | None = None
    if totp and len(code) == 6 and code.isdigit():
        for offset in (0, -1, 1):
            if secrets.compare_digest(totp.at(now.timestamp() + offset * 30), code):
                matched = step + offset
                break
    if matched is None or (user.totp_last_step is not None and matched <= user.totp_last_step):
        audit.record(
            actor_for(user, actor),
            "mfa_failure",
            outcome="failure",
            reason="验证码错误" if matched is None else "验证码重放",
        )
        _count_failure(user.username_norm, user.username, actor, "双因素认证")
        raise AuthenticationFailed("invalid_mfa_code", "动态验证码错误或已使用")
    uow.session().execute(delete(LoginThrottle).where(LoginThrottle.username_norm == user.username_norm))
    user.totp_last_step = matched
    if not user.totp_enabled:
        user.totp_enabled = True
        audit.record(actor_for(user, actor), "mfa_enrolled", object_type="user", object_id=user.id)
    audit.record(actor_for(user, actor), "mfa_success", object_type="user", object_id=user.id)
    reason = _change_reason(user, now)
    sess.state = "password_change_required" if reason else "active"
    if not reason:
        _complete_login(user, actor, sess)
    token = rotate_session(sess)
    return token, reason


def change_password(sess: UserSession, old: str, new: str, actor: Actor) -> str:
    """Change the caller's password; ends every other session of the user (SESS-04). Returns a new token.

    Raises:
        AuthenticationFailed: the old password is wrong.
        ValidationFailed: policy (`password_policy`) or history (`password_reused`).
    """
    user = sess.user
    if sess.state == "mfa_required":
        raise Forbidden("mfa_required", "请先完成双因素认证")
    _check_locked(actor, user.username_norm, user.username, utcnow())
    if len(new) > MAX_PASSWORD_LENGTH or not verify_password(user.password_hash, old):
        # A hijacked session must not become a password-guessing oracle: failures count toward lockout.
        audit.record(actor_for(user, actor), "password_changed", outcome="failure", reason="原密码错误")
        _count_failure(user.username_norm, user.username, actor, "修改密码")
        raise AuthenticationFailed("invalid_credentials", "原密码错误")
    check_policy(new, user.username, admin=is_admin(user))
    assert_not_reused(user, new)
    set_password(user, new)
    s = uow.session()
    s.execute(delete(UserSession).where(UserSession.user_id == user.id, UserSession.id != sess.id))
    was_pending = sess.state != "active"
    sess.state = "active"
    if was_pending:
        _complete_login(user, actor, sess)
    token = rotate_session(sess)
    audit.record(actor_for(user, actor), "password_changed", object_type="user", object_id=user.id)
    return token


def assert_not_reused(user: User, new: str) -> None:
    s = uow.session()
    keep = config.current().password_history
    hashes = [user.password_hash] + list(
        s.execute(
            select(PasswordHistory.password_hash)
            .where(PasswordHistory.user_id == user.id)
            .order_by(PasswordHistory.id.desc())
            .limit(keep - 1)
        ).scalars()
    )
    if any(verify_password(h, new) for h in hashes):
        raise ValidationFailed("password_reused", f"新密码不能与最近 {keep} 次使用过的密码相同")


def set_password(user: User, new: str, *, must_change: str | None = None) -> None:
    s = uow.session()
    if user.password_hash:
        s.add(PasswordHistory(user_id=user.id, password_hash=user.password_hash))
    user.password_hash = hash_password(new)
    user.password_changed_at = utcnow()
    user.must_change_password = must_change


def logout(sess: UserSession, actor: Actor) -> None:
    uow.session().delete(sess)
    audit.record(actor, "logout", object_type="user", object_id=sess.user_id)


def kill_user_sessions(user_id: int, except_id: str | None = None) -> None:
    """End every session of a user (password, role or status change — SESS-04)."""
    stmt = delete(UserSession).where(UserSession.user_id == user_id)
    if except_id:
        stmt = stmt.where(UserSession.id != except_id)
    uow.session().execute(stmt)


# The session with its user, the user's institution and the codes and permissions of the user's enabled roles
# (`Grants`, aggregated: no Role or RolePermission objects — building them was a third of a DICOMweb frame request's
# CPU, issue 15) in one statement, built once (constructing a statement and its cache key per request cost as much
# as running it); the roles as objects (and the institution's departments, which the guard never reads) load only
# when read.
_SEP = "\x1f"  # between the aggregated codes (never in a role or permission code)
_ENABLED = (user_role.c.user_id == UserSession.user_id, Role.enabled.is_(True))
_SESSION = (
    select(
        UserSession,
        select(func.aggregate_strings(Role.code, _SEP))
        .join(user_role, user_role.c.role_id == Role.id)
        .where(*_ENABLED)
        .scalar_subquery(),
        select(func.aggregate_strings(RolePermission.permission_code, _SEP))
        .join(Role, Role.id == RolePermission.role_id)
        .join(user_role, user_role.c.role_id == Role.id)
        .where(*_ENABLED)
        .scalar_subquery(),
    )
    .options(
        joinedload(UserSession.user).lazyload(User.roles),
        joinedload(UserSession.user).joinedload(User.institution).lazyload(Institution.departments),
    )
    .where(UserSession.id == bindparam("id"))
)


def load_session(token: str | None, actor: Actor) -> UserSession | None:
    """Find a live session by cookie token; expire it on idle or absolute timeout (REQ: AUTH-05)."""
    found = load_session_grants(token, actor)
    return found[0] if found is not None else None


def load_session_grants(token: str | None, actor: Actor) -> tuple[UserSession, Grants] | None:
    """`load_session`, and the session user's role grants (read with the session, for the request guard)."""
    if not token or len(token) > 128:
        return None
    s = uow.session()
    row = s.execute(_SESSION, {"id": token_hash(token)}).unique().first()
    if row is None:
        return None
    sess, roles, permissions = row
    settings = config.current()
    now = utcnow()
    grants = Grants(frozenset((roles or "").split(_SEP)) - {""}, frozenset((permissions or "").split(_SEP)) - {""})
    admin = is_admin_permission_set(grants.permissions)
    idle = settings.admin_idle_timeout_min if admin else settings.idle_timeout_min
    expired = now - sess.last_seen_at > timedelta(minutes=idle) or now - sess.created_at > timedelta(
        hours=settings.absolute_timeout_hours
    )
    if expired:
        uid, sid = sess.user_id, sess.id
        who = actor_for(sess.user, actor)  # AUD-02: role and hospital too, not just the user id

        def expire(s2: Session) -> None:
            s2.execute(delete(UserSession).where(UserSession.id == sid))
            audit.record(who, "session_expired", object_type="user", object_id=uid)

        expire(s)
        uow.after_rollback(expire)  # the caller answers 401, which rolls back; the expiry must stick
        return None
    if now - sess.last_seen_at > timedelta(seconds=15):
        sess.last_seen_at = now
        if sess.state == "active":
            sess.user.last_active_at = now
    return sess, grants
