"""Hyperliquid's typed details: what the sync stores with each perp position (the venue's figures, what its margin
rule ran on — the exact size, the mark, the leverage tiers — and the perp figures every venue adds) and with each
account (the perp account's figures, as every perp venue stores them, and the cross account's raw value)."""

from __future__ import annotations

from aggregator.venues.detail import Detail, PerpHealthDetail, PerpPositionDetail, StoredDetails

__all__ = ["STORED", "HyperliquidAccountDetail", "HyperliquidPerpDetail", "PerpHealthDetail"]


class HyperliquidAccountDetail(PerpHealthDetail):
    """The account: beside the perp figures, the cross margin account's raw USD value."""

    cross_raw_usd: float
    """The cross margin account's raw USD (``totalRawUsd``: cash, before the positions' values)."""


class _HyperliquidPerpFigures(Detail):
    """What a perp position stores before the perp figures every venue adds."""

    entry_px: str | None = None
    """The position's entry price, USD, a decimal string as the venue reported it."""
    leverage: int | None = None
    """The position's leverage setting."""
    cross: bool
    """The position is cross margined (else isolated)."""
    unrealized_pnl_usd: str | None = None
    """The venue's unrealized PnL, USD, a decimal string."""
    margin_used_usd: str | None = None
    """The margin the venue says the position uses, USD, a decimal string."""
    venue_liquidation_px: str | None = None
    """The venue's own liquidation price, USD, a decimal string (``None``: the venue gives none)."""
    liquidation_px: float | None = None
    """The liquidation price the venue's rule recomputed, USD (``None``: never)."""
    szi: str | int | float
    """The signed size, in coins, as the venue wrote it (a decimal string)."""
    mark_usd: float
    """The mark implied by the reported position value (``positionValue / |szi|``), USD."""
    tier_lower_usd: list[float]
    """The margin tiers' lower notional bounds, USD."""
    tier_max_leverage: list[float]
    """The margin tiers' max leverages."""
    isolated_raw_usd: float | None = None
    """An isolated position's own raw USD margin (``None``: cross)."""


class HyperliquidPerpDetail(PerpPositionDetail, _HyperliquidPerpFigures):
    """A perp position: the venue's figures, what the margin rule ran on (a what-if reruns it at another mark),
    then the mark, notional and effective leverage every perp venue adds."""


STORED = StoredDetails(positions={"perp": HyperliquidPerpDetail}, health=HyperliquidAccountDetail)
"""The models of what the sync stores (its markets are its coins, with no parameters)."""
