"""Aave v3's own rules: health factor and what feeds it, exactly as the Pool computes them."""

from __future__ import annotations

from riskcore.venues.aave_v3.health import (
    AaveAccountData,
    AaveEMode,
    AaveReserveParams,
    AaveUserBalance,
    account_data,
    health_factor,
)

__all__ = [
    "AaveAccountData",
    "AaveEMode",
    "AaveReserveParams",
    "AaveUserBalance",
    "account_data",
    "health_factor",
]
