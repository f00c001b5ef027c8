"""/api/tasks: 我的任务, 组内任务, 抢单池; claim, release, assign, consult, form and completion."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from api.cases.presenters import case_detail, report_out
from api.cases.schemas import CaseDetailSchema, ReportSchema, UserRefSchema
from api.schemas import Id, InstitutionRefSchema, Int32, PageQuery, StrictSchema
from api.security import AUTHENTICATED, current_actor, deny, requires
from engine.actor import Actor
from engine.cases import completion, queries
from engine.cases import tasks as task_ops
from engine.visibility import has_process_tasks

blp = Blueprint("tasks", __name__, url_prefix="/api", description="任务与抢单池")


class TaskQuerySchema(PageQuery):
    scope = fields.String(load_default="mine", validate=validate.OneOf(queries.SCOPES))
    claimed = fields.Boolean()
    emergency = fields.Boolean()
    q = fields.String(validate=validate.Length(max=64))
    sort = fields.String(load_default="default", validate=validate.OneOf(queries.SORTS))


class GroupRefSchema(Schema):
    code = fields.String()
    name = fields.String()


class TaskItemSchema(Schema):
    id = fields.Integer()
    case_id = fields.Integer(allow_none=True)
    case_no = fields.String(allow_none=True)
    process_id = fields.String()
    process_name = fields.String()  # the process kind's Chinese name (远程影像诊断, 临床资料补充 …)
    subject = fields.String()  # what the process is about, e.g. the case number
    task_name = fields.String()
    title = fields.String()
    lane_role = fields.String()
    assignee = fields.Nested(UserRefSchema, allow_none=True)
    in_pool = fields.Boolean()
    group = fields.Nested(GroupRefSchema, allow_none=True)
    emergency = fields.Boolean()
    patient_name = fields.String()
    modality = fields.String()
    body_part = fields.String()
    requesting_institution = fields.Nested(InstitutionRefSchema, allow_none=True)
    created_at = fields.DateTime()
    claimed_at = fields.DateTime(allow_none=True)
    # 剩余时限 (UX.md R3): the case's start, due time and limit; the list counts down from them.
    case_created_at = fields.DateTime(allow_none=True)
    due_at = fields.DateTime(allow_none=True)
    tat_limit_minutes = fields.Integer(allow_none=True)


class TaskPageSchema(Schema):
    items = fields.List(fields.Nested(TaskItemSchema))
    total = fields.Integer()
    page = fields.Integer()
    page_size = fields.Integer()


class TaskFormSchema(Schema):
    task = fields.Nested(TaskItemSchema)
    schema = fields.Dict()
    ui_schema = fields.Dict(allow_none=True)
    data = fields.Dict()
    report = fields.Nested(ReportSchema, allow_none=True)


class ProcessTaskQuerySchema(PageQuery):
    scope = fields.String(load_default="mine", validate=validate.OneOf(queries.PROCESS_TASK_SCOPES))


class ProcessCompleteSchema(StrictSchema):
    data = fields.Dict(required=True)


class ProcessRefSchema(Schema):
    id = fields.Integer()
    process_id = fields.String()
    status = fields.String()


class ProcessWrapSchema(Schema):
    process = fields.Nested(ProcessRefSchema)


class CompleteSchema(StrictSchema):
    data = fields.Dict(required=True)
    lock_token = Int32(load_default=None, allow_none=True, min=0)


class AssignSchema(StrictSchema):
    user_id = Id(required=True)


class BatchAssignSchema(StrictSchema):
    task_ids = fields.List(Id(), required=True, validate=validate.Length(min=1, max=200))
    user_id = Id(load_default=None, allow_none=True)
    group_code = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=64))


class DoctorQuerySchema(StrictSchema):
    institution_id = Id()
    q = fields.String(validate=validate.Length(max=64))
    role = fields.String(validate=validate.OneOf(["report_l1", "report_l2", "report_l3"]))


class DoctorSchema(Schema):
    id = fields.Integer()
    full_name = fields.String()
    username = fields.String()
    institution = fields.Nested(InstitutionRefSchema)
    roles = fields.Function(lambda u: sorted(u.role_codes))


class GroupSchema(Schema):
    code = fields.String()
    name = fields.String()
    members = fields.Integer()


class CaseWrapSchema(Schema):
    case = fields.Dict()


class AssignedCountSchema(Schema):
    assigned = fields.Integer()


def _item(task: Any) -> dict[str, Any]:
    return queries.task_rows([task])[0]


@blp.route("/tasks", methods=["GET"])
@blp.arguments(TaskQuerySchema, location="query")
@blp.response(200, TaskPageSchema)
@requires("task.read")
def tasks(args: dict[str, Any]) -> Any:
    """我的任务 / 组内任务 / 抢单池（急诊优先，REC-10；按领取状态筛选，DISP-05）。"""
    page = queries.list_tasks(
        current_actor(),
        args["scope"],
        args["page"],
        args["page_size"],
        claimed=args.get("claimed"),
        emergency=args.get("emergency"),
        q=args.get("q"),
        sort=args["sort"],
    )
    return {"items": queries.task_rows(page.items), "total": page.total, "page": page.page, "page_size": page.page_size}


@blp.route("/tasks/<int:task_id>/claim", methods=["POST"])
@blp.response(200, TaskItemSchema)
@requires("task.claim")
def claim(task_id: int) -> Any:
    """抢单（领取任务）；并发领取时只有一人成功，其余得到 409。"""
    return _item(task_ops.claim(current_actor(), task_id))


@blp.route("/tasks/<int:task_id>/release", methods=["POST"])
@blp.response(200, TaskItemSchema)
@requires("task.claim")
def release(task_id: int) -> Any:
    """取消领取，任务退回抢单池或工作组（DISP-04）。"""
    return _item(task_ops.release(current_actor(), task_id))


@blp.route("/tasks/<int:task_id>/assign", methods=["POST"])
@blp.arguments(AssignSchema)
@blp.response(200, TaskItemSchema)
@requires("task.assign")
def assign(body: dict[str, Any], task_id: int) -> Any:
    """调度员指派任务给医生。"""
    return _item(task_ops.assign_to(current_actor(), task_id, body["user_id"]))


@blp.route("/tasks/<int:task_id>/consult", methods=["POST"])
@blp.arguments(AssignSchema)
@blp.response(200, TaskItemSchema)
@requires("task.claim")
def consult(body: dict[str, Any], task_id: int) -> Any:
    """会诊：任务持有人将任务转给另一位医生（REC-05）。"""
    return _item(task_ops.assign_to(current_actor(), task_id, body["user_id"], consult=True))


@blp.route("/tasks/batch-assign", methods=["POST"])
@blp.arguments(BatchAssignSchema)
@blp.response(200, AssignedCountSchema)
@requires("task.assign")
def batch_assign(body: dict[str, Any]) -> Any:
    """批量申请上级医生诊断：指派给一位医生或一个工作组（REC-06）。"""
    return {"assigned": task_ops.batch_assign(current_actor(), body["task_ids"], body["user_id"], body["group_code"])}


@blp.route("/tasks/<int:task_id>/form", methods=["GET"])
@blp.response(200, TaskFormSchema)
@requires("task.read")
def form(task_id: int) -> Any:
    """任务表单：JSON Schema、界面布局与预填数据。"""
    out = completion.task_form(current_actor(), task_id)
    out["task"] = _item(out["task"])
    out["report"] = report_out(out["report"])
    return out


@blp.route("/tasks/<int:task_id>/complete", methods=["POST"])
@blp.arguments(CompleteSchema)
@blp.response(200, CaseWrapSchema)
@requires("task.claim")
def complete(body: dict[str, Any], task_id: int) -> Any:
    """提交任务表单（服务器按 JSON Schema 校验）；驳回时回退到上一级。"""
    actor = current_actor()
    case = completion.complete_task(actor, task_id, body["data"], body["lock_token"])
    return {"case": CaseDetailSchema().dump(case_detail(actor, case))}


@blp.route("/doctors", methods=["GET"])
@blp.arguments(DoctorQuerySchema, location="query")
@blp.response(200, DoctorSchema(many=True))
@requires("task.read")
def doctors(args: dict[str, Any]) -> Any:
    """按医院与姓名筛选诊断医生（REG-17）。"""
    return queries.doctors(
        current_actor(), institution_id=args.get("institution_id"), q=args.get("q"), role=args.get("role")
    )


@blp.route("/groups", methods=["GET"])
@blp.response(200, GroupSchema(many=True))
@requires("task.read")
def groups() -> Any:
    """工作组。"""
    return queries.groups()


# --- tasks of the other process kinds (issue 14: any process) ---------------------------------------------------
# Who may see and take them is the task's process kind's rule (engine/visibility.py process_rule and
# process_candidates, e.g. clinical_query.answer at the case's requesting institution), not task.read/task.claim,
# which are the remote-diagnosis lists' central-only functions: a task outside the caller's rule answers 404 (and
# a security alert) or 403 not_candidate. The routes need a logged-in, active session whose permissions give some
# kind's task or candidate rule anything at all (`_process_actor`); anyone else — an administrator, a central
# doctor — holds no such function and gets 403 `forbidden`, audited, like /api/tasks without task.read (AC-03).

PROCESS_TASK_FUNCTION = {"function": "process_tasks"}


def _process_actor() -> Actor:
    actor = current_actor()
    if not has_process_tasks(actor):
        deny(actor, PROCESS_TASK_FUNCTION)  # REQ: AC-03
    return actor


@blp.route("/process-tasks", methods=["GET"])
@blp.arguments(ProcessTaskQuerySchema, location="query")
@blp.response(200, TaskPageSchema)
@requires(AUTHENTICATED)
def process_tasks(args: dict[str, Any]) -> Any:
    """其他流程的任务：我的（已领取）或可领取的（如临床资料补充的答复任务）。"""
    page = queries.list_process_tasks(_process_actor(), args["scope"], args["page"], args["page_size"])
    return {"items": queries.task_rows(page.items), "total": page.total, "page": page.page, "page_size": page.page_size}


@blp.route("/process-tasks/<int:task_id>/claim", methods=["POST"])
@blp.response(200, TaskItemSchema)
@requires(AUTHENTICATED)
def process_task_claim(task_id: int) -> Any:
    """领取其他流程的任务（按该流程的候选规则）。"""
    return _item(task_ops.claim(_process_actor(), task_id))


@blp.route("/process-tasks/<int:task_id>/release", methods=["POST"])
@blp.response(200, TaskItemSchema)
@requires(AUTHENTICATED)
def process_task_release(task_id: int) -> Any:
    """取消领取其他流程的任务。"""
    return _item(task_ops.release(_process_actor(), task_id))


@blp.route("/process-tasks/<int:task_id>/form", methods=["GET"])
@blp.response(200, TaskFormSchema)
@requires(AUTHENTICATED)
def process_task_form(task_id: int) -> Any:
    """其他流程任务的表单：JSON Schema、界面布局与预填数据。"""
    out = completion.task_form(_process_actor(), task_id)
    out["task"] = _item(out["task"])
    out["report"] = None
    return out


@blp.route("/process-tasks/<int:task_id>/complete", methods=["POST"])
@blp.arguments(ProcessCompleteSchema)
@blp.response(200, ProcessWrapSchema)
@requires(AUTHENTICATED)
def process_task_complete(body: dict[str, Any], task_id: int) -> Any:
    """提交其他流程任务的表单（服务器按 JSON Schema 校验），由该流程继续执行。"""
    pi = completion.complete_process_task(_process_actor(), task_id, body["data"])
    return {"process": pi}
