"""Request and response schemas of the routing, forwarding and storage admin API.

REQ: DCM-02, IMG-03, IMG-07 (routing rules), IMG-08 (forward queue), IMG-09 (storage targets and tasks),
IMG-04 (compression policies).
"""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from api.schemas import Id, Int32, PageQuery, StrictSchema
from engine.imaging.compression import POLICIES
from engine.imaging.routing_models import FORWARD_STATES, TASK_KINDS

_policy = validate.OneOf(["", *POLICIES])
_modality = validate.Regexp(r"^[A-Za-z0-9]{1,16}$", error="设备类型须为 1–16 位字母或数字")
_body_part = validate.Length(min=1, max=16)
_uid = validate.Regexp(r"^[0-9]+(\.[0-9]+)*$", error="SOP 类 UID 格式无效")
_ids = validate.Length(max=50)


class CompressionPolicySchema(Schema):
    code = fields.String()
    name = fields.String()
    lossy = fields.Boolean()


# --- routing rules (DCM-02, IMG-03, IMG-07) --------------------------------------------------------------------
class _RuleFields(StrictSchema):
    priority = Int32(min=0, max=100000)
    enabled = fields.Boolean()
    stop = fields.Boolean()
    node_ids = fields.List(Id(), validate=_ids)
    institution_ids = fields.List(Id(), validate=_ids)
    modalities = fields.List(fields.String(validate=_modality), validate=_ids)
    body_parts = fields.List(fields.String(validate=_body_part), validate=_ids)
    sop_classes = fields.List(fields.String(validate=[validate.Length(max=64), _uid]), validate=_ids)
    study_description_contains = fields.String(validate=validate.Length(max=128))
    series_description_contains = fields.String(validate=validate.Length(max=128))
    storage_target_id = Id(allow_none=True)
    storage_compression = fields.String(validate=_policy)
    forward_node_ids = fields.List(Id(), validate=_ids)
    forward_compression = fields.String(validate=_policy)


class RuleCreateSchema(_RuleFields):
    name = fields.String(required=True, validate=validate.Length(min=1, max=128))


class RuleUpdateSchema(_RuleFields):
    name = fields.String(validate=validate.Length(min=1, max=128))


class RuleSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    priority = fields.Integer()
    enabled = fields.Boolean()
    stop = fields.Boolean()
    node_ids = fields.List(fields.Integer())
    institution_ids = fields.List(fields.Integer())
    modalities = fields.List(fields.String())
    body_parts = fields.List(fields.String())
    sop_classes = fields.List(fields.String())
    study_description_contains = fields.String()
    series_description_contains = fields.String()
    storage_target_id = fields.Integer(allow_none=True)
    storage_compression = fields.String()
    forward_node_ids = fields.List(fields.Integer())
    forward_compression = fields.String()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


# --- storage targets and tasks (IMG-09) -------------------------------------------------------------------------
class TargetSchema(Schema):
    id = fields.Integer()
    code = fields.String()
    name = fields.String()
    kind = fields.String()
    root_path = fields.String()
    enabled = fields.Boolean()
    is_default = fields.Boolean()
    builtin = fields.Boolean()
    instance_count = fields.Integer()
    created_at = fields.DateTime()


class TargetCreateSchema(StrictSchema):
    code = fields.String(required=True, validate=validate.Length(min=1, max=32))
    name = fields.String(load_default="", validate=validate.Length(max=128))
    root_path = fields.String(required=True, validate=validate.Length(min=1, max=1024))
    is_default = fields.Boolean(load_default=False)


class TaskFilterSchema(StrictSchema):
    institution_id = Id()
    study_ids = fields.List(Id(), validate=validate.Length(max=1000))
    modality = fields.String(validate=_modality)
    received_before = fields.DateTime()


class TaskCreateSchema(StrictSchema):
    kind = fields.String(required=True, validate=validate.OneOf(list(TASK_KINDS)))
    source_id = Id(required=True)
    target_id = Id(required=True)
    filter = fields.Nested(TaskFilterSchema, load_default=dict)


class TaskSchema(Schema):
    id = fields.Integer()
    kind = fields.String()
    source = fields.Nested(lambda: TargetRefSchema())
    target = fields.Nested(lambda: TargetRefSchema())
    filter = fields.Dict()
    state = fields.String()
    total = fields.Integer()
    done = fields.Integer()
    percent = fields.Integer()
    copied = fields.Integer()
    missing = fields.Integer()
    mismatched = fields.Integer()
    errors = fields.Integer()
    last_error = fields.String()
    created_by = fields.String()
    created_at = fields.DateTime()
    started_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)


class TargetRefSchema(Schema):
    id = fields.Integer()
    code = fields.String()
    name = fields.String()


class TaskQuerySchema(StrictSchema):
    limit = Int32(load_default=50, min=1, max=200)


# --- forward queue (IMG-08) -------------------------------------------------------------------------------------
class JobQuerySchema(PageQuery):
    state = fields.String(validate=validate.OneOf(list(FORWARD_STATES)))
    node_id = Id()


class NodeRefSchema(Schema):
    id = fields.Integer()
    aet = fields.String()


class JobSchema(Schema):
    id = fields.Integer()
    state = fields.String()
    attempts = fields.Integer()
    next_attempt_at = fields.DateTime(allow_none=True)
    last_error = fields.String()
    compression = fields.String()
    rule_id = fields.Integer(allow_none=True)
    node = fields.Nested(NodeRefSchema)
    instance_id = fields.Integer()
    sop_instance_uid = fields.String()
    study_id = fields.Integer(allow_none=True)
    study_instance_uid = fields.String()
    patient_name = fields.String()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class JobPageSchema(Schema):
    items = fields.List(fields.Nested(JobSchema))
    total = fields.Integer()
    page = fields.Integer()
    page_size = fields.Integer()
    counts = fields.Dict(keys=fields.String(), values=fields.Integer())


class ForwardStudySchema(StrictSchema):
    node_id = Id(required=True)
    compression = fields.String(load_default="", validate=_policy)


class ForwardResultSchema(Schema):
    instances = fields.Integer()
    queued = fields.Integer()
    already_sent = fields.Integer()
