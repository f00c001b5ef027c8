"""/api/me/settings (a user's own settings) and /api/settings (keys, and institution/role defaults) — issue 14."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint
from marshmallow import Schema, fields

from api.schemas import StrictSchema
from api.security import AUTHENTICATED, current_actor, requires
from engine.settings import registry, services

blp = Blueprint("settings", __name__, url_prefix="/api", description="个人设置与默认设置")

MANAGE = "setting.default.manage"


class ValueInSchema(StrictSchema):
    # Any JSON value; its key's JSON Schema decides (engine/settings/registry.py), with a Chinese 400 otherwise.
    value = fields.Raw(required=True, allow_none=True)


class EffectiveSchema(Schema):
    key = fields.String()
    value = fields.Raw(allow_none=True)
    source = fields.String()  # user | role | institution | builtin


class KeySchema(Schema):
    key = fields.String()
    name = fields.String()
    default = fields.Raw(allow_none=True)


class RoleOutSchema(Schema):
    id = fields.Integer()
    code = fields.String()
    name = fields.String()


class RoleChoiceSchema(Schema):
    id = fields.Integer()
    code = fields.String()
    name = fields.String()
    menus = fields.List(fields.String())


class DefaultSchema(Schema):
    key = fields.String()
    name = fields.String()
    value = fields.Raw(allow_none=True)
    role = fields.Nested(RoleOutSchema, allow_none=True)
    updated_at = fields.DateTime()


def _effective(e: services.Effective) -> dict[str, Any]:
    return {"key": e.key, "value": e.value, "source": e.source}


def _default(d: services.DefaultRow) -> dict[str, Any]:
    spec = registry.get(d.key)
    role = {"id": d.role_id, "code": d.role_code, "name": d.role_name} if d.role_id is not None else None
    return {
        "key": d.key,
        "name": spec.name if spec else d.key,
        "value": d.value,
        "role": role,
        "updated_at": d.updated_at,
    }


# ---- a user's own settings -------------------------------------------------------------------------------------------
@blp.route("/me/settings", methods=["GET"])
@blp.response(200, EffectiveSchema(many=True))
@requires(AUTHENTICATED)
def my_settings() -> Any:
    """Every registered key's effective value for the caller (user > role > institution > built-in)."""
    return [_effective(e) for e in services.list_effective(current_actor())]


@blp.route("/me/settings/<string:key>", methods=["GET"])
@blp.response(200, EffectiveSchema)
@requires(AUTHENTICATED)
def my_setting(key: str) -> Any:
    return _effective(services.get_effective(current_actor(), key))


@blp.route("/me/settings/<string:key>", methods=["PUT"])
@blp.arguments(ValueInSchema)
@blp.response(200, EffectiveSchema)
@requires(AUTHENTICATED)
def put_my_setting(body: dict[str, Any], key: str) -> Any:
    return _effective(services.set_user_setting(current_actor(), key, body["value"]))


@blp.route("/me/settings/<string:key>", methods=["DELETE"])
@blp.response(200, EffectiveSchema)
@requires(AUTHENTICATED)
def delete_my_setting(key: str) -> Any:
    """Back to the default: answers the value now in effect."""
    return _effective(services.reset_user_setting(current_actor(), key))


# ---- the registry and the administrator's defaults -------------------------------------------------------------------
@blp.route("/settings/keys", methods=["GET"])
@blp.response(200, KeySchema(many=True))
@requires(AUTHENTICATED)
def setting_keys() -> Any:
    return [{"key": k.key, "name": k.name, "default": k.builtin()} for k in registry.all_keys()]


@blp.route("/settings/roles", methods=["GET"])
@blp.response(200, RoleChoiceSchema(many=True))
@requires(MANAGE)
def setting_roles() -> Any:
    """The roles of the caller's institution that may carry defaults, with the menus each opens."""
    return [
        {"id": r.id, "code": r.code, "name": r.name, "menus": r.menus}
        for r in services.list_roles(actor=current_actor())
    ]


@blp.route("/settings/defaults", methods=["GET"])
@blp.response(200, DefaultSchema(many=True))
@requires(MANAGE)
def list_defaults() -> Any:
    """The defaults set for the caller's institution and its roles."""
    return [_default(d) for d in services.list_defaults(current_actor())]


@blp.route("/settings/defaults/institution/<string:key>", methods=["PUT"])
@blp.arguments(ValueInSchema)
@blp.response(200, DefaultSchema)
@requires(MANAGE)
def put_institution_default(body: dict[str, Any], key: str) -> Any:
    return _default(services.set_default(current_actor(), key, body["value"]))


@blp.route("/settings/defaults/institution/<string:key>", methods=["DELETE"])
@blp.response(204)
@requires(MANAGE)
def delete_institution_default(key: str) -> Any:
    services.remove_default(current_actor(), key)


@blp.route("/settings/defaults/roles/<int:role_id>/<string:key>", methods=["PUT"])
@blp.arguments(ValueInSchema)
@blp.response(200, DefaultSchema)
@requires(MANAGE)
def put_role_default(body: dict[str, Any], role_id: int, key: str) -> Any:
    return _default(services.set_default(current_actor(), key, body["value"], role_id))


@blp.route("/settings/defaults/roles/<int:role_id>/<string:key>", methods=["DELETE"])
@blp.response(204)
@requires(MANAGE)
def delete_role_default(role_id: int, key: str) -> Any:
    services.remove_default(current_actor(), key, role_id)
