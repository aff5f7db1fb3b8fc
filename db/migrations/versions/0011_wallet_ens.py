"""Wallets keep the ENS name they were added by (``wallets.ens_name``, null for a wallet added by address).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 01:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("wallets") as batch:
        batch.add_column(sa.Column("ens_name", sa.String(255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("wallets") as batch:
        batch.drop_column("ens_name")
