"""/api/turnaround-rules: 报告时限规则 — the rule table the worklists' countdown and the remote-diagnosis process's
timer read (issue 17; UX.md R3). Alliance-wide configuration of the central hospital (permission tat.manage)."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from api.schemas import Id, InstitutionRefSchema, Int32, StrictSchema
from api.security import current_actor, requires
from engine.cases import turnaround

blp = Blueprint("turnaround", __name__, url_prefix="/api", description="报告时限规则")


class TurnaroundRuleSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    institution = fields.Nested(InstitutionRefSchema, allow_none=True)
    modality = fields.String(allow_none=True)
    body_part_keyword = fields.String(allow_none=True)
    priority = fields.String(allow_none=True)
    patient_class = fields.String(allow_none=True)
    limit_minutes = fields.Integer()
    working_hours = fields.Boolean()
    enabled = fields.Boolean()
    version = fields.Integer()
    updated_at = fields.DateTime()


class TurnaroundRuleInSchema(StrictSchema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=64))
    institution_id = Id(allow_none=True, load_default=None)
    modality = fields.String(allow_none=True, load_default=None, validate=validate.Length(max=16))
    body_part_keyword = fields.String(allow_none=True, load_default=None, validate=validate.Length(max=32))
    priority = fields.String(allow_none=True, load_default=None, validate=validate.OneOf(list(turnaround.PRIORITIES)))
    patient_class = fields.String(
        allow_none=True, load_default=None, validate=validate.OneOf(list(turnaround.PATIENT_CLASSES))
    )
    limit_minutes = Int32(required=True, validate=validate.Range(min=1, max=turnaround.MAX_LIMIT_MINUTES))
    working_hours = fields.Boolean(load_default=False)
    enabled = fields.Boolean(load_default=True)


class TurnaroundRuleUpdateSchema(TurnaroundRuleInSchema):
    version = Int32(required=True)


@blp.route("/turnaround-rules", methods=["GET"])
@blp.response(200, TurnaroundRuleSchema(many=True))
@requires("tat.manage")
def list_rules() -> Any:
    """报告时限规则（按匹配顺序：条件越具体越优先；同样具体时取较短时限）。"""
    return turnaround.list_rules()


@blp.route("/turnaround-rules", methods=["POST"])
@blp.arguments(TurnaroundRuleInSchema)
@blp.response(201, TurnaroundRuleSchema)
@requires("tat.manage")
def create_rule(body: dict[str, Any]) -> Any:
    """新建时限规则（对此后新建的申请生效）。"""
    return turnaround.create_rule(current_actor(), body)


@blp.route("/turnaround-rules/<int:rule_id>", methods=["PUT"])
@blp.arguments(TurnaroundRuleUpdateSchema)
@blp.response(200, TurnaroundRuleSchema)
@requires("tat.manage")
def update_rule(body: dict[str, Any], rule_id: int) -> Any:
    """修改时限规则（版本号不符时 409）。"""
    version = body.pop("version")
    return turnaround.update_rule(current_actor(), rule_id, version, body)


@blp.route("/turnaround-rules/<int:rule_id>", methods=["DELETE"])
@blp.response(204)
@requires("tat.manage")
def delete_rule(rule_id: int) -> Any:
    """删除时限规则。"""
    turnaround.delete_rule(current_actor(), rule_id)
    return ""
