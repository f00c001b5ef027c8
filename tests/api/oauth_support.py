"""Shared helpers of the OAuth tests (issue 15): clients made through the engine, token requests, a probe route."""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Any

from flask import Blueprint, Flask, g, jsonify
from flask.testing import FlaskClient

from api.security import requires
from engine import uow
from engine.actor import Actor
from engine.oauth import clients

VIEWER_CB = "https://viewer.example.org/callback"


def make_client(
    app: Flask,
    scopes: str = "dicomweb.read dicomweb.write",
    institution: str = "CENTRAL",
    *,
    redirect_uris: list[str] | None = None,
    public: bool = False,
    name: str = "AI 肺结节",
) -> tuple[str, str | None]:
    with app.app_context(), uow.unit_of_work():
        made = clients.create(
            Actor.system("test"),
            name=name,
            institution_code=institution,
            scopes=scopes,
            redirect_uris=redirect_uris,
            public=public,
        )
        return made.client.client_id, made.secret


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def client_token(client: FlaskClient, client_id: str, secret: str, scope: str | None = None) -> Any:
    form = {"grant_type": "client_credentials"}
    if scope is not None:
        form["scope"] = scope
    return client.post("/oauth/token", data=form, headers=basic(client_id, secret))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def add_probe(app: Flask) -> None:
    """A test-only DICOMweb route pair: GET needs image.read, POST needs image.write; both echo the actor."""
    bp = Blueprint("oauth_probe", __name__, url_prefix="/dicomweb/probe")

    def who() -> Any:
        a = g.actor
        return jsonify(
            username=a.username,
            user_id=a.user_id,
            institution=a.institution_code,
            permissions=sorted(a.permissions),
        )

    @bp.route("/read", methods=["GET"])
    @requires("image.read")
    def read() -> Any:
        return who()

    @bp.route("/write", methods=["POST"])
    @requires("image.write")
    def write() -> Any:
        return who()

    app.register_blueprint(bp)
