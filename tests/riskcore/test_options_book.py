"""Options in the netting book: Black-76 value, USD delta, full scenario revaluation (price, vol shock, horizon),
the plain-Python reference, and the cascade replay."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pytest

from riskcore.book import Book, Kind, OptionSpec, Rule, SpotSpec, WalletSpec
from riskcore.cascade import replay
from riskcore.margin import prepare, revalue, scenario_multipliers, unified_health
from riskcore.options import black76_greeks, black76_price, scenario_values
from riskcore.reference import SyntheticScenarios, revalue_reference, synthetic_book, synthetic_scenarios
from riskcore.scenarios import ScenarioSet
from riskcore.venues.aave_v3 import account_spec as aave_account

PRICES = {"ETH": 2000.0, "USDC": 1.0}
PUT = OptionSpec("ETH", 10.0, strike_usd=1_800.0, expiry_years=30 / 365, vol=0.6, is_call=False)


def by_hand_black76(f: float, k: float, t: float, vol: float, is_call: bool) -> float:
    """Black-76 with r = 0, written out (N from math.erf)."""
    if t <= 0 or vol <= 0:
        return max(f - k, 0.0) if is_call else max(k - f, 0.0)
    s = vol * math.sqrt(t)
    d1 = math.log(f / k) / s + s / 2
    d2 = d1 - s

    def n(x: float) -> float:
        return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))

    return f * n(d1) - k * n(d2) if is_call else k * n(-d2) - f * n(-d1)


def eth_scenarios(moves: list[float], vol_shift: list[float], horizon_days: float = 1.0) -> SyntheticScenarios:
    s = len(moves)
    return SyntheticScenarios(
        names=tuple(f"s{i}" for i in range(s)),
        underlyings=("ETH", "USDC"),
        price_multipliers=np.array([[1.0 + m, 1.0] for m in moves]),
        vol_shift=np.asarray(vol_shift, dtype=np.float64),
        horizon_days=horizon_days,
        weights=np.ones(s),
    )


@dataclass(frozen=True)
class PlainScenarios:
    """A scenario set with only the attributes ScenarioLike requires (no vol shift, no horizon)."""

    names: tuple[str, ...]
    underlyings: tuple[str, ...]
    price_multipliers: npt.NDArray[np.float64]
    weights: npt.NDArray[np.float64]


# --- the book -----------------------------------------------------------------------------------------
def test_option_position_value_and_usd_delta() -> None:
    book = Book.from_wallets([WalletSpec("w", [SpotSpec("ETH", 10.0), PUT])], PRICES)
    opt = np.nonzero(book.pos_kind == Kind.OPTION)[0]
    assert opt.size == 1
    assert book.acc_rule[book.pos_account[opt[0]]] == Rule.NONE
    assert book.venues[book.acc_venue[book.pos_account[opt[0]]]] == "options"
    price = by_hand_black76(2000.0, 1800.0, 30 / 365, 0.6, False)
    assert book.position_value_usd()[opt[0]] == pytest.approx(10.0 * price, rel=1e-12)
    assert book.wallet_equity_usd()[0] == pytest.approx(20_000.0 + 10.0 * price, rel=1e-12)
    # USD delta: spot 10 × 2,000 plus 10 × Black-76 put delta × 2,000 (negative)
    delta = float(black76_greeks(2000.0, 1800.0, 30 / 365, 0.6, False).delta)
    assert -1.0 < delta < 0.0
    exp = book.factor_exposure_usd()
    assert exp[0, 0] == pytest.approx(20_000.0 + 10.0 * delta * 2000.0, rel=1e-12)
    assert exp[0, 1] == 0.0
    # the delta agrees with a bump of the book's own valuation
    h = 1e-3
    up = book.position_value_usd([2000.0 + h, 1.0])[opt[0]]
    dn = book.position_value_usd([2000.0 - h, 1.0])[opt[0]]
    assert (up - dn) / (2 * h) * 2000.0 == pytest.approx(10.0 * delta * 2000.0, rel=1e-6)


def test_option_arrays_default_elsewhere_and_validate() -> None:
    book = Book.from_wallets([WalletSpec("w", [SpotSpec("ETH", 1.0), PUT])], PRICES)
    spot = book.pos_kind == Kind.SPOT
    assert np.isnan(book.pos_strike[spot]).all()
    assert (book.pos_expiry[spot] == 0).all()
    assert (book.pos_vol[spot] == 0).all()
    assert not book.pos_is_call[spot].any()
    assert book.wallet_slice(0, 1).pos_strike.shape == (2,)

    def one_option(rule: Rule, strike: float) -> Book:
        return Book.from_arrays(
            wallets=["w"], underlyings=["ETH"], venues=["v"], price_usd=[2000.0], pos_account=[0],
            pos_underlying=[0], pos_kind=[int(Kind.OPTION)], pos_quantity=[1.0], acc_wallet=[0], acc_venue=[0],
            acc_rule=[int(rule)], pos_strike=[strike], pos_vol=[0.5], pos_expiry=[0.1], pos_is_call=[True],
        )

    assert one_option(Rule.NONE, 1_500.0).pos_is_call[0]
    with pytest.raises(ValueError, match="LENDING"):
        one_option(Rule.LENDING, 1_500.0)
    with pytest.raises(ValueError, match="strike"):
        one_option(Rule.NONE, 0.0)


# --- scenario revaluation: hand-worked --------------------------------------------------------------------
def test_long_put_hedges_eth_collateral_hand_worked() -> None:
    # Wallet "hedged": Aave 10 ETH (LT 0.825) against 5,000 USDC + 10 long ETH puts K 1,800, 30 days, vol 60%.
    # Wallet "naked": the Aave account alone. Scenarios: ETH −40% with vol +10 points, ETH +25% with vol −5 points,
    # ETH unchanged with vol +20 points; horizon 1 day.
    aave = aave_account(collateral={"ETH": (10.0, 0.825)}, debt={"USDC": 5_000.0})
    book = Book.from_wallets([WalletSpec("hedged", [aave, PUT]), WalletSpec("naked", [aave])], PRICES)
    moves, shifts = [-0.40, 0.25, 0.0], [0.10, -0.05, 0.20]
    res = revalue(book, eth_scenarios(moves, shifts, horizon_days=1.0))
    # Aave: −40% → C 12,000, W 9,900 ≥ D 5,000: healthy; P&L 10 × 2,000 × move.
    today = by_hand_black76(2000.0, 1800.0, 30 / 365, 0.6, False)
    put_pnl = [
        10.0 * (by_hand_black76(2000.0 * (1 + m), 1800.0, 29 / 365, 0.6 + dv, False) - today)
        for m, dv in zip(moves, shifts, strict=True)
    ]
    aave_pnl = [20_000.0 * m for m in moves]
    np.testing.assert_allclose(res.pnl_linear_usd[1], aave_pnl, atol=1e-9)
    np.testing.assert_allclose(res.pnl_linear_usd[0], np.add(aave_pnl, put_pnl), rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(res.liquidation_loss_usd, 0.0)
    # at ETH 1,200 the put is 600 in the money, 29 days left: worth more than intrinsic; it pays back a good part
    assert put_pnl[0] > 10.0 * 600.0 - 10.0 * today
    assert res.pnl_usd[0, 0] > res.pnl_usd[1, 0] + 5_000.0
    # the hedge costs premium decay on the way up
    assert res.pnl_usd[0, 1] < res.pnl_usd[1, 1]
    # the per-venue margins: the options venue alone gains in the crash; netting benefit ≥ 0
    h = unified_health(book, res)
    assert h.netting_benefit_usd[0] >= 0.0
    assert h.equity_usd[0] == pytest.approx(20_000.0 - 5_000.0 + 10.0 * today, rel=1e-12)


def test_scenario_set_vol_rule_matches_options_scenario_values() -> None:
    # A real ScenarioSet with absolute and relative vol shifts: the book's option P&L is the options module's
    # full revaluation (shocked_vols, horizon) minus today's value.
    sc = ScenarioSet(
        names=("down", "flat", "up"),
        underlyings=("ETH",),
        price_multipliers=np.array([[0.7], [1.0], [1.3]]),
        vol_shift=np.array([0.05, 0.0, -0.02]),
        horizon_days=3.0,
        vol_shift_relative=np.array([0.5, 0.2, -0.2]),
    )
    call = OptionSpec("ETH", -4.0, strike_usd=2_200.0, expiry_years=60 / 365, vol=0.7, is_call=True)
    book = Book.from_wallets([WalletSpec("w", [PUT, call])], PRICES)
    res = revalue(book, sc)
    opt = np.nonzero(book.pos_kind == Kind.OPTION)[0]
    vals = scenario_values(
        book.price_usd[book.pos_underlying[opt]], book.pos_strike[opt], book.pos_expiry[opt], book.pos_vol[opt],
        book.pos_is_call[opt], np.zeros(opt.size, dtype=np.intp), sc,
    )
    today = black76_price(2000.0, book.pos_strike[opt], book.pos_expiry[opt], book.pos_vol[opt], book.pos_is_call[opt])
    expected = ((vals - today) * book.pos_quantity[opt]).sum(axis=1)
    np.testing.assert_allclose(res.pnl_linear_usd[0], expected, rtol=1e-12, atol=1e-9)


def test_vol_shift_raises_a_long_option_and_lowers_a_written_one() -> None:
    long_call = OptionSpec("ETH", 1.0, strike_usd=2_000.0, expiry_years=0.25, vol=0.5, is_call=True)
    short_call = dataclasses.replace(long_call, quantity=-1.0)
    book = Book.from_wallets([WalletSpec("long", [long_call]), WalletSpec("short", [short_call])], PRICES)
    res = revalue(book, eth_scenarios([0.0, 0.0, 0.0], [0.0, 0.1, 0.3], horizon_days=1.0))
    pnl = res.pnl_linear_usd
    assert pnl[0, 0] < 0.0  # one day of decay, nothing else
    assert pnl[0, 0] < pnl[0, 1] < pnl[0, 2]
    assert pnl[0, 2] > 0.0
    np.testing.assert_allclose(pnl[1], -pnl[0], rtol=1e-12)
    # vega check: +10 points ≈ vega × 0.1 (plus the day's decay)
    vega = float(black76_greeks(2000.0, 2000.0, 0.25, 0.5, True).vega)
    assert pnl[0, 1] - pnl[0, 0] == pytest.approx(vega * 0.1, rel=0.02)


def test_scenarios_without_vol_or_horizon_leave_options_unchanged_at_no_move() -> None:
    book = Book.from_wallets([WalletSpec("w", [PUT])], PRICES)
    sc = PlainScenarios(("flat", "down"), ("ETH",), np.array([[1.0], [0.9]]), np.ones(2))
    res = revalue(book, sc)
    today = by_hand_black76(2000.0, 1800.0, 30 / 365, 0.6, False)
    assert res.pnl_linear_usd[0, 0] == pytest.approx(0.0, abs=1e-9)
    assert res.pnl_linear_usd[0, 1] == pytest.approx(
        10.0 * (by_hand_black76(1800.0, 1800.0, 30 / 365, 0.6, False) - today), rel=1e-12
    )


def test_option_expiring_inside_the_horizon_is_worth_intrinsic() -> None:
    short_dated = OptionSpec("ETH", 2.0, strike_usd=2_100.0, expiry_years=2 / 365, vol=0.8, is_call=False)
    book = Book.from_wallets([WalletSpec("w", [short_dated])], PRICES)
    res = revalue(book, eth_scenarios([-0.1, 0.1], [0.5, 0.5], horizon_days=7.0))
    today = by_hand_black76(2000.0, 2100.0, 2 / 365, 0.8, False)
    np.testing.assert_allclose(res.pnl_linear_usd[0], [2.0 * (300.0 - today), 2.0 * (0.0 - today)], rtol=1e-12)


# --- the plain-Python reference agrees ------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorized_equals_reference_on_random_books_with_options(seed: int) -> None:
    rng = np.random.default_rng(seed)
    book = synthetic_book(rng, 30, positions_per_wallet=24, n_underlyings=7, n_options=4)
    assert (book.pos_kind == Kind.OPTION).sum() == 30 * 4
    base = synthetic_scenarios(rng, book.underlyings, 29)
    shift = rng.uniform(-0.3, 0.4, size=(29, book.n_underlyings))
    sc = dataclasses.replace(base, vol_shift=shift, horizon_days=5.0)
    res = revalue(book, sc, chunk_elements=2_000)  # several chunks
    ref = revalue_reference(book, scenario_multipliers(book, sc), sc.weights, vol_shift=shift, horizon_days=5.0)
    assert res.n_liquidated.sum() > 0
    for name in ("pnl_linear_usd", "liquidation_loss_usd", "pnl_usd", "worst_weighted_loss_usd"):
        np.testing.assert_allclose(getattr(res, name), getattr(ref, name), rtol=1e-9, atol=1e-6, err_msg=name)
    np.testing.assert_array_equal(res.worst_scenario, ref.worst_scenario)
    venue = [ref.venue_worst_weighted_loss_usd[(w, v)] for w, v in zip(res.group_wallet, res.group_venue, strict=True)]
    np.testing.assert_allclose(res.group_worst_weighted_loss_usd, venue, rtol=1e-9, atol=1e-6)
    again = revalue(prepare(book), sc)
    np.testing.assert_allclose(again.pnl_usd, res.pnl_usd, rtol=1e-12, atol=1e-6)
    # the options matter: without them the linear P&L differs
    plain = revalue(synthetic_book(np.random.default_rng(seed), 30, positions_per_wallet=24, n_underlyings=7), sc)
    assert not np.allclose(plain.pnl_linear_usd, res.pnl_linear_usd)


def test_synthetic_book_without_options_is_unchanged() -> None:
    a = synthetic_book(np.random.default_rng(5), 10, positions_per_wallet=20, n_underlyings=5)
    b = synthetic_book(np.random.default_rng(5), 10, positions_per_wallet=20, n_underlyings=5, n_options=2)
    keep = b.pos_kind != Kind.OPTION
    np.testing.assert_array_equal(a.pos_quantity, b.pos_quantity[keep])
    np.testing.assert_array_equal(a.price_usd, b.price_usd)


# --- cascade ---------------------------------------------------------------------------------------------
def test_cascade_revalues_options_at_each_step_without_decay() -> None:
    book = Book.from_wallets([WalletSpec("w", [SpotSpec("ETH", 10.0), PUT])], PRICES)
    path = np.array([[1800.0, 1.0], [1500.0, 1.0], [2100.0, 1.0]])
    out = replay(book, path)
    expected = [10.0 * p + 10.0 * by_hand_black76(p, 1800.0, 30 / 365, 0.6, False) for p in path[:, 0]]
    np.testing.assert_allclose(out.equity_usd[:, 0], expected, rtol=1e-12)
    assert out.events == ()
    np.testing.assert_array_equal(out.book.pos_quantity, book.pos_quantity)
