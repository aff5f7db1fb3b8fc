"""Per (chain identity, venue), the newest block a good sync went through every tracked wallet.

- ``venue_confirmations`` (chain_ref_id, venue_id primary key; block number, hash and timestamp, when confirmed): a
  block-driven sync writes only the wallets that moved and confirms the venue's block here, so a wallet that did not
  move is served as of that block without a row of its own. Empty at first: versions are served as of their newest
  block read, as before.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 13:45:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | Sequence[str] | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _bigint() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "venue_confirmations",
        sa.Column("chain_ref_id", _bigint(), nullable=False),
        sa.Column("venue_id", _bigint(), nullable=False),
        sa.Column("block_number", _bigint(), nullable=False),
        sa.Column("block_hash", sa.String(66), nullable=False),
        sa.Column("block_timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["chain_ref_id"], ["chains.id"], name="fk_venue_confirmations_chain_ref_id_chains",
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["venue_id"], ["venues.id"], name="fk_venue_confirmations_venue_id_venues",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("chain_ref_id", "venue_id", name="pk_venue_confirmations"),
    )


def downgrade() -> None:
    op.drop_table("venue_confirmations")
