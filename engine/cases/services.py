"""Remote-diagnosis requests: create and dispatch (REQ: REG-12, DISP-01..05); the task list operations (claim,
release, assign, consult) are engine/cases/tasks.py."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import contains_eager, lazyload

from engine import audit, uow
from engine.accounts.models import Institution, User
from engine.accounts.permissions import BUILTIN_ROLES
from engine.actor import Actor
from engine.cases import hooks, turnaround
from engine.cases.models import (
    EXAM_STATUSES,
    EXAM_TRANSITIONS,
    Case,
    CaseEvent,
    DispatchPolicy,
    Exam,
    Patient,
    WorkGroup,
)
from engine.crypto import FieldCipher, mask_id_number, mask_phone
from engine.db import ID_MAX, utcnow
from engine.errors import Conflict, Forbidden, NotFound, ValidationFailed
from engine.visibility import get_visible
from engine.workflow import instances, runner, specs
from engine.workflow.models import ProcessInstance
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
    # The case's process instance is about the case: its subject id is set once the case row has its id.
    pi = runner.create_instance(deployment, institution_id=actor.institution_id or 0, subject_type="case", subject_id=0)
    case = Case(
        case_no=f"tmp-{utcnow().timestamp()}",
        requesting_institution_id=actor.institution_id,
        requester_id=actor.user_id,
        patient_id=p.id,
        emergency=emergency,
        clinical_info=clinical_info[:4000],
        process_instance_id=pi.id,
    )
    case.process = pi
    case.exams = exam_rows
    s.add(case)
    s.flush()
    pi.subject_id = case.id
    case.case_no = f"RC{today}{case.id:06d}"
    for exam in exam_rows:
        exam.status = "examined"
    set_exam_status(case, "awaiting")
    hooks.case_created(case)  # the report wing adds the first report (engine/reports/review.py)
    first = exam_rows[0]
    policy = _policy(actor.institution_id or 0, first.modality)
    # UX.md R3: the case is due when its most urgent exam is; the countdown and the process's sla_timer read due_at.
    case.tat_limit_minutes, case.due_at = turnaround.case_limit(
        actor.institution_id or 0, [(x.modality, x.body_part) for x in exam_rows], emergency, case.created_at
    )
    data = {
        "case_id": case.id,
        "emergency": emergency,
        "requesting_institution": actor.institution_code,
        "modality": first.modality,
        "body_part": first.body_part,
        "configured_mode": policy.mode if policy and policy.mode != "rule" else "",
        "configured_group": (policy.target_group or "") if policy else "",
        "configured_user": (policy.target_user_id or 0) if policy else 0,
        "tat_due": case.due_at.isoformat(),
    }
    event(case, actor, "created", details_exams=[x.exam_no for x in exam_rows])
    wf = runner.start(pi, deployment, data, assign)
    mirror_status(case)
    decided = next(iter(runner.ready_tasks(wf)), None)  # the DMN's choice, shown in the case detail
    if decided is not None:
        case.dispatch_mode = decided.data.get("dispatch_mode") or None
        case.target_group = decided.data.get("target_group") or None
    audit.record(actor, "case_created", object_type="case", object_id=case.id, patient_id=p.patient_no)
    return case


def group_exists(code: str | None) -> bool:
    return bool(code) and uow.session().execute(select(WorkGroup.id).where(WorkGroup.code == code)).first() is not None


def qualified_doctor(user_id: Any, role: str) -> User:
    """An enabled, approved central-hospital user holding `role`: the only one a task may be assigned to.

    Raises:
        ValidationFailed: ``not_qualified`` — also for an id that is not an integer in 1..ID_MAX (a form's
            assignee_id reaches here unbounded; it must not reach the database driver, issue 11 §3).
    """
    in_range = isinstance(user_id, int) and not isinstance(user_id, bool) and 1 <= user_id <= ID_MAX
    user = uow.session().get(User, user_id) if in_range else None
    if (
        user is None
        or not user.enabled
        or user.review_status != "approved"
        or role not in user.role_codes
        or user.institution.kind != "central"
    ):
        raise ValidationFailed("not_qualified", "所选医生没有该步骤所需的角色")
    return user


def assign(pi: runner.InstanceLike, r: ReadyTask) -> Assignment:
    """Who may take each new READY task of a case's process (the remote-diagnosis kind's assigner): the task
    belongs to the case (HumanTask.case_id) and carries its emergency flag."""
    case = uow.session().get(Case, pi.subject_id)  # locked and loaded by the caller: no statement
    assert case is not None
    return replace(_assign_case(case, r), case_id=case.id, emergency=case.emergency)


def _assign_case(case: Case, r: ReadyTask) -> Assignment:
    """A step another package owns (the report steps: engine/reports/review.py) is assigned by its owner; any
    other step is offered to its lane's role."""
    role = lane_role(r.lane)
    owner = hooks.step_owner(r.name)
    if owner is not None:
        return owner.assign(case, r, role)
    return Assignment(role)


def dispatched(role: str, r: ReadyTask) -> Assignment:
    """The first report task as dispatched (DISP-01..05): the dispatcher's manual choice, a directed doctor or
    group, a rule's group, else the grab pool."""
    mode = r.data.get("dispatch_mode")
    if mode == "manual" and r.data.get("assignee_id"):  # the dispatcher's choice (人工分配, DISP-01)
        return Assignment(role, assignee_id=qualified_doctor(r.data["assignee_id"], role).id)
    if mode == "directed" and r.data.get("target_user"):
        return Assignment(role, assignee_id=int(r.data["target_user"]))
    if mode in ("directed", "rule") and group_exists(r.data.get("target_group")):
        return Assignment(role, group_code=r.data["target_group"])
    return Assignment(role, in_pool=True)


@lru_cache(maxsize=2)
def _lock_case_stmt(by_process: bool) -> Any:
    # The case row and its process instance row in one statement, both locked (OF: PostgreSQL refuses FOR UPDATE
    # on the nullable side of the eager-loaded outer joins). Every path locks a case's instance this way, so the
    # two rows are always taken in the same order.
    key = Case.process_instance_id if by_process else Case.id
    stmt = (
        select(Case)
        .join(ProcessInstance, ProcessInstance.id == Case.process_instance_id)
        .where(key == bindparam("key"))
        .with_for_update(of=(Case, ProcessInstance))
    )
    # One statement per step: the requester/institution/exam graph loads only if the caller touches it.
    return stmt.options(lazyload("*"), contains_eager(Case.process)).execution_options(populate_existing=True)


def lock_case(case_id: int) -> Case:
    """Lock the case row and its process instance before loading its workflow (STYLE.md §3). SQLite already
    serialises writers.

    Raises:
        NotFound: no such case.
    """
    case = uow.session().execute(_lock_case_stmt(False), {"key": case_id}).unique().scalar_one_or_none()
    if case is None:
        raise NotFound()
    return case


def _lock_case_process(pi_id: int) -> ProcessInstance:
    """The remote-diagnosis kind's lock: the case of the instance with it (engine/workflow/instances.py)."""
    case = uow.session().execute(_lock_case_stmt(True), {"key": pi_id}).unique().scalar_one_or_none()
    if case is None:
        raise NotFound()
    return case.process


def mirror_status(case: Case) -> None:
    """The case's status follows its process instance's (case lists filter on it without a join)."""
    pi = case.process
    if case.status != pi.status:
        case.status = pi.status
    if case.completed_at != pi.completed_at:
        case.completed_at = pi.completed_at


def _after(pi: ProcessInstance, actor: Actor | None, what: str, details: Mapping[str, Any]) -> None:
    """History and status of the case after the worker fired its timers or someone retried its incident."""
    case = uow.session().get(Case, pi.subject_id)
    assert case is not None
    mirror_status(case)
    case.updated_at = utcnow()
    if what == "timer":
        for name, due in details["timers"]:
            event(case, None, "timer", name, due_at=due)
    else:
        event(case, actor, what, None, **dict(details))


instances.register_kind(PROCESS_ID, assign=assign, lock=_lock_case_process, after=_after, name="远程影像诊断")


def institution_of(case: Case) -> Institution:
    return case.requesting_institution


def fire_case_timers(case_id: int, now: datetime) -> int:
    """Fire the due timers of one case's process under its lock, exactly once (WF-06). Returns how many fired."""
    case = uow.session().get(Case, case_id)
    if case is None:
        raise NotFound()
    return instances.fire_instance_timers(case.process_instance_id, now)


def retry_incident(actor: Actor, case_id: int) -> Case:
    """Re-run the failed service task of an incident case under its lock (ARCHITECTURE.md "Incidents"); audited.

    Raises:
        NotFound: the case is not visible. Conflict: ``no_incident`` when the case has no open incident.
    """
    get_visible(actor, Case, case_id, object_type="case")
    case = lock_case(case_id)
    if case.status != "incident":
        raise Conflict("no_incident", "该申请没有待处理的流程异常")
    instances.retry(actor, case.process)
    return case
