"""A fault-injecting JSON-RPC proxy for tests: an HTTP server on 127.0.0.1 (a free port) in front of a node.

It forwards every POST body (a single JSON-RPC request or a batch) to the upstream URL and returns the
answer, unless a scripted :class:`Fault` says otherwise::

    with FaultProxy(devnet_info.rpc_url) as proxy:
        proxy.add(Fault.http_5xx(503, times=2))                     # the next two requests answer 503
        proxy.add(Fault.latency(0.5, methods={"eth_call"}))         # every eth_call waits 0.5 s first
        proxy.reorg_after(3)                                        # reorg the head before request 4
        client = RpcClient(proxy.url, ...)
        ...
        assert proxy.stats.faults == {"http_5xx": 2, "latency": 1, "reorg": 1}

Faults (see the :class:`Fault` constructors)::

    latency(seconds)                  wait before forwarding (stacks with any other fault)
    reorg(depth)                      really reorg the upstream anvil before forwarding (stacks too)
    timeout(hold_s)                   read the request, answer nothing for hold_s seconds, then close
    http_429(retry_after)             HTTP 429, with a Retry-After header when retry_after is not None
    http_5xx(status, retry_after)     HTTP 5xx with an HTML body (a load balancer's), upstream not asked
    malformed_json                    HTTP 200 whose body is not JSON (upstream not asked)
    truncated_json(full_length)       the upstream's answer cut in half; full_length=True declares the
                                      whole Content-Length and closes mid-body (a connection error)
    trickle(seconds)                  the upstream's answer sent in pieces spread over seconds, so no
                                      single read waits long but the whole answer takes that long
    drop_connection(reset)            read the request, close the socket without an answer (reset=True:
                                      an RST, the client sees ConnectionResetError; else a FIN)
    wrong_chain_id(chain_id)          eth_chainId / net_version results rewritten (in batches too)
    error_object(code, message)       a JSON-RPC error object instead of the result of matching calls
    empty_result                      ``"result": null`` for matching calls
    wrong_id                          the response id of matching calls changed to one never sent

Rules: every fault may be limited to ``methods`` (a request matches when any of its calls does; the
per-call faults — wrong_chain_id, error_object, empty_result, wrong_id — rewrite the matching calls of a
batch only), skips the first ``after`` requests it matches, fires with ``probability`` (drawn from the
proxy's seeded :class:`random.Random`) and at most ``times`` times (None: forever). Per request, every
latency and reorg fault that fires applies, plus at most one other fault: the first one, in the order
added, that fires (the later ones are not drawn and not consumed for that request).

The server speaks HTTP/1.1 with keep-alive, like a node. Leaving the ``with`` block wakes held answers,
closes idle client connections, stops the server and joins its threads; an unexpected exception inside the
proxy (not a client hanging up) is re-raised then as :class:`FaultProxyError`.

:func:`reorg` reorgs an anvil node directly: the last ``depth`` blocks are replaced by blocks at the same
heights with new hashes (``anvil_reorg``, carrying the original transactions again plus one marker
transaction so that even empty blocks change), and the chain continues from the new head. A reorg must
not reach below an ``evm_snapshot`` that will be reverted to (anvil then fails that revert and every later
one): the proxy's reorgs only replace blocks mined after it started (``reorg_floor``), so take the test's
snapshot before starting the proxy and mine ``depth`` blocks before the reorg fires.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import socket
import struct
import sys
import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, Self, TypedDict, Unpack, get_args

import httpx

from devnet.evm import rpc

__all__ = [
    "Fault",
    "FaultKind",
    "FaultProxy",
    "FaultProxyError",
    "LogEntry",
    "ProxyStats",
    "ReorgError",
    "ReorgResult",
    "Rule",
    "reorg",
]

FaultKind = Literal[
    "latency",
    "reorg",
    "timeout",
    "http_429",
    "http_5xx",
    "malformed_json",
    "truncated_json",
    "trickle",
    "drop_connection",
    "wrong_chain_id",
    "error_object",
    "empty_result",
    "wrong_id",
]
KINDS: frozenset[str] = frozenset(get_args(FaultKind))
STACKING: frozenset[str] = frozenset({"latency", "reorg"})
"""Kinds that apply together with any other fault of the same request."""
PER_CALL: frozenset[str] = frozenset({"wrong_chain_id", "error_object", "empty_result", "wrong_id"})
"""Kinds that rewrite the matching calls of an answer (in a batch: those items only)."""
_DEFAULT_METHODS: dict[str, frozenset[str]] = {"wrong_chain_id": frozenset({"eth_chainId", "net_version"})}

MALFORMED_BODY = b'{"jsonrpc": "2.0", "id": 1, "result": 0xdeadbeef'
"""What ``malformed_json`` answers: almost JSON (an unquoted hex number, no closing brace)."""
UNPARSED = "<unparsed>"
"""The method recorded for a request body that is not JSON-RPC."""


class FaultProxyError(RuntimeError):
    """The proxy itself failed while serving (raised when it stops)."""


class ReorgError(RuntimeError):
    """A reorg did not give every replaced height a new block hash, or moved the head."""


class When(TypedDict, total=False):
    """When a fault fires; see :class:`Fault`."""

    times: int | None
    probability: float
    methods: Collection[str] | None
    after: int


@dataclass(frozen=True)
class Fault:
    """One scripted fault. Build it with a constructor (``Fault.http_5xx(503, times=2)``) or directly
    (``Fault("http_5xx", times=2, status=503)``).

    ``times``: how often it fires (None: forever); ``probability``: the chance it fires on a request it
    matches; ``methods``: the JSON-RPC methods it applies to (None: all; wrong_chain_id defaults to
    eth_chainId and net_version); ``after``: how many matching requests it lets through before it may fire.
    The other fields are the parameters of the kinds that use them.
    """

    kind: FaultKind
    times: int | None = None
    probability: float = 1.0
    methods: Collection[str] | None = None
    after: int = 0
    seconds: float = 0.0
    """latency: the delay; trickle: how long sending the whole answer takes."""
    hold_s: float = 30.0
    """timeout: how long the connection is held before it is closed (cut short when the proxy stops)."""
    retry_after: float | str | None = None
    """http_429 / http_5xx: the Retry-After header (seconds, or an HTTP date as a string); None: no header."""
    status: int = 503
    """http_5xx: the status."""
    chain_id: int = 1
    """wrong_chain_id: the chain id answered."""
    code: int = -32000
    message: str = "injected error"
    """error_object: the JSON-RPC error's code and message."""
    depth: int = 1
    keep_txs: bool = True
    """reorg: how many blocks are replaced; whether their transactions are carried into the new blocks."""
    reset: bool = False
    """drop_connection: close with an RST (SO_LINGER 0) instead of a FIN."""
    full_length: bool = False
    """truncated_json: declare the whole answer's Content-Length, send half, close."""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; known: {sorted(KINDS)}")
        if self.times is not None and self.times < 0:
            raise ValueError("times must be >= 0 or None")
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError("probability must be in [0, 1]")
        if self.after < 0:
            raise ValueError("after must be >= 0")
        if self.seconds < 0 or self.hold_s < 0:
            raise ValueError("seconds and hold_s must be >= 0")
        if self.kind == "http_5xx" and not 500 <= self.status <= 599:
            raise ValueError(f"http_5xx needs a 5xx status, not {self.status}")
        if self.kind == "reorg" and self.depth < 1:
            raise ValueError("reorg depth must be >= 1")
        if self.methods is not None:
            if isinstance(self.methods, str):
                raise TypeError("methods is a collection of method names, not one string")
            object.__setattr__(self, "methods", frozenset(self.methods))

    # --- constructors ----------------------------------------------------------------------------------
    @classmethod
    def latency(cls, seconds: float, **when: Unpack[When]) -> Fault:
        return cls("latency", seconds=seconds, **when)

    @classmethod
    def reorg(cls, depth: int = 1, *, keep_txs: bool = True, **when: Unpack[When]) -> Fault:
        return cls("reorg", depth=depth, keep_txs=keep_txs, **when)

    @classmethod
    def timeout(cls, hold_s: float = 30.0, **when: Unpack[When]) -> Fault:
        return cls("timeout", hold_s=hold_s, **when)

    @classmethod
    def http_429(cls, retry_after: float | str | None = None, **when: Unpack[When]) -> Fault:
        return cls("http_429", retry_after=retry_after, **when)

    @classmethod
    def http_5xx(cls, status: int = 503, *, retry_after: float | str | None = None, **when: Unpack[When]) -> Fault:
        return cls("http_5xx", status=status, retry_after=retry_after, **when)

    @classmethod
    def malformed_json(cls, **when: Unpack[When]) -> Fault:
        return cls("malformed_json", **when)

    @classmethod
    def truncated_json(cls, *, full_length: bool = False, **when: Unpack[When]) -> Fault:
        return cls("truncated_json", full_length=full_length, **when)

    @classmethod
    def trickle(cls, seconds: float, **when: Unpack[When]) -> Fault:
        return cls("trickle", seconds=seconds, **when)

    @classmethod
    def drop_connection(cls, *, reset: bool = False, **when: Unpack[When]) -> Fault:
        return cls("drop_connection", reset=reset, **when)

    @classmethod
    def wrong_chain_id(cls, chain_id: int, **when: Unpack[When]) -> Fault:
        return cls("wrong_chain_id", chain_id=chain_id, **when)

    @classmethod
    def error_object(cls, code: int = -32000, message: str = "injected error", **when: Unpack[When]) -> Fault:
        return cls("error_object", code=code, message=message, **when)

    @classmethod
    def empty_result(cls, **when: Unpack[When]) -> Fault:
        return cls("empty_result", **when)

    @classmethod
    def wrong_id(cls, **when: Unpack[When]) -> Fault:
        return cls("wrong_id", **when)

    # --- matching --------------------------------------------------------------------------------------
    @property
    def target_methods(self) -> frozenset[str] | None:
        """The methods this fault applies to (None: every method)."""
        if self.methods is not None:
            return frozenset(self.methods)
        return _DEFAULT_METHODS.get(self.kind)

    def applies_to(self, method: str) -> bool:
        wanted = self.target_methods
        return wanted is None or method in wanted


@dataclass
class Rule:
    """A fault added to a proxy, with its counters: ``seen`` matching requests, ``injected`` firings."""

    fault: Fault
    seen: int = 0
    injected: int = 0

    @property
    def exhausted(self) -> bool:
        return self.fault.times is not None and self.injected >= self.fault.times


@dataclass(frozen=True)
class LogEntry:
    """One request as the proxy saw it: its methods (one per call of a batch) and the faults it got."""

    methods: tuple[str, ...]
    faults: tuple[str, ...]
    batch: bool

    @property
    def fault(self) -> str | None:
        """The fault kind, ``"+"``-joined when several stacked; None when the request passed untouched."""
        return "+".join(self.faults) if self.faults else None


@dataclass
class ProxyStats:
    """Counters since the start (or :meth:`FaultProxy.reset`): HTTP requests, JSON-RPC calls per method,
    faults per kind, faults per method and kind (a request's methods the fault applied to, each once),
    and requests the upstream failed (answered 502)."""

    requests: int = 0
    calls_by_method: dict[str, int] = field(default_factory=dict)
    faults: dict[str, int] = field(default_factory=dict)
    faults_by_method: dict[str, dict[str, int]] = field(default_factory=dict)
    upstream_errors: int = 0

    def copy(self) -> ProxyStats:
        return replace(
            self,
            calls_by_method=dict(self.calls_by_method),
            faults=dict(self.faults),
            faults_by_method={m: dict(k) for m, k in self.faults_by_method.items()},
        )


@dataclass(frozen=True)
class ReorgResult:
    """What :func:`reorg` did: the head height (the same before and after) and, for every replaced
    height, the block hash before and after."""

    head: int
    depth: int
    old_hashes: dict[int, str]
    new_hashes: dict[int, str]
    replayed_txs: int

    @property
    def heights(self) -> list[int]:
        return sorted(self.old_hashes)


# --- reorg -------------------------------------------------------------------------------------------------

_reorg_lock = threading.Lock()


def _tx_request(tx: dict[str, Any]) -> dict[str, Any]:
    """A transaction request that re-sends ``tx`` (nonce and fees left to the node)."""
    req: dict[str, Any] = {"from": tx["from"], "value": tx.get("value", "0x0"), "gas": tx["gas"]}
    if tx.get("to"):
        req["to"] = tx["to"]
    data = tx.get("input", tx.get("data"))
    if data and data != "0x":
        req["data"] = data
    return req


def reorg(rpc_url: str, depth: int = 1, *, keep_txs: bool = True, floor: int | None = None) -> ReorgResult:
    """Reorg the anvil node at ``rpc_url``: replace its last ``depth`` blocks by new blocks at the same
    heights, each with a new hash, and return the hashes before and after.

    The first new block carries a marker transaction (a 0-value self-transfer with random data from the
    node's last dev account) so that the new blocks differ even when the old ones were empty; with
    ``keep_txs`` every transaction of the replaced blocks is sent again in the new block at the same height
    (earlier markers excepted), so the chain's state ends as before, but for the marker account's nonce.
    Without it the replaced blocks' transactions are gone. Raises :class:`ReorgError` when a height kept
    its hash or the head moved.

    Snapshots: the replaced blocks must all have been mined after the ``evm_snapshot`` you will revert to,
    i.e. ``head - depth`` at or above the snapshot's height (mine ``depth`` blocks after taking it if need
    be). anvil (1.7.1) keeps a snapshot that a reorg reached below, but reverting to it then fails with
    "Resource not found" after half-reverting the chain, and every snapshot taken afterwards fails the same
    way until an older, intact snapshot is reverted to. Pass ``floor`` (the height of your snapshot) and a
    reorg that would replace a block at or below it raises :class:`ReorgError` before touching the chain.
    """
    with _reorg_lock:
        head = int(rpc(rpc_url, "eth_blockNumber"), 16)
        if not 1 <= depth <= head:
            raise ValueError(f"reorg depth {depth} out of range for a chain of {head} blocks")
        if floor is not None and head - depth < floor:
            raise ReorgError(
                f"a reorg of depth {depth} at head {head} would replace block {head - depth + 1}, at or below the "
                f"floor {floor} (a live evm_snapshot's height, whose revert anvil would then fail): mine "
                f"{floor - (head - depth)} more block(s) first"
            )
        heights = list(range(head - depth + 1, head + 1))
        blocks = [rpc(rpc_url, "eth_getBlockByNumber", [hex(h), keep_txs]) for h in heights]
        old_hashes = {h: str(b["hash"]) for h, b in zip(heights, blocks, strict=True)}
        marker_from = str(rpc(rpc_url, "eth_accounts")[-1]).lower()
        marker = {
            "from": marker_from,
            "to": marker_from,
            "value": "0x0",
            "gas": hex(30_000),
            "data": "0x" + os.urandom(8).hex(),
        }
        txs: list[list[Any]] = [[marker, 0]]
        if keep_txs:
            for offset, block in enumerate(blocks):
                for tx in block["transactions"]:
                    is_marker = (
                        str(tx.get("from", "")).lower() == marker_from
                        and str(tx.get("to") or "").lower() == marker_from
                        and int(tx.get("value", "0x0"), 16) == 0
                    )
                    if not is_marker:
                        txs.append([_tx_request(tx), offset])
        rpc(rpc_url, "anvil_reorg", [depth, txs])
        new_head = int(rpc(rpc_url, "eth_blockNumber"), 16)
        new_hashes = {h: str(rpc(rpc_url, "eth_getBlockByNumber", [hex(h), False])["hash"]) for h in heights}
    if new_head != head:
        raise ReorgError(f"reorg moved the head from {head} to {new_head}")
    same = [h for h in heights if new_hashes[h] == old_hashes[h]]
    if same:
        raise ReorgError(f"reorg kept the block hash at heights {same}")
    return ReorgResult(head, depth, old_hashes, new_hashes, replayed_txs=len(txs) - 1)


# --- the proxy ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Call:
    method: str
    id: object


@dataclass(frozen=True)
class _Plan:
    stacked: tuple[Fault, ...]
    main: Fault | None


class FaultProxy:
    """A loopback HTTP proxy in front of the JSON-RPC node at ``upstream_url`` that injects scripted faults.

    ``seed`` seeds the random draws of faults with a ``probability``; ``upstream_timeout_s`` bounds each
    forwarded request (an upstream failure is answered 502 and counted in ``stats.upstream_errors``).

    ``reorg_floor``: the reorg faults never replace a block at or below this height (see :func:`reorg`).
    ``"start"`` (the default) takes the upstream's head when the proxy starts — right for the usual
    fixture order, a test's ``evm_snapshot`` first and the proxy after it — so the blocks a reorg replaces
    must be mined after the proxy started; None: no floor (no snapshot to protect, or not an anvil).
    A reorg fault refused by the floor is answered HTTP 500 and raised as :class:`FaultProxyError` on stop.
    """

    def __init__(
        self,
        upstream_url: str,
        *,
        seed: int = 0,
        upstream_timeout_s: float = 60.0,
        reorg_floor: int | Literal["start"] | None = "start",
    ) -> None:
        self.upstream_url = upstream_url
        self._floor_at_start = reorg_floor == "start"
        self.reorg_floor: int | None = reorg_floor if isinstance(reorg_floor, int) else None
        """The height at or below which the reorg faults refuse to replace blocks (None: no floor)."""
        self._rng = random.Random(seed)
        self._upstream_timeout = httpx.Timeout(upstream_timeout_s, connect=5.0)
        self._lock = threading.Lock()
        self._rules: list[Rule] = []
        self._stats = ProxyStats()
        self._log: list[LogEntry] = []
        self._reorgs: list[ReorgResult] = []
        self._errors: list[BaseException] = []
        self._closing = threading.Event()
        self._connections: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._upstream: httpx.Client | None = None

    # --- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError("FaultProxy already started")
        self._closing.clear()
        self._upstream = httpx.Client(timeout=self._upstream_timeout)
        if self._floor_at_start:
            try:
                resp = self._upstream.post(
                    self.upstream_url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}
                )
                self.reorg_floor = int(resp.json()["result"], 16)
            except (httpx.HTTPError, ValueError, KeyError, TypeError):
                self.reorg_floor = None  # no chain answering yet: nothing to protect
        server = _Server(self)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.01}, name="fault-proxy", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: wake held answers, close client connections, join the threads. Raises
        :class:`FaultProxyError` if the proxy failed while serving."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._closing.set()
        server.shutdown()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:  # idle keep-alive connections: their handlers wait for the next request
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        server.server_close()
        thread.join()
        if self._upstream is not None:
            self._upstream.close()
        self._server = self._thread = self._upstream = None
        if self._errors:
            errors, self._errors = self._errors, []
            raise FaultProxyError(f"{len(errors)} error(s) while serving; first: {errors[0]!r}") from errors[0]

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self.stop()
        except FaultProxyError:
            if exc_type is None:
                raise

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FaultProxy not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- scripting and inspection ------------------------------------------------------------------------
    def add(self, fault: Fault) -> Rule:
        """Add a fault rule (after the existing ones); returns it, with its counters."""
        rule = Rule(fault)
        with self._lock:
            self._rules.append(rule)
        return rule

    def remove(self, rule: Rule) -> None:
        with self._lock:
            self._rules = [r for r in self._rules if r is not rule]

    def clear(self) -> None:
        """Remove every fault: requests pass untouched from now on (stats and log are kept)."""
        with self._lock:
            self._rules.clear()

    def reset(self) -> None:
        """Zero the stats and empty the log and the list of reorgs (faults are kept)."""
        with self._lock:
            self._stats = ProxyStats()
            self._log.clear()
            self._reorgs.clear()

    def reorg_after(
        self, n_requests: int, depth: int = 1, *, methods: Collection[str] | None = None, keep_txs: bool = True
    ) -> Rule:
        """Reorg the upstream once, after ``n_requests`` (matching ``methods``) were forwarded and before the
        next one is."""
        return self.add(Fault.reorg(depth, keep_txs=keep_txs, times=1, after=n_requests, methods=methods))

    @property
    def rules(self) -> list[Rule]:
        with self._lock:
            return list(self._rules)

    @property
    def stats(self) -> ProxyStats:
        """A copy of the counters."""
        with self._lock:
            return self._stats.copy()

    @property
    def log(self) -> list[LogEntry]:
        """Every request so far, in arrival order."""
        with self._lock:
            return list(self._log)

    @property
    def reorgs(self) -> list[ReorgResult]:
        """The reorgs the proxy's reorg faults made, in order."""
        with self._lock:
            return list(self._reorgs)

    # --- called from the handler threads --------------------------------------------------------------------
    def _plan(self, calls: Sequence[_Call], batch: bool) -> _Plan:
        methods = [c.method for c in calls]
        stacked: list[Fault] = []
        main: Fault | None = None
        with self._lock:
            self._stats.requests += 1
            for m in methods:
                self._stats.calls_by_method[m] = self._stats.calls_by_method.get(m, 0) + 1
            for rule in self._rules:
                fault = rule.fault
                hit = sorted({m for m in methods if fault.applies_to(m)})
                if rule.exhausted or not hit:
                    continue
                rule.seen += 1
                if rule.seen <= fault.after:
                    continue
                if fault.kind not in STACKING and main is not None:
                    continue
                if fault.probability < 1.0 and self._rng.random() >= fault.probability:
                    continue
                rule.injected += 1
                self._stats.faults[fault.kind] = self._stats.faults.get(fault.kind, 0) + 1
                for m in hit:
                    per_kind = self._stats.faults_by_method.setdefault(m, {})
                    per_kind[fault.kind] = per_kind.get(fault.kind, 0) + 1
                if fault.kind in STACKING:
                    stacked.append(fault)
                else:
                    main = fault
            kinds = tuple(f.kind for f in stacked) + ((main.kind,) if main is not None else ())
            self._log.append(LogEntry(tuple(methods), kinds, batch))
        return _Plan(tuple(stacked), main)

    def _reorg(self, fault: Fault) -> None:
        result = reorg(self.upstream_url, fault.depth, keep_txs=fault.keep_txs, floor=self.reorg_floor)
        with self._lock:
            self._reorgs.append(result)

    def _forward(self, body: bytes, content_type: str | None) -> tuple[int, str, bytes]:
        client = self._upstream
        if client is None:
            raise RuntimeError("FaultProxy not started")
        try:
            resp = client.post(
                self.upstream_url, content=body, headers={"content-type": content_type or "application/json"}
            )
        except httpx.HTTPError as exc:
            with self._lock:
                self._stats.upstream_errors += 1
            return 502, "text/plain", f"fault proxy: upstream failed: {type(exc).__name__}".encode()
        return resp.status_code, resp.headers.get("content-type", "application/json"), resp.content

    def _record_error(self, exc: BaseException) -> None:
        with self._lock:
            self._errors.append(exc)


def _parse(body: bytes) -> tuple[list[_Call], bool]:
    """The calls of a request body, and whether it is a batch."""
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return [_Call(UNPARSED, None)], False
    items = parsed if isinstance(parsed, list) else [parsed]
    calls = [
        _Call(str(it.get("method", UNPARSED)), it.get("id")) if isinstance(it, dict) else _Call(UNPARSED, None)
        for it in items
    ]
    return calls or [_Call(UNPARSED, None)], isinstance(parsed, list)


def _wrong_id(value: object) -> object:
    if isinstance(value, int) and not isinstance(value, bool):
        return value + 1_000_000
    return f"{value}-wrong"


def _rewrite(fault: Fault, calls: Sequence[_Call], content: bytes) -> bytes:
    """Apply a per-call fault to the upstream's answer (unchanged when it is not JSON-RPC)."""
    try:
        parsed = json.loads(content)
    except (ValueError, UnicodeDecodeError):
        return content
    method_of = {json.dumps(c.id): c.method for c in calls}
    items = parsed if isinstance(parsed, list) else [parsed]
    out: list[Any] = []
    for item in items:
        if not isinstance(item, dict):
            out.append(item)
            continue
        method = method_of.get(json.dumps(item.get("id")))
        if method is None or not fault.applies_to(method):
            out.append(item)
            continue
        item = dict(item)
        if fault.kind == "wrong_chain_id":
            if "result" in item:
                item["result"] = str(fault.chain_id) if method == "net_version" else hex(fault.chain_id)
        elif fault.kind == "error_object":
            item.pop("result", None)
            item["error"] = {"code": fault.code, "message": fault.message}
        elif fault.kind == "empty_result":
            item.pop("error", None)
            item["result"] = None
        elif fault.kind == "wrong_id":
            item["id"] = _wrong_id(item.get("id"))
        out.append(item)
    return json.dumps(out if isinstance(parsed, list) else out[0]).encode()


_CLIENT_GONE = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)


class _Server(ThreadingHTTPServer):
    """The threaded HTTP server, able to close a connection with an RST."""

    def __init__(self, proxy: FaultProxy) -> None:
        self.proxy = proxy
        self._reset: set[socket.socket] = set()
        self._reset_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _handler_for(proxy))
        self.daemon_threads = False
        self.block_on_close = True  # server_close() joins the handler threads

    def mark_reset(self, request: socket.socket) -> None:
        """Close ``request`` with an RST (SO_LINGER 0) once its handler is done."""
        request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with self._reset_lock:
            self._reset.add(request)

    def shutdown_request(self, request: Any) -> None:
        # An RST needs a close with no FIN before it: skip the base class's shutdown(SHUT_WR).
        with self._reset_lock:
            reset = request in self._reset
            self._reset.discard(request)
        if reset:
            request.close()
            return
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if exc is None or isinstance(exc, _CLIENT_GONE):
            return
        if self.proxy._closing.is_set() and isinstance(exc, OSError):
            return
        self.proxy._record_error(exc)


def _handler_for(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, like a node
        disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall
        server: _Server

        def log_message(self, format: str, *args: Any) -> None:
            return None

        def setup(self) -> None:
            super().setup()
            with proxy._lock:
                proxy._connections.add(self.connection)

        def finish(self) -> None:
            with proxy._lock:
                proxy._connections.discard(self.connection)
            with contextlib.suppress(OSError):
                super().finish()

        def do_GET(self) -> None:
            self._reply(405, b"fault proxy: POST JSON-RPC only", "text/plain")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length > 0 else b""
            calls, batch = _parse(body)
            plan = proxy._plan(calls, batch)
            for fault in plan.stacked:
                if fault.kind == "reorg":
                    try:
                        proxy._reorg(fault)
                    except ReorgError as exc:
                        proxy._record_error(exc)
                        self._reply(500, f"fault proxy: {exc}".encode(), "text/plain")
                        return
            delay = sum(f.seconds for f in plan.stacked if f.kind == "latency")
            if delay > 0 and proxy._closing.wait(delay):
                self.close_connection = True
                return
            main = plan.main
            status, ctype, content = 0, "", b""
            if main is None or main.kind in PER_CALL or main.kind in ("truncated_json", "trickle"):
                status, ctype, content = proxy._forward(body, self.headers.get("Content-Type"))
            if main is None:
                self._reply(status, content, ctype)
            elif main.kind == "timeout":
                proxy._closing.wait(main.hold_s)
                self.close_connection = True
            elif main.kind == "drop_connection":
                self.close_connection = True
                if main.reset:
                    self.server.mark_reset(self.connection)
            elif main.kind in ("http_429", "http_5xx"):
                extra = {} if main.retry_after is None else {"Retry-After": str(main.retry_after)}
                if main.kind == "http_429":
                    text = json.dumps({"jsonrpc": "2.0", "id": None,
                                       "error": {"code": 429, "message": "Too Many Requests"}}).encode()
                    self._reply(429, text, "application/json", extra)
                else:
                    text = f"<html><body><h1>{main.status} injected by the fault proxy</h1></body></html>".encode()
                    self._reply(main.status, text, "text/html", extra)
            elif main.kind == "malformed_json":
                self._reply(200, MALFORMED_BODY, "application/json")
            elif main.kind == "truncated_json":
                cut = content[: max(1, len(content) // 2)]
                if main.full_length:
                    self._reply(status, cut, ctype, declared=len(content))
                    self.close_connection = True
                else:
                    self._reply(status, cut, ctype)
            elif main.kind == "trickle":
                self._reply(status, content, ctype, spread_s=main.seconds)
            else:  # a per-call rewrite
                self._reply(status, _rewrite(main, calls, content), ctype)

        def _reply(
            self,
            status: int,
            content: bytes,
            content_type: str,
            headers: dict[str, str] | None = None,
            *,
            declared: int | None = None,
            spread_s: float = 0.0,
        ) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(content) if declared is None else declared))
            self.end_headers()
            if spread_s <= 0 or len(content) < 2:
                self.wfile.write(content)
                return
            pieces = _pieces(content, 10)
            pause = spread_s / len(pieces)
            for piece in pieces:
                if proxy._closing.wait(pause):
                    self.close_connection = True
                    return
                self.wfile.write(piece)

    return Handler


def _pieces(content: bytes, n: int) -> list[bytes]:
    n = max(1, min(n, len(content)))
    size = -(-len(content) // n)
    return [content[i : i + size] for i in range(0, len(content), size)]
