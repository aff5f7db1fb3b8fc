"""JSON-RPC, ABI encoding and transactions against a devnet node (anvil), for deploys, seeding and tests.

Functions take an *endpoint*: a :class:`~devnet.models.DevnetInfo` or a bare RPC URL. Calls are written as
signatures (``"balanceOf(address)"``, tuples allowed: ``"f((address,uint256),bytes)"``) with explicit
return types. Transactions are sent with ``eth_sendTransaction`` from any address: the devnet's anvil runs
with ``--auto-impersonate``, and senders short of ETH are topped up first.

Errors::

    DevnetError (RuntimeError)
    ├── RpcError        the node answered with a JSON-RPC error object (.code, .data)
    └── RevertedError   a call or transaction reverted (.reason decoded from Error(string) / Panic(uint256))
"""

from __future__ import annotations

import atexit
import itertools
import time
from collections.abc import Sequence
from typing import Any

import httpx
from eth_abi.abi import decode, encode
from eth_hash.auto import keccak
from eth_utils.address import to_checksum_address

from devnet.models import DevnetInfo

__all__ = [
    "ETHER",
    "DevnetError",
    "Endpoint",
    "Receipt",
    "RevertedError",
    "RpcError",
    "block_timestamp",
    "deploy_contract",
    "disconnect",
    "encode_call",
    "eth_call",
    "increase_time",
    "mine",
    "revert",
    "rpc",
    "send_tx",
    "set_balance",
    "snapshot",
    "transact",
]

Endpoint = DevnetInfo | str
"""A running devnet, or the URL of any anvil node."""
Receipt = dict[str, Any]
"""A transaction receipt as the node returns it (hex quantities)."""

ETHER = 10**18
_GAS_MONEY = ETHER // 100
_MAX_GAS = 30_000_000  # anvil's default block gas limit
_ERROR_SELECTOR = bytes.fromhex("08c379a0")
_PANIC_SELECTOR = bytes.fromhex("4e487b71")
_RECEIPT_WAIT_S = 2.0
"""How long a transaction's receipt is awaited before a block is mined for it."""
_ids = itertools.count(1)
_clients: dict[str, httpx.Client] = {}


class DevnetError(RuntimeError):
    """Base of the errors this package raises when talking to a node."""


class RpcError(DevnetError):
    """The node answered a JSON-RPC request with an error object."""

    def __init__(self, method: str, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{method}: {message} (code {code})" + (f" data={data}" if data else ""))
        self.code = code
        self.data = data


class RevertedError(DevnetError):
    """A call or transaction reverted; ``reason`` is the decoded revert reason (some venues revert with an
    error code)."""

    def __init__(self, what: str, reason: str, data: str | None) -> None:
        super().__init__(f"{what} reverted: {reason}" + (f" (data {data})" if data else ""))
        self.reason = reason
        self.data = data


def rpc(target: Endpoint, method: str, params: Sequence[Any] = ()) -> Any:
    """Send one JSON-RPC request and return its ``result``; raise :class:`RpcError` on an error object."""
    url = _url(target)
    payload = {"jsonrpc": "2.0", "id": next(_ids), "method": method, "params": list(params)}
    response = _client(url).post(url, json=payload)
    response.raise_for_status()
    body = response.json()
    if "error" in body:
        err = body["error"]
        raise RpcError(method, int(err.get("code", 0)), str(err.get("message", "")), err.get("data"))
    return body["result"]


def encode_call(signature: str, *args: Any) -> str:
    """Calldata (``0x`` hex) for ``signature`` (e.g. ``"transfer(address,uint256)"``) and ``args``."""
    return "0x" + (keccak(signature.encode())[:4] + encode(_arg_types(signature), list(args))).hex()


def eth_call(
    target: Endpoint,
    to: str,
    signature: str,
    args: Sequence[Any] = (),
    returns: Sequence[str] = (),
    block: str = "latest",
) -> tuple[Any, ...]:
    """``eth_call`` of ``signature`` on ``to``, decoded as ``returns`` (ABI types); raises :class:`RevertedError`."""
    data = encode_call(signature, *args)
    try:
        raw = rpc(target, "eth_call", [{"to": to, "data": data}, block])
    except RpcError as exc:
        raise _as_reverted(f"call {signature} on {to}", exc) from exc
    return tuple(decode(list(returns), bytes.fromhex(raw[2:])))


def send_tx(target: Endpoint, from_: str, to: str | None, data: str, value: int = 0) -> Receipt:
    """Send a transaction from ``from_`` (any address) and return its mined receipt.

    ``to=None`` deploys ``data`` as init code. The gas limit is the node's estimate plus 30 % and 50k:
    an exact estimate can run out of gas once mined, e.g. when the estimate ran in the latest block's time
    but the transaction's block is later, so a lending pool accrues interest first. The sender's ETH is topped up
    to ``value`` + 1 ETH if it holds less than ``value`` + 0.01 ETH. Raises :class:`RevertedError` (with
    the decoded reason) when the transaction reverts, whether at gas estimation or once mined.
    """
    _ensure_eth(target, from_, value)
    tx: dict[str, Any] = {"from": from_, "data": data, "value": hex(value)}
    if to is not None:
        tx["to"] = to
    what = f"tx from {from_} to {to}"
    try:
        estimate = int(rpc(target, "eth_estimateGas", [tx]), 16)
        tx["gas"] = hex(min(estimate * 13 // 10 + 50_000, _MAX_GAS))
        tx_hash = rpc(target, "eth_sendTransaction", [tx])
    except RpcError as exc:
        raise _as_reverted(what, exc) from exc
    receipt = _receipt(target, tx_hash)
    if int(receipt["status"], 16) != 1:
        raise _replay_failure(target, tx, receipt, what)
    return receipt


def transact(target: Endpoint, from_: str, to: str, signature: str, *args: Any, value: int = 0) -> Receipt:
    """:func:`send_tx` of ``signature(args)`` to ``to``."""
    return send_tx(target, from_, to, encode_call(signature, *args), value)


def deploy_contract(
    target: Endpoint, from_: str, bytecode: str, ctor_types: Sequence[str] = (), ctor_args: Sequence[Any] = ()
) -> str:
    """Deploy ``bytecode`` (``0x`` hex init code) with ABI-encoded constructor args; return its address."""
    data = bytecode + encode(list(ctor_types), list(ctor_args)).hex()
    receipt = send_tx(target, from_, None, data)
    return to_checksum_address(receipt["contractAddress"])


def snapshot(target: Endpoint) -> str:
    """Take an ``evm_snapshot``; pass the id to :func:`revert`."""
    return str(rpc(target, "evm_snapshot"))


def revert(target: Endpoint, snapshot_id: str) -> None:
    """Revert the chain to snapshot ``snapshot_id`` (which is consumed); raise if the node refuses."""
    if not rpc(target, "evm_revert", [snapshot_id]):
        raise DevnetError(f"evm_revert({snapshot_id}) failed")


def increase_time(target: Endpoint, seconds: int) -> int:
    """Move chain time forward by ``seconds`` and mine a block; return the new block timestamp (s)."""
    rpc(target, "evm_increaseTime", [seconds])
    mine(target)
    return block_timestamp(target)


def mine(target: Endpoint, blocks: int = 1) -> None:
    """Mine ``blocks`` empty blocks."""
    rpc(target, "anvil_mine", [hex(blocks)])


def block_timestamp(target: Endpoint) -> int:
    """Timestamp (unix seconds) of the latest block."""
    return int(rpc(target, "eth_getBlockByNumber", ["latest", False])["timestamp"], 16)


def set_balance(target: Endpoint, address: str, wei: int) -> None:
    """Set the ETH balance of ``address`` to ``wei``."""
    rpc(target, "anvil_setBalance", [address, hex(wei)])


def _ensure_eth(target: Endpoint, address: str, value: int) -> None:
    balance = int(rpc(target, "eth_getBalance", [address, "latest"]), 16)
    if balance < value + _GAS_MONEY:
        set_balance(target, address, value + ETHER)


def _receipt(target: Endpoint, tx_hash: str) -> Receipt:
    """The receipt of ``tx_hash``.

    anvil automines, but may answer ``eth_sendTransaction`` a moment before the block is stored (one transaction
    in seven, seen seeding). So the receipt is polled (0.5 ms, doubling up to 50 ms) for up to
    :data:`_RECEIPT_WAIT_S` before a block is mined for it (a node that does not automine): mining at once, as
    this did before, sometimes added an empty block after the automined one, so block numbers differed from run
    to run.
    """
    deadline = time.monotonic() + _RECEIPT_WAIT_S
    delay = 0.0005
    while True:
        receipt: Receipt | None = rpc(target, "eth_getTransactionReceipt", [tx_hash])
        if receipt is not None:
            return receipt
        if time.monotonic() >= deadline:
            break
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
    mine(target)
    receipt = rpc(target, "eth_getTransactionReceipt", [tx_hash])
    if receipt is not None:
        return receipt
    raise DevnetError(f"no receipt for {tx_hash} after mining")


def _replay_failure(target: Endpoint, tx: dict[str, Any], receipt: Receipt, what: str) -> DevnetError:
    """Re-run a failed transaction as a call on its parent block to recover the revert reason."""
    parent = hex(int(receipt["blockNumber"], 16) - 1)
    try:
        rpc(target, "eth_call", [tx, parent])
    except RpcError as exc:
        return _as_reverted(what, exc)
    gas = f"{int(receipt['gasUsed'], 16)} of {int(tx['gas'], 16)} gas used"
    return RevertedError(what, f"status 0 without a revert on replay ({gas}: out of gas?)", None)


def _as_reverted(what: str, exc: RpcError) -> DevnetError:
    """Turn a node error into :class:`RevertedError` when it is a revert; keep other errors as they are."""
    data = exc.data if isinstance(exc.data, str) and exc.data.startswith("0x") else None
    if data is None and "revert" not in str(exc):
        return exc
    return RevertedError(what, _decode_reason(data) if data else str(exc), data)


def _decode_reason(data: str) -> str:
    raw = bytes.fromhex(data[2:])
    if raw[:4] == _ERROR_SELECTOR:
        return str(decode(["string"], raw[4:])[0])
    if raw[:4] == _PANIC_SELECTOR:
        return f"panic 0x{decode(['uint256'], raw[4:])[0]:02x}"
    return f"custom error / raw data {data}" if raw else "empty revert data"


def _arg_types(signature: str) -> list[str]:
    """The argument types of ``signature``, split on top-level commas (tuples such as a struct
    ``(address,uint256)`` stay whole; pass their values as Python tuples)."""
    inner = signature[signature.index("(") + 1 : signature.rindex(")")]
    types: list[str] = []
    depth = 0
    current = ""
    for char in inner:
        depth += (char == "(") - (char == ")")
        if char == "," and depth == 0:
            types.append(current.strip())
            current = ""
        else:
            current += char
    if depth != 0:
        raise ValueError(f"unbalanced parentheses in {signature}")
    return [*types, current.strip()] if current.strip() else types


def disconnect(target: Endpoint) -> None:
    """Close the pooled HTTP connection to ``target`` (call when its node stops)."""
    client = _clients.pop(_url(target), None)
    if client is not None:
        client.close()


def _url(target: Endpoint) -> str:
    return target.rpc_url if isinstance(target, DevnetInfo) else target


def _client(url: str) -> httpx.Client:
    """One keep-alive client per node URL, closed at interpreter exit."""
    client = _clients.get(url)
    if client is None:
        client = _clients[url] = httpx.Client(timeout=httpx.Timeout(120.0, connect=5.0))
    return client


@atexit.register
def _close_clients() -> None:
    for client in _clients.values():
        client.close()
    _clients.clear()
