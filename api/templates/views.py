"""/api/templates and /api/phrases: the report editor's template panel and phrase library, and their management
(issue 17; REQ: RPT-03, RPT-06, RPT-07, RPT-15, DICT-02; UX.md R5, R6; contract: notes/templates-api.md).

Reading needs the menu permission `menu.templates` (every report writer holds it); who may write what is the
engine's rule (engine/templates/services.py): private templates `report.write` and their owner, institution and
public ones `template.manage`.
"""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from api.security import current_actor, requires
from api.templates import schemas as sch
from engine.actor import Actor
from engine.templates import phrases, queries, services
from engine.templates.apply import apply_template
from engine.templates.models import ReportTemplate

blp = Blueprint("templates", __name__, url_prefix="/api", description="报告模板与常用短语")

MENU = "menu.templates"


def _summary(x: queries.Listed) -> dict[str, Any]:
    t = x.template
    return {
        "id": t.id,
        "name": t.name,
        "pinyin": t.name_pinyin,
        "kind": t.kind,
        "scope": t.scope,
        "category": t.category,
        "modality": t.modality,
        "body_part": t.body_part,
        "favorite": x.favorite,
        "owner": x.owner,
        "institution": x.institution,
        "updated_at": t.updated_at,
        "version": t.version,
    }


def _full(actor: Actor, t: ReportTemplate) -> dict[str, Any]:
    parts = queries.parts_of(t)
    summaries = queries.listed(actor, [t, *parts])
    out = _summary(summaries[0])
    out["sections"] = queries.sections_of(t, parts)
    out["parts"] = [_summary(p) for p in summaries[1:]]
    out["structured"] = []
    return out


# ---- templates -------------------------------------------------------------------------------------------------------
@blp.route("/templates/tree", methods=["GET"])
@blp.arguments(sch.TreeQuery, location="query")
@blp.response(200, sch.TreeOut)
@requires(MENU)
def template_tree(args: dict[str, Any]) -> Any:
    """模板树：设备类型 → 检查部位，含各节点的模板数（按页签、搜索词与设备类型过滤）。"""
    return {"tree": queries.tree(current_actor(), tab=args["tab"], q=args["q"], modality=args["modality"])}


@blp.route("/templates", methods=["GET"])
@blp.arguments(sch.TemplateQuery, location="query")
@blp.response(200, sch.TemplatePageOut)
@requires(MENU)
def list_templates(args: dict[str, Any]) -> Any:
    """模板列表（分页）：按名称、拼音首字母或全拼搜索；常用★按使用次数排序。"""
    page = queries.list_templates(current_actor(), **args)
    return {
        "items": [_summary(x) for x in page.items],
        "total": page.total,
        "page": page.page,
        "page_size": page.page_size,
    }


@blp.route("/templates/<int:template_id>", methods=["GET"])
@blp.response(200, sch.TemplateOut)
@requires(MENU)
def get_template(template_id: int) -> Any:
    """一个模板及其内容；组合模板的内容由各单项模板按顺序拼合。"""
    actor = current_actor()
    return _full(actor, queries.get_template(actor, template_id))


@blp.route("/templates", methods=["POST"])
@blp.arguments(sch.TemplateIn)
@blp.response(201, sch.TemplateOut)
@requires(MENU)
def create_template(body: dict[str, Any]) -> Any:
    """新建模板：个人模板需要书写报告权限，科室/公共模板需要“管理公共模板与共享短语”。"""
    actor = current_actor()
    return _full(actor, services.create_template(actor, body))


@blp.route("/templates/<int:template_id>", methods=["PUT"])
@blp.arguments(sch.TemplateUpdate)
@blp.response(200, sch.TemplateOut)
@requires(MENU)
def update_template(body: dict[str, Any], template_id: int) -> Any:
    """修改模板；版本号过期时返回 409 stale_version。"""
    actor = current_actor()
    return _full(actor, services.update_template(actor, template_id, body))


@blp.route("/templates/<int:template_id>", methods=["DELETE"])
@blp.response(204)
@requires(MENU)
def delete_template(template_id: int) -> Any:
    """删除模板；被组合模板使用时返回 409 template_in_use。"""
    services.delete_template(current_actor(), template_id)


@blp.route("/templates/<int:template_id>/favorite", methods=["PUT"])
@blp.response(204)
@requires(MENU)
def star_template(template_id: int) -> Any:
    """加入常用★。"""
    services.set_favorite(current_actor(), template_id, True)


@blp.route("/templates/<int:template_id>/favorite", methods=["DELETE"])
@blp.response(204)
@requires(MENU)
def unstar_template(template_id: int) -> Any:
    """移出常用★。"""
    services.set_favorite(current_actor(), template_id, False)


@blp.route("/templates/<int:template_id>/use", methods=["POST"])
@blp.response(204)
@requires(MENU)
def use_template(template_id: int) -> Any:
    """记录一次使用（常用排序依据）。"""
    services.record_use(current_actor(), template_id)


@blp.route("/templates/<int:template_id>/apply", methods=["POST"])
@blp.arguments(sch.ApplyIn)
@blp.response(200, sch.ApplyOut)
@requires(MENU)
def apply(body: dict[str, Any], template_id: int) -> Any:
    """把模板插入到光标处或替换报告内容（服务端参考实现，RPT-06）。"""
    actor = current_actor()
    t = queries.get_template(actor, template_id)
    return {"report": apply_template(queries.sections_of(t), body["mode"], body["report"], body["cursor"])}


# ---- phrases ---------------------------------------------------------------------------------------------------------
@blp.route("/phrases", methods=["GET"])
@blp.arguments(sch.PhraseQuery, location="query")
@blp.response(200, sch.PhraseListOut)
@requires(MENU)
def list_phrases(args: dict[str, Any]) -> Any:
    """个人与共享的常用短语（可按文字或拼音首字母搜索）。"""
    return {"items": phrases.list_phrases(current_actor(), args["q"])}


@blp.route("/phrases", methods=["POST"])
@blp.arguments(sch.PhraseIn)
@blp.response(201, sch.PhraseOut)
@requires(MENU)
def create_phrase(body: dict[str, Any]) -> Any:
    """新建短语；共享短语需要“管理公共模板与共享短语”；快捷键冲突返回 409 shortcut_taken。"""
    return phrases.create_phrase(current_actor(), body)


@blp.route("/phrases/<int:phrase_id>", methods=["PUT"])
@blp.arguments(sch.PhraseUpdate)
@blp.response(200, sch.PhraseOut)
@requires(MENU)
def update_phrase(body: dict[str, Any], phrase_id: int) -> Any:
    """修改短语。"""
    return phrases.update_phrase(current_actor(), phrase_id, body)


@blp.route("/phrases/<int:phrase_id>", methods=["DELETE"])
@blp.response(204)
@requires(MENU)
def delete_phrase(phrase_id: int) -> Any:
    """删除短语。"""
    phrases.delete_phrase(current_actor(), phrase_id)
