"""Fixtures of the connector tests: a fake JSON-RPC node behind ``httpx.MockTransport``.

The fake node answers ``eth_chainId``, ``eth_blockNumber``, ``eth_getBlockByNumber`` and ``eth_call``;
an ``eth_call`` to Multicall3's ``aggregate3`` is executed by dispatching every sub-call to Python handlers
registered with :meth:`FakeNode.on`, so connectors can be tested end to end without a chain.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from eth_abi import decode, encode

from connectors.evm.abi import ERROR_SELECTOR, Fn
from connectors.evm.multicall import AGGREGATE3, MULTICALL3
from connectors.evm.rpc import RpcClient

CHAIN_ID = 31337
HEAD = 1000
HEAD_TIMESTAMP = 1_700_000_000


class RevertError(Exception):
    """Raised by a handler: the sub-call reverts with ``data``."""

    def __init__(self, data: bytes = b"") -> None:
        super().__init__(data.hex())
        self.data = data


def error_string(reason: str) -> bytes:
    return ERROR_SELECTOR + encode(["string"], [reason])


class FakeNode:
    """A scripted EVM node. ``max_subcalls``: aggregate3 with more sub-calls answers "out of gas";
    ``max_body_bytes``: bigger HTTP bodies answer 413."""

    Revert = RevertError
    error_string = staticmethod(error_string)
    CHAIN_ID = CHAIN_ID
    HEAD_TIMESTAMP = HEAD_TIMESTAMP

    def __init__(self) -> None:
        self.handlers: dict[tuple[str, bytes], tuple[Fn, Callable[..., Any]]] = {}
        self.http_requests = 0
        self.body_sizes: list[int] = []
        self.rpc_calls: list[str] = []
        self.call_blocks: list[str] = []
        self.pinned_by_hash = 0
        self.aggregate_sizes: list[int] = []
        self.max_subcalls: int | None = None
        self.max_body_bytes: int | None = None
        self.head = HEAD

    def on(self, target: str, fn: Fn, func: Callable[..., Any]) -> None:
        """Register ``func(*decoded_args) -> tuple of outputs`` (or raise :class:`RevertError`) for ``target.fn``."""
        self.handlers[(target.lower(), fn.selector)] = (fn, func)

    def constant(self, target: str, fn: Fn, *outputs: Any) -> None:
        self.on(target, fn, lambda *_: outputs)

    # --- execution ---------------------------------------------------------------------------------
    def execute(self, target: str, data: bytes) -> tuple[bool, bytes]:
        entry = self.handlers.get((target.lower(), data[:4]))
        if entry is None:
            known = any(t == target.lower() for t, _ in self.handlers)
            return (False, b"") if known else (True, b"")
        fn, func = entry
        args = decode(list(fn.input_types), data[4:]) if fn.input_types else ()
        try:
            out = func(*args)
        except RevertError as r:
            return False, r.data
        return True, encode(list(fn.output_types), list(out))

    def _eth_call(self, params: list[Any]) -> str:
        tx, block = params[0], params[1]
        if isinstance(block, dict):  # EIP-1898: pinned by hash; this node's hashes encode the number
            self.pinned_by_hash += 1
            number = int(block["blockHash"], 16)
            if number > self.head:
                raise _FaultError(-32001, "Resource not found")
            block = hex(number)
        self.call_blocks.append(block)
        to = tx["to"]
        data = bytes.fromhex(tx["data"][2:])
        if to.lower() == MULTICALL3.lower() and data[:4] == AGGREGATE3.selector:
            (calls,) = decode(["(address,bool,bytes)[]"], data[4:])
            self.aggregate_sizes.append(len(calls))
            if self.max_subcalls is not None and len(calls) > self.max_subcalls:
                raise _FaultError(-32000, "out of gas")
            results = [self.execute(t, d) for t, _, d in calls]
            return "0x" + encode(["(bool,bytes)[]"], [results]).hex()
        ok, ret = self.execute(to, data)
        if not ok:
            raise _FaultError(3, "execution reverted", "0x" + ret.hex())
        return "0x" + ret.hex()

    def _one(self, req: dict[str, Any]) -> dict[str, Any]:
        method, params = req["method"], req.get("params", [])
        self.rpc_calls.append(method)
        try:
            if method == "eth_chainId":
                result: Any = hex(CHAIN_ID)
            elif method == "eth_blockNumber":
                result = hex(self.head)
            elif method == "eth_getBlockByNumber":
                n = self.head if params[0] == "latest" else int(params[0], 16)
                result = (
                    None
                    if n > self.head
                    else {
                        "number": hex(n),
                        "hash": "0x" + n.to_bytes(32, "big").hex(),
                        "timestamp": hex(HEAD_TIMESTAMP - 12 * (self.head - n)),
                    }
                )
            elif method == "eth_call":
                result = self._eth_call(params)
            else:
                raise _FaultError(-32601, f"method {method} not found")
        except _FaultError as f:
            err: dict[str, Any] = {"code": f.code, "message": f.message}
            if f.data is not None:
                err["data"] = f.data
            return {"jsonrpc": "2.0", "id": req["id"], "error": err}
        return {"jsonrpc": "2.0", "id": req["id"], "result": result}

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.http_requests += 1
        body = request.content
        self.body_sizes.append(len(body))
        if self.max_body_bytes is not None and len(body) > self.max_body_bytes:
            return httpx.Response(413, text="request entity too large")
        payload = json.loads(body)
        out = [self._one(p) for p in payload] if isinstance(payload, list) else self._one(payload)
        return httpx.Response(200, json=out)


class _FaultError(Exception):
    def __init__(self, code: int, message: str, data: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.data = code, message, data


@pytest.fixture
def node() -> FakeNode:
    return FakeNode()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def rpc(node: FakeNode, sleeps: list[float]) -> Iterator[RpcClient]:
    client = RpcClient(
        "https://rpc.example.com/v2/SECRETKEY",
        transport=httpx.MockTransport(node.handle),
        sleep=sleeps.append,
    )
    yield client
    client.close()
