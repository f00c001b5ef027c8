"""Bearer access tokens: issue (stored hashed) and resolve to an Actor (issue 15; REQ: DSEC-11).

A client-credentials token acts as ``oauth:<client_id>`` of the client's institution, holding only the permissions
its scopes carry. An authorization-code token acts as the user who consented: the user's own permissions (and so
their visibility) intersected with the granted scopes' — a viewer never sees more than the doctor would.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from engine import uow
from engine.accounts.auth import actor_for
from engine.accounts.models import User
from engine.accounts.queries import effective_permissions
from engine.actor import Actor
from engine.db import utcnow
from engine.oauth import clients
from engine.oauth.models import OAuthClient, OAuthToken


def new_token() -> str:
    return secrets.token_urlsafe(32)


def save(
    client: OAuthClient,
    access_token: str,
    scope: str,
    expires_in: int,
    user_id: int | None = None,
    code_id: int | None = None,
) -> None:
    """Store a new token (hashed); `code_id`: the authorization code it was issued for."""
    now = utcnow()
    uow.session().add(
        OAuthToken(
            token_hash=clients.digest(access_token),
            client_pk=client.id,
            user_id=user_id,
            scope=scope,
            issued_at=now,
            expires_at=now + timedelta(seconds=expires_in),
            code_id=code_id,
        )
    )


def revoke_issued_from(s: Session, code_id: int) -> int:
    """Revoke the tokens issued for authorization code `code_id` (a second use of the code, RFC 6749 §4.1.2) in
    session `s`; how many were still unrevoked."""
    return int(
        s.execute(
            update(OAuthToken)
            .where(OAuthToken.code_id == code_id, OAuthToken.revoked_at.is_(None))
            .values(revoked_at=utcnow())
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
    )


def client_actor(client: OAuthClient, meta: Actor, permissions: frozenset[str] = frozenset()) -> Actor:
    """The actor a client acts as (and is audited as): ``oauth:<client_id>`` of its institution."""
    inst = client.institution
    return Actor(
        user_id=None,
        username=f"oauth:{client.client_id}",
        client_id=client.client_id,
        institution_id=inst.id,
        institution_kind=inst.kind,
        institution_code=inst.code,
        permissions=permissions,
        ip=meta.ip,
        user_agent=meta.user_agent,
        request_id=meta.request_id,
    )


@dataclass(frozen=True)
class Bearer:
    actor: Actor
    client_id: str
    scopes: tuple[str, ...]


def resolve(token: str, meta: Actor) -> Bearer | None:
    """The actor a bearer token acts as, or None when it is unknown, expired, revoked, or its client or user is.

    `meta` carries the request metadata (ip, user agent, request id) for the audit log.
    """
    if not token or len(token) > 256:
        return None
    s = uow.session()
    row = (
        s.execute(select(OAuthToken).where(OAuthToken.token_hash == clients.digest(token)))
        .unique()
        .scalar_one_or_none()
    )
    if row is None or row.revoked_at is not None or row.expires_at <= utcnow() or row.client.revoked_at is not None:
        return None
    client = row.client
    inst = client.institution
    scopes = tuple(row.scope.split())
    granted = clients.permissions_for(list(scopes), inst.kind)
    if row.user_id is None:
        return Bearer(client_actor(client, meta, granted), client.client_id, scopes)
    user = s.get(User, row.user_id)
    if user is None or not user.enabled or user.review_status != "approved":
        return None
    actor = actor_for(user, meta, permissions=effective_permissions(user) & granted)
    return Bearer(actor, client.client_id, scopes)
