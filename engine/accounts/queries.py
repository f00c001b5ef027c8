"""Read side of accounts: lists with search and paging, effective permissions (REQ: ACCT-02, ACCT-05)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute, selectinload

from engine import pinyin, uow
from engine.accounts.models import Institution, LoginThrottle, Role, User, user_role
from engine.accounts.passwords import normalise_username
from engine.accounts.permissions import BASELINE, CATALOGUE, CENTRAL, DROPPED_AT_MEMBER
from engine.actor import Actor
from engine.audit import EVENT_TYPES, AuditEvent
from engine.db import utcnow
from engine.visibility import scoped

MAX_PAGE_SIZE = 100


def like_pattern(text: str) -> str:
    """A LIKE pattern that matches `text` literally ('%' and '_' escaped, WEB-03)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def user_name_matches(q: str) -> ColumnElement[bool]:
    """姓名 anywhere in the name, or 拼音首字母 from the start of the name's initials (issue 14)."""
    by_name = User.full_name.like(like_pattern(q.strip()), escape="\\")
    key = pinyin.search_key(q)
    return or_(by_name, pinyin.matches_prefix(User.name_pinyin, key)) if key else by_name


@dataclass
class Page:
    items: list[Any]
    total: int
    page: int
    page_size: int


def clamp_page(page: int | None, page_size: int | None) -> tuple[int, int]:
    """Page numbers start at 1; page_size is capped at 100 (REQ: WEB-06)."""
    return max(1, page or 1), min(MAX_PAGE_SIZE, max(1, page_size or 20))


def effective_permissions(user: User, role_permissions: frozenset[str] | None = None) -> frozenset[str]:
    """The permissions of a session: its enabled roles', less the clinical and process permissions only central
    hospital staff may hold when the account is a member hospital's (issue 11; REQ: AC-02/03).
    `role_permissions`: the enabled roles' permissions when read already (engine/accounts/auth.py Grants)."""
    if user.review_status != "approved" or not user.enabled:
        return frozenset()
    perms = set(BASELINE)
    if role_permissions is not None:
        perms.update(role_permissions)
    else:
        for role in user.roles:
            if role.enabled:
                perms.update(role.permission_codes)
    if user.institution is None or user.institution.kind != CENTRAL:
        perms -= DROPPED_AT_MEMBER
    return frozenset(perms)


# Alliance-wide functions kept by the central hospital (api/imaging/routing_views.py answers central_only to a
# member hospital): a member's administrator holding the same role does not get these menus.
CENTRAL_ONLY_MENUS = frozenset(p.code for p in CATALOGUE if p.kind == "menu" and p.scope == CENTRAL)


def menus_of(permissions: frozenset[str], *, central: bool = True) -> list[str]:
    return [
        p.code
        for p in CATALOGUE
        if p.kind == "menu" and p.code in permissions and (central or p.code not in CENTRAL_ONLY_MENUS)
    ]


def list_users(
    actor: Actor,
    *,
    q: str | None = None,
    institution_id: int | None = None,
    enabled: bool | None = None,
    review_status: str | None = None,
    page: int | None = 1,
    page_size: int | None = 20,
    order: str = "id",
) -> Page:
    """Users the actor may see, newest first; `q` searches name and username (literal match)."""
    page, page_size = clamp_page(page, page_size)
    stmt = scoped(actor, User)
    if q:
        # 姓名 matches anywhere (names are short); 用户名 matches by prefix on the normalised, indexed column,
        # so the search scans one short column instead of two (bench/bench_api.py, SQLite p95).
        term = q.strip()
        prefix = normalise_username(term)
        col: InstrumentedAttribute[str] | ColumnElement[str] = User.username_norm
        if uow.session().get_bind().dialect.name == "postgresql":
            col = col.collate("C")  # code-point order, so the range below is exactly "starts with"
        stmt = stmt.where(user_name_matches(term) | ((col >= prefix) & (col < prefix + "\U0010ffff")))
    if institution_id is not None:
        stmt = stmt.where(User.institution_id == institution_id)
    if enabled is not None:
        stmt = stmt.where(User.enabled.is_(enabled))
    if review_status is not None:
        stmt = stmt.where(User.review_status == review_status)
    s = uow.session()
    sort_col = User.submitted_at if order == "submitted" else User.id
    options = [selectinload(User.roles)]
    if order == "submitted":  # the review list shows each reviewer's name: one query, not one per reviewer
        options.append(selectinload(User.reviewed_by).load_only(User.id, User.username).lazyload("*"))
    if q:
        # LIKE '%q%' cannot use an index: scan once for the matching keys (the total is their number) and load
        # one page by primary key, rather than a count scan plus a page scan (bench/bench_api.py).
        keys = list(s.execute(stmt.with_only_columns(User.id).order_by(sort_col.desc(), User.id.desc())).scalars())
        wanted = keys[(page - 1) * page_size : page * page_size]
        loaded = s.execute(select(User).where(User.id.in_(wanted)).options(*options)).unique().scalars()
        found = {u.id: u for u in loaded}
        return Page([found[i] for i in wanted], len(keys), page, page_size)
    total = s.execute(stmt.with_only_columns(func.count(User.id)).order_by(None)).scalar_one()
    rows = (
        s.execute(
            stmt.options(*options)
            .order_by(sort_col.desc(), User.id.desc())
            .offset((page - 1) * page_size)
            .limit(page_size)
        )
        .unique()
        .scalars()
        .all()
    )
    return Page(list(rows), total, page, page_size)


def list_roles(actor: Actor, *, q: str | None = None, enabled: bool | None = None) -> list[tuple[Role, int]]:
    """Roles visible to the actor with their holder counts (REQ: ACCT-02 search by name and status)."""
    stmt = scoped(actor, Role)
    if q:
        stmt = stmt.where(Role.name.like(like_pattern(q.strip()), escape="\\"))
    if enabled is not None:
        stmt = stmt.where(Role.enabled.is_(enabled))
    s = uow.session()
    roles = s.execute(stmt.order_by(Role.builtin.desc(), Role.id)).unique().scalars().all()
    counts = dict(s.execute(select(user_role.c.role_id, func.count()).group_by(user_role.c.role_id)).tuples().all())
    return [(r, int(counts.get(r.id, 0))) for r in roles]


def list_institutions(actor: Actor | None = None, *, q: str | None = None) -> list[Institution]:
    """Enabled institutions (public) or those the actor may see; `q` matches the name or its 拼音首字母."""
    s = uow.session()
    stmt = select(Institution).where(Institution.enabled.is_(True)) if actor is None else scoped(actor, Institution)
    if q and q.strip():
        by_name = Institution.name.like(like_pattern(q.strip()), escape="\\")
        key = pinyin.search_key(q)
        stmt = stmt.where(or_(by_name, pinyin.matches_prefix(Institution.name_pinyin, key)) if key else by_name)
    return list(s.execute(stmt.order_by(Institution.kind, Institution.code)).unique().scalars())


def locked_usernames(norms: list[str]) -> set[str]:
    """Which of these normalised usernames are locked out right now (AUTH-04)."""
    if not norms:
        return set()
    rows = (
        uow.session()
        .execute(
            select(LoginThrottle.username_norm).where(
                LoginThrottle.username_norm.in_(norms), LoginThrottle.locked_until > utcnow()
            )
        )
        .scalars()
    )
    return set(rows)


REVIEW_EVENTS = ("account_registered", "account_resubmitted", "account_created", "account_approved", "account_rejected")


def review_history(user_id: int) -> list[dict[str, Any]]:
    """The application's review trail, from the audit log (REQ: ACCT-03)."""
    rows = (
        uow.session()
        .execute(
            select(AuditEvent)
            .where(
                AuditEvent.object_type == "user",
                AuditEvent.object_id == str(user_id),
                AuditEvent.event_type.in_(REVIEW_EVENTS),
                AuditEvent.outcome == "success",
            )
            .order_by(AuditEvent.id)
        )
        .scalars()
    )
    return [{"ts": r.ts, "action": EVENT_TYPES[r.event_type], "actor": r.username, "reason": r.reason} for r in rows]
