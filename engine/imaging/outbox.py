"""Staging ingest events in the index transaction (issue 12, issue 14 "events out of ingest"; REQ: IMG-06, DSEC-10).

What a receipt used to do per new study inside the C-STORE transaction — two hash-chained audit events under the
chain's lock and the exam match's queries — cost a one-instance study about twice Orthanc's whole ingest (issue 12:
small_4 with one instance per study, 0.53 of Orthanc on SQLite, 0.67 on PostgreSQL). Here it becomes one INSERT of
an `ingest_event` row in the same transaction: as durable as the instance rows, and the worker
(engine/imaging/events.py) turns it into the audit event and the match shortly after.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, bindparam, text
from sqlalchemy.orm import Session

from engine import audit, uow
from engine.db import UTCDateTime, utcnow
from engine.imaging.source import Source

STUDY_STORED = "study_stored"
_DEFERRED = "telerad.ingest_outbox_deferred"  # Session.info key: the rows a group-commit batch writes at its end

_INSERT = text(
    "INSERT INTO ingest_event (kind, institution_id, study_id, new_study, payload, created_at) "
    "VALUES (:kind, :institution_id, :study_id, :new_study, :payload, :created_at)"
).bindparams(bindparam("payload", type_=JSON()), bindparam("created_at", type_=UTCDateTime()))


def stage_study(src: Source, study_id: int, study: dict[str, str], *, audited: bool, new_study: bool) -> None:
    """Queue the study's events of this receipt from `src`: its "images received" audit event (`audited`) and, if
    this receipt created the study, its exam match (`new_study`). `study`: the tags matching reads
    (study_instance_uid, accession_number, patient_id, modality, study_date). Called at most once per study and
    flag per receipt (the receipt's caches say which were queued; dicom/groupcommit.py restores them when a batch
    rolls back)."""
    actor = src.actor
    row = None
    if audited:
        row = audit.build_row(
            actor,
            "dicom_instances_stored",
            object_type="dicom_study",
            object_id=study_id,
            patient_id=study["patient_id"][:64] or None,
            details={
                "study_instance_uid": study["study_instance_uid"],
                "calling_aet": src.calling_aet,
                "via": src.via,
                "dicom_event": "110104",
            },
        )
        row.pop("ts")  # stamped when it is chained; the receipt time is `received_at`
    payload: dict[str, Any] = {
        "audit": row,
        "source": {
            "kind": src.kind,
            "via": src.via,
            "user_id": actor.user_id,
            "username": actor.username,
            "institution_id": actor.institution_id,
            "institution_code": actor.institution_code,
            "ip": actor.ip,
        },
        "study": study,
    }
    now = utcnow()
    payload["received_at"] = now.isoformat()
    row_params = {
        "kind": STUDY_STORED,
        "institution_id": src.institution_id,
        "study_id": study_id,
        "new_study": new_study,
        "payload": payload,
        "created_at": now,
    }
    s = uow.session()
    deferred = s.info.get(_DEFERRED)
    if deferred is not None:  # a group-commit batch: written with the batch's others (flush_deferred)
        deferred.append(row_params)
    else:
        s.execute(_INSERT, row_params)


def defer(s: Session) -> None:
    """Queue this transaction's outbox rows until `flush_deferred` (a group-commit batch, ingest_batch.py)."""
    s.info[_DEFERRED] = []


def flush_deferred(s: Session) -> None:
    """Write the queued rows in one executemany, before the commit; rows are queued one by one again afterwards."""
    rows = s.info.pop(_DEFERRED, None)
    if rows:
        s.execute(_INSERT, rows)


def discard_deferred(s: Session) -> None:
    """The batch failed: its transaction rolls back, and so do its queued rows."""
    s.info.pop(_DEFERRED, None)
