"""Morpho Blue health rule: hand-worked cases, the protocol's rounding, accrual, the float path against the exact."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riskcore.venues.morpho_blue.health import (
    MAX_LIQUIDATION_INCENTIVE_FACTOR,
    ORACLE_PRICE_SCALE,
    WAD,
    MorphoMarketState,
    _borrow_ok,
    accrue_interest,
    borrowed_assets,
    health_factor,
    health_factor_raw,
    is_healthy,
    liquidation_incentive_factor,
    liquidation_price,
    liquidation_price_raw,
    max_borrow,
    max_borrow_increase,
    min_healthy_collateral_raw,
    position_health,
    supplied_assets,
    w_taylor_compounded,
)

# 1 WETH (18 decimals) at $2,000 in USDC (6 decimals): price = 2000e6 / 1e18 × 1e36 = 2e27.
PRICE_2000 = 2 * 10**27
LLTV_86 = 86 * 10**16
EMPTY = MorphoMarketState(0, 0, 0, 0, 1_000, 0)


def market_with_debt(assets: int) -> MorphoMarketState:
    """A market whose borrow shares are at the initial price (1e6 shares per asset) and hold ``assets``."""
    return MorphoMarketState(10 * assets, 10 * assets * 10**6, assets, assets * 10**6, 1_000, 0)


def test_hand_worked_boundary() -> None:
    assert max_borrow(WAD, PRICE_2000, LLTV_86) == 1_720 * 10**6
    m = market_with_debt(1_720 * 10**6)
    shares = 1_720 * 10**6 * 10**6
    # 1720e6 × 1e6 shares of a market with 1720e6 assets and 1720e12 shares: (A + 1) / (S + 1e6) rounds up to 1720e6
    assert borrowed_assets(shares, m) == 1_720 * 10**6
    assert is_healthy(WAD, shares, m, PRICE_2000, LLTV_86)
    assert not is_healthy(WAD - 1, shares, m, PRICE_2000, LLTV_86)  # one wei of collateral less
    h = position_health(WAD, shares, m, PRICE_2000, LLTV_86)
    assert (h.borrowed_raw, h.max_borrow_raw, h.collateral_value_raw) == (1_720 * 10**6, 1_720 * 10**6, 2_000 * 10**6)
    assert h.healthy
    assert h.health_wad == WAD
    assert h.health == 1.0
    # the liquidation price is the price itself: one unit lower and 1e18 × (2e27 − 1) / 1e36 rounds to 1999999999
    assert h.liquidation_price_raw == PRICE_2000
    assert max_borrow(WAD, PRICE_2000 - 1, LLTV_86) == 1_719_999_999
    assert not is_healthy(WAD, shares, m, PRICE_2000 - 1, LLTV_86)
    assert h.max_borrow_increase_raw == 0


def test_half_borrowed_health_and_no_debt() -> None:
    m = market_with_debt(10**12)
    h = position_health(WAD, 860 * 10**12, m, PRICE_2000, LLTV_86)  # 860e6 debt: health 2
    assert h.borrowed_raw == 860 * 10**6
    assert h.health_wad == 2 * WAD
    assert h.liquidation_price_raw == 10**27  # $1,000
    none = position_health(WAD, 0, m, PRICE_2000, LLTV_86)
    assert (none.healthy, none.health_wad, none.health, none.liquidation_price_raw, none.has_debt) == (
        True, None, None, None, False,
    )
    assert none.max_borrow_increase_raw > 0
    # debt without collateral: unhealthy at every price, no liquidation price
    bare = position_health(0, 10**6, m, PRICE_2000, LLTV_86)
    assert (bare.healthy, bare.health_wad, bare.liquidation_price_raw) == (False, 0, None)


def test_debt_rounds_up_and_supply_rounds_down() -> None:
    m = MorphoMarketState(3, 10**6, 3, 10**6, 0, 0)  # (3 + 1) / (1e6 + 1e6) = 2e-6 assets per share
    assert borrowed_assets(1, m) == 1  # 2e-6 rounds up
    assert supplied_assets(1, m) == 0  # rounds down
    assert borrowed_assets(10**6, m) == 2
    assert borrowed_assets(10**6 + 1, m) == 3
    assert supplied_assets(10**6 + 1, m) == 2


def test_liquidation_incentive_factor() -> None:
    # 1 / (1 − 0.3 × (1 − lltv)), rounded down in WAD, capped at 1.15
    assert liquidation_incentive_factor(LLTV_86) == 10**36 // (WAD - 42 * 10**15) == 1_043_841_336_116_910_229
    assert liquidation_incentive_factor(945 * 10**15) == 10**36 // (WAD - 165 * 10**14) == 1_016_776_817_488_561_260
    assert liquidation_incentive_factor(625 * 10**15) == 10**36 // (WAD - 1125 * 10**14)
    assert liquidation_incentive_factor(5 * 10**17) == MAX_LIQUIDATION_INCENTIVE_FACTOR  # 1.1765 → 1.15
    assert liquidation_incentive_factor(0) == MAX_LIQUIDATION_INCENTIVE_FACTOR
    with pytest.raises(ValueError, match="LLTV"):
        liquidation_incentive_factor(WAD)


def test_accrual_by_hand() -> None:
    # rate 1e9 / s over 1e6 s: x·n = 1e15, + 1e30 / 2e18 = 5e11, + 5e11 × 1e15 / 3e18 = 166,666,666.67 → 166,666,666
    assert w_taylor_compounded(10**9, 10**6) == 10**15 + 5 * 10**11 + 166_666_666
    before = MorphoMarketState(4 * WAD, 4 * WAD * 10**6, 2 * WAD, 2 * WAD * 10**6, 1_000, 10**17)
    out = accrue_interest(before, 10**9, 1_000 + 10**6)
    interest = 2 * (10**15 + 5 * 10**11 + 166_666_666)
    assert out.interest == interest
    fee = interest // 10
    fee_shares = fee * (4 * WAD * 10**6 + 10**6) // (4 * WAD + interest - fee + 1)
    assert out.fee_shares == fee_shares
    assert out.market == MorphoMarketState(
        4 * WAD + interest, 4 * WAD * 10**6 + fee_shares, 2 * WAD + interest, 2 * WAD * 10**6, 1_000 + 10**6, 10**17
    )
    # the fee recipient's shares are worth the fee (to rounding): shares minted against supply net of the fee
    assert abs(supplied_assets(fee_shares, out.market) - fee) <= 1


def test_accrual_edge_cases() -> None:
    m = MorphoMarketState(10, 10**7, 5, 5 * 10**6, 1_000, 0)
    assert accrue_interest(m, 10**12, 1_000).market is m  # no time elapsed: nothing, not even lastUpdate
    no_irm = accrue_interest(m, None, 2_000)
    assert (no_irm.market.last_update, no_irm.market.total_borrow_assets, no_irm.interest) == (2_000, 5, 0)
    zero_rate = accrue_interest(m, 0, 2_000)
    assert (zero_rate.market.last_update, zero_rate.interest) == (2_000, 0)
    with pytest.raises(ValueError, match="before"):
        accrue_interest(m, 10**9, 999)
    with pytest.raises(OverflowError):
        accrue_interest(MorphoMarketState(2**127, 0, 2**127, 0, 0, 0), 10**12, 10**8)


@settings(max_examples=400, deadline=None)
@given(
    collateral=st.integers(1, 10**30),
    borrowed=st.integers(1, 10**30),
    lltv=st.integers(1, WAD - 1),
)
def test_liquidation_price_is_the_exact_boundary(collateral: int, borrowed: int, lltv: int) -> None:
    p = liquidation_price_raw(collateral, borrowed, lltv)
    assert p is not None
    assert max_borrow(collateral, p, lltv) >= borrowed
    assert max_borrow(collateral, p - 1, lltv) < borrowed


@settings(max_examples=300, deadline=None)
@given(
    total_borrow=st.integers(0, 10**27),
    share_price_div=st.integers(1, 10**6),
    existing=st.integers(0, 10**24),
    collateral=st.integers(0, 10**27),
    price=st.integers(1, 10**40),
    lltv=st.integers(10**17, WAD - 1),
)
def test_max_borrow_increase_is_the_boundary_of_borrow(
    total_borrow: int, share_price_div: int, existing: int, collateral: int, price: int, lltv: int
) -> None:
    # shares per asset between 1 and 1e6 (interest has accrued); the wallet holds ``existing`` of the shares
    total_shares = total_borrow * (10**6 // share_price_div) + existing
    m = MorphoMarketState(2 * total_borrow + 10**30, 0, total_borrow, total_shares, 0, 0)
    cap = max_borrow(collateral, price, lltv)
    a = max_borrow_increase(collateral, existing, m, price, lltv)
    if a > 0:
        assert _borrow_ok(cap, existing, m, a)
    assert not _borrow_ok(cap, existing, m, a + 1)
    assert a <= max(cap - borrowed_assets(existing, m), 0)


def test_max_borrow_increase_on_an_empty_market_is_the_whole_cap() -> None:
    # a assets mint a × 1e6 shares; they are worth ⌈a·1e6·(a + 1) / (a·1e6 + 1e6)⌉ = a
    assert max_borrow_increase(WAD, 0, EMPTY, PRICE_2000, LLTV_86) == 1_720 * 10**6


def test_float_path_agrees_with_the_exact_path() -> None:
    rng = np.random.default_rng(7)
    n = 500
    coll = [int(x) for x in rng.uniform(1e15, 1e22, n)]
    shares = [int(x) for x in rng.uniform(1e12, 1e20, n)]
    tba, tbs = 3 * 10**15 + 17, 2 * 10**21 + 5
    price = [int(x) for x in rng.uniform(1e26, 5e27, n)]
    lltv = [int(x) for x in rng.choice([LLTV_86, 945 * 10**15, 625 * 10**15], n)]
    m = MorphoMarketState(10**20, 0, tba, tbs, 0, 0)
    exact = np.array(
        [position_health(c, s, m, p, q).health for c, s, p, q in zip(coll, shares, price, lltv, strict=True)],
        dtype=np.float64,
    )
    floats = health_factor_raw(coll, shares, tba, tbs, price, lltv)
    np.testing.assert_allclose(floats, exact, rtol=1e-9)
    assert health_factor_raw([1.0], [0.0], tba, tbs, [1e36], [8.6e17])[0] == np.inf


def test_float_health_and_liquidation_price_broadcast() -> None:
    # 2 WETH at $2,000, LLTV 86%, 1,720 USDC debt: health 2, liquidation at $1,000
    assert health_factor(2.0, 2_000.0, 0.86, 1_720.0) == pytest.approx(2.0)
    scenarios = np.array([[2_000.0], [1_000.0], [900.0]])  # price scenarios on a leading axis
    out = health_factor([2.0, 1.0], scenarios, 0.86, [1_720.0, 0.0])
    assert out.shape == (3, 2)
    np.testing.assert_allclose(out[:, 0], [2.0, 1.0, 0.9])
    assert np.all(np.isinf(out[:, 1]))
    lp = liquidation_price([2.0, 1.0, 0.0], [1_720.0, 0.0, 5.0], 0.86)
    assert lp[0] == pytest.approx(1_000.0)
    assert np.isnan(lp[1])
    assert np.isinf(lp[2])


def test_oracle_scale_constant() -> None:
    assert ORACLE_PRICE_SCALE == 10**36


@settings(max_examples=400, deadline=None)
@given(
    borrowed=st.integers(0, 10**30),
    price=st.integers(0, 10**40),
    lltv=st.integers(0, WAD - 1),
)
def test_min_healthy_collateral_is_the_exact_boundary(borrowed: int, price: int, lltv: int) -> None:
    c = min_healthy_collateral_raw(borrowed, price, lltv)
    if c is None:
        assert borrowed > 0
        assert price == 0 or lltv == 0
        assert max_borrow(10**40, price, lltv) < borrowed
        return
    assert max_borrow(c, price, lltv) >= borrowed
    if c > 0:
        assert max_borrow(c - 1, price, lltv) < borrowed


@settings(max_examples=300, deadline=None)
@given(
    total_borrow=st.integers(1, 10**27),
    existing=st.integers(0, 10**24),
    collateral=st.integers(0, 10**27),
    price=st.integers(0, 10**40),
    lltv=st.integers(0, WAD - 1),
)
def test_max_withdraw_collateral_equals_bisection_on_the_rule(
    total_borrow: int, existing: int, collateral: int, price: int, lltv: int
) -> None:
    """The closed form the venue serves equals the largest withdrawal ``_isHealthy`` accepts, found by bisection."""
    from aggregator.venues.limits import largest_passing
    from aggregator.venues.morpho_blue.sync import max_withdraw_collateral_raw

    m = MorphoMarketState(2 * total_borrow, 0, total_borrow, total_borrow * 10**6 + existing, 0, 0)
    want = largest_passing(lambda a: is_healthy(collateral - a, existing, m, price, lltv), collateral)
    assert max_withdraw_collateral_raw(collateral, existing, m, price, lltv) == want
