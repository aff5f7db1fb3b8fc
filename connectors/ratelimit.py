"""A venue's declared :class:`~connectors.base.RateLimit`, enforced: a token budget of request weight per minute.

:class:`RateBudget` is a token bucket: it holds at most ``burst`` weight (default a whole minute's), refills at
``weight_per_minute / 60`` per second, and starts full. Every attempt of a request (retries included) is charged
its weight before it is sent; when the budget cannot pay, the caller waits until it can (exactly the refill time
of what is missing), and when that wait would be longer than the caller is willing to wait (the HTTP client's
``max_backoff_s``) it raises :class:`~connectors.errors.RateLimitedError` at once, saying how long it would take.
A charge is a reservation: concurrent callers queue behind each other's waits instead of all waking at once.

The limit is per IP at the venue's host, so one process shares one budget per venue and host:
:func:`shared_budget`. A connector built alone gets a budget of its own from its class's declared limit.
Clock and sleep are injected (tests drive a fake clock).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from connectors.base import RateLimit
from connectors.errors import RateLimitedError
from connectors.transport import redact_url

__all__ = ["RateBudget", "shared_budget"]


class RateBudget:
    """Request weight per minute at one venue's host (see the module's docstring).

    Parameters
    ----------
    limit:
        The venue's declared (or configured) :class:`~connectors.base.RateLimit`.
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
        self.capacity = float(limit.burst or limit.weight_per_minute)
        self.rate = limit.weight_per_minute / 60.0
        """Weight regained per second."""
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.capacity
        self._at = clock()
        self._lock = threading.Lock()
        self.charged = 0
        """Weight charged so far (every attempt that was let through)."""
        self.waits = 0
        self.waited_s = 0.0
        """How many charges waited, and for how long in all."""

    def __repr__(self) -> str:
        return (f"RateBudget({self.where or '?'}: {self.limit.weight_per_minute} weight/min, "
                f"{self.available():g} available)")

    def _refill(self) -> float:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate)
        self._at = now
        return self._tokens

    def available(self) -> float:
        """Weight that can be spent now without waiting (negative while others' reservations are pending)."""
        with self._lock:
            return self._refill()

    def charge(self, weight: int, *, what: str, max_wait_s: float) -> float:
        """Spend ``weight`` for the request ``what``, first waiting for the budget when it is exhausted; returns
        the seconds waited.

        Raises
        ------
        RateLimitedError
            The wait would be longer than ``max_wait_s`` (nothing is charged; ``retry_after`` is the wait).
        """
        with self._lock:
            tokens = self._refill()
            wait = max(0.0, (weight - tokens) / self.rate)
            if wait > max_wait_s:
                raise RateLimitedError(
                    f"{what}: rate budget of {self.where or 'the venue'} exhausted "
                    f"({self.limit.weight_per_minute} weight/min, this request weighs {weight}): the next slot is in "
                    f"{wait:.1f} s, longer than the client waits (max_backoff_s={max_wait_s:g})",
                    retry_after=wait,
                )
            self._tokens = tokens - weight
            self.charged += weight
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
