"""Per-user settings and the institution/role defaults they fall back to (issue 14)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base, UTCDateTime, utcnow


class UserSetting(Base):
    """One user's own value for a registered setting key (engine/settings/registry.py)."""

    __tablename__ = "user_setting"

    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class SettingDefault(Base):
    """An administrator's default for a key: for a whole institution (role_id NULL) or one role in it.

    Resolution is user > role > institution > built-in (engine/settings/services.py). One row per institution and
    key, and one per institution, role and key: two partial unique indexes, since NULLs never collide.
    """

    __tablename__ = "setting_default"
    __table_args__ = (
        Index(
            "uq_setting_default_institution_key",
            "institution_id",
            "key",
            unique=True,
            sqlite_where=text("role_id IS NULL"),
            postgresql_where=text("role_id IS NULL"),
        ),
        Index(
            "uq_setting_default_role_key",
            "institution_id",
            "role_id",
            "key",
            unique=True,
            sqlite_where=text("role_id IS NOT NULL"),
            postgresql_where=text("role_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institution.id"))
    role_id: Mapped[int | None] = mapped_column(ForeignKey("role.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(64))
    value: Mapped[Any] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
