"""Several venue kinds: off-chain venues' own timestamps, venue-specific health figures.

* ``position_snapshots.venue_timestamp``: the venue's own time of the data (perp exchanges' APIs).
* ``health_results.extra``: figures that only some venues have (perps: equity, maintenance margin,
  liquidation prices; LPs: delta and gamma), as JSON.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("position_snapshots") as batch:
        batch.add_column(sa.Column("venue_timestamp", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("health_results") as batch:
        batch.add_column(sa.Column("extra", _json(), nullable=False, server_default=sa.text("'{}'")))


def downgrade() -> None:
    with op.batch_alter_table("health_results") as batch:
        batch.drop_column("extra")
    with op.batch_alter_table("position_snapshots") as batch:
        batch.drop_column("venue_timestamp")
