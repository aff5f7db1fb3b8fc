"""The factor model (book prices as products of risky, peg and basis factors), the peg / basis stress scenarios,
and single-factor liquidation moves: hand-worked books, and agreement with the per-underlying liquidation prices
and with the uniform move."""

from __future__ import annotations

import numpy as np
import pytest

from riskcore.assets import FactorKind
from riskcore.book import Book, PerpAccountSpec, WalletSpec
from riskcore.factors import factor_model
from riskcore.margin import (
    factor_liquidation_moves,
    liquidation_prices,
    nearest_liquidation,
    revalue,
    uniform_move,
)
from riskcore.scenarios import (
    DEFAULT_PREMIUM,
    ScenarioSet,
    correlation_breakdown,
    peg_stress_sizes,
    span_scenarios,
    spread_scenarios,
)
from riskcore.venues.aave_v3 import account_spec as aave_account
from riskcore.venues.morpho_blue import market_spec as morpho_market

UNDERLYINGS = ("ETH", "stETH", "wstETH", "WBTC", "USDC", "DAI", "USD", "AAVE")


def test_factor_model_loads_each_price_on_its_factors() -> None:
    m = factor_model(UNDERLYINGS)
    assert m.factors == ("ETH", "stETH/ETH", "BTC", "WBTC/BTC", "USDC/USD", "DAI/USD", "AAVE")
    assert m.kinds == (FactorKind.RISKY, FactorKind.BASIS, FactorKind.RISKY, FactorKind.BASIS, FactorKind.PEG,
                       FactorKind.PEG, FactorKind.RISKY)
    assert m.risky == ("ETH", "BTC", "AAVE")
    assert m.pegs == ("USDC/USD", "DAI/USD")
    assert m.bases == ("stETH/ETH", "WBTC/BTC")
    expected = {
        "ETH": {"ETH"}, "stETH": {"ETH", "stETH/ETH"}, "wstETH": {"ETH", "stETH/ETH"}, "WBTC": {"BTC", "WBTC/BTC"},
        "USDC": {"USDC/USD"}, "DAI": {"DAI/USD"}, "USD": set(), "AAVE": {"AAVE"},
    }
    for j, u in enumerate(UNDERLYINGS):
        assert {m.factors[f] for f in np.flatnonzero(m.loadings[j])} == expected[u], u
    assert m.stable.tolist() == [False, False, False, False, True, True, True, False]
    assert [m.token(f) for f in m.factors] == ["ETH", "stETH", "BTC", "WBTC", "USDC", "DAI", "AAVE"]
    assert m.risky_factor_of(UNDERLYINGS.index("wstETH")) == 0
    assert m.risky_factor_of(UNDERLYINGS.index("DAI")) == -1
    with pytest.raises(ValueError, match="unique"):
        factor_model(("ETH", "ETH"))


def test_compose_multiplies_a_price_by_each_of_its_factors() -> None:
    m = factor_model(UNDERLYINGS)
    s = ScenarioSet(names=("a", "b"), underlyings=("ETH", "stETH/ETH", "USDC/USD", "BTC"),
                    price_multipliers=np.array([[0.7, 0.95, 0.877, 1.1], [1.0, 1.0, 1.02, 0.5]]),
                    vol_shift=np.array([[0.1, 0.0, 0.0, -0.1], [0.0, 0.0, 0.0, 0.2]]), horizon_days=2.0,
                    weights=np.array([1.0, 0.35]), groups=("g1", "g2"))
    out = m.compose(s)
    assert out.underlyings == UNDERLYINGS
    assert (out.names, out.groups, out.horizon_days) == (("a", "b"), ("g1", "g2"), 2.0)
    np.testing.assert_allclose(out.weights, [1.0, 0.35])
    # ETH, stETH, wstETH, WBTC (no WBTC/BTC in the set: the basis holds), USDC, DAI (unnamed), USD, AAVE (unnamed)
    np.testing.assert_allclose(out.price_multipliers, [[0.7, 0.665, 0.665, 1.1, 0.877, 1.0, 1.0, 1.0],
                                                       [1.0, 1.0, 1.0, 0.5, 1.02, 1.0, 1.0, 1.0]])
    np.testing.assert_allclose(out.vol_shift[0], [0.1, 0.1, 0.1, -0.1, 0, 0, 0, 0])  # the risky factor's vol


def test_single_factor_moves_reads_only_scenarios_that_move_one_factor() -> None:
    m = factor_model(("ETH", "USDC", "DAI"))
    s = ScenarioSet(names=("eth", "usdc", "both", "dai up", "dai down"), underlyings=("ETH", "USDC/USD", "DAI/USD"),
                    price_multipliers=np.array([[0.8, 1.0, 1.0], [1.0, 0.9, 1.0], [0.5, 0.5, 1.0], [1.0, 1.0, 1.03],
                                                [1.0, 1.0, 0.97]]),
                    vol_shift=np.zeros(5), horizon_days=1.0)
    down, up = m.single_factor_moves(s)
    np.testing.assert_allclose(down, [0.2, 0.1, 0.03])
    np.testing.assert_allclose(up, [0.0, 0.0, 0.03])


def test_spread_scenarios_move_pegs_and_bases_alone_and_against_each_other() -> None:
    factors = ("ETH", "USDC/USD", "DAI/USD", "stETH/ETH")
    s = spread_scenarios(factors, down={"USDC/USD": 0.12, "DAI/USD": 0.10, "stETH/ETH": 0.05},
                         up={"USDC/USD": 0.04, "DAI/USD": 0.08, "stETH/ETH": 0.02})
    n = 3
    assert len(s) == 2 * n + n * (n - 1) + 1
    assert set(s.groups) == {"spread"}
    rows = dict(zip(s.names, s.price_multipliers.tolist(), strict=True))
    assert rows["SPREAD USDC/USD down"] == pytest.approx([1.0, 0.88, 1.0, 1.0])
    assert rows["SPREAD DAI/USD up"] == pytest.approx([1.0, 1.0, 1.08, 1.0])
    # USDC collateral falls while the DAI owed rises
    assert rows["SPREAD USDC/USD down DAI/USD up"] == pytest.approx([1.0, 0.88, 1.08, 1.0])
    assert rows["SPREAD stETH/ETH down USDC/USD up"] == pytest.approx([1.0, 1.04, 1.0, 0.95])
    assert rows["SPREAD pegs down"] == pytest.approx([1.0, 0.88, 0.90, 1.0])  # the basis holds
    assert all(r[0] == 1.0 for r in rows.values())  # risky factors never move here
    # defaults: the asset map's basis risk down, DEFAULT_PREMIUM up; no spread factor → no scenario
    d = spread_scenarios(("USDC/USD",))
    np.testing.assert_allclose(d.price_multipliers[:, 0], [0.87, 1.0 + DEFAULT_PREMIUM])
    assert len(spread_scenarios(("ETH", "BTC"))) == 0
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        spread_scenarios(("USDC/USD",), down=1.0)
    partial = spread_scenarios(("USDC/USD", "DAI/USD"), up={"USDC/USD": 0.01})
    assert partial.price_multipliers[partial.names.index("SPREAD DAI/USD up"), 1] == 1.0 + DEFAULT_PREMIUM
    with pytest.raises(ValueError, match=">= 0"):
        spread_scenarios(("USDC/USD",), up=-0.01)


def test_correlation_breakdown_with_a_premium_adds_the_crash_with_each_peg_above_par() -> None:
    s = correlation_breakdown(("ETH", "USDC/USD", "DAI/USD"), stable_depeg=0.1, stable_premium={"USDC/USD": 0.04,
                                                                                                  "DAI/USD": 0.08})
    assert s.names[-2:] == ("BREAK crash + USDC/USD premium", "BREAK crash + DAI/USD premium")
    np.testing.assert_allclose(s.price_multipliers[-2:], [[0.7, 1.04, 1.0], [0.7, 1.0, 1.08]])
    assert len(correlation_breakdown(("ETH", "USDC/USD"))) == 3  # unchanged without a premium


def test_peg_stress_sizes_from_a_history() -> None:
    lows = [0.999, 0.8774, 0.95, 1.0]
    closes = [1.0, 0.9715, 1.044, 0.9999]
    down, up = peg_stress_sizes(lows, closes)
    assert down == pytest.approx(0.1226)
    assert up == pytest.approx(0.044)  # the close, not an intraday spike
    assert peg_stress_sizes([0.999], [1.001], floor_down=0.05, floor_up=0.02) == (0.05, 0.02)
    assert peg_stress_sizes([0.001], [1.0])[0] == 0.99  # a coin that went to zero still leaves a positive price
    with pytest.raises(ValueError, match="positive"):
        peg_stress_sizes([0.0], [1.0])
    with pytest.raises(ValueError, match="at least one day"):
        peg_stress_sizes([], [])


# --- single-factor liquidation moves ---------------------------------------------------------------------------
PRICES = {"ETH": 4_000.0, "wstETH": 4_700.0, "USDC": 1.0, "DAI": 1.0}
STABLE = ("USDC", "DAI")


def _book(*accounts: object) -> Book:
    return Book.from_wallets([WalletSpec("w", tuple(accounts))], PRICES, stable=STABLE)  # type: ignore[arg-type]


def test_an_emode_stable_book_liquidates_when_usdc_falls_8_6_percent() -> None:
    """10,000 USDC at LT 98.5 % against 9,000 DAI: HF 1.0944; USDC below 9,000 / 9,850 = $0.91371 liquidates,
    so does DAI above 9,850 / 9,000 = $1.09444."""
    book = _book(aave_account({"USDC": (10_000.0, 0.985)}, {"DAI": 9_000.0}, bonus=0.01))
    m = factor_model(book.underlyings)
    out = factor_liquidation_moves(book, m.loadings)
    moves = {m.factors[f]: (float(mv), int(sd)) for f, mv, sd in zip(out.factor, out.move, out.side, strict=True)}
    assert moves["USDC/USD"][0] == pytest.approx(9_000 / 9_850 - 1)
    assert moves["USDC/USD"][1] == -1
    assert moves["DAI/USD"][0] == pytest.approx(9_850 / 9_000 - 1)
    assert moves["DAI/USD"][1] == 1
    near = nearest_liquidation(book, m.loadings)
    assert m.factors[int(near.factor[0])] == "USDC/USD"
    assert float(near.move[0]) == pytest.approx(-0.0862944, abs=1e-6)
    um = uniform_move(book)  # no risky factor: the uniform move cannot liquidate it, and says so
    assert np.isnan(um.down[0])
    assert np.isnan(um.up[0])


def test_factor_moves_with_identity_loadings_are_the_liquidation_prices() -> None:
    book = _book(
        aave_account({"ETH": (10.0, 0.825), "USDC": (5_000.0, 0.78)}, {"DAI": 20_000.0}),
        morpho_market("ETH", 2.0, "USDC", 5_000.0, 0.86),
        PerpAccountSpec(30_000.0, {"ETH": (-5.0, 0.02)}),  # equity 30,000 − 5 × 4,000
    )
    out = factor_liquidation_moves(book, np.eye(book.n_underlyings))
    ref = liquidation_prices(book)
    got = {(int(a), int(u)): float(mv) for a, u, mv in zip(out.account, out.factor, out.move, strict=True)}
    checked = 0
    for a, u, p, c, side in zip(ref.account, ref.underlying, ref.price_usd, ref.current_price_usd, ref.side,
                                strict=True):
        if side != 0:
            assert got[(int(a), int(u))] == pytest.approx(p / c - 1.0, rel=1e-12)
            checked += 1
    assert checked >= 4


def test_a_basis_only_book_is_liquidated_by_the_basis_not_by_eth() -> None:
    """wstETH collateral against WETH debt in an ETH-correlated e-mode (LT 95 %): ETH moving both legs together
    never liquidates it; the stETH/ETH basis falling 1 − 1/(0.95 × 1.0526…) does."""
    coll_usd, debt_usd = 10.0 * 4_700.0, 10.0 * 4_700.0 * 0.95 / 1.03  # HF 1.03
    book = _book(aave_account({"wstETH": (10.0, 0.95)}, {"ETH": debt_usd / 4_000.0}))
    m = factor_model(book.underlyings)
    out = factor_liquidation_moves(book, m.loadings)
    moves = {m.factors[f]: float(mv) for f, mv in zip(out.factor, out.move, strict=True)}
    assert np.isnan(moves["ETH"])  # both legs scale with ETH: the health factor does not move
    assert moves["stETH/ETH"] == pytest.approx(debt_usd / (0.95 * coll_usd) - 1.0)
    near = nearest_liquidation(book, m.loadings)
    assert m.factors[int(near.factor[0])] == "stETH/ETH"
    assert int(near.side[0]) == -1
    # and a set moving the basis alone past that point liquidates the account
    s = m.compose(spread_scenarios(m.factors, down={"stETH/ETH": 0.05}, up={"stETH/ETH": 0.02}))
    res = revalue(book, s)
    assert res.n_liquidated[0, s.names.index("SPREAD stETH/ETH down")] == 1
    assert res.n_liquidated[0, s.names.index("SPREAD stETH/ETH up")] == 0


def test_nearest_agrees_with_the_uniform_move_when_one_risky_factor_is_held() -> None:
    book = _book(
        aave_account({"ETH": (10.0, 0.825)}, {"USDC": 25_000.0}),
        morpho_market("ETH", 5.0, "USDC", 15_000.0, 0.86),
        PerpAccountSpec(19_000.0, {"ETH": (-4.0, 0.03)}),
    )
    m = factor_model(book.underlyings)
    near = nearest_liquidation(book, m.loadings)
    um = uniform_move(book)
    out = factor_liquidation_moves(book, m.loadings)
    eth = m.factors.index("ETH")
    falls = out.move[(out.factor == eth) & (out.side < 0)]
    rises = out.move[(out.factor == eth) & (out.side > 0)]
    assert float(um.down[0]) == pytest.approx(float(np.nanmin(np.abs(falls))), rel=1e-9)  # down is a positive fraction
    assert float(um.up[0]) == pytest.approx(float(np.nanmin(rises)), rel=1e-9)
    assert abs(float(near.move[0])) == pytest.approx(min(float(um.down[0]), float(um.up[0])), rel=1e-9)


def test_an_account_already_liquidatable_is_at_move_zero_and_a_book_without_debt_has_none() -> None:
    book = Book.from_wallets(
        [WalletSpec("sick", (aave_account({"ETH": (1.0, 0.8)}, {"USDC": 3_500.0}),)),
         WalletSpec("lender", (aave_account({"USDC": (1_000.0, 0.78)}, {}),))],
        PRICES, stable=STABLE)
    m = factor_model(book.underlyings)
    near = nearest_liquidation(book, m.loadings)
    assert float(near.move[0]) == 0.0
    assert int(near.account[1]) == -1
    assert np.isnan(near.move[1])
    with pytest.raises(ValueError, match="loadings"):
        factor_liquidation_moves(book, np.eye(2))


def test_span_set_composed_is_the_old_set_for_a_book_without_basis_tokens() -> None:
    """For ETH and stablecoins only, the composed SPAN set moves ETH exactly as the set over ETH did."""
    m = factor_model(("ETH", "USDC"))
    span = span_scenarios(("ETH",), 0.1)
    out = m.compose(span)
    np.testing.assert_array_equal(out.price_multipliers[:, 0], span.price_multipliers[:, 0])
    np.testing.assert_array_equal(out.price_multipliers[:, 1], 1.0)
