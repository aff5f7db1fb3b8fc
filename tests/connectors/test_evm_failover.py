"""Circuit breakers and failover between a chain's RPC endpoints (scripted endpoints over httpx.MockTransport)."""

from __future__ import annotations

import json
import random
from typing import Any

import httpx
import pytest

from connectors.errors import CallRevertedError, DecodeError, InvalidInputError, RpcUnavailableError
from connectors.evm.failover import ChainMismatchError, CircuitBreaker, FailoverRpcClient

PRIMARY = "https://primary.example/v2/KEY1"
BACKUP = "https://backup.example/v2/KEY2"


class Clock:
    def __init__(self) -> None:
        self.t = 1_000.0

    def __call__(self) -> float:
        return self.t


class Endpoints:
    """Per host: a mode (ok, down, malformed, chain:<id>, revert) and a count of requests."""

    def __init__(self) -> None:
        self.mode = {"primary.example": "ok", "backup.example": "ok"}
        self.hits = {"primary.example": 0, "backup.example": 0}

    def __call__(self, req: httpx.Request) -> httpx.Response:
        host = req.url.host
        self.hits[host] += 1
        mode = self.mode[host]
        body = json.loads(req.content)
        if mode == "down":
            return httpx.Response(503)
        if mode == "unauthorized":
            return httpx.Response(401, content=b"invalid API key")
        if mode == "gzip":
            return httpx.Response(200, content=b"not gzip", headers={"content-encoding": "gzip"})
        if mode == "malformed":
            return httpx.Response(200, content=b'{"jsonrpc": "2.0", "id"')
        if body["method"] == "eth_chainId":
            chain = int(mode.split(":")[1]) if mode.startswith("chain:") else 1
            return httpx.Response(200, json={"jsonrpc": "2.0", "id": body["id"], "result": hex(chain)})
        if mode == "revert":
            return httpx.Response(200, json={"jsonrpc": "2.0", "id": body["id"],
                                             "error": {"code": 3, "message": "execution reverted: nope"}})
        result = "0x10" if host == "primary.example" else "0x20"
        return httpx.Response(200, json={"jsonrpc": "2.0", "id": body["id"], "result": result})


def client(endpoints: Endpoints, clock: Clock, urls: tuple[str, ...] = (PRIMARY, BACKUP),
           **kw: Any) -> FailoverRpcClient:
    return FailoverRpcClient(list(urls), chain_id=1, transport=httpx.MockTransport(endpoints), max_retries=1,
                             sleep=lambda _s: None, rng=random.Random(0), clock=clock, failure_threshold=2,
                             reset_s=30.0, max_reset_s=120.0, **kw)


def test_breaker_opens_half_opens_and_closes() -> None:
    clock = Clock()
    b = CircuitBreaker(failure_threshold=3, reset_s=10, max_reset_s=40, clock=clock)
    for _ in range(2):
        b.failure()
        assert b.state == "closed"
        assert b.allow()
    b.failure()
    assert b.state == "open"
    assert not b.allow()
    clock.t += 10
    assert b.state == "half_open"
    assert b.allow()
    assert not b.allow()  # one trial at a time
    b.failure()  # the trial failed: open again, for twice as long
    assert (b.state, b.open_for_s) == ("open", 20)
    clock.t += 19.9
    assert not b.allow()
    clock.t += 0.1
    assert b.allow()
    b.failure()
    assert b.open_for_s == 40
    clock.t += 40
    assert b.allow()
    b.failure()
    assert b.open_for_s == 40  # capped at max_reset_s
    clock.t += 40
    assert b.allow()
    b.success()
    assert (b.state, b.failures) == ("closed", 0)
    with pytest.raises(InvalidInputError):
        CircuitBreaker(failure_threshold=0)


def test_a_failing_primary_fails_over_then_is_skipped_until_its_breaker_lets_one_trial_through() -> None:
    ep, clock = Endpoints(), Clock()
    with client(ep, clock) as rpc:
        assert rpc.block_number() == 0x10
        ep.mode["primary.example"] = "down"
        assert rpc.block_number() == 0x20  # primary tried (with its retry), then the backup
        assert ep.hits["primary.example"] == 2 + 2
        assert rpc.block_number() == 0x20
        assert [e.state for e in rpc.endpoints()] == ["open", "closed"]  # two failed requests opened it
        before = ep.hits["primary.example"]
        for _ in range(5):
            assert rpc.block_number() == 0x20
        assert ep.hits["primary.example"] == before  # an open breaker keeps requests away
        clock.t += 30
        ep.mode["primary.example"] = "ok"
        assert rpc.block_number() == 0x10  # the half-open trial succeeds: back on the primary
        assert [e.state for e in rpc.endpoints()] == ["closed", "closed"]
        assert rpc.stats.calls_by_method == {"eth_blockNumber": 9}
        assert rpc.stats.errors == 0  # every logical call was answered
        assert "KEY" not in repr(rpc)
        assert "KEY" not in rpc.redacted_url


def test_every_endpoint_down_is_one_clear_error_and_counted() -> None:
    ep, clock = Endpoints(), Clock()
    ep.mode = {"primary.example": "down", "backup.example": "malformed"}
    with client(ep, clock) as rpc:
        with pytest.raises(RpcUnavailableError, match="no RPC endpoint answered") as err:
            rpc.block_number()
        assert "https://primary.example" in str(err.value)
        assert "https://backup.example" in str(err.value)
        assert "KEY" not in str(err.value)
        assert rpc.stats.errors == 1
        with pytest.raises(RpcUnavailableError):
            rpc.block_number()
        with pytest.raises(RpcUnavailableError, match="circuit open"):
            rpc.block_number()  # both breakers open now: nothing is sent
        # Two requests reached each endpoint (the primary's retried once; a malformed answer is not retried),
        # then both breakers were open and the third request sent nothing.
        assert ep.hits == {"primary.example": 4, "backup.example": 2}


def test_an_endpoint_on_another_chain_is_never_used() -> None:
    ep, clock = Endpoints(), Clock()
    ep.mode["primary.example"] = "chain:10"
    with client(ep, clock) as rpc:
        assert rpc.block_number() == 0x20
        assert rpc.endpoints()[0].state == "open"
        clock.t += 60  # held open far longer than a transient fault
        assert rpc.block_number() == 0x20
        assert ep.hits["primary.example"] == 1  # only its eth_chainId was asked
    ep2 = Endpoints()
    ep2.mode["primary.example"] = "chain:10"
    with client(ep2, Clock(), urls=(PRIMARY,)) as rpc, pytest.raises(ChainMismatchError, match="serves chain id 10"):
        rpc.block_number()


def test_answers_are_not_faults() -> None:
    """A revert is the endpoint's answer: no failover, no breaker count; one endpoint keeps its own errors."""
    ep, clock = Endpoints(), Clock()
    ep.mode["primary.example"] = "revert"
    with client(ep, clock) as rpc:
        with pytest.raises(CallRevertedError, match="nope"):
            rpc.eth_call("0x" + "11" * 20, b"\x01\x02\x03\x04", 5)
        assert ep.hits["backup.example"] == 0
        assert rpc.endpoints()[0].failures == 0
    single = Endpoints()
    single.mode["primary.example"] = "malformed"
    with client(single, Clock(), urls=(PRIMARY,)) as rpc, pytest.raises(DecodeError, match="malformed JSON"):
        rpc.block_number()


def test_a_refused_key_fails_over_and_counts_against_the_endpoint() -> None:
    ep, clock = Endpoints(), Clock()
    ep.mode["primary.example"] = "unauthorized"
    with client(ep, clock) as rpc:
        assert [rpc.block_number() for _ in range(3)] == [0x20] * 3
        assert rpc.endpoints()[0].state == "open"


def test_an_unreadable_answer_never_leaves_the_half_open_trial_taken() -> None:
    """A body that does not decode (corrupt gzip) is a failed trial; the breaker opens again and, later, lets a
    new trial through — it must not stay closed to requests for good."""
    ep, clock = Endpoints(), Clock()
    ep.mode["primary.example"] = "gzip"
    with client(ep, clock, urls=(PRIMARY,)) as rpc:
        for _ in range(2):
            with pytest.raises(RpcUnavailableError, match="unreadable"):
                rpc.block_number()
        assert rpc.endpoints()[0].state == "open"
        clock.t += 30
        with pytest.raises(RpcUnavailableError):
            rpc.block_number()  # the trial fails
        ep.mode["primary.example"] = "ok"
        clock.t += 200
        assert rpc.block_number() == 0x10  # a later trial goes through and closes the breaker
