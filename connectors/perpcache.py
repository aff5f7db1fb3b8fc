"""Perp accounts kept between reads, and reads that fit the venue's rate budget.

A perp venue answers one account per request (no multi-user query) under a budget of request weight per minute per
IP, so a block's refresh cannot re-read every wallet. Instead:

- :class:`PerpMarks`: the prices every position is valued at, from ONE market-wide request per block
  (:class:`MarksPerBlock` asks again only when the block changes), whatever the wallet count;
- :class:`AccountCache`: each account's last good state (positions and cash, as the venue's decoded model), the
  block and venue time it was confirmed at, and a :class:`StateStatus` — fresh, or stale with its age and why (a
  failed poll, a 429, a dropped stream). A failure never replaces the last good state;
- :func:`plan_polls` / :func:`poll_within_budget`: which accounts to re-read now — nearest liquidation first — and
  only as many as the budget affords without waiting (:meth:`~connectors.ratelimit.RateBudget.affordable`), keeping a
  reserve for the next block's marks. Accounts that change are also pushed by the venue's account stream
  (:mod:`connectors.stream`), which writes into the same cache.

Health is then recomputed locally from cached positions × the block's marks (each venue's rule in
``riskcore.venues.<venue>``). Pure bookkeeping here: the clock is injected; the connectors do the I/O.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, Generic, Literal, TypeVar

from connectors.errors import ConnectorError, RateLimitedError
from connectors.ratelimit import RateBudget

__all__ = [
    "AccountCache",
    "CachedAccount",
    "MarksPerBlock",
    "PerpMarks",
    "PollReport",
    "StateStatus",
    "plan_polls",
    "poll_within_budget",
]

A = TypeVar("A")


@dataclass(frozen=True, slots=True)
class StateStatus:
    """How current an account's cached state is: ``fresh``; ``stale`` (``age_s`` since it was last confirmed, and
    ``reason``); or ``missing`` (never read successfully)."""

    state: Literal["fresh", "stale", "missing"]
    age_s: float
    reason: str | None = None

    @classmethod
    def fresh(cls, age_s: float) -> StateStatus:
        return cls("fresh", age_s)

    @classmethod
    def stale(cls, age_s: float, reason: str) -> StateStatus:
        return cls("stale", age_s, reason)

    @property
    def is_fresh(self) -> bool:
        return self.state == "fresh"

    def __str__(self) -> str:
        if self.state == "fresh":
            return f"fresh ({self.age_s:.1f} s)"
        if self.state == "missing":
            return f"missing ({self.reason})"
        return f"stale for {self.age_s:.1f} s ({self.reason})"


@dataclass(frozen=True, slots=True)
class PerpMarks:
    """One block's prices of every market of a venue, from one market-wide request.

    ``prices_usd`` by the venue's market name (the venue's coin or ticker); ``source`` names the request
    (``<venue>.<request>``); ``observed_at_ms`` is the venue's time of the answer (``observed_at_source`` says where
    it comes from); ``market`` keeps the decoded answer (margin tables, fractions) for the recompute.
    """

    block: int | None
    prices_usd: Mapping[str, Decimal]
    source: str
    observed_at_ms: int
    observed_at_source: str
    market: Any = None

    def price(self, name: str) -> Decimal | None:
        return self.prices_usd.get(name)

    def age_s(self, now_ms: int) -> float:
        """The prices' age at ``now_ms`` (unix ms), seconds."""
        return max(0.0, (now_ms - self.observed_at_ms) / 1000.0)


class MarksPerBlock:
    """At most one market-wide request per block: :meth:`get` reads through ``read`` only when the block is new (or
    none was read), else returns the block's marks again. ``requests`` counts the reads made."""

    def __init__(self, read: Callable[[int | None], PerpMarks]) -> None:
        self._read = read
        self._last: PerpMarks | None = None
        self._lock = threading.Lock()
        self.requests = 0

    def get(self, block: int | None) -> PerpMarks:
        with self._lock:
            if self._last is not None and block is not None and self._last.block == block:
                return self._last
            marks = self._read(block)
            self.requests += 1
            self._last = marks
            return marks

    @property
    def last(self) -> PerpMarks | None:
        return self._last


@dataclass(frozen=True, slots=True)
class CachedAccount(Generic[A]):
    """An account's last good state: the venue's decoded ``state``, the ``block`` it was confirmed at, the venue's
    time (``observed_at_ms``), this machine's monotonic time of the confirmation (``confirmed_at_s``) and how it
    came (``poll`` or ``stream``)."""

    account: str
    state: A
    block: int | None
    observed_at_ms: int
    confirmed_at_s: float
    source: Literal["poll", "stream"]


@dataclass(slots=True)
class _Entry(Generic[A]):
    good: CachedAccount[A] | None = None
    failure: str | None = None
    failed_at_s: float | None = None
    updates: int = 0


class AccountCache(Generic[A]):
    """Every tracked account's last good state and its status.

    Parameters
    ----------
    stale_after_s:
        A state not confirmed for longer than this is stale ("not confirmed for N s") even without a failure.
    clock:
        Monotonic seconds (injected in tests).
    """

    def __init__(self, *, stale_after_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.stale_after_s = stale_after_s
        self._clock = clock
        self._entries: dict[str, _Entry[A]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def track(self, accounts: Iterable[str]) -> None:
        """Start tracking ``accounts`` (missing until first read)."""
        with self._lock:
            for a in accounts:
                self._entries.setdefault(a, _Entry())

    def accounts(self) -> list[str]:
        with self._lock:
            return list(self._entries)

    def put(
        self, account: str, state: A, *, block: int | None, observed_at_ms: int,
        source: Literal["poll", "stream"] = "poll",
    ) -> CachedAccount[A]:
        """A good read (or stream update) of ``account``: it becomes the last good state and clears any failure."""
        cached = CachedAccount(account, state, block, observed_at_ms, self._clock(), source)
        with self._lock:
            entry = self._entries.setdefault(account, _Entry())
            entry.good, entry.failure, entry.failed_at_s = cached, None, None
            entry.updates += 1
        return cached

    def confirm(self, account: str, *, block: int | None) -> None:
        """The stream vouches that ``account`` did not change up to ``block``: its state is confirmed now."""
        with self._lock:
            entry = self._entries.get(account)
            if entry is not None and entry.good is not None and entry.failure is None:
                entry.good = replace(entry.good, block=block, confirmed_at_s=self._clock())

    def fail(self, account: str, reason: str) -> None:
        """A read of ``account`` failed: the last good state stays, marked stale with ``reason``."""
        with self._lock:
            entry = self._entries.setdefault(account, _Entry())
            entry.failure = reason
            if entry.failed_at_s is None:
                entry.failed_at_s = self._clock()

    def fail_all(self, reason: str) -> None:
        """Every tracked account's source went away (a stream dropped): all stale with ``reason`` until re-read."""
        for a in self.accounts():
            self.fail(a, reason)

    def get(self, account: str) -> CachedAccount[A] | None:
        with self._lock:
            entry = self._entries.get(account)
            return None if entry is None else entry.good

    def status(self, account: str) -> StateStatus:
        """Fresh, stale (age since last confirmed, why) or missing."""
        with self._lock:
            entry = self._entries.get(account)
            now = self._clock()
            if entry is None or entry.good is None:
                reason = "never read" if entry is None or entry.failure is None else entry.failure
                return StateStatus("missing", math.inf, reason)
            age = max(0.0, now - entry.good.confirmed_at_s)
            if entry.failure is not None:
                return StateStatus.stale(age, entry.failure)
            if age > self.stale_after_s:
                return StateStatus.stale(age, f"not confirmed for {age:.0f} s (bound {self.stale_after_s:g} s)")
            return StateStatus.fresh(age)


def plan_polls(
    accounts: Sequence[str],
    budget: RateBudget | None,
    health: Mapping[str, float | None],
    *,
    endpoint: str,
    reserve: float = 0.0,
    statuses: Mapping[str, StateStatus] | None = None,
) -> list[str]:
    """Which ``accounts`` to re-read now, in order, and no more than the budget affords without waiting.

    Order: accounts never read first; then by ``health`` ascending (nearest liquidation first; unknown health counts
    as most urgent, no debt — ``None`` in ``health`` meaning no requirement — last); ties broken by staleness (the
    oldest first, from ``statuses``). Count: ``budget.affordable`` for ``endpoint``'s weight after keeping ``reserve``
    weight (the next block's market read) aside; every account when there is no budget.
    """
    st = statuses or {}

    def key(a: str) -> tuple[int, float, float]:
        s = st.get(a)
        missing = 0 if (s is None and a not in health) or (s is not None and s.state == "missing") else 1
        h = health.get(a, -math.inf)
        hv = math.inf if h is None else -math.inf if math.isnan(h) else h
        age = s.age_s if s is not None and math.isfinite(s.age_s) else math.inf
        return (missing, hv, -age)

    ordered = sorted(dict.fromkeys(accounts), key=key)
    if budget is None:
        return ordered
    weight = budget.limit.weight(endpoint)
    if weight <= 0:
        return ordered
    spare = budget.available(endpoint) - reserve
    n = 0 if spare < weight else min(len(ordered), int(spare // weight))
    return ordered[:n]


@dataclass
class PollReport:
    """What :func:`poll_within_budget` did: ``polled`` (read and cached), ``failed`` (account → reason: the last good
    state kept), ``deferred`` (planned but not read: the venue or the budget said wait), ``skipped`` (not planned this
    time: the budget did not afford them), the weight charged and the 429 ``retry_after_s`` if one came."""

    polled: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    deferred: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    weight: int = 0
    retry_after_s: float | None = None


def poll_within_budget(
    accounts: Sequence[str],
    budget: RateBudget | None,
    health: Mapping[str, float | None],
    read_one: Callable[[str], tuple[Any, int]],
    cache: AccountCache[Any],
    *,
    endpoint: str,
    block: int | None,
    reserve: float = 0.0,
) -> PollReport:
    """Re-read what the budget affords now (:func:`plan_polls`), nearest liquidation first, into ``cache``.

    ``read_one(account) -> (state, observed_at_ms)`` is one request (the connector charges the budget). A read that
    fails keeps the account's last good state, marked stale with the error; a rate limit (the venue's 429 or the
    budget) stops the round at once — the rest are ``deferred``, marked stale with the wait — and nothing is lost.
    """
    statuses = {a: cache.status(a) for a in accounts}
    plan = plan_polls(accounts, budget, health, endpoint=endpoint, reserve=reserve, statuses=statuses)
    planned = set(plan)
    report = PollReport(skipped=[a for a in dict.fromkeys(accounts) if a not in planned])
    before = 0 if budget is None else budget.charged
    for i, account in enumerate(plan):
        try:
            state, observed_at_ms = read_one(account)
        except RateLimitedError as exc:
            wait = exc.retry_after
            report.retry_after_s = wait
            reason = f"rate limited by the venue: {exc}" if wait is None else f"rate limited, retry in {wait:.1f} s"
            for rest in plan[i:]:
                cache.fail(rest, reason)
            report.deferred = list(plan[i:])
            break
        except ConnectorError as exc:
            cache.fail(account, f"{type(exc).__name__}: {exc}")
            report.failed[account] = str(exc)
            continue
        cache.put(account, state, block=block, observed_at_ms=observed_at_ms, source="poll")
        report.polled.append(account)
    report.weight = 0 if budget is None else budget.charged - before
    return report
