"""Block-driven incremental sync (issue 14): work, requests and bytes grow with what changed, not wallets × blocks.

One :class:`BlockSync` per chain keeps, for every tracked wallet and on-chain venue, the wallet's **account state**
(what only the wallet's own actions change: scaled balances, shares, LP liquidity…; the venue's
:class:`~aggregator.venues.plugin.Incremental`). Per block, in order:

1. the block's dirty set: one ``eth_getLogs`` for every venue of the chain (:class:`aggregator.dirty.DirtyReader`)
   names the wallets that acted on each venue;
2. one shared Multicall3 run (:func:`aggregator.venues.incremental.read_block`): every venue's market state
   (prices, indexes, accrued totals, pool prices — read every block, since the feeds and the accrual move without
   a log) and the account states of the dirty wallets only, so its eth_call count does not grow with wallets;
3. every wallet's snapshot is recomputed from its cached account state and the block's market state, exactly as
   the protocol computes it (the venue's ``combine``), then evaluated by the venue's own rule (the ``evaluate``
   the full read uses) — except a wallet whose figures cannot have moved past the tolerance since they were
   stored: nothing it holds changed but what accrues, and that within ``tolerance / 8`` (the venue's
   ``Incremental.steady``); it holds as stored, and is evaluated only if the block writes it for another venue or
   a flagged price; perp venues recompute from their cached accounts at the block's marks (one market request
   per venue), their accounts refreshed by streams and budgeted polls (:class:`~aggregator.venues.live.
   LivePerpVenue`);
4. the (wallet, venue) pairs whose figures moved (:func:`material_change`, or at least every ``max_age_blocks``)
   are written, with the venue's detail, in one transaction (the store keeps only changes); a wallet's other venues
   hold as stored (a perp mark's move writes the wallet's perp row, not its lending rows). Each wallet
   written gets the per-block risk tier (:func:`aggregator.risk.assess_book` ``heavy=False``) over all its venues
   — the ones not written from their stored figures, priced at the block's prices — in one vectorized book over
   all such wallets; its heavy measures (VaR / ES, the P&L grid) run when its positions change and otherwise on
   their own cadence;
5. reconciliation, spread over ``reconcile_every`` blocks so that no block pays for all of it: at each block the
   wallets of one stable slice (``index % reconcile_every == block % reconcile_every``) are re-read with the dirty
   ones — in the same Multicall3 run, no request more — and the health their cached state gives at the block is
   compared with the health of the state just read (:func:`same_state`): every wallet is checked against the chain
   once per ``reconcile_every`` blocks. Each disagreement is a log line and a counter
   (:attr:`BlockSync.mismatches_total`), and the wallet is written from what was read. ``step(block,
   reconcile=True)`` also reads every wallet in full by the independent read path (:meth:`BlockSync.reconcile`).

A block whose logs cannot be read is a full sweep (every wallet re-read): correctness never depends on the logs.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from aggregator.dirty import DirtyReader, chain_watch
from aggregator.pipeline import (
    VENUE_FAULTS,
    ChainContext,
    flag_oracle_faults,
    flagged_assets,
    read_venues,
    risk_rows,
    to_sync_batch,
)
from aggregator.venues import kind_of
from aggregator.venues.incremental import VenueBlock, read_block, refreshed
from aggregator.venues.plugin import MarketUpdate, OnchainVenue
from aggregator.views import Kind, VenueHealth, VenueReading
from connectors.errors import ConnectorError
from connectors.types import BlockRef
from db.errors import SyncWriteError
from db.rows import RiskRow, SnapshotRow
from db.store import CARRIED_FROM_KEY, Store

__all__ = ["BlockReport", "BlockSync", "LiveVenue", "material_change"]

log = logging.getLogger(__name__)

DEFAULT_TOLERANCE = 1e-4
"""Relative move of a figure (collateral, debt, health factor, a position's value) that makes a wallet's row worth
writing: 0.01 %. Interest alone takes hours to move a health factor that much; a Chainlink update (0.5 % deviation
threshold on the majors) moves every holder of the asset past it."""
DEFAULT_MAX_AGE_BLOCKS = 300
"""A wallet's stored figures are rewritten at least this often, changed or not (one reconcile period)."""


class LiveVenue(Protocol):
    """What the block loop needs of a live perp venue (:class:`aggregator.venues.live.LivePerpVenue`)."""

    last_poll: Any

    def track(self, wallets: Sequence[str]) -> list[str]: ...

    def refresh(self, block: BlockRef) -> VenueReading: ...


def _rel(a: float | None, b: float | None, tol: float) -> bool:
    """Whether ``a`` and ``b`` differ by more than ``tol`` relative (None, inf and nan compare by identity)."""
    if a is None or b is None:
        return (a is None) != (b is None)
    if math.isinf(a) or math.isinf(b) or math.isnan(a) or math.isnan(b):
        return not (a == b or (math.isnan(a) and math.isnan(b)))
    scale = max(abs(a), abs(b))
    return scale > 0 and abs(a - b) > tol * scale


def material_change(old: VenueHealth | None, new: VenueHealth, tol: float = DEFAULT_TOLERANCE) -> bool:
    """Whether ``new`` is worth storing over ``old``: a position opened or closed, a flag changed, or a figure moved
    by more than ``tol`` relative."""
    if old is None:
        return True
    if old.flags != new.flags:
        return True
    keys_old = [(p.market_key, p.asset_address, p.side, p.is_collateral) for p in old.positions]
    keys_new = [(p.market_key, p.asset_address, p.side, p.is_collateral) for p in new.positions]
    if keys_old != keys_new:
        return True
    if any(_rel(a, b, tol) for a, b in ((old.collateral_usd, new.collateral_usd), (old.debt_usd, new.debt_usd),
                                        (old.health_factor, new.health_factor),
                                        (old.liquidation_threshold, new.liquidation_threshold))):
        return True
    return any(_rel(p.value_usd, q.value_usd, tol) or _rel(p.amount, q.amount, tol)
               for p, q in zip(old.positions, new.positions, strict=True))


def same_state(a: VenueHealth, b: VenueHealth) -> bool:
    """The reconcile sweep's test: equal positions (raw amounts, collateral flags) and equal health (the raw
    integer where the venue has one, else the number)."""
    pa = sorted((p.market_key, p.asset_address, str(p.side), p.amount_raw, p.is_collateral) for p in a.positions)
    pb = sorted((p.market_key, p.asset_address, str(p.side), p.amount_raw, p.is_collateral) for p in b.positions)
    if pa != pb:
        return False
    if a.health_factor_raw is not None or b.health_factor_raw is not None:
        return a.health_factor_raw == b.health_factor_raw
    return a.health_factor == b.health_factor or (a.health_factor is not None and b.health_factor is not None
                                                  and math.isclose(a.health_factor, b.health_factor, rel_tol=1e-12))


class _Lap:
    """Adds the seconds since its last call to ``phases[name]``."""

    def __init__(self, phases: dict[str, float]) -> None:
        self.phases = phases
        self.t = time.perf_counter()

    def __call__(self, name: str) -> None:
        t = time.perf_counter()
        self.phases[name] = self.phases.get(name, 0.0) + t - self.t
        self.t = t


@dataclass
class _VenueCache:
    market: Any = None
    accounts: list[Any] = field(default_factory=list)
    stored: dict[str, tuple[VenueHealth, int]] = field(default_factory=dict)
    """The figures last written and their block, by wallet."""
    inputs: dict[int, tuple[Any, dict[str, float]]] = field(default_factory=dict)
    """The market state and price book of each block that wrote wallets, ``max_age_blocks`` back: what the
    figures stored at that block were computed from (``Incremental.steady`` compares with them)."""


@dataclass
class BlockReport:
    """What one block cost and produced."""

    block: BlockRef
    dirty_wallets: int = 0
    recomputed_wallets: int = 0
    steady_wallets: int = 0
    """(wallet, venue) pairs left as stored: nothing they hold moved (``Incremental.steady``)."""
    steady: dict[str, frozenset[str]] = field(default_factory=dict)
    """Those wallets, by venue (absent from ``readings``: their stored figures hold)."""
    written_wallets: int = 0
    heavy_wallets: int = 0
    rpc_requests: int = 0
    eth_calls: int = 0
    get_logs: int = 0
    offchain_requests: int = 0
    """Requests to the off-chain venues (a marks request per live venue, its polls)."""
    rows: int = 0
    """Rows the store wrote (it keeps only what changed)."""
    bytes_written: int = 0
    """Their payload, as the store estimates it."""
    rows_by_table: dict[str, int] = field(default_factory=dict)
    """The rows written, by table."""
    bytes_by_table: dict[str, int] = field(default_factory=dict)
    """Their payload, by table."""
    seconds: float = 0.0
    full_sweep: bool = False
    reconciled: bool = False
    """Wallets were checked against the chain at this block (a slice of them, or all with ``reconcile=True``)."""
    reconciled_wallets: int = 0
    reconcile_mismatches: int = 0
    errors: dict[str, str] = field(default_factory=dict)
    sync_run_id: int | None = None
    readings: tuple[VenueReading, ...] = ()
    written: tuple[str, ...] = ()
    """The wallets whose rows this block wrote."""
    written_pairs: dict[str, frozenset[str]] = field(default_factory=dict)
    """Those wallets by venue: only the (wallet, venue) pairs whose figures moved are written (and given the venue's
    detail); a written wallet's other venues hold as stored, and its risk row is computed with their stored figures."""
    changed_by_venue: dict[str, int] = field(default_factory=dict)
    """Wallets whose figures on each venue were worth writing (:meth:`BlockSync._changed`)."""
    phases: dict[str, float] = field(default_factory=dict)
    """Seconds by phase of the block (``logs``, ``read``, ``recompute``, ``perps``, ``select``, ``detail``,
    ``risk``, ``store``): where a block's time goes, for the benchmark and the operator."""


class BlockSync:
    """The incremental sync of one chain (see the module's docstring).

    Parameters
    ----------
    ctx:
        The chain's open I/O handles; its on-chain venues with an ``incremental`` part are recomputed locally,
        the others read in full every block.
    store:
        Where changed wallets are written.
    live:
        The chain's perp venues kept live (marks per block, streamed / polled accounts), by venue name.
    tolerance, max_age_blocks:
        When a wallet's row is written (:func:`material_change`; at least every ``max_age_blocks``).
    reconcile_every:
        Blocks over which every wallet is re-read once and compared with its cached state, a slice per block
        (0: never).
    heavy_every_s:
        Seconds between a wallet's heavy risk measures (also computed when its positions change).
    skip_steady:
        Leave out of a block's recomputation the wallets whose figures cannot have moved past ``tolerance`` since
        they were stored (the venue's ``Incremental.steady`` with a drift of ``tolerance / 8``); False recomputes
        every wallet at every block.
    clock:
        Seconds, monotonic (injected in tests).
    """

    def __init__(
        self,
        ctx: ChainContext,
        store: Store,
        *,
        live: Mapping[str, LiveVenue] | None = None,
        tolerance: float = DEFAULT_TOLERANCE,
        max_age_blocks: int = DEFAULT_MAX_AGE_BLOCKS,
        reconcile_every: int = 300,
        heavy_every_s: float = 60.0,
        skip_steady: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ctx = ctx
        self.store = store
        self.live = dict(live or {})
        self._kinds: dict[str, Kind] = {v.config.name: kind_of(v.config.type) for v in ctx.offchain}
        self.tolerance = tolerance
        self.max_age_blocks = max_age_blocks
        self.reconcile_every = reconcile_every
        self.heavy_every_s = heavy_every_s
        self.skip_steady = skip_steady
        self._clock = clock
        self.wallets: list[str] = []
        self.caches: dict[str, _VenueCache] = {v.config.name: _VenueCache() for v in ctx.onchain}
        self._onchain = frozenset(self.caches)
        """The venues the reconcile sweep compares (the perp venues' accounts are refreshed by streams and polls
        within their rate limits, never all at once)."""
        self.heavy_at: dict[str, float] = {}
        self.heavy_blocks: dict[str, int] = {}
        """The block whose stored risk row holds each wallet's last heavy measures."""
        self._pending: set[str] = set()
        self._summarized: dict[str, tuple[OnchainVenue, Any, list[Any], dict[str, float]]] = {}
        """Venue name → (venue, market state, accounts, price book) of the current block's readings computed without
        the venue's detail (``OnchainVenue.summarize``): what ``evaluate`` needs for the wallets written."""
        self._skipped: dict[str, set[str]] = {}
        """Venue name → the wallets the current block left as stored (steady)."""
        self._inputs: dict[str, tuple[Any, dict[str, float]]] = {}
        """Venue name → the current block's market state and price book."""
        self._touched: dict[str, MarketUpdate] = {}
        """Venue name → what the current block's logs touched, for the venues whose market state carries over."""
        self.reader: DirtyReader | None = None
        self.last_block: BlockRef | None = None
        self.mismatches_total = 0

    # --- tracking ---------------------------------------------------------------------------------------------
    def track(self, wallets: Sequence[str]) -> None:
        """Follow ``wallets`` (checksummed) from the next block on: they are read in full there."""
        known = set(self.wallets)
        new = [w for w in wallets if w not in known]
        self.wallets += new
        self._pending |= set(new)
        for venue in self.live.values():
            venue.track(new)

    def full_sweep(self) -> None:
        """Re-read every wallet at the next block (after a gap too long to backfill, or a reorg)."""
        self._pending = set(self.wallets)
        self.reader = None

    def restart(self) -> None:
        """Start over on another chain (a reset devnet, a new fork, an RPC pointed elsewhere): nothing processed on
        the old one stands — the next block given is the new chain's head, where every wallet is re-read."""
        self.last_block = None
        for cache in self.caches.values():  # figures and market states of the old chain's blocks
            cache.stored.clear()
            cache.inputs.clear()
        self.full_sweep()

    # --- one block --------------------------------------------------------------------------------------------
    def _dirty(self, block: BlockRef, report: BlockReport) -> dict[str, set[str]]:
        """Venue name → the tracked wallets to re-read at ``block``."""
        tracked = set(self.wallets)
        out = {name: set(self._pending) for name in self._onchain}
        if self.reader is None:
            report.full_sweep = True
            return {name: set(self.wallets) for name in self._onchain}
        try:
            dirty = self.reader.block(block)
        except ConnectorError as exc:
            log.warning("logs of block %d not read (%s): every wallet is re-read", block.number, exc)
            report.full_sweep = True
            report.errors["logs"] = str(exc)
            self.reader = None
            return {name: set(self.wallets) for name in self._onchain}
        report.get_logs = 1
        rebuilt = {r.venue for r in self.reader.rebuilds if r.block == block.number}
        for name in self._onchain:
            d = dirty.venues.get(name)
            if name in rebuilt or (d is not None and d.needs_full_read):
                out[name] = set(self.wallets)
                continue
            if d is not None:
                out[name] |= set(d.wallets) & tracked
            # What this block's logs (read by the same watch) touched: the venue carries over the rest of its cached
            # market state where that is of the block just before.
            market = self.caches[name].market
            watch = next((v.watch for v in self.reader.watch.venues if v.name == name), None)
            if market is not None and watch is not None:
                self._touched[name] = MarketUpdate(market, d.touched if d is not None else (), watch.addresses)
        return out

    def step(self, block: BlockRef, *, reconcile: bool | None = None) -> BlockReport:
        """Process ``block`` (the next of the chain, in order). ``reconcile``: None (default) checks the block's
        slice of the wallets against the chain (see the module's docstring); True reads every wallet in full by
        the independent read path and compares (:meth:`reconcile`); False checks nothing."""
        t0 = time.perf_counter()
        stats0 = self.ctx.rpc.stats.copy()
        report = BlockReport(block=block)
        self._touched = {}
        self._summarized = {}
        self._skipped = {}
        self._inputs = {}
        lap = _Lap(report.phases)
        reread = self._dirty(block, report)
        lap("logs")
        self._pending = set()
        report.dirty_wallets = len(set().union(*reread.values())) if reread else 0
        # the rolling reconciliation's slice: wallets re-read anyway (dirty, new) have nothing cached to check
        check = set() if report.full_sweep or reconcile is not None else self._slice(block) - set().union(
            *reread.values())
        read = {name: wallets | check for name, wallets in reread.items()}

        inc_venues = [v for v in self.ctx.onchain if v.incremental is not None]
        full_venues = [v for v in self.ctx.onchain if v.incremental is None]
        plan = {}
        for v in inc_venues:
            assert v.incremental is not None
            cache = self.caches[v.config.name]
            order = [w for w in self.wallets if w in read[v.config.name]]
            plan[v.config.name] = VenueBlock(v.incremental, cache.accounts, order, cache.market,
                                             self._touched.get(v.config.name))
        try:
            results: dict[str, Any] = dict(read_block(self.ctx.multicall, plan, block)) if plan else {}
        except ConnectorError as exc:
            results = dict.fromkeys(plan, exc)
        full_readings = {r.venue: r for r in read_venues(self.ctx, self.wallets, block)
                         if r.venue in {v.config.name for v in full_venues}} if full_venues else {}
        lap("read")

        readings: list[VenueReading] = []
        book: dict[str, float] = {}
        snapshots: list[tuple[OnchainVenue, Any]] = []
        for venue in sorted(self.ctx.onchain, key=lambda v: not v.price_source):
            name = venue.config.name
            if name in full_readings:
                reading = full_readings[name]
            else:
                try:
                    reading, snap = self._recompute(venue, results[name], book, summarize=not report.full_sweep,
                                                    check=check, report=report, acted=reread[name],
                                                    fresh=read[name] if reconcile is not True else None)
                except VENUE_FAULTS as exc:
                    report.errors[name] = str(exc) or type(exc).__name__
                    log.warning("venue %s failed at block %d: %s", name, block.number, report.errors[name])
                    reading = VenueReading(venue=name, kind=venue.connector.capabilities.kind, block=block,
                                           error=report.errors[name])
                else:
                    snapshots.append((venue, snap))
            if venue.price_source and reading.error is None:
                book.update({p.asset_address: p.price_usd for p in reading.prices if not p.flags})
            readings.append(reading)
            report.recomputed_wallets = max(report.recomputed_wallets, len(reading.healths))
        lap("recompute")
        for name, live in self.live.items():
            readings.append(self._live(name, live, block, report))
        lap("perps")
        readings = flag_oracle_faults(readings, self.ctx.last_prices, self.ctx.chain.max_price_jump)
        if self.reader is None and snapshots and len(snapshots) == len(inc_venues):
            self._watch(snapshots, report)
        readings = self._write(block, readings, report, reread, lap)
        report.steady = {name: frozenset(skipped - report.written_pairs.get(name, frozenset()))
                         for name, skipped in self._skipped.items() if skipped}
        report.steady_wallets = sum(len(v) for v in report.steady.values())
        if check:
            report.reconciled = True
            report.reconciled_wallets = len(check)
            self.mismatches_total += report.reconcile_mismatches
        elif report.full_sweep and self.reconcile_every and reconcile is None:
            report.reconciled = True  # every wallet was read from the chain at this block: the cache is its state
            report.reconciled_wallets = len(self.wallets)
        if reconcile:
            self.reconcile(block, readings, report)
        stats = self.ctx.rpc.stats.copy()
        report.rpc_requests = stats.http_requests - stats0.http_requests
        report.eth_calls = stats.calls_by_method.get("eth_call", 0) - stats0.calls_by_method.get("eth_call", 0)
        report.readings = tuple(readings)
        report.seconds = time.perf_counter() - t0
        self.last_block = block
        return report

    def _slice(self, block: BlockRef) -> set[str]:
        """The tracked wallets this block checks against the chain (every wallet once per ``reconcile_every``
        blocks; a wallet keeps its slice while it is tracked)."""
        every = self.reconcile_every
        if not every:
            return set()
        return set(self.wallets[block.number % every :: every])  # the wallets of index ≡ block (mod every)

    def _recompute(self, venue: OnchainVenue, read: Any, book: Mapping[str, float], *,
                   summarize: bool = True, check: set[str] | None = None, report: BlockReport | None = None,
                   acted: set[str] | None = None, fresh: set[str] | None = None) -> tuple[VenueReading, Any]:
        """One incremental venue's reading at the block: the cache refreshed with the re-read wallets' states,
        combined with the block's market state, evaluated by the venue's rule — without the venue's detail where
        it can (``summarize``; not on a full sweep, where every wallet is written), the detail then added for the
        wallets written (:meth:`_detailed`). With ``summarize`` and ``fresh`` (the wallets read at this block), the
        steady wallets are left out (:meth:`_steady`). The wallets of ``check`` (re-read to reconcile) are compared:
        their health from the cached state against the health from the state read (:meth:`_check`); a wallet that
        disagrees joins ``acted`` (it is written)."""
        inc = venue.incremental
        assert inc is not None
        if isinstance(read, ConnectorError):
            raise read
        if isinstance(read.market, ConnectorError):
            raise read.market
        if isinstance(read.accounts, ConnectorError):
            raise read.accounts
        cache = self.caches[venue.config.name]
        cache.market = read.market
        held = [a for a in cache.accounts if inc.wallet_of(a) in check] if check else []
        cache.accounts = refreshed(cache.accounts, read.accounts, inc.wallet_of)
        tracked = set(self.wallets)
        accounts = [a for a in cache.accounts if inc.wallet_of(a) in tracked]
        name = venue.config.name
        prices = dict(book)  # the book as of this venue (later venues add to it)
        self._inputs[name] = (read.market, prices)
        if summarize and venue.summarize is not None:
            skipped = (self._steady(venue, cache, read.market, book, accounts, fresh, read.market.block.number)
                       if self.skip_steady and fresh is not None and inc.steady is not None else set())
            self._skipped[name] = skipped
            self._summarized[name] = (venue, read.market, accounts, prices)
            snap = inc.combine(read.market, [a for a in accounts if inc.wallet_of(a) not in skipped]
                               if skipped else accounts)
            reading = venue.summarize(snap, book)
        else:
            snap = inc.combine(read.market, accounts)
            reading = venue.evaluate(snap, book)
        if check and report is not None:
            wrong = self._check(venue, read.market, held, reading, book, check, report)
            if acted is not None:
                acted |= wrong
        return reading, snap

    def _steady(self, venue: OnchainVenue, cache: _VenueCache, market: Any, book: Mapping[str, float],
                accounts: Sequence[Any], fresh: set[str], number: int) -> set[str]:
        """The wallets whose figures on ``venue`` at block ``number`` cannot have moved past the tolerance since
        they were stored: not read at this block (``fresh``), stored without a flag less than ``max_age_blocks``
        ago, and every account state of theirs steady (``Incremental.steady``) from the market state and prices
        of their stored block to this block's."""
        inc = venue.incremental
        assert inc is not None
        assert inc.steady is not None
        held: dict[str, list[Any]] = {}
        for a in accounts:
            held.setdefault(inc.wallet_of(a), []).append(a)
        tests: dict[int, Callable[[Any], bool]] = {}
        drift = self.tolerance / 8
        out: set[str] = set()
        for wallet, states in held.items():
            last = cache.stored.get(wallet)
            if wallet in fresh or last is None or last[0].flags or number - last[1] >= self.max_age_blocks:
                continue
            test = tests.get(last[1])
            if test is None:
                then = cache.inputs.get(last[1])
                if then is None:
                    continue
                test = tests[last[1]] = inc.steady(then[0], market, then[1], book, drift)
            if all(test(a) for a in states):
                out.add(wallet)
        return out

    def _check(self, venue: OnchainVenue, market: Any, held: Sequence[Any], reading: VenueReading,
               book: Mapping[str, float], check: set[str], report: BlockReport) -> set[str]:
        """The rolling reconciliation of one venue at the block: for every wallet of ``check``, the health its
        cached account state (``held``, before this block's read) gives with the block's market state, against the
        health the state just read gives (``reading``). A disagreement — a position or health that differs, or one
        side without the other — is logged and counted; the wallets that disagree are returned."""
        inc = venue.incremental
        assert inc is not None
        rule = venue.summarize if venue.summarize is not None else venue.evaluate
        cached = {h.wallet: h for h in rule(inc.combine(market, held), book).healths} if held else {}
        fresh = {h.wallet: h for h in reading.healths if h.wallet in check}
        wrong: set[str] = set()
        for wallet in sorted(check):
            mine, chain = cached.get(wallet), fresh.get(wallet)
            if mine is None and chain is None:
                continue
            if mine is not None and chain is not None and same_state(mine, chain):
                continue
            if mine is None and chain is not None and not chain.positions:
                continue  # nothing held, nothing cached: the same
            wrong.add(wallet)
            log.warning("reconcile: %s %s at block %d differs from the chain (cached HF %s, chain HF %s)",
                        venue.config.name, wallet, reading.block.number,
                        None if mine is None else mine.health_factor_raw,
                        None if chain is None else chain.health_factor_raw)
        report.reconcile_mismatches += len(wrong)
        return wrong

    def _detailed(self, readings: Sequence[VenueReading], pairs: Mapping[str, set[str]],
                  report: BlockReport) -> list[VenueReading]:
        """``readings`` with the venue's detail for the wallets written on it (``pairs``, by venue): each
        summarized venue evaluated again for them alone, with the block's market state and prices; the flags the
        summary was given since (:func:`~aggregator.pipeline.flag_oracle_faults`) are kept. A venue whose
        evaluation fails fails the block as in :meth:`_recompute`."""
        out: list[VenueReading] = []
        for r in readings:
            summarized = self._summarized.get(r.venue)
            if summarized is None or r.error is not None:
                out.append(r)
                continue
            venue, market, accounts, book = summarized
            inc = venue.incremental
            assert inc is not None
            wallets = pairs.get(r.venue, set())
            mine = [a for a in accounts if inc.wallet_of(a) in wallets] if wallets else []
            if not mine:
                out.append(r)
                continue
            try:
                full = {h.wallet: h for h in venue.evaluate(inc.combine(market, mine), book).healths}
            except VENUE_FAULTS as exc:
                report.errors[r.venue] = str(exc) or type(exc).__name__
                log.warning("venue %s failed at block %d: %s", r.venue, r.block.number, report.errors[r.venue])
                out.append(VenueReading(venue=r.venue, kind=r.kind, block=r.block, error=report.errors[r.venue]))
                continue
            present = {h.wallet for h in r.healths}
            out.append(dataclasses.replace(r, healths=tuple(
                dataclasses.replace(full[h.wallet], flags=h.flags) if h.wallet in full else h for h in r.healths)
                + tuple(h for w, h in full.items() if w not in present)))  # left steady, written for a flagged price
        return out

    def _live(self, name: str, live: LiveVenue, block: BlockRef, report: BlockReport) -> VenueReading:
        """A live perp venue's reading at ``block``: the block's marks (one request), budgeted polls of the accounts
        most in need, every account recomputed at the marks (stale ones say so, with their age)."""
        live.last_poll = None
        try:
            reading = live.refresh(block)
        except VENUE_FAULTS as exc:
            report.errors[name] = str(exc) or type(exc).__name__
            log.warning("venue %s failed at block %d: %s", name, block.number, report.errors[name])
            reading = VenueReading(venue=name, kind=self._kinds.get(name, "perp"), block=block,
                                   error=report.errors[name])
        polled = live.last_poll
        report.offchain_requests += 1 + (0 if polled is None else len(polled.polled) + len(polled.failed))
        return reading

    def _watch(self, snapshots: Sequence[tuple[OnchainVenue, Any]], report: BlockReport) -> None:
        """Build the chain's log filter from the block's snapshots (after a full sweep)."""
        try:
            self.reader = DirtyReader(self.ctx.rpc, chain_watch(self.ctx.chain.chain_id, snapshots))
        except VENUE_FAULTS as exc:
            log.warning("the chain's log filter could not be built (%s): the next block is a full sweep too", exc)
            report.errors["logs"] = str(exc)

    # --- reconciliation ---------------------------------------------------------------------------------------
    def reconcile(self, block: BlockRef, readings: Sequence[VenueReading], report: BlockReport) -> None:
        """Read every wallet in full at ``block`` by the independent read path (:func:`~aggregator.pipeline.
        read_venues`) and compare with what the cache gave (``readings``, the block's): positions (raw amounts) and
        health (raw) must be equal. A disagreement is logged, counted, and the wallet re-read at the next block."""
        report.reconciled = True
        report.reconciled_wallets = len(self.wallets)
        mine = {r.venue: {h.wallet: h for h in r.healths} for r in readings if r.error is None}
        size = 1_000
        onchain = dataclasses.replace(self.ctx, offchain=[])  # the perp venues' budgets are the live venues' own
        for start in range(0, len(self.wallets), size):
            chunk = self.wallets[start : start + size]
            for full in read_venues(onchain, chunk, block):
                if full.error is not None or full.venue not in mine or full.venue not in self._onchain:
                    continue
                for h in full.healths:
                    got = mine[full.venue].get(h.wallet)
                    if got is not None and same_state(got, h):
                        continue
                    report.reconcile_mismatches += 1
                    log.warning("reconcile: %s %s at block %d differs from the chain (cached HF %s, chain HF %s)",
                                full.venue, h.wallet, block.number,
                                None if got is None else got.health_factor_raw, h.health_factor_raw)
                    self._pending.add(h.wallet)
        self.mismatches_total += report.reconcile_mismatches

    # --- writing ----------------------------------------------------------------------------------------------
    def _changed(self, block: BlockRef, readings: Sequence[VenueReading], reread: Mapping[str, set[str]],
                 report: BlockReport) -> dict[str, set[str]]:
        """Venue name → the wallets whose figures on it are worth writing at ``block``: never stored, re-read (an
        action, a reconcile disagreement), older than ``max_age_blocks``, or moved (:func:`material_change`)."""
        changed: dict[str, set[str]] = {}
        for r in readings:
            if r.error is not None:
                continue
            cache = self.caches.setdefault(r.venue, _VenueCache())
            acted = reread.get(r.venue, set())
            for h in r.healths:
                last = cache.stored.get(h.wallet)
                if (last is None or h.wallet in acted or block.number - last[1] >= self.max_age_blocks
                        or material_change(last[0], h, self.tolerance)):
                    changed.setdefault(r.venue, set()).add(h.wallet)
                    report.changed_by_venue[r.venue] = report.changed_by_venue.get(r.venue, 0) + 1
        return changed

    def _write(self, block: BlockRef, readings: Sequence[VenueReading], report: BlockReport,
               reread: Mapping[str, set[str]], lap: _Lap) -> list[VenueReading]:
        """Write the (wallet, venue) pairs whose figures changed (:meth:`_changed`), and each written wallet's risk
        row over all its venues (the others as stored: they hold within the tolerance); ``readings`` returned with
        the venue's detail for the pairs written (:meth:`_detailed`)."""
        pairs = self._changed(block, readings, reread, report)
        for name, wallets_ in self._flagged_steady(readings).items():
            pairs.setdefault(name, set()).update(wallets_)
        changed = set().union(*pairs.values()) if pairs else set()
        report.written_pairs = {name: frozenset(ws) for name, ws in pairs.items() if ws}
        lap("select")
        readings = self._detailed(readings, pairs, report)
        if any(pairs.get(name, set()) & skipped for name, skipped in self._skipped.items()):
            # the steady wallets written (a flagged price) were not flagged with the others
            readings = flag_oracle_faults(readings, self.ctx.last_prices, self.ctx.chain.max_price_jump)
        lap("detail")
        failed = [r for r in readings if r.error is not None]
        # every tracked wallet of these venues went through this block: the unwritten ones hold through it as stored
        confirmed = tuple(r.venue for r in readings if r.error is None)
        wallets = [w for w in self.wallets if w in changed or failed]
        report.written_wallets = len(wallets)
        report.written = tuple(wallets)
        if not wallets:
            # Nothing moved: what is stored holds through this block; the chain's newest good sync says so.
            if self.ctx.chain_ref_id is not None:
                try:
                    self.store.confirm_block(self.ctx.chain_ref_id, block.number, block.hash,
                                             datetime.fromtimestamp(block.timestamp, UTC), venues=confirmed)
                except Exception as exc:  # the store is down: the next written block says it
                    log.error("block %d not confirmed in the store: %s", block.number, exc)
                    report.errors["store"] = str(exc)
            return readings
        mine = [dataclasses.replace(r, healths=tuple(h for h in r.healths if h.wallet in pairs.get(r.venue, ())))
                if r.error is None else r for r in readings]
        batch = to_sync_batch(block, wallets, mine, datetime.now(UTC))
        book = [*batch.snapshots, *self._held_pairs(block, wallets, readings, pairs)]
        # the block's prices price every wallet's book (the held venues' positions were stored at earlier blocks):
        # its price sources' readings, then its written positions (the perp venues' marks)
        prices = [(p.asset, p.price_usd) for r in readings if r.error is None for p in r.prices
                  if not p.flags and p.price_usd > 0]
        prices += [(p.asset.symbol, p.price_usd) for s in batch.snapshots for p in s.positions
                   if p.price_usd is not None and p.price_usd > 0]
        now = self._clock()
        moved = set().union(*reread.values()) if reread else set()
        heavy = {w for w in wallets if w in moved or now - self.heavy_at.get(w, -math.inf) >= self.heavy_every_s}
        report.heavy_wallets = len(heavy)
        risks: tuple[RiskRow, ...] = ()
        if heavy:
            done = risk_rows([s for s in book if s.wallet in heavy], self.ctx.venue_types, prices_usd=prices)
            risks += tuple(dataclasses.replace(r, document={**r.document, CARRIED_FROM_KEY: block.number})
                           for r in done)
        light = [s for s in book if s.wallet not in heavy]
        if light:
            risks += tuple(self._carry_heavy(r) for r in risk_rows(light, self.ctx.venue_types, heavy=False,
                                                                   prices_usd=prices))
        batch = dataclasses.replace(batch, risks=risks, chain_ref_id=self.ctx.chain_ref_id, confirmed_venues=confirmed)
        lap("risk")
        # the full sync's log lines (aggregator.pipeline.sync_batch): operators and the kill -9 campaign read them
        log.info("writing a batch of %d wallets at block %d (%d snapshots)", len(wallets), block.number,
                 len(batch.snapshots))
        try:
            stats = self.store.write_changes(batch)
            log.info("stored sync run %d (block %d)", stats.run_id, block.number)
            report.sync_run_id = stats.run_id
            report.rows = stats.rows_written
            report.bytes_written = stats.bytes_estimate
            report.rows_by_table = dict(stats.by_table)
            report.bytes_by_table = dict(stats.bytes_by_table)
            lap("store")
        except SyncWriteError as exc:
            log.error("block %d not stored: %s", block.number, exc)
            report.errors["store"] = str(exc)
            self._pending |= set(wallets)  # written again at the next block
            return readings
        for row in risks:
            if row.document.get(CARRIED_FROM_KEY) == block.number:  # stored: later rows may carry from it
                self.heavy_at[row.wallet] = now
                self.heavy_blocks[row.wallet] = block.number
        for r in readings:
            if r.error is not None:
                continue
            cache = self.caches.setdefault(r.venue, _VenueCache())
            written = pairs.get(r.venue, set())
            for h in r.healths:
                if h.wallet in written:
                    cache.stored[h.wallet] = (h, block.number)
            inputs = self._inputs.get(r.venue)
            if inputs is not None:
                cache.inputs[block.number] = inputs
                for old in [b for b in cache.inputs if b <= block.number - self.max_age_blocks]:
                    del cache.inputs[old]
        for p in (p for r in readings for p in r.prices if p.price_usd > 0):
            key = (p.source, p.asset_address.lower())
            if key not in self.ctx.last_prices or self.ctx.last_prices[key][1] <= block.number:
                self.ctx.last_prices[key] = (p.price_usd, block.number)
        return readings

    def _flagged_steady(self, readings: Iterable[VenueReading]) -> dict[str, set[str]]:
        """By venue, the steady wallets (left as stored) holding an asset whose price is flagged at this block: their
        health would gain ``bad_oracle`` (steady wallets are stored without a flag), so they are written."""
        flagged = flagged_assets(readings)
        if not flagged:
            return {}
        out: dict[str, set[str]] = {}
        for name, skipped in self._skipped.items():
            stored = self.caches[name].stored
            out[name] = {w for w in skipped if any(p.asset_address.lower() in flagged for p in stored[w][0].positions)}
        return out

    def _held_pairs(self, block: BlockRef, wallets: Sequence[str], readings: Sequence[VenueReading],
                    pairs: Mapping[str, set[str]]) -> tuple[SnapshotRow, ...]:
        """The written wallets' venues not written at ``block`` (their figures moved less than the tolerance since
        stored), as snapshots at the block built from the figures stored: the rest of each written wallet's book for
        its risk row. Not written: the store holds them, confirmed through the block."""
        held: list[VenueReading] = []
        for r in readings:
            cache = self.caches.get(r.venue)
            if r.error is not None or cache is None:
                continue
            written = pairs.get(r.venue, set())
            healths = tuple(cache.stored[w][0] for w in wallets if w not in written and w in cache.stored)
            if healths:
                held.append(dataclasses.replace(r, healths=healths, prices=(), markets={}))
        return to_sync_batch(block, wallets, held, datetime.now(UTC)).snapshots if held else ()

    def _carry_heavy(self, row: RiskRow) -> RiskRow:
        """A per-block tier row naming the block of the wallet's last heavy measures: they are stored once, in that
        block's row, and the store fills them in when the document is read (:data:`db.store.CARRIED_FROM_KEY`) — a
        copy in every block's row would be most of the bytes written per block."""
        block = self.heavy_blocks.get(row.wallet)
        return dataclasses.replace(row, document={**row.document, CARRIED_FROM_KEY: block})
