"""Morpho Blue's typed details: each watched market's own figures, kept with the wallet's health."""

from __future__ import annotations

from pydantic import Field

from aggregator.venues.detail import Detail

__all__ = ["MorphoHealthDetail", "MorphoMarketDetail"]


class MorphoMarketDetail(Detail):
    """One market of the wallet: its id and LLTV (a fraction)."""

    market_id: str
    lltv: float


class MorphoHealthDetail(Detail):
    """The wallet's health on the venue: every market it holds a position in."""

    markets: list[MorphoMarketDetail] = Field(default_factory=list)

    def by_market(self) -> dict[str, MorphoMarketDetail]:
        """The markets by id."""
        return {m.market_id: m for m in self.markets}
