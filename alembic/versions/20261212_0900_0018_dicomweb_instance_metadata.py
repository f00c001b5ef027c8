"""dicomweb: each stored file's WADO-RS metadata, built once (issue 16; REQ: VIEW transport)

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-12 09:00:00

One row per stored file (its content key): the file's DICOM JSON as a template whose marker stands for the
instance URL (engine/dicomweb/metadata.py). Derived data: dropping the table loses nothing but speed.
"""

from __future__ import annotations

import sqlalchemy as sa

import engine.db
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dicomweb_instance_metadata",
        sa.Column("storage_key", sa.String(length=96), nullable=False),
        sa.Column("marker", sa.String(length=32), nullable=False),
        sa.Column("doc", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", engine.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("storage_key", name=op.f("pk_dicomweb_instance_metadata")),
    )


def downgrade() -> None:
    op.drop_table("dicomweb_instance_metadata")
