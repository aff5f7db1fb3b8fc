"""The sync pipeline: read → compute → store, for a batch of wallets at one block per chain.

:func:`sync_batch` is the unit of work — a pure function of (wallet batch, block) plus the I/O
handles it is given — so a sweep over many wallets can be sharded by batch. :func:`sync_once` runs
every configured chain over every tracked wallet. One venue failing never blocks the others: its
snapshots are written with ``status="error"`` and the run is ``partial``. A batch is written in one
transaction: whole or not at all.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aggregator.config import ChainConfig, ConfigError, Settings, VenueConfig
from aggregator.venues import OffchainVenue, OnchainVenue, kind_of, open_offchain, open_onchain
from aggregator.views import VenueHealth, VenueReading
from connectors.errors import ConnectorError
from connectors.evm.failover import EndpointStatus, FailoverRpcClient
from connectors.evm.multicall import Multicall
from connectors.evm.program import run_program, run_programs
from connectors.evm.rpc import RpcStats
from connectors.transport import TransportOptions
from connectors.types import BlockRef, checksum
from db.errors import SyncWriteError
from db.rows import (
    OFFCHAIN_CHAIN_ID,
    AssetRow,
    HealthRow,
    MarketRow,
    PositionRow,
    PositionSide,
    PriceRow,
    RiskRow,
    SnapshotRow,
    SnapshotStatus,
    SyncBatch,
    SyncStatus,
    VenueKind,
    VenueRow,
)
from db.store import Store

__all__ = ["BatchResult", "ChainContext", "SyncReport", "Syncer", "sync_batch", "sync_once"]

log = logging.getLogger(__name__)


@dataclass
class ChainContext:
    """Open I/O handles for one chain: its RPC client, a Multicall3 reader, its on-chain venues, and the
    off-chain venues stored against its blocks."""

    chain: ChainConfig
    rpc: FailoverRpcClient
    multicall: Multicall
    onchain: list[OnchainVenue]
    offchain: list[OffchainVenue]
    last_prices: dict[tuple[str, str], tuple[float, int]] = field(default_factory=dict)
    """(source, lower-case asset address) → (price, block) of the newest sync so far, for the jump check (only a
    strictly earlier block's price is compared with: every batch of one block sees the same baseline)."""
    chain_ref_id: int | None = None
    """The chain identity (:mod:`db.chains`) the last sync ran under; a new one resets the jump check's baseline."""

    @classmethod
    def open(cls, settings: Settings, chain: ChainConfig) -> ChainContext:
        urls = chain.resolve_rpc_urls()
        hold = max(chain.breaker_reset_s, 600.0) if len(urls) > 1 else chain.breaker_reset_s
        # With fallbacks, a failing endpoint is held off longer each time (up to 10 min); alone, it is tried again
        # every breaker_reset_s, so a chain comes back within that of its node.
        rpc = FailoverRpcClient(urls, chain_id=chain.chain_id, failure_threshold=chain.breaker_failures,
                                reset_s=chain.breaker_reset_s, max_reset_s=hold,
                                options=TransportOptions(timeout_s=chain.timeout_s, max_retries=chain.max_retries))
        multicall = Multicall(rpc)
        mine = [v for v in settings.venues if v.chain == chain.name]
        return cls(
            chain=chain,
            rpc=rpc,
            multicall=multicall,
            onchain=[open_onchain(v, chain, rpc, multicall) for v in mine if v.onchain],
            offchain=[open_offchain(v) for v in mine if not v.onchain],
        )

    @property
    def venue_types(self) -> dict[str, str]:
        """Venue name → connector type, for the risk engine."""
        configs = [v.config for v in self.onchain] + [v.config for v in self.offchain]
        return {c.name: c.type for c in configs}

    def close(self) -> None:
        for venue in self.offchain:
            venue.close()
        self.rpc.close()


@dataclass(frozen=True)
class BatchResult:
    """What one (wallet batch, block) produced and whether it landed in the store."""

    chain: str
    block: BlockRef | None
    wallets: int
    status: SyncStatus
    readings: tuple[VenueReading, ...]
    sync_run_id: int | None
    error: str | None = None
    reconciled: bool = False
    """Block mode: every wallet was also read in full at this block and compared with its recomputed state."""
    reconcile_mismatches: int = 0
    """Of those, the (wallet, venue) states that disagreed (each logged, and the wallet re-read)."""


@dataclass
class SyncReport:
    """All batches of one :func:`sync_once`."""

    batches: list[BatchResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(b.status is SyncStatus.OK for b in self.batches)

    def healths(self) -> Iterator[VenueHealth]:
        for b in self.batches:
            for r in b.readings:
                yield from r.healths


def _now() -> datetime:
    return datetime.now(UTC)


def _ts(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


VENUE_FAULTS = (ConnectorError, ArithmeticError)
"""What a venue's read and evaluation may raise on bad data: the connector error tree (transport, revert, decode,
oracle) and arithmetic on numbers out of range (an overflow, a division by zero, an invalid decimal). The venue is
marked failed for this sync, the other venues go on. Anything else (a ``TypeError``, a ``KeyError``…) is a bug
and propagates: counting it as the venue's fault would hide it."""


def _failed(cfg: VenueConfig, block: BlockRef, exc: Exception) -> VenueReading:
    log.warning("venue %s failed at block %d: %s", cfg.name, block.number, exc)
    return VenueReading(venue=cfg.name, kind=kind_of(cfg.type), block=block, error=str(exc) or type(exc).__name__)


def _price_book(ctx: ChainContext, venue: OnchainVenue, block: BlockRef) -> dict[str, float]:
    """A price source's valid prices at ``block`` alone (its market reads, no wallet): what the venues valued
    with its oracle need when its own read failed in a wallet round. Empty if that fails too."""
    try:
        reading = venue.evaluate(run_program(ctx.multicall, venue.connector.program([], block), block), {})
    except VENUE_FAULTS as exc:
        log.warning("price source %s unavailable at block %d: %s", venue.config.name, block.number, exc)
        return {}
    return {p.asset_address: p.price_usd for p in reading.prices if not p.flags}


def read_venues(ctx: ChainContext, wallets: Sequence[str], block: BlockRef) -> list[VenueReading]:
    """Read and evaluate every venue of the chain for ``wallets`` at ``block``.

    The on-chain venues' read programs run together (shared Multicall3 round trips, one pinned block);
    the off-chain venues are read after them. A failing venue yields an error reading; the others go on.
    """
    readings: dict[str, VenueReading] = {}
    programs = {}
    for venue in ctx.onchain:
        try:
            programs[venue.config.name] = venue.connector.program(wallets, block)
        except ConnectorError as exc:
            readings[venue.config.name] = _failed(venue.config, block, exc)
    try:
        results = run_programs(ctx.multicall, programs, block)
    except ConnectorError as exc:  # the node itself failed: every on-chain venue of the chain is stale
        results = dict.fromkeys(programs, exc)
    book: dict[str, float] = {}
    # Price sources first: their oracle prices (same block) value the other venues' positions.
    for venue in sorted(ctx.onchain, key=lambda v: not v.price_source):
        name = venue.config.name
        if name in readings:
            continue
        result = results[name]
        try:
            if isinstance(result, ConnectorError):
                raise result
            readings[name] = venue.evaluate(result, book)
        except VENUE_FAULTS as exc:
            readings[name] = _failed(venue.config, block, exc)
            if venue.price_source:  # the venues valued with its prices need them even when its wallets failed
                book.update(_price_book(ctx, venue, block))
            continue
        if venue.price_source:
            book.update({p.asset_address: p.price_usd for p in readings[name].prices if not p.flags})
    for off in ctx.offchain:
        try:
            readings[off.config.name] = off.evaluate(off.read(wallets), block)
        except VENUE_FAULTS as exc:
            readings[off.config.name] = _failed(off.config, block, exc)
    order = [v.config.name for v in ctx.onchain] + [v.config.name for v in ctx.offchain]
    return [readings[name] for name in order]


def _asset(chain_id: int, address: str, symbol: str, decimals: int) -> AssetRow:
    return AssetRow(chain_id=chain_id, address=address, symbol=symbol, decimals=decimals)


def _snapshot(
    block: BlockRef,
    wallet: str,
    venue: str,
    taken_at: datetime,
    positions: tuple[PositionRow, ...] = (),
    health: HealthRow | None = None,
    error: str | None = None,
    venue_time_ms: int | None = None,
) -> SnapshotRow:
    return SnapshotRow(
        wallet=wallet, venue=venue, chain_id=block.chain_id, block_number=block.number,
        block_hash=block.hash, block_timestamp=_ts(block.timestamp), taken_at=taken_at,
        status=SnapshotStatus.OK if error is None else SnapshotStatus.ERROR, error=error,
        positions=positions, health=health,
        venue_timestamp=datetime.fromtimestamp(venue_time_ms / 1000, UTC) if venue_time_ms is not None else None,
    )


def to_sync_batch(
    block: BlockRef, wallets: Sequence[str], readings: Sequence[VenueReading], started_at: datetime
) -> SyncBatch:
    """Turn the readings of one batch into the rows of one store transaction."""
    chain_id = block.chain_id
    now = _now()
    snapshots: list[SnapshotRow] = []
    prices: list[PriceRow] = []
    markets: list[MarketRow] = []
    for reading in readings:
        if reading.error is not None:
            snapshots += [_snapshot(block, w, reading.venue, now, error=reading.error) for w in wallets]
            continue
        assets = {p.asset_address: _asset(chain_id, p.asset_address, p.asset, p.decimals) for p in reading.prices}
        for key, params in reading.markets.items():
            markets.append(MarketRow(venue=reading.venue, key=key, name=str(params.get("symbol", key)),
                                     asset=assets.get(key), params=params))
        prices += [
            PriceRow(
                asset=assets[p.asset_address], block_number=block.number, source=p.source,
                price_raw=p.price_raw, decimals=p.price_decimals, price_usd=p.price_usd, observed_at=now,
                source_address=p.source_address,
                updated_at=_ts(p.updated_at) if p.updated_at is not None else None,
                age_s=p.age_s, flags=p.flags,
            )
            for p in reading.prices
        ]
        for h in reading.healths:
            positions = tuple(
                PositionRow(
                    asset=_asset(chain_id if pos.onchain else OFFCHAIN_CHAIN_ID, pos.asset_address, pos.asset,
                                 pos.decimals),
                    side=PositionSide(pos.side), amount_raw=pos.amount_raw, amount=pos.amount,
                    price_usd=pos.price_usd, value_usd=pos.value_usd, is_collateral=pos.is_collateral,
                    market_key=pos.market_key, extra=pos.extra, state=pos.state,
                )
                for pos in h.positions
            )
            health = HealthRow(
                computed_at=now, collateral_usd=h.collateral_usd, debt_usd=h.debt_usd,
                health_factor=h.health_factor, health_factor_raw=h.health_factor_raw,
                onchain_health_factor_raw=h.onchain_health_factor_raw,
                liquidation_threshold=h.liquidation_threshold, matches_onchain=h.matches_onchain,
                flags=h.flags, extra=h.extra,
            )
            snapshots.append(_snapshot(block, h.wallet, h.venue, now, positions, health,
                                       venue_time_ms=reading.venue_time_ms))
    failed = sum(r.error is not None for r in readings)
    status = SyncStatus.OK if failed == 0 else SyncStatus.FAILED if failed == len(readings) else SyncStatus.PARTIAL
    errors = "; ".join(f"{r.venue}: {r.error}" for r in readings if r.error)
    return SyncBatch(
        chain_id=chain_id, started_at=started_at, status=status, block_number=block.number,
        block_hash=block.hash, block_timestamp=_ts(block.timestamp), finished_at=_now(),
        error=errors or None, snapshots=tuple(snapshots), prices=tuple(prices), markets=tuple(markets),
    )


def risk_rows(
    snapshots: Sequence[SnapshotRow], venue_types: Mapping[str, str], *, heavy: bool = True,
    prices_usd: Sequence[tuple[str, float]] = (),
) -> tuple[RiskRow, ...]:
    """The netting engine over the batch's wallets (one vectorized book), as rows stored with the sync
    (``heavy=False``: the per-block tier, :func:`aggregator.risk.assess_book`; ``prices_usd``: the block's prices,
    first, :func:`aggregator.risk.build_book`).

    The engine's failure never costs the sync: it is logged and the batch is stored without risk rows.
    """
    from aggregator.risk import assess_book, build_book, risk_documents

    by_wallet: dict[str, list[SnapshotRow]] = {}
    for snap in snapshots:
        if snap.health is not None:
            by_wallet.setdefault(snap.wallet, []).append(snap)
    if not by_wallet:
        return ()
    try:
        inputs = build_book(by_wallet, venue_types, prices_usd)
        result, scenarios, extras = assess_book(inputs, heavy=heavy)
        now = _now()
        rows = [
            RiskRow(wallet=doc["wallet"], block_number=inputs.block or 0, computed_at=now,
                    unified_health=doc["unified_health"], equity_usd=doc["equity_usd"],
                    margin_usd=doc["portfolio_margin_usd"], netting_benefit_usd=doc["netting_benefit_usd"],
                    document=doc)
            for doc in risk_documents(inputs, result, scenarios, extras)
        ]
        return tuple(rows)
    except (ValueError, KeyError, ArithmeticError, OSError) as exc:
        log.error("risk engine failed for %d wallets: %s", len(by_wallet), exc)
        return ()


REORG_REREADS = 3
"""How many times a batch is read again when the chain reorganises under its reads."""


def read_consistent(ctx: ChainContext, wallets: Sequence[str], block: BlockRef) -> tuple[BlockRef, list[VenueReading]]:
    """Read every venue at ``block``; if the block at that height changed while they were read (a reorg), read
    them again at the height's new block, up to :data:`REORG_REREADS` times.

    On-chain reads name the block's hash (EIP-1898), so a reorganisation during the reads makes the later ones
    fail instead of answering from the other chain; the check afterwards catches one that came after the last
    read. Either way a snapshot holds one block's state. If the chain keeps changing, the on-chain venues are
    marked failed for this sync (with the reason) rather than stored from a block that is no longer canonical.
    """
    for attempt in range(REORG_REREADS + 1):
        readings = read_venues(ctx, wallets, block)
        try:
            now = ctx.rpc.get_block(block.number)
        except ConnectorError as exc:  # cannot confirm: every on-chain read was pinned by hash, keep them
            log.warning("block %d could not be re-read to confirm it: %s", block.number, exc)
            return block, readings
        if now.hash == block.hash:
            return block, readings
        log.warning("chain %s reorganised at block %d (%s → %s) during the reads; reading again (%d/%d)",
                    ctx.chain.name, block.number, block.hash[:10], now.hash[:10], attempt + 1, REORG_REREADS)
        block = now
    onchain = {v.config.name for v in ctx.onchain}
    error = f"the chain reorganised at block {block.number} during every one of {REORG_REREADS + 1} reads"
    return block, [r if r.venue not in onchain else
                   VenueReading(venue=r.venue, kind=r.kind, block=block, error=error) for r in readings]


def flagged_assets(readings: Iterable[VenueReading]) -> set[str]:
    """The assets (lower-case addresses) whose price is flagged in ``readings`` (stale, zero, negative, old round,
    jump): every health holding one is ``bad_oracle``."""
    return {p.asset_address.lower() for r in readings for p in r.prices if p.flags}


def flag_oracle_faults(
    readings: Sequence[VenueReading], last_prices: Mapping[tuple[str, str], tuple[float, int]], max_jump: float | None
) -> list[VenueReading]:
    """Flag prices that jumped more than ``max_jump`` (a fraction) from the previous sync's, and mark every
    health with a position in an asset whose price is flagged (stale, zero, negative, old round, jump) as
    ``bad_oracle`` — on every venue of the batch, since a venue may be valued with another's oracle."""
    out: list[VenueReading] = []
    for r in readings:
        prices = []
        for p in r.prices:
            seen = last_prices.get((p.source, p.asset_address.lower()))
            before = seen[0] if seen is not None and seen[1] < r.block.number else None  # an earlier block's only
            jumped = (max_jump is not None and before is not None and before > 0 and p.price_usd > 0
                      and abs(p.price_usd / before - 1) > max_jump)
            if jumped and "jump" not in p.flags:
                log.warning("%s %s jumped from %.6g to %.6g (more than %.0f%%)", p.source, p.asset, before,
                            p.price_usd, 100 * (max_jump or 0))
                p = dataclasses.replace(p, flags=(*p.flags, "jump"))
            prices.append(p)
        out.append(dataclasses.replace(r, prices=tuple(prices)))
    flagged = flagged_assets(out)
    if not flagged:
        return out
    return [dataclasses.replace(r, healths=tuple(
        h if "bad_oracle" in h.flags or not any(pos.asset_address.lower() in flagged for pos in h.positions)
        else dataclasses.replace(h, flags=(*h.flags, "bad_oracle"))
        for h in r.healths)) for r in out]


def sync_batch(ctx: ChainContext, store: Store, wallets: Sequence[str], block: BlockRef) -> BatchResult:
    """Sync one batch of wallets at one block: read every venue (again, if the chain reorganises under the reads),
    compute, write one transaction (under the chain identity of ``ctx.chain_ref_id``)."""
    started = _now()
    block, readings = read_consistent(ctx, wallets, block)
    readings = flag_oracle_faults(readings, ctx.last_prices, ctx.chain.max_price_jump)
    batch = to_sync_batch(block, wallets, readings, started)
    batch = dataclasses.replace(batch, risks=risk_rows(batch.snapshots, ctx.venue_types), chain_ref_id=ctx.chain_ref_id)
    log.info("writing a batch of %d wallets at block %d (%d snapshots)", len(wallets), block.number,
             len(batch.snapshots))
    try:
        run_id = store.write_sync(batch)
    except SyncWriteError as exc:
        log.error("batch of %d wallets at block %d not stored: %s", len(wallets), block.number, exc)
        return BatchResult(chain=ctx.chain.name, block=block, wallets=len(wallets), status=SyncStatus.FAILED,
                           readings=tuple(readings), sync_run_id=exc.failed_run_id, error=str(exc))
    log.info("stored sync run %d (block %d)", run_id, block.number)
    for p in (p for r in readings for p in r.prices if p.price_usd > 0):
        key = (p.source, p.asset_address.lower())
        if key not in ctx.last_prices or ctx.last_prices[key][1] <= block.number:  # never move the baseline back
            ctx.last_prices[key] = (p.price_usd, block.number)
    return BatchResult(chain=ctx.chain.name, block=block, wallets=len(wallets), status=batch.status,
                       readings=tuple(readings), sync_run_id=run_id, error=batch.error)


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def register_venues(store: Store, settings: Settings) -> None:
    """Make sure every configured venue exists in the store."""
    rows = [
        VenueRow(name=v.name, kind=VenueKind(kind_of(v.type)),
                 chain_id=settings.chain(v.chain).chain_id if v.onchain else None,
                 config=v.model_dump(mode="json", exclude={"accounts"}))
        for v in settings.venues
    ]
    if rows:
        store.upsert_venues(rows)


class Syncer:
    """Runs syncs for one configuration, keeping each chain's RPC client and connectors open between runs
    (so contract discovery and HTTP connections are reused by the scheduler). Close it when done."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self._contexts: dict[str, ChainContext] = {}
        register_venues(store, settings)

    def close(self) -> None:
        for ctx in self._contexts.values():
            ctx.close()
        self._contexts.clear()

    def __enter__(self) -> Syncer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _record_failure(self, chain: ChainConfig, error: str, started: datetime, wallets: int) -> int | None:
        """Store the failed attempt, so every view can say that syncing fails, since when and why."""
        ctx = self._contexts.get(chain.name)
        try:
            return self.store.record_failed_sync(chain.chain_id, error, started_at=started, wallets=wallets,
                                                 chain_ref_id=ctx.chain_ref_id if ctx is not None else None)
        except Exception as store_exc:  # the store itself is down: the log is all that is left
            log.error("could not record the failed sync of chain %s: %s", chain.name, store_exc)
            return None

    def rpc_stats(self) -> dict[str, RpcStats]:
        """Each open chain's RPC counters (cumulative since its client opened)."""
        return {name: ctx.rpc.stats.copy() for name, ctx in list(self._contexts.items())}

    def rpc_endpoints(self) -> dict[str, list[EndpointStatus]]:
        """Each open chain's endpoints and their circuit breakers."""
        return {name: ctx.rpc.endpoints() for name, ctx in list(self._contexts.items())}

    def _context(self, chain: ChainConfig) -> ChainContext:
        if chain.name not in self._contexts:
            self._contexts[chain.name] = ChainContext.open(self.settings, chain)
        return self._contexts[chain.name]

    def _identify(self, ctx: ChainContext, *, also: Sequence[int] = (),
                  seen: dict[int, BlockRef] | None = None) -> BlockRef:
        """The node's head, after checking which chain answers (:func:`aggregator.chainid.identify`; ``also`` and
        ``seen`` are its own: more blocks read in the same request, and every block it read)."""
        from aggregator.chainid import identify

        chain, head = identify(self.store, ctx.rpc, ctx.chain.name, ctx.chain.chain_id,
                               max_reorg_depth=ctx.chain.max_reorg_depth, also=also, seen=seen)
        if chain.id != ctx.chain_ref_id:
            # The jump check compares with the newest stored prices of this chain, so it survives a restart and
            # never compares two chains' prices.
            ctx.last_prices = {(p.source, p.asset.address.lower()): (p.price_usd, p.block_number)
                               for p in self.store.latest_prices(ctx.chain.chain_id) if p.price_usd > 0}
            ctx.chain_ref_id = chain.id
        return head

    def run(
        self,
        wallets: Sequence[str] | None = None,
        block_number: int | None = None,
        on_batch: Callable[[BatchResult], None] | None = None,
    ) -> SyncReport:
        """Sync every configured chain for ``wallets`` (default: every active tracked wallet).

        Each chain is pinned to one block (its latest, or ``block_number``) for all its batches. A chain
        that cannot be reached yields a failed batch result (nothing written for it) and the other
        chains proceed.
        """
        t0 = time.perf_counter()
        if wallets is None:
            wallets = [w.address for w in self.store.list_wallets()]
        else:
            wallets = [checksum(w) for w in wallets]
        report = SyncReport()

        def emit(result: BatchResult) -> None:
            report.batches.append(result)
            if on_batch:
                on_batch(result)

        for chain in self.settings.chains:
            if not any(v.chain == chain.name for v in self.settings.venues):
                continue
            started = _now()
            try:
                ctx = self._context(chain)
                block = self._identify(ctx)
                if block_number is not None:
                    block = ctx.rpc.get_block(block_number)
            except (ConnectorError, ConfigError) as exc:  # this chain only: the others are synced
                error = f"chain {chain.name} unavailable: {exc}"
                log.error("%s", error)
                run_id = self._record_failure(chain, error, started, len(wallets))
                emit(BatchResult(chain=chain.name, block=None, wallets=len(wallets), status=SyncStatus.FAILED,
                                 readings=(), sync_run_id=run_id, error=error))
                continue
            for chunk in _chunks(wallets, self.settings.wallet_batch_size):
                result = sync_batch(ctx, self.store, chunk, block)
                block = result.block or block  # a batch re-read after a reorg moves the chain's block for the rest
                emit(result)
        report.seconds = time.perf_counter() - t0
        return report


def sync_once(
    settings: Settings,
    store: Store,
    wallets: Sequence[str] | None = None,
    block_number: int | None = None,
    on_batch: Callable[[BatchResult], None] | None = None,
) -> SyncReport:
    """One :meth:`Syncer.run` with connections opened and closed around it."""
    with Syncer(settings, store) as syncer:
        return syncer.run(wallets, block_number, on_batch)
