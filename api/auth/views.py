"""/api/auth: login, second factor, password change, logout, current user, own sessions."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import g, jsonify, request
from flask_smorest import Blueprint
from sqlalchemy import delete, select

from api.auth import throttle
from api.auth.schemas import (
    CsrfSchema,
    EnrollSchema,
    LoginResultSchema,
    LoginSchema,
    MeSchema,
    MfaSchema,
    PasswordChangeSchema,
    SessionSchema,
)
from api.extensions import client_ip, limiter
from api.security import (
    AUTHENTICATED,
    PUBLIC,
    current_actor,
    end_session_cookie,
    issue_anon_csrf,
    requires,
    set_session_token,
)
from engine import audit, config, uow
from engine.accounts import auth
from engine.accounts.models import UserSession
from engine.accounts.queries import effective_permissions, menus_of
from engine.errors import NotFound

blp = Blueprint("auth", __name__, url_prefix="/api/auth", description="登录与会话")

ALL_STATES = ("active", "mfa_required", "password_change_required")


@blp.route("/login", methods=["POST"])
@blp.arguments(LoginSchema)
@blp.response(200, LoginResultSchema)
@limiter.exempt  # only failures are limited, per (address, username) and per address: api/auth/throttle.py
@requires(PUBLIC)
def login(body: dict[str, Any]) -> Any:
    """登录（用户名 + 密码）。失败时未知用户与错误密码的响应相同。"""
    previous = request.cookies.get(config.current().session_cookie_name)
    actor = current_actor()
    # REQ: AUTH-04 — while throttled the answer is the same 429 whatever the password: it is not looked at.
    with throttle.attempt(actor, client_ip(), body["username"]):
        result = auth.login(body["username"], body["password"], actor, previous_token=previous)
    set_session_token(result.token)
    return {
        "csrf_token": result.session.csrf_token,
        "state": result.state,
        "reason": result.reason,
        "mfa_enrolled": result.mfa_enrolled,
    }


@blp.route("/csrf", methods=["GET"])
@blp.response(200, CsrfSchema)
@requires(PUBLIC)
def csrf() -> Any:
    """匿名请求（注册）使用的 CSRF 令牌（双重提交）。"""
    resp = jsonify({})
    token = issue_anon_csrf(resp)
    resp.set_data(jsonify({"csrf_token": token}).get_data())
    return resp


@blp.route("/mfa/enroll", methods=["POST"])
@blp.response(200, EnrollSchema)
@requires(AUTHENTICATED, states=("mfa_required",))
def mfa_enroll() -> Any:
    """首次绑定动态验证码（TOTP），返回密钥与 otpauth 链接（POST：会写入新密钥，受 CSRF 保护）。"""
    secret, uri = auth.mfa_enroll(g.session)
    audit.record(
        current_actor(), "config_changed", object_type="user", object_id=g.session.user_id, reason="生成双因素认证密钥"
    )
    return {"secret": secret, "otpauth_uri": uri}


@blp.route("/mfa", methods=["POST"])
@blp.arguments(MfaSchema)
@blp.response(200, LoginResultSchema)
@requires(AUTHENTICATED, states=("mfa_required",))
def mfa(body: dict[str, Any]) -> Any:
    """提交动态验证码完成双因素认证。"""
    # REQ: AUTH-04 — a wrong code counts against the same (address, user) and address ceilings as a wrong password
    # (the per-account lockout alone cannot stop a spray across accounts); while throttled the code is not checked.
    with throttle.attempt(current_actor(), client_ip(), g.session.user.username):
        token, reason = auth.mfa_verify(g.session, body["code"], current_actor())
    set_session_token(token)
    sess = uow.session().get(UserSession, auth.token_hash(token))
    return {"csrf_token": sess.csrf_token, "state": sess.state, "reason": reason, "mfa_enrolled": True}


@blp.route("/password", methods=["POST"])
@blp.arguments(PasswordChangeSchema)
@blp.response(200, LoginResultSchema)
@requires(AUTHENTICATED, states=("active", "password_change_required"))
def change_password(body: dict[str, Any]) -> Any:
    """修改本人密码。成功后其他会话全部失效。"""
    token = auth.change_password(g.session, body["old_password"], body["new_password"], current_actor())
    set_session_token(token)
    sess = uow.session().get(UserSession, auth.token_hash(token))
    return {"csrf_token": sess.csrf_token, "state": sess.state, "reason": None, "mfa_enrolled": sess.user.totp_enabled}


@blp.route("/logout", methods=["POST"])
@blp.response(204)
@requires(AUTHENTICATED, states=ALL_STATES)
def logout() -> Any:
    """退出登录：服务端会话立即失效。"""
    auth.logout(g.session, current_actor())
    end_session_cookie()
    return None


@blp.route("/me", methods=["GET"])
@blp.response(200, MeSchema)
@requires(AUTHENTICATED, states=ALL_STATES)
def me() -> Any:
    """当前用户、角色、权限与菜单。"""
    sess = g.session
    user = sess.user
    perms = effective_permissions(user) if sess.state == "active" else frozenset()
    return {
        "id": user.id,
        "username": user.username,
        "full_name": user.full_name,
        "institution": user.institution,
        "department": user.department,
        "roles": [r for r in user.roles if r.enabled],
        "permissions": sorted(perms),
        "menus": menus_of(perms, central=user.institution is not None and user.institution.kind == "central"),
        "state": sess.state,
        "csrf_token": sess.csrf_token,
        "mfa_enrolled": user.totp_enabled,
        "last_login_at": sess.prev_login_at,
        "last_login_ip": sess.prev_login_ip,
        "failed_logins_since_last": sess.failed_before_login,
        "password_expires_at": user.password_changed_at + timedelta(days=config.current().password_max_age_days),
    }


@blp.route("/sessions", methods=["GET"])
@blp.response(200, SessionSchema(many=True))
@requires(AUTHENTICATED)
def sessions() -> Any:
    """本人的在线会话。"""
    rows = (
        uow.session()
        .execute(
            select(UserSession).where(UserSession.user_id == g.session.user_id).order_by(UserSession.created_at.desc())
        )
        .unique()
        .scalars()
    )
    return [
        {
            "id": r.public_id,
            "created_at": r.created_at,
            "last_seen_at": r.last_seen_at,
            "ip": r.ip,
            "user_agent": r.user_agent,
            "current": r.id == g.session.id,
        }
        for r in rows
    ]


@blp.route("/sessions/<string:public_id>", methods=["DELETE"])
@blp.response(204)
@requires(AUTHENTICATED)
def revoke_session(public_id: str) -> Any:
    """注销本人的某个会话。"""
    s = uow.session()
    res = s.execute(
        delete(UserSession).where(UserSession.public_id == public_id, UserSession.user_id == g.session.user_id)
    )
    if not res.rowcount:  # type: ignore[attr-defined]
        raise NotFound()
    audit.record(current_actor(), "session_revoked", object_type="session", object_id=public_id)
    if public_id == g.session.public_id:
        end_session_cookie()
    return None
