"""cases: report turnaround rules (报告时限规则) and each case's limit and due time (issue 17; UX.md R3)

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-13 10:00:00

The table starts with UX.md R3's defaults (engine/cases/turnaround.py default_rules). Open cases created before this
revision get no due time (their countdown shows nothing; their process keeps the timer it was started with).
"""

from __future__ import annotations

import sqlalchemy as sa

import engine.db
from alembic import op
from engine.cases.turnaround import default_rules

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    rules = op.create_table(
        "turnaround_rule",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("institution_id", sa.Integer(), nullable=True),
        sa.Column("modality", sa.String(length=16), nullable=True),
        sa.Column("body_part_keyword", sa.String(length=32), nullable=True),
        sa.Column("priority", sa.String(length=16), nullable=True),
        sa.Column("patient_class", sa.String(length=16), nullable=True),
        sa.Column("limit_minutes", sa.Integer(), nullable=False),
        sa.Column("working_hours", sa.Boolean(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", engine.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["institution_id"], ["institution.id"], name=op.f("fk_turnaround_rule_institution_id_institution")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_turnaround_rule")),
    )
    now = engine.db.utcnow()
    op.bulk_insert(
        rules,
        [
            {
                "name": d.name,
                "institution_id": None,
                "modality": d.modality,
                "body_part_keyword": d.body_part_keyword,
                "priority": d.priority,
                "patient_class": d.patient_class,
                "limit_minutes": d.limit_minutes,
                "working_hours": d.working_hours,
                "enabled": True,
                "version": 1,
                "updated_at": now,
            }
            for d in default_rules()
        ],
    )
    with op.batch_alter_table("remote_case") as batch:
        batch.add_column(sa.Column("tat_limit_minutes", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("due_at", engine.db.UTCDateTime(), nullable=True))
        batch.create_index(batch.f("ix_remote_case_due_at"), ["due_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("remote_case") as batch:
        batch.drop_index(batch.f("ix_remote_case_due_at"))
        batch.drop_column("due_at")
        batch.drop_column("tat_limit_minutes")
    op.drop_table("turnaround_rule")
