"""The worker's side of the ingest outbox (issue 12, issue 14 "events out of ingest"; REQ: IMG-06, DSEC-10).

`process_pending` takes the unprocessed `ingest_event` rows in id order and, in one transaction per batch: chains
each row's audit event (engine/audit.py), matches each new study to its exam (engine/imaging/matching.py, in a
savepoint: a matching problem leaves the study unmatched, never the event unprocessed) and marks the row
processed, and delivers ``images_received`` to the processes waiting for images of the study's exam or case
(engine/imaging/arrivals.py; in a savepoint too). The mark is a conditional UPDATE in that same transaction, so an
event takes effect exactly once: a worker that dies mid-batch leaves its rows for the next run, and two workers
(`telerad run`'s worker thread and a separate `telerad worker`, or several) never both apply one — on PostgreSQL
the batch is taken with FOR UPDATE SKIP LOCKED, on SQLite write transactions are serialised.

After each batch's commit, `drain` builds the WADO-RS metadata templates its studies' new instances lack (issue 16,
engine/dicomweb/prebuild.py): work deferred after the C-STORE ack, kept out of the receivers.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError

from engine import audit, uow
from engine.actor import Actor
from engine.db import utcnow
from engine.dicomweb import prebuild
from engine.imaging import arrivals, matching
from engine.imaging.exam_models import IngestEvent
from engine.imaging.ingest import InstanceMeta
from engine.imaging.outbox import STUDY_STORED
from engine.imaging.source import Source

log = logging.getLogger("telerad.worker")

BATCH = 200


def process_pending(limit: int = BATCH, studies: set[int] | None = None) -> int:
    """Apply up to `limit` pending ingest events in the current unit of work; returns how many were applied.
    `studies` collects the ids of the studies whose rows were applied (their metadata is built after the commit)."""
    s = uow.session()
    query = select(IngestEvent).where(IngestEvent.processed_at.is_(None)).order_by(IngestEvent.id).limit(limit)
    if s.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    applied = 0
    for event in s.execute(query).scalars().all():
        claimed = s.execute(
            update(IngestEvent)
            .where(IngestEvent.id == event.id, IngestEvent.processed_at.is_(None))
            .values(processed_at=utcnow())
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]  # CursorResult: another worker applied it
            continue
        if event.kind == STUDY_STORED:
            _study_stored(event)
            if studies is not None:
                studies.add(event.study_id)
        else:
            log.error("ingest event %s has an unknown kind %r; marked processed", event.id, event.kind)
        applied += 1
    return applied


def drain(max_batches: int = 1000) -> int:
    """Apply every pending event, one unit of work per batch, then build the metadata templates of the batch's
    studies (and of those still receiving, engine/dicomweb/prebuild.py) in units of work of their own — the
    worker's job; tests call it too. Returns how many events were applied."""
    total = 0
    built: set[int] = set()
    for _ in range(max_batches):
        studies: set[int] = set()
        with uow.unit_of_work():
            n = process_pending(studies=studies)
        prebuild.build_studies(studies)
        built |= studies
        total += n
        if n < BATCH:
            break
    prebuild.build_watched(skip=built)
    return total


def _study_stored(event: IngestEvent) -> None:
    payload: dict[str, Any] = event.payload
    row = payload.get("audit")
    if row is not None:
        details = dict(row.get("details") or {})
        details["received_at"] = payload.get("received_at")
        audit.append(uow.session(), {**row, "ts": utcnow(), "details": details})
    if event.new_study:
        src = payload["source"]
        actor = Actor(
            user_id=src.get("user_id"),
            username=src.get("username"),
            institution_id=src.get("institution_id"),
            institution_code=src.get("institution_code"),
            ip=src.get("ip"),
        )
        source = Source(src["kind"], event.institution_id, actor, src["via"])
        study = payload["study"]
        meta = InstanceMeta(
            sop_class_uid="",
            sop_instance_uid="",
            study_instance_uid=study["study_instance_uid"],
            series_instance_uid="",
            transfer_syntax_uid="",
            patient_id=study.get("patient_id", ""),
            accession_number=study.get("accession_number", ""),
            modality=study.get("modality", ""),
            study_date=study.get("study_date", ""),
        )
        matching.match_new_study(source, event.study_id, meta)
    _images_received(event.study_id)


def _images_received(study_id: int) -> None:
    """The study's images arrived: its exam's (and cases') waiting processes take ``images_received`` — also for a
    later receipt into a study matched before (补传). A lock conflict rolls the batch back (its events stay pending
    and are applied again); any other failure is logged and leaves the event processed, as a matching failure does,
    so one broken process never blocks the outbox."""
    try:
        with uow.session().begin_nested():
            arrivals.deliver_for_study(study_id)
    except OperationalError:
        raise
    except Exception:
        log.exception("delivering images_received for study %s failed", study_id)
