"""我的诊断记录's filters and status-chip counts (REC-02/03/07, UX.md R2): one set of filters shared by the case
list and its counts, dates taken as the platform's day (Asia/Shanghai)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Select, distinct, func, or_, select

from engine import uow
from engine.accounts.models import Institution
from engine.accounts.queries import like_pattern
from engine.actor import Actor
from engine.cases.models import EXAM_STATUSES, Case, Exam, Patient, case_exam
from engine.db import utcnow
from engine.errors import ValidationFailed
from engine.pinyin import matches_prefix, search_key
from engine.visibility import scoped

LOCAL_TZ = ZoneInfo("Asia/Shanghai")  # the platform's day
DEFAULT_WINDOW_DAYS = 7  # 7天内: today and the six days before (UX.md R2's chips, REC-03)


def local_today() -> date:
    return utcnow().astimezone(LOCAL_TZ).date()


def day_start(d: date) -> datetime:
    """Midnight of a platform day, as an aware datetime (compared with UTC-stored created_at)."""
    return datetime.combine(d, time.min, tzinfo=LOCAL_TZ)


@dataclass(frozen=True)
class CaseFilters:
    """What the case list filters on. `exam_status` matches a case when one of its exams has that status;
    `overdue` an open case past its due time (UX.md R3); dates bound `created_at`, both days included."""

    status: str | None = None
    q: str | None = None
    emergency: bool | None = None
    exam_status: str | None = None
    modality: str | None = None
    institution_id: int | None = None
    date_from: date | None = None
    date_to: date | None = None
    overdue: bool | None = None

    def checked(self) -> CaseFilters:
        """Raises:
        ValidationFailed: the window ends before it starts."""
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise ValidationFailed("date_range_invalid", "开始日期不能晚于结束日期")
        return self

    def with_window(self) -> CaseFilters:
        """The counts' window: the chosen days, or 7天内 ending today when none is chosen."""
        date_to = self.date_to or (
            self.date_from + timedelta(days=DEFAULT_WINDOW_DAYS - 1) if self.date_from else local_today()
        )
        date_from = self.date_from or date_to - timedelta(days=DEFAULT_WINDOW_DAYS - 1)
        return replace(self, date_from=date_from, date_to=date_to).checked()


def patient_name_matches(q: str) -> ColumnElement[bool]:
    """姓名 anywhere in the name, or 拼音首字母 from the start of the name's initials (issue 14)."""
    by_name = Patient.name.like(like_pattern(q.strip()), escape="\\")
    key = search_key(q)
    return or_(by_name, matches_prefix(Patient.name_pinyin, key)) if key else by_name


def _overdue() -> ColumnElement[bool]:
    return (Case.status == "open") & (Case.due_at < utcnow())


def _with_exam(*where: ColumnElement[bool]) -> ColumnElement[bool]:
    return Case.id.in_(select(case_exam.c.case_id).join(Exam, Exam.id == case_exam.c.exam_id).where(*where))


def apply(stmt: Select[Any], f: CaseFilters) -> Select[Any]:
    """`stmt` (over Case, already scoped to the actor) narrowed by the filters. The hospital filter can only
    narrow what the visibility rule already allows."""
    if f.status:
        stmt = stmt.where(Case.status == f.status)
    if f.emergency is not None:
        stmt = stmt.where(Case.emergency.is_(f.emergency))
    if f.overdue:
        stmt = stmt.where(_overdue())
    if f.institution_id is not None:
        stmt = stmt.where(Case.requesting_institution_id == f.institution_id)
    if f.date_from:
        stmt = stmt.where(Case.created_at >= day_start(f.date_from))
    if f.date_to:
        stmt = stmt.where(Case.created_at < day_start(f.date_to + timedelta(days=1)))
    if f.exam_status:
        stmt = stmt.where(_with_exam(Exam.status == f.exam_status))
    if f.modality:
        stmt = stmt.where(_with_exam(Exam.modality == f.modality))
    if f.q:
        pat = like_pattern(f.q.strip())
        by_patient = select(Patient.id).where(patient_name_matches(f.q))
        stmt = stmt.where(
            or_(
                Case.case_no.like(pat, escape="\\"),
                Case.patient_id.in_(by_patient),
                _with_exam(Exam.exam_no.like(pat, escape="\\")),
            )
        )
    return stmt


def case_counts(actor: Actor, f: CaseFilters) -> dict[str, Any]:
    """Status-chip counts over the date window (REQ: REC-07, UX.md R2): cases per exam status (a case with exams in
    two statuses counts under both, as the chip's filter would list it), 急诊, 已超时 and the total, scoped like the
    list. The chips choose the exam status and 已超时, so those two filters do not narrow the counts.

    One GROUP BY over the cases' exams in the window, one row of totals, and the requesting hospitals of the
    window (the 申请医院 select, counted without the hospital filter)."""
    f = replace(f.with_window(), exam_status=None, overdue=None)
    s = uow.session()
    by_status = apply(
        scoped(
            actor,
            Case,
            select(Exam.status, func.count(distinct(Case.id)))
            .select_from(Case)
            .join(case_exam, case_exam.c.case_id == Case.id)
            .join(Exam, Exam.id == case_exam.c.exam_id),
        ),
        f,
    ).group_by(Exam.status)
    counts: dict[str, int] = dict.fromkeys(EXAM_STATUSES, 0)
    for status, n in s.execute(by_status).tuples():
        if status in counts:
            counts[status] = int(n)
    totals = apply(
        scoped(
            actor,
            Case,
            select(
                func.count(Case.id),
                func.count(Case.id).filter(Case.emergency.is_(True)),
                func.count(Case.id).filter(_overdue()),
            ).select_from(Case),
        ),
        f,
    )
    total, emergency, overdue = s.execute(totals).one()
    by_hospital = (
        apply(
            scoped(
                actor,
                Case,
                select(Case.requesting_institution_id, func.count(Case.id)).select_from(Case),
            ),
            replace(f, institution_id=None),
        )
        .group_by(Case.requesting_institution_id)
        .subquery()
    )
    hospitals = [
        {"id": i, "name": name, "count": int(n)}
        for i, name, n in s.execute(
            select(Institution.id, Institution.name, by_hospital.c[1])
            .join(by_hospital, by_hospital.c.requesting_institution_id == Institution.id)
            .order_by(Institution.name)
        ).tuples()
    ]
    assert f.date_from is not None  # with_window set both
    assert f.date_to is not None
    return {
        "window": {"date_from": f.date_from, "date_to": f.date_to},
        "counts": counts | {"emergency": int(emergency), "overdue": int(overdue), "total": int(total)},
        "institutions": hospitals,
    }
