"""per-user settings with institution and role defaults (issue 14)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa

import engine.db
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "user_setting",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("updated_at", engine.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user_account.id"], name=op.f("fk_user_setting_user_id_user_account"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", "key", name=op.f("pk_user_setting")),
    )
    op.create_table(
        "setting_default",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("institution_id", sa.Integer(), nullable=False),
        sa.Column("role_id", sa.Integer(), nullable=True),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("updated_at", engine.db.UTCDateTime(), nullable=False),
        sa.Column("updated_by_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["institution_id"], ["institution.id"], name=op.f("fk_setting_default_institution_id_institution")
        ),
        sa.ForeignKeyConstraint(
            ["role_id"], ["role.id"], name=op.f("fk_setting_default_role_id_role"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["updated_by_id"],
            ["user_account.id"],
            name=op.f("fk_setting_default_updated_by_id_user_account"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_setting_default")),
    )
    op.create_index("ix_setting_default_role_id", "setting_default", ["role_id"])
    # One institution-wide row per key and one per role and key: partial indexes, since NULL role ids never collide.
    op.create_index(
        "uq_setting_default_institution_key",
        "setting_default",
        ["institution_id", "key"],
        unique=True,
        sqlite_where=sa.text("role_id IS NULL"),
        postgresql_where=sa.text("role_id IS NULL"),
    )
    op.create_index(
        "uq_setting_default_role_key",
        "setting_default",
        ["institution_id", "role_id", "key"],
        unique=True,
        sqlite_where=sa.text("role_id IS NOT NULL"),
        postgresql_where=sa.text("role_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("uq_setting_default_role_key", table_name="setting_default")
    op.drop_index("uq_setting_default_institution_key", table_name="setting_default")
    op.drop_index("ix_setting_default_role_id", table_name="setting_default")
    op.drop_table("setting_default")
    op.drop_table("user_setting")
