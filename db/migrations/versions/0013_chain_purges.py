"""Chain identities count the purges of reorganised blocks.

- ``chains.purges`` (integer, not null, default 0): how many times blocks of this identity were purged as
  reorganised. A store that keeps the versions it wrote in memory (``db.Store.write_cache_size``) forgets them
  when the count moves, whichever process purged: a purge deletes health rows that are then written again at the
  same blocks, which nothing else would show it.

Existing identities start at 0.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 03:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("chains") as batch:
        batch.add_column(sa.Column("purges", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False,
                                   server_default=sa.text("0")))


def downgrade() -> None:
    with op.batch_alter_table("chains") as batch:
        batch.drop_column("purges")
