"""Aave v3: a wallet's balances and account data recomputed from its cached raw state and one block's market.

A wallet no event touched since its state was read holds the same *scaled* balances, the same configuration
bits, e-mode category and stable-debt principal, rate and timestamp; only the market moved (indexes accrue with
time, prices with the oracle). Its balances at the new block are therefore (``@aave/core-v3`` 1.19.3, protocol
v3.0.2, the version the devnet deploys):

* supply ``scaledBalanceOf × getReserveNormalizedIncome`` and variable debt
  ``scaledBalanceOf × getReserveNormalizedVariableDebt``, both ``WadRayMath.rayMul`` — **half up** in v3.0.x
  (v3.5+ rounds collateral down and debt up; the devnet's version does not, so neither do we);
* stable debt ``StableDebtToken.balanceOf``: ``principal.rayMul(calculateCompoundedInterest(rate, lastUpdated,
  block.timestamp))``, the protocol's three-term binomial approximation (``MathUtils``), 0 without a principal;

and the account data follow from :func:`riskcore.venues.aave_v3.health.account_data`, the protocol's own integer
walk of ``GenericLogic.calculateUserAccountData``. Pure integers: no I/O, no clock (the timestamp is passed in).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from riskcore.fixedpoint import RAY, ray_mul
from riskcore.venues.aave_v3.health import (
    AaveAccountData,
    AaveEMode,
    AaveReserveParams,
    AaveUserBalance,
    account_data,
)

__all__ = [
    "SECONDS_PER_YEAR",
    "AaveCachedBalance",
    "compounded_interest_ray",
    "recompute_account",
    "recompute_balances",
    "stable_debt_raw",
]

SECONDS_PER_YEAR = 365 * 86_400
"""``MathUtils.SECONDS_PER_YEAR`` (365 days), seconds."""


@dataclass(frozen=True, slots=True)
class AaveCachedBalance:
    """A wallet's raw state in one reserve, as read at some earlier block (nothing here accrues).

    Integers as the tokens hold them: scaled balances in the reserve token's raw units divided by the index
    (ray), the stable principal in raw units, its rate in ray per year, its last update in unix seconds.
    """

    reserve_id: int
    scaled_a_token_balance_raw: int
    scaled_variable_debt_raw: int
    stable_principal_raw: int
    stable_rate_ray: int
    stable_last_updated: int
    usage_as_collateral: bool
    borrowing: bool


def compounded_interest_ray(rate_ray: int, last_update: int, timestamp: int) -> int:
    """``MathUtils.calculateCompoundedInterest(rate, lastUpdateTimestamp, currentTimestamp)``, ray.

    Parameters
    ----------
    rate_ray : int
        Yearly rate, ray (1e27 = 100 %).
    last_update, timestamp : int
        Unix seconds; ``timestamp >= last_update`` (the protocol's checked subtraction reverts otherwise).

    Returns
    -------
    int
        ``RAY + r·e/Y + e(e−1)·b²/2 + e(e−1)(e−2)·b³/6`` with the protocol's truncations (``b²`` =
        ``rayMul(r, r) / Y²``, ``b³`` = ``rayMul(b², r) / Y``), ray.
    """
    exp = timestamp - last_update
    if exp < 0:
        raise ValueError(f"timestamp {timestamp} is before the last update {last_update}")
    if exp == 0:
        return RAY
    exp_minus_one = exp - 1
    exp_minus_two = exp - 2 if exp > 2 else 0
    base_power_two = ray_mul(rate_ray, rate_ray) // (SECONDS_PER_YEAR * SECONDS_PER_YEAR)
    base_power_three = ray_mul(base_power_two, rate_ray) // SECONDS_PER_YEAR
    second_term = exp * exp_minus_one * base_power_two // 2
    third_term = exp * exp_minus_one * exp_minus_two * base_power_three // 6
    return RAY + rate_ray * exp // SECONDS_PER_YEAR + second_term + third_term


def stable_debt_raw(principal_raw: int, rate_ray: int, last_update: int, timestamp: int) -> int:
    """``StableDebtToken.balanceOf`` at ``timestamp`` (raw token units): 0 without a principal, else the
    principal ``rayMul`` the compounded interest since the wallet's last stable-debt action."""
    if principal_raw == 0:
        return 0
    return ray_mul(principal_raw, compounded_interest_ray(rate_ray, last_update, timestamp))


def recompute_balances(cached: Sequence[AaveCachedBalance], timestamp: int) -> list[AaveUserBalance]:
    """The wallet's balances as :func:`~riskcore.venues.aave_v3.health.account_data` takes them at a block of
    ``timestamp`` (unix seconds): scaled balances kept (the rule multiplies them by the block's indexes), the
    stable debt accrued to the block. One entry per cached reserve, same order."""
    return [
        AaveUserBalance(
            reserve_id=c.reserve_id,
            scaled_a_token_balance_raw=c.scaled_a_token_balance_raw,
            scaled_variable_debt_raw=c.scaled_variable_debt_raw,
            stable_debt_raw=stable_debt_raw(c.stable_principal_raw, c.stable_rate_ray, c.stable_last_updated,
                                            timestamp),
            usage_as_collateral=c.usage_as_collateral,
            borrowing=c.borrowing,
        )
        for c in cached
    ]


def recompute_account(
    reserves: Mapping[int, AaveReserveParams],
    cached: Sequence[AaveCachedBalance],
    user_emode: int,
    emode_categories: Mapping[int, AaveEMode],
    timestamp: int,
) -> AaveAccountData:
    """``Pool.getUserAccountData`` of a wallet at a block of ``timestamp`` from its cached raw state and the
    block's reserves (prices in base-currency units, indexes in ray, as read at that block): base-currency
    integers, bps, the health factor in WAD (``UINT256_MAX`` without debt)."""
    return account_data(reserves, recompute_balances(cached, timestamp), user_emode, emode_categories)
