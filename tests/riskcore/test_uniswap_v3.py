"""Uniswap v3 position math: TickMath vectors, SqrtPriceMath rounding, fee growth wraparound, the exact
amounts/fees rule, and the float path (amounts, delta, gamma) against finite differences."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from riskcore.clmm import (
    Q96,
    amounts_float,
    human_price,
    lp_greeks,
    lp_usd_greeks,
    sqrt_price_float,
    value_under_price_multipliers,
)
from riskcore.venues.uniswap_v3.position import (
    MAX_SQRT_RATIO,
    MAX_TICK,
    MIN_SQRT_RATIO,
    MIN_TICK,
    Q128,
    UINT128_MAX,
    UINT256_MAX,
    PoolPositionParams,
    TickFeeGrowth,
    UniswapV3PoolParams,
    UniswapV3PositionParams,
    accrue_fees,
    amounts_for_burn,
    fee_growth_inside,
    get_amount0_delta,
    get_amount1_delta,
    get_amounts_for_liquidity,
    get_sqrt_ratio_at_tick,
    get_tick_at_sqrt_ratio,
    mul_div,
    mul_div_rounding_up,
    position_amounts,
    position_value_usd,
)

# Published values of TickMath.getSqrtRatioAtTick (v3-core's TickMath tests and their ports).
SQRT_RATIO_VECTORS = {
    0: 79228162514264337593543950336,
    1: 79232123823359799118286999568,
    -1: 79224201403219477170569942574,
    50: 79426470787362580746886972461,
    -50: 79030349367926598376800521322,
    100: 79625275426524748796330556128,
    -100: 78833030112140176575862854579,
    250: 80224679980005306637834519095,
    -250: 78244023372248365697264290337,
    500: 81233731461783161732293370115,
    -500: 77272108795590369356373805297,
    1000: 83290069058676223003182343270,
    -1000: 75364347830767020784054125655,
    2500: 89776708723587163891445672585,
    3000: 92049301871182272007977902845,
    50000: 965075977353221155028623082916,
    150000: 143194173941309278083010301478497,
    200000: 1744244129640337381386292603617838,
    -200000: 3598751819609688046946419,
    250000: 21246587762933397357449903968194344,
    MIN_TICK: MIN_SQRT_RATIO,
    MIN_TICK + 1: 4295343490,
    MAX_TICK - 1: 1461373636630004318706518188784493106690254656249,
    MAX_TICK: MAX_SQRT_RATIO,
}


def encode_price_sqrt(reserve1: int, reserve0: int) -> int:
    """v3-core's test helper: floor(sqrt(reserve1 / reserve0) * 2**96)."""
    return math.isqrt(reserve1 * Q96 * Q96 // reserve0)


# --- TickMath ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("tick", "expected"), sorted(SQRT_RATIO_VECTORS.items()))
def test_get_sqrt_ratio_at_tick_matches_published_values(tick: int, expected: int) -> None:
    assert get_sqrt_ratio_at_tick(tick) == expected


def test_tick_zero_is_two_to_the_96() -> None:
    assert get_sqrt_ratio_at_tick(0) == 2**96


@pytest.mark.parametrize("tick", [MIN_TICK - 1, MAX_TICK + 1])
def test_ticks_out_of_bounds_are_refused(tick: int) -> None:
    with pytest.raises(ValueError, match="outside"):
        get_sqrt_ratio_at_tick(tick)


def test_sqrt_ratio_is_close_to_the_real_value_and_increasing() -> None:
    rng = np.random.default_rng(7)
    ticks = sorted({int(t) for t in rng.integers(MIN_TICK, MAX_TICK, 400)})
    ratios = [get_sqrt_ratio_at_tick(t) for t in ticks]
    assert ratios == sorted(ratios)
    for t, r in zip(ticks, ratios, strict=True):
        assert r / Q96 == pytest.approx(1.0001 ** (t / 2), rel=1e-9)  # float pow loses ~|t|·eps


def test_get_tick_at_sqrt_ratio_inverts_and_floors() -> None:
    for tick in (MIN_TICK, -200_000, -1, 0, 1, 50, 200_000, MAX_TICK - 1):
        r = get_sqrt_ratio_at_tick(tick)
        assert get_tick_at_sqrt_ratio(r) == tick
        if tick < MAX_TICK - 1:
            assert get_tick_at_sqrt_ratio(get_sqrt_ratio_at_tick(tick + 1) - 1) == tick
    assert get_tick_at_sqrt_ratio(MAX_SQRT_RATIO - 1) == MAX_TICK - 1
    with pytest.raises(ValueError, match="outside"):
        get_tick_at_sqrt_ratio(MAX_SQRT_RATIO)
    with pytest.raises(ValueError, match="outside"):
        get_tick_at_sqrt_ratio(MIN_SQRT_RATIO - 1)


# --- FullMath / SqrtPriceMath --------------------------------------------------------------------------------
def test_mul_div_rounds_and_reverts_like_fullmath() -> None:
    assert mul_div(Q128, 1, 3) == Q128 // 3
    assert mul_div_rounding_up(Q128, 1, 3) == Q128 // 3 + 1
    assert mul_div_rounding_up(6, 2, 3) == 4
    assert mul_div(UINT256_MAX, UINT256_MAX, UINT256_MAX) == UINT256_MAX
    with pytest.raises(ZeroDivisionError):
        mul_div(1, 1, 0)
    with pytest.raises(OverflowError):
        mul_div(UINT256_MAX, 2, 1)
    with pytest.raises(OverflowError):
        mul_div_rounding_up(535006138814359, 432862656469423142931042426214547535783388063929571229938474969, 2)


def test_amount_deltas_match_sqrtpricemath_spec() -> None:
    # v3-core SqrtPriceMath.spec.ts: price 1 → 1.21, liquidity 1e18.
    a, b = encode_price_sqrt(1, 1), encode_price_sqrt(121, 100)
    assert get_amount0_delta(a, b, 10**18, True) == 90909090909090910
    assert get_amount0_delta(a, b, 10**18, False) == 90909090909090909
    assert get_amount0_delta(b, a, 10**18, False) == 90909090909090909
    assert get_amount1_delta(a, b, 10**18, True) == 100000000000000000
    assert get_amount1_delta(a, b, 10**18, False) == 99999999999999999
    assert get_amount0_delta(a, encode_price_sqrt(2, 1), 0, True) == 0
    assert get_amount1_delta(a, a, 10**18, True) == 0


def test_burn_amounts_branch_on_the_tick() -> None:
    lo, hi, liq = -600, 600, 10**20
    s_lo, s_hi = get_sqrt_ratio_at_tick(lo), get_sqrt_ratio_at_tick(hi)
    below = amounts_for_burn(get_sqrt_ratio_at_tick(-700), -700, lo, hi, liq)
    assert below == (get_amount0_delta(s_lo, s_hi, liq, False), 0)
    above = amounts_for_burn(get_sqrt_ratio_at_tick(700), 700, lo, hi, liq)
    assert above == (0, get_amount1_delta(s_lo, s_hi, liq, False))
    s = get_sqrt_ratio_at_tick(100) + 12345
    inside = amounts_for_burn(s, 100, lo, hi, liq)
    assert inside == (get_amount0_delta(s, s_hi, liq, False), get_amount1_delta(s_lo, s, liq, False))
    assert inside == get_amounts_for_liquidity(s, s_lo, s_hi, liq)
    # At the upper bound the pool's tick equals tick_upper: all token1 (the tick, not the price, decides).
    assert amounts_for_burn(s_hi, hi, lo, hi, liq) == above
    # A swap down stopping exactly on the lower bound leaves tick = lower - 1: all token0, as at the bound.
    assert amounts_for_burn(s_lo, lo - 1, lo, hi, liq) == below
    assert amounts_for_burn(s, 100, lo, hi, 0) == (0, 0)


# --- fees ----------------------------------------------------------------------------------------------------
def test_fee_growth_inside_in_each_region() -> None:
    glob, out_lo, out_hi = 1000 * Q128, 100 * Q128, 300 * Q128
    # In range: global - below(lower outside) - above(upper outside).
    assert fee_growth_inside(-10, 10, 0, glob, out_lo, out_hi) == 600 * Q128
    # Below the range: below = global - lower outside; above = upper outside.
    assert fee_growth_inside(-10, 10, -20, glob, out_lo, out_hi) == (out_lo - out_hi) % 2**256
    # Above: above = global - upper outside.
    assert fee_growth_inside(-10, 10, 10, glob, out_lo, out_hi) == (out_hi - out_lo) % 2**256


def test_fee_growth_wraps_mod_2_256_and_the_difference_is_right() -> None:
    # The outside values were initialized after the global passed them: inside is "negative" mod 2**256.
    last = fee_growth_inside(-10, 10, 0, 5 * Q128, 4 * Q128, 3 * Q128)
    assert last == 2**256 - 2 * Q128
    now = fee_growth_inside(-10, 10, 0, 8 * Q128, 4 * Q128, 3 * Q128)  # 3 units of growth since
    assert now == Q128
    assert accrue_fees(0, 7, now, last) == 7 * 3
    # Global itself wrapping past 2**256.
    last = fee_growth_inside(-10, 10, 0, UINT256_MAX - Q128 + 1, 0, 0)
    now = fee_growth_inside(-10, 10, 0, (UINT256_MAX + Q128 + 1) % 2**256, 0, 0)
    assert accrue_fees(5, 10, now, last) == 5 + 20


def test_accrued_fees_truncate_to_uint128_and_wrap() -> None:
    huge = accrue_fees(0, UINT128_MAX, UINT256_MAX, 0)  # mulDiv = (2**256-1)(2**128-1) / 2**128 ≥ 2**128
    assert huge == (UINT256_MAX * UINT128_MAX // Q128) % 2**128
    assert accrue_fees(UINT128_MAX, 1, Q128, 0) == 0  # tokensOwed + 1 wraps


POOL = UniswapV3PoolParams(sqrt_price_x96=get_sqrt_ratio_at_tick(120) + 999, tick=120,
                           fee_growth_global0_x128=50 * Q128 + 17, fee_growth_global1_x128=7 * Q128 + 3)
LOWER = TickFeeGrowth(10 * Q128, 2 * Q128)
UPPER = TickFeeGrowth(5 * Q128, Q128)


def test_position_amounts_in_range_with_fees() -> None:
    pos = UniswapV3PositionParams(tick_lower=-600, tick_upper=600, liquidity=3 * 10**18,
                                  fee_growth_inside0_last_x128=30 * Q128, fee_growth_inside1_last_x128=Q128,
                                  tokens_owed0=11, tokens_owed1=22)
    out = position_amounts(pos, POOL, LOWER, UPPER)
    inside0 = 50 * Q128 + 17 - 10 * Q128 - 5 * Q128
    inside1 = 7 * Q128 + 3 - 2 * Q128 - Q128
    assert (out.fee_growth_inside0_x128, out.fee_growth_inside1_x128) == (inside0, inside1)
    assert out.fees0_raw == 11 + (inside0 - 30 * Q128) * 3 * 10**18 // Q128
    assert out.fees1_raw == 22 + (inside1 - Q128) * 3 * 10**18 // Q128
    assert (out.amount0_raw, out.amount1_raw) == amounts_for_burn(POOL.sqrt_price_x96, 120, -600, 600, 3 * 10**18)
    assert out.total0_raw == out.amount0_raw + out.fees0_raw
    assert out.owed0_raw == out.fees0_raw
    usd = position_value_usd(out, 18, 6, 3000.0, 1.0)
    assert usd == pytest.approx(out.total0_raw / 1e18 * 3000 + out.total1_raw / 1e6, rel=1e-15)
    principal = position_value_usd(out, 18, 6, 3000.0, 1.0, include_fees=False)
    assert principal == pytest.approx(out.amount0_raw / 1e18 * 3000 + out.amount1_raw / 1e6, rel=1e-15)


def test_pool_cap_and_zero_liquidity() -> None:
    pos = UniswapV3PositionParams(-600, 600, 10**18, 30 * Q128, Q128, 0, 0)
    uncapped = position_amounts(pos, POOL, LOWER, UPPER)
    # The pool's aggregate owes one wei less than the NFT's share: collect pays what the pool has.
    pool_pos = PoolPositionParams(10**18, 30 * Q128, Q128, 0, 0)
    same = position_amounts(pos, POOL, LOWER, UPPER, pool_pos)
    assert same.fees0_raw == uncapped.fees0_raw
    short = PoolPositionParams(10**18, 30 * Q128 + Q128 // 10**18 + 1, Q128, 0, 0)
    capped = position_amounts(pos, POOL, LOWER, UPPER, short)
    assert capped.fees0_raw < uncapped.fees0_raw == capped.owed0_raw
    # A closed position (no liquidity): no poke, collect pays the stored tokensOwed.
    closed = UniswapV3PositionParams(-600, 600, 0, 0, 0, 40, 50)
    out = position_amounts(closed, POOL, LOWER, UPPER, PoolPositionParams(0, 0, 0, 100, 100))
    assert (out.amount0_raw, out.amount1_raw, out.fees0_raw, out.fees1_raw) == (0, 0, 40, 50)


# --- float path ----------------------------------------------------------------------------------------------
def test_float_amounts_agree_with_exact() -> None:
    rng = np.random.default_rng(11)
    for _ in range(200):
        lo = int(rng.integers(-200_000, 199_000))
        hi = lo + int(rng.integers(10, 20_000))
        tick = int(rng.integers(lo - 5000, hi + 5000))
        liq = int(rng.integers(10**6, 10**18)) * 1000
        s = get_sqrt_ratio_at_tick(tick)
        x, y = amounts_for_burn(s, tick, lo, hi, liq)
        fx, fy = amounts_float(liq, sqrt_price_float(s), sqrt_price_float(get_sqrt_ratio_at_tick(lo)),
                               sqrt_price_float(get_sqrt_ratio_at_tick(hi)))
        assert float(fx) == pytest.approx(x, rel=1e-9, abs=2)
        assert float(fy) == pytest.approx(y, rel=1e-9, abs=2)


def test_sqrt_price_float_handles_arrays_of_big_ints() -> None:
    arr = sqrt_price_float([MAX_SQRT_RATIO, Q96])
    assert arr.shape == (2,)
    assert arr[1] == 1.0
    assert float(sqrt_price_float(MAX_SQRT_RATIO)) == MAX_SQRT_RATIO / Q96


# WETH (18) / USDC (6) style pool: token0 = USDC? Use both orders to exercise the decimals scaling.
@pytest.mark.parametrize(("d0", "d1"), [(18, 6), (6, 18), (18, 18), (8, 6)])
def test_delta_and_gamma_are_the_derivatives_of_value(d0: int, d1: int) -> None:
    liq = 7.3e17
    lo_tick, hi_tick = -2_000, 3_000
    base = 10.0 ** ((d1 - d0) / 2)  # keep raw prices where the ticks are meaningful
    s_lo = 1.0001 ** (lo_tick / 2) * base
    s_hi = 1.0001 ** (hi_tick / 2) * base

    def value(price: float) -> float:
        s = math.sqrt(price * 10.0 ** (d1 - d0))
        x, y = amounts_float(liq, s, s_lo, s_hi)
        return float(x) / 10.0**d0 * price + float(y) / 10.0**d1

    for tick in (-5_000, -1_000, 0, 1_500, 2_900, 8_000):
        s = 1.0001 ** (tick / 2) * base
        g = lp_greeks(liq, s, s_lo, s_hi, d0, d1)
        price = float(g.price)
        assert price == pytest.approx(float(human_price(s, d0, d1)))
        assert price == pytest.approx(1.0001**tick, rel=1e-12)
        h = price * 1e-4
        fd_delta = (value(price + h) - value(price - h)) / (2 * h)
        fd_gamma = (value(price + h) - 2 * value(price) + value(price - h)) / h**2
        assert float(g.value_token1) == pytest.approx(value(price), rel=1e-12)
        assert float(g.delta) == pytest.approx(fd_delta, rel=1e-6, abs=1e-9 * abs(float(g.amount0)) + 1e-12)
        assert float(g.delta) == float(g.amount0)
        if lo_tick < tick < hi_tick:
            assert float(g.gamma) == pytest.approx(fd_gamma, rel=1e-4)
            l_h = liq / 10 ** ((d0 + d1) / 2)
            assert float(g.gamma) == pytest.approx(-l_h / (2 * price**1.5), rel=1e-12)
            assert float(g.gamma) < 0
        else:
            assert float(g.gamma) == 0.0
            assert abs(fd_gamma) < 1e-6 * abs(float(g.value_token1)) / price**2


def test_usd_greeks_are_the_derivatives_of_usd_value() -> None:
    d0, d1 = 18, 6  # WETH / USDC-like decimals
    p0, p1 = 3_000.0, 1.0
    s = math.sqrt(p0 / p1 * 10.0 ** (d1 - d0))  # the pool arbitraged to the oracle ratio
    s_lo, s_hi = s * 0.9, s * 1.15
    liq = 4.2e15

    def v(q0: float, q1: float) -> float:
        return float(value_under_price_multipliers(liq, s, s_lo, s_hi, d0, d1, p0, p1, q0 / p0, q1 / p1))

    g = lp_usd_greeks(liq, s, s_lo, s_hi, d0, d1, p0, p1)
    assert float(g.value_usd) == pytest.approx(v(p0, p1), rel=1e-12)
    h0, h1 = p0 * 1e-4, p1 * 1e-4
    assert float(g.delta0) == pytest.approx((v(p0 + h0, p1) - v(p0 - h0, p1)) / (2 * h0), rel=1e-6)
    assert float(g.delta1) == pytest.approx((v(p0, p1 + h1) - v(p0, p1 - h1)) / (2 * h1), rel=1e-6)
    g00 = (v(p0 + h0, p1) - 2 * v(p0, p1) + v(p0 - h0, p1)) / h0**2
    g11 = (v(p0, p1 + h1) - 2 * v(p0, p1) + v(p0, p1 - h1)) / h1**2
    g01 = (v(p0 + h0, p1 + h1) - v(p0 + h0, p1 - h1) - v(p0 - h0, p1 + h1) + v(p0 - h0, p1 - h1)) / (4 * h0 * h1)
    assert float(g.gamma00) == pytest.approx(g00, rel=1e-3)
    assert float(g.gamma11) == pytest.approx(g11, rel=1e-3)
    assert float(g.gamma01) == pytest.approx(g01, rel=1e-3)
    # Homogeneity of degree one: V = p0 ∂V/∂p0 + p1 ∂V/∂p1, and the Hessian annihilates (p0, p1).
    assert float(g.value_usd) == pytest.approx(p0 * float(g.delta0) + p1 * float(g.delta1), rel=1e-12)
    assert p0 * float(g.gamma00) + p1 * float(g.gamma01) == pytest.approx(0.0, abs=1e-12 * abs(float(g.gamma00)) * p0)


def test_value_under_price_multipliers_shapes_and_identity() -> None:
    n = 5
    rng = np.random.default_rng(3)
    liq = rng.uniform(1e15, 1e18, n)
    s = rng.uniform(0.5, 2.0, n) * 1e-6
    lo, hi = s * rng.uniform(0.7, 1.1, n), s * rng.uniform(1.05, 1.5, n)
    d0, d1 = np.full(n, 18), np.full(n, 6)
    p1 = rng.uniform(0.99, 1.01, n)
    p0 = human_price(s, d0, d1) * p1  # the pools arbitraged to the USD ratio
    fees0, fees1 = rng.uniform(0, 1, n), rng.uniform(0, 10, n)
    m0 = np.array([[1.0] * n, [0.5] * n, [2.0] * n])
    m1 = np.ones((3, n))
    out = value_under_price_multipliers(liq, s, lo, hi, d0, d1, p0, p1, m0, m1, fees0, fees1)
    assert out.shape == (3, n)
    g = lp_usd_greeks(liq, s, lo, hi, d0, d1, p0, p1)
    np.testing.assert_allclose(out[0], g.value_usd + fees0 * p0 + fees1 * p1, rtol=1e-12)
    # Concavity (impermanent loss): after a move either way the LP is worth at most the amounts it held before.
    for k, m in ((1, 0.5), (2, 2.0)):
        hold = (g.delta0 + fees0) * p0 * m + (g.delta1 + fees1) * p1
        assert np.all(out[k] <= hold * (1 + 1e-12))
        assert np.all(out[k] > 0)


def test_exact_value_identity_in_fractions() -> None:
    # x·P + y with exact amounts equals the value from the float path to float precision.
    lo, hi, tick = -887_220, 887_220, 0
    liq = 10**24
    x, y = amounts_for_burn(get_sqrt_ratio_at_tick(tick), tick, lo, hi, liq)
    exact = Fraction(x) * 1 + Fraction(y)
    g = lp_greeks(liq, 1.0, get_sqrt_ratio_at_tick(lo) / Q96, get_sqrt_ratio_at_tick(hi) / Q96, 0, 0)
    assert float(g.value_token1) == pytest.approx(float(exact), rel=1e-12)
