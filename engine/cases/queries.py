"""Read side of cases and tasks: plain SQL over `human_task` (task lists never deserialise workflows)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, exists, func, not_, or_, select

from engine import uow
from engine.accounts.models import Institution, User
from engine.accounts.queries import Page, clamp_page, like_pattern, user_name_matches
from engine.actor import Actor
from engine.cases import hooks
from engine.cases.case_filters import CaseFilters, apply, patient_name_matches
from engine.cases.models import Case, CaseEvent, Patient, WorkGroup, WorkGroupMember
from engine.db import utcnow
from engine.visibility import candidate_instances, open_candidate, scoped, scoped_tasks
from engine.workflow import instances
from engine.workflow.models import HumanTask, HumanTaskExclusion, ProcessInstance

SCOPES = ("mine", "group", "pool", "all")
REMOTE_DIAGNOSIS, REMOTE_DIAGNOSIS_NAME = "remote_diagnosis", "远程影像诊断"


SORTS = ("default", "due")


def task_query(
    actor: Actor,
    scope: str,
    *,
    claimed: bool | None = None,
    emergency: bool | None = None,
    q: str | None = None,
    sort: str = "default",
) -> Select[Any]:
    """我的任务 / 组内任务 / 抢单池 as one query: overdue first (UX.md R3), then emergency, then oldest (REC-10);
    `sort="due"` (the 剩余时限 column) orders by due time alone, the most urgent first."""
    # mine / group filter on the doctor rule's own terms (assignee = me; open_candidate), see scoped_tasks.
    stmt = scoped_tasks(actor, own_or_open_candidate=scope in ("mine", "group")).where(HumanTask.completed_at.is_(None))
    not_excluded = not_(
        exists().where(HumanTaskExclusion.task_id == HumanTask.id, HumanTaskExclusion.user_id == actor.user_id)
    )
    if scope == "mine":
        stmt = stmt.where(HumanTask.assignee_id == actor.user_id)
    elif scope == "group":
        stmt = stmt.where(HumanTask.in_pool.is_(False), open_candidate(actor), not_excluded)
    elif scope == "pool":
        stmt = stmt.where(HumanTask.in_pool.is_(True))
        if not actor.has("task.assign"):  # doctors see what they may grab; the dispatcher sees the whole pool
            stmt = stmt.where(HumanTask.role_code.in_(sorted(actor.roles)), not_excluded)
        if claimed is True:
            stmt = stmt.where(HumanTask.assignee_id.is_not(None))
        elif claimed is False:
            stmt = stmt.where(HumanTask.assignee_id.is_(None))
    elif not actor.has("task.assign"):  # all: a doctor's task lists never offer a task they are excluded from (AC-06)
        stmt = stmt.where(not_excluded)
    if emergency is not None:
        stmt = stmt.where(HumanTask.emergency.is_(emergency))
    if q:
        pat = like_pattern(q.strip())
        stmt = stmt.where(
            HumanTask.case_id.in_(
                select(Case.id)
                .join(Patient, Patient.id == Case.patient_id)
                .where(or_(patient_name_matches(q), Case.case_no.like(pat, escape="\\")))
            )
        )
    due = select(Case.due_at).where(Case.id == HumanTask.case_id).scalar_subquery()
    if sort == "due":
        return stmt.order_by(due.is_(None), due, HumanTask.emergency.desc(), HumanTask.id)
    overdue = select(Case.id).where(Case.id == HumanTask.case_id, Case.due_at < utcnow()).exists()
    return stmt.order_by(overdue.desc(), HumanTask.emergency.desc(), HumanTask.created_at, HumanTask.id)


def list_tasks(actor: Actor, scope: str, page: int | None, page_size: int | None, **filters: Any) -> Page:
    page, page_size = clamp_page(page, page_size)
    stmt = task_query(actor, scope, **filters)
    s = uow.session()
    total = s.execute(stmt.with_only_columns(func.count(HumanTask.id)).order_by(None)).scalar_one()
    rows = list(s.execute(stmt.offset((page - 1) * page_size).limit(page_size)).scalars())
    return Page(rows, total, page, page_size)


PROCESS_TASK_SCOPES = ("mine", "open")


def list_process_tasks(actor: Actor, scope: str, page: int | None, page_size: int | None) -> Page:
    """Open tasks of the process kinds other than remote diagnosis (those have the lists above): the actor's
    own (mine), or those their kind's candidate rule offers them, unassigned (open). Seen through the task rule."""
    page, page_size = clamp_page(page, page_size)
    stmt = scoped(actor, HumanTask).where(HumanTask.case_id.is_(None), HumanTask.completed_at.is_(None))
    if scope == "mine":
        stmt = stmt.where(HumanTask.assignee_id == actor.user_id)
    else:
        offered = select(ProcessInstance.id).where(candidate_instances(actor))
        stmt = stmt.where(HumanTask.assignee_id.is_(None), HumanTask.process_instance_id.in_(offered))
    stmt = stmt.order_by(HumanTask.emergency.desc(), HumanTask.created_at, HumanTask.id)
    s = uow.session()
    total = s.execute(stmt.with_only_columns(func.count(HumanTask.id)).order_by(None)).scalar_one()
    rows = list(s.execute(stmt.offset((page - 1) * page_size).limit(page_size)).scalars())
    return Page(rows, total, page, page_size)


def _other_kind_rows(tasks: list[HumanTask]) -> dict[int, dict[str, Any]]:
    """Task id → what a list shows of a task of another process kind: the kind's Chinese name and its subject
    (the kind's `describe`, one call per kind and page)."""
    if not tasks:
        return {}
    s = uow.session()
    pis = {
        p.id: p
        for p in s.execute(
            select(ProcessInstance).where(ProcessInstance.id.in_({t.process_instance_id for t in tasks}))
        ).scalars()
    }
    by_kind: dict[str, list[ProcessInstance]] = {}
    for p in pis.values():
        by_kind.setdefault(p.process_id, []).append(p)
    described: dict[int, Any] = {}
    names: dict[str, str] = {}
    for process_id, group in by_kind.items():
        kind = instances.kind_of(process_id)
        names[process_id] = kind.name
        if kind.describe is not None:
            described.update(kind.describe(group))
    out = {}
    for t in tasks:
        p = pis[t.process_instance_id]
        d = described.get(p.id, {})
        out[t.id] = {
            "process_id": p.process_id,
            "process_name": names[p.process_id],
            "subject": d.get("subject", ""),
            "case_id": d.get("case_id"),
            "case_no": d.get("case_no", ""),
        }
    return out


def task_rows(tasks: list[HumanTask]) -> list[dict[str, Any]]:
    """Join what a task list shows in three batched queries (no N+1); tasks of other process kinds (no case)
    show their kind's name and subject instead of the case's patient columns."""
    s = uow.session()
    others = _other_kind_rows([t for t in tasks if t.case_id is None])
    tasks_of_cases = [t for t in tasks if t.case_id is not None]
    case_ids = {t.case_id for t in tasks_of_cases}
    cases = {c.id: c for c in s.execute(select(Case).where(Case.id.in_(case_ids))).unique().scalars()} if tasks else {}
    users = (
        {
            u.id: u
            for u in s.execute(select(User).where(User.id.in_({t.assignee_id for t in tasks if t.assignee_id})))
            .unique()
            .scalars()
        }
        if tasks
        else {}
    )
    groups = {g.code: g for g in s.execute(select(WorkGroup)).scalars()} if tasks else {}
    out = []
    for t in tasks:
        if t.case_id is None:
            o = others[t.id]
            out.append(
                {
                    "id": t.id,
                    "case_id": o["case_id"],
                    "case_no": o["case_no"],
                    "process_id": o["process_id"],
                    "process_name": o["process_name"],
                    "subject": o["subject"],
                    "task_name": t.task_name,
                    "title": t.title,
                    "lane_role": t.role_code,
                    "assignee": users.get(t.assignee_id) if t.assignee_id else None,
                    "in_pool": t.in_pool,
                    "group": None,
                    "emergency": t.emergency,
                    "patient_name": "",
                    "modality": "",
                    "body_part": "",
                    "requesting_institution": None,
                    "created_at": t.created_at,
                    "claimed_at": t.claimed_at,
                    "case_created_at": None,
                    "due_at": None,
                    "tat_limit_minutes": None,
                }
            )
            continue
        c = cases[t.case_id]
        first = c.exams[0] if c.exams else None
        out.append(
            {
                "id": t.id,
                "case_id": c.id,
                "case_no": c.case_no,
                "process_id": REMOTE_DIAGNOSIS,
                "process_name": REMOTE_DIAGNOSIS_NAME,
                "subject": c.case_no,
                "task_name": t.task_name,
                "title": t.title,
                "lane_role": t.role_code,
                "assignee": users.get(t.assignee_id) if t.assignee_id else None,
                "in_pool": t.in_pool,
                "group": groups.get(t.group_code) if t.group_code else None,
                "emergency": t.emergency,
                "patient_name": c.patient.name,
                "modality": first.modality if first else "",
                "body_part": first.body_part if first else "",
                "requesting_institution": c.requesting_institution,
                "created_at": t.created_at,
                "claimed_at": t.claimed_at,
                "case_created_at": c.created_at,
                "due_at": c.due_at,
                "tat_limit_minutes": c.tat_limit_minutes,
            }
        )
    return out


def list_cases(
    actor: Actor,
    filters: CaseFilters,
    *,
    page: int | None,
    page_size: int | None,
    sort: str = "default",
) -> Page:
    """远程诊断申请 list (REC-02/07): the filters of engine/cases/case_filters.py within the actor's visibility."""
    page, page_size = clamp_page(page, page_size)
    stmt = apply(scoped(actor, Case), filters.checked())
    s = uow.session()
    total = s.execute(stmt.with_only_columns(func.count(Case.id)).order_by(None)).scalar_one()
    if sort == "due":  # 剩余时限: open cases by due time, the most urgent first; finished ones after
        order: tuple[Any, ...] = ((Case.status != "open"), Case.due_at.is_(None), Case.due_at, Case.id.desc())
    else:
        order = (Case.emergency.desc(), Case.id.desc())
    rows = list(s.execute(stmt.order_by(*order).offset((page - 1) * page_size).limit(page_size)).unique().scalars())
    return Page(rows, total, page, page_size)


def case_rows(cases: list[Case]) -> list[dict[str, Any]]:
    s = uow.session()
    ids = [c.id for c in cases]
    tasks: dict[int, list[HumanTask]] = {}
    if ids:
        for t in s.execute(
            select(HumanTask).where(HumanTask.case_id.in_(ids), HumanTask.completed_at.is_(None)).order_by(HumanTask.id)
        ).scalars():
            if t.case_id is not None:  # always, by the WHERE above
                tasks.setdefault(t.case_id, []).append(t)
    extra = hooks.row_fields(ids)  # the report wing's columns (engine/reports/queries.py)
    assignees = (
        {
            u.id: u
            for u in s.execute(
                select(User).where(User.id.in_({t.assignee_id for ts in tasks.values() for t in ts if t.assignee_id}))
            )
            .unique()
            .scalars()
        }
        if tasks
        else {}
    )
    out = []
    for c in cases:
        out.append(
            {
                "id": c.id,
                "case_no": c.case_no,
                "status": c.status,
                "emergency": c.emergency,
                "patient": c.patient,
                "exams": c.exams,
                "requesting_institution": c.requesting_institution,
                "created_at": c.created_at,
                "due_at": c.due_at,
                "tat_limit_minutes": c.tat_limit_minutes,
                "current_tasks": [
                    {
                        "id": t.id,
                        "task_name": t.task_name,
                        "title": t.title,
                        "in_pool": t.in_pool,
                        "assignee": assignees.get(t.assignee_id) if t.assignee_id else None,
                    }
                    for t in tasks.get(c.id, [])
                ],
            }
            | extra(c.id)
        )
    return out


def history(case_id: int) -> list[CaseEvent]:
    return list(
        uow.session().execute(select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(CaseEvent.id)).scalars()
    )


def doctors(actor: Actor, *, institution_id: int | None, q: str | None, role: str | None) -> list[User]:
    """Central-hospital doctors to assign to, filtered by hospital and name (REG-17)."""
    s = uow.session()
    stmt = (
        select(User)
        .join(Institution, Institution.id == User.institution_id)
        .where(User.enabled.is_(True), User.review_status == "approved", Institution.kind == "central")
    )
    if institution_id:
        stmt = stmt.where(User.institution_id == institution_id)
    if q:
        stmt = stmt.where(user_name_matches(q))
    users = list(s.execute(stmt.order_by(User.full_name).limit(200)).unique().scalars())
    wanted = {role} if role else {"report_l1", "report_l2", "report_l3"}
    return [u for u in users if u.role_codes & wanted][:100]


def groups() -> list[dict[str, Any]]:
    s = uow.session()
    counts = dict(
        s.execute(select(WorkGroupMember.group_id, func.count()).group_by(WorkGroupMember.group_id)).tuples().all()
    )
    return [
        {"code": g.code, "name": g.name, "members": int(counts.get(g.id, 0))}
        for g in s.execute(select(WorkGroup).order_by(WorkGroup.code)).scalars()
    ]
