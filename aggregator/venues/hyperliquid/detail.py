"""Hyperliquid's typed details: the perp account's figures, as every perp venue stores them, and what its margin
rule reads again in a what-if (the cross account's raw value, each position's size, mark and margin tiers)."""

from __future__ import annotations

from aggregator.venues.detail import Detail, PerpHealthDetail

__all__ = ["HyperliquidAccountDetail", "HyperliquidPerpDetail", "PerpHealthDetail"]


class HyperliquidAccountDetail(PerpHealthDetail):
    """The account: beside the perp figures, the cross margin account's raw USD value."""

    cross_raw_usd: float


class HyperliquidPerpDetail(Detail):
    """A perp position: its signed size (``szi``, as the venue wrote it), mark, leverage tiers (lower notional
    bounds and max leverages), whether it is cross margined, and an isolated position's raw USD margin."""

    szi: str | int | float
    mark_usd: float
    tier_lower_usd: list[float]
    tier_max_leverage: list[float]
    cross: bool
    isolated_raw_usd: float | None = None
