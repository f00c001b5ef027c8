"""Presentation of cases and reports shared by the /api/cases and /api/tasks routes (route modules never import
each other: import-linter's contract in pyproject.toml)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from api.cases import schemas as sch
from engine import uow
from engine.actor import Actor
from engine.cases import queries
from engine.cases.models import Case
from engine.cases.public_history import display_names, public_history
from engine.reports import queries as report_queries
from engine.reports.models import Report, ReportRevision
from engine.workflow.models import Incident, ProcessDeployment


def revision_out(rev: ReportRevision, changes: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "id": rev.id,
        "seq": rev.seq,
        "level": rev.level,
        "kind": rev.kind,
        "author": rev.author,
        "created_at": rev.created_at,
        "signed": rev.signed,
        "findings": rev.findings,
        "impression": rev.impression,
        "recommendation": rev.recommendation,
        "positive": rev.positive,
        "note": rev.note,
        "changes": changes or [],
    }


def report_out(report: Report | None) -> dict[str, Any] | None:
    if report is None:
        return None
    lock = None
    if report.lock_holder is not None and report.lock_expires_at is not None:
        lock = {"holder": report.lock_holder, "expires_at": report.lock_expires_at}
    return {
        "id": report.id,
        "case_id": report.case_id,
        "status": report.status,
        "version": report.version,
        "voided": report.voided,
        "lock": lock,
        "current": revision_out(report.current) if report.current else None,
        "released_at": report.released_at,
        "printed_at": report.printed_at,
        "print_count": report.print_count,
    }


def member_view(actor: Actor, case_id: int) -> Report | None:
    """Central staff see the version being worked on; the requesting hospital only the one valid released
    version (UX.md R10: a correction in review stays invisible until it replaces the old one)."""
    return report_queries.current_report(case_id) if actor.is_central else report_queries.released_report(case_id)


def case_detail(actor: Actor, case: Case) -> dict[str, Any]:
    (row,) = queries.case_rows([case])
    dep = uow.session().get(ProcessDeployment, case.deployment_id)
    incident = (
        uow.session()
        .execute(
            select(Incident.error).where(
                Incident.process_instance_id == case.process_instance_id, Incident.resolved_at.is_(None)
            )
        )
        .scalar()
    )
    events = queries.history(case.id)
    if not actor.is_central:
        # UX.md R25: the requesting hospital sees the public milestones, never the central hospital's working
        # (who holds which task, 驳回 reasons, process errors). How the case was dispatched is no secret.
        row.update(
            clinical_info=case.clinical_info,
            dispatch_mode=case.dispatch_mode,
            target_group=case.target_group,
            report=report_out(member_view(actor, case.id)),
            history=public_history(events, sch.EVENT_NAMES),
            deployment=dep,
            incident=None,
            current_tasks=[],
        )
        return row
    people = display_names(events)  # display names, not usernames (UX.md R25)
    row.update(
        clinical_info=case.clinical_info,
        dispatch_mode=case.dispatch_mode,
        target_group=case.target_group,
        report=report_out(member_view(actor, case.id)),
        history=[
            {
                "ts": e.ts,
                "event": e.event,
                "event_name": sch.EVENT_NAMES.get(e.event, e.event),
                "actor": people.get(e.actor_id, e.actor_name) if e.actor_id is not None else e.actor_name,
                "task_title": e.task_name,
                # Codes, as stored: the SPA labels keys and values (web/src/utils/caseHistory.ts, vue-i18n).
                "details": e.details,
            }
            for e in events
        ],
        deployment=dep,
        incident=incident,
    )
    return row
