"""/api/cases and /api/reports: remote-diagnosis requests, their history, diagram and reports."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint
from sqlalchemy import select

from api.cases import schemas as sch
from api.cases.presenters import case_detail, report_out, revision_out
from api.security import current_actor, requires
from engine import audit, uow
from engine.accounts import auth
from engine.actor import Actor
from engine.cases import clinical_queries, completion, queries, services, tasks
from engine.cases.models import Case
from engine.errors import Forbidden, NotFound
from engine.reports import services as reports
from engine.reports.models import LEVELS, Report, ReportRevision
from engine.visibility import get_visible
from engine.workflow import runner
from engine.workflow.models import HumanTask, ProcessDeployment

blp = Blueprint("cases", __name__, url_prefix="/api", description="远程诊断申请与报告")


@blp.route("/cases", methods=["POST"])
@blp.arguments(sch.CaseCreateSchema)
@blp.response(201, sch.CaseDetailSchema)
@requires("case.create")
def create_case(body: dict[str, Any]) -> Any:
    """成员医院发起远程诊断申请（一个或多个检查），按配置的分配方式派发。"""
    actor = current_actor()
    case = services.create_case(
        actor,
        services.PatientIn(**body["patient"]),
        [services.ExamIn(**e) for e in body["exams"]],
        body["emergency"],
        body["clinical_info"],
        auth.cipher(),
    )
    return case_detail(actor, case)


@blp.route("/cases", methods=["GET"])
@blp.arguments(sch.CaseQuerySchema, location="query")
@blp.response(200, sch.CasePageSchema)
@requires("case.read")
def list_cases(args: dict[str, Any]) -> Any:
    """远程诊断申请列表（按状态、急诊、姓名/申请号/检查号查询）。"""
    page = queries.list_cases(
        current_actor(),
        status=args.get("status"),
        q=args.get("q"),
        emergency=args.get("emergency"),
        page=args["page"],
        page_size=args["page_size"],
    )
    return {"items": queries.case_rows(page.items), "total": page.total, "page": page.page, "page_size": page.page_size}


@blp.route("/cases/<int:case_id>", methods=["GET"])
@blp.response(200, sch.CaseDetailSchema)
@requires("case.read")
def get_case(case_id: int) -> Any:
    """申请详情：患者、检查、报告、全过程记录（REC-04）。"""
    actor = current_actor()
    case = get_visible(actor, Case, case_id, object_type="case")
    audit.record(actor, "case_viewed", object_type="case", object_id=case.id, patient_id=case.patient.patient_no)
    return case_detail(actor, case)


@blp.route("/cases/<int:case_id>/retry", methods=["POST"])
@blp.response(200, sch.CaseDetailSchema)
@requires("task.assign")
def retry(case_id: int) -> Any:
    """重试流程异常：排除故障后由调度员重新执行失败的服务任务（如发布报告）。"""
    actor = current_actor()
    return case_detail(actor, services.retry_incident(actor, case_id))


@blp.route("/cases/<int:case_id>/diagram", methods=["GET"])
@blp.response(200, sch.DiagramSchema)
@requires("case.read")
def diagram(case_id: int) -> Any:
    """流程图与当前步骤（bpmn-js 高亮）。"""
    case = get_visible(current_actor(), Case, case_id, object_type="case")
    dep = uow.session().get(ProcessDeployment, case.deployment_id)
    assert dep is not None
    state = runner.diagram_state(case.process)
    return {"bpmn_xml": next(iter(dep.bpmn.values())), "active": state.active, "completed": state.completed}


def _report(actor: Actor, report_id: int) -> Report:
    report = uow.session().get(Report, report_id)
    if report is None:
        raise NotFound()
    get_visible(actor, Case, report.case_id, object_type="case")
    return report


def _level_of(actor: Actor, report: Report, *, take: bool = False) -> str:
    """The review level the actor works at on this report. With `take`, opening an unclaimed report task the
    actor may take claims it (the same atomic claim as 抢单), so the editor never opens read-only by surprise."""
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
            if task.task_name in LEVELS and task.assignee_id is None and tasks.can_take(actor, task):
                tasks.claim(actor, task.id)
                return LEVELS[task.task_name]
    raise Forbidden("not_holder", "只有领取了报告任务的医生可以编辑报告")


@blp.route("/reports/<int:report_id>/lock", methods=["POST"])
@blp.response(200, sch.LockResultSchema)
@requires("report.write")
def lock_report(report_id: int) -> Any:
    """锁定报告进行编辑（到期自动释放，RPT-14）。"""
    actor = current_actor()
    report = _report(actor, report_id)
    _level_of(actor, report, take=True)
    token, expires = reports.acquire_lock(actor, report)
    audit.record(actor, "report_locked", object_type="report", object_id=report.id)
    return {"lock_token": token, "expires_at": expires}


@blp.route("/reports/<int:report_id>/unlock", methods=["POST"])
@blp.arguments(sch.LockTokenSchema)
@blp.response(204)
@requires("report.write")
def unlock_report(body: dict[str, Any], report_id: int) -> Any:
    """释放报告编辑锁。"""
    actor = current_actor()
    reports.release_lock(actor, _report(actor, report_id), body["lock_token"])


@blp.route("/reports/<int:report_id>/draft", methods=["PUT"])
@blp.arguments(sch.DraftSchema)
@blp.response(200, sch.RevisionSchema)
@requires("report.write")
def save_draft(body: dict[str, Any], report_id: int) -> Any:
    """保存报告草稿（每次保存都是一个修订）；锁失效时返回 409，内容仍保留为草稿修订。"""
    actor = current_actor()
    report = _report(actor, report_id)
    token = body.pop("lock_token")
    try:
        level = _level_of(actor, report)
    except Forbidden:
        reports.keep_former_holders_draft(actor, report, body)  # 409 lock_lost with the text kept (WF-04)
        raise
    rev = reports.save_draft(actor, report, token, body, level)
    return revision_out(rev)


@blp.route("/reports/<int:report_id>/revisions", methods=["GET"])
@blp.response(200, sch.RevisionSchema(many=True))
@requires("case.read")
def revisions(report_id: int) -> Any:
    """报告修改痕迹：每次保存的作者、级别、时间与改动（TRACE-01/02）。"""
    actor = current_actor()
    report = _report(actor, report_id)
    if not actor.is_central and report.status != "released" and not report.voided:
        raise NotFound()
    revs = list(
        uow.session()
        .execute(select(ReportRevision).where(ReportRevision.report_id == report.id).order_by(ReportRevision.seq))
        .unique()
        .scalars()
    )
    return [revision_out(x["revision"], x["changes"]) for x in reports.revision_changes(revs)]


@blp.route("/reports/<int:report_id>/print", methods=["POST"])
@blp.response(200, sch.ReportSchema)
@requires("report.print")
def print_report(report_id: int) -> Any:
    """打印已发布的报告（记录打印时间与次数，状态变为已打印）。"""
    actor = current_actor()
    return report_out(services.print_report(actor, _report(actor, report_id).case_id))


@blp.route("/cases/<int:case_id>/correct", methods=["POST"])
@blp.arguments(sch.CorrectSchema)
@blp.response(201, sch.ReportSchema)
@requires("report.write")
def correct(body: dict[str, Any], case_id: int) -> Any:
    """更正已发布的报告：生成新版本重新三级审核，发布后旧版本作废（报告已更正）。"""
    return report_out(completion.correct_report(current_actor(), case_id, body["reason"]))


@blp.route("/cases/<int:case_id>/clinical-queries", methods=["POST"])
@blp.arguments(sch.ClinicalQueryCreateSchema)
@blp.response(201, sch.ClinicalQuerySchema)
@requires("task.claim")
def start_clinical_query(body: dict[str, Any], case_id: int) -> Any:
    """补充临床资料：处理该申请的医生请申请医院补充临床资料，或补传影像（request_images；影像到达后自动完成）。"""
    actor = current_actor()
    pi = clinical_queries.start(actor, case_id, body["question"], body.get("due"), body.get("request_images", False))
    return next(q for q in clinical_queries.list_for_case(actor, case_id) if q["id"] == pi.id)


@blp.route("/cases/<int:case_id>/clinical-queries", methods=["GET"])
@blp.response(200, sch.ClinicalQuerySchema(many=True))
@requires("case.read")
def clinical_query_list(case_id: int) -> Any:
    """申请的临床资料补充：问题、答复与状态。"""
    return clinical_queries.list_for_case(current_actor(), case_id)
