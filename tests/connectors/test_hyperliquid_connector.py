"""HyperliquidConnector over ``httpx.MockTransport``: request shapes, error mapping, retries, venue time."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.base import OffchainConnector
from connectors.errors import (
    DecodeError,
    InvalidAddressError,
    InvalidInputError,
    RateLimitedError,
    RpcTimeoutError,
    RpcUnavailableError,
)
from connectors.http import http_date_ms
from connectors.hyperliquid import HyperliquidConnector

PAYLOADS = Path(__file__).parent / "payloads"
STATE = json.loads((PAYLOADS / "hyperliquid_clearinghouse_state_docs.json").read_text())
META = json.loads((PAYLOADS / "hyperliquid_meta_and_asset_ctxs_docs.json").read_text())
A = "0x31ca8395cf837de08b24da3f660e77761dfb974b"
B = "0x0000000000000000000000000000000000000001"
DATE = "Tue, 20 Feb 2024 17:19:58 GMT"

Handler = Callable[[httpx.Request], httpx.Response]


def venue(state_for: Callable[[str], Any] | None = None) -> tuple[Handler, list[dict[str, Any]]]:
    """A fake info endpoint; returns the handler and the list of request bodies it saw."""
    seen: list[dict[str, Any]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        assert request.method == "POST"
        assert request.url.path == "/info"
        assert request.headers["content-type"] == "application/json"
        body = json.loads(request.content)
        seen.append(body)
        if body["type"] == "metaAndAssetCtxs":
            return httpx.Response(200, json=META, headers={"date": DATE})
        assert body["type"] == "clearinghouseState"
        answer = state_for(body["user"]) if state_for else STATE
        return httpx.Response(200, json=answer, headers={"date": DATE})

    return handle, seen


def connector(handler: Handler, **kw: Any) -> HyperliquidConnector:
    kw.setdefault("sleep", lambda s: None)
    return HyperliquidConnector("https://api.example.test", transport=httpx.MockTransport(handler), **kw)


def test_it_is_an_offchain_connector_with_declared_rate_limit() -> None:
    caps = HyperliquidConnector.capabilities
    assert isinstance(connector(venue()[0]), OffchainConnector)
    assert (caps.venue_type, caps.kind, caps.transport) == ("hyperliquid", "perp", "http")
    assert caps.block_pinned is False
    assert caps.batch_wallets is False
    assert caps.reports_own_health is True
    assert caps.rate_limit is not None
    # 1,200 weight per minute; clearinghouseState (the per-wallet request) weighs 2, every other info request 20
    assert caps.rate_limit.weight_per_minute == 1200
    assert caps.rate_limit.weight("clearinghouseState") == 2
    assert caps.rate_limit.weight("metaAndAssetCtxs") == caps.rate_limit.weight("meta") == 20


def test_read_accounts_posts_the_documented_bodies_and_stamps_venue_time() -> None:
    handler, seen = venue()
    c = connector(handler)
    snap = c.read_accounts([A, B, A.upper().replace("0X", "0x")])
    assert seen == [
        {"type": "metaAndAssetCtxs"},
        {"type": "clearinghouseState", "user": A},
        {"type": "clearinghouseState", "user": B},
    ]
    assert [a.wallet.lower() for a in snap.accounts] == [A, B]
    # The venue's own `time` wins over the HTTP Date of the market read.
    assert (snap.observed_at_ms, snap.observed_at_source) == (1708622398623, "venue")
    assert snap.market.observed_at_ms == http_date_ms(DATE)
    assert snap.market.observed_at_source == "http_date"
    assert c.weight_used == 20 + 2 * 2
    assert c.stats.http_requests == 3


def test_without_venue_time_the_http_date_stamps_the_snapshot() -> None:
    state = {k: v for k, v in STATE.items() if k != "time"}
    snap = connector(venue(lambda user: state)[0]).read_accounts([A])
    assert (snap.observed_at_ms, snap.observed_at_source) == (http_date_ms(DATE), "http_date")
    assert snap.observed_at_ms == 1708449598000


def test_an_unknown_user_comes_back_empty() -> None:
    empty = {
        "marginSummary": {"accountValue": "0.0", "totalNtlPos": "0.0", "totalRawUsd": "0.0", "totalMarginUsed": "0.0"},
        "crossMarginSummary": {
            "accountValue": "0.0",
            "totalNtlPos": "0.0",
            "totalRawUsd": "0.0",
            "totalMarginUsed": "0.0",
        },
        "crossMaintenanceMarginUsed": "0.0",
        "withdrawable": "0.0",
        "assetPositions": [],
        "time": 1708622398700,
    }
    snap = connector(venue(lambda user: empty if user == B else STATE)[0]).read_accounts([A, B])
    assert [len(a.positions) for a in snap.accounts] == [1, 0]
    assert snap.account(B).account_value_usd == 0


def test_invalid_addresses_are_refused_before_any_request() -> None:
    handler, seen = venue()
    c = connector(handler)
    bad_checksum = "0x31Ca8395cF837DE08B24dA3F660E77761DFb974b"  # EIP-55 with the first letter's case flipped
    for bad in ("0x1234", "dydx199tqg4wdlnu4qjlxchpd7seg454937hjrknju4", bad_checksum):
        with pytest.raises(InvalidAddressError):
            c.read_accounts([A, bad])
    assert seen == []
    assert c.stats.http_requests == 0


def test_a_timeout_maps_to_rpc_timeout_after_retries() -> None:
    calls = 0

    def handle(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(RpcTimeoutError, match="timed out") as info:
        connector(handle, max_retries=2).read_accounts([A])
    assert isinstance(info.value, TimeoutError)
    assert calls == 3


def test_429_with_retry_after_is_waited_out_then_succeeds() -> None:
    handler, _ = venue()
    sleeps: list[float] = []
    answers = iter([httpx.Response(429, headers={"retry-after": "7"})])

    def handle(request: httpx.Request) -> httpx.Response:
        return next(answers, None) or handler(request)

    snap = connector(handle, sleep=sleeps.append, max_backoff_s=30).read_accounts([A])
    assert len(snap.accounts) == 1
    assert sleeps
    assert sleeps[0] >= 7


def test_429_with_a_long_retry_after_raises_at_once_with_it() -> None:
    calls = 0

    def handle(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(429, headers={"retry-after": "120"})

    with pytest.raises(RateLimitedError) as info:
        connector(handle, max_backoff_s=30).read_accounts([A])
    assert info.value.retry_after == 120
    assert calls == 1


def test_500_then_success_is_retried() -> None:
    handler, _ = venue()
    answers = iter([httpx.Response(500, text="oops"), httpx.Response(502, text="bad gateway")])

    def handle(request: httpx.Request) -> httpx.Response:
        return next(answers, None) or handler(request)

    c = connector(handle)
    snap = c.read_accounts([A])
    assert len(snap.accounts[0].positions) == 1
    assert c.stats.http_retries == 2


def test_persistent_5xx_and_refused_connections_are_unavailable() -> None:
    with pytest.raises(RpcUnavailableError, match="HTTP 503"):
        connector(lambda r: httpx.Response(503), max_retries=1).read_accounts([A])

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(RpcUnavailableError, match="ConnectError"):
        connector(refuse, max_retries=0).read_accounts([A])


def test_malformed_json_is_a_decode_error_not_retried() -> None:
    calls = 0

    def handle(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(200, content=b"{not json")

    with pytest.raises(DecodeError, match="malformed JSON"):
        connector(handle).read_accounts([A])
    assert calls == 1


def test_a_wrong_shape_is_a_decode_error() -> None:
    broken = {k: v for k, v in STATE.items() if k != "crossMarginSummary"}
    with pytest.raises(DecodeError, match="crossMarginSummary"):
        connector(venue(lambda user: broken)[0]).read_accounts([A])

    def bad_meta(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"universe": []})

    with pytest.raises(DecodeError, match="metaAndAssetCtxs"):
        connector(bad_meta).read_accounts([A])


def test_422_is_a_caller_fault_and_the_url_is_redacted() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(422, text="Failed to deserialize the JSON body into the target type")

    c = HyperliquidConnector(
        "https://key:secret@api.example.test/SECRETPATH", transport=httpx.MockTransport(handle), sleep=lambda s: None
    )
    with pytest.raises(InvalidInputError, match="Failed to deserialize") as info:
        c.read_accounts([A])
    assert "SECRETPATH" not in str(info.value)
    assert "secret" not in str(info.value)
    assert "SECRETPATH" not in repr(c)


def test_dex_is_sent_when_set() -> None:
    handler, seen = venue()
    connector(handler, dex="xyz").read_accounts([A])
    assert all(body.get("dex") == "xyz" for body in seen)
