"""pinyin initials next to patients', users' and institutions' names, indexed, backfilled (issue 14)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 09:30:00
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op
from engine.pinyin import initials

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

# table, name column, length of both columns
NAMES = (("patient", "name", 64), ("user_account", "full_name", 64), ("institution", "name", 128))
BATCH = 2000


def upgrade() -> None:
    conn = op.get_bind()
    for table, name_col, length in NAMES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column("name_pinyin", sa.String(length=length), server_default=sa.text("''"), nullable=False)
            )
        # Existing rows: the same function the models' listener applies, in batches by primary key.
        t = sa.table(table, sa.column("id", sa.Integer), sa.column(name_col, sa.String), sa.column("name_pinyin"))
        last = 0
        while True:
            rows = conn.execute(
                sa.select(t.c.id, t.c[name_col]).where(t.c.id > last).order_by(t.c.id).limit(BATCH)
            ).all()
            if not rows:
                break
            conn.execute(
                sa.update(t).where(t.c.id == sa.bindparam("row_id")).values(name_pinyin=sa.bindparam("key")),
                [{"row_id": r[0], "key": initials(r[1], length)} for r in rows],
            )
            last = rows[-1][0]
        op.create_index(f"ix_{table}_name_pinyin", table, ["name_pinyin"])


def downgrade() -> None:
    for table, _name_col, _length in NAMES:
        op.drop_index(f"ix_{table}_name_pinyin", table_name=table)
        with op.batch_alter_table(table) as batch:
            batch.drop_column("name_pinyin")
