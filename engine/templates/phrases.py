"""The phrase library (常用词库, issue 17; UX.md R6): a user's own phrases and those shared by the institution's
doctors, each with an optional Ctrl+1..9 shortcut, found by text or pinyin initials.

A shortcut names one phrase for a user among their own and the shared ones (409 `shortcut_taken`). Shared phrases
need `template.manage`; a user's own need `report.write`. Like templates, phrases are the central doctors' tool.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, false, or_, select
from sqlalchemy.exc import IntegrityError

from engine import audit, pinyin, uow, visibility
from engine.accounts.queries import like_pattern
from engine.actor import Actor
from engine.db import utcnow
from engine.errors import Conflict, Forbidden
from engine.templates import search
from engine.templates.models import ReportPhrase

P = ReportPhrase
PRIVATE = "private"
SHARED = "shared"
SCOPES = (PRIVATE, SHARED)
MANAGE = "template.manage"
WRITE = "report.write"
LIST_MAX = 500


def _visible(actor: Actor) -> ColumnElement[bool]:
    if actor.user_id is None or not actor.is_central:
        return false()
    return or_(
        and_(P.scope == PRIVATE, P.owner_id == actor.user_id),
        and_(P.scope == SHARED, P.institution_id == actor.institution_id),
    )


visibility.rule(ReportPhrase)(_visible)


def list_phrases(actor: Actor, q: str | None = None) -> list[dict[str, Any]]:
    """The actor's phrases and the shared ones, shortcut order first. Where the actor's own phrase has the shortcut
    of a shared one (the shared one came later), the own phrase keeps it and the shared one is listed without."""
    stmt = select(P).where(visibility.clause(actor, P))
    if q and q.strip():
        by_text = P.text.like(like_pattern(q.strip()), escape="\\")
        key = pinyin.search_key(q)
        stmt = stmt.where(or_(by_text, P.pinyin.like(like_pattern(key), escape="\\")) if key else by_text)
    stmt = stmt.order_by(P.shortcut.is_(None), P.shortcut, P.scope, P.id).limit(LIST_MAX)
    rows = list(uow.session().execute(stmt).scalars())
    own = {p.shortcut for p in rows if p.scope == PRIVATE and p.shortcut is not None}
    return [
        {
            "id": p.id,
            "text": p.text,
            "scope": p.scope,
            "shortcut": None if p.scope == SHARED and p.shortcut in own else p.shortcut,
            "pinyin": p.pinyin,
        }
        for p in rows
    ]


def _check_may_write(actor: Actor, scope: str, phrase_id: int | None = None) -> None:
    need = MANAGE if scope == SHARED else WRITE
    if actor.is_central and actor.has(need):
        return
    audit.record(
        actor,
        "permission_denied",
        outcome="failure",
        object_type="report_phrase",
        object_id=phrase_id,
        reason="phrase",
        details={"permission": need},
    )
    message = "没有管理共享短语的权限" if scope == SHARED else "没有书写报告的权限，不能维护个人短语"
    raise Forbidden("forbidden", message, {"permission": need})


def get_phrase(actor: Actor, phrase_id: int) -> ReportPhrase:
    """Raises: NotFound (outside the actor's visibility: audited)."""
    return visibility.get_visible(actor, ReportPhrase, phrase_id, object_type="report_phrase")


def _check_shortcut(actor: Actor, scope: str, shortcut: int | None, own_id: int | None) -> None:
    """A shortcut is free when no phrase of the actor's own and no shared one of the institution holds it.

    Raises:
        Conflict: `shortcut_taken`.
    """
    if shortcut is None:
        return
    mine = and_(P.scope == PRIVATE, P.owner_id == actor.user_id)
    shared = and_(P.scope == SHARED, P.institution_id == actor.institution_id)
    stmt = select(P).where(P.shortcut == shortcut, or_(mine, shared))
    if own_id is not None:
        stmt = stmt.where(P.id != own_id)
    taken = uow.session().execute(stmt.limit(1)).scalar_one_or_none()
    if taken is not None:
        raise Conflict(
            "shortcut_taken",
            f"快捷键 Ctrl+{shortcut} 已用于短语“{taken.text[:20]}”",
            {"shortcut": shortcut, "phrase_id": taken.id},
        )


def _flush_shortcut(*, shortcut: int | None) -> None:
    """Flush the phrase in a savepoint: two requests taking the same shortcut at once both pass `_check_shortcut`,
    and the partial unique index refuses the second; that is the same 409 as the check's, not a 500."""
    s = uow.session()
    try:
        with s.begin_nested():
            s.flush()
    except IntegrityError:
        raise Conflict("shortcut_taken", f"快捷键 Ctrl+{shortcut} 刚被另一条短语占用", {"shortcut": shortcut}) from None


def create_phrase(actor: Actor, data: dict[str, Any]) -> ReportPhrase:
    """Raises: Forbidden `forbidden`; Conflict `shortcut_taken`."""
    scope = data["scope"]
    _check_may_write(actor, scope)
    _check_shortcut(actor, scope, data.get("shortcut"), None)
    now = utcnow()
    assert actor.institution_id is not None  # a central user (checked above)
    p = ReportPhrase(
        scope=scope,
        text=data["text"].strip(),
        pinyin=search.initials(data["text"], 128),
        shortcut=data.get("shortcut"),
        owner_id=actor.user_id if scope == PRIVATE else None,
        institution_id=actor.institution_id,
        created_at=now,
        updated_at=now,
    )
    uow.session().add(p)
    _flush_shortcut(shortcut=p.shortcut)
    audit.record(actor, "phrase_created", object_type="report_phrase", object_id=p.id, details={"scope": scope})
    return p


def update_phrase(actor: Actor, phrase_id: int, data: dict[str, Any]) -> ReportPhrase:
    """Raises: NotFound; Forbidden `forbidden`; Conflict `shortcut_taken`."""
    p = get_phrase(actor, phrase_id)
    _check_may_write(actor, p.scope, p.id)
    scope = data.get("scope", p.scope)
    _check_may_write(actor, scope, p.id)
    shortcut = data["shortcut"] if "shortcut" in data else p.shortcut
    _check_shortcut(actor, scope, shortcut, p.id)
    if "text" in data:
        p.text = data["text"].strip()
        p.pinyin = search.initials(p.text, 128)
    p.scope, p.shortcut, p.updated_at = scope, shortcut, utcnow()
    p.owner_id = (
        actor.user_id if scope == PRIVATE and p.owner_id is None else (p.owner_id if scope == PRIVATE else None)
    )
    _flush_shortcut(shortcut=p.shortcut)
    audit.record(actor, "phrase_updated", object_type="report_phrase", object_id=p.id, details={"scope": scope})
    return p


def delete_phrase(actor: Actor, phrase_id: int) -> None:
    """Raises: NotFound; Forbidden `forbidden`."""
    p = get_phrase(actor, phrase_id)
    _check_may_write(actor, p.scope, p.id)
    audit.record(actor, "phrase_deleted", object_type="report_phrase", object_id=p.id, details={"scope": p.scope})
    uow.session().delete(p)
