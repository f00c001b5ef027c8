"""DICOMweb bookkeeping tables (issue 15)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base, UTCDateTime, utcnow


class StudyAccess(Base):
    """One row per (principal, study, day) a study was accessed over DICOMweb: the audit-once key (DSEC-10).

    `principal` is "session:<id>" for a browser session, "client:<id>" for an OAuth client, "user:<id>" otherwise.
    The primary key makes the insert the test: INSERT … ON CONFLICT DO NOTHING, and the chained audit event is
    written only by the request whose insert took (engine/dicomweb/access_audit.py)."""

    __tablename__ = "dicomweb_study_access"

    principal: Mapped[str] = mapped_column(String(80), primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("dicom_study.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
