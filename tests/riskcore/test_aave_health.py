"""Aave health rule: hand-worked cases, the protocol's rounding, and the float path against the exact one."""

from __future__ import annotations

import numpy as np
import pytest

from riskcore.fixedpoint import percent_mul, ray_mul, wad_div
from riskcore.units import RAY, UINT256_MAX, WAD
from riskcore.venues.aave_v3.health import (
    AaveEMode,
    AaveReserveParams,
    AaveUserBalance,
    account_data,
    health_factor,
)

WETH = AaveReserveParams(0, 18, 8_000, 8_250, 1, 4_000 * 10**8, RAY, RAY)
DAI = AaveReserveParams(1, 18, 7_500, 8_000, 0, 1 * 10**8, RAY, RAY)
USDC = AaveReserveParams(2, 6, 8_000, 8_500, 0, 10**8, RAY, RAY)
RESERVES = {r.reserve_id: r for r in (WETH, DAI, USDC)}


def bal(rid: int, coll: int = 0, vdebt: int = 0, sdebt: int = 0, *, use: bool = True) -> AaveUserBalance:
    return AaveUserBalance(rid, coll, vdebt, sdebt, use and coll > 0, vdebt + sdebt > 0)


def test_hand_worked_case_from_the_devnet_notes() -> None:
    # 10 WETH at $4,000 (LT 82.5%) against 28,800 DAI: HF = 40,000 × 0.825 / 28,800 = 1.1458333…
    out = account_data(RESERVES, [bal(0, coll=10 * WAD), bal(1, vdebt=28_800 * WAD)])
    assert out.total_collateral_base_raw == 40_000 * 10**8
    assert out.total_debt_base_raw == 28_800 * 10**8
    assert out.current_liquidation_threshold_bps == 8_250
    assert out.health_factor_wad == wad_div(percent_mul(40_000 * 10**8, 8_250), 28_800 * 10**8)
    assert out.health_factor_wad == 1_145_833_333_333_333_333
    assert out.available_borrows_base_raw == 32_000 * 10**8 - 28_800 * 10**8


def test_no_debt_is_uint256_max_and_empty_wallet_is_zero() -> None:
    assert account_data(RESERVES, [bal(0, coll=WAD)]).health_factor_wad == UINT256_MAX
    empty = account_data(RESERVES, [])
    assert (empty.total_collateral_base_raw, empty.health_factor_wad) == (0, UINT256_MAX)


def test_weighted_threshold_truncates_like_solidity() -> None:
    # $1 of WETH-priced collateral at 8,250 and $2 of USDC at 8,500: (8250 + 17000) / 3 = 8416.67 → 8416
    reserves = {0: AaveReserveParams(0, 18, 8_000, 8_250, 0, 10**8, RAY, RAY), 2: USDC}
    out = account_data(reserves, [bal(0, coll=WAD), bal(2, coll=2 * 10**6), bal(2, vdebt=10**6)])
    assert out.current_liquidation_threshold_bps == 8_416


def test_indexes_apply_with_half_up_rounding() -> None:
    income = RAY + RAY // 3  # 1.333… ray
    debt_index = RAY + 7
    reserves = {0: AaveReserveParams(0, 18, 8_000, 8_250, 0, 3 * 10**8, income, RAY),
                1: AaveReserveParams(1, 6, 0, 0, 0, 10**8, RAY, debt_index)}
    out = account_data(reserves, [bal(0, coll=999_999_999_999), bal(1, vdebt=123_456_789)])
    assert out.collateral_base_raw[0] == ray_mul(999_999_999_999, income) * 3 * 10**8 // 10**18
    assert out.debt_base_raw[1] == ray_mul(123_456_789, debt_index) * 10**8 // 10**6


def test_collateral_flag_off_and_zero_threshold_do_not_count() -> None:
    reserves = {**RESERVES, 1: AaveReserveParams(1, 18, 0, 0, 0, 10**8, RAY, RAY)}
    out = account_data(reserves, [bal(0, coll=WAD, use=False), bal(1, coll=5 * WAD), bal(2, vdebt=10**6)])
    assert out.total_collateral_base_raw == 0
    assert out.health_factor_wad == 0


def test_emode_replaces_threshold_and_price_for_its_assets_only() -> None:
    cats = {1: AaveEMode(ltv_bps=9_000, liquidation_threshold_bps=9_300, price_raw=3_900 * 10**8)}
    balances = [bal(0, coll=WAD), bal(2, coll=1_000 * 10**6), bal(1, vdebt=2_000 * WAD)]
    plain = account_data(RESERVES, balances)
    emode = account_data(RESERVES, balances, user_emode=1, emode_categories=cats)
    assert plain.collateral_base_raw[0] == 4_000 * 10**8
    assert emode.collateral_base_raw[0] == 3_900 * 10**8  # category price source
    assert emode.collateral_base_raw[2] == 1_000 * 10**8  # USDC is not in category 1
    expected_lt = (3_900 * 9_300 + 1_000 * 8_500) // 4_900
    assert emode.current_liquidation_threshold_bps == expected_lt
    with pytest.raises(KeyError, match="e-mode category 2"):
        account_data(RESERVES, balances, user_emode=2, emode_categories=cats)


def test_float_path_agrees_with_exact_path_on_random_books() -> None:
    rng = np.random.default_rng(7)
    lts = np.array([r.liquidation_threshold_bps for r in RESERVES.values()]) / 1e4
    prices = np.array([r.price_raw for r in RESERVES.values()]) / 1e8
    decs = [r.decimals for r in RESERVES.values()]
    for _ in range(200):
        amounts = rng.integers(0, 10**6, size=(2, 3))
        coll_raw = [int(a) * 10 ** (d - 3) for a, d in zip(amounts[0], decs, strict=True)]
        debt_raw = [int(a) * 10 ** (d - 4) for a, d in zip(amounts[1], decs, strict=True)]
        balances = [bal(i, coll=c, vdebt=v) for i, (c, v) in enumerate(zip(coll_raw, debt_raw, strict=True))]
        exact = account_data(RESERVES, balances)
        coll_usd = np.array([c / 10**d for c, d in zip(coll_raw, decs, strict=True)]) * prices
        debt_usd = np.array([v / 10**d for v, d in zip(debt_raw, decs, strict=True)]) * prices
        fast = float(health_factor(coll_usd, lts, debt_usd))
        if exact.has_debt:
            # The protocol truncates the weighted threshold to whole bps: at most 1 bp of LT lower.
            onchain = exact.health_factor_wad / WAD
            assert onchain <= fast * (1 + 1e-12)
            lt_bps = max(exact.current_liquidation_threshold_bps, 1)
            assert fast - onchain <= fast / lt_bps + 1e-12
        else:
            assert fast == np.inf


def test_float_path_broadcasts_over_wallets_and_scenarios() -> None:
    coll = np.array([[[100.0, 0.0]], [[50.0, 50.0]]])  # (wallet=2, scenario=1, reserve=2)
    debt = np.array([[[0.0, 80.0]], [[0.0, 0.0]]])
    out = health_factor(coll, np.array([0.8, 0.5]), debt)
    assert out.shape == (2, 1)
    assert out[0, 0] == pytest.approx(1.0)
    assert np.isinf(out[1, 0])
