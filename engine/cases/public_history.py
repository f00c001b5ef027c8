"""What the requesting hospital sees of a case's history (UX.md R25; issue 17).

The central hospital's history (engine/cases/queries.py history) holds its internal working: claims, releases,
assignments, 驳回 rounds with their reasons, timers, incidents, process migrations, and usernames. A member hospital
sees the public milestones instead, named by UX.md R2's exam statuses (`status_<code>` events: 待诊断, 初步报告,
待审核, 已审核, 已发布, 已打印, 已更正), the central doctors by their display names, and its own 临床资料补充
conversation — never reasons of a 驳回, drafts, task ids, BPMN element ids or usernames.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from engine import uow
from engine.accounts.models import User
from engine.cases.models import EXAM_STATUSES, CaseEvent

# A completed report step → the exam status it leads to (UX.md R2).
STEP_STATUS = {"draft_report": "preliminary", "report_level2": "pending_review", "review_level3": "reviewed"}
# The member's own 临床资料补充 conversation: shown with what was asked and answered, nothing of the process.
QUERY_EVENTS = {
    "clinical_query_asked": ("question",),
    "clinical_query_answered": ("answer", "unavailable"),
    "clinical_query_overdue": (),
    "clinical_query_images_arrived": (),
}


def _status(code: str) -> tuple[str, str]:
    return f"status_{code}", EXAM_STATUSES[code]


def display_names(events: list[CaseEvent]) -> dict[int, str]:
    """The people of a history by their display names (the events store the username of the moment)."""
    ids = {e.actor_id for e in events if e.actor_id is not None}
    if not ids:
        return {}
    return {u.id: u.full_name for u in uow.session().execute(select(User).where(User.id.in_(ids))).unique().scalars()}


def public_history(events: list[CaseEvent], event_names: dict[str, str]) -> list[dict[str, Any]]:
    """The member hospital's history entries (the same shape as the central one's)."""
    names = display_names(events)
    out: list[dict[str, Any]] = []
    correcting: str | None = None  # the reason of a correction in review (None: none in review)
    for e in events:
        actor = names.get(e.actor_id) if e.actor_id is not None else None
        details: dict[str, Any] | None = None
        if e.event == "created":
            code, name = _status("awaiting")
        elif e.event == "completed" and e.task_name in STEP_STATUS:
            if correcting is not None:
                continue  # a correction in review stays invisible until it replaces the old report (UX.md R10)
            code, name = _status(STEP_STATUS[e.task_name])
        elif e.event == "correction_started":
            correcting = str((e.details or {}).get("reason") or "")
            continue
        elif e.event == "released":
            # A corrected report's release tells the hospital why (UX.md R10's banner), nothing of its review.
            code, name = _status("corrected" if correcting is not None else "released")
            details = {"reason": correcting} if correcting else None
            correcting = None
        elif e.event == "printed":
            code, name = _status("printed")
        elif e.event in QUERY_EVENTS:
            code, name = e.event, event_names.get(e.event, e.event)
            keep = QUERY_EVENTS[e.event]
            details = {k: v for k, v in (e.details or {}).items() if k in keep} or None
        else:
            continue
        entry = {"ts": e.ts, "event": code, "event_name": name, "actor": actor, "task_title": None, "details": details}
        out.append(entry)
    # The 审核医生's approval runs the release in the same step, and its own entry is written after the release's:
    # the hospital reads 已审核 before 已发布.
    for i in range(len(out) - 1):
        if out[i]["event"] in ("status_released", "status_corrected") and out[i + 1]["event"] == "status_reviewed":
            out[i], out[i + 1] = out[i + 1], out[i]
    return out
