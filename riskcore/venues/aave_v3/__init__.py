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

__all__ = [
    "CLOSE_FACTOR",
    "DEFAULT_BONUS",
    "FULL_CLOSE_HF",
    "AaveAccountData",
    "AaveEMode",
    "AaveReserveParams",
    "AaveUserBalance",
    "account_data",
    "account_spec",
    "health_factor",
]
