"""Archive ↔ exam links: MPPS instances (DCM-05) and the queue of received studies with no matching exam (IMG-06)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
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
