"""Net worth over time (the wallet page's chart): per block, every venue's holdings less its debts — the adapter's
``net_worth_usd`` where it gives one, else collateral less debt; a failed read counts with the venue's last value;
served as ``net_worth`` beside the history's items."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from aggregator.api.app import create_app
from aggregator.api.history import net_worth_points, venue_net_worth_usd
from aggregator.api.server import ApiServer
from db import HealthPoint, HealthRow, SnapshotStatus, Store
from tests.db import db_testdata as td

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def point(venue: str, block: int, collateral: float | None, debt: float = 0.0,
          extra: dict[str, object] | None = None) -> HealthPoint:
    health = None if collateral is None else HealthRow(computed_at=T0, collateral_usd=collateral, debt_usd=debt,
                                                       extra=extra or {})
    return HealthPoint(venue=venue, block_number=block, block_timestamp=T0 + timedelta(seconds=12 * block),
                       snapshot_id=block, status=SnapshotStatus.OK if health else SnapshotStatus.ERROR,
                       error=None if health else "rpc down", health=health)


def test_a_venue_counts_its_own_net_worth_else_collateral_less_debt() -> None:
    # Aave: a supply not used as collateral is worth something though collateral_usd leaves it out.
    assert venue_net_worth_usd(point("aave_v3", 1, 1_000.0, 400.0, {"net_worth_usd": 1_500.0})) == 1_500.0
    assert venue_net_worth_usd(point("hyperliquid", 1, 2_000.0)) == 2_000.0  # a perp account's equity
    assert venue_net_worth_usd(point("morpho_blue", 1, 1_000.0, 1_200.0)) == -200.0  # underwater: negative
    assert venue_net_worth_usd(point("aave_v3", 1, 1_000.0, 0.0, {"net_worth_usd": float("nan")})) == 1_000.0
    assert venue_net_worth_usd(point("aave_v3", 1, None)) is None


def test_net_worth_sums_venues_per_block_oldest_first_and_carries_a_failed_read() -> None:
    points = [  # newest first, as the store returns them
        point("aave_v3", 3, 5_000.0, 2_000.0), point("hyperliquid", 3, None),
        point("aave_v3", 2, 4_000.0, 2_000.0), point("hyperliquid", 2, 900.0),
        point("aave_v3", 1, 4_500.0, 2_000.0),
    ]
    out = net_worth_points(points)
    assert [p["block"] for p in out] == [1, 2, 3]
    assert [p["net_worth_usd"] for p in out] == [2_500.0, 2_900.0, 3_900.0]  # block 3: hyperliquid's 900 carried
    assert out[0]["block_timestamp"] == (T0 + timedelta(seconds=12)).isoformat()
    assert net_worth_points([point("aave_v3", 7, None)]) == []  # nothing known yet: no point
    assert net_worth_points([]) == []


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    with Store.open(db_url) as s:
        yield s


def test_history_serves_net_worth_per_block_of_its_page(store: Store) -> None:
    wallets = td.setup(store, 1)
    for block in (100, 101, 102):
        batch = td.batch(wallets, block)
        snap = batch.snapshots[0]
        assert snap.health is not None
        health = dataclasses.replace(snap.health, extra={"net_worth_usd": 10_000.0 + block})
        store.write_sync(dataclasses.replace(batch, snapshots=(dataclasses.replace(snap, health=health),)))
    with ApiServer(create_app(store)) as server, httpx.Client(base_url=server.url, timeout=10) as client:
        body = client.get(f"/v1/wallets/{wallets[0]}/history").json()
        assert body["net_worth"] == [
            {"block": b, "block_timestamp": td.block_time(b).isoformat(), "net_worth_usd": 10_000.0 + b}
            for b in (100, 101, 102)]
        page = client.get(f"/v1/wallets/{wallets[0]}/history?limit=1").json()
        assert [p["block"] for p in page["net_worth"]] == [102]  # the page's blocks only
        schema = client.get("/openapi.json").json()["components"]["schemas"]
        assert "net_worth" in schema["HistoryOut"]["properties"]
