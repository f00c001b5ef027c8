"""Reading templates: who sees which, the 设备类型 → 检查部位 tree, the paged list with pinyin search, and the
sections of a combination composed from its parts (issue 17; REQ: RPT-03, RPT-07, DICT-02; UX.md R5).

Visibility (ARCHITECTURE.md "Roles and who sees what"): templates are the central doctors' tool. A central user sees
their own private templates, the institution templates of their institution and every public one; a member
hospital's user sees none. An id outside that answers 404 and writes a security alert (engine/visibility.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, Subquery, and_, exists, false, func, or_, select
from sqlalchemy.orm import aliased, load_only

from engine import audit, uow, visibility
from engine.accounts.models import Institution, User
from engine.accounts.queries import clamp_page
from engine.actor import Actor
from engine.errors import NotFound
from engine.templates import search
from engine.templates.models import (
    COMBINATION,
    INSTITUTION,
    MODALITIES,
    PRIVATE,
    PUBLIC,
    SINGLE,
    ReportTemplate,
    ReportTemplateKey,
    ReportTemplatePart,
    ReportTemplateUsage,
)

T = ReportTemplate
U = ReportTemplateUsage
TABS = ("all", "favorite", "private", "shared")
# The tree's labels (the UI never shows a raw code): the usual Chinese names where doctors use them.
MODALITY_LABELS = {
    "CT": "CT",
    "MR": "MR",
    "DR": "DR",
    "CR": "CR",
    "DX": "DX",
    "US": "超声",
    "MG": "乳腺钼靶",
    "RF": "透视造影",
    "XA": "血管造影",
    "NM": "核医学",
    "PT": "PET",
    "OT": "其他",
}

# A numbered impression line: "1. ", "2、", "3）" (not "1.5cm…", whose dot is a decimal point).
_NUMBER = re.compile(r"^\s*\d{1,2}(?:[、．)）]|\.(?!\d))\s*")


def _visible(actor: Actor) -> ColumnElement[bool]:
    if actor.user_id is None or not actor.is_central:
        return false()
    return and_(
        T.deleted_at.is_(None),
        or_(
            and_(T.scope == PRIVATE, T.owner_id == actor.user_id),
            and_(T.scope == INSTITUTION, T.institution_id == actor.institution_id),
            T.scope == PUBLIC,
        ),
    )


visibility.rule(ReportTemplate)(_visible)


def get_template(actor: Actor, template_id: int) -> ReportTemplate:
    """One live template the actor sees.

    Raises:
        NotFound: no such live template, or one outside the actor's visibility (then audited as a security alert).
    """
    s = uow.session()
    row = s.execute(select(T).where(T.id == template_id, visibility.clause(actor, T))).scalar_one_or_none()
    if row is not None:
        return row
    if s.execute(select(T.id).where(T.id == template_id, T.deleted_at.is_(None))).first() is not None:
        audit.security_alert(actor, "report_template", template_id, "访问可见范围之外的对象")
    raise NotFound()


def matched_ids(q: str) -> Subquery | None:
    """The ids of templates whose name `q` searches (None: nothing to search by, so nothing matches).

    `q` starts a word of the name's pinyin (initials or full), one of its Latin words, or a run of its text from any
    Han character on: one range over the key index (engine/templates/search.py). Punctuation is ignored; a term of
    punctuation only ('%', '_') finds nothing (WEB-03)."""
    rng = search.key_range(q)
    if rng is None:
        return None
    low, high = rng
    key = ReportTemplateKey.key
    return select(ReportTemplateKey.template_id).where(key >= low, key < high).distinct().subquery("matched")


def _favorite_of(actor: Actor) -> ColumnElement[bool]:
    star = aliased(U)  # the list joins U for the star and the order; this test stands on its own
    return exists().where(star.template_id == T.id, star.user_id == actor.user_id, star.favorite.is_(True))


def scoped(
    stmt: Select[Any],
    actor: Actor,
    *,
    tab: str = "all",
    q: str | None = None,
    modality: str | None = None,
    body_part: str | None = None,
    kind: str | None = None,
) -> Select[Any]:
    """`stmt` over report_template limited to a tab and its filters, always within the actor's visibility.

    A search starts from the matched ids and joins the templates by primary key: the planner would otherwise walk
    every visible template (the visibility OR looks selective to it) and test each against the key range."""
    where = [visibility.clause(actor, T)]
    if tab == "favorite":
        where.append(_favorite_of(actor))
    elif tab == "private":
        where.append(and_(T.scope == PRIVATE, T.owner_id == actor.user_id))
    elif tab == "shared":
        where.append(T.scope.in_((INSTITUTION, PUBLIC)))
    if modality:
        where.append(T.modality == modality)
    if body_part:
        where.append(T.body_part == body_part)
    if kind:
        where.append(T.kind == kind)
    if q and q.strip():
        matched = matched_ids(q)
        if matched is None:
            where.append(false())
        else:
            stmt = stmt.select_from(matched).join(T, T.id == matched.c.template_id)
    return stmt.where(*where)


def tree(actor: Actor, *, tab: str = "all", q: str | None = None, modality: str | None = None) -> list[dict[str, Any]]:
    """设备类型 → 检查部位 with the number of templates under each, for the tab, search and modality given."""
    stmt = scoped(select(T.modality, T.body_part, func.count()), actor, tab=tab, q=q, modality=modality)
    stmt = stmt.group_by(T.modality, T.body_part)
    by_modality: dict[str, list[tuple[str, int]]] = {}
    for mod, part, n in uow.session().execute(stmt):
        by_modality.setdefault(mod, []).append((part, int(n)))
    order = {m: i for i, m in enumerate(MODALITIES)}
    out = []
    for mod in sorted(by_modality, key=lambda m: (order.get(m, len(order)), m)):
        parts = sorted(by_modality[mod], key=lambda p: (-p[1], p[0]))
        out.append(
            {
                "modality": mod,
                "label": MODALITY_LABELS.get(mod, mod),
                "count": sum(n for _, n in parts),
                "parts": [{"body_part": p, "count": n} for p, n in parts],
            }
        )
    return out


# What a summary shows of a template itself (the list never loads the sections).
SUMMARY_COLUMNS = (
    T.id,
    T.name,
    T.name_pinyin,
    T.kind,
    T.scope,
    T.category,
    T.modality,
    T.body_part,
    T.owner_id,
    T.institution_id,
    T.updated_at,
    T.version,
)


@dataclass
class Listed:
    """A template with what its summary shows besides its own columns: the caller's star, owner and institution."""

    template: ReportTemplate
    favorite: bool
    owner: dict[str, Any] | None
    institution: dict[str, Any] | None


def _ref_columns() -> tuple[Any, ...]:
    return (U.favorite, User.full_name, Institution.code, Institution.name)


def _joined_refs(stmt: Select[Any], actor: Actor) -> Select[Any]:
    return (
        stmt.outerjoin(U, and_(U.template_id == T.id, U.user_id == actor.user_id))
        .outerjoin(User, User.id == T.owner_id)
        .outerjoin(Institution, Institution.id == T.institution_id)
    )


def _listed(t: ReportTemplate, favorite: Any, owner_name: Any, inst_code: Any, inst_name: Any) -> Listed:
    owner = {"id": t.owner_id, "full_name": owner_name} if t.owner_id is not None else None
    inst = {"id": t.institution_id, "code": inst_code, "name": inst_name} if t.institution_id is not None else None
    return Listed(t, bool(favorite), owner, inst)


def listed(actor: Actor, templates: list[ReportTemplate]) -> list[Listed]:
    """Summaries of loaded templates (one query for all their stars, owners and institutions)."""
    if not templates:
        return []
    stmt = _joined_refs(select(T.id, *_ref_columns()).select_from(T), actor).where(T.id.in_([t.id for t in templates]))
    refs = {row[0]: row[1:] for row in uow.session().execute(stmt)}
    return [_listed(t, *refs[t.id]) for t in templates]


@dataclass
class TemplatePage:
    items: list[Listed]
    total: int
    page: int
    page_size: int


def list_templates(
    actor: Actor,
    *,
    tab: str = "all",
    q: str | None = None,
    modality: str | None = None,
    body_part: str | None = None,
    kind: str | None = None,
    page: int | None = 1,
    page_size: int | None = 20,
) -> TemplatePage:
    """A page of the templates the actor sees. 常用★ is ordered by the actor's use count, the rest by part and name."""
    page, page_size = clamp_page(page, page_size)
    filters: dict[str, Any] = {"tab": tab, "q": q, "modality": modality, "body_part": body_part, "kind": kind}
    s = uow.session()
    # One statement: the page with the total as a window count. Owner and institution come as plain columns
    # (loading them as objects would pull each user's roles and departments), and the sections are not loaded.
    cols = (*_ref_columns(), func.count().over().label("total"))
    stmt = _joined_refs(scoped(select(T, *cols).options(load_only(*SUMMARY_COLUMNS)), actor, **filters), actor)
    if tab == "favorite":
        stmt = stmt.order_by(U.use_count.desc(), T.name_pinyin, T.id)
    else:
        # 'normal' sorts after 'abnormal': descending puts 正常 first within a part.
        stmt = stmt.order_by(T.modality, T.body_part, T.category.desc(), T.name_pinyin, T.id)
    rows = s.execute(stmt.limit(page_size).offset((page - 1) * page_size)).all()
    if rows:
        total = int(rows[0][-1])
    else:  # past the last page (or nothing at all): the window has no row to carry the total
        total = int(s.execute(scoped(select(func.count()).select_from(T), actor, **filters)).scalar_one())
    return TemplatePage([_listed(*row[:-1]) for row in rows], total, page, page_size)


def parts_of(combination: ReportTemplate) -> list[ReportTemplate]:
    """The ordered single templates of a combination (whoever may see them: the combination shares their text)."""
    if combination.kind != COMBINATION:
        return []
    stmt = (
        select(T)
        .join(ReportTemplatePart, ReportTemplatePart.part_id == T.id)
        .where(ReportTemplatePart.combination_id == combination.id)
        .order_by(ReportTemplatePart.position)
    )
    return list(uow.session().execute(stmt).scalars())


def combinations_using(template_id: int) -> list[ReportTemplate]:
    """The live combinations that have `template_id` as a part."""
    stmt = (
        select(T)
        .join(ReportTemplatePart, ReportTemplatePart.combination_id == T.id)
        .where(ReportTemplatePart.part_id == template_id, T.deleted_at.is_(None))
        .order_by(T.id)
    )
    return list(uow.session().execute(stmt).scalars())


def impression_lines(text: str) -> list[str]:
    """The non-empty lines of an impression with their numbers taken off."""
    return [_NUMBER.sub("", line).strip() for line in (text or "").splitlines() if line.strip()]


def number_lines(lines: list[str]) -> str:
    """诊断意见 numbered 1. 2. … when there is more than one line; a single conclusion stays as it is."""
    if len(lines) <= 1:
        return "\n".join(lines)
    return "\n".join(f"{i}. {line}" for i, line in enumerate(lines, 1))


def _join_distinct(texts: list[str]) -> str:
    seen: list[str] = []
    for t in texts:
        t = (t or "").strip()
        if t and t not in seen:
            seen.append(t)
    return "\n".join(seen)


def sections_of(template: ReportTemplate, parts: list[ReportTemplate] | None = None) -> dict[str, Any]:
    """A template's sections; a combination's are its parts' joined in order (RPT-03): findings line after line,
    impression lines numbered across the parts, 阳性 when any part is, 阴性 when all are."""
    if template.kind == SINGLE:
        return {
            "exam_method": template.exam_method,
            "findings": template.findings,
            "impression": template.impression,
            "recommendation": template.recommendation,
            "positive": template.positive,
        }
    parts = parts_of(template) if parts is None else parts
    marks = [p.positive for p in parts]
    positive = "阳性" if "阳性" in marks else ("阴性" if marks and all(m == "阴性" for m in marks) else None)
    return {
        "exam_method": _join_distinct([p.exam_method for p in parts]),
        "findings": "\n".join(p.findings.strip() for p in parts if p.findings.strip()),
        "impression": number_lines([line for p in parts for line in impression_lines(p.impression)]),
        "recommendation": _join_distinct([p.recommendation for p in parts]),
        "positive": positive,
    }
