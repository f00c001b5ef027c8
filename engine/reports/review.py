"""Report review, the report wing of the case engine: the three report steps (初级报告/报告/审核), three distinct
signers, 驳回 by reset, corrections, printing and the ``reports.publish`` service task (REQ: AC-06, RPT-08/10,
TRACE-01/02, UX.md R10/R12).

The case engine does not know this module: importing it registers the report steps, the first report of a new
case and the report columns of case rows with engine/cases/hooks.py, and ``reports.publish`` with the service-task
registry (engine/handlers.py imports it once at app start).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from engine import audit, uow
from engine.actor import Actor
from engine.cases import hooks
from engine.cases.models import Case
from engine.cases.services import assign, dispatched, event, lock_case, mirror_status, set_exam_status
from engine.cases.tasks import can_take, claim
from engine.db import utcnow
from engine.errors import Conflict, Forbidden, NotFound, ValidationFailed
from engine.reports import queries
from engine.reports import services as reports
from engine.reports.models import LEVELS, Report
from engine.visibility import get_visible
from engine.workflow import runner, service_tasks
from engine.workflow.models import HumanTask, ProcessDeployment
from engine.workflow.runner import Assignment, ReadyTask


def get_report(actor: Actor, report_id: int) -> Report:
    """A report of a case the actor may see.

    Raises:
        NotFound: no such report, or its case is not visible.
    """
    report = uow.session().get(Report, report_id)
    if report is None:
        raise NotFound()
    get_visible(actor, Case, report.case_id, object_type="case")
    return report


def level_of(actor: Actor, report: Report, *, take: bool = False) -> str:
    """The review level the actor works at on this report. With `take`, opening an unclaimed report task the
    actor may take claims it (the same atomic claim as 抢单), so the editor never opens read-only by surprise.

    Raises:
        Forbidden: ``not_holder`` when the actor holds (or may take) none of the case's open report tasks.
    """
    open_tasks = list(
        uow.session()
        .execute(select(HumanTask).where(HumanTask.case_id == report.case_id, HumanTask.completed_at.is_(None)))
        .scalars()
    )
    for task in open_tasks:
        if task.task_name in LEVELS and task.assignee_id == actor.user_id:
            return LEVELS[task.task_name]
    if take:
        for task in open_tasks:
            if task.task_name in LEVELS and task.assignee_id is None and can_take(actor, task):
                claim(actor, task.id)
                return LEVELS[task.task_name]
    raise Forbidden("not_holder", "只有领取了报告任务的医生可以编辑报告")


# --- the report steps, as the case engine's hooks call them ------------------------------------------------------


def _assign(case: Case, r: ReadyTask, role: str) -> Assignment:
    """The dispatch mode for the first report, the previous author after a rejection, and never an earlier
    author of the same report at a higher level (AC-06)."""
    report, signers = queries.report_and_signers(case.id)
    l1 = report.author_l1_id if report else None
    l2 = report.author_l2_id if report else None
    if r.name == "draft_report":
        if l1:  # rework after 驳回 goes back to its author
            return Assignment(role, assignee_id=l1, exclude=signers["l2"] | signers["l3"])
        if report is not None and report.correction_of_id:  # a correction starts with the original author
            original = uow.session().get(Report, report.correction_of_id)
            if original is not None and original.author_l1_id:
                return Assignment(role, assignee_id=original.author_l1_id)
        return dispatched(role, r)
    if r.name == "report_level2":
        # Nobody who signed this report at another level in any round: a released rework task must not reach them.
        exclude = {u for u in (l1,) if u} | signers["l1"] | signers["l3"]
        if l2:  # rework after 审核驳回: still never handed (会诊) to the preliminary author (AC-06)
            return Assignment(role, assignee_id=l2, exclude=exclude)
        return Assignment(role, exclude=exclude)
    return Assignment(role, exclude={u for u in (l1, l2) if u} | signers["l1"] | signers["l2"])


def _form(case: Case, task: HumanTask) -> tuple[dict[str, Any], Any]:
    """A report step's form opens with the current text; the report is shown beside it."""
    report = queries.current_report(case.id)
    data: dict[str, Any] = reports.current_content(report) if report else {}
    if data.get("positive") is None:
        data.pop("positive", None)
    return data, report


def _complete(
    actor: Actor,
    case: Case,
    dep: ProcessDeployment,
    task: HumanTask,
    data: dict[str, Any],
    lock_token: int | None,
) -> str:
    """Sign (submit/approve) or 驳回 one report step under the case lock and the report's edit lock.

    Raises:
        Conflict: ``report_locked``, ``lock_lost``, ``no_reject_flow``. Forbidden: ``separation_of_duties``.
        ValidationFailed: no reason for a 驳回, empty findings or impression.
    """
    level = LEVELS[task.task_name]
    report = queries.current_report(case.id)
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


def _check_distinct_signers(actor: Actor, report: Report, level: str) -> None:
    """AC-06: the preliminary author, the reporting doctor and the reviewer are three different people, and
    nobody signs one report at two levels — also across 驳回 rounds (an earlier round's L2 signer who released the
    rework task must not then review at L3)."""
    earlier = {"l1": set(), "l2": {report.author_l1_id}, "l3": {report.author_l1_id, report.author_l2_id}}[level]
    earlier |= queries.signed_by(report, tuple(x for x in ("l1", "l2", "l3") if x != level))
    if actor.user_id in earlier:
        raise Forbidden("separation_of_duties", "不能审核自己参与书写的报告")


# --- corrections, printing, release ----------------------------------------------------------------------------------


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
    old = queries.released_report(case.id)
    if old is None:
        raise Conflict("not_released", "没有已发布的报告")
    if queries.current_report(case.id) is not old:
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


def print_report(actor: Actor, case_id: int) -> Report:
    """The requesting hospital prints the released report: 已打印, time and count recorded (UX.md R12).

    Raises:
        NotFound: the case is not visible. Conflict: ``not_released``.
    """
    case = get_visible(actor, Case, case_id, object_type="case")
    report = queries.current_report(case.id)
    if report is None or report.status != "released":
        raise Conflict("not_released", "报告尚未发布，不能打印")
    report.printed_at = utcnow()
    report.print_count += 1
    set_exam_status(case, "printed")
    event(case, actor, "printed")
    audit.record(actor, "report_printed", object_type="report", object_id=report.id)
    return report


@service_tasks.register("reports.publish")
def publish(params: dict[str, Any], task_data: dict[str, Any]) -> dict[str, Any]:
    """Service task: release the reviewed report to the requesting hospital (未打印 until printed)."""
    case = uow.session().get(Case, int(params["case_id"]))
    if case is None:
        raise service_tasks.ServiceTaskError("case not found")
    report = queries.current_report(case.id)
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


# --- registration with the case engine (at import: engine/handlers.py) --------------------------------------------


@hooks.on_case_created
def _first_report(case: Case) -> None:
    """Every case starts with an empty first version of its report."""
    uow.session().add(Report(case_id=case.id, version=1, status="draft"))


hooks.register_steps(LEVELS, hooks.StepOwner(assign=_assign, complete=_complete, form=_form))
hooks.add_row_fields("reports", hooks.RowFields(defaults=queries.ROW_DEFAULTS, load=queries.report_columns))
