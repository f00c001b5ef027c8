"""DICOMweb bookkeeping tables (issue 15)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, LargeBinary, String
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


class InstanceMetadata(Base):
    """One stored file's WADO-RS metadata (its DICOM JSON, BulkDataURIs included) as a template, built once (issue 16;
    engine/dicomweb/metadata.py). Keyed by the file's content key (engine/imaging/storage.py): a file never changes
    under its key, so a row is right for as long as it exists — an instance re-sent with other content, or moved
    to a transcoded copy (engine/imaging/targets.py relocate_instance), names another key and gets its own row.
    `doc` holds `marker` (a random token of this row) where the instance's URL goes."""

    __tablename__ = "dicomweb_instance_metadata"

    storage_key: Mapped[str] = mapped_column(String(96), primary_key=True)
    marker: Mapped[str] = mapped_column(String(32))
    doc: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
