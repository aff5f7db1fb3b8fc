"""A perp venue kept live inside its rate limit: marks once per block, accounts from a stream and budgeted polls,
health recomputed locally.

A sync that re-reads every wallet of a perp venue each block costs one request per wallet (the venues have no
multi-user query) and cannot hold 10,000 wallets inside 1,200 weight a minute. :class:`LivePerpVenue` instead, per
block (:meth:`LivePerpVenue.refresh`):

1. reads the block's marks with ONE market-wide request (:meth:`read_marks`; again only when the block changes);
2. lets the venue's account stream (:mod:`connectors.stream`) carry the riskiest accounts it may (a venue may cap
   them) and confirms those whose subscription is live;
3. polls the others within the budget, nearest liquidation first, keeping the next block's marks request in
   reserve (:func:`~connectors.perpcache.poll_within_budget`); a 429 puts the budget on hold and keeps every
   account's last good state;
4. recomputes every tracked wallet's health from its cached positions × the block's marks with the venue's own rule
   (:meth:`recompute`): stale accounts are flagged ``stale`` with their age and reason, never dropped.

What is venue-specific (how to read one account, how cached positions are revalued and evaluated, which stream) is
the venue plugin's :class:`LiveParts` (``PluginBase.open_live``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aggregator.views import VenueHealth, VenueReading
from connectors.errors import ConnectorError
from connectors.perpcache import AccountCache, MarksPerBlock, PerpMarks, PollReport, StateStatus, poll_within_budget
from connectors.ratelimit import BudgetExhaustedError, RateBudget
from connectors.stream import AccountStream
from connectors.types import BlockRef

__all__ = ["LiveParts", "LivePerpVenue"]


@dataclass(frozen=True)
class LiveParts:
    """What a perp venue's plugin hands :class:`LivePerpVenue`.

    ``account_of(wallet)``: the venue's account id of a tracked wallet (None: the wallet has none on the venue);
    ``read_marks(block)``: one market-wide request; ``read_account(account) -> (state, observed_at_ms)``: one
    request (``poll_endpoint`` names it, as its rate limit does); ``evaluate([(wallet, state)], marks, block)``: the
    wallets' healths with their cached states revalued at ``marks`` by the venue's rule; ``new_stream(cache)``: the
    venue's account stream writing into ``cache`` (None without a WebSocket URL).
    """

    venue: str
    budget: RateBudget | None
    poll_endpoint: str
    marks_endpoint: str
    account_of: Callable[[str], str | None]
    read_marks: Callable[[int | None], PerpMarks]
    read_account: Callable[[str], tuple[Any, int]]
    evaluate: Callable[[Sequence[tuple[str, Any]], PerpMarks, BlockRef], VenueReading]
    close: Callable[[], None]
    new_stream: Callable[[AccountCache[Any]], AccountStream] | None = None


class LivePerpVenue:
    """One perp venue's tracked wallets, kept inside its rate limit (see the module's docstring).

    Parameters
    ----------
    parts:
        The venue's :class:`LiveParts`.
    stale_after_s:
        An account not confirmed for longer is stale (shown with its age).
    repoll_after_s:
        A fresh account is not polled again sooner (default: half of ``stale_after_s``).
    clock:
        Monotonic seconds (injected in tests).
    """

    def __init__(
        self,
        parts: LiveParts,
        *,
        stale_after_s: float = 60.0,
        repoll_after_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.parts = parts
        self.venue = parts.venue
        self.budget = parts.budget
        self.cache: AccountCache[Any] = AccountCache(stale_after_s=stale_after_s, clock=clock)
        self.repoll_after_s = stale_after_s / 2 if repoll_after_s is None else repoll_after_s
        self.marks = MarksPerBlock(parts.read_marks)
        self._block: int | None = None
        self._wallets: dict[str, str] = {}
        """Tracked wallet → its venue account."""
        self.health: dict[str, float | None] = {}
        """Each tracked account's health at the last recompute (None: no requirement)."""
        self.stream: AccountStream | None = None
        self.last_poll: PollReport | None = None

    # --- wallets ---------------------------------------------------------------------------------------
    def track(self, wallets: Sequence[str]) -> list[str]:
        """Track ``wallets`` (those with an account on the venue); returns their accounts."""
        added = []
        for w in wallets:
            account = self.parts.account_of(w)
            if account is not None:
                self._wallets[w] = account
                added.append(account)
        self.cache.track(added)
        return added

    @property
    def wallets(self) -> list[str]:
        return list(self._wallets)

    def status(self, wallet: str) -> StateStatus:
        return self.cache.status(self._wallets[wallet])

    # --- the block's marks -----------------------------------------------------------------------------
    def read_marks(self, block: int | None = None) -> PerpMarks:
        """The block's marks: one market-wide request per block, whatever the wallet count."""
        if block is not None:
            self._block = block
        last = self.marks.last
        if last is not None and block is not None and last.block == block:
            return last
        held = 0.0 if self.budget is None else self.budget.held_for()
        if held > 0:  # the venue said 429: ask nothing before its Retry-After
            raise BudgetExhaustedError(f"{self.venue}: marks of block {block}: the venue's 429 holds the budget for "
                                       f"{held:.1f} s more", retry_after=held)
        return self.marks.get(block)

    # --- streams ---------------------------------------------------------------------------------------
    def start_stream(self) -> AccountStream | None:
        """Start the venue's account stream for the riskiest tracked accounts (None when it has none)."""
        if self.parts.new_stream is None:
            return None
        if self.stream is None:
            self.stream = self.parts.new_stream(self.cache)
            self.stream.follow(self._riskiest())
            self.stream.start()
        return self.stream

    def _riskiest(self) -> list[str]:
        accounts = list(dict.fromkeys(self._wallets.values()))

        def key(a: str) -> float:
            h = self.health.get(a, -math.inf)
            return math.inf if h is None else h

        return sorted(accounts, key=key)

    def _streamed(self) -> set[str]:
        if self.stream is None or not self.stream.connected.is_set():
            return set()
        return set(self.stream.subscribed())

    # --- polls -----------------------------------------------------------------------------------------
    def poll(self, wallets: Sequence[str] | None = None, *, block: int | None = None) -> PollReport:
        """Re-read what the budget affords now of ``wallets`` (default: every tracked wallet the stream does not
        carry live, and not confirmed within ``repoll_after_s``), nearest liquidation first, keeping the weight of
        one marks request in reserve."""
        if wallets is not None:
            self.track(wallets)
            candidates = [self._wallets[w] for w in wallets if w in self._wallets]
        else:
            live = self._streamed()
            candidates = []
            for a in dict.fromkeys(self._wallets.values()):
                st = self.cache.status(a)
                if a in live and st.is_fresh:
                    continue
                if st.is_fresh and st.age_s < self.repoll_after_s:
                    continue
                candidates.append(a)
        reserve = 0.0 if self.budget is None else float(self.budget.limit.weight(self.parts.marks_endpoint))
        report = poll_within_budget(candidates, self.budget, self.health, self.parts.read_account, self.cache,
                                    endpoint=self.parts.poll_endpoint,
                                    block=block if block is not None else self._block, reserve=reserve)
        self.last_poll = report
        return report

    # --- health ----------------------------------------------------------------------------------------
    def recompute(self, block: BlockRef) -> VenueReading:
        """Every tracked wallet's health at ``block``: cached positions × the block's marks (one request for the
        marks, at most, per block). Stale accounts carry the flag ``stale`` and ``extra["state"]`` (status, age,
        reason); wallets never read are left out (``extra`` of none) and counted in :meth:`missing`."""
        try:
            marks = self.read_marks(block.number)
            marks_note: str | None = None
        except ConnectorError as exc:
            last = self.marks.last
            if last is None:
                return VenueReading(venue=self.venue, kind="perp", block=block,
                                    error=f"marks of block {block.number}: {type(exc).__name__}: {exc}")
            marks, marks_note = last, f"marks of block {last.block} (block {block.number}: {type(exc).__name__})"
        pairs: list[tuple[str, Any]] = []
        statuses: dict[str, StateStatus] = {}
        for wallet, account in self._wallets.items():
            cached = self.cache.get(account)
            if cached is None:
                continue
            pairs.append((wallet, cached.state))
            statuses[wallet] = self.cache.status(account)
        reading = self.parts.evaluate(pairs, marks, block)
        healths: list[VenueHealth] = []
        for h in reading.healths:
            st = statuses.get(h.wallet)
            tracked = self._wallets.get(h.wallet)
            if tracked is not None:
                self.health[tracked] = h.health_factor
            if st is None:
                healths.append(h)
                continue
            stale = not st.is_fresh or marks_note is not None
            state = {"status": "stale" if stale else "fresh", "age_s": st.age_s,
                     "reason": st.reason if st.reason is not None else marks_note,
                     "marks_source": marks.source, "marks_block": marks.block}
            healths.append(dataclasses.replace(
                h, flags=(*h.flags, "stale") if stale and "stale" not in h.flags else h.flags,
                extra={**h.extra, "state": state}))
        return dataclasses.replace(reading, healths=tuple(healths))

    def missing(self) -> list[str]:
        """Tracked wallets never read successfully."""
        return [w for w, a in self._wallets.items() if self.cache.get(a) is None]

    def refresh(self, block: BlockRef) -> VenueReading:
        """One block: its marks (one request), the stream's live accounts confirmed, polls within the budget for
        the rest (riskiest first), every tracked wallet recomputed."""
        self._block = block.number
        with contextlib.suppress(ConnectorError):  # recompute falls back on the last marks, flagged
            self.read_marks(block.number)
        if self.stream is not None:
            self.stream.follow(self._riskiest())
            for account in self._streamed():
                self.cache.confirm(account, block=block.number)
        self.poll(block=block.number)
        return self.recompute(block)

    def close(self) -> None:
        if self.stream is not None:
            self.stream.stop()
        self.parts.close()
