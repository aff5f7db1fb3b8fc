"""Aave v3 account health, exactly as ``GenericLogic.calculateUserAccountData`` computes it.

Two forms:

* :func:`account_data` — the exact integer path. It repeats the protocol's own arithmetic (v3.0.x):
  per reserve, ``balance = scaled.rayMul(index)``, value in base currency
  ``balance * price / 10**decimals`` (truncated), the liquidation threshold weighted by value and
  truncated, then ``HF = totalCollateral.percentMul(avgLT).wadDiv(totalDebt)``. Its result is meant to
  equal ``Pool.getUserAccountData`` to the last unit.
* :func:`health_factor` — the vectorized float path over many wallets (and, later, scenarios), for
  revaluation where exactness to the wei is not the point.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from riskcore.fixedpoint import percent_mul, ray_div, ray_mul, wad_div
from riskcore.units import UINT256_MAX, WAD

__all__ = [
    "AaveAccountData",
    "AaveEMode",
    "AaveReserveParams",
    "AaveUserBalance",
    "account_data",
    "health_factor",
    "withdraw_check",
]


@dataclass(frozen=True, slots=True)
class AaveReserveParams:
    """What the health rule needs of one reserve, at one block (integers as the protocol holds them)."""

    reserve_id: int
    decimals: int
    ltv_bps: int
    liquidation_threshold_bps: int
    emode_category: int
    price_raw: int
    """Oracle price in base-currency units (1e8 = $1 on USD markets)."""
    normalized_income_ray: int
    normalized_variable_debt_ray: int


@dataclass(frozen=True, slots=True)
class AaveEMode:
    """An e-mode category's parameters; ``price_raw`` is 0 when it has no price source of its own."""

    ltv_bps: int
    liquidation_threshold_bps: int
    price_raw: int = 0


@dataclass(frozen=True, slots=True)
class AaveUserBalance:
    """A wallet's balances in one reserve, as read from the tokens, and its configuration bits."""

    reserve_id: int
    scaled_a_token_balance_raw: int
    scaled_variable_debt_raw: int
    stable_debt_raw: int
    usage_as_collateral: bool
    borrowing: bool


@dataclass(frozen=True, slots=True)
class AaveAccountData:
    """The result of the health rule for one wallet; every figure an exact integer.

    ``*_base_raw`` are in the oracle's base currency units; ``health_factor_wad`` is
    ``UINT256_MAX`` when there is no debt, as on-chain.
    """

    total_collateral_base_raw: int
    total_debt_base_raw: int
    available_borrows_base_raw: int
    current_liquidation_threshold_bps: int
    ltv_bps: int
    health_factor_wad: int
    has_zero_ltv_collateral: bool
    collateral_base_raw: Mapping[int, int]
    """Per reserve id: the value counted as collateral (0 for reserves not counted)."""
    debt_base_raw: Mapping[int, int]
    """Per reserve id: the debt value."""

    @property
    def has_debt(self) -> bool:
        return self.total_debt_base_raw != 0


def _price(reserve: AaveReserveParams, user_emode: int, emode: AaveEMode | None) -> int:
    if emode is not None and emode.price_raw != 0 and reserve.emode_category == user_emode:
        return emode.price_raw
    return reserve.price_raw


def account_data(
    reserves: Mapping[int, AaveReserveParams],
    balances: Sequence[AaveUserBalance],
    user_emode: int = 0,
    emode_categories: Mapping[int, AaveEMode] | None = None,
) -> AaveAccountData:
    """Compute one wallet's account data as ``Pool.getUserAccountData`` does.

    Parameters
    ----------
    reserves : mapping of reserve id to :class:`AaveReserveParams`
        Every reserve the wallet touches must be present.
    balances : sequence of :class:`AaveUserBalance`
        The wallet's balances; reserves without a configuration bit are ignored, as on-chain.
    user_emode : int
        The wallet's e-mode category (0 = none).
    emode_categories : mapping of category id to :class:`AaveEMode`, optional

    Returns
    -------
    AaveAccountData
        Integers in base-currency units, bps and WAD.
    """
    emode = None
    if user_emode != 0:
        if emode_categories is None or user_emode not in emode_categories:
            raise KeyError(f"wallet is in e-mode category {user_emode}, whose parameters were not given")
        emode = emode_categories[user_emode]

    total_collateral = total_debt = weighted_ltv = weighted_lt = 0
    has_zero_ltv = False
    collateral_by_reserve: dict[int, int] = {}
    debt_by_reserve: dict[int, int] = {}
    # The protocol walks reserves in id order; sums are order-independent but keep the same walk.
    for bal in sorted(balances, key=lambda b: b.reserve_id):
        if not (bal.usage_as_collateral or bal.borrowing):
            continue
        reserve = reserves[bal.reserve_id]
        unit = 10**reserve.decimals
        price = _price(reserve, user_emode, emode)
        category = emode if (emode is not None and reserve.emode_category == user_emode) else None
        if reserve.liquidation_threshold_bps != 0 and bal.usage_as_collateral:
            value = ray_mul(bal.scaled_a_token_balance_raw, reserve.normalized_income_ray) * price // unit
            collateral_by_reserve[bal.reserve_id] = value
            total_collateral += value
            src = category if category is not None else reserve
            ltv, lt = src.ltv_bps, src.liquidation_threshold_bps
            if reserve.ltv_bps != 0:
                weighted_ltv += value * ltv
            else:
                has_zero_ltv = True
            weighted_lt += value * lt
        if bal.borrowing:
            debt = bal.scaled_variable_debt_raw
            if debt != 0:
                debt = ray_mul(debt, reserve.normalized_variable_debt_ray)
            debt = (debt + bal.stable_debt_raw) * price // unit
            debt_by_reserve[bal.reserve_id] = debt
            total_debt += debt

    avg_ltv = weighted_ltv // total_collateral if total_collateral else 0
    avg_lt = weighted_lt // total_collateral if total_collateral else 0
    hf = UINT256_MAX if total_debt == 0 else wad_div(percent_mul(total_collateral, avg_lt), total_debt)
    borrowable = percent_mul(total_collateral, avg_ltv)
    available = borrowable - total_debt if borrowable > total_debt else 0
    return AaveAccountData(
        total_collateral_base_raw=total_collateral,
        total_debt_base_raw=total_debt,
        available_borrows_base_raw=available,
        current_liquidation_threshold_bps=avg_lt,
        ltv_bps=avg_ltv,
        health_factor_wad=hf,
        has_zero_ltv_collateral=has_zero_ltv,
        collateral_base_raw=collateral_by_reserve,
        debt_base_raw=debt_by_reserve,
    )


def withdraw_check(
    reserves: Mapping[int, AaveReserveParams],
    balances: Sequence[AaveUserBalance],
    reserve_id: int,
    user_emode: int = 0,
    emode_categories: Mapping[int, AaveEMode] | None = None,
) -> Callable[[int], bool]:
    """Whether ``Pool.withdraw`` of an amount of ``reserve_id`` passes the health check, in O(1) per amount.

    ``check(amount)`` equals what :func:`account_data` gives for the balances after the withdrawal (the aTokens
    burnt: ``scaled - amount.rayDiv(index)``, the collateral bit cleared when the whole balance goes): health
    factor ≥ 1 and, while any zero-LTV collateral remains, only a zero-LTV reserve withdrawn. The sums
    :func:`account_data` walks are taken once; an amount changes one reserve's term, and the same integer
    arithmetic (value truncation, weighted threshold, ``percentMul``, ``wadDiv``) runs on the new sums.

    Parameters
    ----------
    reserves, balances, user_emode, emode_categories
        As for :func:`account_data`; ``balances`` must hold ``reserve_id``.
    reserve_id : int
        The reserve withdrawn.

    Returns
    -------
    callable
        ``amount`` (int, token units) → bool.
    """
    emode = None
    if user_emode != 0:
        if emode_categories is None or user_emode not in emode_categories:
            raise KeyError(f"wallet is in e-mode category {user_emode}, whose parameters were not given")
        emode = emode_categories[user_emode]
    own = next(b for b in balances if b.reserve_id == reserve_id)
    target = reserves[reserve_id]
    total_collateral = total_debt = weighted_lt = 0
    zero_ltv_elsewhere = False
    for bal in balances:
        if not (bal.usage_as_collateral or bal.borrowing):
            continue
        reserve = reserves[bal.reserve_id]
        price = _price(reserve, user_emode, emode)
        unit = 10**reserve.decimals
        category = emode if (emode is not None and reserve.emode_category == user_emode) else None
        lt = (category if category is not None else reserve).liquidation_threshold_bps
        if reserve.liquidation_threshold_bps != 0 and bal.usage_as_collateral and bal.reserve_id != reserve_id:
            value = ray_mul(bal.scaled_a_token_balance_raw, reserve.normalized_income_ray) * price // unit
            total_collateral += value
            weighted_lt += value * lt
            zero_ltv_elsewhere |= reserve.ltv_bps == 0
        if bal.borrowing:
            debt = bal.scaled_variable_debt_raw
            if debt != 0:
                debt = ray_mul(debt, reserve.normalized_variable_debt_ray)
            total_debt += (debt + bal.stable_debt_raw) * price // unit
    price = _price(target, user_emode, emode)
    unit = 10**target.decimals
    category = emode if (emode is not None and target.emode_category == user_emode) else None
    target_lt = (category if category is not None else target).liquidation_threshold_bps
    counted = target.liquidation_threshold_bps != 0
    balance = ray_mul(own.scaled_a_token_balance_raw, target.normalized_income_ray)

    def check(amount: int) -> bool:
        if amount == 0:
            scaled, usage = own.scaled_a_token_balance_raw, own.usage_as_collateral
        else:
            scaled = max(own.scaled_a_token_balance_raw - ray_div(amount, target.normalized_income_ray), 0)
            usage = own.usage_as_collateral and amount != balance
        coll, weighted = total_collateral, weighted_lt
        if counted and usage:
            value = ray_mul(scaled, target.normalized_income_ray) * price // unit
            coll += value
            weighted += value * target_lt
        avg_lt = weighted // coll if coll else 0
        hf = UINT256_MAX if total_debt == 0 else wad_div(percent_mul(coll, avg_lt), total_debt)
        # zero-LTV collateral left anywhere: only a zero-LTV reserve may go (the target's own counts only then)
        return hf >= WAD and (not zero_ltv_elsewhere or target.ltv_bps == 0)

    return check


def health_factor(
    collateral_usd: npt.ArrayLike,
    liquidation_threshold: npt.ArrayLike,
    debt_usd: npt.ArrayLike,
) -> npt.NDArray[np.float64]:
    """Vectorized Aave health factor in floating point.

    Parameters
    ----------
    collateral_usd : array_like of shape (..., n_reserves)
        Value of each reserve counted as collateral, USD (0 where not collateral).
    liquidation_threshold : array_like of shape (..., n_reserves) or (n_reserves,)
        Liquidation threshold of each reserve as a fraction (0.825 for 8,250 bps).
    debt_usd : array_like of shape (..., n_reserves)
        Debt in each reserve, USD.

    Returns
    -------
    ndarray of shape (...)
        ``Σ collateral × LT / Σ debt``; ``inf`` where there is no debt.
    """
    coll = np.asarray(collateral_usd, dtype=np.float64)
    lt = np.asarray(liquidation_threshold, dtype=np.float64)
    debt = np.asarray(debt_usd, dtype=np.float64).sum(axis=-1)
    weighted = (coll * lt).sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out = np.where(debt > 0, weighted / np.where(debt > 0, debt, 1.0), np.inf)
    return np.asarray(out, dtype=np.float64)
