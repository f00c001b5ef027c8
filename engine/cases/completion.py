"""Completing a user task: under the case (or process kind) lock, the candidate rule, the form's JSON Schema; a
step another package owns (the report steps, engine/reports/review.py) is carried out by its owner through
engine/cases/hooks.py."""

from __future__ import annotations

from typing import Any

import jsonschema
from sqlalchemy import select

from engine import audit, uow
from engine.actor import Actor
from engine.cases import hooks
from engine.cases.models import Case, CaseEvent
from engine.cases.services import assign, event, lock_case, mirror_status
from engine.cases.tasks import can_take, candidate_task, get_task, record
from engine.db import utcnow
from engine.errors import Conflict, Forbidden, ValidationFailed
from engine.workflow import instances, runner, service_tasks
from engine.workflow.models import HumanTask, ProcessDeployment, ProcessInstance


def form_for(deployment: ProcessDeployment, task: HumanTask) -> dict[str, Any]:
    form = deployment.forms.get(task.form or "")
    if form is None:
        raise Conflict("form_missing", "该任务没有表单")
    return form  # type: ignore[no-any-return]


def validate_form(schema: dict[str, Any], data: dict[str, Any]) -> None:
    """Server-side JSON Schema validation of submitted form data (ARCHITECTURE.md).

    Raises:
        ValidationFailed: ``form_invalid`` with one entry per error (path, message).
    """
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.path))
    if errors:
        raise ValidationFailed(
            "form_invalid",
            "表单填写有误",
            {"errors": [{"path": "/".join(str(p) for p in e.path), "message": e.message[:200]} for e in errors[:50]]},
        )


def task_form(actor: Actor, task_id: int) -> dict[str, Any]:
    """Schema, UI schema and prefilled data of a task (for a step with an owner, the owner's: a report step's
    current text, and the report)."""
    task = get_task(actor, task_id)
    if task.case_id is None:  # a task of another process kind: its deployment's form, its kind's prefill
        pi = uow.session().get(ProcessInstance, task.process_instance_id)
        assert pi is not None
        other = uow.session().get(ProcessDeployment, pi.deployment_id)
        assert other is not None
        kind = instances.kind_of(pi.process_id)
        prefill = kind.form_data(pi, task.task_name) if kind.form_data else {}
        form = form_for(other, task)
        return {"task": task, "schema": form["schema"], "ui_schema": form.get("ui"), "data": prefill, "report": None}
    case = uow.session().get(Case, task.case_id)
    assert case is not None
    dep = uow.session().get(ProcessDeployment, case.deployment_id)
    assert dep is not None
    form = form_for(dep, task)
    owner = hooks.step_owner(task.task_name)
    data, report = owner.form(case, task) if owner is not None else ({}, None)
    return {"task": task, "schema": form["schema"], "ui_schema": form.get("ui"), "data": data, "report": report}


def _ensure_holder(actor: Actor, task: HumanTask) -> None:
    if not can_take(actor, task):
        raise Forbidden("not_candidate", "您不能处理该任务（不是候选人、角色不符或已参与前一级）")
    if task.assignee_id is None:
        task.assignee_id, task.claimed_at = actor.user_id, utcnow()  # completing an open task claims it


def complete_task(actor: Actor, task_id: int, data: dict[str, Any], lock_token: int | None = None) -> Case:
    """Complete one human task under the case lock; exactly one of concurrent completions wins (WF-02).

    Raises:
        Conflict: the task is no longer open (``task_not_ready``), the report lock (``report_locked``,
            ``lock_lost``). Forbidden: not a candidate, or separation of duties. ValidationFailed: the form.
    """
    first = candidate_task(actor, task_id) or get_task(actor, task_id)
    if first.case_id is None:  # a task of another process kind is completed through that kind's service
        raise Conflict("not_a_case_task", "该任务不属于远程诊断申请")
    case = lock_case(first.case_id)
    s = uow.session()
    s.refresh(first)
    task = first
    if task.completed_at is not None:
        raise Conflict("task_not_ready", "任务已完成或已被回退，请刷新")
    _ensure_holder(actor, task)
    dep = s.get(ProcessDeployment, case.deployment_id)
    assert dep is not None
    validate_form(form_for(dep, task)["schema"], data)
    owner = hooks.step_owner(task.task_name)
    if owner is None:
        runner.complete(case.process, task.task_guid, data, assign)
        outcome = "completed"
    else:
        outcome = owner.complete(actor, case, dep, task, data, lock_token)
    task.completed_at, task.completed_by_id, task.outcome = utcnow(), actor.user_id, outcome
    mirror_status(case)
    case.updated_at = case.process.updated_at = utcnow()
    if outcome != "rejected":  # a rejection logged its own round (reason, target) in its owner
        event(case, actor, outcome, task.task_name)
    audit.record(actor, "task_completed", object_type="human_task", object_id=task.id, details={"outcome": outcome})
    return case


def complete_process_task(actor: Actor, task_id: int, data: dict[str, Any]) -> ProcessInstance:
    """Complete a human task of any process kind but remote diagnosis (those go through `complete_task`): under
    the kind's lock, the kind's candidate rule, the form's JSON Schema, then the kind records it (its `after`).

    Raises:
        Conflict: ``not_a_process_task`` for a remote-diagnosis task, ``task_not_ready``. Forbidden: not a
            candidate. ValidationFailed: the form.
    """
    first = candidate_task(actor, task_id) or get_task(actor, task_id)
    if first.case_id is not None:
        raise Conflict("not_a_process_task", "远程诊断申请的任务请在任务页面提交")
    s = uow.session()
    found = s.get(ProcessInstance, first.process_instance_id)
    assert found is not None
    kind = instances.kind_of(found.process_id)
    pi = kind.lock(found.id)
    s.refresh(first)
    task = first
    if task.completed_at is not None:
        raise Conflict("task_not_ready", "任务已完成或已被回退，请刷新")
    _ensure_holder(actor, task)
    dep = s.get(ProcessDeployment, pi.deployment_id)
    assert dep is not None
    validate_form(form_for(dep, task)["schema"], data)
    runner.complete(pi, task.task_guid, data, kind.assign)
    task.completed_at, task.completed_by_id, task.outcome = utcnow(), actor.user_id, "completed"
    pi.updated_at = utcnow()
    record(actor, task, "completed")
    audit.record(actor, "task_completed", object_type="human_task", object_id=task.id, details={"outcome": "completed"})
    return pi


@service_tasks.register("cases.escalate")
def escalate(params: dict[str, Any], task_data: dict[str, Any]) -> dict[str, Any]:
    """Service task behind the report-time-limit timer (UX.md R3): the case history shows it is overdue, once.

    The timer waits for the case's one due time (`tat_due`, engine/cases/turnaround.py). A 驳回 back to
    draft_report after that time re-enters the timer already due, so SpiffWorkflow fires it within that step: the
    case is overdue already and was escalated, so nothing is recorded twice."""
    s = uow.session()
    case = s.get(Case, int(params["case_id"]))
    if case is None:
        raise service_tasks.ServiceTaskError("case not found")
    seen = s.execute(select(CaseEvent.id).where(CaseEvent.case_id == case.id, CaseEvent.event == "overdue")).first()
    if seen is None:
        event(case, None, "overdue", "draft_report", emergency=case.emergency)
    return {"escalated": True}
