"""Multicall3 ``aggregate3``: many view calls per ``eth_call``, many ``eth_call`` per HTTP request.

:meth:`Multicall.execute` cuts the calls into chunks (at most ``max_calls`` sub-calls and
``max_request_bytes`` per chunk), sends all chunks as one JSON-RPC batch (split into several HTTP requests
only when a body would pass ``max_request_bytes``), pins every ``eth_call`` to one block number, halves a
chunk the node refuses as out of gas / too large, and decodes every sub-result with its :class:`Fn`.

Every sub-call goes on the wire with ``allowFailure = true``; "required" (``allow_failure=False``) is
enforced here, after the fact, so a failing required call is reported with its own target, function and
revert reason instead of Multicall3's generic ``"Multicall3: call failed"``.

Reads are composed as :class:`Plan` objects (calls + a decoder of their results), so several readers
(venues, feeds) can share one round trip: :meth:`Multicall.run_many`.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Generic, TypeVar

from connectors.errors import (
    CallRevertedError,
    DecodeError,
    InvalidAddressError,
    InvalidInputError,
    RequestTooLargeError,
    RpcError,
)
from connectors.evm.abi import Fn, decode_revert_reason
from connectors.evm.rpc import RpcClient
from connectors.types import BlockRef

__all__ = [
    "AGGREGATE3",
    "MULTICALL3",
    "Call",
    "CallResult",
    "Multicall",
    "Plan",
    "decode_aggregate3_result",
    "encode_aggregate3",
]

MULTICALL3 = "0xcA11bde05977b3631167028862bE2a173976CA11"
"""Multicall3's address: the same on every chain it is deployed on (deterministic deployment)."""

AGGREGATE3 = Fn("aggregate3((address,bool,bytes)[])((bool,bytes)[])")

T = TypeVar("T")

_HEX40 = re.compile(r"^0x[0-9a-fA-F]{40}$")
_WORD_0 = bytes(32)
_WORD_1 = (1).to_bytes(32, "big")
_WORD_0x60 = (0x60).to_bytes(32, "big")
_JSON_OVERHEAD = 220
"""Bytes of JSON around one eth_call's hex data in a batch (envelope, to, gas, block)."""


@lru_cache(maxsize=65536)
def _address_word(target: str) -> bytes:
    if not isinstance(target, str) or not _HEX40.fullmatch(target):
        raise InvalidAddressError(f"not a call target address: {target!r}")
    return bytes(12) + bytes.fromhex(target[2:])


def _pad32(n: int) -> int:
    return (n + 31) // 32 * 32


class Call:
    """One view call: ``target.fn(*args)``, decoded with ``fn`` (or ``decoder`` when given).

    ``allow_failure=False`` makes a failure of this call fail the whole :meth:`Multicall.execute`.
    ``calldata`` may be given instead of ``args`` (precomputed, or for a function ``fn`` cannot encode).
    """

    __slots__ = ("allow_failure", "args", "calldata", "decoder", "fn", "target", "target_word")

    def __init__(
        self,
        target: str,
        fn: Fn,
        args: Sequence[Any] = (),
        allow_failure: bool = True,
        *,
        calldata: bytes | None = None,
        decoder: Callable[[bytes], Any] | None = None,
    ) -> None:
        self.target = target
        self.target_word = _address_word(target)
        self.fn = fn
        self.args = tuple(args)
        self.allow_failure = allow_failure
        self.calldata = calldata if calldata is not None else fn.encode(*self.args)
        self.decoder = decoder

    def __repr__(self) -> str:
        return f"Call({self.target}, {self.fn.signature}, args={self.args!r}, allow_failure={self.allow_failure})"

    def describe(self) -> str:
        return f"{self.fn.signature} on {self.target}"

    @property
    def encoded_size(self) -> int:
        """Bytes this call adds to an ``aggregate3`` calldata."""
        return 160 + _pad32(len(self.calldata))

    def decode(self, data: bytes) -> Any:
        return self.decoder(data) if self.decoder is not None else self.fn.decode(data)


@dataclass(frozen=True, slots=True)
class CallResult:
    """One sub-call's outcome. ``value`` is the decoded return (a tuple for :meth:`Fn.decode`), None when not ok;
    ``error`` says why (decoded revert reason, or a decoding failure)."""

    call: Call
    ok: bool
    value: Any
    raw: bytes
    error: str | None = None
    undecodable: bool = False
    """The call succeeded on-chain but its return data could not be decoded."""

    def unwrap(self) -> Any:
        """``value``, or raise :class:`CallRevertedError` (:class:`DecodeError` when undecodable) if it failed."""
        if self.undecodable:
            raise DecodeError(f"{self.call.describe()}: {self.error}")
        if not self.ok:
            raise CallRevertedError(
                f"{self.call.describe()} failed: {self.error}", self.raw, self.call.target, reason=self.error
            )
        return self.value


@dataclass(frozen=True, slots=True)
class Plan(Generic[T]):
    """Calls to make and the function that turns their results (same order) into a ``T``."""

    calls: Sequence[Call]
    decode: Callable[[Sequence[CallResult]], T]


def encode_aggregate3(calls: Sequence[Call]) -> bytes:
    """Calldata of ``aggregate3(calls)`` with every ``allowFailure`` true (hand-rolled; equals eth-abi's)."""
    n = len(calls)
    heads = bytearray()
    tails: list[bytes] = []
    offset = 32 * n
    for c in calls:
        heads += offset.to_bytes(32, "big")
        data = c.calldata
        pad = _pad32(len(data)) - len(data)
        elem = b"".join((c.target_word, _WORD_1, _WORD_0x60, len(data).to_bytes(32, "big"), data, bytes(pad)))
        tails.append(elem)
        offset += len(elem)
    return b"".join((AGGREGATE3.selector, (32).to_bytes(32, "big"), n.to_bytes(32, "big"), heads, *tails))


def decode_aggregate3_result(data: bytes) -> list[tuple[bool, bytes]]:
    """Decode ``aggregate3``'s ``(bool success, bytes returnData)[]`` (hand-rolled; equals eth-abi's).

    Raises :class:`DecodeError` on any out-of-bounds offset or length, a bool that is not 0/1, or results that
    together hold more bytes than the answer (offsets pointing at shared data: Solidity gives every result its
    own bytes, and copying shared data once per result would grow the output quadratically in the answer).
    """
    size = len(data)
    if size < 64:
        raise DecodeError(f"aggregate3 returned {size} bytes (is Multicall3 deployed at the address?)")
    mv = memoryview(data)

    def word(pos: int) -> int:
        if pos + 32 > size:
            raise DecodeError(f"aggregate3 return truncated at byte {pos}")
        return int.from_bytes(mv[pos : pos + 32], "big")

    base = word(0)
    n = word(base)
    base += 32
    if base + 32 * n > size:
        raise DecodeError(f"aggregate3 return announces {n} results in {size} bytes")
    out: list[tuple[bool, bytes]] = []
    total = 0
    for i in range(n):
        elem = base + word(base + 32 * i)
        ok = word(elem)
        if ok > 1:
            raise DecodeError(f"aggregate3 result {i}: success word is {ok}")
        start = elem + word(elem + 32)
        length = word(start)
        if start + 32 + length > size:
            raise DecodeError(f"aggregate3 result {i}: {length} bytes of returnData run past the end")
        total += length
        if total > size:
            raise DecodeError(f"aggregate3 results overlap: {total} bytes of returnData in a {size}-byte answer")
        out.append((ok == 1, bytes(mv[start + 32 : start + 32 + length])))
    return out


@dataclass
class MulticallStats:
    """Counters of one :class:`Multicall` (the HTTP and JSON-RPC counts are in ``rpc.stats``)."""

    sub_calls: int = 0
    aggregate_calls: int = 0
    halvings: int = 0


class Multicall:
    """Batches :class:`Call` objects through Multicall3 over an :class:`RpcClient`.

    Parameters
    ----------
    max_calls:
        Sub-calls per ``aggregate3``.
    max_request_bytes:
        Cap on one HTTP body (bytes of JSON); also caps one chunk. Common nodes refuse bodies near 2 MB.
    gas_limit:
        ``gas`` of every ``eth_call`` (common nodes cap eth_call at 50M).
    """

    def __init__(
        self,
        rpc: RpcClient,
        address: str = MULTICALL3,
        *,
        max_calls: int = 1000,
        max_request_bytes: int = 1_500_000,
        gas_limit: int | None = 50_000_000,
    ) -> None:
        if max_calls < 1 or max_request_bytes < 1024:
            raise InvalidInputError("max_calls must be >= 1 and max_request_bytes >= 1024")
        _address_word(address)
        self.rpc = rpc
        self.address = address
        self.max_calls = max_calls
        self.max_request_bytes = max_request_bytes
        self.gas_limit = gas_limit
        self.stats = MulticallStats()

    def __repr__(self) -> str:
        return f"Multicall({self.rpc!r}, {self.address}, max_calls={self.max_calls})"

    # --- planning ------------------------------------------------------------------------------------
    @staticmethod
    def _wire_bytes(chunk_bytes: int) -> int:
        """JSON bytes of one eth_call carrying an aggregate3 calldata of ``chunk_bytes`` (hex doubles it)."""
        return _JSON_OVERHEAD + 2 * (4 + 64 + chunk_bytes)

    def chunk(self, calls: Sequence[Call]) -> list[range]:
        """Consecutive index ranges of ``calls``, each within ``max_calls`` and ``max_request_bytes``."""
        out: list[range] = []
        start = 0
        acc = 0
        for i, c in enumerate(calls):
            size = c.encoded_size
            if i > start and (i - start >= self.max_calls or self._wire_bytes(acc + size) > self.max_request_bytes):
                out.append(range(start, i))
                start, acc = i, 0
            acc += size
        if start < len(calls):
            out.append(range(start, len(calls)))
        return out

    def _pack(self, chunks: Sequence[tuple[range, bytes]]) -> list[list[tuple[range, bytes]]]:
        """Group encoded chunks into HTTP requests of at most ``max_request_bytes`` (at least one chunk each)."""
        groups: list[list[tuple[range, bytes]]] = []
        cur: list[tuple[range, bytes]] = []
        acc = 2
        for item in chunks:
            size = _JSON_OVERHEAD + 2 * len(item[1]) + 2
            if cur and acc + size > self.max_request_bytes:
                groups.append(cur)
                cur, acc = [], 2
            cur.append(item)
            acc += size
        if cur:
            groups.append(cur)
        return groups

    # --- execution -----------------------------------------------------------------------------------
    def execute(self, calls: Sequence[Call], block: int | BlockRef, *, strict: bool = True) -> list[CallResult]:
        """Make every call at ``block``; results in the order of ``calls``.

        Raises :class:`CallRevertedError` / :class:`DecodeError` naming the target and function when a call
        with ``allow_failure=False`` fails, unless ``strict`` is false: then every failure comes back as a
        ``CallResult`` with ``ok=False`` (for callers that isolate failures per plan, see
        :mod:`connectors.evm.program`). RPC faults propagate as raised by the client.
        """
        if isinstance(block, BlockRef):
            number = block.number
        elif isinstance(block, int) and not isinstance(block, bool) and block >= 0:
            number = block
        else:
            raise InvalidInputError(f"multicall reads are pinned to a block number, got {block!r}")
        if not calls:
            return []
        results: list[CallResult | None] = [None] * len(calls)
        encoded = [(r, encode_aggregate3([calls[i] for i in r])) for r in self.chunk(calls)]
        queue: deque[list[tuple[range, bytes]]] = deque(self._pack(encoded))
        while queue:
            group = queue.popleft()
            # A BlockRef pins every read to its block's hash (EIP-1898); a bare number to the height only.
            requests = [
                ("eth_call", RpcClient.call_params(self.address, data, block, self.gas_limit)) for _, data in group
            ]
            self.stats.aggregate_calls += len(group)
            try:
                answers = self.rpc.batch(requests, return_exceptions=True)
            except RequestTooLargeError:
                if len(group) > 1:
                    mid = len(group) // 2
                    queue.appendleft(group[mid:])
                    queue.appendleft(group[:mid])
                else:
                    for half in self._halve(calls, group[0][0]):
                        queue.appendleft([half])
                continue
            retry: list[tuple[range, bytes]] = []
            for (rng, _), answer in zip(group, answers, strict=True):
                if isinstance(answer, RequestTooLargeError):
                    retry += self._halve(calls, rng)
                elif isinstance(answer, BaseException):
                    raise self._chunk_error(answer, calls, rng, number)
                else:
                    self._decode_chunk(calls, rng, answer, results, strict)
            queue.extend(self._pack(retry))
        self.stats.sub_calls += len(calls)
        return [r for r in results if r is not None]

    def _halve(self, calls: Sequence[Call], rng: range) -> list[tuple[range, bytes]]:
        if len(rng) <= 1:
            c = calls[rng[0]]
            raise RequestTooLargeError(f"a single call is too large / out of gas for the node: {c.describe()}")
        self.stats.halvings += 1
        mid = len(rng) // 2
        halves = (rng[:mid], rng[mid:])
        return [(h, encode_aggregate3([calls[i] for i in h])) for h in halves]

    def _chunk_error(self, exc: BaseException, calls: Sequence[Call], rng: range, number: int) -> BaseException:
        if isinstance(exc, RpcError) and not isinstance(exc, CallRevertedError):
            return exc
        first = calls[rng[0]]
        msg = f"aggregate3 of {len(rng)} calls (first: {first.describe()}) at block {number} failed: {exc}"
        if isinstance(exc, CallRevertedError):
            return CallRevertedError(msg, exc.revert_data, self.address, reason=exc.reason, code=exc.code)
        return exc

    def _decode_chunk(
        self, calls: Sequence[Call], rng: range, answer: Any, results: list[CallResult | None], strict: bool
    ) -> None:
        if not isinstance(answer, str) or not answer.startswith("0x"):
            raise DecodeError(f"aggregate3: eth_call result is not hex: {type(answer).__name__}")
        try:
            raw = bytes.fromhex(answer[2:])
        except ValueError as exc:
            raise DecodeError("aggregate3: eth_call result is malformed hex") from exc
        if not raw:
            raise DecodeError(f"aggregate3 returned no data: is Multicall3 deployed at {self.address}?")
        subs = decode_aggregate3_result(raw)
        if len(subs) != len(rng):
            raise DecodeError(f"aggregate3 returned {len(subs)} results for {len(rng)} calls")
        for i, (ok, ret) in zip(rng, subs, strict=True):
            call = calls[i]
            if ok:
                try:
                    results[i] = CallResult(call, True, call.decode(ret), ret)
                    continue
                except DecodeError as exc:
                    if strict and not call.allow_failure:
                        raise DecodeError(f"{call.describe()}: {exc}") from exc
                    results[i] = CallResult(call, False, None, ret, str(exc), undecodable=True)
                    continue
            reason = decode_revert_reason(ret) or "reverted without a reason"
            if strict and not call.allow_failure:
                raise CallRevertedError(f"{call.describe()} reverted: {reason}", ret, call.target, reason=reason)
            results[i] = CallResult(call, False, None, ret, reason)

    def run(self, plan: Plan[T], block: int | BlockRef) -> T:
        """Execute one plan and decode its results."""
        return plan.decode(self.execute(plan.calls, block))

    def run_many(self, plans: Sequence[Plan[Any]], block: int | BlockRef) -> list[Any]:
        """Execute several plans in one :meth:`execute` (shared round trips); one decoded value per plan."""
        calls: list[Call] = []
        bounds: list[tuple[int, int]] = []
        for p in plans:
            bounds.append((len(calls), len(calls) + len(p.calls)))
            calls.extend(p.calls)
        results = self.execute(calls, block)
        return [p.decode(results[a:b]) for p, (a, b) in zip(plans, bounds, strict=True)]
