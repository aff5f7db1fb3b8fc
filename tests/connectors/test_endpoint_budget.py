"""Budgets per venue and per endpoint: a simulated minute of greedy callers never spends more than either allows;
``try_charge`` never waits; ``affordable`` says how many requests fit now; a venue's 429 holds the budget for its
Retry-After. Driven by an injected clock."""

from __future__ import annotations

import httpx
import pytest

from connectors.base import EndpointLimit, RateLimit
from connectors.errors import RateLimitedError
from connectors.http import JsonHttpClient
from connectors.ratelimit import BudgetExhaustedError, RateBudget


class Clock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.now += s


LIMIT = RateLimit(weight_per_minute=1200, weight_per_request=20, request_weights={"clearinghouseState": 2},
                  endpoints={"clearinghouseState": EndpointLimit(weight_per_minute=1000)})


def test_a_simulated_minute_of_greedy_callers_stays_inside_both_buckets() -> None:
    clock = Clock()
    b = RateBudget(LIMIT, clock=clock, sleep=clock.sleep)
    spent: list[tuple[float, str, int]] = []
    # every 50 ms for 10 simulated minutes: as many polls and market reads as the budget takes without waiting
    for tick in range(12_000):
        clock.now = 500.0 + tick * 0.05
        while b.try_charge(2, endpoint="clearinghouseState"):
            spent.append((clock.now, "clearinghouseState", 2))
        if tick % 200 == 0 and b.try_charge(20, endpoint="metaAndAssetCtxs"):
            spent.append((clock.now, "metaAndAssetCtxs", 20))
    # any 60 s window after the first (which starts with full buckets) is within the per-minute limits
    for start in range(60, 540, 7):
        lo, hi = 500.0 + start, 500.0 + start + 60
        window = [(t, e, w) for t, e, w in spent if lo <= t < hi]
        total = sum(w for *_, w in window)
        polls = sum(w for _, e, w in window if e == "clearinghouseState")
        assert total <= 1200 + 2, (start, total)
        assert polls <= 1000 + 2, (start, polls)
    assert b.charged == sum(w for *_, w in spent)
    assert b.charged_by_endpoint["clearinghouseState"] > 9 * 1000  # the endpoint bucket was the binding one
    assert b.charged_by_endpoint["metaAndAssetCtxs"] > 0


def test_try_charge_never_waits_and_affordable_counts_what_fits_now() -> None:
    clock = Clock()
    b = RateBudget(RateLimit(weight_per_minute=60, weight_per_request=2), clock=clock, sleep=clock.sleep)
    assert b.affordable(100) == 30
    assert b.affordable(7) == 7
    assert all(b.try_charge(2) for _ in range(30))
    assert not b.try_charge(2)
    assert clock.now == 500.0  # nothing slept
    assert b.affordable(10) == 0
    clock.now += 4.0  # 4 weight back
    assert b.affordable(10) == 2
    with pytest.raises(BudgetExhaustedError) as err:
        b.charge(20, what="x", max_wait_s=1.0)
    assert err.value.retry_after == pytest.approx(16.0)


def test_a_429_holds_the_budget_for_its_retry_after_and_empties_it() -> None:
    clock = Clock()
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return httpx.Response(429, headers={"retry-after": "30"}, json={"error": "slow down"})

    b = RateBudget(LIMIT, clock=clock, sleep=clock.sleep)
    http = JsonHttpClient("https://venue.test", budget=b, transport=httpx.MockTransport(handler), sleep=clock.sleep,
                          max_retries=2, max_backoff_s=5.0)
    with pytest.raises(RateLimitedError) as err:
        http.post("/info", {"type": "clearinghouseState"}, name="clearinghouseState")
    assert not isinstance(err.value, BudgetExhaustedError)
    assert len(calls) == 1  # told to come back in 30 s: not retried sooner
    assert b.holds == 1
    assert b.held_for() == pytest.approx(30.0)
    assert b.affordable(5, endpoint="clearinghouseState") == 0
    assert not b.try_charge(2, endpoint="clearinghouseState")
    with pytest.raises(BudgetExhaustedError):  # the client refuses before sending while the hold lasts
        http.post("/info", {"type": "clearinghouseState"}, name="clearinghouseState")
    assert len(calls) == 1
    clock.now += 31.0
    assert b.held_for() == 0.0
    assert b.try_charge(2, endpoint="clearinghouseState")


def test_per_minute_scales_the_endpoint_limits() -> None:
    scaled = LIMIT.per_minute(12_000)
    assert scaled.endpoints["clearinghouseState"].weight_per_minute == 10_000
    assert hash(scaled) != hash(LIMIT)
