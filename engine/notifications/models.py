"""Notifications and their per-user receipts (issue 14)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from engine.db import Base, UTCDateTime, utcnow


class Notification(Base):
    """One notification, addressed to a user or to a role at an institution.

    The people it reached are fixed when it is written: one `NotificationReceipt` per addressee (a role is
    resolved to its holders then), which holds that person's read state. A critical notification is closed by the
    first acknowledgement (who and when, here); that is the 危急值 rule too — one responsible receiver confirms.
    """

    __tablename__ = "notification"
    __table_args__ = (
        CheckConstraint("(recipient_user_id IS NULL) <> (recipient_role IS NULL)", name="one_recipient"),
        # Coalescing a repeated alert: the open notification of a kind with the same key (services.notify).
        Index("ix_notification_kind_dedupe", "kind", "dedupe_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))  # info | warning | critical
    institution_id: Mapped[int] = mapped_column(ForeignKey("institution.id"))
    recipient_user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    recipient_role: Mapped[str | None] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    link: Mapped[str | None] = mapped_column(String(256))
    dedupe_key: Mapped[str | None] = mapped_column(String(160))
    occurrences: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    acknowledged_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))

    receipts: Mapped[list[NotificationReceipt]] = relationship(
        back_populates="notification", cascade="all, delete-orphan", lazy="raise"
    )


class NotificationReceipt(Base):
    """One addressee's copy of a notification: whether and when they read it."""

    __tablename__ = "notification_receipt"
    __table_args__ = (
        # The bell's poll: a user's unread receipts (services.summary reads only this index range).
        Index("ix_notification_receipt_user_read", "user_id", "read_at", "notification_id"),
        # The list, newest first.
        Index("ix_notification_receipt_user_notification", "user_id", "notification_id"),
    )

    notification_id: Mapped[int] = mapped_column(ForeignKey("notification.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"), primary_key=True)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    notification: Mapped[Notification] = relationship(back_populates="receipts")
