"""临床资料补充 (clinical information request): the second process kind (issue 14, "Any process").

A central doctor working on a remote-diagnosis case asks the case's requesting institution for missing clinical
information; a registrar or requester there (permission ``clinical_query.answer``) answers, or says it cannot be
provided and why; the answer is recorded in the case history (service task ``clinical_query.record_answer``),
where the doctor sees it. Unanswered after the due time (process variable ``due``, ISO 8601 duration, default
PT24H), a non-interrupting timer runs ``clinical_query.overdue`` once: the query shows 已超时 and the case's requester
gets a 超时提醒 notification.

补传影像: the doctor may instead ask the institution to re-send or add images (``request_images``). The answer task
is then 补传影像, with a boundary message catch ``images_received``: when the worker applies the ingest event of a
study matched to one of the case's exams (engine/imaging/arrivals.py), the task ends by itself, the arrival is
recorded (``clinical_query.images_arrived``) and the doctor who asked is notified (影像已到达). The institution may
instead answer that the images cannot be provided, and why; the due-time timer applies as to any query.

What this kind is made of — and all a new process needs, no engine change: processes/clinical_query (BPMN),
forms/clinical_query (forms), the two service operations below, its visibility and candidate rules
(engine/visibility.py process_rule / process_candidates) and its registration (engine/workflow/instances.py).
Its record is the case history (CaseEvent rows carrying the instance id as ``query``): no table of its own.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, false, or_, select

from engine import audit, uow
from engine.accounts.models import User
from engine.actor import Actor
from engine.cases.models import Case, CaseEvent
from engine.cases.services import event, lane_role
from engine.errors import Forbidden, ValidationFailed
from engine.notifications import services as notifications
from engine.visibility import clause, get_visible, process_candidates, process_rule, process_task_rule, scoped
from engine.workflow import instances, runner, service_tasks, specs
from engine.workflow.models import HumanTask, ProcessInstance
from engine.workflow.runner import Assignment, ReadyTask

PROCESS_ID = "clinical_query"
NAME = "临床资料补充"
SUBJECT_TYPE = "case"
DEFAULT_DUE = "PT24H"
ANSWER_PERMISSION = "clinical_query.answer"
ASKED, ANSWERED, OVERDUE = "clinical_query_asked", "clinical_query_answered", "clinical_query_overdue"
IMAGES_ARRIVED = "clinical_query_images_arrived"
KINDS = {"info": "补充临床资料", "images": "补传影像"}
_DURATION = re.compile(r"^P(?:\d{1,3}D)?(?:T(?:\d{1,3}H)?(?:\d{1,4}M)?(?:\d{1,5}S)?)?$")
STATUSES = {
    "waiting": "待答复",
    "awaiting_images": "等待补传影像",
    "overdue": "已超时",
    "answered": "已答复",
    "images_arrived": "影像已到达",
    "unavailable": "无法提供",
    "incident": "流程异常",
}

# Test-only fault injection: when True, recording the answer fails (an incident until someone retries). Nothing in
# the application sets it; tests/processes/test_clinical_query.py does, to exercise incident + retry on this kind.
FAIL_RECORDING_FOR_TESTS = False


# --- visibility and candidates (engine/visibility.py) ----------------------------------------------------------


@process_rule(PROCESS_ID)
def _visible(actor: Actor) -> ColumnElement[bool]:
    """Whoever sees the case it is about (the doctor who asked, dispatchers), and the answering institution's
    holders of clinical_query.answer."""
    terms: list[ColumnElement[bool]] = []
    if actor.has("case.read"):
        # Correlated on the instance's case (a primary-key probe per query instance): `subject_id IN (the cases
        # the actor sees)` would make every central doctor's task list evaluate the Case rule over all cases.
        sees_case = exists().where(Case.id == ProcessInstance.subject_id, clause(actor, Case))
        terms.append(and_(ProcessInstance.subject_type == SUBJECT_TYPE, sees_case))
    if actor.has(ANSWER_PERMISSION):
        terms.append(ProcessInstance.institution_id == actor.institution_id)
    return or_(*terms) if terms else false()


@process_task_rule(PROCESS_ID)
@process_candidates(PROCESS_ID)
def _candidates(actor: Actor) -> ColumnElement[bool]:
    """Only the case's requesting institution answers: its registrars and requesters. They alone see the answer
    task in task lists too (the doctor follows the query on the case page), so central task lists keep their plans."""
    if not actor.has(ANSWER_PERMISSION) or actor.institution_id is None:
        return false()
    return ProcessInstance.institution_id == actor.institution_id


# --- the kind (engine/workflow/instances.py) --------------------------------------------------------------------


def _assign(pi: runner.InstanceLike, r: ReadyTask) -> Assignment:
    """The answer task waits at the requesting institution (its lane names the role; the candidate rule above
    decides who may take it)."""
    return Assignment(lane_role(r.lane))


def _case(pi: ProcessInstance) -> Case:
    case = uow.session().get(Case, pi.subject_id)
    assert case is not None
    return case


def _after(pi: ProcessInstance, actor: Actor | None, what: str, details: Mapping[str, Any]) -> None:
    """Claims, releases, completions and retries of a query go into the case's history with the query's id."""
    if what in ("timer", "message"):  # the overdue and images-arrived service tasks record their own entries
        return
    event(_case(pi), actor, what, details.get("task"), query=pi.id)


def _describe(pis: list[ProcessInstance]) -> dict[int, dict[str, Any]]:
    rows = uow.session().execute(select(Case.id, Case.case_no).where(Case.id.in_({p.subject_id for p in pis})))
    case_nos: dict[int, str] = {case_id: case_no for case_id, case_no in rows}
    return {
        p.id: {
            "subject": case_nos.get(p.subject_id, ""),
            "case_id": p.subject_id,
            "case_no": case_nos.get(p.subject_id),
        }
        for p in pis
    }


def _history(case_id: int) -> dict[int, dict[str, dict[str, Any]]]:
    """query id → its events (asked, answered, overdue, images arrived) → details, from the case history."""
    rows = uow.session().execute(
        select(CaseEvent)
        .where(CaseEvent.case_id == case_id, CaseEvent.event.in_((ASKED, ANSWERED, OVERDUE, IMAGES_ARRIVED)))
        .order_by(CaseEvent.id)
    )
    out: dict[int, dict[str, dict[str, Any]]] = {}
    for e in rows.scalars():
        details = dict(e.details or {})
        if isinstance(details.get("query"), int):
            out.setdefault(details["query"], {})[e.event] = {
                **details,
                "at": e.ts,
                "actor_name": e.actor_name,
                "actor_id": e.actor_id,
            }
    return out


def _form_data(pi: ProcessInstance, task_name: str) -> dict[str, Any]:
    asked = _history(pi.subject_id).get(pi.id, {}).get(ASKED, {})
    return {"question": asked.get("question", "")}


instances.register_kind(PROCESS_ID, assign=_assign, after=_after, name=NAME, describe=_describe, form_data=_form_data)


# --- service operations (engine/workflow/service_tasks.py) -------------------------------------------------------


def _case_of(params: dict[str, Any]) -> Case:
    case = uow.session().get(Case, int(params["case_id"]))
    if case is None:
        raise service_tasks.ServiceTaskError("申请不存在")
    return case


@service_tasks.register("clinical_query.record_answer")
def record_answer(params: dict[str, Any], task_data: dict[str, Any]) -> dict[str, Any]:
    """Service task: the answer (or 无法提供 and why) goes into the case history, where the doctor reads it."""
    if FAIL_RECORDING_FOR_TESTS:
        raise service_tasks.ServiceTaskError("病历记录暂不可用")
    case = _case_of(params)
    # A 补传影像 query is answered only to say the images cannot be provided (their arrival ends it by itself).
    unavailable = bool(task_data.get("unavailable")) or bool(task_data.get("request_images"))
    event(
        case,
        None,
        ANSWERED,
        "answer_query",
        query=int(params["query_id"]),
        answer=str(task_data.get("answer") or "")[:2000],
        unavailable=unavailable,
        reason=str(task_data.get("reason") or "")[:1000],
    )
    return {"recorded": True}


@service_tasks.register("clinical_query.overdue")
def overdue(params: dict[str, Any], task_data: dict[str, Any]) -> dict[str, Any]:
    """Service task behind the due-time timer: the query shows 已超时 and the case's requester, who was asked,
    is reminded (notification kind 超时提醒), in the timer's unit of work — once: the timer is not a cycle."""
    case = _case_of(params)
    event(case, None, OVERDUE, "answer_query", query=int(params["query_id"]))
    notifications.notify(
        "overdue",
        institution_id=case.requesting_institution_id,
        user_id=case.requester_id,
        text=f"远程诊断申请 {case.case_no}（患者 {case.patient.name}）的临床资料补充已超过答复时限，"
        "请尽快在申请详情中答复。",
        link=f"/cases/{case.id}",
    )
    return {"overdue": True}


@service_tasks.register("clinical_query.images_arrived")
def images_arrived(params: dict[str, Any], task_data: dict[str, Any]) -> dict[str, Any]:
    """Service task after the ``images_received`` message ended a 补传影像 query: the arrival goes into the case
    history and the doctor who asked is told (影像已到达), in the worker's transaction that delivered it."""
    case = _case_of(params)
    query_id = int(params["query_id"])
    arrived = task_data.get("arrived_images") or {}
    event(
        case,
        None,
        IMAGES_ARRIVED,
        "resend_images",
        query=query_id,
        study_instance_uid=str(arrived.get("study_instance_uid") or "")[:64],
    )
    asked = _history(case.id).get(query_id, {}).get(ASKED, {})
    doctor = uow.session().get(User, asked["actor_id"]) if asked.get("actor_id") else None
    if doctor is not None:
        notifications.notify(
            "images_arrived",
            institution_id=doctor.institution_id,
            user_id=doctor.id,
            text=f"远程诊断申请 {case.case_no}（患者 {case.patient.name}）请求补传的影像已到达，可继续诊断。",
            link=f"/cases/{case.id}",
        )
    return {"recorded": True}


# --- services ---------------------------------------------------------------------------------------------------


def start(
    actor: Actor, case_id: int, question: str, due: str | None = None, request_images: bool = False
) -> ProcessInstance:
    """A doctor working on the case (holding one of its open tasks) asks its requesting institution for clinical
    information, or (`request_images`) to re-send or add images (补传影像).

    Raises:
        NotFound: the case is not visible. Forbidden: ``not_working_on_case``. ValidationFailed: empty question,
            a due time that is not a duration.
    """
    case = get_visible(actor, Case, case_id, object_type="case")
    question = (question or "").strip()
    if not question:
        what = "需要补传的影像" if request_images else "需要补充的临床资料"
        raise ValidationFailed("form_invalid", f"请填写{what}", {"errors": [{"path": "question", "message": "必填"}]})
    due = due or DEFAULT_DUE
    if not _DURATION.match(due) or due in ("P", "PT"):
        raise ValidationFailed("form_invalid", "答复时限格式不正确", {"errors": [{"path": "due", "message": "格式"}]})
    s = uow.session()
    holds = s.execute(
        select(HumanTask.id).where(
            HumanTask.case_id == case.id, HumanTask.assignee_id == actor.user_id, HumanTask.completed_at.is_(None)
        )
    ).first()
    if holds is None or not actor.is_central:
        raise Forbidden("not_working_on_case", "只有正在处理该申请的医生可以发起临床资料补充")
    dep = specs.latest(PROCESS_ID)
    pi = runner.create_instance(
        dep, institution_id=case.requesting_institution_id, subject_type=SUBJECT_TYPE, subject_id=case.id
    )
    images = bool(request_images)
    event(case, actor, ASKED, None, query=pi.id, question=question[:2000], due=due, request_images=images)
    kind = instances.kind_of(PROCESS_ID)
    data = {"case_id": case.id, "query_id": pi.id, "question": question[:2000], "due": due, "request_images": images}
    runner.start(pi, dep, data, kind.assign)
    audit.record(
        actor,
        "clinical_query_started",
        object_type="case",
        object_id=case.id,
        details={"process_instance_id": pi.id, "due": due, "request_images": images},
    )
    return pi


def list_for_case(actor: Actor, case_id: int) -> list[dict[str, Any]]:
    """The queries of a case the actor sees, oldest first, with question, answer and status."""
    case = get_visible(actor, Case, case_id, object_type="case")
    pis = list(
        uow.session()
        .execute(
            scoped(actor, ProcessInstance)
            .where(
                ProcessInstance.process_id == PROCESS_ID,
                ProcessInstance.subject_type == SUBJECT_TYPE,
                ProcessInstance.subject_id == case.id,
            )
            .order_by(ProcessInstance.id)
        )
        .scalars()
    )
    history = _history(case.id)
    out = []
    for pi in pis:
        h = history.get(pi.id, {})
        asked, answered, late, arrived = h.get(ASKED, {}), h.get(ANSWERED), h.get(OVERDUE), h.get(IMAGES_ARRIVED)
        images = bool(asked.get("request_images"))
        if answered is not None:
            status = "unavailable" if answered.get("unavailable") else "answered"
        elif arrived is not None:
            status = "images_arrived"
        elif pi.status == "incident":
            status = "incident"
        elif late is not None:
            status = "overdue"
        else:
            status = "awaiting_images" if images else "waiting"
        out.append(
            {
                "id": pi.id,
                "kind": "images" if images else "info",
                "kind_name": KINDS["images" if images else "info"],
                "status": status,
                "status_name": STATUSES[status],
                "question": asked.get("question", ""),
                "due": asked.get("due", ""),
                "asked_by": asked.get("actor_name"),
                "asked_at": asked.get("at"),
                "answer": (answered or {}).get("answer", ""),
                "unavailable": bool((answered or {}).get("unavailable")),
                "reason": (answered or {}).get("reason", ""),
                "answered_at": (answered or {}).get("at") or (arrived or {}).get("at"),
                "overdue": late is not None,
                "process_status": pi.status,
            }
        )
    return out
