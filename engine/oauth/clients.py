"""OAuth 2.0 clients: registration, listing, revocation, secret checks and lockout (issue 15; REQ: DSEC-11, AUTH-04).

A client is bound to one institution and a set of scopes. Its secret (and every token and code) is a 256-bit random
value made here and stored as a SHA-256 digest: at that entropy a fast hash cannot be brute-forced, and argon2 (what
passwords use) would add ~50 ms of CPU to every unauthenticated POST /oauth/token — a cost an attacker can spend at
will. Failed client authentication locks the client id like a username (AUTH-04): 5 failures in 15 minutes lock it
for 30, whether or not the client exists, in the same `login_throttle` table under the key ``oauth:<client_id>``
(usernames cannot contain ":", engine/accounts/services.py USERNAME_RE).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from engine import audit, config, uow
from engine.accounts.models import Institution, LoginThrottle
from engine.accounts.permissions import BY_CODE, scope_allows
from engine.actor import Actor
from engine.db import utcnow
from engine.errors import Conflict, NotFound, ValidationFailed
from engine.oauth.models import OAuthClient, OAuthToken

# Scope → the permission it carries, and its Chinese label (the admin page and the consent page show these).
SCOPES: dict[str, tuple[str, str]] = {
    "dicomweb.read": ("image.read", "读取影像（QIDO-RS / WADO-RS）"),
    "dicomweb.write": ("image.write", "上传影像（STOW-RS）"),
    "ai.write": ("ai.write", "写入AI分析结果"),
}
CLIENT_ID_RE = re.compile(r"^[a-z0-9_-]{8,64}$")
MAX_REDIRECT_URIS = 10
_DUMMY = hashlib.sha256(b"telerad-no-such-client").hexdigest()


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def parse_scopes(text: str | None) -> list[str]:
    """The scopes of a space-separated string, in catalogue order.

    Raises:
        ValidationFailed: empty, or a scope outside SCOPES.
    """
    wanted = (text or "").split()
    unknown = sorted(set(wanted) - set(SCOPES))
    if unknown:
        raise ValidationFailed("invalid_scope", "权限范围无效：" + "、".join(unknown), {"scopes": unknown})
    if not wanted:
        raise ValidationFailed("invalid_scope", "至少选择一个权限范围")
    return [s for s in SCOPES if s in wanted]


def permissions_for(scopes: list[str] | str, institution_kind: str | None) -> frozenset[str]:
    """The permissions a set of scopes carries, less those the institution's kind may not hold (AC-02)."""
    names = scopes.split() if isinstance(scopes, str) else scopes
    perms = {SCOPES[s][0] for s in names if s in SCOPES}
    return frozenset(p for p in perms if scope_allows(BY_CODE[p].scope, institution_kind))


def _check_redirect_uri(uri: str) -> str:
    parts = urlsplit(uri)
    loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if parts.fragment or not parts.netloc or not (parts.scheme == "https" or (parts.scheme == "http" and loopback)):
        raise ValidationFailed(
            "invalid_redirect_uri",
            "回调地址必须是完整的 https 地址（本机调试可用 http://127.0.0.1），且不能带 # 片段",
            {"redirect_uri": uri[:200]},
        )
    return uri


@dataclass
class NewClient:
    client: OAuthClient
    secret: str | None  # shown once; None for a public client


def create(
    actor: Actor,
    *,
    name: str,
    institution_code: str,
    scopes: str,
    redirect_uris: list[str] | None = None,
    public: bool = False,
) -> NewClient:
    """Register a client. A public client (no secret) must have redirect URIs: it may only use the
    authorization code with PKCE.

    Raises:
        ValidationFailed: bad name, scopes or redirect URIs, or a public client without redirect URIs.
        NotFound: unknown institution.
    """
    s = uow.session()
    name = (name or "").strip()
    if not 1 <= len(name) <= 128:
        raise ValidationFailed("invalid_name", "客户端名称不能为空，且不超过 128 个字符")
    wanted = parse_scopes(scopes)
    uris = [_check_redirect_uri(u.strip()) for u in (redirect_uris or []) if u.strip()]
    if len(uris) > MAX_REDIRECT_URIS:
        raise ValidationFailed("too_many_redirect_uris", f"回调地址不能超过 {MAX_REDIRECT_URIS} 个")
    if public and not uris:
        raise ValidationFailed("public_client_needs_redirect", "公开客户端（无密钥）只能用授权码方式，必须登记回调地址")
    inst = s.execute(select(Institution).where(Institution.code == institution_code)).unique().scalar_one_or_none()
    if inst is None or not inst.enabled:
        raise NotFound("institution_not_found", "机构不存在或已停用", {"institution": institution_code})
    secret = None if public else secrets.token_urlsafe(32)
    client = OAuthClient(
        client_id=secrets.token_hex(12),
        name=name,
        institution_id=inst.id,
        scopes=" ".join(wanted),
        secret_hash=digest(secret) if secret else None,
        redirect_uris="\n".join(dict.fromkeys(uris)),
        created_at=utcnow(),
        created_by=actor.username,
    )
    s.add(client)
    s.flush()
    audit.record(
        actor,
        "oauth_client_created",
        object_type="oauth_client",
        object_id=client.client_id,
        reason=f"登记接入客户端「{name}」（{inst.name}）",
        details={"scopes": wanted, "institution": inst.code, "public": public, "redirect_uris": uris},
    )
    return NewClient(client, secret)


def list_clients() -> list[OAuthClient]:
    return list(uow.session().execute(select(OAuthClient).order_by(OAuthClient.id.desc())).unique().scalars())


def revoke(actor: Actor, client_id: str) -> OAuthClient:
    """Revoke a client and every token it holds, at once.

    Raises:
        NotFound: unknown client id.
        Conflict: already revoked.
    """
    s = uow.session()
    client = s.execute(select(OAuthClient).where(OAuthClient.client_id == client_id)).unique().scalar_one_or_none()
    if client is None:
        raise NotFound("oauth_client_not_found", "接入客户端不存在", {"client_id": client_id[:64]})
    if client.revoked_at is not None:
        raise Conflict("oauth_client_revoked", "该客户端已吊销")
    now = utcnow()
    client.revoked_at, client.revoked_by = now, actor.username
    revoked = s.execute(
        update(OAuthToken)
        .where(OAuthToken.client_pk == client.id, OAuthToken.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    audit.record(
        actor,
        "oauth_client_revoked",
        object_type="oauth_client",
        object_id=client.client_id,
        reason=f"吊销接入客户端「{client.name}」及其 {revoked} 个访问令牌",
    )
    return client


def active(client_id: str | None) -> OAuthClient | None:
    """The client with this id, unless it is unknown or revoked (both answered alike)."""
    if not client_id or not CLIENT_ID_RE.match(client_id):
        return None
    client = (
        uow.session()
        .execute(select(OAuthClient).where(OAuthClient.client_id == client_id))
        .unique()
        .scalar_one_or_none()
    )
    return client if client is not None and client.revoked_at is None else None


def secret_matches(client: OAuthClient | None, secret: str) -> bool:
    """Constant-time comparison; an unknown client compares against a dummy digest (same work, same answer)."""
    stored = client.secret_hash if client is not None and client.secret_hash else _DUMMY
    ok = hmac.compare_digest(digest(secret[:512]), stored)
    return ok and client is not None and client.secret_hash is not None


# ---- lockout (AUTH-04) ----------------------------------------------------------------------------------------------
def _key(client_id: str) -> str:
    return f"oauth:{client_id[:150]}"


def locked_until(client_id: str) -> datetime | None:
    row = uow.session().get(LoginThrottle, _key(client_id))
    if row is not None and row.locked_until is not None and row.locked_until > utcnow():
        return row.locked_until
    return None


def count_failure(actor: Actor, client_id: str) -> None:
    """Count a failed client authentication after the request's rollback (the answer is a 4xx); lock at the
    threshold and audit it."""
    settings = config.current()
    key = _key(client_id)

    def apply(s: Session) -> None:
        now = utcnow()
        row = s.get(LoginThrottle, key)
        if row is None:
            row = LoginThrottle(username_norm=key, failures=0, window_start=now)
            s.add(row)
        if now - row.window_start > timedelta(minutes=settings.lockout_window_min):
            row.failures, row.window_start = 0, now
        row.failures += 1
        if row.failures >= settings.lockout_threshold:
            row.locked_until = now + timedelta(minutes=settings.lockout_duration_min)
            row.failures = 0
            audit.append(
                s,
                audit.build_row(
                    actor,
                    "oauth_client_locked",
                    outcome="failure",
                    object_type="oauth_client",
                    object_id=client_id[:64],
                    reason="接入客户端认证连续失败次数过多，已锁定",
                ),
            )
        s.flush()

    uow.after_rollback(apply)


def clear_failures(client_id: str) -> None:
    row = uow.session().get(LoginThrottle, _key(client_id))
    if row is not None:
        uow.session().delete(row)
