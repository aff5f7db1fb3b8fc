"""dYdX v4's typed details: what the sync stores with each perp position (the indexer's figures, what the margin
rule ran on — the size, the oracle price, the margin fractions — and the perp figures every venue adds) and with
each subaccount (the perp account's figures, as every perp venue stores them, and its USDC)."""

from __future__ import annotations

from typing import Literal

from aggregator.venues.detail import Detail, PerpHealthDetail, PerpPositionDetail, StoredDetails

__all__ = ["STORED", "DydxAccountDetail", "DydxPerpDetail", "PerpHealthDetail"]


class DydxAccountDetail(PerpHealthDetail):
    """The subaccount: beside the perp figures, its USDC balance in USD."""

    usdc_usd: float
    """The subaccount's signed USDC balance (after unsettled funding), USD."""


class _DydxPerpFigures(Detail):
    """What a perp position stores before the perp figures every venue adds."""

    entry_px: str | None = None
    """The position's entry price, USD, a decimal string as the indexer reported it."""
    side: Literal["LONG", "SHORT"] | None = None
    """The position's side."""
    unrealized_pnl_usd: str | None = None
    """The indexer's unrealized PnL, USD, a decimal string."""
    account: str | None = None
    """The subaccount it is held in (``address/number``)."""
    liquidation_px: float | None = None
    """The liquidation price the venue's rule recomputed, USD (``None``: never)."""
    size: float
    """The signed size, in the market's base asset."""
    mark_usd: float
    """The market's oracle price, USD."""
    maintenance_margin_fraction: float
    """The market's maintenance margin fraction."""
    initial_margin_fraction: float
    """The market's initial margin fraction."""


class DydxPerpDetail(PerpPositionDetail, _DydxPerpFigures):
    """A perp position: the indexer's figures, what the margin rule ran on (a what-if reruns it at another oracle
    price), then the mark, notional and effective leverage every perp venue adds."""


STORED = StoredDetails(positions={"perp": DydxPerpDetail}, health=DydxAccountDetail)
"""The models of what the sync stores (its markets are its perpetual markets, with no parameters)."""
