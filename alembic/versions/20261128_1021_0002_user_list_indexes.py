"""user list indexes that match the lists' ORDER BY (review lists by submitted_at, member users by id)

Measured with bench/bench_api.py at 100,000 users: the pending-review page sorted all pending rows
(ix_user_account_review_created is on created_at, the list orders by submitted_at) and a member hospital's
user list walked the primary key filtering on institution_id.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 10:21:00
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_user_account_review_created", table_name="user_account")
    op.drop_index("ix_user_account_inst_review", table_name="user_account")
    op.create_index("ix_user_account_review_submitted", "user_account", ["review_status", "submitted_at", "id"])
    op.create_index(
        "ix_user_account_inst_review_submitted",
        "user_account",
        ["institution_id", "review_status", "submitted_at", "id"],
    )
    op.create_index("ix_user_account_inst_id", "user_account", ["institution_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_user_account_inst_id", table_name="user_account")
    op.drop_index("ix_user_account_inst_review_submitted", table_name="user_account")
    op.drop_index("ix_user_account_review_submitted", table_name="user_account")
    op.create_index("ix_user_account_inst_review", "user_account", ["institution_id", "review_status", "id"])
    op.create_index("ix_user_account_review_created", "user_account", ["review_status", "created_at"])
