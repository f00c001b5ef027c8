"""templates: report templates and their parts, per-user stars and use counts, pinyin search keys, phrases
(issue 17; REQ: RPT-03, RPT-06, RPT-07, RPT-15, DICT-02; UX.md R5, R6)

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-13 09:00:00

`report_template_key` holds one row per syllable-boundary suffix of a template name's pinyin initials and full pinyin
(engine/templates/search.py), so a search is a B-tree range on its primary key on both databases.
"""

from __future__ import annotations

import sqlalchemy as sa

import engine.db
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "report_phrase",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("text", sa.String(length=500), nullable=False),
        sa.Column("pinyin", sa.String(length=128), server_default=sa.text("''"), nullable=False),
        sa.Column("shortcut", sa.Integer(), nullable=True),
        sa.Column("owner_id", sa.Integer(), nullable=True),
        sa.Column("institution_id", sa.Integer(), nullable=False),
        sa.Column("library_key", sa.String(length=64), nullable=True),
        sa.Column("created_at", engine.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", engine.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["institution_id"], ["institution.id"], name=op.f("fk_report_phrase_institution_id_institution")
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["user_account.id"], name=op.f("fk_report_phrase_owner_id_user_account"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_phrase")),
        sa.UniqueConstraint("library_key", name=op.f("uq_report_phrase_library_key")),
    )
    with op.batch_alter_table("report_phrase", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_report_phrase_owner_id"), ["owner_id"], unique=False)
        batch_op.create_index("ix_report_phrase_scope", ["scope", "institution_id"], unique=False)
        for name, column, scope in (
            ("uq_report_phrase_private_shortcut", "owner_id", "private"),
            ("uq_report_phrase_shared_shortcut", "institution_id", "shared"),
        ):
            where = sa.text(f"scope = '{scope}' AND shortcut IS NOT NULL")
            batch_op.create_index(name, [column, "shortcut"], unique=True, sqlite_where=where, postgresql_where=where)

    op.create_table(
        "report_template",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("name_pinyin", sa.String(length=64), server_default=sa.text("''"), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("modality", sa.String(length=8), nullable=False),
        sa.Column("body_part", sa.String(length=32), nullable=False),
        sa.Column("exam_method", sa.Text(), nullable=False),
        sa.Column("findings", sa.Text(), nullable=False),
        sa.Column("impression", sa.Text(), nullable=False),
        sa.Column("recommendation", sa.Text(), nullable=False),
        sa.Column("positive", sa.String(length=8), nullable=True),
        sa.Column("owner_id", sa.Integer(), nullable=True),
        sa.Column("institution_id", sa.Integer(), nullable=True),
        sa.Column("library_key", sa.String(length=64), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", engine.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", engine.db.UTCDateTime(), nullable=False),
        sa.Column("deleted_at", engine.db.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["institution_id"], ["institution.id"], name=op.f("fk_report_template_institution_id_institution")
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["user_account.id"], name=op.f("fk_report_template_owner_id_user_account")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_template")),
        sa.UniqueConstraint("library_key", name=op.f("uq_report_template_library_key")),
    )
    with op.batch_alter_table("report_template", schema=None) as batch_op:
        batch_op.create_index("ix_report_template_browse", ["modality", "body_part"], unique=False)
        batch_op.create_index(batch_op.f("ix_report_template_owner_id"), ["owner_id"], unique=False)
        batch_op.create_index("ix_report_template_scope", ["scope", "institution_id"], unique=False)

    op.create_table(
        "report_template_key",
        sa.Column(
            "key", sa.String(length=64).with_variant(sa.String(length=64, collation="C"), "postgresql"), nullable=False
        ),
        sa.Column("template_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["report_template.id"],
            name=op.f("fk_report_template_key_template_id_report_template"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("key", "template_id", name=op.f("pk_report_template_key")),
    )
    with op.batch_alter_table("report_template_key", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_report_template_key_template_id"), ["template_id"], unique=False)

    op.create_table(
        "report_template_part",
        sa.Column("combination_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("part_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["combination_id"],
            ["report_template.id"],
            name=op.f("fk_report_template_part_combination_id_report_template"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["part_id"], ["report_template.id"], name=op.f("fk_report_template_part_part_id_report_template")
        ),
        sa.PrimaryKeyConstraint("combination_id", "position", name=op.f("pk_report_template_part")),
    )
    with op.batch_alter_table("report_template_part", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_report_template_part_part_id"), ["part_id"], unique=False)

    op.create_table(
        "report_template_usage",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("template_id", sa.Integer(), nullable=False),
        sa.Column("favorite", sa.Boolean(), nullable=False),
        sa.Column("use_count", sa.Integer(), nullable=False),
        sa.Column("last_used_at", engine.db.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["report_template.id"],
            name=op.f("fk_report_template_usage_template_id_report_template"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_report_template_usage_user_id_user_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "template_id", name=op.f("pk_report_template_usage")),
    )
    with op.batch_alter_table("report_template_usage", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_report_template_usage_template_id"), ["template_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("report_template_usage", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_report_template_usage_template_id"))

    op.drop_table("report_template_usage")
    with op.batch_alter_table("report_template_part", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_report_template_part_part_id"))

    op.drop_table("report_template_part")
    with op.batch_alter_table("report_template_key", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_report_template_key_template_id"))

    op.drop_table("report_template_key")
    with op.batch_alter_table("report_template", schema=None) as batch_op:
        batch_op.drop_index("ix_report_template_scope")
        batch_op.drop_index(batch_op.f("ix_report_template_owner_id"))
        batch_op.drop_index("ix_report_template_browse")

    op.drop_table("report_template")
    with op.batch_alter_table("report_phrase", schema=None) as batch_op:
        batch_op.drop_index("uq_report_phrase_shared_shortcut")
        batch_op.drop_index("uq_report_phrase_private_shortcut")
        batch_op.drop_index("ix_report_phrase_scope")
        batch_op.drop_index(batch_op.f("ix_report_phrase_owner_id"))

    op.drop_table("report_phrase")
