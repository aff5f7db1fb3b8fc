"""Typed boundary models of the Chainlink reader."""

from __future__ import annotations

from connectors.types import Address, Frozen

__all__ = ["FeedRound"]


class FeedRound(Frozen):
    """``latestRoundData()`` and ``decimals()`` of one aggregator, with quality flags.

    ``age_s`` is measured against the timestamp of the block the read was pinned to, never the wall clock.
    """

    feed: Address
    round_id: int
    answer_raw: int
    """Signed; ``answer_raw / 10**decimals`` is the price."""
    decimals: int
    started_at: int
    updated_at: int
    answered_in_round: int
    block_timestamp: int
    heartbeat_s: int
    """The staleness bound this feed was judged against."""

    @property
    def age_s(self) -> int:
        """Seconds between the last update and the block the read was pinned to."""
        return max(0, self.block_timestamp - self.updated_at)

    @property
    def is_zero(self) -> bool:
        return self.answer_raw == 0

    @property
    def is_negative(self) -> bool:
        return self.answer_raw < 0

    @property
    def is_stale(self) -> bool:
        """Older than the feed's heartbeat."""
        return self.age_s > self.heartbeat_s

    @property
    def is_old_round(self) -> bool:
        """Answered in an earlier round than the latest (the round carries an old answer)."""
        return self.answered_in_round < self.round_id

    @property
    def flags(self) -> tuple[str, ...]:
        """Names of every quality problem (empty when the price is usable)."""
        out: list[str] = []
        if self.is_zero:
            out.append("zero")
        if self.is_negative:
            out.append("negative")
        if self.is_stale:
            out.append("stale")
        if self.is_old_round:
            out.append("old_round")
        return tuple(out)

    @property
    def is_valid(self) -> bool:
        return not self.flags
