"""Keeper plans get a last-seen block and time and a count: a standing dry-run plan or refusal is stored once and
seen again block after block, instead of one row per block.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 18:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _int() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("keeper_plans") as batch:
        batch.add_column(sa.Column("last_seen_block", _int(), nullable=True))
        batch.add_column(sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("seen_count", _int(), server_default="1", nullable=False))
    op.execute("UPDATE keeper_plans SET last_seen_block = block_number, last_seen_at = created_at")


def downgrade() -> None:
    with op.batch_alter_table("keeper_plans") as batch:
        batch.drop_column("seen_count")
        batch.drop_column("last_seen_at")
        batch.drop_column("last_seen_block")
