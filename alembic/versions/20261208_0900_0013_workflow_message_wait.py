"""workflow_message_wait: the message catches a process instance waits on (issue 14, events out of ingest)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-08 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa

import engine.db
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # No backfill: no deployed process had a message catch before this revision, so no stored state waits on one.
    op.create_table(
        "workflow_message_wait",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("process_instance_id", sa.Integer(), nullable=False),
        sa.Column("task_guid", sa.String(length=36), nullable=False),
        sa.Column("message_name", sa.String(length=64), nullable=False),
        sa.Column("created_at", engine.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["process_instance_id"],
            ["process_instance.id"],
            name=op.f("fk_workflow_message_wait_process_instance_id_process_instance"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflow_message_wait")),
        sa.UniqueConstraint("task_guid", name=op.f("uq_workflow_message_wait_task_guid")),
    )
    with op.batch_alter_table("workflow_message_wait", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_workflow_message_wait_process_instance_id"), ["process_instance_id"], unique=False
        )
        batch_op.create_index("ix_workflow_message_wait_name", ["message_name", "process_instance_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("workflow_message_wait", schema=None) as batch_op:
        batch_op.drop_index("ix_workflow_message_wait_name")
        batch_op.drop_index(batch_op.f("ix_workflow_message_wait_process_instance_id"))
    op.drop_table("workflow_message_wait")
