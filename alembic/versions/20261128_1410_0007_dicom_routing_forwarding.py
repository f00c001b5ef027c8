"""dicom routing and forwarding: storage targets (and dicom_instance.storage_target_id), routing rules, the forward
queue with acknowledgements, storage tasks and placements (REQ: DCM-02, IMG-03, IMG-07, IMG-08, IMG-09)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28 14:10:00
"""

from __future__ import annotations

import sqlalchemy as sa

import engine.db
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, engine.db.UTCDateTime(), nullable=nullable)


def upgrade() -> None:
    target = op.create_table(
        "storage_target",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("root_path", sa.Text(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_storage_target")),
        sa.UniqueConstraint("code", name=op.f("uq_storage_target_code")),
    )
    now = engine.db.utcnow()
    op.bulk_insert(
        target,
        [
            {
                "code": "local",
                "name": "本地存储",
                "kind": "filesystem",
                "root_path": "",
                "enabled": True,
                "is_default": True,
                "created_at": now,
                "updated_at": now,
            }
        ],
    )
    # A nullable column without a default: no table rewrite on either database (NULL = the configured store).
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE dicom_instance ADD COLUMN storage_target_id INTEGER REFERENCES storage_target (id)")
    else:
        op.add_column("dicom_instance", sa.Column("storage_target_id", sa.Integer(), nullable=True))
        op.create_foreign_key(
            op.f("fk_dicom_instance_storage_target_id_storage_target"),
            "dicom_instance",
            "storage_target",
            ["storage_target_id"],
            ["id"],
        )

    op.create_table(
        "routing_rule",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("stop", sa.Boolean(), nullable=False),
        sa.Column("node_ids", sa.JSON(), nullable=False),
        sa.Column("institution_ids", sa.JSON(), nullable=False),
        sa.Column("modalities", sa.JSON(), nullable=False),
        sa.Column("body_parts", sa.JSON(), nullable=False),
        sa.Column("sop_classes", sa.JSON(), nullable=False),
        sa.Column("study_description_contains", sa.String(length=128), nullable=False),
        sa.Column("series_description_contains", sa.String(length=128), nullable=False),
        sa.Column("storage_target_id", sa.Integer(), nullable=True),
        sa.Column("storage_compression", sa.String(length=32), nullable=False),
        sa.Column("forward_node_ids", sa.JSON(), nullable=False),
        sa.Column("forward_compression", sa.String(length=32), nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
        sa.ForeignKeyConstraint(
            ["storage_target_id"], ["storage_target.id"], name=op.f("fk_routing_rule_storage_target_id_storage_target")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_routing_rule")),
    )

    op.create_table(
        "forward_job",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("instance_id", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.Integer(), nullable=False),
        sa.Column("rule_id", sa.Integer(), nullable=True),
        sa.Column("compression", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _ts("next_attempt_at"),
        _ts("leased_until", nullable=True),
        sa.Column("last_error", sa.Text(), nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
        sa.ForeignKeyConstraint(
            ["instance_id"],
            ["dicom_instance.id"],
            name=op.f("fk_forward_job_instance_id_dicom_instance"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["node_id"], ["dicom_node.id"], name=op.f("fk_forward_job_node_id_dicom_node")),
        sa.ForeignKeyConstraint(
            ["rule_id"], ["routing_rule.id"], name=op.f("fk_forward_job_rule_id_routing_rule"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_forward_job")),
        sa.UniqueConstraint("instance_id", "node_id", name="uq_forward_job_instance_node"),
    )
    op.create_index("ix_forward_job_due", "forward_job", ["state", "next_attempt_at"], unique=False)
    op.create_index("ix_forward_job_node_state", "forward_job", ["node_id", "state", "id"], unique=False)

    op.create_table(
        "forward_ack",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.Integer(), nullable=False),
        sa.Column("sop_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("transfer_syntax_uid", sa.String(length=64), nullable=False),
        _ts("acked_at"),
        sa.ForeignKeyConstraint(["node_id"], ["dicom_node.id"], name=op.f("fk_forward_ack_node_id_dicom_node")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_forward_ack")),
        sa.UniqueConstraint("node_id", "sop_instance_uid", name="uq_forward_ack_node_uid"),
    )

    op.create_table(
        "storage_task",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("target_id", sa.Integer(), nullable=False),
        sa.Column("filter", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("copied", sa.Integer(), nullable=False),
        sa.Column("missing", sa.Integer(), nullable=False),
        sa.Column("mismatched", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.Column("cursor", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=160), nullable=False),
        _ts("created_at"),
        _ts("started_at", nullable=True),
        _ts("finished_at", nullable=True),
        sa.ForeignKeyConstraint(
            ["source_id"], ["storage_target.id"], name=op.f("fk_storage_task_source_id_storage_target")
        ),
        sa.ForeignKeyConstraint(
            ["target_id"], ["storage_target.id"], name=op.f("fk_storage_task_target_id_storage_target")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_storage_task")),
    )
    op.create_index("ix_storage_task_state", "storage_task", ["state", "id"], unique=False)

    op.create_table(
        "storage_placement",
        sa.Column("instance_id", sa.Integer(), nullable=False),
        sa.Column("target_id", sa.Integer(), nullable=False),
        sa.Column("compression", sa.String(length=32), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _ts("next_attempt_at"),
        sa.Column("last_error", sa.Text(), nullable=False),
        _ts("created_at"),
        sa.ForeignKeyConstraint(
            ["instance_id"],
            ["dicom_instance.id"],
            name=op.f("fk_storage_placement_instance_id_dicom_instance"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["target_id"], ["storage_target.id"], name=op.f("fk_storage_placement_target_id_storage_target")
        ),
        sa.PrimaryKeyConstraint("instance_id", name=op.f("pk_storage_placement")),
    )
    op.create_index(
        op.f("ix_storage_placement_next_attempt_at"), "storage_placement", ["next_attempt_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_storage_placement_next_attempt_at"), table_name="storage_placement")
    op.drop_table("storage_placement")
    op.drop_index("ix_storage_task_state", table_name="storage_task")
    op.drop_table("storage_task")
    op.drop_table("forward_ack")
    op.drop_index("ix_forward_job_node_state", table_name="forward_job")
    op.drop_index("ix_forward_job_due", table_name="forward_job")
    op.drop_table("forward_job")
    op.drop_table("routing_rule")
    with op.batch_alter_table("dicom_instance", schema=None) as batch_op:
        if op.get_bind().dialect.name != "sqlite":
            batch_op.drop_constraint(op.f("fk_dicom_instance_storage_target_id_storage_target"), type_="foreignkey")
        batch_op.drop_column("storage_target_id")
    op.drop_table("storage_target")
