"""Completing a user task: form validation, report revisions, 驳回 by reset, three distinct signers (AC-06)."""

from __future__ import annotations

from typing import Any

import jsonschema

from engine import audit, uow
from engine.actor import Actor
from engine.cases.models import Case
from engine.cases.services import (
    assign,
    current_report,
    event,
    lock_case,
    mirror_status,
    released_report,
    set_exam_status,
    signed_by,
)
from engine.cases.tasks import can_take, candidate_task, get_task, record
from engine.db import utcnow
from engine.errors import Conflict, Forbidden, ValidationFailed
from engine.reports import services as reports
from engine.reports.models import LEVELS, Report
from engine.visibility import get_visible
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
    """Schema, UI schema and prefilled data of a task (for reports, the current text)."""
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
    report = current_report(case.id) if task.task_name in LEVELS else None
    data: dict[str, Any] = reports.current_content(report) if report else {}
    if data.get("positive") is None:
        data.pop("positive", None)
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
    level = LEVELS.get(task.task_name)
    if level is None:
        runner.complete(case.process, task.task_guid, data, assign)
        outcome = "completed"
    else:
        outcome = _complete_report_step(actor, case, dep, task, level, data, lock_token)
    task.completed_at, task.completed_by_id, task.outcome = utcnow(), actor.user_id, outcome
    mirror_status(case)
    case.updated_at = case.process.updated_at = utcnow()
    if outcome != "rejected":  # a rejection logged its own round (reason, target) above
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


def _complete_report_step(
    actor: Actor,
    case: Case,
    dep: ProcessDeployment,
    task: HumanTask,
    level: str,
    data: dict[str, Any],
    lock_token: int | None,
) -> str:
    report = current_report(case.id)
    assert report is not None
    content = reports.clean_content(data)
    reports.check_lock(actor, report, lock_token, content, level)
    decision = data.get("decision", "approve")
    if decision == "reject":
        reason = (data.get("reject_reason") or "").strip()
        if not reason:
            raise ValidationFailed(
                "form_invalid", "驳回必须填写原因", {"errors": [{"path": "reject_reason", "message": "必填"}]}
            )
        target = runner.reject_targets(dep).get(task.task_name)
        if target is None:
            raise Conflict("no_reject_flow", "该步骤不能驳回")
        edited = any(k in data for k in ("findings", "impression", "recommendation"))
        if edited and content != reports.current_content(report):  # a reviewer's own edits are kept too
            reports.add_revision(report, actor, level, content, signed=False, kind="draft")
        reports.add_revision(
            report, actor, level, reports.current_content(report), signed=False, kind="reject", note=reason[:1000]
        )
        report.status = "rejected_" + level
        _exam_status(case, report, "review_rejected")
        runner.reject_to(case.process, task.task_guid, target, {"decision": "", "reject_reason": reason}, assign)
        event(case, actor, "rejected_round", task.task_name, reason=reason[:500], back_to=target)
        audit.record(actor, "report_rejected", object_type="report", object_id=report.id, reason=reason[:500])
        reports.release_lock(actor, report)
        return "rejected"
    if not (content["findings"].strip() and content["impression"].strip()):
        raise ValidationFailed(
            "form_invalid",
            "影像所见和诊断意见不能为空（UX R4）",
            {"errors": [{"path": "findings", "message": "必填"}, {"path": "impression", "message": "必填"}]},
        )
    _check_distinct_signers(actor, report, level)
    kind = {"l1": "submit", "l2": "approve", "l3": "approve"}[level]
    reports.add_revision(report, actor, level, content, signed=True, kind=kind)
    if level == "l1":
        report.author_l1_id, report.status = actor.user_id, "preliminary"
        _exam_status(case, report, "preliminary")
        audit.record(actor, "report_submitted", object_type="report", object_id=report.id)
    elif level == "l2":
        report.author_l2_id, report.status = actor.user_id, "pending_review"
        _exam_status(case, report, "pending_review")
        audit.record(actor, "report_approved", object_type="report", object_id=report.id, details={"level": 2})
    else:
        report.reviewer_l3_id, report.status = actor.user_id, "reviewed"
        _exam_status(case, report, "reviewed")
        audit.record(actor, "report_approved", object_type="report", object_id=report.id, details={"level": 3})
    reports.release_lock(actor, report)
    runner.complete(case.process, task.task_guid, {"decision": "approve"}, assign)
    return "completed"


def _exam_status(case: Case, report: Report, status: str) -> None:
    """A correction in review leaves the exams 已发布/已打印 until the corrected version is released."""
    if report.correction_of_id is None:
        set_exam_status(case, status)


def correct_report(actor: Actor, case_id: int, reason: str) -> Report:
    """A 审核医生 corrects a released report: a new version goes through the three levels again; the old one
    stays the valid version until the new one is released, then it is voided (UX.md R10, DAT-05).

    Raises:
        Forbidden: not a qualified reviewer. Conflict: nothing released, or a correction already in progress.
    """
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed("form_invalid", "更正必须填写原因", {"errors": [{"path": "reason", "message": "必填"}]})
    if "report_l3" not in actor.roles or not actor.is_central:
        raise Forbidden("not_qualified", "只有审核医生可以更正已发布的报告")
    get_visible(actor, Case, case_id, object_type="case")
    case = lock_case(case_id)
    old = released_report(case.id)
    if old is None:
        raise Conflict("not_released", "没有已发布的报告")
    if current_report(case.id) is not old:
        raise Conflict("correction_in_progress", "该报告已有更正版本在审核中")
    s = uow.session()
    new = Report(case_id=case.id, version=old.version + 1, status="draft", correction_of_id=old.id, void_reason=None)
    s.add(new)
    s.flush()
    old.void_reason = reason[:1000]
    reports.add_revision(
        new, actor, "l3", reports.current_content(old), signed=False, kind="draft", note=f"更正原因：{reason[:500]}"
    )
    case.process.status = "open"
    runner.reopen(case.process, "draft_report", {"decision": "", "correction": True}, assign)
    mirror_status(case)
    event(case, actor, "correction_started", None, reason=reason[:500], version=new.version)
    audit.record(
        actor,
        "report_corrected",
        object_type="report",
        object_id=old.id,
        reason=reason[:500],
        details={"new_version": new.version},
    )
    return new


def _check_distinct_signers(actor: Actor, report: Report, level: str) -> None:
    """AC-06: the preliminary author, the reporting doctor and the reviewer are three different people, and
    nobody signs one report at two levels — also across 驳回 rounds (an earlier round's L2 signer who released the
    rework task must not then review at L3)."""
    earlier = {"l1": set(), "l2": {report.author_l1_id}, "l3": {report.author_l1_id, report.author_l2_id}}[level]
    earlier |= signed_by(report, tuple(x for x in ("l1", "l2", "l3") if x != level))
    if actor.user_id in earlier:
        raise Forbidden("separation_of_duties", "不能审核自己参与书写的报告")


@service_tasks.register("reports.publish")
def publish(params: dict[str, Any], task_data: dict[str, Any]) -> dict[str, Any]:
    """Service task: release the reviewed report to the requesting hospital (未打印 until printed)."""
    case = uow.session().get(Case, int(params["case_id"]))
    if case is None:
        raise service_tasks.ServiceTaskError("case not found")
    report = current_report(case.id)
    if report is None or report.status != "reviewed":
        raise service_tasks.ServiceTaskError("报告尚未审核，不能发布")
    signers = {report.author_l1_id, report.author_l2_id, report.reviewer_l3_id}
    if None in signers or len(signers) != 3:
        raise service_tasks.ServiceTaskError("终审报告必须有三位不同的医生签名")
    report.status, report.released_at = "released", utcnow()
    if report.correction_of_id:  # UX.md R10: the corrected version replaces the old one, which is voided
        old = uow.session().get(Report, report.correction_of_id)
        assert old is not None
        old.voided, old.status = True, "voided"
        old.void_reason = old.void_reason or "报告已更正"
        set_exam_status(case, "corrected")
    else:
        set_exam_status(case, "released")
    event(case, None, "released")
    # The release is the report's last state change: audited like the others (it ran as the process's service
    # task, after the L3 approval, so its actor is the workflow). Its subscribers notify the requester (issue 14).
    audit.record(
        Actor.system("workflow"),
        "report_released",
        object_type="report",
        object_id=report.id,
        patient_id=case.patient.patient_no[:64] if case.patient else None,
        details={"case_id": case.id, "case_no": case.case_no, "correction_of": report.correction_of_id},
    )
    return {"released": True}


@service_tasks.register("cases.escalate")
def escalate(params: dict[str, Any], task_data: dict[str, Any]) -> dict[str, Any]:
    """Service task behind the report-time-limit timer (UX.md R3): the case history shows it is overdue."""
    case = uow.session().get(Case, int(params["case_id"]))
    if case is None:
        raise service_tasks.ServiceTaskError("case not found")
    event(case, None, "overdue", "draft_report", emergency=case.emergency)
    return {"escalated": True}
