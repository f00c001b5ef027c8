"""Writing templates: create, update with a version check, soft delete, stars and use counts (issue 17;
REQ: RPT-03, RPT-07, DICT-02; UX.md R5).

Who may write (the API contract, docs in notes/templates-api.md): private templates need `report.write` and only
their owner changes them; institution and public templates need `template.manage`. Writes are audited; stars and use
counts are preferences and are not.
"""

from __future__ import annotations

from typing import Any, NoReturn

from sqlalchemy import delete, insert, update

from engine import audit, uow
from engine.actor import Actor
from engine.db import upsert_insert, utcnow
from engine.errors import Conflict, Forbidden, NotFound, ValidationFailed
from engine.templates import search
from engine.templates.models import (
    COMBINATION,
    PRIVATE,
    SECTIONS,
    SINGLE,
    ReportTemplate,
    ReportTemplateKey,
    ReportTemplatePart,
    ReportTemplateUsage,
)
from engine.templates.queries import combinations_using, get_template

MANAGE = "template.manage"
WRITE = "report.write"
MAX_PARTS = 10


def _deny(actor: Actor, action: str, template_id: int | None, reason: str) -> NoReturn:
    audit.record(
        actor,
        "permission_denied",
        outcome="failure",
        object_type="report_template",
        object_id=template_id,
        reason=action,
        details={"permission": MANAGE},
    )
    raise Forbidden("forbidden", reason, {"permission": MANAGE})


def check_may_write(actor: Actor, scope: str, action: str, template_id: int | None = None) -> None:
    """Private templates: `report.write`; institution and public ones: `template.manage`.

    Raises:
        Forbidden: `forbidden` (audited as permission_denied).
    """
    if not actor.is_central:
        _deny(actor, action, template_id, "只有中心医院的医生可以维护报告模板")
    if scope == PRIVATE and not actor.has(WRITE):
        _deny(actor, action, template_id, "没有书写报告的权限，不能维护个人模板")
    if scope != PRIVATE and not actor.has(MANAGE):
        _deny(actor, action, template_id, "没有管理公共模板的权限（需要“管理公共模板与共享短语”）")


def index_name(template: ReportTemplate) -> None:
    """Store the name's initials and rebuild its pinyin search keys (engine/templates/search.py)."""
    s = uow.session()
    template.name_pinyin = search.initials(template.name)
    if template.id is not None:
        s.execute(delete(ReportTemplateKey).where(ReportTemplateKey.template_id == template.id))
    s.flush()
    rows = [{"key": k, "template_id": template.id} for k in sorted(search.keys(template.name))]
    if rows:
        s.execute(insert(ReportTemplateKey), rows)


def _check_parts(actor: Actor, scope: str, part_ids: list[int], own_id: int | None = None) -> None:
    """A combination's parts: 2..10 distinct live single templates the actor sees; a shared combination (institution
    or public) holds no private template, since its readers could not see it.

    Raises:
        ValidationFailed: `validation_error`.
    """
    if len(part_ids) < 2 or len(part_ids) > MAX_PARTS:
        raise ValidationFailed("validation_error", f"组合模板需要 2 到 {MAX_PARTS} 个单项模板", {"parts": ["数量不符"]})
    if len(set(part_ids)) != len(part_ids) or own_id in part_ids:
        raise ValidationFailed("validation_error", "组合模板中的单项模板不能重复", {"parts": ["有重复"]})
    for pid in part_ids:
        try:
            part: ReportTemplate | None = get_template(actor, pid)
        except NotFound:  # an unknown part, or another user's private one (audited): the client's mistake, a 400
            part = None
        if part is None or part.kind != SINGLE:
            raise ValidationFailed(
                "validation_error", "组合模板只能由您可以使用的单项模板组成", {"parts": [f"模板 {pid} 不可用"]}
            )
        if scope != PRIVATE and part.scope == PRIVATE:
            raise ValidationFailed(
                "validation_error",
                f"共享的组合模板不能包含个人模板“{part.name}”",
                {"parts": [f"模板 {pid} 是个人模板"]},
            )


def set_parts(template: ReportTemplate, part_ids: list[int]) -> None:
    """Replace a combination's ordered parts."""
    s = uow.session()
    s.execute(delete(ReportTemplatePart).where(ReportTemplatePart.combination_id == template.id))
    s.execute(
        insert(ReportTemplatePart),
        [{"combination_id": template.id, "position": i, "part_id": pid} for i, pid in enumerate(part_ids)],
    )


def _check_sections(sections: dict[str, Any]) -> None:
    if not any((sections.get(k) or "").strip() for k in SECTIONS):
        raise ValidationFailed("validation_error", "模板内容不能为空", {"sections": ["请填写影像所见或诊断意见"]})


def create_template(actor: Actor, data: dict[str, Any]) -> ReportTemplate:
    """A new template owned by the actor, in the actor's institution.

    Raises:
        Forbidden: `forbidden`. ValidationFailed: `validation_error` (empty sections, bad parts).
    """
    check_may_write(actor, data["scope"], "create")
    kind = data.get("kind", SINGLE)
    sections = data.get("sections") or {}
    part_ids = list(data.get("parts") or [])
    if kind == SINGLE:
        _check_sections(sections)
    else:
        _check_parts(actor, data["scope"], part_ids)
    now = utcnow()
    t = ReportTemplate(
        name=data["name"].strip(),
        kind=kind,
        scope=data["scope"],
        category=data.get("category", "normal"),
        modality=data["modality"],
        body_part=data["body_part"].strip(),
        owner_id=actor.user_id,
        institution_id=actor.institution_id,
        version=1,
        created_at=now,
        updated_at=now,
        positive=sections.get("positive") if kind == SINGLE else None,
        **{k: (sections.get(k) or "") if kind == SINGLE else "" for k in SECTIONS},
    )
    s = uow.session()
    s.add(t)
    s.flush()
    index_name(t)
    if kind == COMBINATION:
        set_parts(t, part_ids)
    audit.record(actor, "template_created", object_type="report_template", object_id=t.id, details=_audit_details(t))
    return t


def _audit_details(t: ReportTemplate) -> dict[str, Any]:
    return {"name": t.name, "scope": t.scope, "kind": t.kind, "modality": t.modality, "body_part": t.body_part}


def _check_still_usable(template: ReportTemplate, new_scope: str) -> None:
    """A part of a shared combination, or of another user's, cannot become private."""
    if new_scope != PRIVATE or template.scope == PRIVATE:
        return
    users = [c for c in combinations_using(template.id) if c.scope != PRIVATE or c.owner_id != template.owner_id]
    if users:
        names = "、".join(c.name for c in users)
        raise Conflict(
            "template_in_use",
            f"该模板被组合模板使用，不能改为个人模板：{names}",
            {"combinations": [c.name for c in users]},
        )


def update_template(actor: Actor, template_id: int, data: dict[str, Any]) -> ReportTemplate:
    """Change a template the actor may write, if nobody changed it since `data["version"]`.

    Raises:
        NotFound. Forbidden: `forbidden`. ValidationFailed: `validation_error`.
        Conflict: `stale_version` (someone saved it first), `template_in_use`.
    """
    t = get_template(actor, template_id)
    check_may_write(actor, t.scope, "update", t.id)
    check_may_write(actor, data["scope"], "update", t.id)
    if data.get("kind", t.kind) != t.kind:
        raise ValidationFailed("validation_error", "模板类型（单项/组合）不能修改", {"kind": ["不能修改"]})
    sections = data.get("sections") or {}
    part_ids = list(data.get("parts") or [])
    if t.kind == SINGLE:
        _check_sections(sections)
    else:
        _check_parts(actor, data["scope"], part_ids, own_id=t.id)
    _check_still_usable(t, data["scope"])
    values: dict[str, Any] = {
        "name": data["name"].strip(),
        "scope": data["scope"],
        "category": data.get("category", t.category),
        "modality": data["modality"],
        "body_part": data["body_part"].strip(),
        "updated_at": utcnow(),
        "version": ReportTemplate.version + 1,
    }
    if t.kind == SINGLE:
        values.update({k: sections.get(k) or "" for k in SECTIONS})
        values["positive"] = sections.get("positive")
    s = uow.session()
    # A conditional UPDATE on the version the editor read: of two saves, the second changes nothing and is told so.
    done = s.execute(
        update(ReportTemplate)
        .where(
            ReportTemplate.id == t.id, ReportTemplate.version == data["version"], ReportTemplate.deleted_at.is_(None)
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict("stale_version", "模板已被修改，请刷新后再保存", {"version": t.version})
    s.refresh(t)
    index_name(t)
    if t.kind == COMBINATION:
        set_parts(t, part_ids)
    audit.record(actor, "template_updated", object_type="report_template", object_id=t.id, details=_audit_details(t))
    return t


def delete_template(actor: Actor, template_id: int) -> None:
    """Soft-delete a template; refused while a live combination uses it.

    Raises:
        NotFound. Forbidden: `forbidden`. Conflict: `template_in_use` (with the combinations' names).
    """
    t = get_template(actor, template_id)
    check_may_write(actor, t.scope, "delete", t.id)
    users = combinations_using(t.id)
    if users:
        names = [c.name for c in users]
        raise Conflict(
            "template_in_use", f"该模板被组合模板使用，不能删除：{'、'.join(names)}", {"combinations": names}
        )
    t.deleted_at = utcnow()
    t.version += 1
    audit.record(actor, "template_deleted", object_type="report_template", object_id=t.id, details=_audit_details(t))


def _usage(actor: Actor, template_id: int, **values: Any) -> None:
    s = uow.session()
    stmt = upsert_insert(s.get_bind().dialect.name)(ReportTemplateUsage).values(
        user_id=actor.user_id,
        template_id=template_id,
        favorite=values.get("favorite", False),
        use_count=1 if values.get("used") else 0,
        last_used_at=utcnow() if values.get("used") else None,
    )
    if values.get("used"):
        set_: dict[str, Any] = {
            "use_count": ReportTemplateUsage.use_count + 1,
            "last_used_at": stmt.excluded.last_used_at,
        }
    else:
        set_ = {"favorite": stmt.excluded.favorite}
    s.execute(
        stmt.on_conflict_do_update(
            index_elements=[ReportTemplateUsage.user_id, ReportTemplateUsage.template_id], set_=set_
        )
    )


def set_favorite(actor: Actor, template_id: int, favorite: bool) -> None:
    """Star (常用★) or unstar a template the actor sees (an upsert: two tabs starring at once both succeed)."""
    t = get_template(actor, template_id)
    _usage(actor, t.id, favorite=favorite)


def record_use(actor: Actor, template_id: int) -> None:
    """Count one use of a template by the actor (orders 常用)."""
    t = get_template(actor, template_id)
    _usage(actor, t.id, used=True)
