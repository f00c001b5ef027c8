"""Request and response shapes of /api/reports (the report shapes shared with cases and tasks stay in
api/cases/schemas.py: ReportSchema, RevisionSchema)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from api.schemas import Int32, StrictSchema


class LockTokenSchema(StrictSchema):
    lock_token = Int32(required=True, min=0)


class LockResultSchema(Schema):
    lock_token = fields.Integer()
    expires_at = fields.DateTime()


class DraftSchema(StrictSchema):
    lock_token = Int32(required=True, min=0)
    findings = fields.String(load_default="", validate=validate.Length(max=20000))
    impression = fields.String(load_default="", validate=validate.Length(max=20000))
    recommendation = fields.String(load_default="", validate=validate.Length(max=20000))
    positive = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(["阴性", "阳性"]))


class CorrectSchema(StrictSchema):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=1000))
