"""A small, fast JSON-RPC client over httpx: single calls, batches, retries, error mapping, counters.

Error mapping (see :mod:`connectors.errors`)::

    httpx timeout                              → RpcTimeoutError      (retried)
    connection refused / reset, HTTP 5xx        → RpcUnavailableError  (retried)
    HTTP 429                                    → RateLimitedError     (retried after Retry-After, if short)
    HTTP 413, "out of gas", "request too large" → RequestTooLargeError (not retried: split the request)
    eth_getLogs "query returned more than …",
    "log response size exceeded", "block range
    is too wide" and the like                  → RequestTooLargeError (the log reader halves the range)
    JSON-RPC error with code 3, "revert" in the message, or Error/Panic revert bytes
                                                → CallRevertedError    (never retried; reason decoded)
    any other JSON-RPC error object             → RpcError
    malformed JSON, missing result, wrong id    → DecodeError

Only read methods go through this client, so every transient fault is retried (with exponential backoff
and jitter). RPC URLs often carry API keys in their path or query: the URL is never put in a message or a
repr except through :func:`redact_url`, and a filter on the ``httpx`` logger redacts the URLs httpx logs.
The retry loop, the timeout / connection / 429 mapping and the redaction live in :mod:`connectors.transport`,
shared with the perp venues' :class:`~connectors.http.JsonHttpClient`.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Unpack

import httpx

from connectors.errors import (
    CallRevertedError,
    ConnectorError,
    DecodeError,
    InvalidInputError,
    RateLimitedError,
    RequestTooLargeError,
    RpcError,
    RpcUnavailableError,
)
from connectors.evm.abi import ERROR_SELECTOR, PANIC_SELECTOR, decode_revert_reason
from connectors.transport import RetryingHttpClient, TransportArgs, TransportOptions, redact_url, retry_after_s
from connectors.types import BlockRef

__all__ = [
    "BLOCK_TAGS",
    "BlockId",
    "RpcClient",
    "RpcStats",
    "block_param",
    "hex_to_bytes",
    "hex_to_int",
    "redact_url",
]

BLOCK_TAGS = frozenset({"latest", "earliest", "pending", "safe", "finalized"})

BlockId = int | str | BlockRef
"""A block number, a tag (``"latest"``), a ``0x`` hex number, or a :class:`BlockRef`."""

_TOO_LARGE_MARKERS = (
    "out of gas",
    "outofgas",
    "gas required exceeds allowance",
    "request too large",
    "request entity too large",
    "payload too large",
    "body too large",
    "batch too large",
    "response size",
    "response is too big",
    "response too large",
    "exceeds the configured cap",
    # eth_getLogs answers too many logs or too wide a range (split the range):
    "query returned more than",  # Infura, geth-style: "query returned more than 10000 results"
    "log response size exceeded",  # Alchemy
    "block range is too wide",  # Ankr
    "block range is too large",
    "block range too large",
    "exceed maximum block range",  # erigon / nodereal: "exceed maximum block range: 5000"
    "exceeds maximum block range",
    "range exceeds maximum",  # besu: "Requested range exceeds maximum range limit"
    "range limit exceeded",  # chainstack: "Block range limit exceeded"
    "limited to a 10,000",  # quicknode: "eth_getLogs is limited to a 10,000 range"
    "too many logs",
    "logs matched by query exceeds",
)


def block_param(block: BlockId) -> str | dict[str, Any]:
    """The JSON-RPC block parameter for ``block``: a tag, a ``0x`` hex number, or — for a :class:`BlockRef` — the
    block's hash (EIP-1898, ``requireCanonical``): a read pinned to a snapshot's block is answered from that very
    block or fails, so a reorganisation during a snapshot's reads can never mix two chains' states."""
    if isinstance(block, BlockRef):
        return {"blockHash": block.hash, "requireCanonical": True}
    if isinstance(block, bool):
        raise InvalidInputError(f"not a block: {block!r}")
    if isinstance(block, int):
        if block < 0:
            raise InvalidInputError(f"negative block number: {block}")
        return hex(block)
    if isinstance(block, str):
        if block in BLOCK_TAGS:
            return block
        if block.startswith("0x"):
            try:
                return hex(int(block, 16))
            except ValueError:
                pass
    raise InvalidInputError(f"not a block number or tag: {block!r}")


@dataclass
class RpcStats:
    """Counters of one client. ``calls_by_method`` counts logical JSON-RPC calls (a retried call once);
    ``http_requests`` counts every POST, retries included; ``errors`` counts calls that failed (after retries;
    a batch that failed whole counts each of its calls) for any reason but a revert, which is an answer."""

    http_requests: int = 0
    http_retries: int = 0
    calls_by_method: dict[str, int] = field(default_factory=dict)
    bytes_sent: int = 0
    bytes_received: int = 0
    errors: int = 0

    @property
    def calls(self) -> int:
        """Total JSON-RPC calls."""
        return sum(self.calls_by_method.values())

    def reset(self) -> None:
        self.http_requests = self.http_retries = self.bytes_sent = self.bytes_received = self.errors = 0
        self.calls_by_method.clear()

    def copy(self) -> RpcStats:
        """A snapshot (safe to take from another thread while the client counts)."""
        while True:
            try:
                methods = dict(self.calls_by_method)
                break
            except RuntimeError:  # a method was added while copying: copy again
                continue
        return RpcStats(
            self.http_requests, self.http_retries, methods, self.bytes_sent, self.bytes_received, self.errors,
        )

    def __sub__(self, other: RpcStats) -> RpcStats:
        """The counts accumulated between two copies: ``after - before``."""
        methods = {
            m: n - other.calls_by_method.get(m, 0)
            for m, n in self.calls_by_method.items()
            if n != other.calls_by_method.get(m, 0)
        }
        return RpcStats(
            self.http_requests - other.http_requests,
            self.http_retries - other.http_retries,
            methods,
            self.bytes_sent - other.bytes_sent,
            self.bytes_received - other.bytes_received,
            self.errors - other.errors,
        )


def hex_to_bytes(value: object, what: str) -> bytes:
    """``0x``-hex data as bytes; :class:`DecodeError` naming ``what`` otherwise."""
    if not isinstance(value, str) or not value.startswith("0x"):
        raise DecodeError(f"{what}: expected 0x-hex, got {type(value).__name__}")
    try:
        return bytes.fromhex(value[2:])
    except ValueError as exc:
        raise DecodeError(f"{what}: malformed hex") from exc


def hex_to_int(value: object, what: str) -> int:
    """A ``0x``-hex quantity as an int; :class:`DecodeError` naming ``what`` otherwise."""
    if not isinstance(value, str) or not value.startswith("0x"):
        raise DecodeError(f"{what}: expected 0x-hex quantity, got {value!r}")
    try:
        return int(value, 16)
    except ValueError as exc:
        raise DecodeError(f"{what}: malformed hex quantity {value!r}") from exc


def _revert_bytes(data: object) -> bytes:
    """Revert bytes from an error's ``data`` (a hex string, or nested under ``data`` by some nodes)."""
    for _ in range(4):
        if isinstance(data, dict):
            data = data.get("data", data.get("originalError"))
            continue
        if isinstance(data, str) and data.startswith("0x"):
            try:
                return bytes.fromhex(data[2:])
            except ValueError:
                return b""
        return b""
    return b""


_RATE_LIMIT_CODES = frozenset({429, -32005})
_RATE_LIMIT_MARKERS = ("rate limit", "rate-limit", "too many requests")


def _is_rate_limit(error: object) -> bool:
    """A JSON-RPC error object that says the caller is rate limited (Infura -32005, Alchemy 429, "too many
    requests"); never a revert or a request-too-large answer ("response size limit exceeded" is not one)."""
    if not isinstance(error, dict):
        return False
    if isinstance(map_rpc_error(error, ""), CallRevertedError | RequestTooLargeError):
        return False
    if error.get("code") in _RATE_LIMIT_CODES:
        return True
    message = str(error.get("message", "")).lower()
    return any(m in message for m in _RATE_LIMIT_MARKERS)


def map_rpc_error(error: object, method: str) -> RpcError:
    """The :class:`RpcError` for one JSON-RPC error object (``{"code", "message", "data"}``)."""
    if not isinstance(error, dict):
        return RpcError(f"{method}: malformed error object {error!r}")
    code = error.get("code")
    code = code if isinstance(code, int) and not isinstance(code, bool) else None
    message = str(error.get("message", ""))
    data = error.get("data")
    lower = message.lower()
    revert = _revert_bytes(data)
    if any(m in lower for m in _TOO_LARGE_MARKERS):
        return RequestTooLargeError(f"{method}: {message}", code=code, data=data)
    if code == 3 or "revert" in lower or revert[:4] in (ERROR_SELECTOR, PANIC_SELECTOR):
        reason = decode_revert_reason(revert)
        if reason is None and ":" in message:
            # geth / anvil without data: "execution reverted: <reason>"
            reason = message.split(":", 1)[1].strip() or None
        text = f"{method} reverted" + (f": {reason}" if reason else " without a reason")
        return CallRevertedError(text, revert, reason=reason, code=code)
    return RpcError(f"{method}: {message} (code {code})", code=code, data=data)


class RpcClient(RetryingHttpClient):
    """JSON-RPC over HTTP for one endpoint.

    Parameters
    ----------
    url:
        The endpoint; may hold an API key (never shown except as :func:`redact_url`).
    headers:
        Sent with every request (beside the JSON content type).
    options, **transport:
        Timeout, retries, backoff, client, transport, sleep and rng: a
        :class:`~connectors.transport.TransportOptions`, its fields as keywords, or both (the keywords win).
    """

    _url_label: ClassVar[str] = "RPC URL"
    stats: RpcStats

    def __init__(
        self,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        options: TransportOptions | None = None,
        **transport: Unpack[TransportArgs],
    ) -> None:
        super().__init__(
            url,
            headers={"content-type": "application/json", "accept": "application/json", **(headers or {})},
            options=TransportOptions.of(options, **transport),
        )
        self._ids = itertools.count(1)
        self._chain_id: int | None = None
        self.stats = RpcStats()

    # --- transport -----------------------------------------------------------------------------------
    def _post(self, payload: bytes, what: str) -> Any:
        """POST ``payload``, retrying transient faults; returns the parsed JSON body."""

        def answer(resp: httpx.Response, content: bytes) -> Any:
            status = resp.status_code
            if status == 413:
                raise RequestTooLargeError(
                    f"{what}: HTTP 413 from {self.redacted_url} ({len(payload)} bytes)", code=413
                )
            if status >= 500:
                body = self._try_json(content)
                if body is not None and self._is_revert_body(body):
                    return body
                return RpcUnavailableError(f"{what}: HTTP {status} from {self.redacted_url}",
                                           retry_after=retry_after_s(resp.headers.get("retry-after")))
            if status >= 400:
                body = self._try_json(content)
                if isinstance(body, list) or (isinstance(body, dict) and "error" in body):
                    return body
                raise RpcError(f"{what}: HTTP {status} from {self.redacted_url}", code=status)
            body = self._try_json(content)
            if body is None:
                raise DecodeError(
                    f"{what}: malformed JSON from {self.redacted_url} ({len(content)} bytes, HTTP {status})"
                )
            items = body if isinstance(body, list) else [body]
            limited = next((i["error"] for i in items if isinstance(i, dict) and _is_rate_limit(i.get("error"))), None)
            if limited is not None:
                # Providers often say "rate limited" in a JSON-RPC error with HTTP 200 (for one item of a batch,
                # too): a fault to wait out, and the whole request is sent again.
                return RateLimitedError(f"{what}: rate limited by {self.redacted_url} ({limited.get('message')})",
                                        retry_after=retry_after_s(resp.headers.get("retry-after")))
            return body

        return self._send("POST", self._endpoint, payload, self._headers, what, answer)

    @staticmethod
    def _try_json(content: bytes) -> Any:
        try:
            return json.loads(content)
        except (ValueError, UnicodeDecodeError):
            return None

    @staticmethod
    def _is_revert_body(body: Any) -> bool:
        return isinstance(body, dict) and isinstance(map_rpc_error(body.get("error"), ""), CallRevertedError)

    def _count(self, method: str) -> None:
        self.stats.calls_by_method[method] = self.stats.calls_by_method.get(method, 0) + 1

    # --- JSON-RPC ------------------------------------------------------------------------------------
    def request(self, method: str, params: Sequence[Any] = ()) -> Any:
        """One JSON-RPC call; returns its ``result``."""
        try:
            return self._request(method, params)
        except CallRevertedError:
            raise
        except ConnectorError:
            self.stats.errors += 1
            raise

    def _request(self, method: str, params: Sequence[Any]) -> Any:
        rid = next(self._ids)
        self._count(method)
        payload = json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": list(params)}).encode()
        body = self._post(payload, method)
        if not isinstance(body, dict):
            raise DecodeError(f"{method}: expected a JSON object, got {type(body).__name__}")
        if "error" in body and body["error"] is not None:
            raise map_rpc_error(body["error"], method)
        if body.get("id") != rid:
            raise DecodeError(f"{method}: response id {body.get('id')!r} does not match request id {rid}")
        if "result" not in body:
            raise DecodeError(f"{method}: response has neither result nor error")
        return body["result"]

    def batch(self, requests: Sequence[tuple[str, Sequence[Any]]], *, return_exceptions: bool = False) -> list[Any]:
        """Several JSON-RPC calls in one HTTP POST; results in the order of ``requests`` (matched by id).

        With ``return_exceptions`` a failed item's slot holds its :class:`RpcError` instead of raising the
        first one. A whole-batch failure (HTTP, a single error object, malformed body) always raises.
        """
        if not requests:
            return []
        try:
            out = self._batch(requests, return_exceptions)
        except CallRevertedError:
            raise
        except ConnectorError:
            self.stats.errors += len(requests)
            raise
        self.stats.errors += sum(isinstance(x, ConnectorError) and not isinstance(x, CallRevertedError) for x in out)
        return out

    def _batch(self, requests: Sequence[tuple[str, Sequence[Any]]], return_exceptions: bool) -> list[Any]:
        ids = [next(self._ids) for _ in requests]
        payload_items = []
        for rid, (method, params) in zip(ids, requests, strict=True):
            self._count(method)
            payload_items.append({"jsonrpc": "2.0", "id": rid, "method": method, "params": list(params)})
        what = f"batch of {len(requests)}"
        body = self._post(json.dumps(payload_items).encode(), what)
        if isinstance(body, dict):
            if body.get("error") is not None:
                raise map_rpc_error(body["error"], what)
            raise DecodeError(f"{what}: expected a JSON array, got an object without error")
        if not isinstance(body, list):
            raise DecodeError(f"{what}: expected a JSON array, got {type(body).__name__}")
        wanted = set(ids)
        by_id: dict[int, dict[str, Any]] = {}
        for item in body:
            if not isinstance(item, dict):
                raise DecodeError(f"{what}: batch item is {type(item).__name__}, not an object")
            item_id = item.get("id")
            if not isinstance(item_id, int) or isinstance(item_id, bool) or item_id not in wanted:
                raise DecodeError(f"{what}: response id {item_id!r} matches no request")
            if item_id in by_id:
                raise DecodeError(f"{what}: response id {item_id} appears twice")
            by_id[item_id] = item
        out: list[Any] = []
        for rid, (method, _) in zip(ids, requests, strict=True):
            item_or_none = by_id.get(rid)
            exc: RpcError | DecodeError | None = None
            if item_or_none is None:
                exc = DecodeError(f"{method}: no response for request id {rid} in the batch")
            elif item_or_none.get("error") is not None:
                exc = map_rpc_error(item_or_none["error"], method)
            elif "result" not in item_or_none:
                exc = DecodeError(f"{method}: response has neither result nor error")
            if exc is not None:
                if not return_exceptions:
                    raise exc
                out.append(exc)
            else:
                out.append(item_or_none["result"] if item_or_none is not None else None)
        return out

    # --- helpers -------------------------------------------------------------------------------------
    def chain_id(self, *, refresh: bool = False) -> int:
        """``eth_chainId`` (cached after the first call: an endpoint's chain does not change)."""
        if self._chain_id is None or refresh:
            self._chain_id = hex_to_int(self.request("eth_chainId"), "eth_chainId")
        return self._chain_id

    def block_number(self) -> int:
        return hex_to_int(self.request("eth_blockNumber"), "eth_blockNumber")

    def get_block(self, number_or_tag: BlockId = "latest") -> BlockRef:
        """The :class:`BlockRef` (chain id, number, hash, timestamp) of a block."""
        param = hex(number_or_tag.number) if isinstance(number_or_tag, BlockRef) else block_param(number_or_tag)
        chain_id = self.chain_id()
        raw = self.request("eth_getBlockByNumber", [param, False])
        if raw is None:
            raise InvalidInputError(f"no block {number_or_tag!r} on chain {chain_id}")
        return _block_ref(raw, chain_id)

    def get_blocks(self, blocks: Sequence[BlockId]) -> list[BlockRef | None]:
        """Several blocks' :class:`BlockRef` in one batched request, in order; ``None`` where the node has no such
        block (a number above its head)."""
        if not blocks:
            return []
        chain_id = self.chain_id()
        params = [hex(b.number) if isinstance(b, BlockRef) else block_param(b) for b in blocks]
        raws = self.batch([("eth_getBlockByNumber", [p, False]) for p in params])
        return [None if raw is None else _block_ref(raw, chain_id) for raw in raws]

    @staticmethod
    def call_params(to: str, data: bytes, block: BlockId, gas: int | None = None) -> list[Any]:
        """``eth_call`` params for use in :meth:`batch`."""
        tx: dict[str, str] = {"to": to, "data": "0x" + data.hex()}
        if gas is not None:
            tx["gas"] = hex(gas)
        return [tx, block_param(block)]

    def eth_call(self, to: str, data: bytes, block: BlockId, gas: int | None = None) -> bytes:
        """``eth_call`` at ``block``; returns the raw return bytes (a revert raises CallRevertedError)."""
        try:
            result = self.request("eth_call", self.call_params(to, data, block, gas))
        except CallRevertedError as exc:
            exc.target = to
            raise
        return hex_to_bytes(result, "eth_call result")


def _block_ref(raw: object, chain_id: int) -> BlockRef:
    if not isinstance(raw, dict):
        raise DecodeError(f"eth_getBlockByNumber: expected an object, got {type(raw).__name__}")
    block_hash = raw.get("hash")
    if not isinstance(block_hash, str) or len(block_hash) != 66:
        raise DecodeError(f"eth_getBlockByNumber: bad hash {block_hash!r}")
    return BlockRef(
        chain_id=chain_id,
        number=hex_to_int(raw.get("number"), "block number"),
        hash=block_hash,
        timestamp=hex_to_int(raw.get("timestamp"), "block timestamp"),
    )
