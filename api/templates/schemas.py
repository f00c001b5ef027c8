"""Request and response shapes of /api/templates and /api/phrases (issue 17; the contract: notes/templates-api.md)."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from api.schemas import Id, Int32, PageQuery, StrictSchema
from engine.templates.models import (
    BODY_PART_MAX,
    CATEGORIES,
    COMBINATION,
    KINDS,
    MODALITIES,
    NAME_MAX,
    PHRASE_MAX,
    POSITIVE,
    SCOPES,
    SECTION_MAX,
    SINGLE,
)
from engine.templates.phrases import SCOPES as PHRASE_SCOPES
from engine.templates.queries import TABS

_ONE_OF = "取值不在允许范围内"
_MODALITY = validate.OneOf(MODALITIES, error="不支持的设备类型")
_TEXT = validate.Length(max=SECTION_MAX, error=f"内容过长（最多 {SECTION_MAX} 字）")
_Q = validate.Length(max=64, error="搜索词过长（最多 64 字）")


class TreeQuery(StrictSchema):
    tab = fields.String(load_default="all", validate=validate.OneOf(TABS, error=_ONE_OF))
    q = fields.String(load_default=None, validate=_Q)
    modality = fields.String(load_default=None, validate=_MODALITY)


class TemplateQuery(PageQuery):
    tab = fields.String(load_default="all", validate=validate.OneOf(TABS, error=_ONE_OF))
    q = fields.String(load_default=None, validate=_Q)
    modality = fields.String(load_default=None, validate=_MODALITY)
    body_part = fields.String(load_default=None, validate=validate.Length(max=BODY_PART_MAX))
    kind = fields.String(load_default=None, validate=validate.OneOf(KINDS, error=_ONE_OF))


class SectionsIn(StrictSchema):
    exam_method = fields.String(load_default="", validate=_TEXT)
    findings = fields.String(load_default="", validate=_TEXT)
    impression = fields.String(load_default="", validate=_TEXT)
    recommendation = fields.String(load_default="", validate=_TEXT)
    positive = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(POSITIVE, error=_ONE_OF))


class TemplateIn(StrictSchema):
    name = fields.String(
        required=True, validate=validate.Length(min=1, max=NAME_MAX, error=f"名称须为 1 到 {NAME_MAX} 个字")
    )
    kind = fields.String(load_default=SINGLE, validate=validate.OneOf(KINDS, error=_ONE_OF))
    scope = fields.String(required=True, validate=validate.OneOf(SCOPES, error=_ONE_OF))
    category = fields.String(load_default="normal", validate=validate.OneOf(CATEGORIES, error=_ONE_OF))
    modality = fields.String(required=True, validate=_MODALITY)
    body_part = fields.String(
        required=True,
        validate=validate.Length(min=1, max=BODY_PART_MAX, error=f"检查部位须为 1 到 {BODY_PART_MAX} 个字"),
    )
    sections = fields.Nested(SectionsIn, load_default=None, allow_none=True)
    parts = fields.List(Id(), load_default=None, allow_none=True, validate=validate.Length(max=10))

    @validates_schema
    def _kind_needs(self, data: dict[str, Any], **_: Any) -> None:
        if not data.get("name", "x").strip():
            raise ValidationError("名称不能为空", "name")
        if data.get("kind") == COMBINATION and not data.get("parts"):
            raise ValidationError("组合模板需要选择单项模板", "parts")
        if data.get("kind") == SINGLE and data.get("parts"):
            raise ValidationError("单项模板不能包含其他模板", "parts")
        if data.get("kind") == SINGLE and data.get("sections") is None:
            raise ValidationError("请填写模板内容", "sections")


class TemplateUpdate(TemplateIn):
    version = Int32(required=True, min=1)


class OwnerOut(Schema):
    id = fields.Integer()
    full_name = fields.String()


class InstitutionOut(Schema):
    id = fields.Integer()
    code = fields.String()
    name = fields.String()


class TemplateSummary(Schema):
    id = fields.Integer()
    name = fields.String()
    pinyin = fields.String()
    kind = fields.String()
    scope = fields.String()
    category = fields.String()
    modality = fields.String()
    body_part = fields.String()
    favorite = fields.Boolean()
    owner = fields.Nested(OwnerOut, allow_none=True)
    institution = fields.Nested(InstitutionOut, allow_none=True)
    updated_at = fields.DateTime()
    version = fields.Integer()


class SectionsOut(Schema):
    exam_method = fields.String()
    findings = fields.String()
    impression = fields.String()
    recommendation = fields.String()
    positive = fields.String(allow_none=True)


class TemplateOut(TemplateSummary):
    sections = fields.Nested(SectionsOut)
    parts = fields.List(fields.Nested(TemplateSummary))
    structured = fields.List(fields.Dict(), data_key="fields")  # structured fields (RPT-15): none yet


class TemplatePageOut(Schema):
    items = fields.List(fields.Nested(TemplateSummary))
    total = fields.Integer()
    page = fields.Integer()
    page_size = fields.Integer()


class TreePartOut(Schema):
    body_part = fields.String()
    count = fields.Integer()


class TreeModalityOut(Schema):
    modality = fields.String()
    label = fields.String()
    count = fields.Integer()
    parts = fields.List(fields.Nested(TreePartOut))


class TreeOut(Schema):
    tree = fields.List(fields.Nested(TreeModalityOut))


class ReportIn(StrictSchema):
    findings = fields.String(load_default="", validate=_TEXT)
    impression = fields.String(load_default="", validate=_TEXT)
    recommendation = fields.String(load_default="", validate=_TEXT)
    positive = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(POSITIVE, error=_ONE_OF))


class CursorIn(StrictSchema):
    field = fields.String(
        required=True, validate=validate.OneOf(("findings", "impression", "recommendation"), error=_ONE_OF)
    )
    offset = Int32(required=True, min=0, max=SECTION_MAX * 2)


class ApplyIn(StrictSchema):
    mode = fields.String(required=True, validate=validate.OneOf(("insert", "replace"), error=_ONE_OF))
    report = fields.Nested(ReportIn, required=True)
    cursor = fields.Nested(CursorIn, load_default=None, allow_none=True)


class ReportOut(Schema):
    findings = fields.String()
    impression = fields.String()
    recommendation = fields.String()
    positive = fields.String(allow_none=True)


class ApplyOut(Schema):
    report = fields.Nested(ReportOut)


_PHRASE = validate.Length(min=1, max=PHRASE_MAX, error=f"短语须为 1 到 {PHRASE_MAX} 个字")
_SHORTCUT = validate.Range(min=1, max=9, error="快捷键须为 Ctrl+1 到 Ctrl+9")


class PhraseQuery(StrictSchema):
    q = fields.String(load_default=None, validate=_Q)


class PhraseIn(StrictSchema):
    text = fields.String(required=True, validate=_PHRASE)
    scope = fields.String(load_default="private", validate=validate.OneOf(PHRASE_SCOPES, error=_ONE_OF))
    shortcut = Int32(load_default=None, allow_none=True, validate=_SHORTCUT)

    @validates_schema
    def _not_blank(self, data: dict[str, Any], **_: Any) -> None:
        if "text" in data and not data["text"].strip():
            raise ValidationError("短语不能为空", "text")


class PhraseUpdate(PhraseIn):
    text = fields.String(validate=_PHRASE)
    scope = fields.String(validate=validate.OneOf(PHRASE_SCOPES, error=_ONE_OF))
    shortcut = Int32(allow_none=True, validate=_SHORTCUT)


class PhraseOut(Schema):
    id = fields.Integer()
    text = fields.String()
    scope = fields.String()
    shortcut = fields.Integer(allow_none=True)
    pinyin = fields.String()


class PhraseListOut(Schema):
    items = fields.List(fields.Nested(PhraseOut))
