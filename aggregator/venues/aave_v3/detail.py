"""Aave v3's typed details: what a position carries of the reserve's rule and, for the what-if's replay, of the
reserve's state and the wallet's account."""

from __future__ import annotations

from pydantic import StrictInt

from aggregator.venues.detail import Detail, RawInt

__all__ = [
    "AaveBalanceDetail",
    "AaveEModeDetail",
    "AaveHealthDetail",
    "AaveMarketReserveDetail",
    "AavePositionDetail",
    "AaveReserveDetail",
]


class AavePositionDetail(Detail):
    """A collateral or debt position: the liquidation threshold and bonus in force for it (e-mode's where the
    wallet's category applies), in bps; ``None`` when the venue stored none."""

    liquidation_threshold_bps: StrictInt | None = None
    liquidation_bonus_bps: StrictInt | None = None


class AaveEModeDetail(Detail):
    """The wallet's e-mode category: its LTV, liquidation threshold and bonus (bps), and its own oracle price
    (0: none)."""

    ltv_bps: RawInt
    liquidation_threshold_bps: RawInt
    liquidation_bonus_bps: RawInt = 0
    price_raw: RawInt = 0


class AaveHealthDetail(Detail):
    """The wallet's account on the pool, beside its health: its configuration bits, its e-mode category and the
    oracle's base currency decimals."""

    user_configuration: RawInt
    emode_category: RawInt
    base_decimals: RawInt
    emode: AaveEModeDetail | None = None


class AaveReserveDetail(Detail):
    """A reserve's state at the snapshot's block, as ``calculateUserAccountData`` reads it (the reserve's own
    parameters, not e-mode's)."""

    reserve_id: RawInt
    decimals: RawInt
    reserve_ltv_bps: RawInt
    reserve_liquidation_threshold_bps: RawInt
    reserve_emode_category: RawInt
    price_raw: RawInt
    normalized_income_ray: RawInt
    normalized_variable_debt_ray: RawInt


class AaveBalanceDetail(AaveReserveDetail):
    """A collateral or debt position with everything a replay of the wallet's actions needs: the reserve's state,
    the wallet's scaled balance and configuration bits, and the terms in force for it."""

    scaled_raw: RawInt
    usage_as_collateral: bool
    borrowing: bool
    debt_ceiling: RawInt
    liquidation_threshold_bps: RawInt
    liquidation_bonus_bps: RawInt
    stable_debt_raw: RawInt = 0


class AaveMarketReserveDetail(AaveReserveDetail):
    """A reserve of the venue's stored market state: its state, its flags and the block it was read at."""

    symbol: str | None = None
    liquidation_bonus_bps: RawInt = 0
    debt_ceiling: RawInt = 0
    active: bool = True
    frozen: bool = False
    paused: bool = False
    borrowing_enabled: bool = True
