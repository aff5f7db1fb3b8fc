"""Uniswap v3's typed details: what the sync stores with each range leg (the position NFT, its liquidity, ticks
and range, the leg's principal, fees and Greeks), with each health (the wallet's LP value and delta) and with
each pool."""

from __future__ import annotations

from pydantic import Field

from aggregator.venues.detail import BigInt, Detail, RawInt, StoredDetails

__all__ = ["STORED", "UniswapHealthDetail", "UniswapLegDetail", "UniswapPoolDetail"]


class UniswapLegDetail(Detail):
    """One token leg of a position NFT (both legs carry the NFT's figures, then the leg's own)."""

    token_id: int | str | None = None
    """The position NFT's id."""
    pool: str | None = None
    """The pool's address."""
    fee: int | None = None
    """The pool's fee tier, in hundredths of a bip (500: 0.05 %)."""
    tick_lower: RawInt
    """The range's lower tick."""
    tick_upper: RawInt
    """The range's upper tick (exclusive)."""
    tick: int | None = None
    """The pool's current tick."""
    in_range: bool | None = None
    """The pool's tick is inside the range (the position earns fees)."""
    liquidity: BigInt
    """The position's liquidity."""
    gamma00: float | None = None
    """d²(USD value)/d(token0 USD price)², in the whole-token units of the Greeks (:func:`riskcore.clmm`)."""
    gamma01: float | None = None
    """d²(USD value)/d(token0 price)d(token1 price)."""
    gamma11: float | None = None
    """d²(USD value)/d(token1 USD price)²."""
    range_base: str | None = None
    """The symbol the range's prices are quoted for (the pricier token)."""
    range_quote: str | None = None
    """The symbol the range's prices are quoted in."""
    range_lower: float | None = None
    """The range's lower bound, quote tokens per base token."""
    range_upper: float | None = None
    """The range's upper bound, quote tokens per base token."""
    range_price: float | None = None
    """The pool's price now, quote tokens per base token."""
    token0: str | None = None
    """The pool's token0 symbol."""
    token1: str | None = None
    """The pool's token1 symbol."""
    principal_raw: BigInt | None = None
    """The leg's principal (what ``decreaseLiquidity(full)`` returns), in the token's units."""
    fees_raw: BigInt = 0
    """The leg's uncollected fees, in the token's units (a what-if adds them to the leg's revalued principal)."""
    delta: float | None = None
    """d(USD value)/d(the token's USD price), in whole tokens."""
    fees: float | None = None
    """The leg's uncollected fees, in whole tokens."""
    fees_usd: float | None = None
    """The same, USD."""


class UniswapHealthDetail(Detail):
    """The wallet's LP positions on the venue: their value and their delta per token."""

    value_usd: float
    """Principal plus uncollected fees of every range, USD."""
    delta: dict[str, float] = Field(default_factory=dict)
    """Per token symbol: d(USD value)/d(its USD price), in whole tokens."""


class UniswapPoolDetail(Detail):
    """A pool of the venue's stored market state."""

    symbol: str
    """``token0/token1 fee``, by symbol."""
    fee: int
    """The pool's fee tier, in hundredths of a bip."""
    token0: str
    """token0's address."""
    token1: str
    """token1's address."""


STORED = StoredDetails(positions={"lp": UniswapLegDetail}, health=UniswapHealthDetail, markets=UniswapPoolDetail)
"""The models of what the sync stores."""
