"""Chainlink aggregator events: a new answer is a market (price) change of every venue that reads the feed.

``AnswerUpdated`` and ``NewRound`` are emitted by the aggregator that holds the rounds (an OCR aggregator behind
an ``EACAggregatorProxy`` on mainnet: :func:`underlying_aggregators` finds the address ``aggregator()`` answers,
and both are watched; a proxy's phase change is seen when the watch is next rebuilt).

The devnet's ``MockV3Aggregator`` (``@chainlink/contracts`` 1.4.0, ``src/v0.8/shared/mocks/MockV3Aggregator.sol``)
emits **no event at all**: its ``updateAnswer`` only writes storage. So on the devnet no price change is ever
seen in the logs, and a venue's market state (prices, and the indexes that accrue with time anyway) must be
re-read every block — one multicall; dirty sets then drive only the per-wallet re-reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from connectors.errors import ConnectorError, InvalidInputError
from connectors.evm.abi import Fn
from connectors.evm.logs import ZERO_ADDRESS, Event, Watched, market_reason, watched
from connectors.evm.rpc import RpcClient, hex_to_bytes
from connectors.types import BlockRef, checksum

__all__ = ["AGGREGATOR", "ANSWER_UPDATED", "NEW_ROUND", "feed_entries", "underlying_aggregators"]

AGGREGATOR = Fn("aggregator()(address)")
"""``EACAggregatorProxy.aggregator()``: the contract that holds the rounds and emits the events."""

ANSWER_UPDATED = Event("AnswerUpdated(int256 indexed current, uint256 indexed roundId, uint256 updatedAt)")
NEW_ROUND = Event("NewRound(uint256 indexed roundId, address indexed startedBy, uint256 startedAt)")


def feed_entries(feeds: Iterable[str]) -> tuple[Watched, ...]:
    """Watch ``feeds`` (aggregator addresses) for new answers and rounds: market reasons
    ``"AnswerUpdated <feed>"`` / ``"NewRound <feed>"``."""
    addresses = sorted(set(feeds))
    if not addresses:
        return ()
    return (watched(addresses, ANSWER_UPDATED, market_reason()), watched(addresses, NEW_ROUND, market_reason()))


def underlying_aggregators(rpc: RpcClient, feeds: Sequence[str], block: BlockRef) -> dict[str, str]:
    """Feed → the aggregator behind it, for the feeds that are proxies (``aggregator()`` answers an address), read
    at ``block`` in one batched request; a feed that is not a proxy (the devnet's mocks revert) is left out."""
    if not feeds:
        return {}
    calls = [("eth_call", rpc.call_params(feed, AGGREGATOR.encode(), block)) for feed in feeds]
    out: dict[str, str] = {}
    for feed, answer in zip(feeds, rpc.batch(calls, return_exceptions=True), strict=True):
        if isinstance(answer, ConnectorError):
            continue
        try:
            address = checksum(str(AGGREGATOR.decode_one(hex_to_bytes(answer, "aggregator()"))))
        except (ConnectorError, InvalidInputError):
            continue
        if address != ZERO_ADDRESS:
            out[checksum(feed)] = address
    return out
