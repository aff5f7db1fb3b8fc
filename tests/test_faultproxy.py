"""The fault-injecting JSON-RPC proxy (tests/faultproxy.py) against the real devnet: every fault does what it
says, seen by raw httpx and by :class:`connectors.evm.rpc.RpcClient`."""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import pytest

import devnet
from connectors.errors import (
    CallRevertedError,
    DecodeError,
    RateLimitedError,
    RpcError,
    RpcTimeoutError,
    RpcUnavailableError,
)
from connectors.evm.rpc import RpcClient
from devnet.node import free_port
from tests.faultproxy import MALFORMED_BODY, Fault, FaultProxy, FaultProxyError, LogEntry, ReorgError, reorg
from tests.timing import scaled

CHAIN_ID = 31337


# --- fixtures and helpers -----------------------------------------------------------------------------------------


@pytest.fixture
def chain(fresh_devnet: devnet.DevnetInfo) -> Iterator[devnet.DevnetInfo]:
    snap = devnet.snapshot(fresh_devnet)
    yield fresh_devnet
    devnet.revert(fresh_devnet, snap)


@pytest.fixture
def proxy(chain: devnet.DevnetInfo) -> Iterator[FaultProxy]:
    with FaultProxy(chain.rpc_url, seed=1) as p:
        yield p


@pytest.fixture
def sleeps() -> list[float]:
    return []


def rpc_client(proxy: FaultProxy, sleeps: list[float] | None = None, **kw: Any) -> RpcClient:
    """An RpcClient through ``proxy`` whose backoff sleeps are recorded in ``sleeps`` instead of slept; its deadline
    is at the tests' time scale, like every delay the tests inject and every duration they check."""
    options: dict[str, Any] = {"timeout_s": scaled(2.0), "max_retries": 3, "backoff_s": 0.01, **kw}
    return RpcClient(
        proxy.url,
        sleep=sleeps.append if sleeps is not None else (lambda _s: None),
        rng=random.Random(0),
        **options,
    )


@pytest.fixture
def client(proxy: FaultProxy, sleeps: list[float]) -> Iterator[RpcClient]:
    with rpc_client(proxy, sleeps) as c:
        yield c


def body(method: str, params: Sequence[Any] = (), rid: int = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "method": method, "params": list(params)}


def post(url: str, payload: object, timeout: float | None = None) -> httpx.Response:
    """One raw POST on a fresh connection (timeout: 5 s at the tests' time scale unless given)."""
    with httpx.Client(timeout=scaled(5.0) if timeout is None else timeout) as c:
        return c.post(url, json=payload)


def faults(proxy: FaultProxy) -> list[str | None]:
    return [e.fault for e in proxy.log]


# --- passing through ----------------------------------------------------------------------------------------------


@pytest.mark.chain
def test_without_faults_single_calls_and_batches_pass_untouched(
    chain: devnet.DevnetInfo, proxy: FaultProxy, client: RpcClient
) -> None:
    assert client.chain_id() == CHAIN_ID
    head = client.block_number()
    assert head == int(devnet.rpc(chain, "eth_blockNumber"), 16)
    direct = devnet.rpc(chain, "eth_getBlockByNumber", [hex(head), False])
    assert client.batch([("eth_getBlockByNumber", [hex(head), False]), ("eth_chainId", [])]) == [direct, hex(CHAIN_ID)]
    assert client.get_block(head).hash == direct["hash"]

    stats = proxy.stats
    assert stats.requests == 4
    assert stats.calls_by_method == {"eth_chainId": 2, "eth_blockNumber": 1, "eth_getBlockByNumber": 2}
    assert stats.faults == {}
    assert proxy.log[2] == LogEntry(("eth_getBlockByNumber", "eth_chainId"), (), batch=True)
    assert faults(proxy) == [None] * 4
    assert client.stats.http_retries == 0


@pytest.mark.chain
def test_latency_delays_only_the_matching_methods(proxy: FaultProxy, client: RpcClient) -> None:
    proxy.add(Fault.latency(scaled(0.5), methods={"eth_blockNumber"}))
    began = time.perf_counter()
    client.block_number()
    assert time.perf_counter() - began >= scaled(0.5)
    began = time.perf_counter()
    client.chain_id(refresh=True)
    assert time.perf_counter() - began < scaled(0.4)
    assert proxy.stats.faults == {"latency": 1}
    assert proxy.stats.faults_by_method == {"eth_blockNumber": {"latency": 1}}


@pytest.mark.chain
def test_latency_past_the_client_timeout_is_a_timeout_then_a_retry(proxy: FaultProxy, sleeps: list[float]) -> None:
    proxy.add(Fault.latency(scaled(0.6), times=1))
    with rpc_client(proxy, sleeps, timeout_s=scaled(0.3)) as c:
        assert c.block_number() > 0
        assert c.stats.http_retries == 1
    assert faults(proxy) == ["latency", None]
    assert len(sleeps) == 1


# --- timeouts, HTTP errors ----------------------------------------------------------------------------------------


@pytest.mark.chain
def test_timeout_holds_the_answer_past_the_client_timeout(chain: devnet.DevnetInfo, sleeps: list[float]) -> None:
    with FaultProxy(chain.rpc_url) as proxy:
        proxy.add(Fault.timeout(hold_s=scaled(20)))
        with rpc_client(proxy, sleeps, timeout_s=scaled(0.2), max_retries=1) as c:
            began = time.perf_counter()
            with pytest.raises(RpcTimeoutError, match=re.escape(f"timed out after {scaled(0.2):g} s")):
                c.block_number()
            assert scaled(0.4) <= time.perf_counter() - began < scaled(2.0)
            assert c.stats.http_requests == 2
        assert proxy.stats.faults == {"timeout": 2}
        with pytest.raises(httpx.ReadTimeout):
            post(proxy.url, body("eth_blockNumber"), timeout=scaled(0.2))
        began = time.perf_counter()
    # Leaving the block ends the held answers at once instead of after hold_s.
    assert time.perf_counter() - began < scaled(1.0)


@pytest.mark.chain
def test_429_with_retry_after_is_waited_out_then_the_call_succeeds(
    proxy: FaultProxy, client: RpcClient, sleeps: list[float]
) -> None:
    proxy.add(Fault.http_429(retry_after=2, times=1))
    raw = post(proxy.url, body("eth_blockNumber"))
    assert raw.status_code == 429
    assert raw.headers["retry-after"] == "2"

    proxy.add(Fault.http_429(retry_after=2, times=1))
    assert client.block_number() > 0
    assert sleeps == [2.0]
    assert client.stats.http_retries == 1
    assert faults(proxy) == ["http_429", "http_429", None]


@pytest.mark.chain
def test_429_with_a_retry_after_beyond_max_backoff_raises_at_once(proxy: FaultProxy, sleeps: list[float]) -> None:
    proxy.add(Fault.http_429(retry_after=60))
    with rpc_client(proxy, sleeps, max_backoff_s=5) as c, pytest.raises(RateLimitedError) as info:
        c.block_number()
    assert info.value.retry_after == 60
    assert sleeps == []
    assert proxy.stats.requests == 1


@pytest.mark.chain
def test_5xx_twice_then_the_call_succeeds(proxy: FaultProxy, client: RpcClient, sleeps: list[float]) -> None:
    proxy.add(Fault.http_5xx(502, times=2))
    assert client.block_number() > 0
    assert client.stats.http_retries == 2
    assert len(sleeps) == 2
    assert faults(proxy) == ["http_5xx", "http_5xx", None]
    assert proxy.rules[0].exhausted


@pytest.mark.chain
def test_5xx_forever_exhausts_the_retries(proxy: FaultProxy, client: RpcClient) -> None:
    proxy.add(Fault.http_5xx(503))
    raw = post(proxy.url, body("eth_blockNumber"))
    assert raw.status_code == 503
    assert raw.headers["content-type"] == "text/html"
    with pytest.raises(RpcUnavailableError, match="HTTP 503"):
        client.block_number()
    assert client.stats.http_requests == 4
    assert proxy.stats.faults == {"http_5xx": 5}


# --- broken bodies, dropped connections ---------------------------------------------------------------------------


@pytest.mark.chain
def test_malformed_json_is_a_decode_error_and_not_retried(proxy: FaultProxy, client: RpcClient) -> None:
    proxy.add(Fault.malformed_json())
    raw = post(proxy.url, body("eth_blockNumber"))
    assert raw.status_code == 200
    assert raw.content == MALFORMED_BODY
    with pytest.raises(ValueError, match="Expecting"):
        json.loads(raw.content)
    with pytest.raises(DecodeError, match="malformed JSON"):
        client.block_number()
    assert client.stats.http_requests == 1


@pytest.mark.chain
def test_truncated_json_cuts_the_upstream_answer(
    chain: devnet.DevnetInfo, proxy: FaultProxy, client: RpcClient
) -> None:
    block = body("eth_getBlockByNumber", ["0x1", False])
    whole = post(chain.rpc_url, block).content
    proxy.add(Fault.truncated_json(times=1))
    raw = post(proxy.url, block)
    assert raw.status_code == 200
    assert 0 < len(raw.content) < len(whole)
    assert whole.startswith(raw.content)

    proxy.add(Fault.truncated_json(times=1))
    with pytest.raises(DecodeError, match="malformed JSON"):
        client.get_block(1)
    assert client.stats.http_retries == 0


@pytest.mark.chain
def test_truncated_json_with_the_full_length_declared_is_a_connection_error(
    proxy: FaultProxy, client: RpcClient
) -> None:
    proxy.add(Fault.truncated_json(full_length=True))
    with pytest.raises(httpx.RemoteProtocolError, match="without sending complete message body"):
        post(proxy.url, body("eth_blockNumber"))
    with pytest.raises(RpcUnavailableError, match="RemoteProtocolError"):
        client.block_number()
    assert client.stats.http_requests == 4


@pytest.mark.chain
@pytest.mark.parametrize(
    ("reset", "raw_error", "text"),
    [(False, httpx.RemoteProtocolError, "without sending a response"), (True, httpx.ReadError, "reset by peer")],
)
def test_drop_connection_is_a_connection_error_not_a_hang(
    proxy: FaultProxy, client: RpcClient, reset: bool, raw_error: type[Exception], text: str
) -> None:
    proxy.add(Fault.drop_connection(reset=reset))
    with pytest.raises(raw_error, match=text):
        post(proxy.url, body("eth_blockNumber"))
    began = time.perf_counter()
    with pytest.raises(RpcUnavailableError, match=raw_error.__name__):
        client.block_number()
    assert time.perf_counter() - began < scaled(1.0)  # well within the client's deadline: no hang
    assert client.stats.http_requests == 4
    assert proxy.stats.faults == {"drop_connection": 5}


@pytest.mark.chain
def test_trickle_spreads_the_answer_past_a_read_timeout(proxy: FaultProxy) -> None:
    proxy.add(Fault.trickle(scaled(1.0), times=1))
    began = time.perf_counter()
    raw = post(proxy.url, body("eth_chainId"), timeout=scaled(0.3))  # every piece comes well within the read timeout
    assert time.perf_counter() - began >= scaled(1.0)
    assert raw.json()["result"] == hex(CHAIN_ID)


@pytest.mark.chain
def test_a_trickled_answer_meets_the_clients_total_deadline(proxy: FaultProxy) -> None:
    """httpx bounds each read; the client bounds the whole answer by its timeout, then retries."""
    proxy.add(Fault.trickle(scaled(2.0), times=1))
    sleeps: list[float] = []
    with rpc_client(proxy, sleeps, timeout_s=scaled(0.4), max_retries=1) as c:
        began = time.perf_counter()
        assert c.chain_id() == CHAIN_ID  # the first answer is cut off at the deadline; the retry is answered at once
        assert time.perf_counter() - began < scaled(1.5)
        assert c.stats.http_retries == 1


# --- rewritten answers --------------------------------------------------------------------------------------------


@pytest.mark.chain
def test_wrong_chain_id_rewrites_chain_id_answers_in_batches_too(proxy: FaultProxy, client: RpcClient) -> None:
    proxy.add(Fault.wrong_chain_id(1))
    assert client.chain_id() == 1
    head = int(devnet.rpc(proxy.upstream_url, "eth_blockNumber"), 16)
    assert client.batch([("eth_chainId", []), ("eth_blockNumber", []), ("net_version", [])]) == ["0x1", hex(head), "1"]
    assert proxy.stats.faults_by_method == {"eth_chainId": {"wrong_chain_id": 2}, "net_version": {"wrong_chain_id": 1}}
    proxy.clear()
    assert client.chain_id(refresh=True) == CHAIN_ID


@pytest.mark.chain
def test_error_object_answers_matching_calls_with_a_json_rpc_error(
    chain: devnet.DevnetInfo, proxy: FaultProxy, client: RpcClient
) -> None:
    proxy.add(Fault.error_object(-32000, "header not found", methods={"eth_getBalance"}))
    balance = ("eth_getBalance", [devnet.ADMIN, "latest"])
    with pytest.raises(RpcError, match="header not found") as info:
        client.request(*balance)
    assert info.value.code == -32000
    assert client.stats.http_requests == 1  # a JSON-RPC error is an answer: not retried
    out = client.batch([("eth_chainId", []), balance], return_exceptions=True)
    assert out[0] == hex(CHAIN_ID)
    assert isinstance(out[1], RpcError)
    assert out[1].code == -32000
    assert client.block_number() > 0

    # ... except one that says the caller is rate limited (Infura's -32005 in an HTTP 200): waited out, retried.
    proxy.clear()
    proxy.add(Fault.error_object(-32005, "limit exceeded", methods={"eth_getBalance"}, times=1))
    before = client.stats.http_requests
    assert int(client.request(*balance), 16) >= 0
    assert client.stats.http_requests - before == 2
    proxy.clear()
    proxy.add(Fault.error_object(-32005, "limit exceeded", methods={"eth_getBalance"}))
    with pytest.raises(RateLimitedError, match="limit exceeded"):
        client.request(*balance)

    proxy.clear()
    proxy.add(Fault.error_object(3, "execution reverted: injected", times=1))
    with pytest.raises(CallRevertedError) as reverted:
        client.block_number()
    assert reverted.value.reason == "injected"


@pytest.mark.chain
def test_empty_result_and_wrong_id(proxy: FaultProxy, client: RpcClient) -> None:
    proxy.add(Fault.empty_result(methods={"eth_blockNumber"}))
    assert client.request("eth_blockNumber") is None
    with pytest.raises(DecodeError, match="got None"):
        client.block_number()
    assert client.batch([("eth_blockNumber", []), ("eth_chainId", [])]) == [None, hex(CHAIN_ID)]

    proxy.clear()
    proxy.add(Fault.wrong_id(times=2))
    with pytest.raises(DecodeError, match="does not match request id"):
        client.block_number()
    with pytest.raises(DecodeError, match="matches no request"):
        client.batch([("eth_blockNumber", []), ("eth_chainId", [])])
    assert client.block_number() > 0


# --- scripting: times, after, probability, methods, stacking, threads ---------------------------------------------


@pytest.mark.chain
def test_after_times_and_methods_select_the_requests(proxy: FaultProxy) -> None:
    rule = proxy.add(Fault.error_object(after=2, times=2, methods={"eth_blockNumber"}))
    answers = []
    for method in ["eth_blockNumber", "eth_chainId", "eth_blockNumber", "eth_blockNumber", "eth_chainId",
                   "eth_blockNumber", "eth_blockNumber"]:
        answers.append("error" in post(proxy.url, body(method)).json())
    assert answers == [False, False, False, True, False, True, False]
    assert (rule.seen, rule.injected, rule.exhausted) == (4, 2, True)
    assert faults(proxy) == [None, None, None, "error_object", None, "error_object", None]


@pytest.mark.chain
def test_probability_draws_from_the_seeded_random(chain: devnet.DevnetInfo) -> None:
    def pattern(seed: int) -> list[bool]:
        with FaultProxy(chain.rpc_url, seed=seed) as p, httpx.Client() as c:
            p.add(Fault.empty_result(probability=0.5))
            hits = [c.post(p.url, json=body("eth_chainId")).json()["result"] is None for _ in range(40)]
            assert p.stats.faults.get("empty_result", 0) == sum(hits)
            return hits

    first = pattern(7)
    assert first == pattern(7)
    assert 8 <= sum(first) <= 32


@pytest.mark.chain
def test_latency_and_reorg_stack_with_one_other_fault(proxy: FaultProxy) -> None:
    proxy.add(Fault.latency(scaled(0.2), times=1))
    proxy.add(Fault.http_5xx(500, times=1))
    malformed = proxy.add(Fault.malformed_json(times=1))
    began = time.perf_counter()
    assert post(proxy.url, body("eth_chainId")).status_code == 500
    assert time.perf_counter() - began >= scaled(0.2)
    assert malformed.injected == 0  # not drawn while another fault answered
    assert post(proxy.url, body("eth_chainId")).content == MALFORMED_BODY
    assert post(proxy.url, body("eth_chainId")).json()["result"] == hex(CHAIN_ID)
    assert faults(proxy) == ["latency+http_5xx", "malformed_json", None]


@pytest.mark.chain
def test_concurrent_requests_are_counted_exactly(proxy: FaultProxy) -> None:
    proxy.add(Fault.http_5xx(503, times=7))
    statuses: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        with httpx.Client(timeout=scaled(5)) as c:
            for _ in range(10):
                status = c.post(proxy.url, json=body("eth_blockNumber")).status_code
                with lock:
                    statuses.append(status)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(set(statuses)) == [200, 503]
    assert statuses.count(503) == 7
    assert proxy.stats.requests == 80
    assert proxy.stats.faults == {"http_5xx": 7}


# --- reorgs -------------------------------------------------------------------------------------------------------


def _transfer(chain: devnet.DevnetInfo, to: str, wei: int) -> int:
    """Send ``wei`` to ``to``; the block the transfer was mined in."""
    sender = devnet.rpc(chain, "eth_accounts")[1]
    return int(devnet.send_tx(chain, sender, to, "0x", value=wei)["blockNumber"], 16)


def _balance(chain: devnet.DevnetInfo, who: str) -> int:
    return int(devnet.rpc(chain, "eth_getBalance", [who, "latest"]), 16)


def _hash(chain: devnet.DevnetInfo | str, height: int) -> str:
    return str(devnet.rpc(chain, "eth_getBlockByNumber", [hex(height), False])["hash"])


@pytest.mark.chain
@pytest.mark.parametrize("keep_txs", [True, False])
def test_reorg_replaces_the_last_blocks_and_the_chain_continues(chain: devnet.DevnetInfo, keep_txs: bool) -> None:
    receiver = "0x00000000000000000000000000000000000fa017"
    mined_in = _transfer(chain, receiver, 12345)
    devnet.mine(chain)
    head = int(devnet.rpc(chain, "eth_blockNumber"), 16)
    depth = head - mined_in + 1  # the transfer's block and the blocks after it (mined after the test's snapshot)
    assert depth >= 2
    ancestor = _hash(chain, mined_in - 1)

    result = reorg(chain.rpc_url, depth=depth, keep_txs=keep_txs)

    assert result.head == head == int(devnet.rpc(chain, "eth_blockNumber"), 16)
    assert result.heights == list(range(mined_in, head + 1))
    for h in result.heights:
        assert result.new_hashes[h] != result.old_hashes[h]
        assert _hash(chain, h) == result.new_hashes[h]
    first = devnet.rpc(chain, "eth_getBlockByNumber", [hex(mined_in), False])
    assert first["parentHash"] == ancestor  # the common ancestor stays
    assert devnet.rpc(chain, "eth_getBlockByNumber", [hex(head), False])["parentHash"] == result.new_hashes[head - 1]
    # the transfer is carried into the new chain, or gone with the old one
    assert _balance(chain, receiver) == (12345 if keep_txs else 0)
    assert result.replayed_txs == (1 if keep_txs else 0)

    devnet.mine(chain)  # the chain continues from the new head
    nxt = devnet.rpc(chain, "eth_getBlockByNumber", [hex(head + 1), False])
    assert nxt["parentHash"] == result.new_hashes[head]
    again = reorg(chain.rpc_url)  # an empty block reorged again still gets a new hash
    assert again.new_hashes[head + 1] != nxt["hash"]


@pytest.mark.chain
def test_a_reorg_at_or_below_the_floor_is_refused(chain: devnet.DevnetInfo, proxy: FaultProxy) -> None:
    """anvil cannot revert to a snapshot that a reorg reached below: the proxy's floor (its start's head, after
    the test's snapshot) keeps reorgs above it."""
    head = int(devnet.rpc(chain, "eth_blockNumber"), 16)
    assert proxy.reorg_floor == head
    before = _hash(chain, head)
    with pytest.raises(ReorgError, match=r"mine 1 more block\(s\) first"):
        reorg(chain.rpc_url, depth=1, floor=head)
    proxy.reorg_after(0)
    raw = post(proxy.url, body("eth_blockNumber"))
    assert raw.status_code == 500
    assert "floor" in raw.text
    assert _hash(chain, head) == before  # untouched
    with pytest.raises(FaultProxyError, match="floor"):
        proxy.stop()


@pytest.mark.chain
def test_reorg_between_two_reads_of_a_reader(chain: devnet.DevnetInfo, proxy: FaultProxy, client: RpcClient) -> None:
    devnet.mine(chain)  # the block to reorg comes after the test's snapshot
    head = client.block_number()
    proxy.reorg_after(1, methods={"eth_getBlockByNumber"})
    before = client.get_block(head)
    after = client.get_block(head)
    assert before.number == after.number == head
    assert before.hash != after.hash
    [done] = proxy.reorgs
    assert done.old_hashes == {head: before.hash}
    assert done.new_hashes == {head: after.hash}
    assert client.block_number() == head
    assert faults(proxy)[-2:] == ["reorg", None]


# --- lifecycle, upstream failures, validation ---------------------------------------------------------------------


@pytest.mark.chain
def test_stop_closes_idle_keep_alive_connections_and_held_answers(chain: devnet.DevnetInfo) -> None:
    with httpx.Client(timeout=scaled(5)) as c:
        held: list[BaseException] = []

        def hold() -> None:
            try:
                c.post(url, json=body("eth_chainId"))
            except httpx.HTTPError as exc:
                held.append(exc)

        with FaultProxy(chain.rpc_url) as proxy:
            url = proxy.url
            assert c.post(url, json=body("eth_chainId")).status_code == 200  # an idle keep-alive connection now
            proxy.add(Fault.timeout(hold_s=scaled(30)))
            holder = threading.Thread(target=hold)
            holder.start()
            while not proxy.log or proxy.log[-1].fault != "timeout":
                time.sleep(0.01)
            began = time.perf_counter()
        assert time.perf_counter() - began < scaled(1.0)
        holder.join(scaled(5))
        assert len(held) == 1
        assert isinstance(held[0], httpx.RemoteProtocolError)
        with pytest.raises(httpx.ConnectError):
            c.post(url, json=body("eth_chainId"))


def test_an_unreachable_upstream_is_answered_502() -> None:
    with FaultProxy(f"http://127.0.0.1:{free_port()}", upstream_timeout_s=2) as proxy:
        assert post(proxy.url, body("eth_chainId")).status_code == 502
        with RpcClient(proxy.url, max_retries=1, sleep=lambda _s: None) as c, pytest.raises(
            RpcUnavailableError, match="HTTP 502"
        ):
            c.chain_id()
        assert proxy.stats.upstream_errors == 3


def test_faults_are_validated() -> None:
    with pytest.raises(ValueError, match="unknown fault kind"):
        Fault("nope")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="5xx"):
        Fault.http_5xx(404)
    with pytest.raises(ValueError, match="probability"):
        Fault.malformed_json(probability=1.5)
    with pytest.raises(TypeError, match="collection"):
        Fault.empty_result(methods="eth_call")
    assert Fault.wrong_chain_id(5).target_methods == frozenset({"eth_chainId", "net_version"})
    assert Fault.wrong_id(methods=["eth_call"]).methods == frozenset({"eth_call"})
