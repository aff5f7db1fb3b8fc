"""Hyperliquid's own perp margin rule."""

from __future__ import annotations

from riskcore.venues.hyperliquid.health import (
    HYPERLIQUID_USD_QUANTUM,
    HyperliquidFigures,
    check_hyperliquid,
    hyperliquid_health,
    hyperliquid_tier_mmr,
)
from riskcore.venues.hyperliquid.recompute import HyperliquidReport, hyperliquid_reported_at

__all__ = [
    "HYPERLIQUID_USD_QUANTUM",
    "HyperliquidFigures",
    "HyperliquidReport",
    "check_hyperliquid",
    "hyperliquid_health",
    "hyperliquid_reported_at",
    "hyperliquid_tier_mmr",
]
