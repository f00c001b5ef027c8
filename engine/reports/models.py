"""Reports and their revisions (REQ: RPT-08/10/14, TRACE-01/02, DAT-05)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from engine.accounts.models import User
from engine.db import Base, UTCDateTime, utcnow

REPORT_FIELDS = ("findings", "impression", "recommendation", "positive")
LEVELS = {"draft_report": "l1", "report_level2": "l2", "review_level3": "l3"}


class Report(Base):
    """The report of a case. `version` > 1 are corrections of a released report (UX.md R10)."""

    __tablename__ = "report"
    __table_args__ = (UniqueConstraint("case_id", "version", name="uq_report_case_version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("remote_case.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(32), default="draft")
    voided: Mapped[bool] = mapped_column(Boolean, default=False)
    void_reason: Mapped[str | None] = mapped_column(Text)
    correction_of_id: Mapped[int | None] = mapped_column(ForeignKey("report.id"))  # the version it corrects
    # No FK: report and report_revision point at each other; the revision row always exists before this is set.
    current_revision_id: Mapped[int | None] = mapped_column(Integer)
    author_l1_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    author_l2_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    reviewer_l3_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    lock_holder_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    lock_token: Mapped[int] = mapped_column(Integer, default=0)
    lock_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    printed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    print_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    lock_holder: Mapped[User | None] = relationship(foreign_keys=[lock_holder_id], lazy="joined")
    current: Mapped[ReportRevision | None] = relationship(
        primaryjoin="foreign(Report.current_revision_id) == ReportRevision.id", lazy="joined", viewonly=True
    )


class ReportRevision(Base):
    """Every save of a report. Signed revisions are immutable (DAT-05); drafts are autosaves."""

    __tablename__ = "report_revision"
    __table_args__ = (UniqueConstraint("report_id", "seq", name="uq_report_revision_seq"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("report.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    level: Mapped[str] = mapped_column(String(4))  # l1 | l2 | l3
    author_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    signed: Mapped[bool] = mapped_column(Boolean, default=False)
    kind: Mapped[str] = mapped_column(String(16), default="draft")  # draft | submit | approve | reject | kept
    findings: Mapped[str] = mapped_column(Text, default="")
    impression: Mapped[str] = mapped_column(Text, default="")
    recommendation: Mapped[str] = mapped_column(Text, default="")
    positive: Mapped[str | None] = mapped_column(String(8))
    note: Mapped[str | None] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    author: Mapped[User] = relationship(lazy="joined")
