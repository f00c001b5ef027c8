"""The viewer's documents of a study (issue 16; REQ: VIEW-08, RPT-05): one row per (stored study, kind).

`kind` is "annotations" (the Cornerstone3D measurements and marks, a JSON list) or "key_images" (the key images,
a JSON list the report editor's 图像 card and printing read). `version` starts at 1 and is raised by every write, a
conditional UPDATE on the version the writer read (its ETag): a stale write changes nothing (409). The DICOM document
each write stored through the receive path (SR TID 1500 / Key Object Selection) is named by its UIDs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base, UTCDateTime, utcnow

ANNOTATIONS = "annotations"
KEY_IMAGES = "key_images"
KINDS = (ANNOTATIONS, KEY_IMAGES)


class ViewerDocument(Base):
    __tablename__ = "viewer_document"
    __table_args__ = (UniqueConstraint("study_id", "kind", name="uq_viewer_document_study_kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("dicom_study.id", ondelete="CASCADE"))
    institution_id: Mapped[int] = mapped_column(ForeignKey("institution.id"), index=True)  # the study's
    kind: Mapped[str] = mapped_column(String(16))
    version: Mapped[int] = mapped_column(Integer, default=1)
    content: Mapped[Any] = mapped_column(JSON)
    # the DICOM document of the last write (SR TID 1500 or KOS), stored in the archive under the study's institution
    series_instance_uid: Mapped[str | None] = mapped_column(String(64))
    sop_instance_uid: Mapped[str | None] = mapped_column(String(64))
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
