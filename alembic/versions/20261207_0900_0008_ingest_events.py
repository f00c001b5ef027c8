"""ingest events: the outbox the receive service writes in the index transaction (issue 12, issue 14 events out of ingest)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa

import engine.db
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ingest_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("institution_id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("new_study", sa.Boolean(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", engine.db.UTCDateTime(), nullable=False),
        sa.Column("processed_at", engine.db.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["institution_id"], ["institution.id"], name=op.f("fk_ingest_event_institution_id_institution")
        ),
        sa.ForeignKeyConstraint(
            ["study_id"], ["dicom_study.id"], name=op.f("fk_ingest_event_study_id_dicom_study"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ingest_event")),
    )
    op.create_index("ix_ingest_event_pending", "ingest_event", ["processed_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_ingest_event_pending", table_name="ingest_event")
    op.drop_table("ingest_event")
