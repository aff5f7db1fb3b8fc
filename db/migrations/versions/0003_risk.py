"""The netting engine's results: one row per wallet and sync, with the full document as JSON.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "risk_results",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("sync_run_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("wallet_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("block_number", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("unified_health", sa.Double(), nullable=True),
        sa.Column("equity_usd", sa.Double(), nullable=False),
        sa.Column("margin_usd", sa.Double(), nullable=False),
        sa.Column("netting_benefit_usd", sa.Double(), nullable=False),
        sa.Column("document", _json(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_risk_results"),
        sa.ForeignKeyConstraint(["sync_run_id"], ["sync_runs.id"], name="fk_risk_results_sync_run_id_sync_runs",
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["wallet_id"], ["wallets.id"], name="fk_risk_results_wallet_id_wallets"),
    )
    op.create_index("ix_risk_results_wallet_id_block_number", "risk_results", ["wallet_id", "block_number"])


def downgrade() -> None:
    op.drop_index("ix_risk_results_wallet_id_block_number", table_name="risk_results")
    op.drop_table("risk_results")
