"""Event logs: typed logs, event specs decoded with eth-abi, per-venue watches, one ``eth_getLogs`` per block for a
whole chain, and the per-block *dirty set* the logs imply.

The pieces, from the wire up::

    Log            one log as eth_getLogs returns it (address, topics, data, block, tx, index, removed)
    Event          an event's ABI signature ("Supply(address indexed reserve, ...)"): topic0, and decode(log)
    Decoded        a log decoded by its Event: args by name (addresses checksummed)
    Effect         what one decoded log does: the wallets whose position it changes, a market/parameter
                   reason, or a reason to rebuild the watch (a new market, token or position)
    Watched        (contract addresses, Event, handler: Decoded -> Effect | None)
    LogWatch       one venue's Watched entries (its addresses, its topic0 set, its decoders)
    LogQuery       merge_query(watches): the one eth_getLogs filter of a chain (addresses ∪, topic0 ∪)
    LogReader      block_logs(query, BlockRef): filtered by blockHash (pinned, reorg-safe);
                   range_logs(query, first, last): backfill, the range halved when the node says it is too large
    dirty_sets     (logs, watches) -> DirtySet: per venue, VenueDirty(wallets, market_reasons, rewatch, errors)

A filter is the cross product of its addresses and topic0s, so a log can match the query without being one a
watch declared (another venue's topic at this address): such logs are skipped, never guessed at. A log a watch
declared but cannot decode (a layout the spec does not describe) is not dropped silently: it is recorded in the
venue's ``errors``, and :attr:`VenueDirty.needs_full_read` tells the caller to re-read that venue in full.
One venue's undecodable log never affects another venue's dirty set.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

from eth_hash.auto import keccak

from connectors.errors import DecodeError, InvalidInputError, RequestTooLargeError
from connectors.evm.abi import Fn
from connectors.evm.rpc import hex_to_bytes, hex_to_int
from connectors.types import BlockRef, checksum

__all__ = [
    "ZERO_ADDRESS",
    "Decoded",
    "DirtySet",
    "Effect",
    "Event",
    "Handler",
    "JsonRpc",
    "Log",
    "LogQuery",
    "LogReader",
    "LogWatch",
    "Param",
    "VenueDirty",
    "Watched",
    "dirty_sets",
    "market_reason",
    "merge_query",
    "wallets_of",
    "watched",
]

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"


class JsonRpc(Protocol):
    """What the log reader needs of a client: one JSON-RPC call (``RpcClient`` and its failover variant)."""

    def request(self, method: str, params: Sequence[Any] = ()) -> Any: ...


# --- logs ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Log:
    """One log as ``eth_getLogs`` returns it; ``address`` checksummed, ``topics`` lower-case ``0x`` hex."""

    address: str
    topics: tuple[str, ...]
    data: bytes
    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int
    removed: bool = False

    @property
    def topic0(self) -> str | None:
        return self.topics[0] if self.topics else None

    @classmethod
    def from_rpc(cls, raw: object) -> Log:
        """Parse one log object of a JSON-RPC answer; :class:`DecodeError` naming the bad field otherwise."""
        if not isinstance(raw, dict):
            raise DecodeError(f"eth_getLogs: a log is {type(raw).__name__}, not an object")
        address = raw.get("address")
        if not isinstance(address, str):
            raise DecodeError(f"eth_getLogs: log address {address!r}")
        topics = raw.get("topics")
        if not isinstance(topics, list) or not all(isinstance(t, str) and len(t) == 66 for t in topics):
            raise DecodeError(f"eth_getLogs: log topics {topics!r}")
        block_hash = raw.get("blockHash")
        tx_hash = raw.get("transactionHash")
        if not isinstance(block_hash, str) or len(block_hash) != 66:
            raise DecodeError(f"eth_getLogs: log blockHash {block_hash!r}")
        if not isinstance(tx_hash, str):
            raise DecodeError(f"eth_getLogs: log transactionHash {tx_hash!r}")
        try:
            checked = checksum(address)
        except InvalidInputError as exc:
            raise DecodeError(f"eth_getLogs: log address {address!r}") from exc
        return cls(
            address=checked,
            topics=tuple(t.lower() for t in topics),
            data=hex_to_bytes(raw.get("data"), "log data"),
            block_number=hex_to_int(raw.get("blockNumber"), "log blockNumber"),
            block_hash=block_hash.lower(),
            tx_hash=tx_hash.lower(),
            log_index=hex_to_int(raw.get("logIndex"), "log logIndex"),
            removed=bool(raw.get("removed", False)),
        )


# --- events -------------------------------------------------------------------------------------------------------
_EVENT_SIG = re.compile(r"^\s*([A-Za-z_$][A-Za-z0-9_$]*)\s*\((.*)\)\s*$", re.S)
_STATIC_WORD = re.compile(r"^(address|bool|u?int\d*|bytes([1-9]|[12]\d|3[0-2]))$")


def _split_params(text: str) -> list[str]:
    """Top-level comma split of an event's parameter list (tuple types may nest)."""
    out: list[str] = []
    depth = 0
    start = 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append(text[start:i].strip())
            start = i + 1
    last = text[start:].strip()
    if last or out:
        out.append(last)
    if depth != 0 or any(not p for p in out):
        raise InvalidInputError(f"malformed event parameters: {text!r}")
    return out


@dataclass(frozen=True, slots=True)
class Param:
    """One event parameter: its ABI type, whether it is indexed (a topic), its name."""

    type: str
    indexed: bool
    name: str


class Event:
    """An event described by its Solidity declaration, e.g.
    ``Event("Supply(address indexed reserve, address user, address indexed onBehalfOf, uint256 amount,
    uint16 indexed referralCode)")``.

    ``topic0`` is keccak-256 of the canonical signature (``Supply(address,address,address,uint256,uint16)``).
    Indexed parameters of a static one-word type are decoded from their topics; an indexed parameter of a
    dynamic type (string, bytes, arrays, tuples) is only its keccak hash on chain and is returned as those 32
    bytes. The other parameters are decoded together from ``data`` (static one-word types by slicing words, with
    eth-abi's range checks; anything else by eth-abi, through :class:`~connectors.evm.abi.Fn`). Addresses come
    back checksummed.
    """

    __slots__ = ("_data", "_indexed", "_topics", "canonical", "name", "params", "topic0")

    def __init__(self, declaration: str) -> None:
        match = _EVENT_SIG.match(declaration)
        if match is None:
            raise InvalidInputError(f"not an event declaration: {declaration!r}")
        self.name = match.group(1)
        params: list[Param] = []
        for i, text in enumerate(_split_params(match.group(2))):
            words = text.split()
            if text.startswith("("):  # a tuple type: everything up to its closing parenthesis
                close = text.rfind(")")
                words = [text[: close + 1].replace(" ", ""), *text[close + 1 :].split()]
            typ, rest = words[0], words[1:]
            indexed = bool(rest) and rest[0] == "indexed"
            if indexed:
                rest = rest[1:]
            if len(rest) > 1:
                raise InvalidInputError(f"{self.name}: cannot read parameter {text!r}")
            params.append(Param(typ, indexed, rest[0] if rest else f"arg{i}"))
        if sum(p.indexed for p in params) > 3:
            raise InvalidInputError(f"{self.name}: more than three indexed parameters")
        if len({p.name for p in params}) != len(params):
            raise InvalidInputError(f"{self.name}: parameter names repeat")
        self.params = tuple(params)
        self.canonical = f"{self.name}({','.join(p.type for p in params)})"
        self.topic0 = "0x" + keccak(self.canonical.encode()).hex()
        self._indexed = tuple(p for p in params if p.indexed)
        # Decoding through Fn's word-slicing fast path for static types (eth-abi's range checks), eth-abi otherwise:
        data_types = ",".join(p.type for p in params if not p.indexed)
        self._data = Fn(f"{self.name}()({data_types})") if data_types else None
        self._topics = tuple(Fn(f"{self.name}()({p.type})") if _STATIC_WORD.match(p.type) else None
                             for p in self._indexed)

    def __repr__(self) -> str:
        return f"Event({self.canonical!r})"

    def decode(self, log: Log) -> Decoded:
        """``log``'s arguments by name; :class:`DecodeError` when the log does not have this event's shape."""
        if log.topic0 != self.topic0:
            raise DecodeError(f"{self.name}: log topic0 {log.topic0} is not {self.topic0}")
        if len(log.topics) != 1 + len(self._indexed):
            raise DecodeError(f"{self.name}: {len(log.topics) - 1} indexed topics, the event declares "
                              f"{len(self._indexed)} (log {log.log_index} of block {log.block_number})")
        args: dict[str, Any] = {}
        try:
            for param, fn, topic in zip(self._indexed, self._topics, log.topics[1:], strict=True):
                word = bytes.fromhex(topic[2:])
                args[param.name] = word if fn is None else fn.decode_one(word)
            values = self._data.decode(log.data) if self._data is not None else ()
            if self._data is None and log.data:
                raise DecodeError(f"{len(log.data)} bytes of data, the event declares none")
        except (DecodeError, ValueError) as exc:
            raise DecodeError(f"{self.name}: cannot decode log {log.log_index} of block {log.block_number}: "
                              f"{exc}") from exc
        data_params = (p for p in self.params if not p.indexed)
        for param, value in zip(data_params, values, strict=True):
            args[param.name] = value
        for param in self.params:
            if param.type == "address":
                args[param.name] = checksum(args[param.name])
        return Decoded(self, log, MappingProxyType({p.name: args[p.name] for p in self.params}))


@dataclass(frozen=True, slots=True)
class Decoded:
    """A log decoded by its :class:`Event`."""

    event: Event
    log: Log
    args: Mapping[str, Any]

    def __getitem__(self, name: str) -> Any:
        return self.args[name]


@dataclass(frozen=True, slots=True)
class Effect:
    """What one log does to a venue: the wallets whose position it changes (checksummed, the zero address never
    among them), a market or parameter change (a short reason), or a reason to rebuild the watch."""

    wallets: tuple[str, ...] = ()
    market_reason: str | None = None
    rewatch: str | None = None
    touched: tuple[object, ...] = ()
    """Which cached market state the log changes, in the venue's own terms (e.g. a pool's ticks a swap crossed),
    for a venue that carries its market state from block to block."""


Handler = Callable[[Decoded], "Effect | None"]
"""Turns a decoded log into its :class:`Effect` (None: nothing for this venue)."""


def wallets_of(*names: str) -> Handler:
    """A handler whose effect dirties the addresses in the arguments ``names`` (the zero address left out)."""

    def handler(decoded: Decoded) -> Effect:
        return Effect(wallets=tuple(a for n in names if (a := decoded[n]) != ZERO_ADDRESS))

    return handler


def market_reason(key: str | None = None) -> Handler:
    """A handler whose effect is a market change ``"<Event> <contract>"`` (``"<Event> <contract> <arg key>"``
    when ``key`` names an argument, e.g. the reserve or market id)."""

    def handler(decoded: Decoded) -> Effect:
        reason = f"{decoded.event.name} {decoded.log.address}"
        if key is not None:
            value = decoded[key]
            reason += " " + ("0x" + value.hex() if isinstance(value, bytes) else str(value))
        return Effect(market_reason=reason)

    return handler


@dataclass(frozen=True, slots=True)
class Watched:
    """An event watched at some contracts, and what a log of it does."""

    addresses: frozenset[str]
    """Checksummed contract addresses."""
    event: Event
    handler: Handler


def watched(addresses: Iterable[str], event: Event, handler: Handler) -> Watched:
    """A :class:`Watched` with ``addresses`` checksummed (an :class:`InvalidAddressError` for a bad one)."""
    return Watched(frozenset(checksum(a) for a in addresses), event, handler)


@dataclass(frozen=True)
class LogWatch:
    """One venue's watch: which events at which contracts, decoded how, doing what."""

    venue: str
    entries: tuple[Watched, ...]
    note: str = ""
    """What the watch cannot see (e.g. oracles without events: market state is then re-read every block)."""
    state: Any = field(default=None, compare=False)
    """What its handlers keep between logs, when they keep anything (e.g. who owns a token id), for inspection."""
    _index: Mapping[tuple[str, str], tuple[Watched, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index: dict[tuple[str, str], list[Watched]] = {}
        for entry in self.entries:
            for address in entry.addresses:
                index.setdefault((address, entry.event.topic0), []).append(entry)
        object.__setattr__(self, "_index", MappingProxyType({k: tuple(v) for k, v in index.items()}))

    @property
    def addresses(self) -> frozenset[str]:
        return frozenset(a for a, _ in self._index)

    @property
    def topics0(self) -> frozenset[str]:
        return frozenset(t for _, t in self._index)

    def matching(self, log: Log) -> tuple[Watched, ...]:
        """The entries that declared ``log``'s (address, topic0)."""
        topic0 = log.topic0
        return () if topic0 is None else self._index.get((log.address, topic0), ())


@dataclass(frozen=True)
class LogQuery:
    """One ``eth_getLogs`` filter: any of ``addresses`` (checksummed, sorted) emitting any of ``topics0``."""

    addresses: tuple[str, ...]
    topics0: tuple[str, ...]

    @property
    def empty(self) -> bool:
        return not self.addresses or not self.topics0

    def filter(self, **block: Any) -> dict[str, Any]:
        """The filter object, with ``block`` (``blockHash=…`` or ``fromBlock=…, toBlock=…``)."""
        return {**block, "address": list(self.addresses), "topics": [list(self.topics0)]}


def merge_query(watches: Iterable[LogWatch]) -> LogQuery:
    """The one filter that covers every watch of a chain (the union of their addresses and of their topic0s)."""
    addresses: set[str] = set()
    topics: set[str] = set()
    for watch in watches:
        addresses |= watch.addresses
        topics |= watch.topics0
    return LogQuery(tuple(sorted(addresses, key=str.lower)), tuple(sorted(topics)))


# --- reading ------------------------------------------------------------------------------------------------------
class LogReader:
    """Reads logs for a :class:`LogQuery` through ``rpc``.

    ``splits`` counts the ranges halved because the node refused them as too large.
    """

    def __init__(self, rpc: JsonRpc) -> None:
        self.rpc = rpc
        self.splits = 0

    def block_logs(self, query: LogQuery, block: BlockRef) -> list[Log]:
        """The logs of ``block`` matching ``query``, in log order: one ``eth_getLogs`` filtered by the block's
        hash (EIP-234), so the answer is that very block's or an error, never a replacing block's. A log of
        another block in the answer is a :class:`DecodeError`. No request when the query is empty."""
        if query.empty:
            return []
        raw = self.rpc.request("eth_getLogs", [query.filter(blockHash=block.hash)])
        logs = self._parse(raw)
        wanted = block.hash.lower()
        for log in logs:
            if log.block_hash != wanted or log.block_number != block.number:
                raise DecodeError(f"eth_getLogs for block {block.number} {block.hash} answered a log of block "
                                  f"{log.block_number} {log.block_hash}")
        return sorted(logs, key=lambda lg: lg.log_index)

    def range_logs(self, query: LogQuery, first: int, last: int) -> list[Log]:
        """The logs of blocks ``first``..``last`` (inclusive) matching ``query``, in (block, log) order, for
        backfill. A range the node refuses as too large (:class:`RequestTooLargeError`: "query returned more
        than 10000 results", "log response size exceeded", "block range is too wide", …) is halved and each
        half read in turn; a single block still too large raises. Logs carry their block hash: the caller
        checks them against the blocks it holds (a range read is not pinned to one chain)."""
        if isinstance(first, bool) or isinstance(last, bool) or first < 0 or last < first:
            raise InvalidInputError(f"not a block range: {first!r}..{last!r}")
        if query.empty:
            return []
        out: list[Log] = []
        pending = [(first, last)]
        while pending:
            lo, hi = pending.pop()
            try:
                raw = self.rpc.request("eth_getLogs", [query.filter(fromBlock=hex(lo), toBlock=hex(hi))])
            except RequestTooLargeError:
                if lo == hi:
                    raise
                mid = (lo + hi) // 2
                self.splits += 1
                pending.append((mid + 1, hi))  # popped last: the lower half is read first
                pending.append((lo, mid))
                continue
            logs = self._parse(raw)
            for log in logs:
                if not lo <= log.block_number <= hi:
                    raise DecodeError(f"eth_getLogs for blocks {lo}..{hi} answered a log of block {log.block_number}")
            out.extend(logs)
        out.sort(key=lambda lg: (lg.block_number, lg.log_index))
        return out

    @staticmethod
    def _parse(raw: object) -> list[Log]:
        if not isinstance(raw, list):
            raise DecodeError(f"eth_getLogs: expected a list, got {type(raw).__name__}")
        return [Log.from_rpc(item) for item in raw]


# --- dirty sets ---------------------------------------------------------------------------------------------------
def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


@dataclass(frozen=True)
class VenueDirty:
    """What a block (or a range of blocks) changed at one venue.

    ``wallets``: every address whose position the logs changed (checksummed; the caller keeps the ones it
    tracks). ``market_reasons``: market or parameter changes seen (rates and indexes, configuration, oracle
    sources, prices with events, pool swaps), each once, in order. ``rewatch``: why the watch must be rebuilt
    (a new market, token, price source or position). ``errors``: declared logs that could not be decoded.
    """

    wallets: frozenset[str] = frozenset()
    market_reasons: tuple[str, ...] = ()
    rewatch: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    logs: int = 0
    """Logs of this venue's declared events."""
    touched: tuple[object, ...] = ()
    """The effects' ``touched`` entries, in log order (a venue that carries its market state reads again only
    what they name)."""

    @property
    def market_changed(self) -> bool:
        """A market or parameter event was seen (prices without events are not: re-read the market anyway)."""
        return bool(self.market_reasons)

    @property
    def needs_full_read(self) -> bool:
        """A declared log could not be decoded: the dirty set is not complete, re-read every wallet."""
        return bool(self.errors)

    def __or__(self, other: VenueDirty) -> VenueDirty:
        return VenueDirty(
            self.wallets | other.wallets,
            _unique((*self.market_reasons, *other.market_reasons)),
            _unique((*self.rewatch, *other.rewatch)),
            (*self.errors, *other.errors),
            self.logs + other.logs,
            (*self.touched, *other.touched),
        )


_CLEAN = VenueDirty()


@dataclass(frozen=True)
class DirtySet:
    """Per venue name, what the logs of blocks ``first_block``..``last_block`` changed."""

    first_block: int
    last_block: int
    venues: Mapping[str, VenueDirty]

    def venue(self, name: str) -> VenueDirty:
        """``name``'s entry (an empty one for a venue with nothing to say)."""
        return self.venues.get(name, _CLEAN)

    @property
    def wallets(self) -> frozenset[str]:
        """Every venue's dirty wallets together."""
        out: frozenset[str] = frozenset()
        for v in self.venues.values():
            out |= v.wallets
        return out

    def __or__(self, other: DirtySet) -> DirtySet:
        """The union: what either set changed, over both ranges."""
        names = _unique((*self.venues, *other.venues))
        return DirtySet(min(self.first_block, other.first_block), max(self.last_block, other.last_block),
                        MappingProxyType({n: self.venue(n) | other.venue(n) for n in names}))


def dirty_sets(logs: Iterable[Log], watches: Iterable[LogWatch], *, first_block: int | None = None,
               last_block: int | None = None) -> DirtySet:
    """What ``logs`` change, per venue of ``watches`` (each venue has an entry, empty when nothing changed).

    Logs are taken in (block, log index) order (handlers may keep state, e.g. who owns a token id) and removed
    logs (a reorganised block's) are skipped. The range defaults to the logs' own blocks.
    """
    ordered = sorted((lg for lg in logs if not lg.removed), key=lambda lg: (lg.block_number, lg.log_index))
    watch_list = list(watches)
    wallets: dict[str, set[str]] = {w.venue: set() for w in watch_list}
    reasons: dict[str, dict[str, None]] = {w.venue: {} for w in watch_list}
    rewatch: dict[str, dict[str, None]] = {w.venue: {} for w in watch_list}
    errors: dict[str, list[str]] = {w.venue: [] for w in watch_list}
    counts: dict[str, int] = dict.fromkeys(wallets, 0)
    touched: dict[str, list[object]] = {w.venue: [] for w in watch_list}
    for log in ordered:
        for watch in watch_list:
            for entry in watch.matching(log):
                counts[watch.venue] += 1
                try:
                    effect = entry.handler(entry.event.decode(log))
                except DecodeError as exc:
                    errors[watch.venue].append(str(exc))
                    continue
                if effect is None:
                    continue
                wallets[watch.venue].update(w for w in effect.wallets if w != ZERO_ADDRESS)
                if effect.market_reason is not None:
                    reasons[watch.venue][effect.market_reason] = None
                if effect.rewatch is not None:
                    rewatch[watch.venue][effect.rewatch] = None
                touched[watch.venue] += effect.touched
    numbers = [lg.block_number for lg in ordered]
    first = first_block if first_block is not None else (min(numbers) if numbers else 0)
    last = last_block if last_block is not None else (max(numbers) if numbers else first)
    venues = {
        name: VenueDirty(frozenset(wallets[name]), tuple(reasons[name]), tuple(rewatch[name]), tuple(errors[name]),
                         counts[name], tuple(touched[name]))
        for name in wallets
    }
    return DirtySet(first, last, MappingProxyType(venues))
