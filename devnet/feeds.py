"""The devnet's Chainlink-shaped USD price feeds (``MockV3Aggregator``, 8 decimals), one per reserve.

AaveOracle reads them (``latestAnswer``), and so can any connector (``latestRoundData``/``decimals``);
:func:`set_price` also moves the other venues' prices to match (Morpho oracles, Uniswap pools, perp mark).
``updateAnswer`` stamps ``updatedAt`` with the block timestamp and starts a new round.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from devnet.deploy import ADMIN, FEED_DECIMALS, feed_name
from devnet.evm import Receipt, eth_call, transact
from devnet.models import DevnetInfo

__all__ = ["RoundData", "latest_round", "refresh_feeds", "set_price"]

_SCALE = Decimal(10) ** FEED_DECIMALS


@dataclass(frozen=True)
class RoundData:
    """``latestRoundData()`` of a feed; ``answer_raw`` has :data:`~devnet.deploy.FEED_DECIMALS` decimals,
    ``updated_at`` is a unix timestamp (s) of the chain's clock."""

    round_id: int
    answer_raw: int
    started_at: int
    updated_at: int
    answered_in_round: int

    @property
    def price_usd(self) -> Decimal:
        """The answer in USD."""
        return Decimal(self.answer_raw) / _SCALE


def set_price(info: DevnetInfo, symbol: str, usd: float | Decimal) -> Receipt:
    """Set the USD price of reserve ``symbol`` (rounded to 8 decimals) on every venue; return the receipt
    of the feed's ``updateAnswer``.

    Every Morpho Blue oracle whose collateral or loan token is ``symbol`` (recomputed from both tokens'
    feed answers, the new one included), every Uniswap v3 pool holding ``symbol`` (swapped to the ratio of
    both answers), the local perp API's mark price when ``devnet.perp_api.set_mark`` exists (see
    :func:`devnet.venues.sync_prices`), and last the Chainlink feed itself (which AaveOracle reads), so
    that the feed's ``updatedAt`` is still the latest block's timestamp afterwards.
    """
    from devnet.venues import sync_prices  # venues -> morpho/uniswap -> this module

    answer = (Decimal(str(usd)) * _SCALE).to_integral_value(ROUND_HALF_EVEN)
    if answer <= 0:
        raise ValueError(f"price must be positive, got {usd}")
    sync_prices(info, symbol, usd, int(answer))
    return transact(info, ADMIN, info.contract(feed_name(symbol)), "updateAnswer(int256)", int(answer))


def latest_round(info: DevnetInfo, symbol: str) -> RoundData:
    """The feed's ``latestRoundData()``."""
    values = eth_call(
        info,
        info.contract(feed_name(symbol)),
        "latestRoundData()",
        (),
        ["uint80", "int256", "uint256", "uint256", "uint80"],
    )
    return RoundData(*(int(v) for v in values))


def refresh_feeds(info: DevnetInfo) -> None:
    """Re-post every feed's current answer, so ``updatedAt`` is the latest block's time (e.g. after a
    state load or :func:`devnet.evm.increase_time`)."""
    for symbol in info.tokens:
        feed = info.contract(feed_name(symbol))
        transact(info, ADMIN, feed, "updateAnswer(int256)", latest_round(info, symbol).answer_raw)
