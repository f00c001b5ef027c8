"""/api/oauth-clients: the central 系统管理员 lists, registers and revokes OAuth clients (issue 15; REQ: DSEC-11).

The secret is in the answer of the registration only; afterwards nobody can read it (it is stored hashed).
"""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from api.schemas import StrictSchema
from api.security import current_actor, requires
from engine.actor import Actor
from engine.errors import Forbidden
from engine.oauth import clients
from engine.oauth.models import OAuthClient

blp = Blueprint("oauth_clients", __name__, url_prefix="/api/oauth-clients", description="接入客户端（OAuth 2.0）")
MANAGE = "oauth.manage"


class ScopeSchema(Schema):
    code = fields.String()
    label = fields.String()


class ClientSchema(Schema):
    client_id = fields.String()
    name = fields.String()
    institution_code = fields.String()
    institution_name = fields.String()
    scopes = fields.List(fields.Nested(ScopeSchema))
    public = fields.Boolean()
    redirect_uris = fields.List(fields.String())
    created_at = fields.DateTime()
    created_by = fields.String(allow_none=True)
    revoked_at = fields.DateTime(allow_none=True)
    revoked_by = fields.String(allow_none=True)


class CreatedSchema(ClientSchema):
    client_secret = fields.String(allow_none=True)


class CreateSchema(StrictSchema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=128))
    institution_code = fields.String(required=True, validate=validate.Length(min=1, max=32))
    scopes = fields.List(
        fields.String(validate=validate.OneOf(list(clients.SCOPES))), required=True, validate=validate.Length(min=1)
    )
    redirect_uris = fields.List(fields.String(validate=validate.Length(max=500)), load_default=list)
    public = fields.Boolean(load_default=False)


def client_out(c: OAuthClient) -> dict[str, Any]:
    return {
        "client_id": c.client_id,
        "name": c.name,
        "institution_code": c.institution.code,
        "institution_name": c.institution.name,
        "scopes": [{"code": s, "label": clients.SCOPES[s][1]} for s in c.scopes.split() if s in clients.SCOPES],
        "public": c.secret_hash is None,
        "redirect_uris": [u for u in c.redirect_uris.split("\n") if u],
        "created_at": c.created_at,
        "created_by": c.created_by,
        "revoked_at": c.revoked_at,
        "revoked_by": c.revoked_by,
    }


def _central_only(actor: Actor) -> None:
    if not actor.is_central:
        raise Forbidden("central_only", "接入客户端由中心医院系统管理员统一登记")


@blp.route("", methods=["GET"])
@blp.response(200, ClientSchema(many=True))
@requires(MANAGE)
def list_clients() -> Any:
    """接入客户端列表（含已吊销的）。"""
    _central_only(current_actor())
    return [client_out(c) for c in clients.list_clients()]


@blp.route("", methods=["POST"])
@blp.arguments(CreateSchema)
@blp.response(201, CreatedSchema)
@requires(MANAGE)
def create_client(body: dict[str, Any]) -> Any:
    """登记接入客户端；返回的 client_secret 只显示这一次。"""
    actor = current_actor()
    _central_only(actor)
    made = clients.create(
        actor,
        name=body["name"],
        institution_code=body["institution_code"],
        scopes=" ".join(body["scopes"]),
        redirect_uris=body["redirect_uris"],
        public=body["public"],
    )
    return {**client_out(made.client), "client_secret": made.secret}


@blp.route("/<string:client_id>/revoke", methods=["POST"])
@blp.response(200, ClientSchema)
@requires(MANAGE)
def revoke_client(client_id: str) -> Any:
    """吊销接入客户端：其全部访问令牌立即失效。"""
    actor = current_actor()
    _central_only(actor)
    return client_out(clients.revoke(actor, client_id[:64]))
