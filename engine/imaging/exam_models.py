"""Archive ↔ exam links: MPPS instances (DCM-05) and the queue of received studies with no matching exam (IMG-06)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base, UTCDateTime, utcnow

# PS3.3 C.4.14 Performed Procedure Step Status values.
MPPS_IN_PROGRESS = "IN PROGRESS"
MPPS_COMPLETED = "COMPLETED"
MPPS_DISCONTINUED = "DISCONTINUED"
MPPS_STATUSES = (MPPS_IN_PROGRESS, MPPS_COMPLETED, MPPS_DISCONTINUED)


class MppsInstance(Base):
    """One Modality Performed Procedure Step created by a modality (N-CREATE), referred to by its N-SETs.

    Scoped to the institution of the device that created it, like everything a device sends (REQ: DSEC-03).
    """

    __tablename__ = "dicom_mpps"
    __table_args__ = (UniqueConstraint("institution_id", "sop_instance_uid", name="uq_dicom_mpps_inst_uid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institution.id"))
    sop_instance_uid: Mapped[str] = mapped_column(String(64))
    node_id: Mapped[int | None] = mapped_column(ForeignKey("dicom_node.id"))
    exam_id: Mapped[int | None] = mapped_column(ForeignKey("exam.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))  # MPPS_STATUSES
    accession_number: Mapped[str] = mapped_column(String(64), default="")
    patient_id: Mapped[str] = mapped_column(String(64), default="")
    modality: Mapped[str] = mapped_column(String(16), default="")
    study_instance_uid: Mapped[str] = mapped_column(String(64), default="")
    station_aet: Mapped[str] = mapped_column(String(16), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class UnmatchedStudy(Base):
    """A received study that no exam of its institution matched (REQ: IMG-06); resolved by the matching UI."""

    __tablename__ = "unmatched_study"
    __table_args__ = (Index("ix_unmatched_study_inst_open", "institution_id", "resolved_at", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institution.id"))
    study_id: Mapped[int] = mapped_column(ForeignKey("dicom_study.id"), unique=True)
    reason: Mapped[str] = mapped_column(String(32))  # no_exam | ambiguous
    details: Mapped[str] = mapped_column(String(256), default="")  # Chinese, for the matching UI
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class IngestEvent(Base):
    """The outbox of the receive service (issue 12, issue 14 "events out of ingest"; REQ: IMG-06, DSEC-10).

    One row per study and receipt, written in the index transaction — an INSERT, nothing more: the audit event
    "received images of a study" (its row built at receipt, chained later) and, for a study the receipt created, the
    exam match. The worker (engine/imaging/events.py `process_pending`) does both in its own transaction and sets
    `processed_at` in it, so each event takes effect once, whatever the restarts and concurrent workers.
    """

    __tablename__ = "ingest_event"
    __table_args__ = (Index("ix_ingest_event_pending", "processed_at", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))  # study_stored
    institution_id: Mapped[int] = mapped_column(ForeignKey("institution.id"))
    study_id: Mapped[int] = mapped_column(ForeignKey("dicom_study.id", ondelete="CASCADE"))
    new_study: Mapped[bool] = mapped_column(Boolean, default=False)  # created by this receipt: match it to its exam
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)  # the audit row, the sender, the tags matching reads
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
