"""dicom worklist, MPPS and image matching: exam.scheduled_station_aet and the worklist index, the MPPS instances
(dicom_mpps) and the queue of unmatched studies (REQ: DCM-05, IMG-06)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 14:00:00
"""

from __future__ import annotations

import sqlalchemy as sa

import engine.db
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("exam", schema=None) as batch_op:
        batch_op.add_column(sa.Column("scheduled_station_aet", sa.String(length=16), nullable=True))
        batch_op.create_index("ix_exam_inst_status_time", ["institution_id", "status", "exam_time"], unique=False)

    op.create_table(
        "dicom_mpps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("institution_id", sa.Integer(), nullable=False),
        sa.Column("sop_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("node_id", sa.Integer(), nullable=True),
        sa.Column("exam_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("accession_number", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("modality", sa.String(length=16), nullable=False),
        sa.Column("study_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("station_aet", sa.String(length=16), nullable=False),
        sa.Column("created_at", engine.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", engine.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["exam_id"], ["exam.id"], name=op.f("fk_dicom_mpps_exam_id_exam")),
        sa.ForeignKeyConstraint(
            ["institution_id"], ["institution.id"], name=op.f("fk_dicom_mpps_institution_id_institution")
        ),
        sa.ForeignKeyConstraint(["node_id"], ["dicom_node.id"], name=op.f("fk_dicom_mpps_node_id_dicom_node")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dicom_mpps")),
        sa.UniqueConstraint("institution_id", "sop_instance_uid", name="uq_dicom_mpps_inst_uid"),
    )
    with op.batch_alter_table("dicom_mpps", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dicom_mpps_exam_id"), ["exam_id"], unique=False)

    op.create_table(
        "unmatched_study",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("institution_id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("details", sa.String(length=256), nullable=False),
        sa.Column("created_at", engine.db.UTCDateTime(), nullable=False),
        sa.Column("resolved_at", engine.db.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["institution_id"], ["institution.id"], name=op.f("fk_unmatched_study_institution_id_institution")
        ),
        sa.ForeignKeyConstraint(["study_id"], ["dicom_study.id"], name=op.f("fk_unmatched_study_study_id_dicom_study")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_unmatched_study")),
        sa.UniqueConstraint("study_id", name=op.f("uq_unmatched_study_study_id")),
    )
    with op.batch_alter_table("unmatched_study", schema=None) as batch_op:
        batch_op.create_index("ix_unmatched_study_inst_open", ["institution_id", "resolved_at", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("unmatched_study", schema=None) as batch_op:
        batch_op.drop_index("ix_unmatched_study_inst_open")

    op.drop_table("unmatched_study")
    with op.batch_alter_table("dicom_mpps", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dicom_mpps_exam_id"))

    op.drop_table("dicom_mpps")
    with op.batch_alter_table("exam", schema=None) as batch_op:
        batch_op.drop_index("ix_exam_inst_status_time")
        batch_op.drop_column("scheduled_station_aet")
