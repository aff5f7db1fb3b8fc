"""Stablecoin pegs and staking bases in the unified view (issue 12, defect 2).

A wallet whose only risk is a peg (USDC collateral against DAI debt in Aave's stablecoin e-mode) or a basis
(wstETH against WETH) used to read unified health ∞ with no first liquidation, and a stable-only book made the
engine raise ``ValueError: no symbols requested``. These build the risk documents from store-shaped snapshots, as
the sync and ``xmargin risk`` do, and check the figures against hand-worked venue arithmetic and the market data.
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from aggregator.marketdata import default_root
from aggregator.risk import (
    GRID_VOL_SHIFTS,
    assess_book,
    build_book,
    pnl_grids,
    risk_documents,
)
from db.rows import AssetRow, HealthRow, PositionRow, PositionSide, SnapshotRow
from riskcore.book import Book, OptionSpec, WalletSpec
from riskcore.venues.aave_v3 import account_spec as aave_account

T = datetime(2026, 1, 1, tzinfo=UTC)
USDC = AssetRow(1, "0x" + "22" * 20, "USDC", 6)
DAI = AssetRow(1, "0x" + "44" * 20, "DAI", 18)
WETH = AssetRow(1, "0x" + "11" * 20, "WETH", 18)
WSTETH = AssetRow(1, "0x" + "55" * 20, "wstETH", 18)
AAVE = AssetRow(1, "0x" + "66" * 20, "AAVE", 18)
EMODE = "0x" + "e0" * 20
LOOP = "0x" + "10" * 20
TYPES = {"aave_v3": "aave_v3", "morpho_blue": "morpho_blue"}


def _aave(wallet: str, collateral: list[tuple[AssetRow, float, float, int]], debt: list[tuple[AssetRow, float, float]],
          bonus_bps: int = 10_100) -> SnapshotRow:
    """An Aave snapshot: collateral (asset, tokens, price, LT bps), debt (asset, tokens, price)."""
    positions = [PositionRow(a, PositionSide.COLLATERAL, int(n * 10**a.decimals), n, px, n * px, True,
                             extra={"liquidation_threshold_bps": lt, "liquidation_bonus_bps": bonus_bps})
                 for a, n, px, lt in collateral]
    positions += [PositionRow(a, PositionSide.DEBT, int(n * 10**a.decimals), n, px, n * px) for a, n, px in debt]
    health = HealthRow(computed_at=T, collateral_usd=sum(n * px for _, n, px, _ in collateral),
                       debt_usd=sum(n * px for _, n, px in debt))
    return SnapshotRow(wallet=wallet, venue="aave_v3", chain_id=1, block_number=7, block_hash="0x" + "00" * 32,
                       block_timestamp=T, taken_at=T, positions=tuple(positions), health=health)


def _emode() -> SnapshotRow:
    """The devnet's seeded e-mode wallet: 10,000 USDC (LT 98.5 %, bonus 1 %) against 9,000 DAI, HF 1.0944."""
    return _aave(EMODE, [(USDC, 10_000.0, 1.0, 9_850)], [(DAI, 9_000.0, 1.0)])


def _loop() -> SnapshotRow:
    """wstETH collateral against WETH debt in an ETH e-mode (LT 95 %), HF 1.03: only the stETH/ETH basis can
    liquidate it (ETH moves both legs together)."""
    debt_weth = 10.0 * 4_700.0 * 0.95 / 1.03 / 4_000.0
    return _aave(LOOP, [(WSTETH, 10.0, 4_700.0, 9_500)], [(WETH, debt_weth, 4_000.0)])


def _docs(snapshots: dict[str, list[SnapshotRow]]) -> list[dict[str, Any]]:
    inputs = build_book(snapshots, TYPES)
    result, scenarios, extras = assess_book(inputs)
    return risk_documents(inputs, result, scenarios, extras)


def _usdc_history() -> tuple[float, float]:
    """USDC's worst daily low and highest daily close, read from the market data itself."""
    with (default_root() / "daily" / "USDC-USD_1d.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    return min(float(r["Low"]) for r in rows), max(float(r["Close"]) for r in rows)


def test_a_stable_only_book_is_assessed_without_an_error() -> None:
    """Regression: ``assess_book`` on a book without a risky factor raised ``ValueError: no symbols requested``."""
    inputs = build_book({EMODE: [_emode()]}, TYPES)
    result, scenarios, extras = assess_book(inputs)
    assert len(scenarios) > 1  # the peg scenarios, not a lone "unchanged"
    (extra,) = extras
    assert extra["var_es"] == {}
    assert extra["pnl_grid"] is None
    assert extra["scan_ranges"] == {}
    assert result.health.margin_usd[0] > 0


def test_the_emode_wallet_has_a_finite_unified_health_and_a_first_liquidation_on_usdc() -> None:
    (doc,) = _docs({EMODE: [_emode()]})
    # Aave itself: USDC below 9,000 / (10,000 × 0.985) liquidates; so does DAI above 9,850 / 9,000.
    usdc_liq = 9_000.0 / 9_850.0
    nearest = doc["first_liquidation"]["nearest"]
    assert nearest["venue"] == "aave_v3"
    assert nearest["asset"] == "USDC"
    assert nearest["factor"] == "USDC/USD"
    assert nearest["direction"] == "falls"
    assert nearest["price_usd"] == pytest.approx(usdc_liq, rel=1e-12)
    assert nearest["current_price_usd"] == 1.0
    assert nearest["move"] == pytest.approx(usdc_liq - 1.0, rel=1e-12)
    # USDC's worst real depeg (0.877) is far beyond that: the set liquidates the account and the headline shows it.
    low, high = _usdc_history()
    assert doc["peg_basis_moves"]["USDC/USD"]["down"] == pytest.approx(1.0 - low, rel=1e-9)
    assert doc["peg_basis_moves"]["USDC/USD"]["up"] == pytest.approx(high - 1.0, rel=1e-9)
    assert 1.0 - low == pytest.approx(0.1226, abs=1e-4)  # the 2023-03-11 low the issue names
    assert doc["unified_health"] is not None
    assert 0 < doc["unified_health"] < 1
    # The worst scenario: USDC at its worst low while the DAI owed is at the dearest stablecoin close.
    dai = doc["peg_basis_moves"]["DAI/USD"]
    loss_linear = 10_000.0 * (1.0 - low) + 9_000.0 * dai["up"]
    assert doc["portfolio_margin_usd"] > loss_linear  # + the liquidation bonus
    assert doc["portfolio_margin_usd"] < loss_linear + 0.02 * 10_000.0
    assert doc["worst_scenario"] == "SPREAD USDC/USD down DAI/USD up"
    assert doc["worst_scenario_label"] == (f"USDC at ${low:.3f} and DAI at ${1 + dai['up']:.3f} "
                                           "(stablecoin peg / basis stress)")
    # DAI has no history of its own: it is stressed like the worst stablecoin, and the document says so in words.
    assert dai["down"] == pytest.approx(1.0 - low, rel=1e-9)
    assert doc["flags"] == ["peg_proxy:DAI"]
    assert doc["flag_notes"][0].startswith("DAI has no price history here; its peg is stressed like the worst")
    assert doc["net_exposure_usd"] == {"USDC": 10_000.0, "DAI": -9_000.0}
    assert doc["peg_basis_exposure_usd"] == {"USDC/USD": 10_000.0, "DAI/USD": -9_000.0}
    # No risky factor: the uniform moves have nothing to move (and do not contradict the nearest liquidation).
    assert doc["first_liquidation"]["down"] == {"move": None, "venue": None}
    assert doc["first_liquidation"]["up"] == {"move": None, "venue": None}


def test_the_headline_is_no_safer_than_the_emode_wallets_first_liquidation() -> None:
    """The invariant on the hand-worked wallet: a scenario of the set liquidates Aave, and unified health is at
    most equity over that scenario's weighted loss."""
    inputs = build_book({EMODE: [_emode()]}, TYPES)
    result, scenarios, _ = assess_book(inputs)
    liquidating = np.flatnonzero(result.scenarios.n_liquidated[0] > 0)
    assert liquidating.size > 0
    loss = -result.scenarios.pnl_usd[0, liquidating] * scenarios.weights[liquidating]
    bound = float(result.health.equity_usd[0]) / (result.health.maintenance_factor * float(loss.max()))
    assert float(result.health.health[0]) <= bound * (1 + 1e-12)


def test_a_basis_only_wallet_has_a_finite_unified_health_and_a_first_liquidation_on_the_basis() -> None:
    (doc,) = _docs({LOOP: [_loop()]})
    nearest = doc["first_liquidation"]["nearest"]
    assert nearest["venue"] == "aave_v3"
    assert nearest["asset"] == "wstETH"
    assert nearest["factor"] == "stETH/ETH"
    assert nearest["direction"] == "falls"
    assert nearest["move"] == pytest.approx(1 / 1.03 - 1.0, rel=1e-9)  # HF 1.03: the collateral may lose 2.9 %
    assert nearest["price_usd"] == pytest.approx(4_700.0 / 1.03, rel=1e-9)
    assert doc["peg_basis_moves"]["stETH/ETH"]["down"] == 0.05  # no basis history: the asset map's size
    assert doc["unified_health"] is not None
    assert doc["unified_health"] < 5
    assert "basis_default:stETH" in doc["flags"]
    note = doc["flag_notes"][doc["flags"].index("basis_default:stETH")]
    assert note.startswith("stETH has no price history against ETH here")
    assert doc["net_exposure_usd"]["ETH"] == pytest.approx(10.0 * 4_700.0 - 10.0 * 4_700.0 * 0.95 / 1.03)
    # ETH moves both legs together: no uniform move liquidates it, and the grid moves wstETH with ETH.
    assert doc["first_liquidation"]["down"]["move"] is None
    assert doc["pnl_grid"]["underlyings"] == ["wstETH", "ETH"]  # book order
    assert doc["pnl_grid"]["moved"] == "wstETH and ETH (WETH) move together by each column's move"


def test_a_wallets_document_does_not_depend_on_the_batch_it_is_assessed_in() -> None:
    """The sync assesses every wallet in one book: the e-mode wallet's headline is the same alone or beside a
    wallet holding ETH and stETH (whose factors it does not hold), and only its own caveats are listed."""
    (alone,) = _docs({EMODE: [_emode()]})
    emode, loop = _docs({EMODE: [_emode()], LOOP: [_loop()]})
    assert emode["scenario_count"] > alone["scenario_count"]
    assert emode["unified_health"] == pytest.approx(alone["unified_health"], rel=1e-12)
    assert emode["portfolio_margin_usd"] == pytest.approx(alone["portfolio_margin_usd"], rel=1e-12)
    assert emode["first_liquidation"] == alone["first_liquidation"]
    assert emode["flags"] == alone["flags"] == ["peg_proxy:DAI"]
    assert emode["worst_scenario_label"] == alone["worst_scenario_label"]
    assert "peg_proxy:DAI" not in loop["flags"]
    assert loop["scan_ranges"].keys() == {"ETH"}


def test_first_liquidation_down_agrees_with_nearest_for_one_risky_factor() -> None:
    """WETH collateral against USDC debt: the uniform move and the nearest single-factor move are the same move."""
    snap = _aave(LOOP, [(WETH, 10.0, 4_000.0, 8_250)], [(USDC, 25_000.0, 1.0)], bonus_bps=10_500)
    (doc,) = _docs({LOOP: [snap]})
    fl = doc["first_liquidation"]
    liq = 25_000.0 / (10.0 * 0.825)
    assert fl["nearest"]["asset"] == "WETH"
    assert fl["nearest"]["factor"] == "ETH"
    assert fl["nearest"]["price_usd"] == pytest.approx(liq, rel=1e-12)
    assert fl["down"]["move"] == pytest.approx(-fl["nearest"]["move"], rel=1e-9)
    assert fl["down"]["venue"] == fl["nearest"]["venue"] == "aave_v3"
    (eth,) = [p for p in doc["liquidation_prices"] if p["asset"] == "ETH"]
    assert eth["token"] == "WETH"
    assert eth["price_usd"] == pytest.approx(fl["nearest"]["price_usd"], rel=1e-12)
    assert doc["pnl_grid"]["vol_shifts"] == [0.0]
    assert len(doc["pnl_grid"]["pnl_usd"]) == 1


def test_plain_words_for_a_proxied_factor_and_a_worst_scenario() -> None:
    snap = _aave(LOOP, [(AAVE, 100.0, 300.0, 7_000), (WETH, 1.0, 4_000.0, 8_250)], [(USDC, 20_000.0, 1.0)])
    (doc,) = _docs({LOOP: [snap]})
    assert "proxy:AAVE=ETH" in doc["flags"]  # the code stays in the JSON
    assert doc["flag_notes"][doc["flags"].index("proxy:AAVE=ETH")] == (
        "AAVE has no price history here; ETH's history stands in")
    assert len(doc["flag_notes"]) == len(doc["flags"])
    label = doc["worst_scenario_label"]
    assert "AAVE −" in label
    assert "ETH −" in label
    assert label.endswith(")")
    assert doc["pnl_grid"]["moved"] == "AAVE and ETH (WETH) move together by each column's move; USDC stays at " \
        "today's price"


def test_the_grid_keeps_volatility_rows_only_for_a_wallet_holding_options() -> None:
    book = Book.from_wallets(
        [WalletSpec("options", (OptionSpec("ETH", 1.0, 4_000.0, 0.1, 0.6, True),)),
         WalletSpec("lender", (aave_account({"ETH": (1.0, 0.8)}, {"USDC": 1_000.0}),))],
        {"ETH": 4_000.0, "USDC": 1.0}, stable=("USDC",))
    with_options, without = pnl_grids(book, ["ETH"])
    assert with_options is not None
    assert without is not None
    assert with_options["vol_shifts"] == list(GRID_VOL_SHIFTS)
    assert without["vol_shifts"] == [0.0]
    assert len(without["pnl_usd"]) == 1
    # the option's value does move with volatility; the lending wallet's unshifted row is the same as before
    assert with_options["pnl_usd"][0] != with_options["pnl_usd"][-1]
    zero = GRID_VOL_SHIFTS.index(0.0)
    (alone,) = pnl_grids(Book.from_wallets([WalletSpec("lender", (aave_account({"ETH": (1.0, 0.8)},
                                                                             {"USDC": 1_000.0}),))],
                                           {"ETH": 4_000.0, "USDC": 1.0}, stable=("USDC",)), ["ETH"])
    assert alone is not None
    assert without["pnl_usd"][0] == pytest.approx(alone["pnl_usd"][0])
    assert with_options["vol_shifts"][zero] == 0.0
