"""Aave health rule: hand-worked cases, the protocol's rounding, and the float path against the exact one."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pytest

from riskcore.fixedpoint import percent_mul, ray_div, ray_mul, wad_div
from riskcore.units import RAY, UINT256_MAX, WAD
from riskcore.venues.aave_v3.health import (
    AaveEMode,
    AaveReserveParams,
    AaveUserBalance,
    account_data,
    health_factor,
    withdraw_check,
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


def _withdraw_reference(reserves: dict[int, AaveReserveParams], balances: list[AaveUserBalance], reserve_id: int,
                        user_emode: int, emodes: dict[int, AaveEMode], amount: int) -> bool:
    """The withdrawal check as the balances after it give it: account_data recomputed from scratch."""
    own = next(b for b in balances if b.reserve_id == reserve_id)
    reserve = reserves[reserve_id]
    balance = ray_mul(own.scaled_a_token_balance_raw, reserve.normalized_income_ray)
    after = list(balances)
    if amount:
        scaled = max(own.scaled_a_token_balance_raw - ray_div(amount, reserve.normalized_income_ray), 0)
        changed = dataclasses.replace(own, scaled_a_token_balance_raw=scaled,
                                      usage_as_collateral=own.usage_as_collateral and amount != balance)
        after = [changed if b.reserve_id == reserve_id else b for b in balances]
    d = account_data(reserves, after, user_emode, emodes)
    return d.health_factor_wad >= WAD and (not d.has_zero_ltv_collateral or reserve.ltv_bps == 0)


def test_withdraw_check_equals_account_data_after_the_withdrawal() -> None:
    """The O(1) withdrawal check against account_data recomputed on the balances after it: random wallets (2-5
    reserves of 6, 8 or 18 decimals, zero-LTV and e-mode reserves, accrued indexes), amounts around each wallet's
    boundary, zero, the whole balance and beyond — equal every time."""
    rng = np.random.default_rng(20261206)
    emodes = {1: AaveEMode(ltv_bps=9_000, liquidation_threshold_bps=9_300), 2: AaveEMode(9_700, 9_750, 100_000_000)}
    checked = boundaries = 0
    for _ in range(400):
        n = int(rng.integers(2, 6))
        reserves = {}
        for rid in range(n):
            lt = int(rng.choice([0, 6_500, 7_800, 8_250, 8_600]))
            ltv = 0 if lt == 0 or rng.random() < 0.15 else lt - int(rng.integers(200, 1_000))
            reserves[rid] = AaveReserveParams(
                reserve_id=rid, decimals=int(rng.choice([6, 8, 18])), ltv_bps=ltv, liquidation_threshold_bps=lt,
                emode_category=int(rng.choice([0, 0, 1, 2])), price_raw=int(rng.integers(10**7, 5 * 10**11)),
                normalized_income_ray=10**27 + int(rng.integers(0, 10**6)) * 10**19 + int(rng.integers(0, 10**18)),
                normalized_variable_debt_ray=10**27 + int(rng.integers(0, 10**7)) * 10**19 + 7)
        user_emode = int(rng.choice([0, 0, 1, 2]))
        balances = []
        for rid, r in reserves.items():
            unit = 10**r.decimals
            coll = int(rng.integers(0, 50)) * unit // 3 if rng.random() < 0.8 else 0
            debt = int(rng.integers(0, 20)) * unit // 7 if rng.random() < 0.5 else 0
            balances.append(AaveUserBalance(rid, coll, debt, 0, coll > 0 and rng.random() < 0.9, debt > 0))
        for own in balances:
            if not own.scaled_a_token_balance_raw:
                continue
            r = reserves[own.reserve_id]
            balance = ray_mul(own.scaled_a_token_balance_raw, r.normalized_income_ray)
            fast = withdraw_check(reserves, balances, own.reserve_id, user_emode, emodes)

            slow = functools.partial(_withdraw_reference, reserves, balances, own.reserve_id, user_emode, emodes)
            amounts = {0, 1, balance - 1, balance, balance + 1,
                       *(balance * int(rng.integers(0, 1_001)) // 1_000 for _ in range(3))}
            if slow(0) and not slow(balance):  # a boundary inside: the amounts around it
                lo, hi = 0, balance
                while hi - lo > 1:
                    mid = (lo + hi) // 2
                    lo, hi = (mid, hi) if slow(mid) else (lo, mid)
                amounts |= {lo - 1, lo, hi, hi + 1}
                boundaries += 1
            for x in sorted(a for a in amounts if a >= 0):
                assert fast(x) == slow(x), (reserves, balances, own.reserve_id, user_emode, x)
                checked += 1
    assert checked > 3_000
    assert boundaries > 50
