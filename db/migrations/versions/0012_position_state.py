"""Positions keep the venue's account state; the health series carries the positions' values at its blocks.

- ``positions.state`` (text, nullable): the wallet's own state behind a position as its venue declares it (scaled
  balance, shares, liquidity and range, perp size). A version holds while the states hold; interest and prices no
  longer start a new version.
- ``health_results.position_values`` (JSON, nullable): the version's positions valued at the row's block where they
  differ from the version's own values.

Existing rows need nothing: ``NULL`` state compares as today (raw amounts and values), ``NULL`` values mean the
version's own.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 03:15:00
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("positions") as batch:
        batch.add_column(sa.Column("state", sa.Text(), nullable=True))
    with op.batch_alter_table("health_results") as batch:
        batch.add_column(sa.Column("position_values", _json(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("health_results") as batch:
        batch.drop_column("position_values")
    with op.batch_alter_table("positions") as batch:
        batch.drop_column("state")
