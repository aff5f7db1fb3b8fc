"""The local recompute's pure math (``riskcore.venues.<venue>.recompute``), on randomized states.

The chain-side exactness (recomputed = read, at the same block) is ``tests/test_recompute_exact.py``; here the
math is checked against independent references: the compounded interest against the exact exponential and its own
binomial series in rationals, the Aave account's figures against the rule in floats, Morpho's share conversions
against their rational values and the health rule, Uniswap's amounts against the continuous formulas.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from riskcore.fixedpoint import RAY, WAD
from riskcore.venues.aave_v3.health import AaveReserveParams, AaveUserBalance, account_data
from riskcore.venues.aave_v3.recompute import (
    SECONDS_PER_YEAR,
    AaveCachedBalance,
    compounded_interest_ray,
    recompute_account,
    recompute_balances,
    stable_debt_raw,
)
from riskcore.venues.morpho_blue.health import VIRTUAL_ASSETS, VIRTUAL_SHARES, MorphoMarketState
from riskcore.venues.morpho_blue.recompute import MorphoCachedPosition, position_assets, recompute_position
from riskcore.venues.uniswap_v3.position import (
    PoolPositionParams,
    TickFeeGrowth,
    UniswapV3PoolParams,
    UniswapV3PositionParams,
    get_sqrt_ratio_at_tick,
)
from riskcore.venues.uniswap_v3.recompute import market_ranges, recompute_amounts

SEED = 20261206


def _int(rng: np.random.Generator, lo: int, hi: int) -> int:
    """A random integer in [lo, hi) of any size (numpy's own stop at int64)."""
    return lo + int(rng.integers(0, 2**62)) * (hi - lo) // 2**62


# --- Aave -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("trial", range(200))
def test_compounded_interest_is_the_protocols_binomial_series_below_the_exponential(trial: int) -> None:
    rng = np.random.default_rng(SEED + trial)
    rate = _int(rng, 0, 10**9) * 10**18  # 0 .. 100 % a year, ray
    last = int(rng.integers(1_600_000_000, 1_700_000_000))
    dt = int(rng.choice([0, 1, 2, 3, int(rng.integers(4, 400 * 86_400))]))
    got = compounded_interest_ray(rate, last, last + dt)
    # The series in exact rationals: 1 + x + x²(e−1)/(2e) + x³(e−1)(e−2)/(6e²), x = r·e/Y, before truncation.
    r, y = Fraction(rate, RAY), Fraction(SECONDS_PER_YEAR)
    series = 1 + r * dt / y + (dt * (dt - 1) * r * r / (y * y)) / 2 \
        + (dt * (dt - 1) * max(dt - 2, 0) * r * r * r / (y * y * y)) / 6
    # The protocol truncates: the linear term and the halved/sixth terms (< 1 unit each), b² (< 1 unit, times
    # e(e−1)/2) and b³ (< 1 + r/Y units, times e(e−1)(e−2)/6): never above the series, never far below it.
    shortfall = series * RAY - got
    assert 0 <= shortfall <= 3 + Fraction(dt * dt, 2) + Fraction(dt**3, 3)
    assert got >= RAY + rate * dt // SECONDS_PER_YEAR
    assert got / RAY <= math.exp(rate / RAY * dt / SECONDS_PER_YEAR) * (1 + 1e-15)
    assert compounded_interest_ray(rate, last, last + dt + 3_600) >= got


def test_stable_debt_without_time_or_principal() -> None:
    assert compounded_interest_ray(5 * 10**25, 1_000, 1_000) == RAY
    assert stable_debt_raw(123_456_789, 5 * 10**25, 1_000, 1_000) == 123_456_789
    assert stable_debt_raw(0, 5 * 10**25, 1_000, 1_000 + SECONDS_PER_YEAR) == 0
    # A year at 10 %: e^0.1 less the series' fourth-order tail.
    year = stable_debt_raw(10**24, 10**26, 0, SECONDS_PER_YEAR)
    assert 1.105_16 < year / 10**24 < math.exp(0.1)
    with pytest.raises(ValueError, match="before the last update"):
        compounded_interest_ray(10**26, 2_000, 1_999)


def _reserve(rid: int, rng: np.random.Generator, index_ray: int) -> AaveReserveParams:
    return AaveReserveParams(
        reserve_id=rid, decimals=int(rng.choice([6, 8, 18])), ltv_bps=int(rng.integers(5_000, 8_000)),
        liquidation_threshold_bps=int(rng.integers(8_000, 9_000)), emode_category=0,
        price_raw=_int(rng, 10**7, 5 * 10**11), normalized_income_ray=index_ray,
        normalized_variable_debt_ray=index_ray + _int(rng, 0, RAY // 10),
    )


@pytest.mark.parametrize("trial", range(100))
def test_recomputed_account_is_the_rule_on_accrued_balances(trial: int) -> None:
    rng = np.random.default_rng(SEED + 1_000 + trial)
    reserves = {rid: _reserve(rid, rng, RAY + _int(rng, 0, RAY // 5)) for rid in range(4)}
    last = 1_700_000_000
    cached = []
    for rid, r in reserves.items():
        unit = 10**r.decimals
        cached.append(AaveCachedBalance(
            reserve_id=rid, scaled_a_token_balance_raw=_int(rng, 0, 10**6) * unit,
            scaled_variable_debt_raw=int(rng.integers(0, 10**5)) * unit,
            stable_principal_raw=int(rng.integers(0, 10**4)) * unit if rng.random() < 0.5 else 0,
            stable_rate_ray=_int(rng, 10**25, 2 * 10**26), stable_last_updated=last,
            usage_as_collateral=bool(rng.random() < 0.8), borrowing=True))
    now = last + int(rng.integers(0, 200 * 86_400))
    data = recompute_account(reserves, cached, 0, {}, now)
    # Same state, same block: the stable debt is the principal, and the rule is account_data's.
    same = recompute_account(reserves, cached, 0, {}, last)
    as_read = [AaveUserBalance(c.reserve_id, c.scaled_a_token_balance_raw, c.scaled_variable_debt_raw,
                               c.stable_principal_raw, c.usage_as_collateral, c.borrowing) for c in cached]
    assert same == account_data(reserves, as_read, 0, {})
    # Later: the rule in floats on the accrued balances agrees to float precision, and debt only grew.
    coll = lt_sum = debt = 0.0
    for c, b in zip(cached, recompute_balances(cached, now), strict=True):
        r = reserves[c.reserve_id]
        years = (now - last) / SECONDS_PER_YEAR
        expected_stable = c.stable_principal_raw * math.exp(c.stable_rate_ray / RAY * years)
        assert b.stable_debt_raw <= expected_stable * (1 + 1e-12) + 1
        assert b.stable_debt_raw >= c.stable_principal_raw
        price = r.price_raw / 10**r.decimals
        if c.usage_as_collateral:
            value = c.scaled_a_token_balance_raw * r.normalized_income_ray / RAY * price
            coll += value
            lt_sum += value * r.liquidation_threshold_bps / 1e4
        debt += (c.scaled_variable_debt_raw * r.normalized_variable_debt_ray / RAY + b.stable_debt_raw) * price
    assert data.total_debt_base_raw >= same.total_debt_base_raw
    assert data.total_collateral_base_raw == pytest.approx(coll, rel=1e-9, abs=4)
    assert data.total_debt_base_raw == pytest.approx(debt, rel=1e-9, abs=4)
    if data.total_debt_base_raw:
        assert data.health_factor_wad / WAD == pytest.approx(lt_sum / debt, rel=1e-3)


# --- Morpho -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("trial", range(200))
def test_morpho_position_assets_round_against_the_user(trial: int) -> None:
    rng = np.random.default_rng(SEED + 2_000 + trial)
    supply_assets = _int(rng, 10**6, 10**15)
    borrow_assets = _int(rng, 0, supply_assets)
    market = MorphoMarketState(
        total_supply_assets=supply_assets, total_supply_shares=supply_assets * 10**6 - int(rng.integers(0, 10**9)),
        total_borrow_assets=borrow_assets, total_borrow_shares=borrow_assets * 10**6 - int(rng.integers(0, 10**6)),
        last_update=0)
    pos = MorphoCachedPosition(_int(rng, 0, market.total_supply_shares),
                               _int(rng, 0, max(market.total_borrow_shares, 1)),
                               _int(rng, 0, 10**18))
    supply, borrow = position_assets(pos, market)
    exact_supply = Fraction(pos.supply_shares * (market.total_supply_assets + VIRTUAL_ASSETS),
                            market.total_supply_shares + VIRTUAL_SHARES)
    exact_borrow = Fraction(pos.borrow_shares * (market.total_borrow_assets + VIRTUAL_ASSETS),
                            market.total_borrow_shares + VIRTUAL_SHARES)
    assert supply == math.floor(exact_supply)
    assert borrow == math.ceil(exact_borrow)
    price = _int(rng, 10**20, 10**26)
    lltv = int(rng.choice([860, 915, 945])) * 10**15
    out = recompute_position(pos, market, price, lltv)
    assert (out.supply_assets_raw, out.borrow_assets_raw) == (supply, borrow)
    assert out.health.borrowed_raw == (borrow if pos.borrow_shares else 0)
    cap = pos.collateral_raw * price // 10**36 * lltv // WAD
    assert out.health.healthy == (pos.borrow_shares == 0 or cap >= borrow)


# --- Uniswap ----------------------------------------------------------------------------------------------------
def test_market_ranges_grow_with_ranges_not_holders() -> None:
    many = [("0xP", -600, 600)] * 1_000 + [("0xP", -60, 60), ("0xQ", 0, 10)] * 500
    assert market_ranges(many) == {"0xP": [(-600, 600), (-60, 60)], "0xQ": [(0, 10)]}
    with pytest.raises(ValueError, match="not below"):
        market_ranges([("0xP", 10, 10)])


@pytest.mark.parametrize("trial", range(100))
def test_recomputed_amounts_follow_the_continuous_formulas(trial: int) -> None:
    rng = np.random.default_rng(SEED + 3_000 + trial)
    lower = int(rng.integers(-50_000, 50_000)) // 10 * 10
    upper = lower + int(rng.integers(1, 2_000)) * 10
    tick = int(rng.integers(lower - 3_000, upper + 3_000))
    sqrt_price = get_sqrt_ratio_at_tick(tick)
    liquidity = _int(rng, 10**12, 10**20)
    growth0, growth1 = _int(rng, 0, 2**100), _int(rng, 0, 2**100)
    position = UniswapV3PositionParams(lower, upper, liquidity, 0, 0, 7, 11)
    pool = UniswapV3PoolParams(sqrt_price, tick, growth0, growth1)
    zero = TickFeeGrowth(0, 0)
    shared = PoolPositionParams(liquidity, 0, 0, 7, 11)
    out = recompute_amounts(position, pool, zero, zero, shared)
    sa, sb, sp = (get_sqrt_ratio_at_tick(t) / 2**96 for t in (lower, upper, tick))
    sp = min(max(sp, sa), sb)
    assert out.amount0_raw == pytest.approx(liquidity * (1 / sp - 1 / sb), rel=1e-9, abs=2)
    assert out.amount1_raw == pytest.approx(liquidity * (sp - sa), rel=1e-9, abs=2)
    # Fee growth inside: the whole global growth when in range (outside growths zero), none otherwise.
    inside = lower <= tick < upper
    assert out.fees0_raw == 7 + (growth0 * liquidity >> 128 if inside else 0)
    assert out.fees1_raw == 11 + (growth1 * liquidity >> 128 if inside else 0)
