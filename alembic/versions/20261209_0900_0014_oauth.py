"""oauth: clients, hashed access tokens and authorization codes (issue 15)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-09 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa

import engine.db
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Secrets, tokens and codes are kept as SHA-256 digests only (engine/oauth/models.py says why).
    op.create_table(
        "oauth_client",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("institution_id", sa.Integer(), nullable=False),
        sa.Column("scopes", sa.String(length=256), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=True),
        sa.Column("redirect_uris", sa.Text(), nullable=False),
        sa.Column("created_at", engine.db.UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=160), nullable=True),
        sa.Column("revoked_at", engine.db.UTCDateTime(), nullable=True),
        sa.Column("revoked_by", sa.String(length=160), nullable=True),
        sa.ForeignKeyConstraint(
            ["institution_id"], ["institution.id"], name=op.f("fk_oauth_client_institution_id_institution")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oauth_client")),
        sa.UniqueConstraint("client_id", name=op.f("uq_oauth_client_client_id")),
    )
    with op.batch_alter_table("oauth_client", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_oauth_client_institution_id"), ["institution_id"], unique=False)

    op.create_table(
        "oauth_authorization_code",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("client_pk", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("redirect_uri", sa.Text(), nullable=False),
        sa.Column("scope", sa.String(length=256), nullable=False),
        sa.Column("code_challenge", sa.String(length=128), nullable=False),
        sa.Column("code_challenge_method", sa.String(length=8), nullable=False),
        sa.Column("expires_at", engine.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_pk"],
            ["oauth_client.id"],
            name=op.f("fk_oauth_authorization_code_client_pk_oauth_client"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_oauth_authorization_code_user_id_user_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oauth_authorization_code")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_oauth_authorization_code_code_hash")),
    )
    with op.batch_alter_table("oauth_authorization_code", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_oauth_authorization_code_client_pk"), ["client_pk"], unique=False)
        batch_op.create_index(batch_op.f("ix_oauth_authorization_code_user_id"), ["user_id"], unique=False)

    op.create_table(
        "oauth_token",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("client_pk", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("scope", sa.String(length=256), nullable=False),
        sa.Column("issued_at", engine.db.UTCDateTime(), nullable=False),
        sa.Column("expires_at", engine.db.UTCDateTime(), nullable=False),
        sa.Column("revoked_at", engine.db.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["client_pk"], ["oauth_client.id"], name=op.f("fk_oauth_token_client_pk_oauth_client"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user_account.id"], name=op.f("fk_oauth_token_user_id_user_account"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oauth_token")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_oauth_token_token_hash")),
    )
    with op.batch_alter_table("oauth_token", schema=None) as batch_op:
        batch_op.create_index("ix_oauth_token_client_active", ["client_pk", "revoked_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_oauth_token_expires_at"), ["expires_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_oauth_token_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("oauth_token", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_oauth_token_user_id"))
        batch_op.drop_index(batch_op.f("ix_oauth_token_expires_at"))
        batch_op.drop_index("ix_oauth_token_client_active")

    op.drop_table("oauth_token")
    with op.batch_alter_table("oauth_authorization_code", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_oauth_authorization_code_user_id"))
        batch_op.drop_index(batch_op.f("ix_oauth_authorization_code_client_pk"))

    op.drop_table("oauth_authorization_code")
    with op.batch_alter_table("oauth_client", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_oauth_client_institution_id"))

    op.drop_table("oauth_client")
