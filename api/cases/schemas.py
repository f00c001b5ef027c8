"""Schemas of cases, tasks and reports (outputs allowlisted, inputs strict — AC-04)."""

from __future__ import annotations

from datetime import date

from marshmallow import Schema, fields, validate

from api.schemas import InstitutionRefSchema, Int32, PageQuery, StrictSchema
from engine.cases.models import EXAM_STATUSES

SEXES = ("M", "F", "U")


class PatientInSchema(StrictSchema):
    patient_no = fields.String(required=True, validate=validate.Length(min=1, max=64))
    name = fields.String(required=True, validate=validate.Length(min=1, max=64))
    sex = fields.String(required=True, validate=validate.OneOf(SEXES))
    birth_date = fields.Date(load_default=None, allow_none=True)
    phone = fields.String(load_default=None, allow_none=True, validate=validate.Regexp(r"^1[3-9]\d{9}$"))
    id_number = fields.String(load_default=None, allow_none=True, validate=validate.Regexp(r"^\d{17}[\dXx]$"))


class ExamInSchema(StrictSchema):
    modality = fields.String(required=True, validate=validate.Length(min=1, max=16))
    body_part = fields.String(required=True, validate=validate.Length(min=1, max=64))
    exam_item = fields.String(required=True, validate=validate.Length(min=1, max=128))
    exam_time = fields.AwareDateTime(load_default=None, allow_none=True)
    accession_no = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=64))


class CaseCreateSchema(StrictSchema):
    patient = fields.Nested(PatientInSchema, required=True)
    exams = fields.List(fields.Nested(ExamInSchema), required=True, validate=validate.Length(min=1, max=20))
    emergency = fields.Boolean(load_default=False)
    clinical_info = fields.String(load_default="", validate=validate.Length(max=4000))


class CaseFilterQuerySchema(StrictSchema):
    """The filters shared by the case list and its chip counts (REC-02/03/07); dates are platform days."""

    status = fields.String(validate=validate.OneOf(["open", "completed", "incident", "cancelled"]))
    q = fields.String(validate=validate.Length(max=64))
    emergency = fields.Boolean()
    modality = fields.String(validate=validate.Length(min=1, max=16))
    institution_id = Int32()
    date_from = fields.Date()
    date_to = fields.Date()


class CaseQuerySchema(CaseFilterQuerySchema, PageQuery):
    exam_status = fields.String(validate=validate.OneOf(list(EXAM_STATUSES)))
    overdue = fields.Boolean()
    sort = fields.String(load_default="default", validate=validate.OneOf(["default", "due"]))


class CaseCountsWindowSchema(Schema):
    date_from = fields.Date()
    date_to = fields.Date()


class CaseCountsHospitalSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    count = fields.Integer()


class CaseCountsSchema(Schema):
    window = fields.Nested(CaseCountsWindowSchema)
    counts = fields.Dict(keys=fields.String(), values=fields.Integer())
    institutions = fields.List(fields.Nested(CaseCountsHospitalSchema))


class UserRefSchema(Schema):
    id = fields.Integer()
    full_name = fields.String()


class PatientOutSchema(Schema):
    name = fields.String()
    sex = fields.String()
    age = fields.Method("get_age")
    patient_no = fields.String()

    def get_age(self, p: object) -> int | None:
        birth = getattr(p, "birth_date", None)
        if birth is None:
            return None
        today = date.today()  # noqa: DTZ011 — an age in whole years
        return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


class ExamOutSchema(Schema):
    id = fields.Integer()
    exam_no = fields.String()
    accession_no = fields.String(allow_none=True)
    modality = fields.String()
    body_part = fields.String()
    exam_item = fields.String()
    exam_time = fields.DateTime(allow_none=True)
    status = fields.String()
    status_name = fields.Function(lambda e: EXAM_STATUSES.get(e.status, e.status))


class TaskBriefSchema(Schema):
    id = fields.Integer()
    task_name = fields.String()
    title = fields.String()
    assignee = fields.Nested(UserRefSchema, allow_none=True)
    in_pool = fields.Boolean()


class RevisionSchema(Schema):
    id = fields.Integer()
    seq = fields.Integer()
    level = fields.String()
    kind = fields.String()
    author = fields.Nested(UserRefSchema)
    created_at = fields.DateTime()
    signed = fields.Boolean()
    findings = fields.String()
    impression = fields.String()
    recommendation = fields.String()
    positive = fields.String(allow_none=True)
    note = fields.String(allow_none=True)
    changes = fields.List(fields.Dict())


class LockSchema(Schema):
    holder = fields.Nested(UserRefSchema)
    expires_at = fields.DateTime()


class ReportSchema(Schema):
    id = fields.Integer()
    case_id = fields.Integer()
    status = fields.String()
    version = fields.Integer()
    voided = fields.Boolean()
    lock = fields.Nested(LockSchema, allow_none=True)
    current = fields.Nested(RevisionSchema, allow_none=True)
    released_at = fields.DateTime(allow_none=True)
    printed_at = fields.DateTime(allow_none=True)
    print_count = fields.Integer()


class CaseHistorySchema(Schema):
    ts = fields.DateTime()
    event = fields.String()
    event_name = fields.String()
    actor = fields.String(allow_none=True)
    task_title = fields.String(allow_none=True)
    details = fields.Dict(allow_none=True)


class DeploymentRefSchema(Schema):
    id = fields.Integer()
    process_id = fields.String()
    version = fields.Integer()


class CaseItemSchema(Schema):
    id = fields.Integer()
    case_no = fields.String()
    status = fields.String()
    emergency = fields.Boolean()
    patient = fields.Nested(PatientOutSchema)
    exams = fields.List(fields.Nested(ExamOutSchema))
    requesting_institution = fields.Nested(InstitutionRefSchema)
    created_at = fields.DateTime()
    due_at = fields.DateTime(allow_none=True)  # 剩余时限 (UX.md R3)
    tat_limit_minutes = fields.Integer(allow_none=True)
    current_tasks = fields.List(fields.Nested(TaskBriefSchema))
    report_status = fields.String(allow_none=True)
    printed = fields.Boolean()


class CaseDetailSchema(CaseItemSchema):
    clinical_info = fields.String()
    dispatch_mode = fields.String(allow_none=True)
    target_group = fields.String(allow_none=True)
    report = fields.Nested(ReportSchema, allow_none=True)
    history = fields.List(fields.Nested(CaseHistorySchema))
    deployment = fields.Nested(DeploymentRefSchema)
    incident = fields.String(allow_none=True)


class CasePageSchema(Schema):
    items = fields.List(fields.Nested(CaseItemSchema))
    total = fields.Integer()
    page = fields.Integer()
    page_size = fields.Integer()


class DiagramSchema(Schema):
    bpmn_xml = fields.String()
    active = fields.List(fields.String())
    completed = fields.List(fields.String())


EVENT_NAMES = {
    "overdue": "超过报告时限",
    "correction_started": "发起报告更正",
    "created": "发起申请",
    "completed": "完成",
    "rejected": "驳回",
    "rejected_round": "驳回（回退）",
    "released": "报告发布",
    "printed": "打印报告",
    "assigned": "指派",
    "consulted": "会诊转派",
    "released_claim": "释放任务",
    "claimed": "领取",
    "migrated": "迁移流程版本",
    "incident": "流程异常",
    "retried": "重试",
    "timer": "定时事件",
    "clinical_query_asked": "发起临床资料补充",
    "clinical_query_answered": "答复临床资料补充",
    "clinical_query_overdue": "临床资料补充超时",
    "clinical_query_images_arrived": "补传影像已到达",
    "message": "流程收到消息",
}


class ClinicalQueryCreateSchema(StrictSchema):
    question = fields.String(required=True, validate=validate.Length(min=1, max=2000))
    due = fields.String(load_default=None, validate=validate.Regexp(r"^P[0-9DTHMS]{1,16}$"))  # ISO 8601 duration
    request_images = fields.Boolean(load_default=False)  # 补传影像 instead of clinical information


class ClinicalQuerySchema(Schema):
    id = fields.Integer()
    kind = fields.String()  # info | images
    kind_name = fields.String()
    status = fields.String()
    status_name = fields.String()
    question = fields.String()
    due = fields.String()
    asked_by = fields.String(allow_none=True)
    asked_at = fields.DateTime(allow_none=True)
    answer = fields.String()
    unavailable = fields.Boolean()
    reason = fields.String()
    answered_at = fields.DateTime(allow_none=True)
    overdue = fields.Boolean()
