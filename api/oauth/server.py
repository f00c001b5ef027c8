"""The Authlib authorization server: client credentials, and authorization code with PKCE (S256 only).

REQ: DSEC-11, AUTH-04. Errors at /oauth/token and in redirects follow RFC 6749 §5.2 / §4.1.2.1 (`error`,
`error_description`), not the `{"code", "message", "details"}` body of the rest of the API (api/errors.py): OAuth
client libraries read these fields. `error_description` is Chinese like every other message here; RFC 6749 asks for
ASCII there, a deliberate deviation (JSON is UTF-8, and in a redirect it is percent-encoded).
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import (
    ClientMixin,
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Error,
    grants,
)
from authlib.oauth2.rfc6749.util import extract_basic_authorization
from authlib.oauth2.rfc7636 import CodeChallenge
from flask import Flask, Response, g
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from engine import audit, config, uow
from engine.accounts.models import User
from engine.db import utcnow
from engine.oauth import clients, tokens
from engine.oauth.models import OAuthAuthorizationCode, OAuthClient

CODE_LIFETIME_S = 60  # RFC 6749 §4.1.2: short-lived, at most 10 minutes recommended

ERRORS_ZH = {
    "invalid_client": "客户端认证失败",
    "invalid_request": "请求参数不正确",
    "invalid_grant": "授权码无效、已使用或已过期",
    "unauthorized_client": "该客户端无权使用此授权方式",
    "unsupported_grant_type": "不支持的授权方式",
    "unsupported_response_type": "不支持的 response_type",
    "invalid_scope": "申请的权限范围无效或超出该客户端的范围",
    "access_denied": "用户拒绝了授权",
    "client_locked": "客户端认证失败次数过多，已锁定，请稍后再试",
    "slow_down": "请求过于频繁，请稍后再试",
}
DETAILS_ZH = {
    "Code challenge failed.": "code_verifier 与授权请求的 code_challenge 不符",
    "Invalid 'redirect_uri' in request.": "redirect_uri 与申请授权码时的不一致",
    "Missing 'code_verifier'": "缺少 code_verifier（必须使用 PKCE）",
    "Invalid 'code_verifier'": "code_verifier 格式不正确",
    "Missing 'code_challenge'": "缺少 code_challenge（必须使用 PKCE，方法为 S256）",
    "Invalid 'code_challenge'": "code_challenge 格式不正确",
    "Unsupported 'code_challenge_method'": "code_challenge_method 只支持 S256",
    "Missing 'redirect_uri' in request.": "缺少 redirect_uri",
    "Missing 'code' in request.": "缺少授权码 code",
}


class ClientLocked(OAuth2Error):
    error = "invalid_client"
    status_code = 423


class ClientAuthFailed(Exception):
    """Raised out of Authlib (not an OAuth2Error, which it would answer itself) so the view's throttle counts it."""

    def __init__(self, error: OAuth2Error) -> None:
        super().__init__(error.error)
        self.error = error


class Client(ClientMixin):  # type: ignore[misc]
    """Authlib's view of an OAuthClient row."""

    def __init__(self, row: OAuthClient) -> None:
        self.row = row
        self.uris = [u for u in row.redirect_uris.split("\n") if u]
        self.scopes = row.scopes.split()

    @property
    def public(self) -> bool:
        return self.row.secret_hash is None

    def get_client_id(self) -> str:
        return self.row.client_id

    def get_default_redirect_uri(self) -> None:
        return None  # the request must name one of the registered URIs, matched exactly

    def get_allowed_scope(self, scope: str | None) -> str:
        if not scope:
            return " ".join(self.scopes)
        return " ".join(s for s in self.scopes if s in scope.split())

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.uris

    def check_client_secret(self, client_secret: str) -> bool:
        return clients.secret_matches(self.row, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == ("none" if self.public else "client_secret_basic")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and bool(self.uris)

    def check_grant_type(self, grant_type: str) -> bool:
        if grant_type == "authorization_code":
            return bool(self.uris)
        return grant_type == "client_credentials" and not self.public


class Code:
    """Authlib's view of an authorization code row."""

    def __init__(self, row: OAuthAuthorizationCode) -> None:
        self.row = row
        self.code_challenge = row.code_challenge
        self.code_challenge_method = row.code_challenge_method

    def get_redirect_uri(self) -> str:
        return self.row.redirect_uri

    def get_scope(self) -> str:
        return self.row.scope


def _scope_within(client: Client, scope: str | None) -> None:
    if scope and not set(scope.split()) <= set(client.scopes):
        raise InvalidScopeError()


def _client_secret_basic(query_client: Any, request: Any) -> Client | None:
    """client_secret_basic with AUTH-04's lockout; unknown and wrong-secret answered identically."""
    client_id, secret = extract_basic_authorization(request.headers)
    if not client_id:
        return None
    client_id = client_id[:150]
    actor = replace(g.actor, username=f"oauth:{client_id[:64]}")  # the name tried, like a failed login's username
    if clients.locked_until(client_id) is not None:
        audit.record(
            actor,
            "oauth_client_auth_failure",
            outcome="failure",
            object_type="oauth_client",
            object_id=client_id[:64],
            reason="客户端已锁定",
        )
        raise ClientAuthFailed(ClientLocked())
    client = query_client(client_id)
    if not clients.secret_matches(client.row if client else None, secret or ""):
        audit.record(
            actor,
            "oauth_client_auth_failure",
            outcome="failure",
            object_type="oauth_client",
            object_id=client_id[:64],
            reason="客户端标识或密钥错误",
        )
        clients.count_failure(actor, client_id)
        raise ClientAuthFailed(InvalidClientError(status_code=401))
    clients.clear_failures(client_id)
    return client  # type: ignore[no-any-return]


class ClientCredentialsGrant(grants.ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic"]

    def validate_requested_scope(self) -> None:
        _scope_within(self.request.client, self.request.payload.scope)


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "none"]

    def validate_requested_scope(self) -> None:
        _scope_within(self.request.client, self.request.payload.scope)

    def save_authorization_code(self, code: str, request: Any) -> None:
        data = request.payload.data
        s = uow.session()
        # codes no token issued from can still be valid: unused ones past their minute, used ones past a token's life
        s.execute(delete(OAuthAuthorizationCode).where(OAuthAuthorizationCode.expires_at < _purge_before()))
        s.add(
            OAuthAuthorizationCode(
                code_hash=clients.digest(code),
                client_pk=request.client.row.id,
                user_id=request.user.id,
                redirect_uri=request.payload.redirect_uri,
                scope=request.client.get_allowed_scope(request.payload.scope),
                code_challenge=data.get("code_challenge"),
                code_challenge_method=data.get("code_challenge_method"),
                expires_at=utcnow() + timedelta(seconds=CODE_LIFETIME_S),
            )
        )

    def query_authorization_code(self, code: str, client: Client) -> Code | None:
        row = (
            uow.session()
            .execute(select(OAuthAuthorizationCode).where(OAuthAuthorizationCode.code_hash == clients.digest(code)))
            .scalar_one_or_none()
        )
        if row is not None and row.used_at is not None:
            _code_reused(row, client)  # whoever presents it: the code has leaked or is replayed
            return None
        if row is None or row.client_pk != client.row.id or row.expires_at <= utcnow():
            return None
        return Code(row)

    def delete_authorization_code(self, authorization_code: Code) -> None:
        # Single use, also under two concurrent redemptions: only the UPDATE that marked the code used issues a token;
        # the other is a second use like any other (it revokes what the first got, once that has committed).
        row = authorization_code.row
        marked = (
            uow.session()
            .execute(
                update(OAuthAuthorizationCode)
                .where(OAuthAuthorizationCode.id == row.id, OAuthAuthorizationCode.used_at.is_(None))
                .values(used_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            .rowcount
        )
        if marked != 1:
            _code_reused(row, self.request.client)
            raise InvalidGrantError()

    def authenticate_user(self, authorization_code: Code) -> User | None:
        user = uow.session().get(User, authorization_code.row.user_id)
        return user if user is not None and user.enabled and user.review_status == "approved" else None


class S256Only(CodeChallenge):  # type: ignore[misc]
    """PKCE is required on every authorization request, and only with S256 (no `plain`)."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("Missing 'code_challenge'")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("Unsupported 'code_challenge_method'")
        super().validate_code_challenge(grant, redirect_uri)


class Server(AuthorizationServer):  # type: ignore[misc]
    def handle_error_response(self, request: Any, error: OAuth2Error) -> Response:
        text = DETAILS_ZH.get(error.description or "", "")
        code = "client_locked" if isinstance(error, ClientLocked) else error.error
        body = {"error": error.error, "error_description": text or ERRORS_ZH.get(code, "请求失败")}
        if error.redirect_uri:
            if getattr(error, "state", None):
                body["state"] = error.state
            sep = "&" if "?" in error.redirect_uri else "?"
            return Response(status=302, headers={"Location": f"{error.redirect_uri}{sep}{urlencode(body)}"})
        headers = {"Content-Type": "application/json"}
        if error.status_code == 401:
            headers["WWW-Authenticate"] = f'Basic realm="telerad", error="{error.error}"'
        return Response(json.dumps(body, ensure_ascii=False), status=error.status_code, headers=headers)


def _purge_before() -> datetime:
    return utcnow() - timedelta(seconds=max(config.current().oauth_token_lifetime_s, CODE_LIFETIME_S) + 60)


def _code_reused(row: OAuthAuthorizationCode, client: Client | None) -> None:
    """A used authorization code presented again (RFC 6749 §4.1.2): the tokens issued from it are revoked, and the
    attempt audited — both after the invalid_grant answer's rollback too (uow.after_rollback; the audit event is a
    failure, replayed by engine/audit.py)."""
    code_id, client_pk, user_id = row.id, row.client_pk, row.user_id

    def revoke(s: Session) -> None:
        tokens.revoke_issued_from(s, code_id)

    revoked = tokens.revoke_issued_from(uow.session(), code_id)
    uow.after_rollback(revoke)
    presenter = client.row.client_id if client is not None else None
    audit.record(
        g.actor,
        "oauth_code_reused",
        outcome="failure",
        object_type="oauth_client",
        object_id=presenter,
        reason="授权码被再次使用：已拒绝，并吊销用它换取的访问令牌",
        details={
            "code_client_pk": client_pk,
            "presented_by": presenter,
            "user_id": user_id,
            "tokens_revoked": revoked,
        },
    )


def _query_client(client_id: str) -> Client | None:
    row = clients.active(client_id)
    return Client(row) if row is not None else None


def _save_token(token: dict[str, Any], request: Any) -> None:
    client = request.client
    user = getattr(request, "user", None)
    code = getattr(request, "authorization_code", None)
    tokens.save(
        client.row,
        token["access_token"],
        token["scope"],
        token["expires_in"],
        user.id if user else None,
        code.row.id if isinstance(code, Code) else None,
    )
    audit.record(
        tokens.client_actor(client.row, g.actor),
        "oauth_token_issued",
        object_type="oauth_client",
        object_id=client.row.client_id,
        reason=f"签发访问令牌（{'授权码' if user else '客户端凭据'}），范围：{token['scope']}",
        details={"grant_type": request.payload.grant_type, "user_id": user.id if user else None},
    )


def _generate(
    grant_type: str,
    client: Client,
    user: Any = None,
    scope: str | None = None,
    expires_in: int | None = None,
    include_refresh_token: bool = False,
) -> dict[str, Any]:
    """An opaque bearer token (no refresh token: a client asks again; a viewer's user consents again)."""
    lifetime = config.current().oauth_token_lifetime_s
    return {
        "access_token": tokens.new_token(),
        "token_type": "Bearer",
        "expires_in": lifetime,
        "scope": client.get_allowed_scope(scope),
    }


def build(app: Flask) -> Server:
    server = Server(app, query_client=_query_client, save_token=_save_token)
    server.register_token_generator("default", _generate)
    server.register_client_auth_method("client_secret_basic", _client_secret_basic)
    server.register_grant(ClientCredentialsGrant)
    server.register_grant(AuthorizationCodeGrant, [S256Only(required=True)])
    app.extensions["telerad_oauth"] = server
    return server
