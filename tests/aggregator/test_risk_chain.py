"""The netting engine on the devnet's hedged wallet: the unified view computed from the store, and the venues
themselves agreeing with it when the price is moved there."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

import devnet
from aggregator.cli import app
from aggregator.devnet_cli import devnet_settings
from aggregator.pipeline import sync_once
from db.store import Store

pytestmark = pytest.mark.chain

HEDGED = devnet.wallet_address("hedged")


@pytest.fixture
def env(
    seeded_devnet: devnet.DevnetInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[devnet.DevnetInfo]:
    monkeypatch.setenv("XMARGIN_DB_URL", f"sqlite:///{tmp_path / 'x.db'}")
    monkeypatch.delenv("XMARGIN_CONFIG", raising=False)
    snap = devnet.snapshot(seeded_devnet)
    with Store.open() as store:
        store.add_wallets([(HEDGED, "hedged")])
    yield seeded_devnet
    devnet.revert(seeded_devnet, snap)
    devnet.set_price(seeded_devnet, "WETH", 4_000)


def _sync(info: devnet.DevnetInfo) -> None:
    with Store.open() as store:
        assert sync_once(devnet_settings(info), store).ok


def _risk() -> dict[str, Any]:
    result = CliRunner().invoke(app, ["risk", HEDGED, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def test_the_hedged_wallet_nets_across_venues(env: devnet.DevnetInfo) -> None:
    _sync(env)
    doc = _risk()
    assert doc["block"] is not None
    assert set(doc["venue_margins_usd"]) == {"aave_v3", "morpho_blue", "uniswap_v3", "hyperliquid", "dydx_v4"}
    # ETH: long on Aave, Morpho and the range, short on both perps; the net is much smaller than the gross.
    gross_long = 20 * 4_000 + 10 * 4_000
    assert abs(doc["net_exposure_usd"]["ETH"]) < gross_long
    assert doc["netting_benefit_usd"] > 0
    assert doc["portfolio_margin_usd"] < doc["sum_of_venue_margins_usd"]
    assert doc["unified_health"] is not None
    assert doc["unified_health"] > 1
    assert doc["scenario_count"] >= 16
    assert doc["var_es"]["1d"]["0.99"]["es_usd"] >= doc["var_es"]["1d"]["0.99"]["var_usd"] > 0
    assert doc["var_es"]["7d"]["0.99"]["var_usd"] > doc["var_es"]["1d"]["0.99"]["var_usd"]
    assert doc["first_liquidation"]["down"]["venue"] in ("aave_v3", "morpho_blue")
    assert doc["first_liquidation"]["up"]["venue"] in ("hyperliquid", "dydx_v4")


def test_the_venues_agree_with_the_computed_aave_liquidation_price(env: devnet.DevnetInfo) -> None:
    _sync(env)
    doc = _risk()
    (aave_eth,) = [p for p in doc["liquidation_prices"] if p["venue"] == "aave_v3" and p["asset"] == "ETH"]
    price = aave_eth["price_usd"]
    assert aave_eth["side"] == "below"
    assert 1_000 < price < 4_000
    devnet.set_price(env, "WETH", round(price * 1.002, 2))  # just above: Aave still healthy
    assert devnet.account_data(env, HEDGED).health_factor_wad > 10**18
    devnet.set_price(env, "WETH", round(price * 0.998, 2))  # just below: Aave itself says liquidatable
    assert devnet.account_data(env, HEDGED).health_factor_wad < 10**18


def test_the_perp_liquidation_price_matches_the_venues_own(env: devnet.DevnetInfo) -> None:
    _sync(env)
    doc = _risk()
    (ours,) = [p for p in doc["liquidation_prices"] if p["venue"] == "hyperliquid"]
    with Store.open() as store:
        (hl,) = [v for v in store.latest_health(HEDGED) if v.venue == "hyperliquid"]
    (position,) = hl.snapshot.positions
    venue_px = float(str(position.extra["venue_liquidation_px"]))
    assert ours["side"] == "above"
    assert ours["price_usd"] == pytest.approx(venue_px, rel=2e-3)


def test_stress_replays_a_real_crash_on_the_book(env: devnet.DevnetInfo) -> None:
    _sync(env)
    result = CliRunner().invoke(app, ["stress", HEDGED, "--replay", "2020-03-05:2020-03-20", "--json"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["start"] == "2020-03-05"
    assert doc["steps"] >= 10
    assert len(doc["equity_path_usd"]) == doc["steps"]
    # Black Thursday: ETH lost ~half; the book's lending legs are liquidated, in date order.
    assert doc["events"]
    assert [e["step"] for e in doc["events"]] == sorted(e["step"] for e in doc["events"])
    assert doc["liquidation_loss_usd"] > 0
    bad = CliRunner().invoke(app, ["stress", HEDGED, "--replay", "2020-13-01"])
    assert bad.exit_code == 2
    # A calm week liquidates nothing: said in words, with the lowest venue health met on the way.
    calm = CliRunner().invoke(app, ["stress", HEDGED, "--replay", "2023-07-03:2023-07-07"], catch_exceptions=False)
    assert calm.exit_code == 0, calm.stderr
    assert re.search(r"no venue liquidated; lowest health on the path: \w+ \d+\.\d\d at 2023-07-0\d",
                     " ".join(calm.stdout.split())), calm.stdout


def test_each_sync_stores_the_netting_engines_result(env: devnet.DevnetInfo) -> None:
    _sync(env)
    with Store.open() as store:
        first = store.latest_risk(HEDGED)
        assert first is not None
        devnet.set_price(env, "WETH", 3_600)
        assert sync_once(devnet_settings(env), store).ok
        second = store.latest_risk(HEDGED)
    assert second is not None
    assert second.block_number > first.block_number
    assert second.document["wallet"] == HEDGED
    assert second.equity_usd != first.equity_usd
    assert second.unified_health == second.document["unified_health"]
    assert set(second.document["venue_margins_usd"]) >= {"aave_v3", "hyperliquid"}


def test_historical_moves_and_historical_var_are_part_of_the_view(env: devnet.DevnetInfo) -> None:
    _sync(env)
    doc = _risk()
    # SPAN (16 per factor + joint) + correlation breakdown + every 1-day joint move of the history.
    assert doc["scenario_count"] > 1_000
    day = doc["var_es"]["1d"]["0.99"]
    assert day["historical_es_usd"] >= day["historical_var_usd"] > 0
    assert doc["var_es"]["1h"]["0.99"]["historical_var_usd"] < day["historical_var_usd"]
    # Monte Carlo from the same EWMA covariance lands near the delta-normal figure (10,000 draws).
    assert day["monte_carlo_var_usd"] == pytest.approx(day["var_usd"], rel=0.05)
    assert day["monte_carlo_es_usd"] >= day["monte_carlo_var_usd"]


def test_every_venues_eth_nets_into_one_factor(env: devnet.DevnetInfo) -> None:
    """WETH on Aave, Morpho and Uniswap, ETH on Hyperliquid and ETH-USD on dYdX are one risk factor."""
    _sync(env)
    doc = _risk()
    assert set(doc["net_exposure_usd"]) == {"ETH", "USDC"}
    with Store.open() as store:
        latest = store.latest_health(HEDGED)
    long_eth = sum(p.value_usd or 0.0 for v in latest for p in v.snapshot.positions
                   if p.asset.symbol == "WETH" and str(p.side) in ("collateral", "lp"))
    short_eth = sum(p.value_usd or 0.0 for v in latest for p in v.snapshot.positions if str(p.side) == "perp")
    assert doc["net_exposure_usd"]["ETH"] == pytest.approx(long_eth + short_eth, rel=1e-9)


def test_a_cascade_the_engine_predicts_is_what_the_venues_do(env: devnet.DevnetInfo) -> None:
    """ETH spikes (the short perps are liquidated: the hedge is gone), then crashes (Aave and Morpho follow).
    The engine's cascade on the stored book names the venues in that order; moving the devnet along the same
    path, each venue's own figures flip at those steps."""
    from aggregator.risk import wallet_book
    from riskcore.cascade import replay

    _sync(env)
    with Store.open() as store:
        latest = store.latest_health(HEDGED)
        types = {v.name: str(v.config.get("type", "")) for v in store.list_venues()}
    inputs = wallet_book(HEDGED, latest, types)
    eth = inputs.book.underlyings.index("ETH")
    path_eth = [4_000.0, 6_000.0, 2_200.0]
    path = np.tile(inputs.book.price_usd, (len(path_eth), 1))
    path[:, eth] = path_eth
    result = replay(inputs.book, path)
    steps = {e.venue: e.step for e in result.events}
    assert steps["hyperliquid"] == 1
    assert steps["dydx_v4"] == 1
    assert steps["aave_v3"] == 2
    assert steps["morpho_blue"] == 2
    assert result.equity_usd[-1, 0] < result.equity_usd[0, 0]

    settings = devnet_settings(env)
    with Store.open() as store:
        devnet.set_price(env, "WETH", 6_000)
        assert sync_once(settings, store).ok
        venues = {v.venue: v.snapshot.health for v in store.latest_health(HEDGED)}
        assert venues["hyperliquid"] is not None
        assert venues["dydx_v4"] is not None
        assert "liquidatable" in venues["hyperliquid"].flags
        assert "liquidatable" in venues["dydx_v4"].flags
        assert devnet.account_data(env, HEDGED).health_factor_wad > 10**18  # the lending legs are fine
        devnet.set_price(env, "WETH", 2_200)
    assert devnet.account_data(env, HEDGED).health_factor_wad < 10**18  # Aave's own verdict
    assert devnet.morpho.health_factor_wad(env, "WETH_USDC", HEDGED) < 10**18  # Morpho's
