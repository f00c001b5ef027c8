"""/api/cases: remote-diagnosis requests, their history, diagram and clinical queries (the report routes are
api/reports/views.py)."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from api.cases import schemas as sch
from api.cases.presenters import case_detail
from api.security import current_actor, requires
from engine import audit, uow
from engine.accounts import auth
from engine.cases import case_filters, clinical_queries, queries, services
from engine.cases.case_filters import CaseFilters
from engine.cases.models import Case
from engine.visibility import get_visible
from engine.workflow import runner
from engine.workflow.models import ProcessDeployment

blp = Blueprint("cases", __name__, url_prefix="/api", description="远程诊断申请")


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


def _filters(args: dict[str, Any]) -> CaseFilters:
    return CaseFilters(
        status=args.get("status"),
        q=args.get("q"),
        emergency=args.get("emergency"),
        exam_status=args.get("exam_status"),
        modality=args.get("modality"),
        institution_id=args.get("institution_id"),
        date_from=args.get("date_from"),
        date_to=args.get("date_to"),
        overdue=args.get("overdue"),
    )


@blp.route("/cases", methods=["GET"])
@blp.arguments(sch.CaseQuerySchema, location="query")
@blp.response(200, sch.CasePageSchema)
@requires("case.read")
def list_cases(args: dict[str, Any]) -> Any:
    """远程诊断申请列表（按状态、检查状态、检查类别、申请医院、申请日期、急诊、超时、姓名/申请号/检查号查询）。"""
    page = queries.list_cases(
        current_actor(), _filters(args), page=args["page"], page_size=args["page_size"], sort=args["sort"]
    )
    return {"items": queries.case_rows(page.items), "total": page.total, "page": page.page, "page_size": page.page_size}


@blp.route("/cases/counts", methods=["GET"])
@blp.arguments(sch.CaseFilterQuerySchema, location="query")
@blp.response(200, sch.CaseCountsSchema)
@requires("case.read")
def case_counts(args: dict[str, Any]) -> Any:
    """状态快捷筛选的计数：所选日期范围内（默认近7天）各检查状态、急诊、已超时与全部的申请数（REC-07）。"""
    return case_filters.case_counts(current_actor(), _filters(args))


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
