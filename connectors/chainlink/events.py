"""Chainlink aggregator events: a new answer is a market (price) change of every venue that reads the feed.

``AnswerUpdated`` and ``NewRound`` are emitted by the aggregator that holds the rounds (an OCR aggregator behind
an ``EACAggregatorProxy`` on mainnet: watch the address ``aggregator()`` answers, and rebuild the watch when the
proxy's phase changes). The devnet's ``MockV3Aggregator`` (``@chainlink/contracts`` 1.4.0,
``src/v0.8/shared/mocks/MockV3Aggregator.sol``) emits **no event at all**: its ``updateAnswer`` only writes
storage. So on the devnet no price change is ever seen in the logs, and a venue's market state (prices, and
the indexes that accrue with time anyway) must be re-read every block — one multicall; dirty sets then drive
only the per-wallet re-reads.
"""

from __future__ import annotations

from collections.abc import Iterable

from connectors.evm.logs import Event, Watched, market_reason, watched

__all__ = ["ANSWER_UPDATED", "NEW_ROUND", "feed_entries"]

ANSWER_UPDATED = Event("AnswerUpdated(int256 indexed current, uint256 indexed roundId, uint256 updatedAt)")
NEW_ROUND = Event("NewRound(uint256 indexed roundId, address indexed startedBy, uint256 startedAt)")


def feed_entries(feeds: Iterable[str]) -> tuple[Watched, ...]:
    """Watch ``feeds`` (aggregator addresses) for new answers and rounds: market reasons
    ``"AnswerUpdated <feed>"`` / ``"NewRound <feed>"``."""
    addresses = sorted(set(feeds))
    if not addresses:
        return ()
    return (watched(addresses, ANSWER_UPDATED, market_reason()), watched(addresses, NEW_ROUND, market_reason()))
