"""The devnet's Chainlink-shaped USD price feeds (``MockV3Aggregator``, 8 decimals), one per reserve.

The token market's oracle reads them (``latestAnswer``), and so can any connector (``latestRoundData`` /
``decimals``); :func:`set_price` also moves every other venue's prices to match (each on-chain venue part's
``sync_price``, then the local venue API's marks).
``updateAnswer`` stamps ``updatedAt`` with the block timestamp and starts a new round.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from devnet.deploy import ADMIN, FEED_DECIMALS, feed_name
from devnet.evm import Receipt, eth_call, transact
from devnet.models import DevnetInfo
from devnet.venues import chain_parts

__all__ = ["RoundData", "latest_round", "refresh_feeds", "set_price", "sync_prices"]

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
    """Set the USD price of token ``symbol`` (rounded to 8 decimals) on every venue; return the receipt of the
    feed's ``updateAnswer``.

    Every on-chain venue first (:func:`sync_prices`: e.g. oracles recomputed from both tokens' feed answers, the
    new one included; pools swapped to the ratio of both answers), then the local venue API's marks when
    ``devnet.perp_api.set_mark`` exists, and last the Chainlink feed itself (which the token market's oracle
    reads), so that the feed's ``updatedAt`` is still the latest block's timestamp afterwards.
    """
    answer = (Decimal(str(usd)) * _SCALE).to_integral_value(ROUND_HALF_EVEN)
    if answer <= 0:
        raise ValueError(f"price must be positive, got {usd}")
    sync_prices(info, symbol, usd, int(answer))
    return transact(info, ADMIN, info.contract(feed_name(symbol)), "updateAnswer(int256)", int(answer))


def sync_prices(info: DevnetInfo, symbol: str, usd: float | Decimal, answer_raw: int | None = None) -> None:
    """Bring the other venues to ``symbol`` = ``usd``: every on-chain venue part's ``sync_price`` (registry order;
    ``answer_raw``, the 8-decimal answer the feed has or is about to get, stands in for ``symbol``'s), then the
    local venue API's marks if ``devnet.perp_api`` provides ``set_mark(info, symbol, usd)``. Venues missing from
    ``info`` are skipped."""
    answers: Mapping[str, int] | None = {symbol: answer_raw} if answer_raw is not None else None
    for part in chain_parts():
        if part.sync_price is not None and part.present(info):
            part.sync_price(info, symbol, answers)
    try:
        from devnet import perp_api  # type: ignore[attr-defined,unused-ignore]  # the local venue API
    except ImportError:
        return
    set_mark = getattr(perp_api, "set_mark", None)
    if callable(set_mark):
        set_mark(info, symbol, usd)


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
