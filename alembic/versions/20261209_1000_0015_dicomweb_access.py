"""DICOMweb access audit key: one row per (principal, study, day) (issue 15, DSEC-10)

Revision ID: 0015
Revises: 0013
Create Date: 2026-12-08 12:00:00

(0014 is the OAuth helper's migration: when both are merged, this one follows it — set down_revision = "0014".)
"""

from __future__ import annotations

import sqlalchemy as sa

import engine.db
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dicomweb_study_access",
        sa.Column("principal", sa.String(length=80), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("created_at", engine.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["study_id"], ["dicom_study.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("principal", "study_id", "day"),
    )


def downgrade() -> None:
    op.drop_table("dicomweb_study_access")
