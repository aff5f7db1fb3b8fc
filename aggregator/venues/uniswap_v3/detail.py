"""Uniswap v3's typed details: a range leg's position NFT, its liquidity and its ticks."""

from __future__ import annotations

from pydantic import field_validator

from aggregator.venues.detail import Detail

__all__ = ["UniswapLegDetail"]


class UniswapLegDetail(Detail):
    """One token leg of a position NFT (both legs carry the NFT's figures); ``liquidity`` is stored as a decimal
    string (it may exceed 2**53)."""

    token_id: int | str | None = None
    liquidity: int
    tick_lower: int
    tick_upper: int
    fees_raw: int = 0
    """The leg's uncollected fees, in the token's units (a what-if adds them to the leg's revalued principal)."""

    @field_validator("liquidity", "tick_lower", "tick_upper", "fees_raw", mode="before")
    @classmethod
    def _integer(cls, value: object) -> int:
        return int(str(value))
