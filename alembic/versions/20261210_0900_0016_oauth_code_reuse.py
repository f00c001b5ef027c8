"""oauth: authorization codes kept once used, tokens linked to their code (issue 15; RFC 6749 §4.1.2)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-10 09:00:00

A second exchange of a code is refused and revokes the token the first exchange got: the code row is marked
`used_at` instead of being deleted, and a token from the authorization code grant names it in `code_id`.
"""

from __future__ import annotations

import sqlalchemy as sa

import engine.db
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("oauth_authorization_code", schema=None) as batch_op:
        batch_op.add_column(sa.Column("used_at", engine.db.UTCDateTime(), nullable=True))
        batch_op.create_index(batch_op.f("ix_oauth_authorization_code_expires_at"), ["expires_at"], unique=False)
    with op.batch_alter_table("oauth_token", schema=None) as batch_op:
        batch_op.add_column(sa.Column("code_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_oauth_token_code_id"), ["code_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_oauth_token_code_id_oauth_authorization_code"),
            "oauth_authorization_code",
            ["code_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("oauth_token", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_oauth_token_code_id_oauth_authorization_code"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_oauth_token_code_id"))
        batch_op.drop_column("code_id")
    with op.batch_alter_table("oauth_authorization_code", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_oauth_authorization_code_expires_at"))
        batch_op.drop_column("used_at")
