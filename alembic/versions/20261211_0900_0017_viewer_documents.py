"""viewer: measurements/marks and key images of a study (issue 16; REQ: VIEW-08, RPT-05)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-11 09:00:00

One row per (stored study, kind): the JSON the viewer restores, its version (ETag; a stale write is refused), and
the UIDs of the DICOM document (SR TID 1500 / Key Object Selection) the last write stored through the receive path.
"""

from __future__ import annotations

import sqlalchemy as sa

import engine.db
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "viewer_document",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("institution_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("content", sa.JSON(), nullable=False),
        sa.Column("series_instance_uid", sa.String(length=64), nullable=True),
        sa.Column("sop_instance_uid", sa.String(length=64), nullable=True),
        sa.Column("updated_by_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", engine.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["institution_id"], ["institution.id"], name=op.f("fk_viewer_document_institution_id_institution")
        ),
        sa.ForeignKeyConstraint(
            ["study_id"],
            ["dicom_study.id"],
            name=op.f("fk_viewer_document_study_id_dicom_study"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["updated_by_id"],
            ["user_account.id"],
            name=op.f("fk_viewer_document_updated_by_id_user_account"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_viewer_document")),
        sa.UniqueConstraint("study_id", "kind", name="uq_viewer_document_study_kind"),
    )
    with op.batch_alter_table("viewer_document", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_viewer_document_institution_id"), ["institution_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("viewer_document", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_viewer_document_institution_id"))
    op.drop_table("viewer_document")
