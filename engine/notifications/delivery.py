"""Delivery beyond the app (短信, 电话): a `Deliverer` interface, run after the causing transaction commits.

Only a logging implementation exists for now (issue 14); an SMS gateway or a phone robot implements `Deliverer`
and is installed with `set_deliverer` by the composition root. Nothing is delivered for a transaction that rolls
back: the queued deliveries live in the session and are dropped on rollback (SQLAlchemy session events).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import event, inspect
from sqlalchemy.orm import Session, SessionTransaction

from engine.notifications.models import Notification

log = logging.getLogger("telerad.notifications")

_QUEUE_KEY = "telerad_notification_deliveries"


@dataclass(frozen=True)
class Delivery:
    """One notification to send over one channel to the people it reached (user ids, no PHI in here)."""

    notification_id: int
    kind: str
    severity: str
    channel: str
    user_ids: tuple[int, ...]
    text: str


class Deliverer(Protocol):
    def deliver(self, delivery: Delivery) -> None:
        """Send one delivery; raising is logged and does not affect the committed notification."""


class LoggingDeliverer:
    """Writes what would be sent to the log (the text is not logged: it may name a patient)."""

    def deliver(self, delivery: Delivery) -> None:
        log.info(
            "notification %s (%s, %s) via %s to users %s",
            delivery.notification_id,
            delivery.kind,
            delivery.severity,
            delivery.channel,
            list(delivery.user_ids),
        )


_deliverer: Deliverer = LoggingDeliverer()


def set_deliverer(deliverer: Deliverer) -> Deliverer:
    """Install the deliverer; returns the previous one (tests restore it)."""
    global _deliverer
    previous, _deliverer = _deliverer, deliverer
    return previous


def queue(s: Session, notification: Notification, channel: str, user_ids: tuple[int, ...]) -> None:
    """Deliver `notification` over `channel` after `s` commits; dropped if it rolls back."""
    s.info.setdefault(_QUEUE_KEY, []).append((notification, channel, user_ids))


@event.listens_for(Session, "after_commit")
def _after_commit(s: Session) -> None:
    if s.in_nested_transaction():
        return  # a SAVEPOINT released (audit subscribers run in one); the transaction goes on
    pending: list[tuple[Notification, str, tuple[int, ...]]] = s.info.pop(_QUEUE_KEY, [])
    for n, channel, user_ids in pending:
        # The committed objects are expired; their state's identity and loaded values need no query here.
        state = inspect(n)
        values = state.committed_state | state.dict
        ident = state.identity
        d = Delivery(
            notification_id=int(ident[0]) if ident else 0,
            kind=str(values.get("kind", "")),
            severity=str(values.get("severity", "")),
            channel=channel,
            user_ids=user_ids,
            text=str(values.get("text", "")),
        )
        try:
            _deliverer.deliver(d)
        except Exception:  # a gateway failure must not undo or fail the committed action
            log.exception("delivering notification %s via %s failed", d.notification_id, d.channel)


@event.listens_for(Session, "after_soft_rollback")
def _after_rollback(s: Session, previous_transaction: SessionTransaction) -> None:
    # A SAVEPOINT rolled back (audit.py runs subscribers in one) leaves the transaction and its queue alive.
    if not previous_transaction.nested:
        s.info.pop(_QUEUE_KEY, None)


def pending(s: Session) -> list[tuple[Notification, str, tuple[int, ...]]]:
    """The deliveries queued in `s` (tests)."""
    return list(s.info.get(_QUEUE_KEY, []))
