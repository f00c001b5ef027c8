"""notifications: in-app notifications with read and acknowledgement (issue 14)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa

import engine.db
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, engine.db.UTCDateTime(), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "notification",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("institution_id", sa.Integer(), nullable=False),
        sa.Column("recipient_user_id", sa.Integer(), nullable=True),
        sa.Column("recipient_role", sa.String(length=64), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("link", sa.String(length=256), nullable=True),
        sa.Column("dedupe_key", sa.String(length=160), nullable=True),
        sa.Column("occurrences", sa.Integer(), nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
        _ts("acknowledged_at", nullable=True),
        sa.Column("acknowledged_by_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "(recipient_user_id IS NULL) <> (recipient_role IS NULL)", name=op.f("ck_notification_one_recipient")
        ),
        sa.ForeignKeyConstraint(
            ["institution_id"], ["institution.id"], name=op.f("fk_notification_institution_id_institution")
        ),
        sa.ForeignKeyConstraint(
            ["recipient_user_id"],
            ["user_account.id"],
            name=op.f("fk_notification_recipient_user_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["acknowledged_by_id"],
            ["user_account.id"],
            name=op.f("fk_notification_acknowledged_by_id_user_account"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification")),
    )
    op.create_index("ix_notification_kind_dedupe", "notification", ["kind", "dedupe_key"])
    op.create_table(
        "notification_receipt",
        sa.Column("notification_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        _ts("read_at", nullable=True),
        sa.ForeignKeyConstraint(
            ["notification_id"],
            ["notification.id"],
            name=op.f("fk_notification_receipt_notification_id_notification"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_notification_receipt_user_id_user_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("notification_id", "user_id", name=op.f("pk_notification_receipt")),
    )
    op.create_index(
        "ix_notification_receipt_user_read", "notification_receipt", ["user_id", "read_at", "notification_id"]
    )
    op.create_index("ix_notification_receipt_user_notification", "notification_receipt", ["user_id", "notification_id"])


def downgrade() -> None:
    op.drop_table("notification_receipt")
    op.drop_table("notification")
