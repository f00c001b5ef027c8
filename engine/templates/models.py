"""Report templates, their parts, per-user favorites and use counts, and phrases (issue 17; REQ: RPT-03, RPT-06,
RPT-07, RPT-15, DICT-02; UX.md R5, R6).

A template is `single` (its own sections) or a `combination` (ordered parts, each a single template; its sections are
composed from the parts when read, so editing a part changes every combination that uses it). `scope` is private
(owner only), institution (the owner's institution) or public (every central doctor). Searching by pinyin goes through
`report_template_key`: one row per syllable-boundary suffix of the name's initials and full pinyin, so "tl", "toulu"
and "cttl" all find "CT头颅平扫" through a B-tree range (engine/templates/search.py) instead of scanning names.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy import text as sql_text
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base, UTCDateTime, utcnow

SINGLE = "single"
COMBINATION = "combination"
KINDS = (SINGLE, COMBINATION)
PRIVATE = "private"
INSTITUTION = "institution"
PUBLIC = "public"
SCOPES = (PRIVATE, INSTITUTION, PUBLIC)
CATEGORIES = ("normal", "abnormal")
MODALITIES = ("CT", "MR", "DR", "CR", "DX", "US", "MG", "RF", "XA", "NM", "PT", "OT")
POSITIVE = ("阴性", "阳性")
SECTIONS = ("exam_method", "findings", "impression", "recommendation")

NAME_MAX = 100
BODY_PART_MAX = 32
SECTION_MAX = 20000
KEY_MAX = 64
PHRASE_MAX = 500


class ReportTemplate(Base):
    """One report template (single or combination), soft-deleted so combinations and history keep their ids."""

    __tablename__ = "report_template"
    __table_args__ = (
        Index("ix_report_template_browse", "modality", "body_part"),
        Index("ix_report_template_scope", "scope", "institution_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_MAX))
    name_pinyin: Mapped[str] = mapped_column(String(KEY_MAX), default="", server_default=sql_text("''"))
    kind: Mapped[str] = mapped_column(String(16), default=SINGLE)
    scope: Mapped[str] = mapped_column(String(16))
    category: Mapped[str] = mapped_column(String(16), default="normal")
    modality: Mapped[str] = mapped_column(String(8))
    body_part: Mapped[str] = mapped_column(String(BODY_PART_MAX))
    exam_method: Mapped[str] = mapped_column(Text, default="")
    findings: Mapped[str] = mapped_column(Text, default="")
    impression: Mapped[str] = mapped_column(Text, default="")
    recommendation: Mapped[str] = mapped_column(Text, default="")
    positive: Mapped[str | None] = mapped_column(String(8))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"), index=True)
    institution_id: Mapped[int | None] = mapped_column(ForeignKey("institution.id"))
    # The starter library's own key (engine/templates/library.py): a second seed finds its rows by it.
    library_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ReportTemplatePart(Base):
    """The ordered single templates of a combination."""

    __tablename__ = "report_template_part"

    combination_id: Mapped[int] = mapped_column(ForeignKey("report_template.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    part_id: Mapped[int] = mapped_column(ForeignKey("report_template.id"), index=True)


class ReportTemplateKey(Base):
    """A pinyin search key of a template's name (see the module docstring); the primary key serves the range."""

    __tablename__ = "report_template_key"

    # Code-point order on PostgreSQL too, so a prefix range (engine/templates/search.py key_range) is "starts with".
    key: Mapped[str] = mapped_column(
        String(KEY_MAX).with_variant(String(KEY_MAX, collation="C"), "postgresql"), primary_key=True
    )
    template_id: Mapped[int] = mapped_column(
        ForeignKey("report_template.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class ReportTemplateUsage(Base):
    """A user's star (常用★) and use count of one template."""

    __tablename__ = "report_template_usage"

    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"), primary_key=True)
    template_id: Mapped[int] = mapped_column(
        ForeignKey("report_template.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    favorite: Mapped[bool] = mapped_column(Boolean, default=False)
    use_count: Mapped[int] = mapped_column(Integer, default=0)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ReportPhrase(Base):
    """A phrase of the 常用词库 (UX.md R6): a user's own (private) or shared by the institution's doctors."""

    __tablename__ = "report_phrase"
    # A Ctrl+1..9 key names one phrase among a user's own, and one among an institution's shared ones; across the two
    # (a shared phrase against a user's own) the service checks it (engine/templates/phrases.py).
    __table_args__ = (
        Index("ix_report_phrase_scope", "scope", "institution_id"),
        Index(
            "uq_report_phrase_private_shortcut",
            "owner_id",
            "shortcut",
            unique=True,
            sqlite_where=sql_text("scope = 'private' AND shortcut IS NOT NULL"),
            postgresql_where=sql_text("scope = 'private' AND shortcut IS NOT NULL"),
        ),
        Index(
            "uq_report_phrase_shared_shortcut",
            "institution_id",
            "shortcut",
            unique=True,
            sqlite_where=sql_text("scope = 'shared' AND shortcut IS NOT NULL"),
            postgresql_where=sql_text("scope = 'shared' AND shortcut IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    scope: Mapped[str] = mapped_column(String(16))  # private | shared
    text: Mapped[str] = mapped_column(String(PHRASE_MAX))
    pinyin: Mapped[str] = mapped_column(String(128), default="", server_default=sql_text("''"))
    shortcut: Mapped[int | None] = mapped_column(Integer)  # Ctrl+1..9
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"), index=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institution.id"))
    library_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
