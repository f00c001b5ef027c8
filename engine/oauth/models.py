"""OAuth 2.0 clients, access tokens and authorization codes (issue 15; REQ: DSEC-11).

Secrets, tokens and codes are stored as SHA-256 hex digests only. They are 256-bit random values made by the
server, not passwords a person chose: a fast hash cannot be brute-forced at that entropy, and a slow one (argon2)
would only hand every unauthenticated POST /oauth/token a ~50 ms CPU cost to spend (engine/oauth/clients.py).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from engine.accounts.models import Institution
from engine.db import Base, UTCDateTime, utcnow


class OAuthClient(Base):
    """A machine client (AI system, another archive) or an interactive viewer, bound to one institution."""

    __tablename__ = "oauth_client"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    institution_id: Mapped[int] = mapped_column(ForeignKey("institution.id"), index=True)
    # Space-separated, from engine.oauth.clients.SCOPES.
    scopes: Mapped[str] = mapped_column(String(256))
    # None for a public client (authorization code + PKCE only).
    secret_hash: Mapped[str | None] = mapped_column(String(64))
    # Newline-separated redirect URIs, matched exactly; empty: no authorization-code grant.
    redirect_uris: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(160))
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_by: Mapped[str | None] = mapped_column(String(160))

    institution: Mapped[Institution] = relationship(lazy="joined")


class OAuthToken(Base):
    """An opaque bearer access token (its SHA-256 only). `user_id` and `code_id` are set for authorization-code
    tokens: `code_id` names the code it was issued for, so that a second use of that code revokes it (RFC 6749
    §4.1.2)."""

    __tablename__ = "oauth_token"
    __table_args__ = (Index("ix_oauth_token_client_active", "client_pk", "revoked_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    client_pk: Mapped[int] = mapped_column(ForeignKey("oauth_client.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"), index=True)
    scope: Mapped[str] = mapped_column(String(256))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    code_id: Mapped[int | None] = mapped_column(
        ForeignKey("oauth_authorization_code.id", ondelete="SET NULL"), index=True
    )

    client: Mapped[OAuthClient] = relationship(lazy="joined")


class OAuthAuthorizationCode(Base):
    """A single-use authorization code (its SHA-256 only) with its PKCE challenge (S256). Exchanged, it is marked
    `used_at`, not deleted: a second exchange is refused and revokes the token the first one got (RFC 6749 §4.1.2).
    Rows are purged once no token issued from them can still be valid (api/oauth/server.py)."""

    __tablename__ = "oauth_authorization_code"

    id: Mapped[int] = mapped_column(primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    client_pk: Mapped[int] = mapped_column(ForeignKey("oauth_client.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"), index=True)
    redirect_uri: Mapped[str] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(String(256))
    code_challenge: Mapped[str] = mapped_column(String(128))
    code_challenge_method: Mapped[str] = mapped_column(String(8))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
