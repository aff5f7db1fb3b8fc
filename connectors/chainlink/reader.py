"""Block-pinned reads of Chainlink-shaped aggregators: ``latestRoundData()`` and ``decimals()``.

Split into a plan (:func:`plan_feeds`: the calls, two per feed) and a decoder (:func:`decode_feeds`), so a
venue connector can put feed reads in its own multicall batches; :func:`read_feeds` does both.
Staleness is judged against the timestamp of the block the read is pinned to, never the wall clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from connectors.chainlink.models import FeedRound
from connectors.errors import CallRevertedError, DecodeError
from connectors.evm.abi import Fn
from connectors.evm.multicall import Call, CallResult, Multicall, Plan
from connectors.types import Address, BlockRef, checksum

__all__ = [
    "DECIMALS",
    "DEFAULT_HEARTBEAT_S",
    "LATEST_ROUND_DATA",
    "decode_feeds",
    "feeds_plan",
    "plan_feeds",
    "read_feeds",
]

LATEST_ROUND_DATA = Fn("latestRoundData()(uint80,int256,uint256,uint256,uint80)")
DECIMALS = Fn("decimals()(uint8)")
DEFAULT_HEARTBEAT_S = 3600
"""Staleness bound for a feed absent from a heartbeat mapping (seconds)."""


def _heartbeat(heartbeat_s: int | Mapping[str, int], feed: str) -> int:
    if isinstance(heartbeat_s, int):
        return heartbeat_s
    return heartbeat_s.get(feed, DEFAULT_HEARTBEAT_S)


def plan_feeds(feeds: Sequence[str], *, required: bool = True) -> list[Call]:
    """Two calls per feed, in order: ``latestRoundData()`` then ``decimals()``.

    ``required=False`` lets a feed that is not Chainlink-shaped fail quietly (it is left out of the result).
    Raises :class:`InvalidAddressError` for a malformed address (before any I/O).
    """
    calls: list[Call] = []
    for f in feeds:
        addr = checksum(f)
        calls.append(Call(addr, LATEST_ROUND_DATA, allow_failure=not required))
        calls.append(Call(addr, DECIMALS, allow_failure=not required))
    return calls


def decode_feeds(
    feeds: Sequence[str],
    results: Sequence[CallResult],
    block: BlockRef,
    heartbeat_s: int | Mapping[str, int] = DEFAULT_HEARTBEAT_S,
    *,
    required: bool = True,
) -> dict[Address, FeedRound]:
    """Turn the results of :func:`plan_feeds` (same feeds, same order) into rounds keyed by checksummed feed.

    With ``required=False`` a feed whose calls failed is omitted; otherwise the failure raises.
    """
    if len(results) != 2 * len(feeds):
        raise DecodeError(f"{len(results)} results for {len(feeds)} feeds (want two per feed)")
    hb: int | dict[str, int] = (
        heartbeat_s if isinstance(heartbeat_s, int) else {checksum(k): v for k, v in heartbeat_s.items()}
    )
    out: dict[Address, FeedRound] = {}
    for i, f in enumerate(feeds):
        addr = checksum(f)
        rd, dec = results[2 * i], results[2 * i + 1]
        if not (rd.ok and dec.ok):
            if required:
                bad = rd if not rd.ok else dec
                raise CallRevertedError(
                    f"feed {addr}: {bad.call.fn.signature} failed: {bad.error}", bad.raw, addr, reason=bad.error
                )
            continue
        round_id, answer, started_at, updated_at, answered_in_round = rd.value
        out[addr] = FeedRound(
            feed=addr,
            round_id=round_id,
            answer_raw=answer,
            decimals=dec.value[0],
            started_at=started_at,
            updated_at=updated_at,
            answered_in_round=answered_in_round,
            block_timestamp=block.timestamp,
            heartbeat_s=_heartbeat(hb, addr),
        )
    return out


def feeds_plan(
    feeds: Sequence[str],
    block: BlockRef,
    heartbeat_s: int | Mapping[str, int] = DEFAULT_HEARTBEAT_S,
    *,
    required: bool = True,
) -> Plan[dict[Address, FeedRound]]:
    """:func:`plan_feeds` and :func:`decode_feeds` bundled as a :class:`Plan` for :meth:`Multicall.run_many`."""
    feeds = list(feeds)
    calls = plan_feeds(feeds, required=required)

    def decode(results: Sequence[CallResult]) -> dict[Address, FeedRound]:
        return decode_feeds(feeds, results, block, heartbeat_s, required=required)

    return Plan(calls, decode)


def read_feeds(
    multicall: Multicall,
    feeds: Sequence[str],
    block: BlockRef,
    heartbeat_s: int | Mapping[str, int] = DEFAULT_HEARTBEAT_S,
) -> dict[Address, FeedRound]:
    """``latestRoundData`` and ``decimals`` of every feed at ``block``, in one multicall batch.

    A feed that cannot be read raises :class:`CallRevertedError` / :class:`DecodeError` naming it.
    Quality flags (zero, negative, stale) are on the returned :class:`FeedRound`; nothing is filtered.
    """
    return multicall.run(feeds_plan(feeds, block, heartbeat_s), block)
