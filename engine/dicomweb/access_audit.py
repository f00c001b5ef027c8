"""DSEC-10 "accessed" (DICOM audit 110103) for DICOMweb: once per (session or client, study, day), not per request.

A viewer loading a 1,000-frame study sends over a thousand requests; writing a chained audit event for each would
serialise them all through the audit chain's lock (engine/audit.py). Instead each request inserts the key row
(principal, study, day) with INSERT … ON CONFLICT DO NOTHING — concurrent requests of one key do not wait on the
chain, only on that row's unique index — and only the request whose insert took writes the audit event, in the same
transaction (if it rolls back, so does the key row, and the next request audits). QIDO (study-scoped) and WADO call
`accessed`.

A search itself is audited as DSEC-10's "query" (DICOM 110112) by `queried`: one event per request, as C-FIND is
(engine/imaging/queries.py `find`: the same event type and details), never per matching row.

A key whose insert found the row there is remembered by the process (`_Seen`, bounded): that row was committed — an
insert that meets an uncommitted one waits for its outcome — so the day's event is written, and the key's later
requests skip the insert (a viewer's 1,000 frame requests: one or two inserts, not a thousand).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING

from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, SessionTransaction

from engine import audit, uow
from engine.actor import Actor
from engine.db import utcnow
from engine.dicomweb.models import StudyAccess
from engine.imaging.models import Study

if TYPE_CHECKING:
    from engine.dicomweb.decisions import StudyKey

CHINA = timezone(timedelta(hours=8))  # the platform's day (Asia/Shanghai, no DST)


def principal_of(actor: Actor) -> str:
    """The audit-once key's principal: the OAuth client, else the browser session, else the user."""
    client = getattr(actor, "client_id", None)
    if client:
        return f"client:{client}"[:80]
    if actor.session_id:
        return f"session:{actor.session_id}"[:80]
    return f"user:{actor.user_id}"


def today() -> date:
    return datetime.now(CHINA).date()


class _Seen:
    """Keys known to be committed (principal, study id and UID, day), the most recent `size` of them."""

    def __init__(self, size: int = 100_000) -> None:
        self.size = size
        self._keys: OrderedDict[tuple[str, int, str, date], None] = OrderedDict()
        self._lock = threading.Lock()

    def __contains__(self, key: tuple[str, int, str, date]) -> bool:
        with self._lock:
            if key not in self._keys:
                return False
            self._keys.move_to_end(key)
            return True

    def add(self, key: tuple[str, int, str, date]) -> None:
        with self._lock:
            self._keys[key] = None
            while len(self._keys) > self.size:
                self._keys.popitem(last=False)


_seen = _Seen()
_MINE = "telerad_dicomweb_accessed"  # Session.info: the keys the session's current transaction inserted


def _mine(s: Session) -> set[tuple[str, int, str, date]]:
    return s.info.setdefault(_MINE, set())  # type: ignore[no-any-return]


@event.listens_for(Session, "after_transaction_end")
def _forget_mine(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the outermost transaction ended: committed (seen from now on) or rolled back
        session.info.pop(_MINE, None)


def accessed(actor: Actor, study: Study | StudyKey, *, via: str) -> bool:
    """Record that `actor` accessed `study` over DICOMweb (`via`: "qido", "wado" …); True when this call wrote the
    day's audit event, False when the key existed already. `study`: the row, or a frame request's cached
    StudyKey (engine/dicomweb/decisions.py)."""
    principal, day = principal_of(actor), today()
    key = (principal, study.id, study.study_instance_uid, day)  # the UID too: SQLite may reuse a deleted row's id
    s = uow.session()
    if key in _seen or key in _mine(s):
        return False
    values = {"principal": principal, "study_id": study.id, "day": day, "created_at": utcnow()}
    dialect = s.get_bind().dialect.name
    ins = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(StudyAccess).values(**values)
    # RETURNING, not rowcount: psycopg reports -1 for INSERT … ON CONFLICT DO NOTHING here (issue 15, measured).
    took = s.execute(ins.on_conflict_do_nothing().returning(StudyAccess.study_id)).first() is not None
    if not took:  # committed by an earlier transaction: remembered
        _seen.add(key)
    else:  # this transaction's row: not remembered beyond it (a rollback takes it back)
        _mine(s).add(key)
        audit.record(
            actor,
            "dicomweb_study_accessed",
            object_type="dicom_study",
            object_id=study.id,
            patient_id=study.patient_id[:64] or None,
            details={"study_instance_uid": study.study_instance_uid, "via": via, "dicom_event": "110103"},
        )
    return took


def queried(
    actor: Actor,
    level: str,
    keys: dict[str, str],
    results: int,
    *,
    resource: str,
    institution: str | None = None,
    client_id: str | None = None,
) -> None:
    """Record one QIDO-RS search (DSEC-10 "query", DICOM 110112) in the request's unit of work: who (the user, or
    the OAuth client as ``oauth:<client_id>``, with their institution — the audit row's own columns), the level, the
    matching keys (as C-FIND records them: values that restrict, at most 64 characters each), how many results went
    back, and telerad's `institution=` when given. `client_id`: the OAuth client of a bearer token — also when the
    token acts as the user who authorised a viewer."""
    details: dict[str, object] = {
        "level": level,
        "keys": {k: str(v)[:64] for k, v in keys.items() if str(v).strip() not in ("", "*")},
        "results": results,
        "via": "qido",
        "resource": resource,
        "dicom_event": "110112",
    }
    if institution:
        details["institution"] = institution[:32]
    if client_id or actor.client_id:
        details["client_id"] = client_id or actor.client_id
    audit.record(actor, "dicom_query", object_type="dicom_query", object_id=level, details=details)
