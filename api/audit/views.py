"""/api/audit: the auditor's search, export and chain verification (REQ: AUD-03, AUD-09)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

from flask import Response
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from api.schemas import PageQuery
from api.security import current_actor, requires
from engine import audit, audit_queries, uow

blp = Blueprint("audit", __name__, url_prefix="/api/audit", description="审计日志")


class AuditQuerySchema(PageQuery):
    username = fields.String(validate=validate.Length(max=64))
    event_type = fields.String(validate=validate.Length(max=64))
    object_type = fields.String(validate=validate.Length(max=64))
    object_id = fields.String(validate=validate.Length(max=64))
    outcome = fields.String(validate=validate.OneOf(["success", "failure"]))
    start = fields.AwareDateTime(default_timezone=None)
    end = fields.AwareDateTime(default_timezone=None)


class AuditEventSchema(Schema):
    id = fields.Integer()
    ts = fields.DateTime()
    username = fields.String(allow_none=True)
    roles = fields.String(allow_none=True)
    institution_code = fields.String(allow_none=True)
    ip = fields.String(allow_none=True)
    user_agent = fields.String(allow_none=True)
    event_type = fields.String()
    event_name = fields.Function(lambda ev: audit.EVENT_TYPES.get(ev.event_type, ev.event_type))
    object_type = fields.String(allow_none=True)
    object_id = fields.String(allow_none=True)
    outcome = fields.String()
    reason = fields.String(allow_none=True)
    request_id = fields.String(allow_none=True)
    details = fields.Dict(allow_none=True)


class AuditPageSchema(Schema):
    items = fields.List(fields.Nested(AuditEventSchema))
    total = fields.Integer()
    page = fields.Integer()
    page_size = fields.Integer()


class EventTypeSchema(Schema):
    code = fields.String()
    name = fields.String()


class VerifySchema(Schema):
    ok = fields.Boolean()
    checked = fields.Integer()
    broken_at = fields.Integer(allow_none=True)
    message = fields.String()


def _filters(args: dict[str, Any]) -> dict[str, Any]:
    return {k: args.get(k) for k in ("username", "event_type", "object_type", "object_id", "outcome", "start", "end")}


@blp.route("/events", methods=["GET"])
@blp.arguments(AuditQuerySchema, location="query")
@blp.response(200, AuditPageSchema)
@requires("audit.read")
def events(args: dict[str, Any]) -> Any:
    """按用户、时间、事件、对象查询审计日志（查询本身也记审计）。"""
    page = audit_queries.search(current_actor(), _filters(args), args["page"], args["page_size"])
    return {"items": page.items, "total": page.total, "page": page.page, "page_size": page.page_size}


@blp.route("/event-types", methods=["GET"])
@blp.response(200, EventTypeSchema(many=True))
@requires("audit.read")
def event_types() -> Any:
    """审计事件类型。"""
    return audit_queries.event_types()


@blp.route("/export", methods=["GET"])
@blp.arguments(AuditQuerySchema, location="query")
@requires("audit.export")
def export(args: dict[str, Any]) -> Any:
    """导出审计日志为 Excel（导出操作本身记审计）。"""
    data, _rows = audit_queries.export_xlsx(current_actor(), _filters(args))
    name = f"审计日志_{datetime.now().strftime('%Y%m%d%H%M%S')}.xlsx"  # noqa: DTZ005 — a file name only
    resp = Response(data, mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    resp.headers["Content-Disposition"] = f"attachment; filename=\"audit.xlsx\"; filename*=UTF-8''{quote(name)}"
    return resp


@blp.route("/verify", methods=["GET"])
@blp.response(200, VerifySchema)
@requires("audit.verify")
def verify() -> Any:
    """校验审计日志哈希链的完整性。"""
    result = audit.verify_chain(uow.session())
    audit.record(current_actor(), "audit_log_used", details={"verify": result.ok, "checked": result.checked})
    return result
