"""Which browser origins may call POST /oauth/token cross-origin (CORS; issue 15; REQ: DSEC-11, WEB-04).

A browser-based viewer using the authorization code with PKCE (OHIF, …) runs on its own origin and exchanges its
code at /oauth/token with fetch(): the browser lets it read the answer only when the answer names its origin in
Access-Control-Allow-Origin. The origins allowed are those of the redirect URIs registered for the client making the
request — a viewer registered with https://viewer.example.org/callback may call from https://viewer.example.org —
compared as RFC 6454 origins (scheme, host in lower case, port with the scheme's default left out). Never a
wildcard, never credentials (the token endpoint reads no cookie).

A preflight (OPTIONS) carries no body, so no client id: it is answered for an origin of any active client's
registered redirect URIs; the POST itself then names its client, and only that client's origins get the header.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from sqlalchemy import select

from engine import uow
from engine.oauth import clients
from engine.oauth.models import OAuthClient

_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> str | None:
    """The serialised origin of an absolute http(s) URL or Origin header value; None when it has none."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    if ":" in host:  # IPv6
        host = f"[{host}]"
    return f"{scheme}://{host}" if port in (None, _DEFAULT_PORTS[scheme]) else f"{scheme}://{host}:{port}"


def _origins(rows: list[OAuthClient]) -> set[str]:
    out = set()
    for row in rows:
        for uri in row.redirect_uris.split("\n"):
            origin = origin_of(uri) if uri else None
            if origin:
                out.add(origin)
    return out


def _wanted(origin: str | None) -> str | None:
    return origin_of(origin) if origin and origin != "null" else None


def allowed(origin: str | None, client_id: str) -> bool:
    """Whether `origin` (the request's Origin header) may read the token endpoint's answer to `client_id`: an origin
    of the redirect URIs registered for that client (an active one)."""
    wanted = _wanted(origin)
    row = clients.active(client_id) if wanted else None
    return row is not None and wanted in _origins([row])


def preflight_allowed(origin: str | None) -> bool:
    """Whether a preflight from `origin` is answered: an origin of any active client's registered redirect URIs."""
    wanted = _wanted(origin)
    if wanted is None:
        return False
    stmt = select(OAuthClient).where(OAuthClient.revoked_at.is_(None), OAuthClient.redirect_uris != "")
    return wanted in _origins(list(uow.session().execute(stmt).unique().scalars()))
