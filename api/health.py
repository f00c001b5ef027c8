"""GET /api/health: liveness plus a database round trip."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint
from marshmallow import Schema, fields
from sqlalchemy import text

from api.security import PUBLIC, requires
from engine import uow

blp = Blueprint("health", __name__, url_prefix="/api", description="健康检查")


class HealthSchema(Schema):
    status = fields.String()
    database = fields.String()


@blp.route("/health", methods=["GET"])
@blp.response(200, HealthSchema)
@requires(PUBLIC)
def health() -> Any:
    """服务健康检查"""
    uow.session().execute(text("SELECT 1"))
    return {"status": "ok", "database": "ok"}
