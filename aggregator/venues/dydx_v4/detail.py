"""dYdX v4's typed details: the perp account's figures, as every perp venue stores them, and what its margin rule
reads again in a what-if (the subaccount's USDC, each position's size, oracle price and margin fractions)."""

from __future__ import annotations

from aggregator.venues.detail import Detail, PerpHealthDetail

__all__ = ["DydxAccountDetail", "DydxPerpDetail", "PerpHealthDetail"]


class DydxAccountDetail(PerpHealthDetail):
    """The subaccount: beside the perp figures, its USDC balance in USD."""

    usdc_usd: float


class DydxPerpDetail(Detail):
    """A perp position: its signed size, the market's oracle price, its margin fractions and the subaccount
    (``address/number``) it is held in."""

    size: float
    mark_usd: float
    maintenance_margin_fraction: float
    initial_margin_fraction: float
    account: str | None = None
