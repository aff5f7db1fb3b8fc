"""Initial schema: wallets, venues, assets, markets, sync runs, snapshots, positions, prices, health.

Hand-written to match ``db.models`` as of this revision; ``tests/db/test_migrations.py`` compares the migrated
database with the models. The column types are spelled out here rather than imported from ``db.models`` so
that this revision keeps its meaning when the models move on:

* ids: BIGINT (BIGSERIAL) on PostgreSQL, INTEGER on SQLite (the rowid alias, so it autoincrements);
* raw on-chain integers: NUMERIC(78, 0) on PostgreSQL, decimal TEXT on SQLite (``db.models.UInt256``);
* JSON: JSONB on PostgreSQL, JSON (text) on SQLite;
* timestamps: TIMESTAMP WITH TIME ZONE (UTC).

Constraint names are the ones ``db.models``' naming convention produces; CHECK names go through ``op.f()``
because that convention derives them from the given name (it would prefix them a second time).

Revision ID: 0001
Revises:
Create Date: 2025-01-01 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _id() -> sa.Column[int]:
    return sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True)


def _bigint() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _raw() -> sa.types.TypeEngine[Any]:
    return sa.Numeric(78, 0).with_variant(sa.Text(), "sqlite")


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "wallets",
        _id(),
        sa.Column("address", sa.String(42), nullable=False),
        sa.Column("label", sa.Text(), nullable=True),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_wallets"),
        sa.UniqueConstraint("address", name="uq_wallets_address"),
    )
    op.create_table(
        "venues",
        _id(),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("chain_id", _bigint(), nullable=True),
        sa.Column("config", _json(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_venues"),
        sa.UniqueConstraint("name", name="uq_venues_name"),
        sa.CheckConstraint("kind IN ('lending', 'lp', 'perp')", name=op.f("ck_venues_kind")),
    )
    op.create_table(
        "assets",
        _id(),
        sa.Column("chain_id", _bigint(), nullable=False),
        sa.Column("address", sa.String(42), nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("decimals", sa.SmallInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_assets"),
        sa.UniqueConstraint("chain_id", "address", name="uq_assets_chain_id_address"),
    )
    op.create_table(
        "markets",
        _id(),
        sa.Column(
            "venue_id",
            _bigint(),
            sa.ForeignKey("venues.id", name="fk_markets_venue_id_venues"),
            nullable=False,
        ),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column(
            "asset_id",
            _bigint(),
            sa.ForeignKey("assets.id", name="fk_markets_asset_id_assets"),
            nullable=True,
        ),
        sa.Column("params", _json(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_markets"),
        sa.UniqueConstraint("venue_id", "key", name="uq_markets_venue_id_key"),
    )
    op.create_table(
        "sync_runs",
        _id(),
        sa.Column("started_at", _ts(), nullable=False),
        sa.Column("finished_at", _ts(), nullable=True),
        sa.Column("chain_id", _bigint(), nullable=False),
        sa.Column("block_number", _bigint(), nullable=True),
        sa.Column("block_hash", sa.String(66), nullable=True),
        sa.Column("block_timestamp", _ts(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("wallets", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_sync_runs"),
        sa.CheckConstraint("status IN ('ok', 'partial', 'failed')", name=op.f("ck_sync_runs_status")),
    )
    op.create_index("ix_sync_runs_chain_id_block_number", "sync_runs", ["chain_id", "block_number"])

    op.create_table(
        "position_snapshots",
        _id(),
        sa.Column(
            "sync_run_id",
            _bigint(),
            sa.ForeignKey("sync_runs.id", name="fk_position_snapshots_sync_run_id_sync_runs", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "wallet_id",
            _bigint(),
            sa.ForeignKey("wallets.id", name="fk_position_snapshots_wallet_id_wallets"),
            nullable=False,
        ),
        sa.Column(
            "venue_id",
            _bigint(),
            sa.ForeignKey("venues.id", name="fk_position_snapshots_venue_id_venues"),
            nullable=False,
        ),
        sa.Column("chain_id", _bigint(), nullable=False),
        sa.Column("block_number", _bigint(), nullable=False),
        sa.Column("block_hash", sa.String(66), nullable=False),
        sa.Column("block_timestamp", _ts(), nullable=False),
        sa.Column("taken_at", _ts(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_position_snapshots"),
        sa.UniqueConstraint(
            "wallet_id",
            "venue_id",
            "block_number",
            name="uq_position_snapshots_wallet_id_venue_id_block_number",
        ),
        sa.CheckConstraint("status IN ('ok', 'error')", name=op.f("ck_position_snapshots_status")),
    )
    op.create_index("ix_position_snapshots_wallet_id_block_number", "position_snapshots", ["wallet_id", "block_number"])
    op.create_index("ix_position_snapshots_sync_run_id", "position_snapshots", ["sync_run_id"])
    op.create_index("ix_position_snapshots_venue_id", "position_snapshots", ["venue_id"])

    op.create_table(
        "positions",
        _id(),
        sa.Column(
            "snapshot_id",
            _bigint(),
            sa.ForeignKey(
                "position_snapshots.id",
                name="fk_positions_snapshot_id_position_snapshots",
                ondelete="CASCADE",
            ),
            nullable=False,
        ),
        sa.Column(
            "market_id",
            _bigint(),
            sa.ForeignKey("markets.id", name="fk_positions_market_id_markets"),
            nullable=True,
        ),
        sa.Column(
            "asset_id",
            _bigint(),
            sa.ForeignKey("assets.id", name="fk_positions_asset_id_assets"),
            nullable=False,
        ),
        sa.Column("side", sa.String(16), nullable=False),
        sa.Column("amount_raw", _raw(), nullable=False),
        sa.Column("amount", sa.Double(), nullable=False),
        sa.Column("price_usd", sa.Double(), nullable=True),
        sa.Column("value_usd", sa.Double(), nullable=True),
        sa.Column("is_collateral", sa.Boolean(), nullable=False),
        sa.Column("extra", _json(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_positions"),
        sa.CheckConstraint("side IN ('collateral', 'debt', 'supply', 'lp', 'perp')", name=op.f("ck_positions_side")),
    )
    op.create_index("ix_positions_snapshot_id", "positions", ["snapshot_id"])

    op.create_table(
        "prices",
        _id(),
        sa.Column(
            "sync_run_id",
            _bigint(),
            sa.ForeignKey("sync_runs.id", name="fk_prices_sync_run_id_sync_runs", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "asset_id",
            _bigint(),
            sa.ForeignKey("assets.id", name="fk_prices_asset_id_assets"),
            nullable=False,
        ),
        sa.Column("chain_id", _bigint(), nullable=False),
        sa.Column("block_number", _bigint(), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("source_address", sa.String(42), nullable=True),
        sa.Column("price_raw", _raw(), nullable=False),
        sa.Column("decimals", sa.SmallInteger(), nullable=False),
        sa.Column("price_usd", sa.Double(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=True),
        sa.Column("age_s", sa.Double(), nullable=True),
        sa.Column("flags", _json(), nullable=False),
        sa.Column("observed_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_prices"),
    )
    op.create_index("ix_prices_sync_run_id", "prices", ["sync_run_id"])
    op.create_index("ix_prices_asset_id_block_number", "prices", ["asset_id", "block_number"])

    op.create_table(
        "health_results",
        _id(),
        sa.Column(
            "snapshot_id",
            _bigint(),
            sa.ForeignKey(
                "position_snapshots.id",
                name="fk_health_results_snapshot_id_position_snapshots",
                ondelete="CASCADE",
            ),
            nullable=False,
        ),
        sa.Column(
            "wallet_id",
            _bigint(),
            sa.ForeignKey("wallets.id", name="fk_health_results_wallet_id_wallets"),
            nullable=False,
        ),
        sa.Column(
            "venue_id",
            _bigint(),
            sa.ForeignKey("venues.id", name="fk_health_results_venue_id_venues"),
            nullable=False,
        ),
        sa.Column("block_number", _bigint(), nullable=False),
        sa.Column("computed_at", _ts(), nullable=False),
        sa.Column("health_factor", sa.Double(), nullable=True),
        sa.Column("health_factor_raw", _raw(), nullable=True),
        sa.Column("onchain_health_factor_raw", _raw(), nullable=True),
        sa.Column("collateral_usd", sa.Double(), nullable=False),
        sa.Column("debt_usd", sa.Double(), nullable=False),
        sa.Column("liquidation_threshold", sa.Double(), nullable=True),
        sa.Column("matches_onchain", sa.Boolean(), nullable=True),
        sa.Column("flags", _json(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_health_results"),
        sa.UniqueConstraint("snapshot_id", name="uq_health_results_snapshot_id"),
    )
    op.create_index(
        "ix_health_results_wallet_id_venue_id_block_number",
        "health_results",
        ["wallet_id", "venue_id", "block_number"],
    )


def downgrade() -> None:
    for table in (
        "health_results",
        "prices",
        "positions",
        "position_snapshots",
        "sync_runs",
        "markets",
        "assets",
        "venues",
        "wallets",
    ):
        op.drop_table(table)
