"""Aave v3's own rules: health factor and what feeds it, exactly as the Pool computes them, and the liquidation
terms the risk engines apply to its accounts."""

from __future__ import annotations

from riskcore.venues.aave_v3.health import (
    AaveAccountData,
    AaveEMode,
    AaveReserveParams,
    AaveUserBalance,
    account_data,
    health_factor,
)
from riskcore.venues.aave_v3.liquidation import CLOSE_FACTOR, DEFAULT_BONUS, FULL_CLOSE_HF, account_spec
from riskcore.venues.aave_v3.whatif import (
    HEALTH_FACTOR_LIQUIDATION_THRESHOLD,
    AaveReserveFlags,
    AaveStep,
    AaveWallet,
    aave_borrow,
    aave_repay,
    aave_supply,
    aave_withdraw,
    percent_div,
)

__all__ = [
    "CLOSE_FACTOR",
    "DEFAULT_BONUS",
    "FULL_CLOSE_HF",
    "HEALTH_FACTOR_LIQUIDATION_THRESHOLD",
    "AaveAccountData",
    "AaveEMode",
    "AaveReserveFlags",
    "AaveReserveParams",
    "AaveStep",
    "AaveUserBalance",
    "AaveWallet",
    "aave_borrow",
    "aave_repay",
    "aave_supply",
    "aave_withdraw",
    "account_data",
    "account_spec",
    "health_factor",
    "percent_div",
]
