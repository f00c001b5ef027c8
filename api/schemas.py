"""Shared marshmallow pieces: strict input (unknown fields rejected, AC-04) and allowlisted output."""

from __future__ import annotations

from flask_smorest import Blueprint
from marshmallow import RAISE, Schema, fields
from webargs.flaskparser import FlaskParser


class StrictSchema(Schema):
    class Meta:
        unknown = RAISE


# webargs passes unknown=EXCLUDE for the query string, which overrides Meta.unknown: without this, an unknown
# parameter such as `?sort=name;select pg_sleep(5)` is silently dropped instead of refused (DAT-01, WEB-03).
Blueprint.ARGUMENTS_PARSER.DEFAULT_UNKNOWN_BY_LOCATION = {
    **FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION,
    "query": None,
    "querystring": None,
}


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
