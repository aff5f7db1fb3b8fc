"""A venue's declared :class:`~connectors.base.RateLimit`, enforced: a token budget of request weight per minute.

:class:`RateBudget` is a token bucket: it holds at most ``burst`` weight (default a whole minute's), refills at
``weight_per_minute / 60`` per second, and starts full. Every attempt of a request (retries included) is charged
its weight before it is sent; when the budget cannot pay, the caller waits until it can (exactly the refill time
of what is missing), and when that wait would be longer than the caller is willing to wait (the HTTP client's
``max_backoff_s``) it raises :class:`~connectors.errors.RateLimitedError` at once, saying how long it would take.
A charge is a reservation: concurrent callers queue behind each other's waits instead of all waking at once.

A limit may name endpoints (:class:`~connectors.base.EndpointLimit`, by request name): each gets a bucket of its
own, charged besides the venue-wide one (``charge(weight, endpoint=...)``). :meth:`RateBudget.try_charge` never
waits (a poller spends only what the budget affords now, :meth:`RateBudget.affordable`). A 429 from the venue puts
the budget on hold for its ``Retry-After`` with empty buckets (:meth:`RateBudget.hold`): the venue counted requests
this process did not.

The limit is per IP at the venue's host, so one process shares one budget per venue and host:
:func:`shared_budget`. A connector built alone gets a budget of its own from its class's declared limit.
Clock and sleep are injected (tests drive a fake clock).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from connectors.base import RateLimit
from connectors.errors import RateLimitedError
from connectors.transport import redact_url

__all__ = ["BudgetExhaustedError", "RateBudget", "shared_budget"]


class _Bucket:
    """One token bucket: ``capacity`` weight, refilled at ``rate`` per second, starting full."""

    __slots__ = ("at", "capacity", "rate", "tokens")

    def __init__(self, weight_per_minute: int, burst: int | None, now: float) -> None:
        self.capacity = float(burst or weight_per_minute)
        self.rate = weight_per_minute / 60.0
        self.tokens = self.capacity
        self.at = now

    def refill(self, now: float) -> float:
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now
        return self.tokens

    def wait_for(self, weight: float) -> float:
        """Seconds until ``weight`` can be paid (after :meth:`refill`)."""
        return max(0.0, (weight - self.tokens) / self.rate)


class BudgetExhaustedError(RateLimitedError):
    """This process's own budget refused a request before it was sent (the venue never saw it)."""


class RateBudget:
    """Request weight per minute at one venue's host, and per endpoint where the limit names one (see the module's
    docstring).

    Parameters
    ----------
    limit:
        The venue's declared (or configured) :class:`~connectors.base.RateLimit`; its ``endpoints`` get buckets of
        their own, charged besides the venue-wide one.
    where:
        What the budget is for, in messages (``<venue> at https://<host>``).
    clock, sleep:
        Monotonic seconds and how to wait (injected in tests).
    """

    def __init__(
        self,
        limit: RateLimit,
        *,
        where: str = "",
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.limit = limit
        self.where = where
        self._clock = clock
        self._sleep = sleep
        now = clock()
        self._venue = _Bucket(limit.weight_per_minute, limit.burst, now)
        self._endpoints = {name: _Bucket(e.weight_per_minute, e.burst, now) for name, e in limit.endpoints.items()}
        self.capacity = self._venue.capacity
        self.rate = self._venue.rate
        """Weight regained per second (venue-wide)."""
        self._lock = threading.Lock()
        self._held_until = now
        self.charged = 0
        """Weight charged so far (every attempt that was let through)."""
        self.charged_by_endpoint: dict[str, int] = {}
        """Weight charged so far by endpoint (request name)."""
        self.waits = 0
        self.waited_s = 0.0
        """How many charges waited, and for how long in all."""
        self.holds = 0
        """How many times the venue's 429 put the budget on hold (:meth:`hold`)."""

    def __repr__(self) -> str:
        return (f"RateBudget({self.where or '?'}: {self.limit.weight_per_minute} weight/min, "
                f"{self.available():g} available)")

    def _buckets(self, endpoint: str | None) -> list[_Bucket]:
        own = self._endpoints.get(endpoint) if endpoint is not None else None
        return [self._venue] if own is None else [self._venue, own]

    def _wait(self, weight: float, endpoint: str | None, now: float) -> float:
        buckets = self._buckets(endpoint)
        for b in buckets:
            b.refill(now)
        return max(max(b.wait_for(weight) for b in buckets), self._held_until - now)

    def available(self, endpoint: str | None = None) -> float:
        """Weight that can be spent now without waiting, venue-wide or (``endpoint``) for that endpoint too; 0 while
        the budget is on hold (negative while others' reservations are pending)."""
        with self._lock:
            now = self._clock()
            tokens = min(b.refill(now) for b in self._buckets(endpoint))
            return min(tokens, 0.0) if now < self._held_until else tokens

    def affordable(self, n: int, *, weight: int | None = None, endpoint: str | None = None) -> int:
        """How many of ``n`` requests (each ``weight``, default the endpoint's weight in the limit) can be sent now
        without waiting: ``min(n, floor(available / weight))``."""
        w = self.limit.weight(endpoint or "") if weight is None else weight
        if w <= 0:
            return n
        return max(0, min(n, int(self.available(endpoint) // w)))

    def hold(self, retry_after_s: float | None, *, default_s: float = 1.0) -> None:
        """The venue answered 429: spend nothing more before ``retry_after_s`` (its ``Retry-After``; ``default_s``
        when it sent none), and start again from an empty bucket (the venue counts what we did not)."""
        delay = default_s if retry_after_s is None else max(0.0, retry_after_s)
        with self._lock:
            now = self._clock()
            self._held_until = max(self._held_until, now + delay)
            for b in (self._venue, *self._endpoints.values()):
                b.refill(now)
                b.tokens = min(b.tokens, 0.0)
            self.holds += 1

    def held_for(self) -> float:
        """Seconds the budget stays on hold after a 429 (0 when it is not)."""
        with self._lock:
            return max(0.0, self._held_until - self._clock())

    def try_charge(self, weight: int, *, endpoint: str | None = None) -> bool:
        """Spend ``weight`` (for ``endpoint``) only if it can be paid now; never waits. Whether it was charged."""
        with self._lock:
            now = self._clock()
            if self._wait(weight, endpoint, now) > 0:
                return False
            self._pay(weight, endpoint)
            return True

    def _pay(self, weight: int, endpoint: str | None) -> None:
        for b in self._buckets(endpoint):
            b.tokens -= weight
        self.charged += weight
        if endpoint is not None:
            self.charged_by_endpoint[endpoint] = self.charged_by_endpoint.get(endpoint, 0) + weight

    def charge(
        self, weight: int, *, what: str = "", max_wait_s: float = math.inf, endpoint: str | None = None
    ) -> float:
        """Spend ``weight`` for the request ``what`` (to ``endpoint``, whose own bucket is charged too when the limit
        names it), first waiting for the budget when it is exhausted; returns the seconds waited.

        Raises
        ------
        BudgetExhaustedError
            The wait would be longer than ``max_wait_s`` (nothing is charged; ``retry_after`` is the wait).
        """
        with self._lock:
            now = self._clock()
            wait = self._wait(weight, endpoint, now)
            if wait > max_wait_s:
                raise BudgetExhaustedError(
                    f"{what or endpoint or 'a request'}: rate budget of {self.where or 'the venue'} exhausted "
                    f"({self.limit.weight_per_minute} weight/min, this request weighs {weight}): the next slot is in "
                    f"{wait:.1f} s, longer than the client waits (max_backoff_s={max_wait_s:g})",
                    retry_after=wait,
                )
            self._pay(weight, endpoint)
            if wait > 0:
                self.waits += 1
                self.waited_s += wait
        if wait > 0:
            self._sleep(wait)
        return wait


_SHARED: dict[tuple[str, str, str], RateBudget] = {}
_SHARED_LOCK = threading.Lock()


def shared_budget(venue: str, url: str, limit: RateLimit) -> RateBudget:
    """This process's one budget for ``venue`` at ``url``'s host (scheme, host and port) under ``limit``: every
    connector opened for that venue and host spends from it, so a limit per IP holds across connectors and
    across syncs."""
    where = f"{venue} at {redact_url(url)}"
    key = (venue, redact_url(url), limit.model_dump_json())
    with _SHARED_LOCK:
        budget = _SHARED.get(key)
        if budget is None:
            budget = _SHARED[key] = RateBudget(limit, where=where)
        return budget
