"""Remote-diagnosis requests: create, dispatch, claim/release/assign/consult (REQ: REG-12, DISP-01..05, REC-05/06)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import lazyload

from engine import audit, uow
from engine.accounts.models import Institution, User
from engine.accounts.permissions import BUILTIN_ROLES
from engine.actor import Actor
from engine.cases.models import (
    EXAM_STATUSES,
    EXAM_TRANSITIONS,
    Case,
    CaseEvent,
    DispatchPolicy,
    Exam,
    Patient,
    WorkGroup,
    WorkGroupMember,
)
from engine.crypto import FieldCipher, mask_id_number, mask_phone
from engine.db import utcnow
from engine.errors import Conflict, Forbidden, NotFound, ValidationFailed
from engine.reports.models import Report, ReportRevision
from engine.visibility import get_visible
from engine.workflow import runner, specs
from engine.workflow.models import HumanTask, WorkflowTimer
from engine.workflow.runner import Assignment, ReadyTask

PROCESS_ID = "remote_diagnosis"
MODALITIES = ("CT", "MR", "DX", "CR", "DR", "US", "MG", "RF", "XA", "NM", "PT", "OT")
_ROLE_BY_NAME = {r.name: r.code for r in BUILTIN_ROLES} | {r.code: r.code for r in BUILTIN_ROLES}


def lane_role(lane: str | None) -> str:
    """A BPMN lane names a role by code or by its Chinese name (SpiffWorkflow reports the lane's name)."""
    role = _ROLE_BY_NAME.get((lane or "").strip())
    if role is None:
        raise ValidationFailed("unknown_lane", f"泳道 {lane!r} 不是已知角色")
    return role


def event(case: Case, actor: Actor | None, name: str, task_name: str | None = None, **details: Any) -> None:
    uow.session().add(
        CaseEvent(
            case_id=case.id,
            actor_id=actor.user_id if actor else None,
            actor_name=actor.username if actor else None,
            event=name,
            task_name=task_name,
            details=details or None,
        )
    )


def set_exam_status(case: Case, status: str) -> None:
    """Move every exam of the case; an illegal transition is refused (UX.md R2)."""
    for exam in case.exams:
        if status not in EXAM_TRANSITIONS[exam.status]:
            raise Conflict(
                "illegal_status",
                f"检查 {exam.exam_no} 不能从“{EXAM_STATUSES[exam.status]}”变为“{EXAM_STATUSES[status]}”",
            )
        exam.status = status
        exam.updated_at = utcnow()


@dataclass
class PatientIn:
    patient_no: str
    name: str
    sex: str
    birth_date: date | None
    phone: str | None = None
    id_number: str | None = None


@dataclass
class ExamIn:
    modality: str
    body_part: str
    exam_item: str
    exam_time: datetime | None
    accession_no: str | None = None


def _patient(actor: Actor, p: PatientIn, cipher: FieldCipher) -> Patient:
    s = uow.session()
    row = s.execute(
        select(Patient).where(Patient.institution_id == actor.institution_id, Patient.patient_no == p.patient_no)
    ).scalar()
    if row is None:
        row = Patient(institution_id=actor.institution_id, patient_no=p.patient_no)
        s.add(row)
    row.name, row.sex, row.birth_date = p.name, p.sex, p.birth_date
    if p.phone:
        row.phone_enc, row.phone_masked = cipher.encrypt_str(p.phone), mask_phone(p.phone)
    if p.id_number:
        row.id_number_enc, row.id_number_masked = cipher.encrypt_str(p.id_number), mask_id_number(p.id_number)
    return row


def _policy(institution_id: int, modality: str) -> DispatchPolicy | None:
    """Most specific configured policy: hospital + category, hospital, category, default."""
    rows = (
        uow.session()
        .execute(
            select(DispatchPolicy).where(
                (DispatchPolicy.institution_id.is_(None)) | (DispatchPolicy.institution_id == institution_id),
                (DispatchPolicy.modality.is_(None)) | (DispatchPolicy.modality == modality),
            )
        )
        .scalars()
        .all()
    )
    rows = sorted(rows, key=lambda r: (r.institution_id is not None, r.modality is not None), reverse=True)
    return rows[0] if rows else None


def create_case(
    actor: Actor, patient: PatientIn, exams: list[ExamIn], emergency: bool, clinical_info: str, cipher: FieldCipher
) -> Case:
    """A member hospital requests remote diagnosis for one or several exams (REG-12) and the flow starts.

    Raises:
        Forbidden: the caller's institution is not a member hospital.
        ValidationFailed: no exams, or an unknown category.
    """
    if actor.institution_kind != "member":
        raise Forbidden("member_only", "只有成员医院可以发起远程诊断申请")
    if not exams:
        raise ValidationFailed("validation_error", "请至少选择一个检查", {"fields": {"exams": ["必填"]}})
    for e in exams:
        if e.modality not in MODALITIES:
            raise ValidationFailed(
                "validation_error", f"未知的检查类别 {e.modality}", {"fields": {"exams": ["检查类别"]}}
            )
    s = uow.session()
    p = _patient(actor, patient, cipher)
    s.flush()
    today = utcnow().strftime("%Y%m%d")
    exam_rows = []
    for e in exams:
        exam = Exam(
            institution_id=actor.institution_id,
            patient_id=p.id,
            exam_no=f"tmp-{id(e)}-{utcnow().timestamp()}",
            accession_no=e.accession_no,
            modality=e.modality,
            body_part=e.body_part,
            exam_item=e.exam_item,
            exam_time=e.exam_time,
            status="examined",
        )  # images arrived: DICOM ingest sets this later
        s.add(exam)
        s.flush()
        exam.exam_no = f"{actor.institution_code}{e.modality}{today}{exam.id:06d}"
        exam_rows.append(exam)
    deployment = specs.latest(PROCESS_ID)
    case = Case(
        case_no=f"tmp-{utcnow().timestamp()}",
        requesting_institution_id=actor.institution_id,
        requester_id=actor.user_id,
        patient_id=p.id,
        emergency=emergency,
        clinical_info=clinical_info[:4000],
        deployment_id=deployment.id,
        workflow_state={},
    )
    case.exams = exam_rows
    s.add(case)
    s.flush()
    case.case_no = f"RC{today}{case.id:06d}"
    for exam in exam_rows:
        exam.status = "examined"
    set_exam_status(case, "awaiting")
    s.add(Report(case_id=case.id, version=1, status="draft"))
    first = exam_rows[0]
    policy = _policy(actor.institution_id or 0, first.modality)
    data = {
        "case_id": case.id,
        "emergency": emergency,
        "requesting_institution": actor.institution_code,
        "modality": first.modality,
        "body_part": first.body_part,
        "configured_mode": policy.mode if policy and policy.mode != "rule" else "",
        "configured_group": (policy.target_group or "") if policy else "",
        "configured_user": (policy.target_user_id or 0) if policy else 0,
    }
    event(case, actor, "created", details_exams=[x.exam_no for x in exam_rows])
    wf = runner.start(case, deployment, data, assign)
    decided = next(iter(runner.ready_tasks(wf)), None)  # the DMN's choice, shown in the case detail
    if decided is not None:
        case.dispatch_mode = decided.data.get("dispatch_mode") or None
        case.target_group = decided.data.get("target_group") or None
    audit.record(actor, "case_created", object_type="case", object_id=case.id, patient_id=p.patient_no)
    return case


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


def _group_exists(code: str | None) -> bool:
    return bool(code) and uow.session().execute(select(WorkGroup.id).where(WorkGroup.code == code)).first() is not None


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
    report, signers = None, {"l1": set(), "l2": set(), "l3": set()}
    for row, level, author in rows.unique():
        report = row
        if level is not None:
            signers.setdefault(level, set()).add(author)
    return report, signers


def assign(case: runner.CaseLike, r: ReadyTask) -> Assignment:
    """Who may take each new READY task: the dispatch mode for the first report, the previous author after a
    rejection, and never an earlier author of the same report at a higher level (AC-06)."""
    role = lane_role(r.lane)
    report, signers = report_and_signers(case.id)
    l1 = report.author_l1_id if report else None
    l2 = report.author_l2_id if report else None
    if r.name == "draft_report":
        if l1:  # rework after 驳回 goes back to its author
            return Assignment(role, assignee_id=l1, exclude=signers["l2"] | signers["l3"])
        if report is not None and report.correction_of_id:  # a correction starts with the original author
            original = uow.session().get(Report, report.correction_of_id)
            if original is not None and original.author_l1_id:
                return Assignment(role, assignee_id=original.author_l1_id)
        mode = r.data.get("dispatch_mode")
        if mode == "manual" and r.data.get("assignee_id"):
            return Assignment(role, assignee_id=int(r.data["assignee_id"]))
        if mode == "directed" and r.data.get("target_user"):
            return Assignment(role, assignee_id=int(r.data["target_user"]))
        if mode in ("directed", "rule") and _group_exists(r.data.get("target_group")):
            return Assignment(role, group_code=r.data["target_group"])
        return Assignment(role, in_pool=True)
    if r.name == "report_level2":
        # Nobody who signed this report at another level in any round: a released rework task must not reach them.
        exclude = {u for u in (l1,) if u} | signers["l1"] | signers["l3"]
        if l2:  # rework after 审核驳回: still never handed (会诊) to the preliminary author (AC-06)
            return Assignment(role, assignee_id=l2, exclude=exclude)
        return Assignment(role, exclude=exclude)
    if r.name == "review_level3":
        return Assignment(role, exclude={u for u in (l1, l2) if u} | signers["l1"] | signers["l2"])
    return Assignment(role)


# --- task list operations -----------------------------------------------------------------------


def user_groups(user_id: int) -> list[str]:
    return list(
        uow.session()
        .execute(
            select(WorkGroup.code)
            .join(WorkGroupMember, WorkGroupMember.group_id == WorkGroup.id)
            .where(WorkGroupMember.user_id == user_id)
        )
        .scalars()
    )


def can_take(actor: Actor, task: HumanTask, *, ignore_assignee: bool = False) -> bool:
    """Candidate check: holds the lane role, in the group if any, not excluded (AC-06)."""
    if task.role_code not in actor.roles or not actor.is_central:
        return False
    if any(x.user_id == actor.user_id for x in task.exclusions):
        return False
    if task.assignee_id is not None and not ignore_assignee:
        return task.assignee_id == actor.user_id
    if task.group_code and task.group_code not in user_groups(actor.user_id or 0):
        return False
    return True


def get_task(actor: Actor, task_id: int) -> HumanTask:
    return get_visible(actor, HumanTask, task_id, object_type="human_task")


def candidate_task(actor: Actor, task_id: int) -> HumanTask | None:
    """The task when the actor holds its lane role and could take it were it unassigned, loaded without the
    visibility rule: a doctor who loses a claim or completion race (the case just became invisible to them) gets
    a 409, not the 404 and security alert of an intruder (WF-01/02). Everyone else goes through get_task."""
    task = uow.session().get(HumanTask, task_id)
    if task is None or not actor.has("task.read") or not can_take(actor, task, ignore_assignee=True):
        return None
    return task


def claim(actor: Actor, task_id: int) -> HumanTask:
    """Grab a task: one conditional UPDATE, so of twenty simultaneous clicks exactly one wins (DISP-04, WF-01)."""
    task = candidate_task(actor, task_id) or get_task(actor, task_id)
    if task.completed_at is not None:
        raise Conflict("task_not_ready", "任务已完成")
    if not can_take(actor, task, ignore_assignee=True):
        raise Forbidden("not_candidate", "您不能领取该任务")
    s = uow.session()
    res = s.execute(
        update(HumanTask)
        .where(HumanTask.id == task.id, HumanTask.assignee_id.is_(None), HumanTask.completed_at.is_(None))
        .values(assignee_id=actor.user_id, claimed_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if res.rowcount != 1:  # type: ignore[attr-defined]
        audit.record(actor, "claim_conflict", outcome="failure", object_type="human_task", object_id=task.id)
        raise Conflict("already_claimed", "抢单失败：该任务已被他人领取")
    s.refresh(task)
    case = s.get(Case, task.case_id)
    assert case is not None
    event(case, actor, "claimed", task.task_name)  # REC-04: who took it, and it stays visible to them afterwards
    audit.record(actor, "task_claimed", object_type="human_task", object_id=task.id)
    return task


def release(actor: Actor, task_id: int) -> HumanTask:
    """Cancel a claim: the task returns to the pool or its group (DISP-04)."""
    task = get_task(actor, task_id)
    s = uow.session()
    res = s.execute(
        update(HumanTask)
        .where(HumanTask.id == task.id, HumanTask.assignee_id == actor.user_id, HumanTask.completed_at.is_(None))
        .values(assignee_id=None, claimed_at=None)
        .execution_options(synchronize_session=False)
    )
    if res.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict("not_holder", "只能释放自己领取的任务")
    s.refresh(task)
    case = s.get(Case, task.case_id)
    assert case is not None
    event(case, actor, "released_claim", task.task_name)
    audit.record(actor, "task_released", object_type="human_task", object_id=task.id)
    return task


def _doctor(user_id: int, role: str) -> User:
    user = uow.session().get(User, user_id)
    if (
        user is None
        or not user.enabled
        or user.review_status != "approved"
        or role not in user.role_codes
        or user.institution.kind != "central"
    ):
        raise ValidationFailed("not_qualified", "所选医生没有该步骤所需的角色")
    return user


def assign_to(actor: Actor, task_id: int, user_id: int, *, consult: bool = False) -> HumanTask:
    """A dispatcher assigns (or the holder hands over for 会诊, REC-05) a task to a qualified doctor."""
    task = get_task(actor, task_id)
    if task.completed_at is not None:
        raise Conflict("task_not_ready", "任务已完成")
    if consult and task.assignee_id != actor.user_id:
        raise Forbidden("not_holder", "只有任务持有人可以发起会诊转派")
    if not consult and not actor.has("task.assign"):
        raise Forbidden("forbidden", "没有权限执行此操作")
    doctor = _doctor(user_id, task.role_code)
    if any(x.user_id == doctor.id for x in task.exclusions):
        raise Forbidden("separation_of_duties", "该医生已参与本报告的前一级，不能担任本级")
    task.assignee_id, task.claimed_at, task.in_pool = doctor.id, utcnow(), False
    case = uow.session().get(Case, task.case_id)
    assert case is not None
    event(case, actor, "consulted" if consult else "assigned", task.task_name, to=doctor.full_name)
    audit.record(
        actor,
        "task_consulted" if consult else "task_assigned",
        object_type="human_task",
        object_id=task.id,
        details={"to_user_id": doctor.id},
    )
    return task


def batch_assign(actor: Actor, task_ids: list[int], user_id: int | None, group_code: str | None) -> int:
    """REC-06: send several open tasks to one doctor or one work group."""
    if (user_id is None) == (group_code is None):
        raise ValidationFailed("validation_error", "请选择一位医生或一个工作组")
    if group_code and not _group_exists(group_code):
        raise NotFound("group_not_found", "工作组不存在")
    n = 0
    for tid in sorted(set(task_ids))[:200]:
        if user_id is not None:
            assign_to(actor, tid, user_id)
        else:
            task = get_task(actor, tid)
            if task.completed_at is None:
                task.group_code, task.assignee_id, task.in_pool, task.claimed_at = group_code, None, False, None
                audit.record(
                    actor, "task_assigned", object_type="human_task", object_id=task.id, details={"group": group_code}
                )
        n += 1
    return n


@lru_cache(maxsize=1)
def _lock_case_stmt() -> Any:
    # OF remote_case: PostgreSQL refuses FOR UPDATE on the nullable side of the eager-loaded outer joins.
    stmt = select(Case).where(Case.id == bindparam("case_id")).with_for_update(of=Case)
    # One statement per step: the requester/institution/exam graph loads only if the caller touches it.
    return stmt.options(lazyload("*")).execution_options(populate_existing=True)


def lock_case(case_id: int) -> Case:
    """Lock the case row before loading its workflow (STYLE.md §3). SQLite already serialises writers."""
    case = uow.session().execute(_lock_case_stmt(), {"case_id": case_id}).unique().scalar_one_or_none()
    if case is None:
        raise NotFound()
    return case


def print_report(actor: Actor, case_id: int) -> Report:
    """The requesting hospital prints the released report: 已打印, time and count recorded (UX.md R12)."""
    case = get_visible(actor, Case, case_id, object_type="case")
    report = current_report(case.id)
    if report is None or report.status != "released":
        raise Conflict("not_released", "报告尚未发布，不能打印")
    report.printed_at = utcnow()
    report.print_count += 1
    set_exam_status(case, "printed")
    event(case, actor, "printed")
    audit.record(actor, "report_printed", object_type="report", object_id=report.id)
    return report


def institution_of(case: Case) -> Institution:
    return case.requesting_institution


def due_timer_cases(now: datetime, limit: int = 100) -> list[int]:
    """Cases with at least one due, unfired timer (the worker then fires each in its own unit of work)."""
    return list(
        uow.session()
        .execute(
            select(WorkflowTimer.case_id)
            .where(WorkflowTimer.fired_at.is_(None), WorkflowTimer.due_at <= now)
            .distinct()
            .limit(limit)
        )
        .scalars()
    )


def fire_case_timers(case_id: int, now: datetime) -> int:
    """Fire the due timers of one case under its lock, exactly once (WF-06). Returns how many fired."""
    s = uow.session()
    case = lock_case(case_id)
    rows = list(
        s.execute(
            select(WorkflowTimer).where(
                WorkflowTimer.case_id == case.id, WorkflowTimer.fired_at.is_(None), WorkflowTimer.due_at <= now
            )
        ).scalars()
    )
    if not rows:
        return 0
    for row in rows:  # marked first: a fired row is never deleted by the next sync, so it fires once
        row.fired_at = now
    s.flush()
    runner.fire_timers(case, assign)
    for row in rows:
        event(case, None, "timer", row.task_name, due_at=row.due_at.isoformat())
    audit.record(
        Actor.system("worker"),
        "timer_fired",
        object_type="case",
        object_id=case.id,
        details={"timers": [r.task_name for r in rows]},
    )
    return len(rows)


def retry_incident(actor: Actor, case_id: int) -> Case:
    """Re-run the failed service task of an incident case under its lock (ARCHITECTURE.md "Incidents"); audited.

    Raises:
        NotFound: the case is not visible. Conflict: ``no_incident`` when the case has no open incident.
    """
    get_visible(actor, Case, case_id, object_type="case")
    case = lock_case(case_id)
    if case.status != "incident":
        raise Conflict("no_incident", "该申请没有待处理的流程异常")
    runner.retry_incident(case, assign)
    case.updated_at = utcnow()
    event(case, actor, "retried", None, status=case.status)
    audit.record(actor, "incident_retried", object_type="case", object_id=case.id, details={"status": case.status})
    return case
