"""Request guards: deny-by-default permissions, sessions, bearer tokens, CSRF, body limits, security headers.

REQ: AC-01, SESS-01..03, SESS-06, WEB-01, WEB-04..06, AUTH-07, DSEC-11.
"""

from __future__ import annotations

import hmac
import secrets
import uuid
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar
from urllib.parse import urlsplit

from flask import Flask, Response, g, redirect, request

from engine import audit, config, uow
from engine.accounts import auth
from engine.accounts.queries import effective_permissions
from engine.actor import Actor
from engine.errors import AuthenticationFailed, DomainError, Forbidden, ValidationFailed
from engine.oauth import tokens as oauth_tokens

F = TypeVar("F", bound=Callable[..., Any])

PUBLIC = "public"
AUTHENTICATED = "authenticated"
PERMISSION_ATTR = "_telerad_permission"
STATES_ATTR = "_telerad_states"
ANON_CSRF_ATTR = "_telerad_anon_csrf"
ANON_CSRF_COOKIE = "telerad_csrf"
CLIENT_AUTH_ATTR = "_telerad_client_auth"
# OAuth 2.0 bearer tokens are accepted under this prefix only (issue 15; REQ: DSEC-11).
BEARER_PREFIX = "/dicomweb/"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Paths the guard covers (deny by default, sessions, CSRF, no-store); everything else is the SPA and its assets.
GUARDED_PREFIXES = ("/api/", "/dicomweb/", "/oauth/")
GUARDED_ROOTS = frozenset({"/api", "/dicomweb", "/oauth"})
MAX_JSON_DEPTH = 32


class PayloadTooLarge(DomainError):
    status = 413


class UnsupportedMediaType(DomainError):
    status = 415


def requires(
    permission: str, *, states: tuple[str, ...] = ("active",), anon_csrf: bool = False, client_auth: bool = False
) -> Callable[[F], F]:
    """Declare who may call a view: PUBLIC, AUTHENTICATED or a permission code (AC-01 deny by default).

    `states` lists the session states allowed (a session waiting for MFA or a password change may only
    reach the auth endpoints). `anon_csrf` marks public unsafe endpoints that need the double-submit token.
    `client_auth` marks a PUBLIC endpoint that authenticates from the request's own credentials (OAuth's
    /oauth/token): no session cookie is read or set, so there is nothing ambient to forge and no CSRF check.
    """

    def deco(fn: F) -> F:
        setattr(fn, PERMISSION_ATTR, permission)
        setattr(fn, STATES_ATTR, states)
        setattr(fn, ANON_CSRF_ATTR, anon_csrf)
        setattr(fn, CLIENT_AUTH_ATTR, client_auth)
        return fn

    return deco


def deny(actor: Actor, details: dict[str, Any]) -> NoReturn:
    """Refuse a function the actor does not hold (AC-03): 403 ``forbidden``, audited as ``permission_denied`` (AC-05:
    the event survives the rollback). `details` names the function: ``{"permission": code}`` or what a view checks."""
    audit.record(
        actor,
        "permission_denied",
        outcome="failure",
        object_type="endpoint",
        object_id=request.endpoint,
        reason=f"{request.method} {request.path[:200]}",
        details=details,
    )
    raise Forbidden("forbidden", "没有权限执行此操作", details)


def mark_public(app: Flask, endpoint: str) -> None:
    """Declare a third-party view (e.g. the OpenAPI document) public without touching the function."""
    app.extensions.setdefault("telerad_public_endpoints", set()).add(endpoint)


def permission_of(app: Flask, endpoint: str | None) -> str | None:
    """The permission a route declared, or None (which the guard and the AC-01 test treat as a defect)."""
    if not endpoint:
        return None
    if endpoint in app.extensions.get("telerad_public_endpoints", set()):
        return PUBLIC
    view = app.view_functions.get(endpoint)
    return getattr(view, PERMISSION_ATTR, None) if view else None


def current_actor() -> Actor:
    return g.actor  # type: ignore[no-any-return]


def json_depth_ok(raw: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Scan a JSON text for nesting deeper than `limit` without parsing it (REQ: WEB-06)."""
    depth = 0
    in_str = False
    escape = False
    for byte in raw:
        if in_str:
            if escape:
                escape = False
            elif byte == 0x5C:
                escape = True
            elif byte == 0x22:
                in_str = False
        elif byte == 0x22:
            in_str = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            if depth > limit:
                return False
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return True


def _same_origin(origin: str) -> bool:
    if origin == "null":
        return False
    parts = urlsplit(origin)
    return f"{parts.scheme}://{parts.netloc}" == request.host_url.rstrip("/") or parts.netloc == request.host


def _anon_csrf_value() -> str:
    token = request.cookies.get(ANON_CSRF_COOKIE, "")
    return token if 20 <= len(token) <= 128 else ""


def issue_anon_csrf(resp: Response) -> str:
    token = secrets.token_urlsafe(32)
    settings = config.current()
    resp.set_cookie(ANON_CSRF_COOKIE, token, httponly=True, samesite="Strict", secure=settings.production, path="/api/")
    return token


def _build_actor(found: tuple[Any, auth.Grants] | None) -> Actor:
    meta = Actor.anonymous(request.remote_addr, (request.user_agent.string or "")[:256], g.request_id)
    if found is None:
        return meta
    sess, grants = found
    perms = effective_permissions(sess.user, grants.permissions) if sess.state == "active" else frozenset()
    return auth.actor_for(sess.user, meta, permissions=perms, session_id=sess.id, roles=grants.roles)


def install(app: Flask) -> None:
    settings = config.current()

    @app.before_request
    def _guard() -> Any:
        g.request_id = uuid.uuid4().hex
        g.session = None
        g.new_token = None
        g.clear_cookie = False
        g.oauth = None
        g.www_authenticate = None
        # AUTH-07: in production only TLS (terminated by the trusted proxy) reaches the app.
        if settings.production and not request.is_secure:
            if request.method in SAFE_METHODS:
                return redirect(request.url.replace("http://", "https://", 1), code=301)
            return Response(status=301, headers={"Location": request.url.replace("http://", "https://", 1)})
        if not guarded(request.path):
            g.actor = Actor.anonymous(request.remote_addr, request.user_agent.string, g.request_id)
            return None
        if request.method not in SAFE_METHODS:
            _check_body()
        view = app.view_functions.get(request.endpoint or "")
        permission = permission_of(app, request.endpoint)
        if "access_token" in request.args:  # RFC 6750 §2.3 refused: URLs end up in logs, history and Referer
            raise AuthenticationFailed("token_in_query", "访问令牌不能放在网址中，请使用 Authorization: Bearer 请求头")
        bearer = _bearer_token()
        if bearer is not None:
            return _bearer_guard(view, permission, bearer)
        if view is not None and getattr(view, CLIENT_AUTH_ATTR, False):
            g.actor = Actor.anonymous(request.remote_addr, (request.user_agent.string or "")[:256], g.request_id)
            return None  # its own client authentication (OAuth); no cookie read, none set, no CSRF
        token = request.cookies.get(settings.session_cookie_name)
        anon = Actor.anonymous(request.remote_addr, (request.user_agent.string or "")[:256], g.request_id)
        found = auth.load_session_grants(token, anon) if token else None
        sess = found[0] if found is not None else None
        if token and sess is None:
            g.clear_cookie = True
        g.session = sess
        g.actor = _build_actor(found)
        if view is None:
            return None  # 404 / 405 answered by Flask
        if permission is None:
            raise Forbidden("no_permission_declared", "接口未声明权限")  # deny by default (AC-01)
        if sess is None and permission != PUBLIC:
            # Not logged in: say so (401) before any CSRF check — an anonymous POST (e.g. a STOW-RS client that
            # forgot its token) learns it must authenticate, not that a browser token is missing.
            if request.path.startswith(BEARER_PREFIX):
                g.www_authenticate = 'Bearer realm="telerad"'
            raise AuthenticationFailed("unauthenticated", "请先登录或登录已超时")
        if request.method not in SAFE_METHODS:
            _check_csrf(view, sess)
        if permission == PUBLIC:
            return None
        if sess.state not in getattr(view, STATES_ATTR, ("active",)):
            if sess.state == "mfa_required":
                raise Forbidden("mfa_required", "请先完成双因素认证")
            if sess.state == "password_change_required":
                raise Forbidden("password_change_required", "请先修改密码")
            raise Forbidden("mfa_not_required", "当前会话不需要双因素认证")  # an active session on /api/auth/mfa*
        if permission != AUTHENTICATED and not g.actor.has(permission):
            deny(g.actor, {"permission": permission})
        return None

    def _bearer_token() -> str | None:
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        return value.strip() if scheme.lower() == "bearer" else None

    def _bearer_guard(view: Any, permission: str | None, token: str) -> None:
        """A request with `Authorization: Bearer`: only under /dicomweb/, never with the session cookie, no CSRF
        (a bearer token is not sent by the browser on its own), and the token's actor (REQ: DSEC-11)."""
        if not request.path.startswith(BEARER_PREFIX):
            raise AuthenticationFailed("bearer_not_allowed", "访问令牌只能用于 DICOMweb 接口（/dicomweb/）")
        meta = Actor.anonymous(request.remote_addr, (request.user_agent.string or "")[:256], g.request_id)
        resolved = oauth_tokens.resolve(token, meta)
        if resolved is None:
            g.www_authenticate = 'Bearer realm="telerad", error="invalid_token"'
            raise AuthenticationFailed("invalid_token", "访问令牌无效、已过期或已吊销")
        g.oauth = resolved
        g.actor = resolved.actor
        if view is None:
            return None
        if permission is None:
            raise Forbidden("no_permission_declared", "接口未声明权限")
        if permission in (PUBLIC, AUTHENTICATED) or g.actor.has(permission):
            return None
        g.www_authenticate = 'Bearer realm="telerad", error="insufficient_scope"'
        deny(g.actor, {"permission": permission})

    def _check_body() -> None:
        length = request.content_length
        if request.mimetype == "application/json" or request.is_json:
            if length is not None and length > settings.max_json_bytes:
                raise PayloadTooLarge("too_large", "请求内容过大")
            raw = request.get_data(cache=True)
            if len(raw) > settings.max_json_bytes:
                raise PayloadTooLarge("too_large", "请求内容过大")
            if not json_depth_ok(raw):
                raise ValidationFailed("json_too_deep", f"JSON 嵌套层数不能超过 {MAX_JSON_DEPTH}")
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ValidationFailed("bad_encoding", "请求内容必须是 UTF-8 编码") from exc

    def _check_csrf(view: Any, sess: Any) -> None:
        origin = request.headers.get("Origin")
        if origin is not None and not _same_origin(origin):
            raise Forbidden("csrf_origin", "跨站请求被拒绝")
        sent = request.headers.get("X-CSRF-Token", "")
        if getattr(view, ANON_CSRF_ATTR, False):
            expected = _anon_csrf_value()
        elif permission_of(app, request.endpoint) == PUBLIC:
            # Public JSON endpoints (login): a JSON content type cannot be sent cross-site without CORS.
            if not request.is_json:
                raise UnsupportedMediaType("unsupported_media_type", "请求必须是 JSON")
            return
        else:
            expected = sess.csrf_token if sess is not None else ""
        if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
            raise Forbidden("csrf_failed", "CSRF 校验失败，请刷新页面后重试")

    @app.after_request
    def _finish(resp: Response) -> Response:
        if resp.status_code < 400:
            uow.commit()
        else:
            uow.rollback()
        name = settings.session_cookie_name
        if g.get("new_token"):
            resp.set_cookie(name, g.new_token, httponly=True, secure=settings.production, samesite="Lax", path="/")
        elif g.get("clear_cookie"):
            resp.delete_cookie(name, path="/", secure=settings.production, httponly=True, samesite="Lax")
        if g.get("www_authenticate") and resp.status_code in (401, 403):
            resp.headers["WWW-Authenticate"] = g.www_authenticate
        _headers(resp)
        return resp

    def _headers(resp: Response) -> None:
        # WEB-04 / PII-06: strict CSP, no framing, no referrer, no caching of API answers (PHI).
        h = resp.headers
        h.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data: blob:; "
            "font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'self'; "
            "frame-ancestors 'none'; form-action 'self'",
        )
        h["X-Content-Type-Options"] = "nosniff"
        h["X-Frame-Options"] = "DENY"
        h["Referrer-Policy"] = "no-referrer"
        h["Cross-Origin-Opener-Policy"] = "same-origin"
        h["Permissions-Policy"] = "camera=(self), microphone=(), geolocation=()"
        if guarded(request.path):
            h["Cache-Control"] = "no-store"
            h["Pragma"] = "no-cache"
        if settings.production:
            h["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
        h["X-Request-ID"] = g.get("request_id", "")


def guarded(path: str) -> bool:
    """Whether the request guard covers `path`: the JSON API, DICOMweb and OAuth (not the SPA)."""
    return path.startswith(GUARDED_PREFIXES) or path in GUARDED_ROOTS


def set_session_token(token: str) -> None:
    g.new_token = token


def end_session_cookie() -> None:
    g.clear_cookie = True
