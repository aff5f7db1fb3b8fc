"""Per-block dirty sets of a chain's on-chain venues: which wallets a block changed, venue by venue, from one
``eth_getLogs`` for the whole chain.

``chain_watch(chain_id, [(venue, snapshot), …])`` asks each venue's plugin for its
:class:`~connectors.evm.logs.LogWatch` (``VenuePlugin.log_watch``: the venue's events at the contracts its
snapshot names) and merges them into one filter. :class:`DirtyReader` then reads a block's logs by the block's
hash (one request, pinned, reorg-safe) and turns them into a :class:`~connectors.evm.logs.DirtySet`;
:meth:`DirtyReader.range` does the same over a range of blocks for backfill (the range halved when the node
refuses it as too large), block by block in order.

Rewatch: a log can mean the watch itself is out of date — a new reserve (new token contracts), a new price
source, a new fee recipient, a position a tracked wallet received (perhaps in a pool not watched yet). The
venue's ``rewatch`` reasons say so, and the reader rebuilds that venue's watch at once: it re-reads the venue
for the same wallets at that block (``refresh``; by default the venue connector's ``read_accounts``), asks the
plugin for a new watch and merges the chain's filter again (:attr:`DirtyReader.rebuilds` keeps the new
snapshot: it is a full read of that venue's wallets at the block, which also covers what the block's logs did
at contracts the old watch did not listen to yet). In a range, the blocks after the rebuild are read
again with the new filter. A rebuild that fails is kept pending and tried again at the next block; the old
watch stays in use meanwhile, and ``pending`` names the venue. A venue whose plugin declares no events
(``log_watch`` is None) is listed in :attr:`ChainWatch.unwatched`: every wallet of it is re-read every block.

Watches can be stateful (a token id → owner book): a reader must see each block once, in order, after the
snapshots it was built from; after a reorganisation, call :meth:`DirtyReader.rewatch` with a block of the new
chain.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from aggregator.venues import OnchainVenue, plugin_of
from connectors.errors import ConnectorError, DecodeError, InvalidInputError
from connectors.evm.logs import DirtySet, Log, LogQuery, LogReader, LogWatch, dirty_sets, merge_query
from connectors.evm.rpc import RpcClient
from connectors.types import BlockRef

__all__ = ["ChainWatch", "DirtyReader", "Rebuild", "Refresh", "WatchedVenue", "chain_watch", "reread"]

log = logging.getLogger(__name__)

Refresh = Callable[[OnchainVenue, Any, BlockRef], Any]
"""``(venue, old snapshot, block) -> new snapshot``: the venue read again at ``block`` for a rebuilt watch."""


def reread(venue: OnchainVenue, snapshot: Any, block: BlockRef) -> Any:
    """The default :data:`Refresh`: the venue's connector reads the old snapshot's wallets at ``block``."""
    wallets = [account.wallet for account in snapshot.accounts]
    return venue.connector.read_accounts(wallets, block)


@dataclass(frozen=True)
class WatchedVenue:
    """One venue of the chain, the snapshot its watch was built from, and the watch (None: no events declared)."""

    venue: OnchainVenue
    snapshot: Any
    watch: LogWatch | None

    @property
    def name(self) -> str:
        return self.venue.config.name


@dataclass(frozen=True)
class ChainWatch:
    """Every on-chain venue's watch on one chain, and the one filter that covers them."""

    chain_id: int
    venues: tuple[WatchedVenue, ...]
    query: LogQuery

    @property
    def watches(self) -> tuple[LogWatch, ...]:
        return tuple(v.watch for v in self.venues if v.watch is not None)

    @property
    def unwatched(self) -> tuple[str, ...]:
        """Venues that declare no events: re-read every wallet of them every block."""
        return tuple(v.name for v in self.venues if v.watch is None)

    def venue(self, name: str) -> WatchedVenue:
        for v in self.venues:
            if v.name == name:
                return v
        raise KeyError(f"no venue {name!r} in the watch of chain {self.chain_id}")


def _watched(venue: OnchainVenue, snapshot: Any) -> WatchedVenue:
    return WatchedVenue(venue, snapshot, plugin_of(venue.config.type).log_watch(venue, snapshot))


def _merged(chain_id: int, venues: Sequence[WatchedVenue]) -> ChainWatch:
    names = [v.name for v in venues]
    if len(set(names)) != len(names):
        raise InvalidInputError(f"venue names repeat in the watch of chain {chain_id}: {names}")
    return ChainWatch(chain_id, tuple(venues), merge_query(v.watch for v in venues if v.watch is not None))


def chain_watch(chain_id: int, venues: Iterable[tuple[OnchainVenue, Any]]) -> ChainWatch:
    """The watch of ``chain_id``'s on-chain venues, each built by its plugin from its snapshot (a snapshot of
    another chain is an :class:`InvalidInputError`)."""
    out = []
    for venue, snapshot in venues:
        if snapshot.block.chain_id != chain_id:
            raise InvalidInputError(f"venue {venue.config.name!r}: snapshot of chain {snapshot.block.chain_id}, "
                                    f"the watch is of chain {chain_id}")
        out.append(_watched(venue, snapshot))
    return _merged(chain_id, out)


@dataclass(frozen=True)
class Rebuild:
    """A venue's watch rebuilt at ``block`` for ``reasons``, from ``snapshot`` (the venue's wallets read at that
    block: a full read, so it holds what that block's logs did at contracts the old watch did not listen to —
    a new reserve's first supply — and the caller takes every wallet of it as re-read)."""

    block: int
    venue: str
    reasons: tuple[str, ...]
    snapshot: Any = field(default=None, compare=False, repr=False)


class DirtyReader:
    """Reads dirty sets of ``watch``'s chain through ``rpc``, rebuilding a venue's watch when its logs say so.

    Parameters
    ----------
    rpc:
        The chain's client: one ``eth_getLogs`` per block (and, for a rebuild, the venue's read).
    watch:
        From :func:`chain_watch`.
    refresh:
        How a venue is read again for a rebuilt watch (default :func:`reread`).
    """

    def __init__(self, rpc: RpcClient, watch: ChainWatch, *, refresh: Refresh = reread) -> None:
        self.rpc = rpc
        self.logs = LogReader(rpc)
        self._watch = watch
        self._refresh = refresh
        self.rebuilds: list[Rebuild] = []
        """Every rebuild done, in order."""
        self.pending: dict[str, tuple[str, ...]] = {}
        """Venues whose rebuild failed (reasons kept), tried again after the next block."""

    @property
    def watch(self) -> ChainWatch:
        """The current watch (rebuilt venues included)."""
        return self._watch

    def block(self, block: BlockRef) -> DirtySet:
        """The dirty set of ``block``: one ``eth_getLogs`` by its hash; then any rebuild its logs call for."""
        self._check_chain(block)
        logs = self.logs.block_logs(self._watch.query, block)
        dirty = dirty_sets(logs, self._watch.watches, first_block=block.number, last_block=block.number)
        self._rebuild(dirty, block)
        return dirty

    def range(self, first: int, last: int) -> DirtySet:
        """The union of the dirty sets of blocks ``first``..``last`` (see :meth:`range_blocks`)."""
        blocks = self.range_blocks(first, last)
        out = blocks[0]
        for dirty in blocks[1:]:
            out = out | dirty
        return out

    def range_blocks(self, first: int, last: int) -> list[DirtySet]:
        """Each block's dirty set, ``first``..``last`` in order, for backfill: ``eth_getLogs`` over the range
        (halved while the node says it is too large), grouped by block. A rebuild at a block re-reads the rest of
        the range with the new filter. Logs of one block number with two hashes (a reorganisation while reading)
        are a :class:`DecodeError`."""
        if isinstance(first, bool) or isinstance(last, bool) or first < 0 or last < first:
            raise InvalidInputError(f"not a block range: {first!r}..{last!r}")
        out: list[DirtySet] = []
        cursor = first
        while cursor <= last:
            by_block = _by_block(self.logs.range_logs(self._watch.query, cursor, last))
            rebuilt = False
            for number in range(cursor, last + 1):
                logs = by_block.get(number, [])
                dirty = dirty_sets(logs, self._watch.watches, first_block=number, last_block=number)
                out.append(dirty)
                if _rewatch_reasons(dirty) or self.pending:
                    block = self.rpc.get_block(number)
                    if logs and logs[0].block_hash != block.hash.lower():
                        raise DecodeError(f"block {number} is {block.hash} now, its logs were of {logs[0].block_hash}")
                    before = len(self.rebuilds)
                    self._rebuild(dirty, block)
                    if len(self.rebuilds) > before:
                        cursor, rebuilt = number + 1, True
                        break
            if not rebuilt:
                break
        return out

    def rewatch(self, block: BlockRef, venues: Iterable[str] | None = None, reason: str = "requested") -> None:
        """Rebuild the watch of ``venues`` (default all) at ``block`` now (new wallets, a reorganisation)."""
        self._check_chain(block)
        names = [v.name for v in self._watch.venues] if venues is None else list(venues)
        for name in names:
            self._watch.venue(name)  # KeyError for an unknown one
            self.pending[name] = (*self.pending.get(name, ()), reason)
        self._retry(block)

    # --- internals ----------------------------------------------------------------------------------------------
    def _check_chain(self, block: BlockRef) -> None:
        if block.chain_id != self._watch.chain_id:
            raise InvalidInputError(f"block of chain {block.chain_id}, the watch is of chain {self._watch.chain_id}")

    def _rebuild(self, dirty: DirtySet, block: BlockRef) -> None:
        for name, reasons in _rewatch_reasons(dirty).items():
            self.pending[name] = (*self.pending.get(name, ()), *reasons)
        self._retry(block)

    def _retry(self, block: BlockRef) -> None:
        if not self.pending:
            return
        venues = list(self._watch.venues)
        for i, current in enumerate(venues):
            reasons = self.pending.get(current.name)
            if reasons is None:
                continue
            try:
                snapshot = self._refresh(current.venue, current.snapshot, block)
                venues[i] = replace(_watched(current.venue, snapshot), venue=current.venue)
            except (ConnectorError, ValueError, TypeError) as exc:
                log.warning("venue %r: the watch could not be rebuilt at block %d (%s); kept, retried next block",
                            current.name, block.number, exc)
                continue
            del self.pending[current.name]
            self.rebuilds.append(Rebuild(block.number, current.name, reasons, snapshot))
        self._watch = _merged(self._watch.chain_id, venues)


def _rewatch_reasons(dirty: DirtySet) -> dict[str, tuple[str, ...]]:
    return {name: v.rewatch for name, v in dirty.venues.items() if v.rewatch}


def _by_block(logs: Sequence[Log]) -> dict[int, list[Log]]:
    out: dict[int, list[Log]] = {}
    for lg in logs:
        group = out.setdefault(lg.block_number, [])
        if group and group[0].block_hash != lg.block_hash:
            raise DecodeError(f"logs of block {lg.block_number} under two hashes: {group[0].block_hash}, "
                              f"{lg.block_hash} (a reorganisation while reading)")
        group.append(lg)
    return out
