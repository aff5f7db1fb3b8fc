"""Hyperliquid's own perp margin rule."""

from __future__ import annotations

from riskcore.venues.hyperliquid.health import (
    HYPERLIQUID_USD_QUANTUM,
    HyperliquidFigures,
    check_hyperliquid,
    hyperliquid_health,
    hyperliquid_tier_mmr,
)

__all__ = [
    "HYPERLIQUID_USD_QUANTUM",
    "HyperliquidFigures",
    "check_hyperliquid",
    "hyperliquid_health",
    "hyperliquid_tier_mmr",
]
