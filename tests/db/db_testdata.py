"""Builders of store rows for the tests (not a test module)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from db import (
    AssetRow,
    HealthRow,
    MarketRow,
    PositionRow,
    PositionSide,
    PriceRow,
    SnapshotRow,
    Store,
    SyncBatch,
    SyncStatus,
    VenueKind,
    VenueRow,
    canonical_address,
)

CHAIN = 1
T0 = datetime(2025, 1, 1, tzinfo=UTC)
WAD = 10**18
WETH = AssetRow(CHAIN, "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2", "WETH", 18)
USDC = AssetRow(CHAIN, "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48", "USDC", 6)
VENUES = (
    VenueRow("aave_v3", VenueKind.LENDING, CHAIN, {"pool": "0x87870Bca3F3fD6335C3F4ce8392D69350B4fA4E2"}),
    VenueRow("uniswap_v3", VenueKind.LP, CHAIN),
)
TABLES = ("sync_runs", "position_snapshots", "positions", "prices", "health_results")


def wallet(i: int) -> str:
    """The i-th test wallet, checksummed."""
    return canonical_address(f"0x{0xBEEF0000 + i:040x}")


def block_time(block: int) -> datetime:
    return T0 + timedelta(seconds=12 * block)


def setup(store: Store, n_wallets: int) -> list[str]:
    """Register the venues and ``n_wallets`` wallets; returns their addresses."""
    store.upsert_venues(VENUES)
    wallets = [wallet(i) for i in range(n_wallets)]
    store.add_wallets([(w, f"w{i}") for i, w in enumerate(wallets)])
    return wallets


def snapshot(address: str, block: int, *, venue: str = "aave_v3", n_positions: int = 2) -> SnapshotRow:
    positions = []
    for j in range(n_positions):
        debt = j % 2 == 1
        asset = USDC if debt else WETH
        raw = (j + 1) * 10**asset.decimals + block
        positions.append(
            PositionRow(
                asset=asset,
                side=PositionSide.DEBT if debt else PositionSide.COLLATERAL,
                amount_raw=raw,
                amount=raw / 10**asset.decimals,
                price_usd=1.0 if debt else 3000.0,
                value_usd=raw / 10**asset.decimals * (1.0 if debt else 3000.0),
                is_collateral=not debt,
                market_key=asset.address,
                extra={"j": j},
            )
        )
    return SnapshotRow(
        wallet=address,
        venue=venue,
        chain_id=CHAIN,
        block_number=block,
        block_hash=f"0x{block:064x}",
        block_timestamp=block_time(block),
        taken_at=block_time(block) + timedelta(seconds=1),
        positions=tuple(positions),
        health=HealthRow(
            computed_at=block_time(block) + timedelta(seconds=2),
            collateral_usd=3000.0,
            debt_usd=1000.0 + block,
            health_factor=2.475,
            health_factor_raw=2_475_000_000_000_000_000 + block,
            onchain_health_factor_raw=2_475_000_000_000_000_000 + block,
            liquidation_threshold=0.825,
            matches_onchain=True,
        ),
    )


def prices(block: int) -> tuple[PriceRow, ...]:
    return (
        PriceRow(
            asset=WETH,
            block_number=block,
            source="aave_v3.oracle",
            source_address="0x54586bE62E3c3580375aE3723C145253060Ca0C2",
            price_raw=3000 * 10**8,
            decimals=8,
            price_usd=3000.0,
            observed_at=block_time(block),
            updated_at=block_time(block) - timedelta(seconds=30),
            age_s=30.0,
        ),
        PriceRow(
            asset=USDC,
            block_number=block,
            source="chainlink",
            price_raw=-1,
            decimals=8,
            price_usd=-1e-8,
            observed_at=block_time(block),
            flags=("negative",),
        ),
    )


def batch(wallets: Sequence[str], block: int, *, n_positions: int = 2, venue: str = "aave_v3") -> SyncBatch:
    return SyncBatch(
        chain_id=CHAIN,
        started_at=block_time(block),
        finished_at=block_time(block) + timedelta(seconds=3),
        status=SyncStatus.OK,
        block_number=block,
        block_hash=f"0x{block:064x}",
        block_timestamp=block_time(block),
        snapshots=tuple(snapshot(w, block, venue=venue, n_positions=n_positions) for w in wallets),
        prices=prices(block),
        markets=(
            MarketRow("aave_v3", WETH.address, "WETH", WETH, {"ltv_bps": 8050, "liquidation_threshold_bps": 8300}),
        ),
    )


def counts(store: Store) -> dict[str, int]:
    """Row count of each sync-related table."""
    with store.engine.connect() as conn:
        return {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES}
