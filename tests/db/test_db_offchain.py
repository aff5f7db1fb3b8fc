"""Off-chain venues in the store: perp instruments as ``venue:SYMBOL`` assets, the venue's own timestamp,
venue-specific health figures — on both backends."""

from __future__ import annotations

from datetime import timedelta

from db import (
    AssetRow,
    HealthRow,
    PositionRow,
    PositionSide,
    SnapshotRow,
    Store,
    SyncBatch,
    SyncStatus,
    VenueKind,
    VenueRow,
)
from db.rows import OFFCHAIN_CHAIN_ID
from tests.db.db_testdata import CHAIN, T0, block_time, wallet


def test_perp_snapshot_round_trips_with_venue_time_and_extra_figures(store: Store) -> None:
    store.upsert_venues([VenueRow("hyperliquid", VenueKind.PERP, None, {"base_url": "http://127.0.0.1:1"})])
    w = wallet(7)
    store.add_wallets([(w, "hedged")])
    eth_perp = AssetRow(OFFCHAIN_CHAIN_ID, "hyperliquid:ETH", "ETH", 0)
    venue_time = T0 + timedelta(seconds=3, milliseconds=250)
    position = PositionRow(
        asset=eth_perp, side=PositionSide.PERP, amount_raw=0, amount=-15.5, price_usd=3_900.0,
        value_usd=-60_450.0, extra={"entry_px": "4000.0", "liquidation_px": "4550.1", "size": "-15.5"},
    )
    health = HealthRow(
        computed_at=T0, collateral_usd=0.0, debt_usd=0.0, health_factor=3.2,
        extra={"equity_usd": 9_000.0, "maintenance_margin_usd": 2_812.5, "liquidation_price": 4_550.1},
    )
    snap = SnapshotRow(
        wallet=w, venue="hyperliquid", chain_id=CHAIN, block_number=10, block_hash="0x" + "ab" * 32,
        block_timestamp=block_time(10), taken_at=T0, venue_timestamp=venue_time,
        positions=(position,), health=health,
    )
    store.write_sync(SyncBatch(chain_id=CHAIN, started_at=T0, status=SyncStatus.OK, block_number=10,
                               block_hash="0x" + "ab" * 32, block_timestamp=block_time(10), snapshots=(snap,)))
    (latest,) = store.latest_health(w)
    assert latest.snapshot.venue_timestamp == venue_time
    assert latest.snapshot.positions == (position,)
    assert latest.snapshot.health is not None
    assert latest.snapshot.health.extra == health.extra
    assert [v.name for v in store.list_venues()] == ["hyperliquid"]
    assert store.list_venues()[0].kind is VenueKind.PERP
