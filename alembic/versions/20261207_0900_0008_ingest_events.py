"""ingest events: the outbox the receive service writes in the index transaction (issue 12, issue 14 events out of ingest)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 09:00:00
"""

from __future__ import annotations

from alembic import op  # noqa: F401

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
