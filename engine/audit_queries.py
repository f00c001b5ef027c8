"""Read side of the audit log: search for the 审计管理员, export to xlsx (REQ: AUD-09, EXP-01)."""

from __future__ import annotations

import io
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import xlsxwriter
from sqlalchemy import Select, func

from engine import audit, uow
from engine.accounts.queries import Page, clamp_page, like_pattern
from engine.actor import Actor
from engine.audit import EVENT_TYPES, AuditEvent
from engine.visibility import scoped

EXPORT_LIMIT = 50_000
SHANGHAI = ZoneInfo("Asia/Shanghai")


def _filtered(actor: Actor, f: dict[str, Any]) -> Select[Any]:
    stmt = scoped(actor, AuditEvent)
    if f.get("username"):
        stmt = stmt.where(AuditEvent.username.like(like_pattern(f["username"]), escape="\\"))
    if f.get("event_type"):
        stmt = stmt.where(AuditEvent.event_type == f["event_type"])
    if f.get("object_type"):
        stmt = stmt.where(AuditEvent.object_type == f["object_type"])
    if f.get("object_id"):
        stmt = stmt.where(AuditEvent.object_id == f["object_id"])
    if f.get("outcome"):
        stmt = stmt.where(AuditEvent.outcome == f["outcome"])
    if f.get("start"):
        stmt = stmt.where(AuditEvent.ts >= f["start"])
    if f.get("end"):
        stmt = stmt.where(AuditEvent.ts <= f["end"])
    return stmt


def search(actor: Actor, filters: dict[str, Any], page: int | None, page_size: int | None) -> Page:
    """Search by user, event, object, outcome and time; the search itself is audited ("Audit Log Used")."""
    page, page_size = clamp_page(page, page_size)
    stmt = _filtered(actor, filters)
    s = uow.session()
    total = s.execute(stmt.with_only_columns(func.count(AuditEvent.id)).order_by(None)).scalar_one()
    rows = s.execute(stmt.order_by(AuditEvent.id.desc()).offset((page - 1) * page_size).limit(page_size)).scalars()
    items = list(rows)
    audit.record(actor, "audit_log_used", details={"filters": _jsonable(filters), "page": page})
    return Page(items, total, page, page_size)


def _jsonable(filters: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in filters.items() if v not in (None, "")}


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def export_xlsx(actor: Actor, filters: dict[str, Any]) -> tuple[bytes, int]:
    """Write the matching events to xlsx; every cell is a string (no formula injection, EXP-01). Audited."""
    rows = uow.session().execute(_filtered(actor, filters).order_by(AuditEvent.id).limit(EXPORT_LIMIT)).scalars()
    buf = io.BytesIO()
    wb = xlsxwriter.Workbook(
        buf, {"in_memory": True, "strings_to_formulas": False, "strings_to_urls": False, "strings_to_numbers": False}
    )
    ws = wb.add_worksheet("审计日志")
    header = [
        "编号",
        "时间",
        "用户",
        "角色",
        "机构",
        "IP",
        "事件",
        "对象类型",
        "对象ID",
        "结果",
        "原因",
        "请求ID",
        "哈希",
    ]
    ws.write_row(0, 0, header)
    n = 0
    for n, ev in enumerate(rows, start=1):
        values = [
            ev.id,
            ev.ts.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S"),
            ev.username,
            ev.roles,
            ev.institution_code,
            ev.ip,
            EVENT_TYPES.get(ev.event_type, ev.event_type),
            ev.object_type,
            ev.object_id,
            "成功" if ev.outcome == "success" else "失败",
            ev.reason,
            ev.request_id,
            ev.hash,
        ]
        for col, v in enumerate(values):
            ws.write_string(n, col, _cell(v))
    wb.close()
    audit.record(actor, "audit_log_exported", details={"filters": _jsonable(filters), "rows": n})
    return buf.getvalue(), n


def event_types() -> list[dict[str, str]]:
    return [{"code": k, "name": v} for k, v in EVENT_TYPES.items()]
