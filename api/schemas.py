"""Shared marshmallow pieces: strict input (unknown fields rejected, AC-04) and allowlisted output."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint
from marshmallow import RAISE, Schema, fields, validate
from webargs.flaskparser import FlaskParser
from werkzeug.exceptions import NotFound
from werkzeug.routing import IntegerConverter, Map, ValidationError

from engine.db import ID_MAX

# Primary keys are `integer` on PostgreSQL (32-bit): a larger id names no object on either database, and used to
# raise in the database driver (HTTP 500). REQ: DAT-01, WEB-05.
INT32_MIN = -(2**31)


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


class IdConverter(IntegerConverter):
    """The app's `<int:...>` converter (api/app.py): an id 1..2^31−1, or 404 whatever the method.

    Werkzeug would answer 405 for an unsafe method when a GET route shares the path; an out-of-range id names no
    object at all, so the answer is the same 404 as for an unknown id.
    """

    def __init__(self, map: Map, fixed_digits: int = 0, min: int = 1, max: int = ID_MAX, signed: bool = False) -> None:
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)

    def to_python(self, value: str) -> Any:
        try:
            return super().to_python(value)
        except ValidationError:
            raise NotFound() from None


def id_converter_schema(converter: IdConverter) -> dict[str, Any]:
    """The OpenAPI schema of a path id (flask-smorest's Api.register_converter)."""
    return {"type": "integer", "format": "int32", "minimum": converter.min, "maximum": converter.max}


class Int32(fields.Integer):
    """An integer input that fits a 32-bit column; outside [min, max] it is a validation error (400), never a
    database error. Every integer a request carries is one of these (tests/api/test_id_bounds.py checks it)."""

    default_error_messages = {"invalid": "必须是整数", "too_large": "数值过大"}
    bounds: tuple[int, int] = (INT32_MIN, ID_MAX)
    range_error = "必须是 {min} 到 {max} 之间的整数"

    def __init__(self, *, min: int | None = None, max: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        lo, hi = self.bounds
        bound = validate.Range(min=lo if min is None else min, max=hi if max is None else max, error=self.range_error)
        self.validators.insert(0, bound)


class Id(Int32):
    """An object id in a body, form or query string: 1..2^31−1, else 400 with a field error."""

    bounds = (1, ID_MAX)
    range_error = "编号超出范围（须为 {min} 到 {max} 之间的整数）"


class PageQuery(StrictSchema):
    # Any 32-bit value is clamped to 1.. and ..100 (engine.accounts.queries.clamp_page, WEB-06); beyond 32 bits the
    # request is refused (400) rather than offset by an absurd number. A page past the last is an empty page.
    page = Int32(load_default=1)
    page_size = Int32(load_default=20)


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
