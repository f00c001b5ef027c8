"""/oauth: the token endpoint, the authorization endpoint and the consent API the SPA's consent page uses.

REQ: DSEC-11, AUTH-04. Consent happens in the SPA (web/src/views/oauth/ConsentView.vue), not in a server-rendered
page: the session, its CSRF token, the login redirect, i18n and Element Plus are all there already, and the strict
CSP (no inline script or style, `form-action 'self'`) would block a form whose answer redirects to the viewer's
origin. The page reads GET /oauth/consent and posts its decision to POST /oauth/consent (JSON, CSRF header), which
answers the URL to go back to.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from authlib.oauth2.rfc6749 import OAuth2Error
from authlib.oauth2.rfc6749.util import extract_basic_authorization
from flask import Blueprint, Response, current_app, g, jsonify, redirect, request
from werkzeug.exceptions import HTTPException

from api.auth import throttle
from api.extensions import client_ip, limiter
from api.oauth import server as oauth_server
from api.security import AUTHENTICATED, PUBLIC, current_actor, requires
from engine import audit
from engine.errors import DomainError, Forbidden, RateLimited, ValidationFailed
from engine.oauth import clients, cors

blp = Blueprint("oauth", __name__, url_prefix="/oauth")
CONSENT_PAGE = "/oauth-consent"
CORS_MAX_AGE = 600  # seconds a browser may cache a preflight's answer


def _server() -> oauth_server.Server:
    return current_app.extensions["telerad_oauth"]  # type: ignore[no-any-return]


@blp.route("/token", methods=["POST"])
@limiter.exempt  # failures are limited per (address, client) and per address: api/auth/throttle.py
@requires(PUBLIC, client_auth=True)
def token() -> Any:
    """Client credentials (client_secret_basic) or authorization code + code_verifier (PKCE)."""
    key = f"oauth:{_token_client_id() or ''}"
    server = _server()
    try:
        with throttle.attempt(current_actor(), client_ip(), key):
            return server.create_token_response()
    except oauth_server.ClientAuthFailed as failed:
        return server.handle_error_response(None, failed.error)
    except RateLimited:
        return server.handle_error_response(None, _SlowDown())


class _SlowDown(OAuth2Error):  # type: ignore[misc]
    error = "slow_down"
    status_code = 429


def _token_client_id() -> str | None:
    client_id, _ = extract_basic_authorization(request.headers)
    return (client_id or request.form.get("client_id") or "")[:150] or None


@blp.after_request
def _cors(resp: Response) -> Response:
    """CORS for /oauth/token only, for a browser-based viewer (engine/oauth/cors.py): the Origin echoed when it is
    an origin of the requesting client's registered redirect URIs (a preflight: of any active client's); no
    wildcard, no credentials. Every other /oauth route, and every other answer, is left as it is."""
    if request.endpoint != "oauth.token":
        return resp
    resp.vary.add("Origin")
    origin = request.headers.get("Origin")
    if not origin:
        return resp
    if request.method == "OPTIONS":
        asked = request.headers.get("Access-Control-Request-Method", "").upper()
        if asked != "POST" or not cors.preflight_allowed(origin):
            return resp
        resp.headers["Access-Control-Allow-Methods"] = "POST"
        resp.headers["Access-Control-Allow-Headers"] = "Content-Type"
        resp.headers["Access-Control-Max-Age"] = str(CORS_MAX_AGE)
    else:
        try:
            client_id = _token_client_id()
        except HTTPException:  # a form the request could not be parsed from (413 …): answered already, no CORS
            return resp
        if client_id is None or not cors.allowed(origin, client_id):
            return resp
    resp.headers["Access-Control-Allow-Origin"] = origin
    return resp


def _grant() -> Any:
    """Validate the authorization request in the query string (client, exact redirect URI, scope, PKCE S256)."""
    return _server().get_consent_grant(end_user=None)


def _refusal(error: OAuth2Error) -> Any:
    """An invalid authorization request: redirected to the client only when its redirect URI was verified."""
    return _server().handle_error_response(None, error)


@blp.route("/authorize", methods=["GET"])
@requires(PUBLIC)
def authorize() -> Any:
    """Start of the authorization code flow: to the SPA's consent page, via the login page when not logged in."""
    try:
        _grant()
    except OAuth2Error as error:
        return _refusal(error)
    target = f"{CONSENT_PAGE}?{request.query_string.decode('ascii', 'replace')}"
    if g.session is None or g.session.state != "active":
        return redirect("/login?" + urlencode({"next": target}, quote_via=quote), code=302)
    return redirect(target, code=302)


def _consent_grant() -> Any:
    try:
        grant = _grant()
    except OAuth2Error as error:
        raise ValidationFailed(
            "invalid_authorization_request",
            oauth_server.DETAILS_ZH.get(error.description or "", "")
            or oauth_server.ERRORS_ZH.get(error.error, "授权请求无效"),
            {"error": error.error},
        ) from error
    client = grant.client.row
    actor = current_actor()
    if client.institution.kind != "central" and client.institution_id != actor.institution_id:
        raise Forbidden("oauth_other_institution", "该应用属于其他机构，本机构用户不能授权")
    return grant


@blp.route("/consent", methods=["GET"])
@requires(AUTHENTICATED)
def consent_info() -> Any:
    """What the consent page shows: the application, its institution, the scopes asked and where it returns."""
    grant = _consent_grant()
    client = grant.client
    scope = client.get_allowed_scope(grant.request.payload.scope)
    return jsonify(
        {
            "client_name": client.row.name,
            "institution_name": client.row.institution.name,
            "scopes": [{"code": s, "label": clients.SCOPES[s][1]} for s in scope.split()],
            "redirect_uri": grant.request.payload.redirect_uri,
        }
    )


@blp.route("/consent", methods=["POST"])
@requires(AUTHENTICATED)
def consent_decide() -> Any:
    """The user's decision (JSON {"approve": true|false}); answers {"redirect_to": ...} back to the application."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("approve"), bool):
        raise ValidationFailed("validation_error", "提交的信息有误", {"fields": {"approve": ["必须是是/否"]}})
    grant = _consent_grant()
    user = g.session.user if body["approve"] else None
    resp = _server().create_authorization_response(grant_user=user, grant=grant)
    location = resp.headers.get("Location")
    if resp.status_code != 302 or not location:
        raise DomainError("authorization_failed", "授权失败，请重新从应用发起登录")
    client = grant.client.row
    audit.record(
        current_actor(),
        "oauth_authorized",
        outcome="success" if user else "failure",
        object_type="oauth_client",
        object_id=client.client_id,
        reason=f"{'同意' if user else '拒绝'}应用「{client.name}」访问：{grant.request.scope or ''}",
    )
    return jsonify({"redirect_to": location})
