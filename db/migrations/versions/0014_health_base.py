"""Health rows store their detail as the changes from their version's first.

- ``position_snapshots.health_base`` (JSON, nullable): the ``extra`` of the version's first health row. The
  version's health rows then hold in ``extra`` only what differs from it (``db.jsondelta``): a venue's detail is
  mostly the same at every block of a version (bench_block, 300 wallets: a lending market row's detail was
  1.5 kB, of which about 0.4 kB moves from block to block).

Existing versions keep ``NULL`` and their rows keep their detail whole; nothing is rewritten.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 13:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("position_snapshots") as batch:
        batch.add_column(sa.Column("health_base", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
                                   nullable=True))


def downgrade() -> None:
    """Rows written since store their detail as changes: write them whole again before the column goes."""
    bind = op.get_bind()
    snapshots = sa.table("position_snapshots", sa.column("id", sa.BigInteger()),
                         sa.column("health_base", sa.JSON()))
    health = sa.table("health_results", sa.column("id", sa.BigInteger()), sa.column("snapshot_id", sa.BigInteger()),
                      sa.column("extra", sa.JSON()))
    from db.jsondelta import apply

    after = 0
    while True:  # a thousand rows at a time, in id order: a large store is not read into memory at once
        rows = bind.execute(sa.select(health.c.id, health.c.extra, snapshots.c.health_base)
                            .join(snapshots, snapshots.c.id == health.c.snapshot_id)
                            .where(snapshots.c.health_base.is_not(None), health.c.id > after)
                            .order_by(health.c.id).limit(1_000)).all()
        if not rows:
            break
        after = rows[-1][0]
        whole = [{"_id": row_id, "_extra": apply(base, extra or {})} for row_id, extra, base in rows
                 if base is not None]  # JSON null: the version had no health when written, its rows are whole
        if whole:
            bind.execute(sa.update(health).where(health.c.id == sa.bindparam("_id"))
                         .values(extra=sa.bindparam("_extra", type_=sa.JSON())), whole)
    # Dropped in place (SQLite 3.35+ can): a batch rebuild of position_snapshots would drop the table, and with
    # foreign keys on, SQLite deletes its positions and health rows with it (ON DELETE CASCADE).
    with op.batch_alter_table("position_snapshots", recreate="never") as batch:
        batch.drop_column("health_base")
