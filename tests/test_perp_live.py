"""Perp venues kept live inside their rate limits (issue 14): the devnet's perp API serves the venues' documented
HTTP and WebSocket shapes; the live venue (``PluginBase.open_live``) reads one marks request per block, carries
accounts on the venue's stream, polls the rest within the budget (nearest liquidation first), and recomputes health
locally — equal to a fresh full read within the venue's printed rounding. Budgets run on an injected clock."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from decimal import Decimal
from typing import Any

import httpx
import pytest

from aggregator.config import venue_config
from aggregator.venues import plugin_of
from aggregator.venues.dydx_v4 import sync as dydx_sync
from aggregator.venues.dydx_v4.live import revalue as dydx_revalue
from aggregator.venues.hyperliquid import sync as hl_sync
from aggregator.venues.hyperliquid.live import revalue as hl_revalue
from aggregator.venues.live import LivePerpVenue
from connectors.dydx_v4 import DydxConnector
from connectors.dydx_v4.connector import DydxConnector as _Dydx
from connectors.hyperliquid import HyperliquidConnector
from connectors.perpcache import AccountCache, StateStatus, plan_polls
from connectors.ratelimit import RateBudget
from connectors.transport import TransportOptions
from connectors.types import BlockRef
from devnet.perp_api import HEDGED_LABEL, PerpApi, PerpPosition, dydx_address
from devnet.seed import wallet_address
from riskcore.venues.dydx_v4.health import DydxFigures, check_dydx
from riskcore.venues.hyperliquid.health import HyperliquidFigures, check_hyperliquid

HEDGED = wallet_address(HEDGED_LABEL)
HEDGED_DYDX = dydx_address(HEDGED_LABEL)
ISOLATED = wallet_address("perp_isolated")
HL_LIMIT = HyperliquidConnector.capabilities.rate_limit
DYDX_LIMIT = _Dydx.capabilities.rate_limit
assert HL_LIMIT is not None
assert DYDX_LIMIT is not None


class Clock:
    """Monotonic seconds that move only when told (or slept on)."""

    def __init__(self) -> None:
        self.now = 10_000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.now += s


def block(n: int) -> BlockRef:
    return BlockRef(chain_id=31337, number=n, hash=f"0x{n:064x}", timestamp=1_700_000_000 + 12 * n)


def wait_for(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


_OPENED: list[LivePerpVenue] = []


@pytest.fixture
def api() -> Iterator[PerpApi]:
    with PerpApi() as server:
        yield server
        while _OPENED:
            _OPENED.pop().close()


def mock_transport(api: PerpApi, log: list[str]) -> httpx.MockTransport:
    """The perp API's routes without a socket (PerpApi.handle), logging each request's name."""

    def handler(request: httpx.Request) -> httpx.Response:
        body = request.content
        name = json.loads(body).get("type") if body else request.url.path.rsplit("/", 2)[-2]
        log.append(str(name))
        status, answer = api.handle(request.method, request.url.path, body)
        return httpx.Response(status, json=answer)

    return httpx.MockTransport(handler)


def hl_live(api: PerpApi, clock: Clock, *, ws: bool = False, transport: httpx.BaseTransport | None = None,
            **kw: Any) -> LivePerpVenue:
    table: dict[str, Any] = {"name": "hyperliquid", "type": "hyperliquid", "chain": "devnet",
                             "base_url": "http://perp.test" if transport else api.base_url}
    if ws:
        table["ws_url"] = api.ws_url + "/ws"
    options = TransportOptions(timeout_s=5, max_retries=0, sleep=clock.sleep, transport=transport)
    live = plugin_of("hyperliquid").open_live(
        venue_config(table), budget=RateBudget(HL_LIMIT, clock=clock, sleep=clock.sleep),
        transport_options=options, clock=clock, **kw)
    _OPENED.append(live)
    return live


def dydx_live(api: PerpApi, clock: Clock, accounts: dict[str, str], *, ws: bool = False,
              transport: httpx.BaseTransport | None = None, **kw: Any) -> LivePerpVenue:
    table: dict[str, Any] = {"name": "dydx_v4", "type": "dydx_v4", "chain": "devnet", "accounts": accounts,
                             "base_url": "http://perp.test" if transport else api.base_url}
    if ws:
        table["ws_url"] = api.ws_url + "/v4/ws"
    options = TransportOptions(timeout_s=5, max_retries=0, sleep=clock.sleep, transport=transport)
    live = plugin_of("dydx_v4").open_live(
        venue_config(table), budget=RateBudget(DYDX_LIMIT, clock=clock, sleep=clock.sleep),
        transport_options=options, clock=clock, **kw)
    _OPENED.append(live)
    return live


def many_wallets(api: PerpApi, n: int) -> list[str]:
    """``n`` Hyperliquid wallets, every tenth with a short ETH position of growing size; the others the venue has
    never seen (it answers them with an empty account)."""
    wallets = []
    for i in range(n):
        w = "0x" + f"{i + 1:040x}"
        if i % 10 == 0:
            api.add_account("hyperliquid", w, usdc=10_000, positions=[PerpPosition("ETH", -(1 + i % 7), 4000)])
        wallets.append(w)
    return wallets


# --- budgets -----------------------------------------------------------------------------------------------------
def test_ten_thousand_wallets_for_four_simulated_minutes_never_exceed_the_budget(api: PerpApi) -> None:
    """Blocks every 12 s; every refresh spends only what the budget affords without waiting; the marks are one
    request per block; requests per block stay bounded whatever the wallet count."""
    clock = Clock()
    log: list[str] = []
    wallets = many_wallets(api, 10_000)
    live = hl_live(api, clock, transport=mock_transport(api, log), stale_after_s=600)
    live.track(wallets)
    assert live.budget is not None
    spent: list[tuple[float, int]] = []
    per_block: list[int] = []
    start = clock.now
    for n in range(1, 21):  # 20 blocks = 4 minutes
        before_log, before_charged = len(log), live.budget.charged
        live.refresh(block(n))
        per_block.append(len(log) - before_log)
        spent.append((clock.now, live.budget.charged - before_charged))
        assert log[before_log] == "metaAndAssetCtxs"  # the block's one marks request first
        assert log[before_log:].count("metaAndAssetCtxs") == 1
        clock.now += 12.0
    assert live.budget.waits == 0  # nothing ever waited: polls are only what the budget affords now
    # any 60 s window after the first minute (which starts with a full bucket) holds at most 1,200 weight
    for i in range(5, len(spent) - 4):
        window = sum(w for t, w in spent if spent[i][0] <= t < spent[i][0] + 60)
        assert window <= 1200, (i, window)
    total = sum(w for _, w in spent)
    assert total <= 1200 + (clock.now - start) * 20  # bucket + refill, never more
    # steady state: one marks request (20) + polls (2 each) spend the minute's 1,200: ~ (240 - 20) / 2 per block
    steady = per_block[5:]
    assert max(steady) <= 1 + (240 - 20) // 2 + 1
    assert min(steady) >= 100
    read = len(live.wallets) - len(live.missing())
    assert read == sum(per_block) - len(per_block)  # every poll read a new wallet: none polled twice meanwhile
    print(f"\n10,000 wallets: requests per block: first {per_block[0]}, steady {min(steady)}-{max(steady)} "
          f"(1 marks + polls); a naive full read would be 10,001 per block; {read} of 10,000 wallets read after "
          f"4 minutes")


def test_dydx_polls_respect_a_hundred_per_ten_seconds(api: PerpApi) -> None:
    clock = Clock()
    log: list[str] = []
    accounts = {}
    for i in range(400):
        evm = "0x" + f"{i + 1:040x}"
        address = dydx_address(f"live-{i}")
        api.add_account("dydx", address, usdc=1000, positions=[PerpPosition("ETH", "-0.1", 4000)] if i % 3 else [])
        accounts[evm] = address
    live = dydx_live(api, clock, accounts, transport=mock_transport(api, log), stale_after_s=600)
    live.track(list(accounts))
    times: list[float] = []
    for n in range(1, 30):
        before = len(log)
        live.refresh(block(n))
        times += [clock.now] * (len(log) - before)
        clock.now += 2.0  # fast blocks
    assert live.budget is not None
    assert live.budget.waits == 0
    start = times[0]
    for t0 in times:
        in_window = sum(1 for t in times if t0 <= t < t0 + 10)
        # the first 10 s: the full bucket (100) and 8 s of refill (10/s) between its first and last block; after
        # that the refill alone: 100 per 10 s (+1 for a fractional token carried over)
        assert in_window <= (100 + 80 if t0 < start + 10 else 101), (t0 - start, in_window)
    assert len(live.missing()) == 0


def test_plan_polls_orders_nearest_liquidation_first_and_spends_only_what_is_affordable() -> None:
    clock = Clock()
    budget = RateBudget(HL_LIMIT, clock=clock, sleep=clock.sleep)
    health: dict[str, float | None] = {"a": 3.0, "b": 1.05, "c": None, "d": 1.5}
    statuses = {k: StateStatus.fresh(1.0) for k in health} | {"e": StateStatus("missing", math.inf, "never read")}
    order = plan_polls(["a", "b", "c", "d", "e"], budget, health, endpoint="clearinghouseState", statuses=statuses)
    assert order == ["e", "b", "d", "a", "c"]
    assert budget.try_charge(1200 - 7)  # 7 weight left: 3 polls of 2
    assert plan_polls(["a", "b", "c", "d", "e"], budget, health, endpoint="clearinghouseState",
                      statuses=statuses) == ["e", "b", "d"]
    # keeping 5 weight for the next marks leaves one poll
    assert plan_polls(list(health), budget, health, endpoint="clearinghouseState", reserve=5) == ["b"]


# --- marks: one request per block --------------------------------------------------------------------------------
@pytest.mark.parametrize("n_wallets", [1, 50, 500])
def test_one_marks_request_per_block_whatever_the_wallet_count(api: PerpApi, n_wallets: int) -> None:
    clock = Clock()
    log: list[str] = []
    live = hl_live(api, clock, transport=mock_transport(api, log))
    live.track(many_wallets(api, n_wallets))
    for n in (7, 8, 9):
        live.refresh(block(n))
        live.recompute(block(n))  # again at the same block: no new marks request
        live.read_marks(n)
    assert log.count("metaAndAssetCtxs") == 3
    assert live.marks.requests == 3


# --- 429 storm -----------------------------------------------------------------------------------------------------
def test_a_429_storm_serves_the_last_good_state_as_stale_with_its_age_then_refreshes(api: PerpApi) -> None:
    clock = Clock()
    live = hl_live(api, clock, stale_after_s=60, repoll_after_s=0)
    live.track([HEDGED, ISOLATED])
    good = live.refresh(block(1))
    assert {h.wallet for h in good.healths} == {HEDGED, ISOLATED}
    assert all("stale" not in h.flags for h in good.healths)
    hf_before = {h.wallet: h.health_factor for h in good.healths}

    api.throttle(retry_after_s=30)  # every venue request answers 429, Retry-After: 30
    clock.now += 5
    during = live.refresh(block(2))
    assert live.budget is not None
    assert live.budget.holds >= 1
    assert live.budget.held_for() == pytest.approx(30.0, abs=0.01)
    assert {h.wallet for h in during.healths} == {HEDGED, ISOLATED}  # nothing lost
    for h in during.healths:
        assert "stale" in h.flags
        state = h.extra["state"]
        assert isinstance(state, dict)
        assert state["status"] == "stale"
        assert state["age_s"] == pytest.approx(5.0)
        assert h.health_factor == pytest.approx(hf_before[h.wallet])  # the last good state, at the last marks
        assert "marks of block 1" in str(state["reason"])  # valued at the last good marks, and says so
    throttled = api.throttled

    clock.now += 10  # still on hold: nothing is sent at all
    held = live.refresh(block(3))
    assert api.throttled == throttled
    assert all(h.extra["state"]["age_s"] == pytest.approx(15.0) for h in held.healths)  # type: ignore[index]

    api.unthrottle()
    clock.now += 21  # past Retry-After
    after = live.refresh(block(4))
    assert all("stale" not in h.flags for h in after.healths)
    assert all(h.extra["state"]["status"] == "fresh" for h in after.healths)  # type: ignore[index]
    assert live.cache.status(HEDGED).is_fresh


# --- recompute = a fresh full read ---------------------------------------------------------------------------------
def _hl_fig(account: Any, market: Any) -> HyperliquidFigures:
    from connectors.hyperliquid.models import HyperliquidSnapshot

    snap = HyperliquidSnapshot(market=market, accounts=(account,), observed_at_ms=0, observed_at_source="venue")
    return HyperliquidFigures(**snap.health_inputs(account.wallet))


@pytest.mark.parametrize("wallet", [HEDGED, ISOLATED])
@pytest.mark.parametrize(("coin", "price"), [("ETH", 4550), ("BTC", 52_000), ("SOL", 171.25)])
def test_hyperliquid_recompute_at_new_marks_equals_a_fresh_full_read(
    api: PerpApi, wallet: str, coin: str, price: float
) -> None:
    with HyperliquidConnector(api.base_url, max_retries=0) as c:
        cached = c.read_account(wallet)
        api.set_mark(coin, price)
        marks = c.read_marks(2)
        fresh = c.read_account(wallet)
    ours = hl_revalue(cached, marks.market, marks)
    assert ours.positions != cached.positions or coin not in {p.coin for p in cached.positions}
    # our figures in place of the venue's, checked against the fresh positions with the venue's rounding bound
    fresh_fig = _hl_fig(fresh, marks.market)
    our_fig = _hl_fig(ours, marks.market)
    swapped = replace(fresh_fig, reported_cross_account_value_usd=our_fig.reported_cross_account_value_usd,
                      reported_cross_maintenance_usd=our_fig.reported_cross_maintenance_usd,
                      reported_liquidation_px=our_fig.reported_liquidation_px,
                      reported_margin_used_usd=our_fig.reported_margin_used_usd,
                      reported_unrealized_pnl_usd=our_fig.reported_unrealized_pnl_usd)
    check = check_hyperliquid(swapped)
    assert check.ok, check.discrepancies
    assert abs(ours.cross_margin_summary.account_value_usd - fresh.cross_margin_summary.account_value_usd) <= Decimal(
        "0.000003")
    assert abs(ours.cross_maintenance_margin_used_usd - fresh.cross_maintenance_margin_used_usd) <= Decimal("0.000003")
    # and the health the live venue reports is the fresh read's
    ours_h = hl_sync.evaluate(replace_snapshot(marks.market, ours), "hyperliquid", block(2)).healths[0]
    fresh_h = hl_sync.evaluate(replace_snapshot(marks.market, fresh), "hyperliquid", block(2)).healths[0]
    assert ours_h.health_factor == pytest.approx(fresh_h.health_factor, rel=1e-8)
    assert ours_h.matches_onchain


def replace_snapshot(market: Any, account: Any) -> Any:
    from connectors.hyperliquid.models import HyperliquidSnapshot

    return HyperliquidSnapshot(market=market, accounts=(account,), observed_at_ms=1, observed_at_source="venue")


@pytest.mark.parametrize("price", [3000, 4000, 4444.4, 5200])
def test_dydx_recompute_at_new_oracle_prices_equals_a_fresh_read(api: PerpApi, price: float) -> None:
    from connectors.dydx_v4.models import DydxSnapshot

    with DydxConnector(api.base_url, max_retries=0) as c:
        cached = c.read_subaccount(HEDGED_DYDX)
        api.set_mark("ETH", price)
        marks = c.read_marks(2)
        fresh = c.read_subaccount(HEDGED_DYDX)
    ours = dydx_revalue(cached, marks.market, marks)
    assert abs(ours.equity_usd - fresh.equity_usd) <= Decimal("0.000001")
    assert abs(ours.free_collateral_usd - fresh.free_collateral_usd) <= Decimal("0.000001")
    fig = DydxFigures(**DydxSnapshot(markets=marks.market, accounts=(fresh,), observed_at_ms=1,
                                     observed_at_source="http_date").health_inputs(fresh.account_id))
    assert check_dydx(replace(fig, reported_equity_usd=float(ours.equity_usd),
                              reported_free_collateral_usd=float(ours.free_collateral_usd))).ok
    snap = DydxSnapshot(markets=marks.market, accounts=(ours,), observed_at_ms=1, observed_at_source="http_date")
    h = dydx_sync.evaluate(snap, "dydx_v4", block(2), {}).healths[0]
    assert h.matches_onchain


# --- streams ---------------------------------------------------------------------------------------------------------
def test_hyperliquid_stream_updates_the_cache_and_the_recompute_equals_a_fresh_read(api: PerpApi) -> None:
    clock = Clock()
    live = hl_live(api, clock, ws=True, stale_after_s=60, repoll_after_s=30)
    live.track([HEDGED, ISOLATED])
    live.refresh(block(1))
    stream = live.start_stream()
    assert stream is not None
    wait_for(lambda: len(stream.subscribed()) == 2)
    updates = stream.updates
    # the wallet trades: the venue pushes its new state; nothing is polled for it
    api.add_account("hyperliquid", HEDGED.lower(), usdc=12_000, positions=[PerpPosition("ETH", -20, 4000)])
    wait_for(lambda: stream.updates > updates and live.cache.get(HEDGED) is not None
             and live.cache.get(HEDGED).state.positions[0].szi == Decimal(-20))  # type: ignore[union-attr]
    assert live.cache.get(HEDGED).source == "stream"  # type: ignore[union-attr]
    polls_before = api.requests
    api.set_mark("ETH", 4321)
    reading = live.refresh(block(2))
    assert api.requests - polls_before == 1  # only the block's marks: both accounts are live on the stream
    with HyperliquidConnector(api.base_url, max_retries=0) as c:
        fresh = hl_sync.evaluate(c.read_accounts([HEDGED, ISOLATED]), "hyperliquid", block(2))
    ours = {h.wallet: h for h in reading.healths}
    for h in fresh.healths:
        mine = ours[h.wallet]
        assert mine.health_factor == pytest.approx(h.health_factor, rel=1e-8)
        assert mine.extra["equity_usd"] == pytest.approx(h.extra["equity_usd"], abs=1e-5)
        assert mine.extra["maintenance_margin_usd"] == pytest.approx(h.extra["maintenance_margin_usd"], abs=1e-5)
        assert "stale" not in mine.flags
    live.close()


def test_dydx_stream_channel_data_changes_the_cached_subaccount(api: PerpApi) -> None:
    clock = Clock()
    live = dydx_live(api, clock, {HEDGED: HEDGED_DYDX}, ws=True)
    live.track([HEDGED])
    stream = live.start_stream()
    assert stream is not None
    wait_for(lambda: len(stream.subscribed()) == 1)
    account = f"{HEDGED_DYDX}/0"
    assert live.cache.get(account) is not None
    api.add_account("dydx", HEDGED_DYDX, usdc=20_000, positions=[PerpPosition("ETH", -4, 4000),
                                                                  PerpPosition("BTC", "0.1", 60_000)])
    wait_for(lambda: {p.market for p in live.cache.get(account).state.positions} == {"ETH-USD", "BTC-USD"})  # type: ignore[union-attr]
    api.add_account("dydx", HEDGED_DYDX, usdc=20_000, positions=[PerpPosition("BTC", "0.1", 60_000)])
    wait_for(lambda: [p.market for p in live.cache.get(account).state.positions] == ["BTC-USD"])  # type: ignore[union-attr]
    api.set_mark("BTC", 58_000)
    reading = live.refresh(block(5))
    with DydxConnector(api.base_url, max_retries=0) as c:
        fresh = dydx_sync.evaluate(c.read_accounts([HEDGED_DYDX]), "dydx_v4", block(5), {HEDGED_DYDX: HEDGED})
    (mine,) = reading.healths
    (theirs,) = fresh.healths
    assert mine.wallet == theirs.wallet == HEDGED
    assert mine.extra["equity_usd"] == pytest.approx(theirs.extra["equity_usd"], abs=1e-6)
    assert mine.health_factor == pytest.approx(theirs.health_factor, rel=1e-9)
    live.close()


def test_a_dropped_stream_falls_back_to_polls_within_budget_and_stops_polling_once_back(api: PerpApi) -> None:
    clock = Clock()
    log: list[str] = []
    live = hl_live(api, clock, ws=True, stale_after_s=60, repoll_after_s=30)
    live.track([HEDGED, ISOLATED])
    live.refresh(block(1))
    stream = live.start_stream()
    assert stream is not None
    wait_for(lambda: len(stream.subscribed()) == 2)
    assert live.budget is not None
    clock.now += 40  # past repoll_after_s: only the stream keeps them fresh
    polls = live.budget.charged_by_endpoint.get("clearinghouseState", 0)
    live.refresh(block(2))
    assert live.budget.charged_by_endpoint.get("clearinghouseState", 0) == polls  # carried by the stream

    api.ws_down()
    wait_for(lambda: not stream.connected.is_set())
    wait_for(lambda: not live.cache.status(HEDGED).is_fresh)
    assert "stream down" in (live.cache.status(HEDGED).reason or "")
    reading = live.refresh(block(3))
    assert live.budget.charged_by_endpoint["clearinghouseState"] == polls + 2 * 2  # both polled, weight 2 each
    assert all("stale" not in h.flags for h in reading.healths)

    api.ws_up()
    wait_for(lambda: len(stream.subscribed()) == 2, timeout=10)
    assert stream.connects >= 2
    assert stream.drops >= 1
    clock.now += 40
    live.refresh(block(4))
    assert live.budget.charged_by_endpoint["clearinghouseState"] == polls + 4  # back on the stream: no polls
    del log
    live.close()


def test_the_stream_carries_at_most_ten_users_the_riskiest(api: PerpApi) -> None:
    clock = Clock()
    wallets = many_wallets(api, 30)
    live = hl_live(api, clock, ws=True)
    live.track(wallets)
    live.refresh(block(1))
    stream = live.start_stream()
    assert stream is not None
    wait_for(lambda: len(stream.subscribed()) == 10)
    risky = {w for i, w in enumerate(wallets) if i % 10 == 0}
    carried = set(stream.subscribed())
    assert {live.parts.account_of(w) for w in risky} <= carried  # every wallet with a position is on the stream
    assert stream.last_error is None  # the venue's limit of 10 users never hit
    live.close()


def test_a_cache_failure_never_loses_the_last_good_state() -> None:
    clock = Clock()
    cache: AccountCache[str] = AccountCache(stale_after_s=10, clock=clock)
    cache.put("a", "state-1", block=5, observed_at_ms=1)
    clock.now += 3
    cache.fail("a", "HTTP 429")
    assert cache.get("a") is not None
    assert cache.get("a").state == "state-1"  # type: ignore[union-attr]
    assert cache.status("a") == StateStatus.stale(3.0, "HTTP 429")
    cache.put("a", "state-2", block=6, observed_at_ms=2)
    assert cache.status("a").is_fresh
    clock.now += 11
    st = cache.status("a")
    assert st.state == "stale"
    assert "not confirmed" in (st.reason or "")
    assert cache.status("never").state == "missing"


def test_a_malformed_stream_message_is_skipped_and_the_stream_goes_on(api: PerpApi) -> None:
    clock = Clock()
    live = hl_live(api, clock, ws=True)
    live.track([HEDGED])
    stream = live.start_stream()
    assert stream is not None
    wait_for(lambda: len(stream.subscribed()) == 1)
    before = live.cache.get(HEDGED)
    assert before is not None
    for bad in ({"channel": "clearinghouseState", "data": {"user": "nope"}},
                {"channel": "clearinghouseState", "data": {"user": HEDGED.lower(), "clearinghouseState": [1]}},
                {"channel": "webData2", "data": {"user": HEDGED.lower(), "clearinghouseState": {"time": "x"}}}):
        stream.handle_safely(bad)
    assert live.cache.get(HEDGED) == before  # the last good state kept
    api.set_mark("ETH", 4100)
    wait_for(lambda: live.cache.get(HEDGED) != before)  # and the stream still delivers
    assert stream.connected.is_set()
