"""Follow a chain's new heads: every block once, in order, reorg-aware, with a missed range backfilled.

Heads are announced over a WebSocket subscription (web3.py's :class:`~web3.AsyncWeb3` with its persistent
:class:`~web3.providers.persistent.WebSocketProvider`, ``eth_subscribe("newHeads")``) where the endpoint offers
one; when the socket cannot be opened, drops or goes silent while the chain moves on, the follower polls
``eth_blockNumber`` over HTTP instead and tries the socket again later. Either way a head only says *how far*
the chain is: the blocks themselves are read over HTTP (``eth_getBlockByNumber``, batched) from the last block
delivered up to the head, so a range missed while switching transports is backfilled, never skipped.

Events, in the order they happen::

    NewBlock(block, parent_hash)          the next block of the canonical chain (number = previous + 1)
    Reorg(fork_point, reverted)           blocks already delivered are no longer canonical: ``reverted``
                                          (ascending) are undone; delivery goes on from fork_point + 1
    GapTooLong(first, last)               blocks first..last.number were missed and are more than max_gap
                                          (or a reorg went deeper than the window): not delivered one by one;
                                          the caller does a full sweep at ``last``; delivery goes on after it
    TransportChanged(transport, reason)   heads now come over "ws" or by "poll"

Parent hashes are checked on every block delivered: a block whose parent is not the previous block's hash
means a reorganisation, whose fork point is the newest delivered block (within ``window``) still canonical.

:meth:`HeadFollower.events` is an async iterator; :meth:`HeadFollower.sync` runs it on its own thread and
event loop and hands the events to a blocking iterator (:class:`HeadStream`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, Self, cast
from urllib.parse import urlsplit, urlunsplit

from connectors.errors import ConnectorError, DecodeError, InvalidInputError
from connectors.evm.rpc import RpcClient, hex_to_int
from connectors.transport import redact_url
from connectors.types import BlockRef

__all__ = [
    "GapTooLong",
    "HeadEvent",
    "HeadFollower",
    "HeadMoved",
    "HeadStream",
    "NewBlock",
    "Reorg",
    "Transport",
    "TransportChanged",
    "ws_url_for",
]

log = logging.getLogger(__name__)

Transport = Literal["ws", "poll"]

_BATCH = 100
"""Blocks read per batched HTTP request while backfilling."""


@dataclass(frozen=True)
class NewBlock:
    """The next canonical block; ``parent_hash`` is the previous delivered block's hash."""

    block: BlockRef
    parent_hash: str


@dataclass(frozen=True)
class Reorg:
    """``reverted`` (ascending by number) are no longer canonical; ``fork_point`` is the newest delivered block
    that still is. The next :class:`NewBlock` is ``fork_point.number + 1``."""

    fork_point: BlockRef
    reverted: list[BlockRef]


@dataclass(frozen=True)
class GapTooLong:
    """Blocks ``first`` .. ``last.number`` were not delivered one by one (more than ``max_gap`` of them, or a
    reorganisation deeper than the window): sweep everything at ``last``. Delivery goes on after ``last``."""

    first: int
    last: BlockRef


@dataclass(frozen=True)
class HeadMoved:
    """A follower made with ``read_blocks=False`` saw head ``number`` (announced over the socket, or a new number
    polled): nothing was read or checked — the caller reads and orders the blocks itself."""

    number: int


@dataclass(frozen=True)
class TransportChanged:
    """Heads now come over ``transport``; ``reason`` says why (never an URL with its path or query)."""

    transport: Transport
    reason: str


HeadEvent = NewBlock | Reorg | GapTooLong | HeadMoved | TransportChanged


def ws_url_for(http_url: str) -> str:
    """The WebSocket URL of an HTTP JSON-RPC endpoint: ``http`` → ``ws``, ``https`` → ``wss``, the rest kept
    (anvil, geth and most providers serve both on the same host, port and path). A ``ws``/``wss`` URL is
    returned as it is."""
    parts = urlsplit(http_url)
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme.lower())
    if scheme is None or not parts.netloc:
        raise InvalidInputError(f"not an http(s) or ws(s) URL: {redact_url(http_url)}")
    return urlunsplit((scheme, parts.netloc, parts.path, parts.query, parts.fragment))


@dataclass(frozen=True)
class _Block:
    ref: BlockRef
    parent_hash: str


def _parse_block(raw: object, chain_id: int) -> _Block:
    if not isinstance(raw, dict):
        raise DecodeError(f"eth_getBlockByNumber: expected an object, got {type(raw).__name__}")
    block_hash, parent = raw.get("hash"), raw.get("parentHash")
    if not isinstance(block_hash, str) or len(block_hash) != 66:
        raise DecodeError(f"eth_getBlockByNumber: bad hash {block_hash!r}")
    if not isinstance(parent, str) or len(parent) != 66:
        raise DecodeError(f"eth_getBlockByNumber: bad parentHash {parent!r}")
    ref = BlockRef(
        chain_id=chain_id,
        number=hex_to_int(raw.get("number"), "block number"),
        hash=block_hash.lower(),
        timestamp=hex_to_int(raw.get("timestamp"), "block timestamp"),
    )
    return _Block(ref, parent.lower())


@dataclass
class _Tracker:
    """The synchronous core: what was delivered (the last ``window`` blocks) and how to go on to a head."""

    rpc: RpcClient
    window: int
    max_gap: int
    history: deque[BlockRef] = field(init=False)

    def __post_init__(self) -> None:
        self.history = deque(maxlen=self.window)

    @property
    def last(self) -> BlockRef | None:
        return self.history[-1] if self.history else None

    def blocks(self, numbers: Sequence[int]) -> list[_Block | None]:
        """The canonical blocks at ``numbers`` (None where the node has none), batched."""
        chain_id = self.rpc.chain_id()
        out: list[_Block | None] = []
        for i in range(0, len(numbers), _BATCH):
            part = numbers[i : i + _BATCH]
            raws = self.rpc.batch([("eth_getBlockByNumber", [hex(n), False]) for n in part])
            out.extend(None if raw is None else _parse_block(raw, chain_id) for raw in raws)
        return out

    def block(self, number: int | str) -> _Block:
        raw = self.rpc.request("eth_getBlockByNumber", [number if isinstance(number, str) else hex(number), False])
        if raw is None:
            raise InvalidInputError(f"no block {number!r} on chain {self.rpc.chain_id()}")
        return _parse_block(raw, self.rpc.chain_id())

    def start(self, resume_from: BlockRef | int | None, head: int) -> list[HeadEvent]:
        """Begin after ``resume_from`` (already processed by the caller), or at ``head`` when None."""
        if resume_from is None:
            first = self.block(head)
            self.history.append(first.ref)
            return [NewBlock(first.ref, first.parent_hash)]
        ref = resume_from if isinstance(resume_from, BlockRef) else self.block(resume_from).ref
        self.history.append(ref)
        return self.advance(head)

    def advance(self, head: int) -> list[HeadEvent]:
        """Deliver the canonical blocks after the last delivered one up to ``head``."""
        events: list[HeadEvent] = []
        for _ in range(64):  # each round ends in delivery, or a reorg that moves the start back
            last = self.history[-1]
            if head <= last.number:
                # no new number: is our newest block still canonical (a reorg at the same or a lower height)?
                canon = self.blocks([last.number])[0]
                if canon is None or canon.ref.hash == last.hash.lower():
                    return events  # the node is behind us (a lagging or reset node) or nothing happened
                events.extend(self._reorg(head))
                continue
            if head - last.number > self.max_gap:
                return [*events, *self._gap(last.number + 1, head)]
            fetched = self.blocks(list(range(last.number + 1, head + 1)))
            reorged = False
            for blk in fetched:
                if blk is None:  # the head moved back while reading: take the rest at the next head
                    return events
                if blk.parent_hash != self.history[-1].hash.lower():
                    events.extend(self._reorg(head))
                    reorged = True
                    break
                self.history.append(blk.ref)
                events.append(NewBlock(blk.ref, blk.parent_hash))
            if not reorged:
                return events
        raise ConnectorError(f"the chain kept reorganising while following it to block {head}")

    def _reorg(self, head: int) -> list[HeadEvent]:
        delivered = list(self.history)
        canon = self.blocks([b.number for b in delivered])
        for i in range(len(delivered) - 1, -1, -1):
            c = canon[i]
            if c is not None and c.ref.hash == delivered[i].hash.lower():
                reverted = delivered[i + 1 :]
                for _ in reverted:
                    self.history.pop()
                log.warning("reorg: fork point %d, %d block(s) reverted", delivered[i].number, len(reverted))
                return [Reorg(delivered[i], reverted)]
        return self._gap(delivered[0].number, max(head, delivered[0].number),
                         f"a reorganisation deeper than the window of {self.window} blocks")

    def _gap(self, first: int, head: int, why: str | None = None) -> list[HeadEvent]:
        blk = self.block(head)
        self.history.clear()
        self.history.append(blk.ref)
        why = why or f"{head - first + 1} blocks missed, more than {self.max_gap}"
        log.warning("new heads: %s: blocks %d..%d need a full sweep at %d", why, first, head, blk.ref.number)
        return [GapTooLong(first, blk.ref)]


class _WsFailedError(Exception):
    """The WebSocket could not be used (any cause); the follower polls."""


class HeadFollower:
    """Follows new heads of the chain behind ``rpc`` (HTTP) and ``ws_url`` (its WebSocket; None: poll only).

    Parameters
    ----------
    rpc:
        The HTTP client every block is read with (and heads polled with, as the fallback).
    ws_url:
        The WebSocket endpoint (:func:`ws_url_for`), or None to poll only.
    resume_from:
        The last block the caller processed (a :class:`BlockRef`, or its number): delivery starts after it, with
        the range up to the head backfilled. None: start at the current head.
    window:
        How many delivered blocks are kept to find a reorganisation's fork point.
    max_gap:
        More missed blocks than this are reported as one :class:`GapTooLong` instead of delivered one by one.
    poll_interval_s:
        Seconds between ``eth_blockNumber`` polls while polling.
    ws_retry_s:
        Seconds of polling before the WebSocket is tried again.
    ws_idle_s:
        When the socket has announced nothing for this long, the head is polled once over HTTP: if the chain
        moved on without an announcement, the socket is considered dead.
    ws_timeout_s:
        Timeout of the WebSocket's connect and subscribe requests.
    read_blocks:
        False: a trigger only. Each announced head (and each new number polled) is a :class:`HeadMoved`, with no
        block read over HTTP — for a caller that reads the blocks it processes itself (block-mode sync: reading each
        head here too cost one more ``eth_getBlockByNumber`` request per block). No :class:`NewBlock`,
        :class:`Reorg` or :class:`GapTooLong` then; ``resume_from`` is not used and :attr:`last` stays None.
    """

    def __init__(
        self,
        rpc: RpcClient,
        ws_url: str | None,
        resume_from: BlockRef | int | None = None,
        window: int = 128,
        max_gap: int = 256,
        *,
        poll_interval_s: float = 1.0,
        ws_retry_s: float = 10.0,
        ws_idle_s: float = 5.0,
        ws_timeout_s: float = 5.0,
        read_blocks: bool = True,
    ) -> None:
        if window < 1:
            raise ValueError("window must be at least 1")
        if max_gap < 1:
            raise ValueError("max_gap must be at least 1")
        if poll_interval_s <= 0 or ws_retry_s < 0 or ws_idle_s <= 0 or ws_timeout_s <= 0:
            raise ValueError("intervals and timeouts must be positive")
        self.rpc = rpc
        self.ws_url = ws_url
        self.resume_from = resume_from
        self.poll_interval_s = poll_interval_s
        self.ws_retry_s = ws_retry_s
        self.ws_idle_s = ws_idle_s
        self.ws_timeout_s = ws_timeout_s
        self.read_blocks = read_blocks
        self._tracker = _Tracker(rpc, window, max_gap)
        self._moved: int | None = None
        """Trigger mode: the last head number reported."""
        self._stop = threading.Event()
        self.transport: Transport | None = None

    @property
    def last(self) -> BlockRef | None:
        """The last block delivered (after a :class:`Reorg`, its fork point)."""
        return self._tracker.last

    def close(self) -> None:
        """Stop following: :meth:`events` ends at its next wake-up (within a poll interval or ``ws_idle_s``)."""
        self._stop.set()

    @property
    def closed(self) -> bool:
        return self._stop.is_set()

    # ---------------------------------------------------------------------------------------------- async
    async def events(self) -> AsyncIterator[HeadEvent]:
        """Every event, in order, until :meth:`close`. HTTP faults of the block reads propagate (after the
        client's retries); WebSocket faults only switch to polling."""
        next_ws_try = 0.0
        while not self._stop.is_set():
            if self.ws_url is not None and time.monotonic() >= next_ws_try:
                try:
                    async for event in self._follow_ws(self.ws_url):
                        yield event
                except _WsFailedError as exc:
                    reason = str(exc)
                else:
                    return  # closed
                next_ws_try = time.monotonic() + self.ws_retry_s
                log.warning("new heads: WebSocket unusable (%s); polling", reason)
            else:
                reason = "no WebSocket endpoint" if self.ws_url is None else "WebSocket retry pending"
            if self.transport != "poll":
                self.transport = "poll"
                yield TransportChanged("poll", reason)
            async for event in self._poll_until(next_ws_try if self.ws_url is not None else None):
                yield event

    async def _head(self) -> int:
        return await asyncio.to_thread(self.rpc.block_number)

    async def _step(self, head: int, *, announced: bool = False) -> list[HeadEvent]:
        if not self.read_blocks:
            # an announcement is always news (a reorganisation can announce the same height again); a poll is news
            # when the number changed
            if announced or head != self._moved:
                self._moved = head
                return [HeadMoved(head)]
            return []
        tracker = self._tracker
        if tracker.last is None:
            return await asyncio.to_thread(tracker.start, self.resume_from, head)
        return await asyncio.to_thread(tracker.advance, head)

    async def _poll_until(self, until: float | None) -> AsyncIterator[HeadEvent]:
        while not self._stop.is_set() and (until is None or time.monotonic() < until):
            for event in await self._step(await self._head()):
                yield event
            await self._sleep(self.poll_interval_s)

    async def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self._stop.is_set() and (left := end - time.monotonic()) > 0:
            await asyncio.sleep(min(left, 0.05))

    async def _follow_ws(self, url: str) -> AsyncIterator[HeadEvent]:
        from web3 import AsyncWeb3, WebSocketProvider  # imported here: the poll-only path never needs it

        provider = WebSocketProvider(
            url, request_timeout=self.ws_timeout_s, max_connection_retries=1,
            websocket_kwargs={"open_timeout": self.ws_timeout_s},
        )
        w3: Any = AsyncWeb3(provider)
        try:
            try:
                await asyncio.wait_for(provider.connect(), self.ws_timeout_s)
                await asyncio.wait_for(w3.eth.subscribe("newHeads"), self.ws_timeout_s)
            except Exception as exc:  # refused, closed, timed out, unsupported: any of them means poll
                raise _WsFailedError(f"cannot subscribe to newHeads at {redact_url(url)}: {_describe(exc)}") from None
            if self.transport != "ws":
                self.transport = "ws"
                yield TransportChanged("ws", f"subscribed to newHeads at {redact_url(url)}")
            # blocks mined before the subscription (and while the socket was down) are backfilled now
            for event in await self._step(await self._head()):
                yield event
            stream = w3.socket.process_subscriptions()
            while not self._stop.is_set():
                try:
                    message = await asyncio.wait_for(stream.__anext__(), self.ws_idle_s)
                except TimeoutError:
                    head = await self._head()
                    last = self._tracker.last.number if self._tracker.last is not None else self._moved
                    if last is not None and head > last:
                        raise _WsFailedError(f"no newHeads announcement while the chain moved to {head}") from None
                    for event in await self._step(head):  # reorgs to a lower or equal height
                        yield event
                    continue
                except StopAsyncIteration:
                    raise _WsFailedError("the subscription stream ended (connection closed)") from None
                except Exception as exc:
                    raise _WsFailedError(f"the subscription failed: {_describe(exc)}") from None
                announced = _announced_number(message)
                if announced is None:
                    continue
                for event in await self._step(announced, announced=True):
                    yield event
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(provider.disconnect(), self.ws_timeout_s)

    # ----------------------------------------------------------------------------------------------- sync
    def sync(self, maxsize: int = 10_000) -> HeadStream:
        """Run :meth:`events` on a thread of its own; the returned :class:`HeadStream` is a blocking iterator
        (and a context manager that closes the follower and joins the thread)."""
        return HeadStream(self, maxsize)


def _announced_number(message: object) -> int | None:
    result = message.get("result") if isinstance(message, Mapping) else None
    if not isinstance(result, Mapping):  # web3 hands an AttributeDict: a Mapping, not a dict
        return None
    number = result.get("number")
    if isinstance(number, int) and not isinstance(number, bool):
        return number
    try:
        return hex_to_int(number, "newHeads number")
    except DecodeError:
        return None


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


_END = object()


class HeadStream:
    """A :class:`HeadFollower`'s events as a blocking iterator, produced on a daemon thread.

    An exception that ends the follower (an HTTP fault after retries) is raised from the iterator. Closing
    (or leaving the ``with`` block) stops the follower and joins the thread."""

    def __init__(self, follower: HeadFollower, maxsize: int = 10_000) -> None:
        self.follower = follower
        self._queue: queue.Queue[object] = queue.Queue(maxsize)
        self._thread = threading.Thread(target=self._run, name="head-follower", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        async def pump() -> None:
            async for event in self.follower.events():
                self._put(event)

        try:
            asyncio.run(pump())
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(exc)
        finally:
            self._put(_END)

    def _put(self, item: object) -> None:
        while True:
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                if self.follower.closed:
                    return

    def get(self, timeout: float | None = None) -> HeadEvent:
        """The next event; :class:`queue.Empty` after ``timeout`` seconds without one, StopIteration at the
        end."""
        item = self._queue.get(timeout=timeout)
        if item is _END:
            self._queue.put(_END)
            raise StopIteration
        if isinstance(item, BaseException):
            raise item
        return cast(HeadEvent, item)

    def __iter__(self) -> Iterator[HeadEvent]:
        while True:
            try:
                yield self.get()
            except StopIteration:
                return

    def close(self, timeout: float = 10.0) -> None:
        self.follower.close()
        while True:  # unblock a producer waiting on a full queue
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join(timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
