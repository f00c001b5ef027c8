"""Request and response schemas of /api/imaging: devices, studies, conflicts, SR text and SCU actions.

REQ: IMG-02 (devices), DCM-03/04 (SCU: echo, find, retrieve, send), DCM-06 (SR text), DSEC-06 (conflicts).
"""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from api.schemas import Id, InstitutionRefSchema, Int32, PageQuery, StrictSchema
from engine.imaging.models import NODE_OPERATIONS

_aet = validate.Length(min=1, max=16)
_ops = fields.List(fields.String(validate=validate.OneOf(list(NODE_OPERATIONS))), validate=validate.Length(max=7))
_uid = validate.Regexp(r"^[0-9.]{1,64}$")


# --- devices (IMG-02) ------------------------------------------------------------------------------------------
class NodeSchema(Schema):
    id = fields.Integer()
    aet = fields.String()
    host = fields.String()
    port = fields.Integer(allow_none=True)
    institution = fields.Nested(InstitutionRefSchema)
    allow = fields.List(fields.String())
    tls_required = fields.Boolean()
    cert_fingerprint = fields.String(allow_none=True)
    enabled = fields.Boolean()
    description = fields.String()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class NodeQuerySchema(StrictSchema):
    q = fields.String(validate=validate.Length(max=64))
    institution_id = Id()
    enabled = fields.Boolean()


class NodeCreateSchema(StrictSchema):
    aet = fields.String(required=True, validate=_aet)
    host = fields.String(required=True, validate=validate.Length(min=1, max=255))
    port = Int32(load_default=None, allow_none=True, min=1, max=65535)
    institution_id = Id(required=True)
    allow = _ops
    tls_required = fields.Boolean(load_default=False)
    cert_fingerprint = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=128))
    enabled = fields.Boolean(load_default=True)
    description = fields.String(load_default="", validate=validate.Length(max=500))


class NodeUpdateSchema(StrictSchema):
    aet = fields.String(validate=_aet)
    host = fields.String(validate=validate.Length(min=1, max=255))
    port = Int32(allow_none=True, min=1, max=65535)
    allow = _ops
    tls_required = fields.Boolean()
    cert_fingerprint = fields.String(allow_none=True, validate=validate.Length(max=128))
    enabled = fields.Boolean()
    description = fields.String(validate=validate.Length(max=500))


class OperationSchema(Schema):
    code = fields.String()
    name = fields.String()


# --- studies ---------------------------------------------------------------------------------------------------
class StudyQuerySchema(PageQuery):
    q = fields.String(validate=validate.Length(max=64))
    modality = fields.String(validate=validate.Regexp(r"^[A-Za-z]{1,16}$"))
    date_from = fields.String(validate=validate.Regexp(r"^\d{4}-?\d{2}-?\d{2}$"))
    date_to = fields.String(validate=validate.Regexp(r"^\d{4}-?\d{2}-?\d{2}$"))
    institution_id = Id()


class StudySchema(Schema):
    id = fields.Integer()
    study_instance_uid = fields.String()
    patient_id = fields.String()
    patient_name = fields.String()
    patient_sex = fields.String()
    patient_birth_date = fields.String()
    study_date = fields.String()
    study_time = fields.String()
    accession_number = fields.String()
    study_description = fields.String()
    modalities = fields.List(fields.String())
    institution = fields.Nested(InstitutionRefSchema)
    series_count = fields.Integer()
    instance_count = fields.Integer()
    exam_id = fields.Integer(allow_none=True)
    created_at = fields.DateTime()


class StudyPageSchema(Schema):
    items = fields.List(fields.Nested(StudySchema))
    total = fields.Integer()
    page = fields.Integer()
    page_size = fields.Integer()


class InstanceSchema(Schema):
    id = fields.Integer()
    sop_instance_uid = fields.String()
    sop_class_uid = fields.String()
    sop_class_name = fields.String()
    transfer_syntax_uid = fields.String()
    instance_number = fields.Integer(allow_none=True)
    size = fields.Integer()
    received_at = fields.DateTime()
    is_sr = fields.Boolean()


class SeriesSchema(Schema):
    id = fields.Integer()
    series_instance_uid = fields.String()
    modality = fields.String()
    series_number = fields.Integer(allow_none=True)
    body_part = fields.String()
    series_description = fields.String()
    instances = fields.List(fields.Nested(InstanceSchema))


class StudyDetailSchema(StudySchema):
    referring_physician = fields.String()
    source_aet = fields.String(allow_none=True)
    series = fields.List(fields.Nested(SeriesSchema))


# --- conflicts (DSEC-06) ----------------------------------------------------------------------------------------
class ConflictQuerySchema(PageQuery):
    status = fields.String(validate=validate.OneOf(["open", "resolved"]))


class ConflictSchema(Schema):
    id = fields.Integer()
    status = fields.String()
    institution = fields.Nested(InstitutionRefSchema)
    sop_instance_uid = fields.String()
    sop_class_uid = fields.String()
    size = fields.Integer()
    sha256 = fields.String()
    calling_aet = fields.String()
    received_at = fields.DateTime()
    instance_id = fields.Integer()
    original_size = fields.Integer()
    original_sha256 = fields.String()
    original_received_at = fields.DateTime()
    study_id = fields.Integer()
    study_instance_uid = fields.String()
    patient_name = fields.String()
    resolved_by = fields.String(allow_none=True)
    resolved_at = fields.DateTime(allow_none=True)
    note = fields.String(allow_none=True)


class ConflictPageSchema(Schema):
    items = fields.List(fields.Nested(ConflictSchema))
    total = fields.Integer()
    page = fields.Integer()
    page_size = fields.Integer()


class ConflictResolveSchema(StrictSchema):
    note = fields.String(required=True, validate=validate.Length(min=1, max=500))


# --- SR text (DCM-06) ------------------------------------------------------------------------------------------
class SrItemSchema(Schema):
    relationship = fields.String(allow_none=True)
    value_type = fields.String()
    concept = fields.String(allow_none=True)
    text = fields.String(allow_none=True)
    children = fields.List(fields.Nested(lambda: SrItemSchema()))


class SrDocumentSchema(Schema):
    instance_id = fields.Integer()
    sop_class_uid = fields.String()
    title = fields.String(allow_none=True)
    completion_flag = fields.String(allow_none=True)
    verification_flag = fields.String(allow_none=True)
    content = fields.List(fields.Nested(SrItemSchema))
    text = fields.String()


# --- SCU actions (DCM-03/04) -----------------------------------------------------------------------------------
class EchoResultSchema(Schema):
    ok = fields.Boolean()
    status = fields.Integer(allow_none=True)
    message = fields.String()
    elapsed_ms = fields.Integer()


class FindSchema(StrictSchema):
    level = fields.String(load_default="STUDY", validate=validate.OneOf(["PATIENT", "STUDY", "SERIES", "IMAGE"]))
    patient_id = fields.String(validate=validate.Length(max=64))
    patient_name = fields.String(validate=validate.Length(max=64))
    accession_number = fields.String(validate=validate.Length(max=16))
    study_date = fields.String(validate=validate.Regexp(r"^[0-9-]{1,17}$"))
    modality = fields.String(validate=validate.Regexp(r"^[A-Za-z]{1,16}$"))
    study_instance_uid = fields.String(validate=_uid)
    series_instance_uid = fields.String(validate=_uid)
    limit = Int32(load_default=100, min=1, max=1000)


class FindMatchSchema(Schema):
    patient_id = fields.String()
    patient_name = fields.String()
    patient_sex = fields.String()
    patient_birth_date = fields.String()
    study_instance_uid = fields.String()
    study_date = fields.String()
    study_time = fields.String()
    accession_number = fields.String()
    study_description = fields.String()
    modalities = fields.List(fields.String())
    series_instance_uid = fields.String()
    series_number = fields.Integer(allow_none=True)
    modality = fields.String()
    series_description = fields.String()
    sop_instance_uid = fields.String()
    sop_class_uid = fields.String()
    instance_number = fields.Integer(allow_none=True)
    series_count = fields.Integer(allow_none=True)
    instance_count = fields.Integer(allow_none=True)


class FindResultSchema(Schema):
    ok = fields.Boolean()
    status = fields.Integer(allow_none=True)
    message = fields.String()
    items = fields.List(fields.Nested(FindMatchSchema))
    truncated = fields.Boolean()


class RetrieveSchema(StrictSchema):
    study_instance_uid = fields.String(required=True, validate=_uid)
    series_instance_uid = fields.String(validate=_uid)
    method = fields.String(load_default="move", validate=validate.OneOf(["move", "get"]))


class SendSchema(StrictSchema):
    node_id = Id(required=True)


class TransferResultSchema(Schema):
    ok = fields.Boolean()
    status = fields.Integer(allow_none=True)
    message = fields.String()
    completed = fields.Integer()
    failed = fields.Integer()
    warning = fields.Integer()
    elapsed_ms = fields.Integer()


# --- unmatched studies (IMG-06) -------------------------------------------------------------------------------
class UnmatchedQuerySchema(PageQuery):
    status = fields.String(load_default="open", validate=validate.OneOf(["open", "resolved"]))


class UnmatchedSchema(Schema):
    id = fields.Integer()
    reason = fields.String()
    reason_name = fields.String()
    description = fields.String()
    created_at = fields.DateTime()
    resolved_at = fields.DateTime(allow_none=True)
    institution = fields.Nested(InstitutionRefSchema)
    study = fields.Nested(StudySchema)


class UnmatchedPageSchema(Schema):
    items = fields.List(fields.Nested(UnmatchedSchema))
    total = fields.Integer()
    page = fields.Integer()
    page_size = fields.Integer()
