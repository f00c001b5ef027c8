"""Shared marshmallow pieces: strict input (unknown fields rejected, AC-04) and allowlisted output."""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields


class StrictSchema(Schema):
    class Meta:
        unknown = RAISE


class PageQuery(StrictSchema):
    page = fields.Integer(load_default=1)
    page_size = fields.Integer(load_default=20)


class RefSchema(Schema):
    id = fields.Integer()
    code = fields.String()
    name = fields.String()


class InstitutionRefSchema(RefSchema):
    kind = fields.String()


class DepartmentRefSchema(Schema):
    id = fields.Integer()
    name = fields.String()


class ErrorSchema(Schema):
    code = fields.String()
    message = fields.String()
    details = fields.Dict()
