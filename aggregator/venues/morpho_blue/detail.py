"""Morpho Blue's typed details: each watched market's own figures, kept with the wallet's health (and, for the
what-if's replay, the market's totals and the wallet's shares)."""

from __future__ import annotations

from pydantic import Field

from aggregator.venues.detail import Detail, RawInt

__all__ = [
    "MorphoHealthDetail",
    "MorphoMarketDetail",
    "MorphoMarketPositionDetail",
    "MorphoMarketStateDetail",
    "MorphoReplayDetail",
]


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


class MorphoMarketStateDetail(Detail):
    """A market's parameters and totals at the snapshot's block (accrued to ``accrued_to``), as a what-if replays
    them: its tokens, LLTV and fee (WAD), the oracle's price (1e36-scaled) and the supply and borrow totals."""

    market_id: str
    loan_token: str
    loan_symbol: str
    loan_decimals: RawInt
    collateral_token: str
    collateral_symbol: str
    collateral_decimals: RawInt
    lltv_wad: RawInt
    fee_wad: RawInt
    price_raw: RawInt
    total_supply_assets_raw: RawInt
    total_supply_shares: RawInt
    total_borrow_assets_raw: RawInt
    total_borrow_shares: RawInt
    accrued_to: RawInt


class MorphoMarketPositionDetail(MorphoMarketStateDetail):
    """A market of the wallet, with its position (shares and collateral) and the loan token's USD price."""

    loan_usd: float
    collateral_raw: RawInt
    borrow_shares: RawInt
    supply_shares: RawInt


class MorphoReplayDetail(Detail):
    """The wallet's health on the venue, as a what-if replays it: every market it holds a position in."""

    markets: list[MorphoMarketPositionDetail] = Field(default_factory=list)
