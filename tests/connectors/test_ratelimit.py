"""Rate limits are enforced: the venues' declared budgets charge every attempt its weight, wait when exhausted, and
refuse a wait longer than the client's max backoff. Driven by a fake clock (its sleep advances it)."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest

from aggregator.config import venue_config
from aggregator.venues import plugin_of
from connectors.base import RateLimit
from connectors.dydx_v4.connector import DydxConnector
from connectors.errors import RateLimitedError
from connectors.http import JsonHttpClient
from connectors.hyperliquid.connector import REQUEST_WEIGHTS, HyperliquidConnector
from connectors.ratelimit import RateBudget, shared_budget
from connectors.registry import VENUES, capabilities
from tests.connectors.test_hyperliquid_connector import A, venue

HL = HyperliquidConnector.capabilities.rate_limit
DYDX = DydxConnector.capabilities.rate_limit
assert HL is not None
assert DYDX is not None


class FakeClock:
    """Monotonic seconds that only move when slept on."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def budget(limit: RateLimit, clock: FakeClock) -> RateBudget:
    return RateBudget(limit, where="test", clock=clock, sleep=clock.sleep)


def hyperliquid(clock: FakeClock, handler: Any = None, **kw: Any) -> HyperliquidConnector:
    assert HL is not None
    kw.setdefault("sleep", clock.sleep)
    return HyperliquidConnector("https://api.example.test", transport=httpx.MockTransport(handler or venue()[0]),
                                budget=budget(HL, clock), **kw)


# --- the budget itself ------------------------------------------------------------------------------------------
def test_requests_within_the_budget_do_not_wait_and_the_next_waits_exactly_the_refill_time() -> None:
    clock = FakeClock()
    c = hyperliquid(clock)
    # 1,200 weight a minute: the market read (20) and 590 accounts (2 each) spend it all without waiting
    c.read_market()
    for _ in range(590):
        c.read_account(A)
    assert clock.slept == []
    assert c.weight_used == 20 + 590 * 2 == 1200
    c.read_account(A)  # 2 more: 2 / (1,200 / 60 s) = 0.1 s
    assert clock.slept == [pytest.approx(0.1)]
    assert c.stats.rate_wait_s == pytest.approx(0.1)
    c.read_market()  # 20 more, nothing left: 1 s
    assert clock.slept[1:] == [pytest.approx(1.0)]
    assert c.stats.http_requests == 593


def test_the_budget_refills_with_time_up_to_one_minute() -> None:
    clock = FakeClock()
    b = budget(HL, clock)  # type: ignore[arg-type]
    assert b.charge(1200, what="x", max_wait_s=0) == 0
    clock.now += 30  # half a minute: 600 back
    assert b.available() == pytest.approx(600)
    clock.now += 3600  # never more than the bucket holds
    assert b.available() == pytest.approx(1200)
    assert b.charge(1200, what="x", max_wait_s=0) == 0
    assert b.charge(60, what="x", max_wait_s=10) == pytest.approx(3.0)


def test_the_indexer_limit_is_100_per_10_seconds() -> None:
    clock = FakeClock()
    b = budget(DYDX, clock)  # type: ignore[arg-type]
    assert [b.charge(1, what="subaccount", max_wait_s=30) for _ in range(100)] == [0] * 100
    assert b.charge(1, what="subaccount", max_wait_s=30) == pytest.approx(0.1)  # 600 a minute: one per 0.1 s


def test_retries_are_charged() -> None:
    clock = FakeClock()
    calls = {"n": 0}
    handler, _ = venue()

    def flaky(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] <= 2:
            return httpx.Response(503)
        return handler(request)

    c = hyperliquid(clock, flaky, backoff_s=0.0, max_retries=3)
    c.read_market()
    assert c.stats.http_requests == 3
    assert c.weight_used == 3 * REQUEST_WEIGHTS["metaAndAssetCtxs"]
    assert c.budget is not None
    assert c.budget.charged == 60


def test_a_wait_beyond_the_max_backoff_raises_rate_limited_before_sending() -> None:
    clock = FakeClock()
    sent: list[httpx.Request] = []
    handler, _ = venue()

    def counting(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return handler(request)

    c = hyperliquid(clock, counting, max_backoff_s=0.5)
    assert c.budget is not None
    c.budget.charge(1200, what="elsewhere", max_wait_s=0)  # another reader spent the minute
    c.read_account(A)  # 2 weight: 0.1 s, within 0.5 s
    assert clock.slept == [pytest.approx(0.1)]
    with pytest.raises(RateLimitedError, match=r"metaAndAssetCtxs.*rate budget of test exhausted \(1200 weight/min, "
                                               r"this request weighs 20\): the next slot is in 1\.0 s.*"
                                               r"max_backoff_s=0\.5") as info:
        c.read_market()
    assert info.value.retry_after == pytest.approx(1.0)
    assert len(sent) == 1  # the refused request never went out, and was not charged
    assert c.weight_used == 2
    assert c.stats.http_requests == 1


def test_concurrent_callers_queue_behind_each_others_reservations() -> None:
    clock = FakeClock()
    lock = threading.Lock()
    b = RateBudget(RateLimit(weight_per_minute=60), clock=clock, sleep=lambda s: None)  # 1 a second
    b.charge(60, what="x", max_wait_s=0)
    waits: list[float] = []

    def take() -> None:
        w = b.charge(1, what="x", max_wait_s=100)
        with lock:
            waits.append(w)

    threads = [threading.Thread(target=take) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(waits) == [pytest.approx(k) for k in (1, 2, 3, 4, 5)]


def test_the_json_client_weighs_requests_by_name() -> None:
    clock = FakeClock()
    b = budget(HL, clock)  # type: ignore[arg-type]
    client = JsonHttpClient("https://x.test", transport=httpx.MockTransport(lambda r: httpx.Response(200, json={})),
                            budget=b, sleep=clock.sleep)
    client.post("/info", {}, name="clearinghouseState")
    client.post("/info", {}, name="someOtherInfo")
    assert (b.charged, client.stats.weight) == (22, 22)


# --- the connectors' declared limits are what their clients use -------------------------------------------------
@pytest.mark.parametrize("cls", [HyperliquidConnector, DydxConnector])
def test_a_connector_charges_its_declared_limit(cls: type[HyperliquidConnector] | type[DydxConnector]) -> None:
    c = cls("https://api.example.test")
    try:
        assert c.budget is not None
        assert c.http.budget is c.budget
        assert c.budget.limit == cls.capabilities.rate_limit
        custom = RateLimit(weight_per_minute=7)
        assert cls("https://api.example.test", rate_limit=custom).budget.limit == custom  # type: ignore[union-attr]
    finally:
        c.close()


OFFCHAIN = [v for v in VENUES if capabilities(v).transport == "http"]


def _table(venue_type: str, url: str, **extra: Any) -> dict[str, Any]:
    return {"name": f"my_{venue_type}", "type": venue_type, "chain": "c", "base_url": url, **extra}


@pytest.mark.parametrize("venue_type", OFFCHAIN)
def test_an_opened_offchain_venue_spends_its_connectors_declared_limit_shared_per_host(venue_type: str) -> None:
    assert OFFCHAIN == ["hyperliquid", "dydx_v4"]
    plugin = plugin_of(venue_type)
    declared = capabilities(venue_type).rate_limit
    assert declared is not None
    url = f"https://{venue_type}.rate-test.example"
    first = plugin.open_offchain(venue_config(_table(venue_type, url)))
    second = plugin.open_offchain(venue_config(_table(venue_type, url + "/other/path")))
    other_host = plugin.open_offchain(venue_config(_table(venue_type, "https://elsewhere.rate-test.example")))
    try:
        assert first.budget is not None
        assert first.budget.limit == declared
        assert second.budget is first.budget  # one budget per venue and host (the limit is per IP)
        assert other_host.budget is not first.budget
        assert first.budget is shared_budget(venue_type, url, declared)
    finally:
        for v in (first, second, other_host):
            v.close()


@pytest.mark.parametrize("venue_type", OFFCHAIN)
def test_a_configured_budget_replaces_only_the_per_minute_figure(venue_type: str, caplog: Any) -> None:
    plugin = plugin_of(venue_type)
    declared = capabilities(venue_type).rate_limit
    assert declared is not None
    local = plugin.open_offchain(venue_config(_table(venue_type, "http://127.0.0.1:1", rate_limit_per_minute=10**6)))
    try:
        assert local.budget is not None
        assert local.budget.limit.weight_per_minute == 10**6
        assert local.budget.limit.request_weights == declared.request_weights
        assert local.budget.limit.weight_per_request == declared.weight_per_request
        assert not caplog.records  # a local server: no warning
        remote = plugin.open_offchain(venue_config(_table(venue_type, "https://api.rate-test.example",
                                                          rate_limit_per_minute=10**6)))
        remote.close()
        assert any("rate_limit_per_minute" in r.getMessage() and "publishes" in r.getMessage()
                   for r in caplog.records)
    finally:
        local.close()


def test_the_devnet_config_sets_its_local_api_budget_explicitly() -> None:
    from aggregator.devnet_cli import LOCAL_API_RATE_LIMIT, devnet_settings
    from devnet.models import DevnetInfo

    contracts = {"aave_v3.pool_addresses_provider": "0x" + "11" * 20}
    info = DevnetInfo("http://127.0.0.1:8545", 31337, contracts, services={"perp_api": "http://127.0.0.1:9"})
    settings = devnet_settings(info)
    budgets = {v.type: getattr(v, "rate_limit_per_minute", None) for v in settings.venues}
    assert {t: b for t, b in budgets.items() if t in OFFCHAIN} == dict.fromkeys(OFFCHAIN, LOCAL_API_RATE_LIMIT)
    assert all(b is None for t, b in budgets.items() if t not in OFFCHAIN)
