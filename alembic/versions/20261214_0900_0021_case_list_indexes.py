"""cases: indexes for 我的诊断记录's date window (issue 17; REC-03/07)

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-14 09:00:00

The status-chip counts and the list's date shortcuts bound remote_case.created_at. Without an index, a dispatcher's
counts read every case ever requested (EXPLAIN: a full scan of remote_case); a member hospital's read every case of
its own. (requesting_institution_id, created_at) serves the member hospital, created_at the central side.
"""

from __future__ import annotations

from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_remote_case_created_at", "remote_case", ["created_at"])
    op.create_index("ix_remote_case_inst_created", "remote_case", ["requesting_institution_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_remote_case_inst_created", table_name="remote_case")
    op.drop_index("ix_remote_case_created_at", table_name="remote_case")
