"""Writing notifications inside the causing unit of work, and reading, marking and acknowledging one's own.

Read state is one receipt per addressee, created with the notification (a role is resolved to its holders at
that moment): the unread count is then one range of one index, and who was told, and when they read it, is a
fact kept for the record (a 危急值 must show who received it) rather than recomputed from today's role holders.
A reader still sees a receipt only while they are addressed: a user-addressed notification, or a role they hold
now at their institution, and a kind their session may see (kinds.py) — so losing a role hides its notifications.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, case, exists, func, or_, select, update

from engine import audit, uow, visibility
from engine.accounts.models import Role, User, user_role
from engine.accounts.queries import clamp_page
from engine.actor import Actor
from engine.db import utcnow
from engine.errors import Conflict
from engine.notifications import delivery, kinds
from engine.notifications.models import Notification, NotificationReceipt

TEXT_MAX = 1000


def _holders(institution_id: int, role: str) -> list[int]:
    """Enabled, approved accounts of the institution holding an enabled role with this code."""
    rows = uow.session().execute(
        select(User.id)
        .join(user_role, user_role.c.user_id == User.id)
        .join(Role, Role.id == user_role.c.role_id)
        .where(
            User.institution_id == institution_id,
            User.enabled.is_(True),
            User.review_status == "approved",
            Role.code == role,
            Role.enabled.is_(True),
        )
        .distinct()
        .order_by(User.id)
    )
    return [int(r) for r in rows.scalars()]


def notify(
    kind: str,
    *,
    institution_id: int,
    text: str,
    user_id: int | None = None,
    role: str | None = None,
    link: str | None = None,
    severity: str | None = None,
    dedupe_key: str | None = None,
) -> Notification:
    """Write a notification in the current unit of work (it commits or rolls back with the causing action).

    Addressed to `user_id` or to the holders of `role` at `institution_id`. With `dedupe_key`, a repeat of an open
    notification (same kind, addressee and key; not yet acknowledged) counts one more occurrence and shows as
    unread again instead of adding another one — a flood of refused associations is one alert, not hundreds.

    Raises:
        KeyError: an unregistered kind. ValueError: not exactly one of `user_id` and `role`.
    """
    k = kinds.get(kind)
    if (user_id is None) == (role is None):
        raise ValueError("a notification is addressed to a user or to a role, not both")
    sev = severity or k.severity
    if sev not in kinds.SEVERITIES:
        raise ValueError(f"unknown severity {sev!r}")
    s = uow.session()
    now = utcnow()
    if dedupe_key is not None:
        open_one = s.execute(
            select(Notification)
            .where(
                Notification.kind == kind,
                Notification.dedupe_key == dedupe_key,
                Notification.institution_id == institution_id,
                Notification.recipient_user_id.is_(None)
                if user_id is None
                else Notification.recipient_user_id == user_id,
                Notification.recipient_role.is_(None) if role is None else Notification.recipient_role == role,
                Notification.acknowledged_at.is_(None),
            )
            .order_by(Notification.id.desc())
            .limit(1)
        ).scalar_one_or_none()
        if open_one is not None:
            open_one.occurrences += 1
            open_one.updated_at = now
            open_one.text = text[:TEXT_MAX]
            s.execute(
                update(NotificationReceipt)
                .where(NotificationReceipt.notification_id == open_one.id)
                .values(read_at=None)
            )
            return open_one
    users = [user_id] if user_id is not None else _holders(institution_id, role or "")
    n = Notification(
        kind=kind,
        severity=sev,
        institution_id=institution_id,
        recipient_user_id=user_id,
        recipient_role=role,
        text=text[:TEXT_MAX],
        link=link,
        dedupe_key=dedupe_key,
        occurrences=1,
        created_at=now,
        updated_at=now,
    )
    # No flush here: notify may run inside a flush (triggers.py's before_flush hook); the receipts go in with it.
    n.receipts = [NotificationReceipt(user_id=u) for u in users]
    s.add(n)
    for channel in k.channels:
        if users:
            delivery.queue(s, n, channel, tuple(users))
    return n


# --- reading one's own ----------------------------------------------------------------------------------------------


def _addressed(actor: Actor) -> ColumnElement[bool]:
    """Addressed to the actor now: to them, or to a role they hold at their institution, of a kind they may see."""
    return and_(
        Notification.institution_id == actor.institution_id,
        or_(
            Notification.recipient_user_id == actor.user_id,
            Notification.recipient_role.in_(sorted(actor.roles)),
        ),
        Notification.kind.in_(kinds.visible_codes(actor)),
    )


@visibility.rule(Notification)
def _visible(actor: Actor) -> ColumnElement[bool]:
    mine = exists().where(
        NotificationReceipt.notification_id == Notification.id, NotificationReceipt.user_id == actor.user_id
    )
    return and_(_addressed(actor), mine)


def _pending_critical() -> ColumnElement[bool]:
    return and_(Notification.severity == "critical", Notification.acknowledged_at.is_(None))


@dataclass
class Summary:
    unread: int
    critical_pending: int


def summary(actor: Actor) -> Summary:
    """The bell's poll: unread, and unacknowledged critical, in one query over the user's unread receipts.

    An unacknowledged critical notification is always unread (marking it read is refused), so both counts come
    from the `(user_id, read_at)` index range of the unread receipts.
    """
    row = (
        uow.session()
        .execute(
            select(
                func.count(),
                func.coalesce(func.sum(case((_pending_critical(), 1), else_=0)), 0),
            )
            .select_from(NotificationReceipt)
            .join(Notification, Notification.id == NotificationReceipt.notification_id)
            .where(
                NotificationReceipt.user_id == actor.user_id, NotificationReceipt.read_at.is_(None), _addressed(actor)
            )
        )
        .one()
    )
    return Summary(int(row[0]), int(row[1]))


@dataclass
class Item:
    notification: Notification
    read_at: Any
    acknowledged_by_name: str | None


@dataclass
class Page:
    items: list[Item]
    total: int
    page: int
    page_size: int


def list_mine(actor: Actor, page: int, page_size: int, *, unread: bool = False, critical_pending: bool = False) -> Page:
    """The actor's notifications, newest first; `unread` / `critical_pending` narrow the list."""
    page, page_size = clamp_page(page, page_size)
    acker = User.__table__.alias("acker")
    where = [NotificationReceipt.user_id == actor.user_id, _addressed(actor)]
    if unread:
        where.append(NotificationReceipt.read_at.is_(None))
    if critical_pending:
        where.append(_pending_critical())
    base = (
        select(Notification, NotificationReceipt.read_at, acker.c.full_name)
        .join(NotificationReceipt, NotificationReceipt.notification_id == Notification.id)
        .outerjoin(acker, acker.c.id == Notification.acknowledged_by_id)
        .where(*where)
    )
    s = uow.session()
    total = s.execute(
        select(func.count())
        .select_from(NotificationReceipt)
        .join(Notification, Notification.id == NotificationReceipt.notification_id)
        .where(*where)
    ).scalar_one()
    rows = s.execute(
        base.order_by(NotificationReceipt.notification_id.desc()).offset((page - 1) * page_size).limit(page_size)
    ).all()
    return Page([Item(r[0], r[1], r[2]) for r in rows], int(total), page, page_size)


def get_mine(actor: Actor, notification_id: int) -> Item:
    """One of the actor's notifications.

    Raises:
        NotFound: not addressed to the actor (a security alert is written when it exists, AC-02).
    """
    n = visibility.get_visible(actor, Notification, notification_id, object_type="notification")
    return _item(actor, n)


def _item(actor: Actor, n: Notification) -> Item:
    s = uow.session()
    read_at = s.execute(
        select(NotificationReceipt.read_at).where(
            NotificationReceipt.notification_id == n.id, NotificationReceipt.user_id == actor.user_id
        )
    ).scalar_one()
    name = s.execute(select(User.full_name).where(User.id == n.acknowledged_by_id)).scalar_one_or_none()
    return Item(n, read_at, name)


def mark_read(actor: Actor, notification_id: int) -> Item:
    """Mark one notification read for the actor (audited).

    Raises:
        NotFound: not the actor's. Conflict: ``ack_required`` — a critical one is closed by acknowledging it.
    """
    n = visibility.get_visible(actor, Notification, notification_id, object_type="notification")
    if n.severity == "critical" and n.acknowledged_at is None:
        raise Conflict("ack_required", "紧急通知须点击“确认已知晓”后才算已读")
    _set_read(actor, [n.id])
    audit.record(actor, "notification_read", object_type="notification", object_id=n.id)
    return _item(actor, n)


def mark_all_read(actor: Actor) -> int:
    """Mark every unread notification of the actor read, except unacknowledged critical ones; returns how many."""
    s = uow.session()
    ids = list(
        s.execute(
            select(NotificationReceipt.notification_id)
            .join(Notification, Notification.id == NotificationReceipt.notification_id)
            .where(
                NotificationReceipt.user_id == actor.user_id,
                NotificationReceipt.read_at.is_(None),
                _addressed(actor),
                ~_pending_critical(),
            )
        ).scalars()
    )
    if ids:
        _set_read(actor, ids)
        audit.record(actor, "notification_read", object_type="notification", details={"all": True, "count": len(ids)})
    return len(ids)


def _set_read(actor: Actor, ids: list[int]) -> None:
    uow.session().execute(
        update(NotificationReceipt)
        .where(
            NotificationReceipt.user_id == actor.user_id,
            NotificationReceipt.notification_id.in_(ids),
            NotificationReceipt.read_at.is_(None),
        )
        .values(read_at=utcnow())
    )


def acknowledge(actor: Actor, notification_id: int) -> Item:
    """确认已知晓: the first acknowledgement of a critical notification closes it, recording who and when (audited).

    A later acknowledgement (another holder of the role, a second tab) finds it closed and only marks it read.

    Raises:
        NotFound: not the actor's. Conflict: ``not_critical``.
    """
    n = visibility.get_visible(actor, Notification, notification_id, object_type="notification")
    if n.severity != "critical":
        raise Conflict("not_critical", "只有紧急通知需要确认")
    s = uow.session()
    now = utcnow()
    won = s.execute(
        update(Notification)
        .where(Notification.id == n.id, Notification.acknowledged_at.is_(None))
        .values(acknowledged_at=now, acknowledged_by_id=actor.user_id)
        .execution_options(synchronize_session=False)
    )
    s.refresh(n)
    _set_read(actor, [n.id])
    if int(won.rowcount or 0) == 1:  # type: ignore[attr-defined]  # CursorResult of an UPDATE has rowcount
        audit.record(
            actor,
            "notification_acknowledged",
            object_type="notification",
            object_id=n.id,
            details={"kind": n.kind, "acknowledged_at": now.isoformat()},
        )
    return _item(actor, n)
