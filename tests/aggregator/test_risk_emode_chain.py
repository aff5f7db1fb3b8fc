"""The devnet's seeded e-mode wallet (10,000 USDC in Aave's stablecoin e-mode against 9,000 DAI, HF 1.094): after
a sync, its stored risk has a finite unified health and a first liquidation on USDC at the price where Aave itself
liquidates it — checked by moving the USDC oracle just above and just below that price (issue 12, defect 2)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import devnet
from aggregator.cli import app
from aggregator.devnet_cli import devnet_settings
from aggregator.pipeline import sync_once
from db.store import Store

pytestmark = pytest.mark.chain

EMODE = devnet.wallet_address("emode")


@pytest.fixture
def env(
    seeded_devnet: devnet.DevnetInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[devnet.DevnetInfo]:
    monkeypatch.setenv("XMARGIN_DB_URL", f"sqlite:///{tmp_path / 'x.db'}")
    monkeypatch.delenv("XMARGIN_CONFIG", raising=False)
    snap = devnet.snapshot(seeded_devnet)
    with Store.open() as store:
        store.add_wallets([(EMODE, "emode")])
    yield seeded_devnet
    devnet.revert(seeded_devnet, snap)


def _stored_risk(info: devnet.DevnetInfo) -> dict[str, Any]:
    with Store.open() as store:
        report = sync_once(devnet_settings(info), store)
        assert report.ok, [b.error for b in report.batches]
        risk = store.latest_risk(EMODE)
    assert risk is not None
    assert risk.unified_health == risk.document["unified_health"]
    return dict(risk.document)


def test_the_emode_wallets_stored_risk_names_usdc_at_aaves_own_liquidation_price(env: devnet.DevnetInfo) -> None:
    assert devnet.user_emode(env, EMODE) == 1
    assert int(devnet.emode_category(env, 1).price_source, 16) == 0  # the reserves' own oracles price it
    doc = _stored_risk(env)
    uh = doc["unified_health"]
    assert uh is not None
    assert math.isfinite(uh)
    assert 0 < uh < 1  # USDC's real depeg (0.877) goes past the liquidation: the headline says so
    assert doc["portfolio_margin_usd"] > 0
    nearest = doc["first_liquidation"]["nearest"]
    assert nearest["venue"] == "aave_v3"
    assert nearest["asset"] == "USDC"
    assert nearest["direction"] == "falls"
    usdc_now = float(devnet.latest_round(env, "USDC").price_usd)
    assert nearest["current_price_usd"] == pytest.approx(usdc_now, rel=1e-9)
    # Aave's own account data: liquidated when collateral × LT falls to the debt, i.e. USDC at debt / (coll × LT).
    acct = devnet.account_data(env, EMODE)
    aave_liq = usdc_now * acct.total_debt_base / (acct.total_collateral_base
                                                  * acct.current_liquidation_threshold_bps / 10_000)
    assert nearest["price_usd"] == pytest.approx(aave_liq, rel=1e-4)  # a few blocks of interest apart
    assert nearest["move"] == pytest.approx(nearest["price_usd"] / usdc_now - 1.0, rel=1e-9)
    assert -0.09 < nearest["move"] < -0.08  # "liquidated if USDC falls ~8.6 %"
    assert doc["peg_basis_moves"]["USDC/USD"]["down"] > -nearest["move"]
    assert doc["worst_scenario_label"].startswith("USDC at $0.877")

    price = nearest["price_usd"]
    devnet.set_price(env, "USDC", round(price * 1.002, 8))  # just above: Aave still healthy
    assert devnet.account_data(env, EMODE).health_factor_wad > 10**18
    devnet.set_price(env, "USDC", round(price * 0.998, 8))  # just below: Aave itself says liquidatable
    assert devnet.account_data(env, EMODE).health_factor_wad < 10**18


def test_xmargin_risk_on_the_emode_wallet_answers_instead_of_a_traceback(env: devnet.DevnetInfo) -> None:
    stored = _stored_risk(env)
    runner = CliRunner()
    result = runner.invoke(app, ["risk", EMODE, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["unified_health"] == pytest.approx(stored["unified_health"], rel=1e-6)
    assert doc["first_liquidation"]["nearest"]["asset"] == "USDC"
    assert doc["first_liquidation"]["nearest"]["price_usd"] == pytest.approx(
        stored["first_liquidation"]["nearest"]["price_usd"], rel=1e-4)
    human = runner.invoke(app, ["risk", EMODE], catch_exceptions=False)
    assert human.exit_code == 0, human.output
    assert "unified health ∞" not in human.stdout


def test_stress_replays_the_usdc_depeg_on_the_emode_wallet(env: devnet.DevnetInfo) -> None:
    """USDC closed at 0.9715 on 2023-03-11 (its intraday low, 0.877, is not a close): the replay moves the USDC
    collateral along its own history, holds DAI (no history) at today's price, and Aave does not liquidate at those
    closes (USDC must fall below ~$0.914)."""
    _stored_risk(env)
    result = CliRunner().invoke(app, ["stress", EMODE, "--replay", "2023-03-09:2023-03-14", "--json"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["proxies"] == {"DAI": "held at today's price"}
    path = doc["equity_path_usd"]
    assert min(path) < path[0] - 200  # 10,000 USDC × (1 − 0.9715) ≈ $285 down on the 11th
    assert doc["events"] == []
