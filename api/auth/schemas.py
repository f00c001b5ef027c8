"""Request and response schemas of /api/auth."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from api.schemas import DepartmentRefSchema, InstitutionRefSchema, StrictSchema


class LoginSchema(StrictSchema):
    username = fields.String(required=True, validate=validate.Length(min=1, max=64))
    password = fields.String(required=True, validate=validate.Length(min=1, max=128))


class LoginResultSchema(Schema):
    csrf_token = fields.String()
    state = fields.String()
    reason = fields.String(allow_none=True)
    mfa_enrolled = fields.Boolean()


class MfaSchema(StrictSchema):
    code = fields.String(required=True, validate=validate.Length(min=1, max=12))


class PasswordChangeSchema(StrictSchema):
    old_password = fields.String(required=True, validate=validate.Length(min=1, max=128))
    new_password = fields.String(required=True, validate=validate.Length(min=1, max=128))


class RoleBriefSchema(Schema):
    code = fields.String()
    name = fields.String()


class MeSchema(Schema):
    id = fields.Integer()
    username = fields.String()
    full_name = fields.String()
    institution = fields.Nested(InstitutionRefSchema)
    department = fields.Nested(DepartmentRefSchema, allow_none=True)
    roles = fields.List(fields.Nested(RoleBriefSchema))
    permissions = fields.List(fields.String())
    menus = fields.List(fields.String())
    state = fields.String()
    csrf_token = fields.String()
    mfa_enrolled = fields.Boolean()
    last_login_at = fields.DateTime(allow_none=True)
    last_login_ip = fields.String(allow_none=True)
    failed_logins_since_last = fields.Integer()
    password_expires_at = fields.DateTime(allow_none=True)


class SessionSchema(Schema):
    id = fields.String()
    created_at = fields.DateTime()
    last_seen_at = fields.DateTime()
    ip = fields.String(allow_none=True)
    user_agent = fields.String(allow_none=True)
    current = fields.Boolean()


class EnrollSchema(Schema):
    secret = fields.String()
    otpauth_uri = fields.String()


class CsrfSchema(Schema):
    csrf_token = fields.String()
