from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from eth_abi import encode

from connectors.errors import (
    CallRevertedError,
    ConnectorError,
    DecodeError,
    InvalidInputError,
    RateLimitedError,
    RequestTooLargeError,
    RpcError,
    RpcTimeoutError,
    RpcUnavailableError,
)
from connectors.evm.abi import ERROR_SELECTOR, PANIC_SELECTOR
from connectors.evm.rpc import RpcClient, RpcStats, block_param, redact_url
from connectors.transport import TransportOptions
from connectors.types import BlockRef

URL = "https://eth-mainnet.example.com/v2/SECRETKEY?apikey=SECRET2"

Handler = Callable[[httpx.Request], httpx.Response]


def make(handler: Handler, sleeps: list[float] | None = None, **kw: Any) -> RpcClient:
    return RpcClient(
        URL,
        transport=httpx.MockTransport(handler),
        sleep=(sleeps.append if sleeps is not None else lambda _s: None),
        rng=random.Random(0),
        **kw,
    )


def ok(req: httpx.Request, result: Any) -> httpx.Response:
    """Answer ``result`` to a single request, or to every item of a batch."""
    body = json.loads(req.content)
    if isinstance(body, list):
        return httpx.Response(200, json=[{"jsonrpc": "2.0", "id": b["id"], "result": result} for b in body])
    return httpx.Response(200, json={"jsonrpc": "2.0", "id": body["id"], "result": result})


def err(req: httpx.Request, code: int, message: str, data: Any = None) -> httpx.Response:
    body = json.loads(req.content)
    e: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        e["data"] = data
    return httpx.Response(200, json={"jsonrpc": "2.0", "id": body["id"], "error": e})


class Script:
    """Answers requests in turn from a list of responders; counts them."""

    def __init__(self, *steps: Callable[[httpx.Request], httpx.Response]) -> None:
        self.steps = list(steps)
        self.n = 0

    def __call__(self, req: httpx.Request) -> httpx.Response:
        step = self.steps[min(self.n, len(self.steps) - 1)]
        self.n += 1
        return step(req)


# --- batches -------------------------------------------------------------------------------------------
def test_batch_matches_results_by_id_whatever_the_order() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        items = json.loads(req.content)
        out = [{"jsonrpc": "2.0", "id": it["id"], "result": it["params"][0]} for it in items]
        return httpx.Response(200, json=list(reversed(out)))

    with make(handler) as client:
        assert client.batch([("echo", ["a"]), ("echo", ["b"]), ("other", ["c"])]) == ["a", "b", "c"]
        assert client.stats.http_requests == 1
        assert client.stats.calls_by_method == {"echo": 2, "other": 1}
        assert client.stats.calls == 3


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda items: items[:-1], "no response for request id"),
        (lambda items: [*items, dict(items[0])], "appears twice"),
        (lambda items: [{**items[0], "id": 999}, *items[1:]], "matches no request"),
        (lambda items: [{"jsonrpc": "2.0", "id": items[0]["id"]}, *items[1:]], "neither result nor error"),
        (lambda items: ["x", *items[1:]], "not an object"),
    ],
)
def test_batch_with_a_bad_response_raises_decode_error(mutate: Callable[[list], list], match: str) -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        items = [{"jsonrpc": "2.0", "id": it["id"], "result": "0x1"} for it in json.loads(req.content)]
        return httpx.Response(200, json=mutate(items))

    with make(handler) as client, pytest.raises(DecodeError, match=match):
        client.batch([("eth_blockNumber", []), ("eth_chainId", [])])


def test_batch_item_errors_are_mapped_and_optionally_returned() -> None:
    revert = "0x" + (ERROR_SELECTOR + encode(["string"], ["nope"])).hex()

    def handler(req: httpx.Request) -> httpx.Response:
        items = json.loads(req.content)
        return httpx.Response(
            200,
            json=[
                {"jsonrpc": "2.0", "id": items[0]["id"], "result": "0x01"},
                {"jsonrpc": "2.0", "id": items[1]["id"], "error": {"code": 3, "message": "reverted", "data": revert}},
                {"jsonrpc": "2.0", "id": items[2]["id"], "error": {"code": -32000, "message": "out of gas"}},
                {"jsonrpc": "2.0", "id": items[3]["id"], "error": {"code": -32601, "message": "no such method"}},
            ],
        )

    reqs = [("eth_call", [])] * 4
    with make(handler) as client:
        out = client.batch(reqs, return_exceptions=True)
        assert out[0] == "0x01"
        assert isinstance(out[1], CallRevertedError)
        assert out[1].reason == "nope"
        assert isinstance(out[2], RequestTooLargeError)
        assert type(out[3]) is RpcError
        assert out[3].code == -32601
        # The out-of-gas and unknown-method items failed; the revert is an answer, not an error.
        assert client.stats.errors == 2
        with pytest.raises(CallRevertedError, match="nope"):
            client.batch(reqs)
        assert client.stats.errors == 2


def test_whole_batch_error_object_raises() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "bad"}})

    with make(handler) as client:
        with pytest.raises(RpcError, match="bad"):
            client.batch([("eth_chainId", []), ("eth_blockNumber", [])])
        assert client.stats.errors == 2  # every call of a batch that failed whole


def test_empty_batch_sends_nothing() -> None:
    script = Script(lambda r: ok(r, "0x1"))
    with make(script) as client:
        assert client.batch([]) == []
    assert script.n == 0


# --- retries -------------------------------------------------------------------------------------------
def test_5xx_is_retried_with_exponential_backoff_then_succeeds() -> None:
    sleeps: list[float] = []
    script = Script(
        lambda r: httpx.Response(502),
        lambda r: httpx.Response(503),
        lambda r: httpx.Response(500),
        lambda r: ok(r, "0x10"),
    )
    with make(script, sleeps, backoff_s=0.1) as client:
        assert client.block_number() == 16
        assert client.stats.http_requests == 4
        assert client.stats.http_retries == 3
        assert client.stats.calls_by_method == {"eth_blockNumber": 1}
    assert len(sleeps) == 3
    # jitter in [d/2, d] with d = 0.1, 0.2, 0.4
    for s, d in zip(sleeps, [0.1, 0.2, 0.4], strict=True):
        assert d / 2 <= s <= d


def test_5xx_exhausts_retries_as_unavailable() -> None:
    script = Script(lambda r: httpx.Response(503))
    with make(script, max_retries=2) as client:
        with pytest.raises(RpcUnavailableError, match="HTTP 503"):
            client.chain_id()
        assert (client.stats.errors, client.stats.http_requests) == (1, 3)  # one failed call, three requests
    assert script.n == 3


def test_timeouts_are_retried_then_raised_as_rpc_timeout() -> None:
    sleeps: list[float] = []

    def handler(req: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=req)

    with make(handler, sleeps, max_retries=3) as client:
        with pytest.raises(RpcTimeoutError) as info:
            client.chain_id()
        assert isinstance(info.value, TimeoutError)
        assert client.stats.http_requests == 4
    assert len(sleeps) == 3


def test_timeout_then_success() -> None:
    calls = {"n": 0}

    def handler(req: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            raise httpx.ConnectTimeout("slow", request=req)
        return ok(req, "0x1")

    with make(handler) as client:
        assert client.chain_id() == 1
    assert calls["n"] == 2


def test_connection_refused_is_unavailable_and_a_connection_error() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=req)

    with make(handler, max_retries=1) as client, pytest.raises(RpcUnavailableError) as info:
        client.block_number()
    assert isinstance(info.value, ConnectionError)
    assert "ConnectError" in str(info.value)


def test_429_honours_retry_after() -> None:
    sleeps: list[float] = []
    script = Script(lambda r: httpx.Response(429, headers={"Retry-After": "7"}), lambda r: ok(r, "0x2"))
    with make(script, sleeps, backoff_s=0.01) as client:
        assert client.block_number() == 2
    assert sleeps == [7.0]


def test_503_with_retry_after_waits_as_told_and_a_long_one_fails_at_once() -> None:
    sleeps: list[float] = []
    script = Script(lambda r: httpx.Response(503, headers={"Retry-After": "3"}), lambda r: ok(r, "0x2"))
    with make(script, sleeps, backoff_s=0.01) as client:
        assert client.block_number() == 2
    assert sleeps == [3.0]
    sleeps.clear()
    script = Script(lambda r: httpx.Response(503, headers={"Retry-After": "3600"}), lambda r: ok(r, "0x2"))
    with make(script, sleeps) as client, pytest.raises(RpcUnavailableError, match="503") as err:
        client.block_number()
    assert (err.value.retry_after, sleeps, script.n) == (3600.0, [], 1)  # a fallback endpoint may answer now


@pytest.mark.parametrize("error", [{"code": -32005, "message": "daily request count exceeded, request rate limited"},
                                   {"code": 429, "message": "Your app has exceeded its compute units per second"},
                                   {"code": -32000, "message": "Too Many Requests"}])
def test_rate_limits_said_in_a_json_rpc_error_are_retried(error: dict[str, Any]) -> None:
    sleeps: list[float] = []

    def limited(req: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"jsonrpc": "2.0", "id": json.loads(req.content)["id"], "error": error})

    with make(Script(limited, lambda r: ok(r, "0x5")), sleeps) as client:
        assert client.block_number() == 5
        assert client.stats.http_retries == 1
    with make(Script(limited), sleeps, max_retries=2) as client, pytest.raises(RateLimitedError):
        client.block_number()


@pytest.mark.parametrize("error", [{"code": -32000, "message": "response size limit exceeded"},
                                   {"code": -32000, "message": "batch limit exceeded"},
                                   {"code": 3, "message": "execution reverted: supply limit exceeded"}])
def test_limits_that_are_not_rate_limits_are_answers(error: dict[str, Any]) -> None:
    def answer(req: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"jsonrpc": "2.0", "id": json.loads(req.content)["id"], "error": error})

    with make(answer) as client, pytest.raises(RpcError) as err:
        client.block_number()
    assert not isinstance(err.value, RateLimitedError)
    assert client.stats.http_requests == 1  # not retried


def test_the_whole_answer_must_arrive_within_the_timeout() -> None:
    """A node trickling its answer never trips httpx's per-read timeout; the client's total deadline does."""

    def trickle(req: httpx.Request) -> httpx.Response:
        rid = json.loads(req.content)["id"]
        payload = json.dumps({"jsonrpc": "2.0", "id": rid, "result": "0x1"}).encode()

        def pieces() -> Iterator[bytes]:
            for i in range(len(payload)):
                time.sleep(0.02)
                yield payload[i : i + 1]

        return httpx.Response(200, content=pieces())

    with make(trickle, max_retries=0, timeout_s=0.2) as client, \
            pytest.raises(RpcTimeoutError, match=r"timed out after 0\.2 s"):
        client.block_number()


def test_429_without_retry_after_uses_backoff_and_raises_rate_limited() -> None:
    sleeps: list[float] = []
    script = Script(lambda r: httpx.Response(429))
    with make(script, sleeps, max_retries=2, backoff_s=0.05) as client, pytest.raises(RateLimitedError) as info:
        client.block_number()
    assert info.value.retry_after is None
    assert len(sleeps) == 2
    assert all(s <= 0.1 for s in sleeps)


def test_429_with_retry_after_longer_than_cap_is_raised_at_once() -> None:
    sleeps: list[float] = []
    script = Script(lambda r: httpx.Response(429, headers={"Retry-After": "3600"}))
    with make(script, sleeps, max_backoff_s=30) as client, pytest.raises(RateLimitedError) as info:
        client.block_number()
    assert info.value.retry_after == 3600
    assert sleeps == []
    assert script.n == 1


def test_reverts_are_never_retried() -> None:
    data = "0x" + (ERROR_SELECTOR + encode(["string"], ["Ownable: caller is not the owner"])).hex()
    script = Script(lambda r: err(r, 3, "execution reverted: Ownable: caller is not the owner", data))
    with make(script) as client, pytest.raises(CallRevertedError) as info:
        client.eth_call("0x" + "11" * 20, b"\x12\x34\x56\x78", 5)
    assert script.n == 1
    assert info.value.reason == "Ownable: caller is not the owner"
    assert info.value.revert_data == bytes.fromhex(data[2:])
    assert info.value.target == "0x" + "11" * 20
    assert info.value.code == 3


def test_revert_in_a_5xx_body_is_not_retried() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        body = json.loads(req.content)
        error = {"code": 3, "message": "execution reverted"}
        return httpx.Response(500, json={"jsonrpc": "2.0", "id": body["id"], "error": error})

    script = Script(handler)
    with make(script) as client, pytest.raises(CallRevertedError):
        client.eth_call("0x" + "11" * 20, b"\x00" * 4, "latest")
    assert script.n == 1


_PANIC_DIV0 = "0x" + (PANIC_SELECTOR + encode(["uint256"], [0x12])).hex()
_ERROR_DEEP = "0x" + (ERROR_SELECTOR + encode(["string"], ["deep"])).hex()


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        ({"code": 3, "message": "execution reverted", "data": _PANIC_DIV0}, "Panic(0x12: division or modulo by zero)"),
        ({"code": -32000, "message": "execution reverted: 35"}, "35"),
        ({"code": -32015, "message": "VM Exception: revert", "data": {"data": _ERROR_DEEP}}, "deep"),
        ({"code": -32000, "message": "execution reverted"}, None),
    ],
)
def test_revert_reason_decoding(error: dict[str, Any], reason: str | None) -> None:
    script = Script(lambda r: err(r, error["code"], error["message"], error.get("data")))
    with make(script) as client, pytest.raises(CallRevertedError) as info:
        client.eth_call("0x" + "11" * 20, b"\x00" * 4, "latest")
    assert info.value.reason == reason


def test_http_413_and_out_of_gas_are_request_too_large() -> None:
    with make(Script(lambda r: httpx.Response(413))) as client, pytest.raises(RequestTooLargeError):
        client.chain_id()
    oog = Script(lambda r: err(r, -32000, "gas required exceeds allowance (50000000)"))
    with make(oog) as client, pytest.raises(RequestTooLargeError):
        client.eth_call("0x" + "11" * 20, b"", "latest")
    assert oog.n == 1


def test_other_4xx_is_rpc_error_not_retried() -> None:
    script = Script(lambda r: httpx.Response(401, text="unauthorized"))
    with make(script) as client, pytest.raises(RpcError, match="HTTP 401") as info:
        client.chain_id()
    assert script.n == 1
    assert not isinstance(info.value, RpcUnavailableError | RpcTimeoutError)


# --- malformed answers ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("respond", "match"),
    [
        (lambda r: httpx.Response(200, content=b"<html>oops</html>"), "malformed JSON"),
        (lambda r: httpx.Response(200, json={"jsonrpc": "2.0", "id": json.loads(r.content)["id"]}), "neither"),
        (lambda r: httpx.Response(200, json={"jsonrpc": "2.0", "id": 424242, "result": "0x1"}), "does not match"),
        (lambda r: httpx.Response(200, json=[1, 2]), "expected a JSON object"),
        (lambda r: ok(r, "not-hex"), "hex quantity"),
        (lambda r: ok(r, 5), "hex quantity"),
    ],
)
def test_malformed_answers_raise_decode_error(respond: Handler, match: str) -> None:
    script = Script(respond)
    with make(script) as client, pytest.raises(DecodeError, match=match):
        client.chain_id()
    assert script.n == 1


def test_eth_call_result_must_be_hex() -> None:
    with make(Script(lambda r: ok(r, "0xzz"))) as client, pytest.raises(DecodeError, match="malformed hex"):
        client.eth_call("0x" + "11" * 20, b"", 1)


# --- blocks --------------------------------------------------------------------------------------------
def test_get_block_builds_a_block_ref_and_caches_the_chain_id() -> None:
    seen: list[str] = []

    def handler(req: httpx.Request) -> httpx.Response:
        body = json.loads(req.content)
        seen.append(body["method"])
        if body["method"] == "eth_chainId":
            return ok(req, "0x1")
        assert body["params"] == ["0x10", False]
        return ok(req, {"number": "0x10", "hash": "0x" + "ab" * 32, "timestamp": "0x64"})

    with make(handler) as client:
        ref = client.get_block(16)
        client.get_block(16)
    assert ref == BlockRef(chain_id=1, number=16, hash="0x" + "ab" * 32, timestamp=100)
    assert seen == ["eth_chainId", "eth_getBlockByNumber", "eth_getBlockByNumber"]


def test_unknown_block_is_invalid_input() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        return ok(req, "0x1" if json.loads(req.content)["method"] == "eth_chainId" else None)

    with make(handler) as client, pytest.raises(InvalidInputError, match="no block"):
        client.get_block(10**9)


def test_block_param() -> None:
    assert block_param(255) == "0xff"
    assert block_param("latest") == "latest"
    assert block_param("0x0FF") == "0xff"
    # A snapshot's block is pinned by hash (EIP-1898): a reorganised-away block fails instead of answering.
    assert block_param(BlockRef(chain_id=1, number=10, hash="0x" + "ab" * 32, timestamp=0)) == {
        "blockHash": "0x" + "ab" * 32, "requireCanonical": True}
    for bad in (-1, "0xzz", "yesterday", True, 1.5):
        with pytest.raises(InvalidInputError):
            block_param(bad)  # type: ignore[arg-type]


def test_eth_call_params_pin_block_and_gas() -> None:
    captured: list[Any] = []

    def handler(req: httpx.Request) -> httpx.Response:
        captured.append(json.loads(req.content)["params"])
        return ok(req, "0x")

    with make(handler) as client:
        assert client.eth_call("0x" + "11" * 20, b"\xab", 1234, gas=50_000_000) == b""
    assert captured == [[{"to": "0x" + "11" * 20, "data": "0xab", "gas": hex(50_000_000)}, "0x4d2"]]


# --- secrets -------------------------------------------------------------------------------------------
def test_redact_url_keeps_scheme_and_host_only() -> None:
    assert redact_url("https://eth-mainnet.g.alchemy.com/v2/abc123?x=y#frag") == "https://eth-mainnet.g.alchemy.com"
    assert redact_url("https://user:pass@node.example:8545/key") == "https://node.example:8545"
    assert redact_url("http://127.0.0.1:8545") == "http://127.0.0.1:8545"
    assert "secret" not in redact_url("wss://x.example/secret")


def test_no_secret_in_repr_or_error_messages(caplog: pytest.LogCaptureFixture) -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot connect to {req.url}", request=req)

    caplog.set_level(logging.DEBUG)
    client = make(handler, max_retries=1)
    assert "SECRET" not in repr(client)
    with pytest.raises(RpcUnavailableError) as info:
        client.block_number()
    assert "SECRET" not in str(info.value)
    assert "eth-mainnet.example.com" in str(info.value)
    assert info.value.__cause__ is None
    for status in (503, 429, 401):
        c = make(Script(lambda r, s=status: httpx.Response(s)), max_retries=0)
        with pytest.raises(ConnectorError) as info2:
            c.block_number()
        assert "SECRET" not in str(info2.value)
    assert "SECRET" not in caplog.text


def test_httpx_request_log_is_redacted(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="httpx")
    with make(Script(lambda r: ok(r, "0x1"))) as client:
        client.chain_id()
    assert "HTTP Request" in caplog.text
    assert "eth-mainnet.example.com" in caplog.text
    assert "SECRET" not in caplog.text


# --- lifecycle & stats ---------------------------------------------------------------------------------
def test_context_manager_closes_owned_client_only() -> None:
    with make(Script(lambda r: ok(r, "0x1"))) as client:
        pass
    assert client._client.is_closed
    shared = httpx.Client(transport=httpx.MockTransport(lambda r: ok(r, "0x1")))
    with RpcClient(URL, client=shared) as c2:
        assert c2.chain_id() == 1
    assert not shared.is_closed
    shared.close()


def test_stats_difference_and_reset() -> None:
    with make(Script(lambda r: ok(r, "0x1"))) as client:
        before = client.stats.copy()
        client.request("eth_blockNumber")
        client.batch([("eth_call", []), ("eth_call", [])])
        delta = client.stats - before
        assert delta.http_requests == 2
        assert delta.calls_by_method == {"eth_blockNumber": 1, "eth_call": 2}
        assert delta.bytes_sent > 0
        assert delta.bytes_received > 0
        client.stats.reset()
        assert client.stats == RpcStats()


def test_negative_retries_refused() -> None:
    with pytest.raises(InvalidInputError):
        RpcClient(URL, max_retries=-1)


def test_transport_options_pass_through_as_one_object() -> None:
    options = TransportOptions(timeout_s=2.0, max_retries=0)
    with RpcClient(URL, options=options) as client:
        assert client.options is options
    with RpcClient(URL, options=options, max_retries=5) as client:  # a keyword replaces the options' field
        assert client.options == TransportOptions(timeout_s=2.0, max_retries=5)
    with RpcClient(URL, backoff_s=1.0) as client:
        assert client.options == TransportOptions(backoff_s=1.0)
    with pytest.raises(InvalidInputError, match="timeout_s"):
        TransportOptions(timeout_s=0)
