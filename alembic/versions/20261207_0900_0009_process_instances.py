"""process instances: any BPMN process owns its workflow state; tasks, timers, incidents hang off it (issue 14)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 09:00:00

Existing data: every remote_case gets a process_instance (same id as the case, so the re-pointing is a copy of a
column) holding its workflow state as state version 1 (engine/workflow/state.py), its deployment, status and
requesting institution; its human_task, workflow_timer and incident rows are re-pointed at it. The downgrade
moves the state back onto remote_case.
"""

from __future__ import annotations

import sqlalchemy as sa

import engine.db
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

OPEN = "completed_at IS NULL"
UNASSIGNED = "completed_at IS NULL AND assignee_id IS NULL"
# human_task's partial indexes (0003, 0004): dropped around the SQLite table rebuild and created again, so their
# WHERE clauses never depend on what batch mode reflects.
PARTIAL = (
    ("ix_human_task_open_list", ["in_pool", sa.text("emergency DESC"), "created_at", "id"], OPEN, False),
    ("ix_human_task_open_mine", ["assignee_id", sa.text("emergency DESC"), "created_at", "id"], OPEN, False),
    ("ix_human_task_open_unassigned", ["in_pool", sa.text("emergency DESC"), "created_at", "id"], UNASSIGNED, False),
    ("uq_human_task_open_guid", ["task_guid"], OPEN, True),
)


def _drop_partial() -> None:
    for name, _cols, _where, _unique in PARTIAL:
        op.drop_index(name, table_name="human_task")


def _create_partial() -> None:
    for name, cols, where, unique in PARTIAL:
        op.create_index(
            name, "human_task", cols, unique=unique, sqlite_where=sa.text(where), postgresql_where=sa.text(where)
        )


def upgrade() -> None:
    op.create_table(
        "process_instance",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("process_id", sa.String(length=64), nullable=False),
        sa.Column("deployment_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("serializer_version", sa.Integer(), nullable=False),
        sa.Column("lock_version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("institution_id", sa.Integer(), nullable=False),
        sa.Column("subject_type", sa.String(length=32), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("created_at", engine.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", engine.db.UTCDateTime(), nullable=False),
        sa.Column("completed_at", engine.db.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["process_deployment.id"],
            name=op.f("fk_process_instance_deployment_id_process_deployment"),
        ),
        sa.ForeignKeyConstraint(
            ["institution_id"], ["institution.id"], name=op.f("fk_process_instance_institution_id_institution")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_process_instance")),
    )
    with op.batch_alter_table("process_instance", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_process_instance_deployment_id"), ["deployment_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_process_instance_institution_id"), ["institution_id"], unique=False)
        batch_op.create_index("ix_process_instance_subject", ["subject_type", "subject_id"], unique=False)
        batch_op.create_index("ix_process_instance_process_status", ["process_id", "status"], unique=False)

    # One instance per case, with the case's id: state version 1 is exactly what remote_case.workflow_state held.
    op.execute(
        "INSERT INTO process_instance (id, process_id, deployment_id, state, serializer_version, lock_version,"
        " status, institution_id, subject_type, subject_id, created_at, updated_at, completed_at)"
        " SELECT c.id, d.process_id, c.deployment_id, c.workflow_state, 1, c.state_version, c.status,"
        " c.requesting_institution_id, 'case', c.id, c.created_at, c.updated_at, c.completed_at"
        " FROM remote_case c JOIN process_deployment d ON d.id = c.deployment_id"
    )
    if op.get_bind().dialect.name == "postgresql":  # ids were given explicitly: move the sequence past them
        op.execute(
            "SELECT setval(pg_get_serial_sequence('process_instance', 'id'),"
            " COALESCE((SELECT MAX(id) FROM process_instance), 0) + 1, false)"
        )

    with op.batch_alter_table("remote_case", schema=None) as batch_op:
        batch_op.add_column(sa.Column("process_instance_id", sa.Integer(), nullable=True))
    op.execute("UPDATE remote_case SET process_instance_id = id")
    with op.batch_alter_table("remote_case", schema=None) as batch_op:
        batch_op.alter_column("process_instance_id", existing_type=sa.Integer(), nullable=False)
        batch_op.create_unique_constraint(batch_op.f("uq_remote_case_process_instance_id"), ["process_instance_id"])
        batch_op.create_foreign_key(
            batch_op.f("fk_remote_case_process_instance_id_process_instance"),
            "process_instance",
            ["process_instance_id"],
            ["id"],
        )
        batch_op.drop_constraint(batch_op.f("fk_remote_case_deployment_id_process_deployment"), type_="foreignkey")
        batch_op.drop_column("deployment_id")
        batch_op.drop_column("workflow_state")
        batch_op.drop_column("state_version")

    _drop_partial()
    with op.batch_alter_table("human_task", schema=None) as batch_op:
        batch_op.add_column(sa.Column("process_instance_id", sa.Integer(), nullable=True))
    op.execute("UPDATE human_task SET process_instance_id = case_id")
    with op.batch_alter_table("human_task", schema=None) as batch_op:
        batch_op.alter_column("process_instance_id", existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column("case_id", existing_type=sa.Integer(), nullable=True)
        batch_op.create_foreign_key(
            batch_op.f("fk_human_task_process_instance_id_process_instance"),
            "process_instance",
            ["process_instance_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch_op.create_index("ix_human_task_process_open", ["process_instance_id", "completed_at"], unique=False)
    _create_partial()

    for table in ("workflow_timer", "incident"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("process_instance_id", sa.Integer(), nullable=True))
        op.execute(f"UPDATE {table} SET process_instance_id = case_id")  # noqa: S608 — a fixed table name
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column("process_instance_id", existing_type=sa.Integer(), nullable=False)
            batch_op.create_foreign_key(
                batch_op.f(f"fk_{table}_process_instance_id_process_instance"),
                "process_instance",
                ["process_instance_id"],
                ["id"],
                ondelete="CASCADE",
            )
            batch_op.create_index(batch_op.f(f"ix_{table}_process_instance_id"), ["process_instance_id"], unique=False)
            batch_op.drop_index(batch_op.f(f"ix_{table}_case_id"))
            batch_op.drop_constraint(batch_op.f(f"fk_{table}_case_id_remote_case"), type_="foreignkey")
            batch_op.drop_column("case_id")


def downgrade() -> None:
    # Only remote-diagnosis cases existed before: rows of any other process kind cannot go back and are dropped.
    for table in ("workflow_timer", "incident"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("case_id", sa.Integer(), nullable=True))
        op.execute(  # noqa: S608 — a fixed table name
            f"UPDATE {table} SET case_id = (SELECT c.id FROM remote_case c"
            f" WHERE c.process_instance_id = {table}.process_instance_id)"
        )
        op.execute(f"DELETE FROM {table} WHERE case_id IS NULL")  # noqa: S608 — a fixed table name
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column("case_id", existing_type=sa.Integer(), nullable=False)
            batch_op.create_foreign_key(
                batch_op.f(f"fk_{table}_case_id_remote_case"), "remote_case", ["case_id"], ["id"], ondelete="CASCADE"
            )
            batch_op.create_index(batch_op.f(f"ix_{table}_case_id"), ["case_id"], unique=False)
            batch_op.drop_index(batch_op.f(f"ix_{table}_process_instance_id"))
            batch_op.drop_constraint(batch_op.f(f"fk_{table}_process_instance_id_process_instance"), type_="foreignkey")
            batch_op.drop_column("process_instance_id")

    op.execute("DELETE FROM human_task WHERE case_id IS NULL")
    _drop_partial()
    with op.batch_alter_table("human_task", schema=None) as batch_op:
        batch_op.drop_index("ix_human_task_process_open")
        batch_op.drop_constraint(batch_op.f("fk_human_task_process_instance_id_process_instance"), type_="foreignkey")
        batch_op.drop_column("process_instance_id")
        batch_op.alter_column("case_id", existing_type=sa.Integer(), nullable=False)
    _create_partial()

    with op.batch_alter_table("remote_case", schema=None) as batch_op:
        batch_op.add_column(sa.Column("deployment_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("workflow_state", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("state_version", sa.Integer(), nullable=True))
    # State of a newer format than version 1 would need its migrations reversed; version 1 is the only one so far.
    for column, source in (
        ("deployment_id", "deployment_id"),
        ("workflow_state", "state"),
        ("state_version", "lock_version"),
    ):
        op.execute(  # noqa: S608 — fixed column names
            f"UPDATE remote_case SET {column} = (SELECT p.{source} FROM process_instance p"
            " WHERE p.id = remote_case.process_instance_id)"
        )
    with op.batch_alter_table("remote_case", schema=None) as batch_op:
        batch_op.alter_column("deployment_id", existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column("workflow_state", existing_type=sa.JSON(), nullable=False)
        batch_op.alter_column("state_version", existing_type=sa.Integer(), nullable=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_remote_case_deployment_id_process_deployment"),
            "process_deployment",
            ["deployment_id"],
            ["id"],
        )
        batch_op.drop_constraint(batch_op.f("fk_remote_case_process_instance_id_process_instance"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("uq_remote_case_process_instance_id"), type_="unique")
        batch_op.drop_column("process_instance_id")

    with op.batch_alter_table("process_instance", schema=None) as batch_op:
        batch_op.drop_index("ix_process_instance_process_status")
        batch_op.drop_index("ix_process_instance_subject")
        batch_op.drop_index(batch_op.f("ix_process_instance_institution_id"))
        batch_op.drop_index(batch_op.f("ix_process_instance_deployment_id"))
    op.drop_table("process_instance")
