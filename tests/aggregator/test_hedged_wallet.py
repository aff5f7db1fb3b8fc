"""The demo's main character: one wallet across Aave, Morpho, a Uniswap range and two perp venues, read in
one sync — every on-chain venue at the same block through shared Multicall3 batches, the perp venues over
their real HTTP clients from the devnet's local API, stamped with their own time."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

import devnet
from aggregator.devnet_cli import devnet_settings
from aggregator.pipeline import sync_once
from aggregator.render import health_document
from db.store import Store

pytestmark = pytest.mark.chain

HEDGED = devnet.wallet_address("hedged")


@pytest.fixture
def chain(seeded_devnet: devnet.DevnetInfo) -> Iterator[devnet.DevnetInfo]:
    snap = devnet.snapshot(seeded_devnet)
    yield seeded_devnet
    devnet.revert(seeded_devnet, snap)
    devnet.set_price(seeded_devnet, "WETH", 4_000)  # the perp API's mark is not on the chain: put it back too


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(f"sqlite:///{tmp_path / 'x.db'}") as s:
        s.add_wallets([(HEDGED, "hedged")])
        yield s


def _doc(store: Store) -> dict[str, dict[str, object]]:
    kinds = {v.name: str(v.kind) for v in store.list_venues()}
    doc = health_document(HEDGED, store.latest_health(HEDGED), kinds)
    json.dumps(doc)  # the document is plain JSON
    return {v["venue"]: v for v in doc["venues"]}


def test_one_sync_sees_the_hedged_wallet_on_every_venue_at_one_block(chain: devnet.DevnetInfo, store: Store) -> None:
    report = sync_once(devnet_settings(chain), store)
    assert report.ok, [b.error for b in report.batches]
    venues = _doc(store)
    assert set(venues) == {"aave_v3", "morpho_blue", "uniswap_v3", "hyperliquid", "dydx_v4"}
    assert {v["kind"] for v in venues.values()} == {"lending", "lp", "perp"}
    assert len({v["block"] for v in venues.values()}) == 1  # one pinned block for all

    aave, morpho, lp = venues["aave_v3"], venues["morpho_blue"], venues["uniswap_v3"]
    assert aave["matches_onchain"] is True
    assert 1.5 < float(aave["health_factor"]) < 1.8  # type: ignore[arg-type]
    # The devnet's helper reads the stored totals; ours accrues interest to the block, as Morpho's own
    # health check does (exactness against liquidate/borrow is tests/test_morpho_truth.py's job).
    stored = devnet.morpho.health_factor_wad(chain, "WETH_USDC", HEDGED)
    ours = int(str(morpho["health_factor_raw"]))
    assert stored * (1 - 1e-6) < ours <= stored
    assert lp["health_factor"] is None
    assert {p["asset"] for p in lp["positions"]} == {"WETH", "USDC"}  # type: ignore[union-attr]
    assert float(lp["collateral_usd"]) > 30_000  # type: ignore[arg-type]

    for name, size in (("hyperliquid", -15.0), ("dydx_v4", -10.0)):
        perp = venues[name]
        (position,) = perp["positions"]  # type: ignore[misc]
        assert position["side"] == "perp"
        assert position["amount"] == size
        assert perp["matches_onchain"] is True  # our margin math agrees with the venue's own figures
        assert float(perp["equity_usd"]) > float(perp["maintenance_margin_usd"]) > 0  # type: ignore[arg-type]
        assert perp["venue_timestamp"] is not None
        (liq,) = perp["liquidation_price"].values()  # type: ignore[union-attr]
        assert liq > 4_000  # a short is liquidated when ETH rises


def test_a_price_move_reaches_every_venue_consistently(chain: devnet.DevnetInfo, store: Store) -> None:
    settings = devnet_settings(chain)
    sync_once(settings, store)
    before = _doc(store)
    devnet.set_price(chain, "WETH", 3_400)
    sync_once(settings, store)
    after = _doc(store)
    # Lending venues lose health, the short perps gain equity: the hedge is visible across venues.
    for lending in ("aave_v3", "morpho_blue"):
        assert float(after[lending]["health_factor"]) < float(before[lending]["health_factor"])  # type: ignore[arg-type]
    for perp in ("hyperliquid", "dydx_v4"):
        assert float(after[perp]["equity_usd"]) > float(before[perp]["equity_usd"])  # type: ignore[arg-type]
        assert after[perp]["matches_onchain"] is True
    weth = next(p for p in after["aave_v3"]["positions"] if p["asset"] == "WETH")  # type: ignore[union-attr]
    assert weth["price_usd"] == 3_400.0
    perp_mark = after["hyperliquid"]["positions"][0]["price_usd"]  # type: ignore[index]
    assert perp_mark == pytest.approx(3_400.0, rel=1e-9)
    lp_weth = next(p for p in after["uniswap_v3"]["positions"] if p["asset"] == "WETH")  # type: ignore[union-attr]
    lp_before = next(p for p in before["uniswap_v3"]["positions"] if p["asset"] == "WETH")  # type: ignore[union-attr]
    assert lp_weth["amount"] > lp_before["amount"]  # the range buys WETH as its price falls
