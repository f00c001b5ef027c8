"""/api/notifications: one's own notifications — the bell's count, the list, read and 确认已知晓 (issue 14).

Every logged-in user may read their own: the service limits every query to notifications addressed to the caller
(engine/notifications/services.py), so the routes need no permission beyond a session.
"""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint
from marshmallow import Schema, fields

from api.schemas import PageQuery
from api.security import AUTHENTICATED, current_actor, requires
from engine.notifications import kinds, services

blp = Blueprint("notifications", __name__, url_prefix="/api/notifications", description="消息通知")


class ListQuery(PageQuery):
    unread = fields.Boolean(load_default=False)
    critical_pending = fields.Boolean(load_default=False)


class SummarySchema(Schema):
    unread = fields.Integer()
    critical_pending = fields.Integer()


def _kind_name(item: services.Item) -> str:
    try:
        return kinds.get(item.notification.kind).name
    except KeyError:
        return "通知"


class NotificationSchema(Schema):
    id = fields.Function(lambda i: i.notification.id)
    kind = fields.Function(lambda i: i.notification.kind)
    kind_name = fields.Function(_kind_name)
    severity = fields.Function(lambda i: i.notification.severity)
    severity_name = fields.Function(lambda i: kinds.SEVERITIES.get(i.notification.severity, ""))
    text = fields.Function(lambda i: i.notification.text)
    link = fields.Function(lambda i: i.notification.link)
    occurrences = fields.Function(lambda i: i.notification.occurrences)
    created_at = fields.Function(lambda i: i.notification.created_at.isoformat())
    updated_at = fields.Function(lambda i: i.notification.updated_at.isoformat())
    read = fields.Function(lambda i: i.read_at is not None)
    read_at = fields.Function(lambda i: i.read_at.isoformat() if i.read_at else None)
    needs_ack = fields.Function(
        lambda i: i.notification.severity == "critical" and i.notification.acknowledged_at is None
    )
    acknowledged_at = fields.Function(
        lambda i: i.notification.acknowledged_at.isoformat() if i.notification.acknowledged_at else None
    )
    acknowledged_by_name = fields.Function(lambda i: i.acknowledged_by_name)


class NotificationPageSchema(Schema):
    items = fields.List(fields.Nested(NotificationSchema))
    total = fields.Integer()
    page = fields.Integer()
    page_size = fields.Integer()


class MarkedSchema(Schema):
    marked = fields.Integer()


@blp.route("/summary", methods=["GET"])
@blp.response(200, SummarySchema)
@requires(AUTHENTICATED)
def summary() -> Any:
    """未读数与待确认的紧急通知数（铃铛轮询）。"""
    return services.summary(current_actor())


@blp.route("", methods=["GET"])
@blp.arguments(ListQuery, location="query")
@blp.response(200, NotificationPageSchema)
@requires(AUTHENTICATED)
def list_mine(args: dict[str, Any]) -> Any:
    """我的消息通知（最新在前，可只看未读或待确认的紧急通知）。"""
    page = services.list_mine(
        current_actor(),
        args["page"],
        args["page_size"],
        unread=args["unread"],
        critical_pending=args["critical_pending"],
    )
    return {"items": page.items, "total": page.total, "page": page.page, "page_size": page.page_size}


@blp.route("/<int:notification_id>", methods=["GET"])
@blp.response(200, NotificationSchema)
@requires(AUTHENTICATED)
def get_one(notification_id: int) -> Any:
    """一条消息通知。"""
    return services.get_mine(current_actor(), notification_id)


@blp.route("/<int:notification_id>/read", methods=["POST"])
@blp.response(200, NotificationSchema)
@requires(AUTHENTICATED)
def mark_read(notification_id: int) -> Any:
    """标记已读（紧急通知须先确认已知晓）。"""
    return services.mark_read(current_actor(), notification_id)


@blp.route("/read-all", methods=["POST"])
@blp.response(200, MarkedSchema)
@requires(AUTHENTICATED)
def mark_all_read() -> Any:
    """全部标记已读（待确认的紧急通知除外）。"""
    return {"marked": services.mark_all_read(current_actor())}


@blp.route("/<int:notification_id>/acknowledge", methods=["POST"])
@blp.response(200, NotificationSchema)
@requires(AUTHENTICATED)
def acknowledge(notification_id: int) -> Any:
    """确认已知晓紧急通知（记录确认人与时间）。"""
    return services.acknowledge(current_actor(), notification_id)
