"""Request and response schemas of accounts, registration, review, users, roles and institutions."""

from __future__ import annotations

from flask_smorest.fields import Upload
from marshmallow import Schema, fields, validate

from api.schemas import DepartmentRefSchema, Id, InstitutionRefSchema, PageQuery, StrictSchema


class DepartmentSchema(Schema):
    id = fields.Integer()
    name = fields.String()


class InstitutionSchema(Schema):
    id = fields.Integer()
    code = fields.String()
    name = fields.String()
    name_pinyin = fields.String()  # 拼音首字母, so pick lists filter by initials too (issue 14)
    kind = fields.String()
    parent_id = fields.Integer(allow_none=True)
    departments = fields.List(fields.Nested(DepartmentSchema))


class InstitutionQuerySchema(StrictSchema):
    q = fields.String(validate=validate.Length(max=64))


_name = validate.Length(min=1, max=32)


class RegistrationFormSchema(StrictSchema):
    username = fields.String(required=True, validate=validate.Length(min=3, max=32))
    password = fields.String(required=True, validate=validate.Length(min=1, max=128))
    full_name = fields.String(required=True, validate=_name)
    institution_id = Id(required=True)
    department_id = Id(load_default=None, allow_none=True)
    title = fields.String(load_default="", validate=validate.Length(max=32))
    phone = fields.String(required=True, validate=validate.Length(max=20))
    id_number = fields.String(required=True, validate=validate.Length(max=18))


class ResubmitFormSchema(StrictSchema):
    username = fields.String(required=True, validate=validate.Length(min=1, max=64))
    password = fields.String(required=True, validate=validate.Length(min=1, max=128))
    full_name = fields.String(validate=_name)
    institution_id = Id()
    department_id = Id(allow_none=True)
    title = fields.String(validate=validate.Length(max=32))
    phone = fields.String(validate=validate.Length(max=20))
    id_number = fields.String(validate=validate.Length(max=18))


class PhotoFilesSchema(StrictSchema):
    id_card_photo = Upload()
    qualification_photo = Upload()


class CredentialsSchema(StrictSchema):
    username = fields.String(required=True, validate=validate.Length(min=1, max=64))
    password = fields.String(required=True, validate=validate.Length(min=1, max=128))


class RegistrationStatusSchema(Schema):
    id = fields.Integer()
    review_status = fields.String()
    reject_reason = fields.String(allow_none=True)
    full_name = fields.String()
    institution_id = fields.Integer()
    department_id = fields.Integer(allow_none=True)
    title = fields.String()
    phone_masked = fields.String(allow_none=True)
    id_number_masked = fields.String(allow_none=True)


class RoleRefSchema(Schema):
    id = fields.Integer()
    code = fields.String()
    name = fields.String()


class UserListItemSchema(Schema):
    id = fields.Integer()
    username = fields.String()
    full_name = fields.String()
    institution = fields.Nested(InstitutionRefSchema)
    department = fields.Nested(DepartmentRefSchema, allow_none=True)
    title = fields.String()
    phone_masked = fields.String(allow_none=True)
    review_status = fields.String()
    enabled = fields.Boolean()
    locked = fields.Boolean()
    roles = fields.List(fields.Nested(RoleRefSchema))
    last_login_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()


class UserPageSchema(Schema):
    items = fields.List(fields.Nested(UserListItemSchema))
    total = fields.Integer()
    page = fields.Integer()
    page_size = fields.Integer()


class UserQuerySchema(PageQuery):
    q = fields.String(validate=validate.Length(max=64))
    institution_id = Id()
    enabled = fields.Boolean()


class ReviewQuerySchema(PageQuery):
    q = fields.String(validate=validate.Length(max=64))
    status = fields.String(load_default="pending", validate=validate.OneOf(["pending", "approved", "rejected"]))
    institution_id = Id()


class ReviewItemSchema(Schema):
    id = fields.Integer()
    username = fields.String()
    full_name = fields.String()
    institution = fields.Nested(InstitutionRefSchema)
    department = fields.Nested(DepartmentRefSchema, allow_none=True)
    title = fields.String()
    phone_masked = fields.String(allow_none=True)
    review_status = fields.String()
    submitted_at = fields.DateTime()
    reviewed_at = fields.DateTime(allow_none=True)
    reviewed_by = fields.String(allow_none=True)
    reject_reason = fields.String(allow_none=True)
    source = fields.String()


class ReviewPageSchema(Schema):
    items = fields.List(fields.Nested(ReviewItemSchema))
    total = fields.Integer()
    page = fields.Integer()
    page_size = fields.Integer()


class PhotoSchema(Schema):
    id = fields.String()
    kind = fields.String()
    url = fields.String()


class HistorySchema(Schema):
    ts = fields.DateTime()
    action = fields.String()
    actor = fields.String(allow_none=True)
    reason = fields.String(allow_none=True)


class ReviewDetailSchema(ReviewItemSchema):
    id_number_masked = fields.String(allow_none=True)
    photos = fields.List(fields.Nested(PhotoSchema))
    history = fields.List(fields.Nested(HistorySchema))
    roles = fields.List(fields.Nested(RoleRefSchema))


class ApproveSchema(StrictSchema):
    role_ids = fields.List(Id(), required=True, validate=validate.Length(min=1, max=20))


class RejectSchema(StrictSchema):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=500))


class UserCreateSchema(StrictSchema):
    username = fields.String(required=True, validate=validate.Length(min=3, max=32))
    full_name = fields.String(required=True, validate=_name)
    institution_id = Id(required=True)
    department_id = Id(load_default=None, allow_none=True)
    title = fields.String(load_default="", validate=validate.Length(max=32))
    phone = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=20))
    id_number = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=18))


class UserCreatedSchema(Schema):
    id = fields.Integer()
    initial_password = fields.String()


class UserUpdateSchema(StrictSchema):
    full_name = fields.String(validate=_name)
    department_id = Id(allow_none=True)
    title = fields.String(validate=validate.Length(max=32))
    phone = fields.String(validate=validate.Length(max=20))
    enabled = fields.Boolean()


class UserRolesSchema(StrictSchema):
    role_ids = fields.List(Id(), required=True, validate=validate.Length(max=20))


class TempPasswordSchema(Schema):
    temporary_password = fields.String()


class RoleSchema(Schema):
    id = fields.Integer()
    code = fields.String()
    name = fields.String()
    description = fields.String()
    enabled = fields.Boolean()
    builtin = fields.Boolean()
    institution = fields.Nested(InstitutionRefSchema, allow_none=True)
    permissions = fields.List(fields.String())
    user_count = fields.Integer()
    # Where the role may be held (issue 11): central | member | any; null when nowhere (mixed permissions).
    scope = fields.String(allow_none=True)


class RoleQuerySchema(StrictSchema):
    q = fields.String(validate=validate.Length(max=64))
    enabled = fields.Boolean()


class RoleCreateSchema(StrictSchema):
    code = fields.String(required=True, validate=validate.Length(min=2, max=32))
    name = fields.String(required=True, validate=_name)
    description = fields.String(load_default="", validate=validate.Length(max=500))
    institution_id = Id(load_default=None, allow_none=True)
    permissions = fields.List(
        fields.String(validate=validate.Length(max=64)), load_default=list, validate=validate.Length(max=200)
    )


class RoleUpdateSchema(StrictSchema):
    name = fields.String(validate=_name)
    description = fields.String(validate=validate.Length(max=500))
    enabled = fields.Boolean()


class RolePermissionsSchema(StrictSchema):
    permissions = fields.List(
        fields.String(validate=validate.Length(max=64)), required=True, validate=validate.Length(max=200)
    )


class PermissionSchema(Schema):
    code = fields.String()
    name = fields.String()
    kind = fields.String()
    parent = fields.String(allow_none=True)
    domain = fields.String()
    scope = fields.String()  # central | member | any
