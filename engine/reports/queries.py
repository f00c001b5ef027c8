"""Reads of a case's reports: the version being worked on, the released one, who signed at which level (AC-06)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import lazyload

from engine import uow
from engine.reports.models import Report, ReportRevision


def current_report(case_id: int) -> Report | None:
    return (
        uow.session()
        .execute(
            select(Report)
            .where(Report.case_id == case_id, Report.voided.is_(False))
            .order_by(Report.version.desc())
            .limit(1)
            .options(lazyload("*"))  # every step asks for it; the current revision's author graph only on use
        )
        .scalar()
    )


def released_report(case_id: int) -> Report | None:
    """The one valid released version the requesting hospital sees (UX.md R10)."""
    stmt = (
        select(Report)
        .where(Report.case_id == case_id, Report.voided.is_(False), Report.status == "released")
        .order_by(Report.version.desc())
        .limit(1)
    )
    return uow.session().execute(stmt).scalar()


def signed_by(report: Report | None, levels: tuple[str, ...]) -> set[int]:
    """Users who signed a revision of `report` at one of `levels`, in any round (AC-06)."""
    if report is None:
        return set()
    stmt = select(ReportRevision.author_id).where(
        ReportRevision.report_id == report.id, ReportRevision.signed.is_(True), ReportRevision.level.in_(levels)
    )
    return set(uow.session().execute(stmt).scalars())


@lru_cache(maxsize=1)
def _report_and_signers_stmt() -> Any:
    """Built once: building this statement cost more than running it (bench/bench_engine.py, cProfile)."""
    current = (
        select(Report.id)
        .where(Report.case_id == bindparam("case_id"), Report.voided.is_(False))
        .order_by(Report.version.desc())
        .limit(1)
        .scalar_subquery()
    )
    # Distinct (level, author) pairs: after 200 review rounds a report has 400 signed revisions but only a few
    # signers, and joining every revision made this the slowest statement of a step (bench/bench_engine.py).
    signed = (
        select(ReportRevision.report_id, ReportRevision.level, ReportRevision.author_id)
        .where(ReportRevision.report_id == current, ReportRevision.signed.is_(True))
        .distinct()
        .subquery()
    )
    return (
        select(Report, signed.c.level, signed.c.author_id)
        .outerjoin(signed, signed.c.report_id == Report.id)
        .where(Report.id == current)
        .options(lazyload("*"))
    )


def report_and_signers(case_id: int) -> tuple[Report | None, dict[str, set[int]]]:
    """The current report and who signed it at each level in any round, in one statement (every step asks)."""
    rows = uow.session().execute(_report_and_signers_stmt(), {"case_id": case_id})
    report: Report | None = None
    signers: dict[str, set[int]] = {"l1": set(), "l2": set(), "l3": set()}
    for row, level, author in rows.unique():
        report = row
        if level is not None:
            signers.setdefault(level, set()).add(author)
    return report, signers


ROW_DEFAULTS: dict[str, Any] = {"report_status": None, "printed": False}


def report_columns(case_ids: list[int]) -> dict[int, dict[str, Any]]:
    """The report columns of case rows (status, printed) for `case_ids`, in one statement."""
    stmt = select(Report).where(Report.case_id.in_(case_ids), Report.voided.is_(False))
    found = {r.case_id: r for r in uow.session().execute(stmt).unique().scalars()}
    return {cid: {"report_status": r.status, "printed": bool(r.print_count)} for cid, r in found.items()}
