"""The store: wallets, reference data, one transaction per sync run, and the queries the service needs.

Writes go through SQLAlchemy Core (bulk ``insert()`` with lists of dicts), never per-row ORM objects; on
PostgreSQL, large position sets go through binary ``COPY`` in the same transaction.

Addresses. Wallet and asset addresses are stored EIP-55 checksummed. The store checksums whatever it is given
(so ``0xabc…`` and ``0xABC…`` are the same wallet) and compares checksummed forms, which makes matching
case-insensitive while still using the plain unique index. Market keys that are addresses are checksummed too.

Idempotence of :meth:`Store.write_sync`. A snapshot is unique per ``(wallet, venue, block_number)``. Writing
one that is already stored is not an error: it is skipped (``INSERT … ON CONFLICT DO NOTHING`` on both
backends), together with its positions and health, and the first write wins. The batch's sync run and its
prices are still recorded (they are observations of that run). Duplicates inside one batch are skipped the
same way (first wins).

Whole or nothing. :meth:`Store.write_sync` writes the sync run, snapshots, positions, health results and
prices in one transaction; any failure rolls all of it back. Then, unless ``record_failure=False``, a
``failed`` sync run carrying the error text is written in a separate transaction, and
:class:`~db.errors.SyncWriteError` is raised with the original exception as its cause.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from types import TracebackType
from typing import Any, Self, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine

from db import jsondelta
from db.addresses import HEX40, canonical_address
from db.apikeys import ApiKeyStore
from db.automation import AutomationStore
from db.chains import ChainStore, current_chain_ids, current_chain_ref, note_stored_block
from db.changes import WRITE_CACHE_SIZE, ChangePolicy, CompactStats, RetentionPolicy, WriteStats, is_per_block_key
from db.engine import JsonText, make_engine, read_transaction, safe_url, upsert_insert, write_transaction
from db.errors import SyncWriteError, UnknownReferenceError
from db.migrate import upgrade
from db.models import Base
from db.rows import (
    AssetRow,
    HealthPoint,
    HealthRow,
    LatestVenueHealth,
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
    WalletRow,
)

__all__ = ["CARRIED_FROM_KEY", "COPY_THRESHOLD", "WRITE_CACHE_SIZE", "Store", "canonical_address"]

log = logging.getLogger(__name__)

COPY_THRESHOLD = 2_000
"""Position count from which PostgreSQL writes positions with binary COPY instead of a Core insert."""

_IN_CHUNK = 500  # values per IN (...) list
_ERROR_TEXT_MAX = 4_000

_T = Base.metadata.tables
WALLETS = _T["wallets"]
VENUES = _T["venues"]
ASSETS = _T["assets"]
MARKETS = _T["markets"]
SYNC_RUNS = _T["sync_runs"]
SNAPSHOTS = _T["position_snapshots"]
POSITIONS = _T["positions"]
PRICES = _T["prices"]
HEALTH = _T["health_results"]
RISK = _T["risk_results"]
CHAINS = _T["chains"]
CONFIRMATIONS = _T["venue_confirmations"]

_POSITION_COPY_COLUMNS = (
    ("snapshot_id", "int8"),
    ("market_id", "int8"),
    ("asset_id", "int8"),
    ("side", "varchar"),
    ("amount_raw", "numeric"),
    ("amount", "float8"),
    ("price_usd", "float8"),
    ("value_usd", "float8"),
    ("is_collateral", "bool"),
    ("extra", "jsonb"),
    ("state", "text"),
)

_K = TypeVar("_K")


@lru_cache(maxsize=65_536)
def _canonical_key(key: str) -> str:
    return canonical_address(key) if HEX40.match(key) else key


def _chunks(items: Sequence[_K], size: int = _IN_CHUNK) -> Iterator[Sequence[_K]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class _Refs:
    """Ids resolved for one batch."""

    venues: dict[str, int]
    wallets: dict[str, int]
    assets: dict[tuple[int, str], int]
    markets: dict[tuple[int, str], int]


class Store(AutomationStore, ApiKeyStore, ChainStore):
    """The xmargin database. Open with :meth:`open`; close with :meth:`close` (or use it as a context manager).

    Thread-safe in the way an SQLAlchemy ``Engine`` is: every method takes its own connection from the pool.
    """

    def __init__(self, engine: Engine, *, copy_threshold: int | None = COPY_THRESHOLD,
                 change_policy: ChangePolicy | None = None, change_only: bool = True,
                 write_cache_size: int = WRITE_CACHE_SIZE) -> None:
        """Wrap an engine made by :func:`db.engine.make_engine` (which sets SQLite up); not migrated here,
        see :meth:`open`.

        ``copy_threshold``: position count from which PostgreSQL uses binary COPY; ``None`` never does.
        ``change_policy``: when a value counts as changed (:class:`db.changes.ChangePolicy`, its defaults when
        ``None``). ``write_cache_size``: how many (wallet, venue) current versions :meth:`write_changes` keeps in
        memory between writes (0: none; see :class:`_Cached`).
        """
        self._engine = engine
        self.write_cache_size = write_cache_size
        self._write_cache: dict[tuple[int, int, int], _Cached] = {}
        self._purges_seen: dict[int, int] = {}  # chain identity -> its purge count at this store's last write
        self._cache_lock = threading.Lock()  # writes from several threads share what is kept
        self.copy_threshold = copy_threshold
        self.change_policy = change_policy if change_policy is not None else ChangePolicy()
        self.change_only = change_only
        """``False``: every snapshot, health and risk result is written at every block (the layout before the
        change-only store; for comparison in ``benchmarks/bench_store.py``). A block synced twice still adds
        nothing."""

    @classmethod
    def open(
        cls,
        url: str | URL | None = None,
        *,
        migrate: bool = True,
        copy_threshold: int | None = COPY_THRESHOLD,
        change_policy: ChangePolicy | None = None,
        change_only: bool = True,
        write_cache_size: int = WRITE_CACHE_SIZE,
        **engine_kwargs: Any,
    ) -> Store:
        """Connect to ``url`` (else ``$XMARGIN_DB_URL``, else ``$XMARGIN_HOME/xmargin.db``) and migrate to head.

        Migrating is idempotent and safe when several processes open the store at once (see
        :mod:`db.migrate`). ``engine_kwargs`` go to ``sqlalchemy.create_engine``.
        """
        engine = make_engine(url, **engine_kwargs)
        try:
            if migrate:
                upgrade(engine)
        except BaseException:
            engine.dispose()
            raise
        log.info("store opened at %s", safe_url(engine))
        return cls(engine, copy_threshold=copy_threshold, change_policy=change_policy, change_only=change_only,
                   write_cache_size=write_cache_size)

    @property
    def engine(self) -> Engine:
        """The underlying engine."""
        return self._engine

    @property
    def url(self) -> str:
        """The database URL with any password masked."""
        return safe_url(self._engine)

    def close(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    # -- wallets -------------------------------------------------------------------------------------

    def add_wallets(self, items: Sequence[tuple[str, str | None]]) -> int:
        """Add ``(address, label)`` pairs, or reactivate and relabel the ones already known.

        A ``None`` label leaves an existing label as it is. Addresses match case-insensitively; the last of
        several spellings of one address in ``items`` wins. Returns how many wallets were added or changed
        (0 when the call changed nothing: calling twice is harmless).
        """
        wanted: dict[str, str | None] = {}
        for address, label in items:
            wanted[canonical_address(address)] = label
        if not wanted:
            return 0
        now = _now()
        with write_transaction(self._engine) as conn:
            existing: dict[str, tuple[int, str | None, bool]] = {}
            for chunk in _chunks(list(wanted)):
                rows = conn.execute(
                    sa.select(WALLETS.c.id, WALLETS.c.address, WALLETS.c.label, WALLETS.c.active).where(
                        WALLETS.c.address.in_(chunk)
                    )
                )
                for wid, address, label, active in rows:
                    existing[address] = (wid, label, active)
            new = [
                {"address": a, "label": label, "created_at": now, "active": True}
                for a, label in wanted.items()
                if a not in existing
            ]
            changed = []
            for address, (wid, old_label, active) in existing.items():
                label = wanted[address]
                new_label = old_label if label is None else label
                if not active or new_label != old_label:
                    changed.append({"_id": wid, "label": new_label, "active": True})
            if new:  # ON CONFLICT: a concurrent add of the same address is not an error
                conn.execute(upsert_insert(conn, WALLETS).on_conflict_do_nothing(index_elements=["address"]), new)
            if changed:
                conn.execute(
                    sa.update(WALLETS)
                    .where(WALLETS.c.id == sa.bindparam("_id"))
                    .values(label=sa.bindparam("label"), active=sa.bindparam("active")),
                    changed,
                )
        return len(new) + len(changed)

    def remove_wallet(self, address: str) -> bool:
        """Deactivate a wallet (its history is kept; :meth:`add_wallets` reactivates it).

        Returns ``False`` when no active wallet has that address.
        """
        with write_transaction(self._engine) as conn:
            result = conn.execute(
                sa.update(WALLETS)
                .where(WALLETS.c.address == canonical_address(address), WALLETS.c.active.is_(True))
                .values(active=False)
            )
            return result.rowcount > 0

    def list_wallets(self, active_only: bool = True, *, limit: int | None = None, offset: int = 0) -> list[WalletRow]:
        """Wallets in the order they were added (a page of them with ``limit`` / ``offset``)."""
        query = sa.select(WALLETS).order_by(WALLETS.c.id)
        if active_only:
            query = query.where(WALLETS.c.active.is_(True))
        if limit is not None:
            query = query.limit(limit)
        if offset:
            query = query.offset(offset)
        with read_transaction(self._engine) as conn:
            return [_wallet_row(r) for r in conn.execute(query).mappings()]

    def count_wallets(self) -> int:
        """Tracked (active) wallets."""
        with read_transaction(self._engine) as conn:
            return int(conn.execute(
                sa.select(sa.func.count()).select_from(WALLETS).where(WALLETS.c.active.is_(True))).scalar_one())

    def set_ens_name(self, address: str, ens_name: str | None) -> bool:
        """Record the ENS name ``address`` was added by (None clears it); False when the wallet is unknown."""
        if ens_name is not None and not 0 < len(ens_name) <= 255:
            raise ValueError("an ENS name is 1 to 255 characters")
        with write_transaction(self._engine) as conn:
            done = conn.execute(
                sa.update(WALLETS).where(WALLETS.c.address == canonical_address(address)).values(ens_name=ens_name)
            )
        return bool(done.rowcount)

    def get_wallet(self, address: str) -> WalletRow | None:
        """The wallet with this address (any case), active or not; ``None`` when unknown."""
        query = sa.select(WALLETS).where(WALLETS.c.address == canonical_address(address))
        with read_transaction(self._engine) as conn:
            row = conn.execute(query).mappings().one_or_none()
        return None if row is None else _wallet_row(row)

    # -- reference data ------------------------------------------------------------------------------

    def upsert_venues(self, venues: Sequence[VenueRow]) -> dict[str, int]:
        """Insert or update venues (kind, chain, config) by name; returns name → id."""
        with write_transaction(self._engine) as conn:
            return _upsert_venues(conn, venues)

    def list_venues(self) -> list[VenueRow]:
        """Every venue known to the store, by name."""
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(VENUES).order_by(VENUES.c.name)).mappings().all()
        return [VenueRow(name=r["name"], kind=VenueKind(r["kind"]), chain_id=r["chain_id"], config=r["config"])
                for r in rows]

    def upsert_assets(self, assets: Sequence[AssetRow]) -> dict[tuple[int, str], int]:
        """Insert or update assets (symbol, decimals); returns (chain_id, checksummed address) → id."""
        with write_transaction(self._engine) as conn:
            return _upsert_assets(conn, assets)

    def upsert_markets(self, markets: Sequence[MarketRow]) -> dict[tuple[str, str], int]:
        """Insert or update markets (name, asset, params) of known venues; returns (venue, key) → id.

        The markets' assets are created as needed. Raises :class:`~db.errors.UnknownReferenceError` for an
        unknown venue.
        """
        with write_transaction(self._engine) as conn:
            venue_ids = _venue_ids(conn, {m.venue for m in markets})
            asset_ids = _upsert_assets(conn, [m.asset for m in markets if m.asset is not None])
            by_id = _upsert_markets(conn, markets, venue_ids, asset_ids)
        return {(m.venue, _canonical_key(m.key)): by_id[(venue_ids[m.venue], _canonical_key(m.key))] for m in markets}

    # -- sync ----------------------------------------------------------------------------------------

    def write_sync(self, batch: SyncBatch, *, record_failure: bool = True) -> int:
        """Write one sync run and what changed in it, in one transaction; returns the sync run's id.

        The entry point of the rest of the product: :meth:`write_changes` with only the run's id returned. See the
        module docstring for idempotence and failure handling.
        """
        return self.write_changes(batch, record_failure=record_failure).run_id

    def write_changes(self, batch: SyncBatch, *, record_failure: bool = True) -> WriteStats:
        """Write what changed in one sync run, in one transaction (whole or nothing); returns what was written.

        Position versions, health and risk rows are written only when they changed (:mod:`db.changes`, with the
        store's :attr:`change_policy`); an unchanged version is extended to the batch's block. A block synced
        again (same chain identity, block and hash) reuses its sync run and adds nothing already stored. Bulk
        inserts: executemany, and binary COPY for positions on PostgreSQL from :attr:`copy_threshold` rows.

        On failure nothing is written; a ``failed`` run is recorded separately unless ``record_failure`` is
        false; :class:`~db.errors.SyncWriteError` is raised.
        """
        cached = _Pending()
        try:
            with write_transaction(self._engine) as conn:
                stats = self._write_changes(conn, batch, cached)
        except Exception as exc:
            failed_id = self._record_failed_run(batch, exc) if record_failure else None
            raise SyncWriteError(
                f"sync batch for chain {batch.chain_id} at block {batch.block_number} was not written: "
                f"{type(exc).__name__}: {_short(exc)}",
                failed_run_id=failed_id,
            ) from exc
        self._remember(cached)  # committed: what the next write would read back
        return stats

    def _remember(self, pending: _Pending) -> None:
        with self._cache_lock:
            self._remember_locked(pending)

    def _remember_locked(self, pending: _Pending) -> None:
        cache = self._write_cache
        if pending.chain is not None:
            chain_ref, purges = pending.chain
            if self._purges_seen.get(chain_ref) != purges:  # blocks were purged since (or a first write)
                for key in [k for k in cache if k[0] == chain_ref]:
                    del cache[key]
                self._purges_seen[chain_ref] = purges
        for key, entry in pending.entries.items():
            cache.pop(key, None)
            if entry is not None and self.write_cache_size > 0:
                cache[key] = entry
        while len(cache) > self.write_cache_size:  # the (wallet, venue) pairs written longest ago go first
            del cache[next(iter(cache))]

    def _write_changes(self, conn: Connection, batch: SyncBatch, cached: _Pending) -> WriteStats:
        policy = self.change_policy
        snapshots = _unique_snapshots(batch.snapshots)
        refs = _resolve(conn, batch, snapshots)
        chain_ref = batch.chain_ref_id if batch.chain_ref_id is not None else current_chain_ref(
            conn, batch.chain_id, _now())
        status = SyncStatus(batch.status)

        replaced = _replace_superseded(conn, snapshots, refs, chain_ref)
        # (wallet, venue) whose version ranges need recomputing: a block written out of order, or superseded rows
        touched: set[tuple[int, int]] = set()
        if replaced:
            touched |= {(refs.wallets[_canonical_key(s.wallet)], refs.venues[s.venue]) for s in snapshots}
        probe = self.write_cache_size > 0
        current, slow = _covering_versions(conn, snapshots, refs, chain_ref, probe=probe)
        touched |= slow
        kept_before: Mapping[tuple[int, int, int], _Cached] = {}
        if probe:
            purges = int(conn.execute(sa.select(CHAINS.c.purges).where(CHAINS.c.id == chain_ref)).scalar_one())
            cached.chain = (chain_ref, purges)
            if self._purges_seen.get(chain_ref) == purges:  # else what was kept of this chain may be rewritten
                kept_before = self._write_cache

        run_id = None
        if (batch.block_number is not None and batch.block_hash is not None and status is not SyncStatus.FAILED
                and all(v is not None and (v.last_seen_block or v.block_number) >= b
                        for (_, _, b), v in current.items())):
            # The same block synced again — every (wallet, venue) of the batch is stored through it: the block's run
            # stands, with what it stored. (Another batch of the same sync, other wallets, is a run of its own.)
            run_id = conn.execute(
                sa.select(SYNC_RUNS.c.id).where(
                    SYNC_RUNS.c.chain_ref_id == chain_ref, SYNC_RUNS.c.block_number == batch.block_number,
                    sa.func.lower(SYNC_RUNS.c.block_hash) == batch.block_hash.lower(),
                    SYNC_RUNS.c.status != SyncStatus.FAILED.value,
                ).order_by(SYNC_RUNS.c.id).limit(1)
            ).scalar_one_or_none()
        stats = WriteStats(run_id=run_id or 0, reused_run=run_id is not None)
        if run_id is None:
            run_row = {
                "started_at": batch.started_at,
                "finished_at": batch.finished_at,
                "chain_id": batch.chain_id,
                "block_number": batch.block_number,
                "block_hash": batch.block_hash,
                "block_timestamp": batch.block_timestamp,
                "status": status.value,
                "wallets": len({refs.wallets[_canonical_key(s.wallet)] for s in snapshots}),
                "error": batch.error,
                "chain_ref_id": chain_ref,
            }
            run_id = conn.execute(sa.insert(SYNC_RUNS).returning(SYNC_RUNS.c.id), run_row).scalar_one()
            stats.run_id = run_id
            stats.add("sync_runs", [run_row])
        if batch.block_number is not None and status is not SyncStatus.FAILED:
            note_stored_block(conn, chain_ref, batch.block_number, batch.block_hash, batch.block_timestamp,
                              batch.finished_at or _now(), batch.confirmed_venues)
        if replaced:
            log.info("sync run %d: %d stored snapshot(s) superseded (reorganised block, or an error read again)",
                     run_id, replaced)
        # What the previous write left of each version, where the store still agrees (_Cached); the rest is read.
        hits: dict[int, _Cached] = {}
        with self._cache_lock:
            for (w, v, b), version in current.items():
                entry = kept_before.get((chain_ref, w, v)) if version is not None else None
                if (entry is not None and version is not None and entry.holds(version)
                        and (entry.health_block is None or entry.health_block <= b)):
                    hits[version.id] = entry
        stored_positions = {vid: list(e.held) for vid, e in hits.items()} | _position_contents(
            conn, sorted({v.id for v in current.values() if v is not None} - hits.keys()))
        last_health = {vid: e.health for vid, e in hits.items() if e.health is not None} | _last_health(
            conn, {v.id: b for (_, _, b), v in current.items() if v is not None and v.id not in hits},
            {v.id: v.health_block for v in current.values() if v is not None and v.probed})
        kept: dict[tuple[int, int], tuple[_Version, int]] = {}  # versions that hold on: (version, the block)
        stats.from_memory = len(hits)
        close: dict[int, int] = {}  # the open version superseded by a new one -> its last block
        new_versions: list[tuple[SnapshotRow, dict[str, Any]]] = []
        new_bases: dict[tuple[int, int, int], Any] = {}  # a new version's health_base, by (wallet, venue, block)
        extend: dict[int, int] = {}
        # (health, its version's id (None: the new version's), the snapshot, the positions' values at the block)
        health_rows: list[tuple[HealthRow, int | None, SnapshotRow, dict[str, Any] | None]] = []
        for s in snapshots:
            wallet_id = refs.wallets[_canonical_key(s.wallet)]
            venue_id = refs.venues[s.venue]
            version = current.get((wallet_id, venue_id, s.block_number))
            content = _content(s, venue_id, refs)
            if version is not None and version.block_number == s.block_number:
                stats.skipped += 1  # this block of this version is stored already (first write wins)
                kept[(wallet_id, venue_id)] = (version, s.block_number)
                continue
            held = stored_positions.get(version.id, []) if version is not None else []
            if (self.change_only and version is not None and version.status == SnapshotStatus(s.status).value
                    and version.error == s.error and _same_content(held, content, policy)):
                if s.block_number > (version.last_seen_block or version.block_number):
                    extend[version.id] = max(extend.get(version.id, 0), s.block_number)
                kept[(wallet_id, venue_id)] = (version, s.block_number)
                stats.skipped += 1
                stats.extended += 1
                if s.health is not None:
                    last = last_health.get(version.id)
                    values = _position_values(held, content)
                    # The positions are served exact as of the version's newest block: values that differ from
                    # what the newest row holds (interest, prices) are a row, as a health move beyond the
                    # tolerance is.
                    if last is None or (last["block_number"] != s.block_number
                                        and (_health_moved(last, s.health, policy)
                                             or (values or {}) != (last["position_values"] or {})
                                             or policy.too_old(last["block_number"], s.block_number))):
                        health_rows.append((s.health, version.id, s, values))
                    else:
                        stats.skipped += 1
                continue
            kept.pop((wallet_id, venue_id), None)
            cached.entries[(chain_ref, wallet_id, venue_id)] = None  # its positions' ids: read at the next write
            new_versions.append((s, {
                "sync_run_id": run_id,
                "wallet_id": wallet_id,
                "venue_id": venue_id,
                "chain_ref_id": chain_ref,
                "chain_id": s.chain_id,
                "block_number": s.block_number,
                "block_hash": s.block_hash,
                "block_timestamp": s.block_timestamp,
                "taken_at": s.taken_at,
                "venue_timestamp": s.venue_timestamp,
                "status": SnapshotStatus(s.status).value,
                "error": s.error,
                "valid_to_block": None,
                "last_seen_block": s.block_number,
                # its health rows' extra: the changes from its first (jsondelta)
                "health_base": None if s.health is None else _stored_json(dict(s.health.extra)),
            }))
            new_bases[(wallet_id, venue_id, s.block_number)] = new_versions[-1][1]["health_base"]
            if version is not None and version.valid_to_block is None and (wallet_id, venue_id) not in touched:
                close[version.id] = min(close.get(version.id, s.block_number - 1), s.block_number - 1)
            if s.health is not None:
                health_rows.append((s.health, None, s, None))

        if new_versions:
            rows = _json_text(SNAPSHOTS, [r for _, r in new_versions])
            conn.execute(
                upsert_insert(conn, SNAPSHOTS).on_conflict_do_nothing(
                    index_elements=["wallet_id", "venue_id", "chain_ref_id", "block_number"]),
                rows,
            )
            stats.add("position_snapshots", rows)
            stats.versions_written = len(rows)
        if extend:
            conn.execute(
                sa.update(SNAPSHOTS).where(SNAPSHOTS.c.id == sa.bindparam("_id"))
                .values(last_seen_block=sa.bindparam("_seen")),
                [{"_id": vid, "_seen": b} for vid, b in sorted(extend.items())],
            )
        if close:
            conn.execute(
                sa.update(SNAPSHOTS).where(SNAPSHOTS.c.id == sa.bindparam("_id"))
                .values(valid_to_block=sa.bindparam("_to")),
                [{"_id": vid, "_to": b} for vid, b in sorted(close.items())],
            )
        new_ids: dict[tuple[int, int, int], int] = {}
        if new_versions:
            new_ids = {
                (w, v, b): sid
                for sid, w, v, b in conn.execute(
                    sa.select(SNAPSHOTS.c.id, SNAPSHOTS.c.wallet_id, SNAPSHOTS.c.venue_id, SNAPSHOTS.c.block_number)
                    .where(SNAPSHOTS.c.sync_run_id == run_id, SNAPSHOTS.c.chain_ref_id == chain_ref,
                           SNAPSHOTS.c.block_number.in_(sorted({s.block_number for s, _ in new_versions})))
                )
            }

        positions: list[dict[str, Any]] = []
        for s, row in new_versions:
            sid = new_ids.get((row["wallet_id"], row["venue_id"], s.block_number))
            if sid is None:
                continue
            for p in s.positions:
                positions.append(_position_params(p, sid, row["venue_id"], refs))
        stats.add("positions", self._insert_positions(conn, positions))
        stats.positions_written = len(positions)

        # Each row's extra is stored as the changes from its version's base: a new version's is its first row's
        # extra; a held one's comes with its newest row, else (no row left, or none yet) from the version itself.
        bases: dict[int, Any] = {}
        for version in current.values():
            if version is not None and version.id in last_health:
                bases[version.id] = last_health[version.id].get("_base")
        unknown = sorted({vid for _, vid, _, _ in health_rows if vid is not None and vid not in bases})
        for chunk in _chunks(unknown):
            bases.update(conn.execute(sa.select(SNAPSHOTS.c.id, SNAPSHOTS.c.health_base)
                                      .where(SNAPSHOTS.c.id.in_(chunk))).all())
        health: list[dict[str, Any]] = []
        written: list[dict[str, Any]] = []  # as the store gives them back: the whole extra, with the base
        for h, version_id, s, values in health_rows:
            wallet_id = refs.wallets[_canonical_key(s.wallet)]
            venue_id = refs.venues[s.venue]
            sid = version_id if version_id is not None else new_ids.get((wallet_id, venue_id, s.block_number))
            if sid is None:
                continue
            row = _health_params(h, sid, wallet_id, venue_id, s.block_number) | {
                "block_timestamp": s.block_timestamp, "position_values": values}
            if version_id is None:  # a new version's first row: its base is its extra
                base = new_bases[(wallet_id, venue_id, s.block_number)]
                whole = base
            else:
                base = bases.get(version_id)
                whole = _stored_json(row["extra"])
            written.append(row | {"extra": whole, "_base": base})
            if base is not None:
                row = row | {"extra": jsondelta.diff(base, whole)}
            health.append(row)
        if health:
            health = _json_text(HEALTH, health)
            conn.execute(upsert_insert(conn, HEALTH).on_conflict_do_nothing(
                index_elements=["snapshot_id", "block_number"]), health)
        stats.add("health_results", health)
        stats.health_written = len(health)
        if probe:
            cached.entries.update(_kept_versions(kept, touched, chain_ref, stored_positions, last_health, written))

        if touched:
            _recompute_ranges(conn, touched, chain_ref)

        if batch.prices:
            price_rows = [_price_params(p, run_id, refs) for p in batch.prices]
            if stats.reused_run:  # a block synced again: only observations the run does not hold yet
                observed = {(a, src) for a, src in conn.execute(sa.select(PRICES.c.asset_id, PRICES.c.source)
                                                                 .where(PRICES.c.sync_run_id == run_id))}
                price_rows = [r for r in price_rows if (r["asset_id"], r["source"]) not in observed]
            if price_rows:
                conn.execute(sa.insert(PRICES), price_rows)
            stats.add("prices", price_rows)
            stats.prices_written = len(price_rows)

        if batch.risks:
            risk_rows = _json_text(RISK, self._risk_changes(conn, batch, refs, chain_ref, run_id, stats))
            if risk_rows:
                conn.execute(upsert_insert(conn, RISK).on_conflict_do_nothing(
                    index_elements=["chain_ref_id", "wallet_id", "block_number"]), risk_rows)
            stats.add("risk_results", risk_rows)
            stats.risk_written = len(risk_rows)
        if stats.skipped:
            log.debug("sync run %d: %d unchanged row(s) not written", run_id, stats.skipped)
        return stats

    def _risk_changes(self, conn: Connection, batch: SyncBatch, refs: _Refs, chain_ref: int, run_id: int,
                      stats: WriteStats) -> list[dict[str, Any]]:
        policy = self.change_policy
        wanted: dict[tuple[int, int], RiskRow] = {}
        for r in batch.risks:
            wanted.setdefault((refs.wallets[_canonical_key(r.wallet)], r.block_number), r)
        last = _last_risk(conn, chain_ref, wanted)
        out = []
        for (wallet_id, block), r in wanted.items():
            prev = last.get((wallet_id, block))
            # A document that holds measures later rows will carry from it (CARRIED_FROM_KEY: its own block) is
            # stored even when its figures did not move: nothing else holds them.
            carrier = isinstance(r.document, Mapping) and r.document.get(CARRIED_FROM_KEY) == block
            if prev is not None and (prev["block_number"] == block or (self.change_only and not carrier and not (
                    policy.any_moved((prev["unified_health"], prev["equity_usd"], prev["margin_usd"],
                                      prev["netting_benefit_usd"]),
                                     (r.unified_health, r.equity_usd, r.margin_usd, r.netting_benefit_usd))
                    or policy.too_old(prev["block_number"], block)))):
                stats.skipped += 1
                continue
            out.append({"sync_run_id": run_id, "wallet_id": wallet_id, "block_number": r.block_number,
                        "computed_at": r.computed_at, "unified_health": r.unified_health, "equity_usd": r.equity_usd,
                        "margin_usd": r.margin_usd, "netting_benefit_usd": r.netting_benefit_usd,
                        "document": dict(r.document), "chain_ref_id": chain_ref})
        stats.skipped += len(batch.risks) - len(wanted)
        return out

    def latest_risk(self, address: str) -> RiskRow | None:
        """The newest stored netting-engine result of ``address`` on the current chains (None when there is none)."""
        query = (
            sa.select(RISK, WALLETS.c.address, SYNC_RUNS.c.chain_ref_id)
            .join(WALLETS, WALLETS.c.id == RISK.c.wallet_id)
            .join(SYNC_RUNS, SYNC_RUNS.c.id == RISK.c.sync_run_id)
            .where(WALLETS.c.address == canonical_address(address),
                   SYNC_RUNS.c.chain_ref_id.in_(current_chain_ids()))
            .order_by(RISK.c.block_number.desc(), RISK.c.id.desc())
            .limit(1)
        )
        with read_transaction(self._engine) as conn:
            r = conn.execute(query).mappings().first()
            if r is None:
                return None
            document = _with_carried(conn, r["wallet_id"], r["chain_ref_id"], r["block_number"], r["document"])
        return RiskRow(wallet=r["address"], block_number=r["block_number"], computed_at=r["computed_at"],
                       unified_health=r["unified_health"], equity_usd=r["equity_usd"], margin_usd=r["margin_usd"],
                       netting_benefit_usd=r["netting_benefit_usd"], document=document)

    def risk_history(self, address: str, from_block: int | None = None, to_block: int | None = None,
                     limit: int = 10_000) -> list[tuple[int, datetime | None, float | None]]:
        """The wallet's unified health over time on the current chains: ``(block, block timestamp, unified health)``
        per block, oldest first (the newest result of a block; ``None`` health = no margin needed), blocks
        ``from_block``..``to_block`` inclusive."""
        query = (
            sa.select(RISK.c.block_number, SYNC_RUNS.c.block_timestamp, RISK.c.unified_health, RISK.c.id)
            .join(WALLETS, WALLETS.c.id == RISK.c.wallet_id)
            .join(SYNC_RUNS, SYNC_RUNS.c.id == RISK.c.sync_run_id)
            .where(WALLETS.c.address == canonical_address(address),
                   SYNC_RUNS.c.chain_ref_id.in_(current_chain_ids()))
            .order_by(RISK.c.block_number.desc(), RISK.c.id.desc())
            .limit(limit)
        )
        if from_block is not None:
            query = query.where(RISK.c.block_number >= from_block)
        if to_block is not None:
            query = query.where(RISK.c.block_number <= to_block)
        newest: dict[int, tuple[int, datetime | None, float | None]] = {}
        with read_transaction(self._engine) as conn:
            for block, ts, uh, _id in conn.execute(query):
                newest.setdefault(int(block), (int(block), ts, uh))
        return [newest[b] for b in sorted(newest)]

    def _insert_positions(self, conn: Connection, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Insert ``rows``; returns them as written (binary COPY takes the values as they are)."""
        if not rows:
            return rows
        if conn.dialect.name == "postgresql" and self.copy_threshold is not None and len(rows) >= self.copy_threshold:
            _copy_rows(conn, POSITIONS, _POSITION_COPY_COLUMNS, rows)
            return rows
        rows = _json_text(POSITIONS, rows)
        conn.execute(sa.insert(POSITIONS), rows)
        return rows

    def _record_failed_run(self, batch: SyncBatch, exc: BaseException) -> int | None:
        try:
            with write_transaction(self._engine) as conn:
                failed_id: int = conn.execute(
                    sa.insert(SYNC_RUNS).returning(SYNC_RUNS.c.id),
                    {
                        "started_at": _aware_or_none(batch.started_at) or _now(),
                        "finished_at": _now(),
                        "chain_id": batch.chain_id,
                        "block_number": batch.block_number,
                        "block_hash": batch.block_hash,
                        "block_timestamp": _aware_or_none(batch.block_timestamp),
                        "status": SyncStatus.FAILED.value,
                        "wallets": len({s.wallet.lower() for s in batch.snapshots}),
                        "error": f"store write failed: {type(exc).__name__}: {_short(exc)}",
                        "chain_ref_id": batch.chain_ref_id if batch.chain_ref_id is not None
                        else current_chain_ref(conn, batch.chain_id, _now()),
                    },
                ).scalar_one()
                return failed_id
        except Exception:
            log.exception("could not record the failed sync run for chain %d", batch.chain_id)
            return None

    # -- queries -------------------------------------------------------------------------------------

    def latest_health(self, address: str) -> list[LatestVenueHealth]:
        """For each venue of the wallet on the current chains (:mod:`db.chains`): its newest snapshot, positions,
        health, and the prices of that snapshot's sync run for the snapshot's assets. Ordered by venue name; ``[]``
        for an unknown wallet or one without snapshots on the current chains.

        When the venue's newest read failed, the newest good snapshot is returned (the last known values) with
        the failed read in ``failed``; with no good read at all, the failed one is returned as the snapshot.
        """
        current = current_chain_ids()
        s2 = SNAPSHOTS.alias("s2")
        newest = (
            sa.select(sa.func.max(s2.c.block_number))
            .where(s2.c.wallet_id == SNAPSHOTS.c.wallet_id, s2.c.venue_id == SNAPSHOTS.c.venue_id,
                   s2.c.chain_ref_id == SNAPSHOTS.c.chain_ref_id)
            .scalar_subquery()
        )
        columns = (SNAPSHOTS, VENUES.c.name.label("venue_name"))
        with read_transaction(self._engine) as conn:
            wallet = conn.execute(
                sa.select(WALLETS.c.id, WALLETS.c.address, WALLETS.c.active)
                .where(WALLETS.c.address == canonical_address(address))
            ).one_or_none()
            if wallet is None:
                return []
            snaps = list(
                conn.execute(
                    sa.select(*columns)
                    .join(VENUES, VENUES.c.id == SNAPSHOTS.c.venue_id)
                    .where(SNAPSHOTS.c.wallet_id == wallet.id, SNAPSHOTS.c.chain_ref_id.in_(current),
                           SNAPSHOTS.c.block_number == newest)
                    .order_by(VENUES.c.name)
                )
                .mappings()
                .all()
            )
            failed: dict[int, Mapping[Any, Any]] = {}
            for i, snap in enumerate(snaps):
                if snap["status"] == SnapshotStatus.OK.value:
                    continue
                good = conn.execute(  # the newest good read before it (index scan backwards, first ok row)
                    sa.select(*columns)
                    .join(VENUES, VENUES.c.id == SNAPSHOTS.c.venue_id)
                    .where(SNAPSHOTS.c.wallet_id == wallet.id, SNAPSHOTS.c.venue_id == snap["venue_id"],
                           SNAPSHOTS.c.chain_ref_id == snap["chain_ref_id"],
                           SNAPSHOTS.c.status == SnapshotStatus.OK.value)
                    .order_by(SNAPSHOTS.c.block_number.desc())
                    .limit(1)
                ).mappings().one_or_none()
                if good is not None:
                    failed[good["id"]] = snap
                    snaps[i] = good
            ids = [s["id"] for s in snaps]
            as_of = {s["id"]: _as_of(conn, s) for s in [*snaps, *failed.values()]}
            last = _last_health(conn, {s["id"]: as_of[s["id"]]["block_number"] for s in snaps})
            health = {vid: _health_row(r) for vid, r in last.items()}
            # the positions as the newest health row values them (interest and prices since the version began)
            positions = _positions_by_snapshot(conn, ids, {vid: r["position_values"] for vid, r in last.items()})
            prices = _prices_for(
                conn,
                {as_of[s["id"]]["sync_run_id"] for s in snaps},
                {p.asset.address for ps in positions.values() for p in ps},
            )
            confirmed = _confirmed(conn, [s for s in snaps if s["id"] not in failed], as_of) if wallet.active else {}
        out = []
        for s in snaps:
            seen = as_of[s["id"]]  # the newest block read: its run and prices
            shown = confirmed.get(s["id"], seen)  # the block served as of
            snapshot = _snapshot_row({**s, **shown}, wallet.address, positions.get(s["id"], ()), health.get(s["id"]))
            used = {(p.asset.chain_id, p.asset.address) for p in snapshot.positions}
            bad = failed.get(s["id"])
            out.append(
                LatestVenueHealth(
                    venue=s["venue_name"],
                    sync_run_id=seen["sync_run_id"],
                    snapshot_id=s["id"],
                    snapshot=snapshot,
                    prices=tuple(
                        p for p in prices.get(seen["sync_run_id"], ()) if (p.asset.chain_id, p.asset.address) in used
                    ),
                    failed=None if bad is None else _snapshot_row({**bad, **as_of[bad["id"]]}, wallet.address, (),
                                                                   None),
                    chain_ref_id=s["chain_ref_id"],
                    as_of_block=shown["block_number"],
                    valid_from_block=s["block_number"],
                )
            )
        return out

    def history(
        self,
        address: str,
        venue: str | None = None,
        from_block: int | None = None,
        to_block: int | None = None,
        limit: int = 1_000,
    ) -> list[HealthPoint]:
        """The wallet's snapshots with their health on the current chains (never a retired chain's: see
        :mod:`db.chains`), newest block first, ``from_block``/``to_block`` inclusive.

        ``[]`` for an unknown wallet or venue.
        """
        current = current_chain_ids()
        points = (
            sa.select(
                SNAPSHOTS.c.id,
                HEALTH.c.block_number,
                sa.func.coalesce(HEALTH.c.block_timestamp, SNAPSHOTS.c.block_timestamp).label("block_timestamp"),
                SNAPSHOTS.c.status,
                SNAPSHOTS.c.error,
                VENUES.c.name.label("venue_name"),
                *[c.label(f"h_{c.name}") for c in HEALTH.c],
                SNAPSHOTS.c.health_base,
            )
            .join(SNAPSHOTS, SNAPSHOTS.c.id == HEALTH.c.snapshot_id)
            .join(WALLETS, WALLETS.c.id == SNAPSHOTS.c.wallet_id)
            .join(VENUES, VENUES.c.id == SNAPSHOTS.c.venue_id)
            .where(WALLETS.c.address == canonical_address(address), SNAPSHOTS.c.chain_ref_id.in_(current))
            .order_by(HEALTH.c.block_number.desc(), VENUES.c.name)
            .limit(limit)
        )
        has_health = sa.select(HEALTH.c.id).where(HEALTH.c.snapshot_id == SNAPSHOTS.c.id).exists()
        bare = (  # versions without a health row (an error read, a venue without health): a point at their start
            sa.select(
                SNAPSHOTS.c.id,
                SNAPSHOTS.c.block_number,
                SNAPSHOTS.c.block_timestamp,
                SNAPSHOTS.c.status,
                SNAPSHOTS.c.error,
                VENUES.c.name.label("venue_name"),
            )
            .join(WALLETS, WALLETS.c.id == SNAPSHOTS.c.wallet_id)
            .join(VENUES, VENUES.c.id == SNAPSHOTS.c.venue_id)
            .where(WALLETS.c.address == canonical_address(address), SNAPSHOTS.c.chain_ref_id.in_(current),
                   ~has_health)
            .order_by(SNAPSHOTS.c.block_number.desc(), VENUES.c.name)
            .limit(limit)
        )
        if venue is not None:
            points = points.where(VENUES.c.name == venue)
            bare = bare.where(VENUES.c.name == venue)
        if from_block is not None:
            points = points.where(HEALTH.c.block_number >= from_block)
            bare = bare.where(SNAPSHOTS.c.block_number >= from_block)
        if to_block is not None:
            points = points.where(HEALTH.c.block_number <= to_block)
            bare = bare.where(SNAPSHOTS.c.block_number <= to_block)
        with read_transaction(self._engine) as conn:
            rows = [*conn.execute(points).mappings().all(), *conn.execute(bare).mappings().all()]
        rows.sort(key=lambda r: (-r["block_number"], r["venue_name"]))
        return [
            HealthPoint(
                venue=r["venue_name"],
                block_number=r["block_number"],
                block_timestamp=r["block_timestamp"],
                snapshot_id=r["id"],
                status=SnapshotStatus(r["status"]),
                error=r["error"],
                health=None if r.get("h_id") is None else _health_row(_whole(
                    {c.name: r[f"h_{c.name}"] for c in HEALTH.c} | {"_base": r["health_base"]})),
            )
            for r in rows[:limit]
        ]

    def latest_block(self, chain_id: int) -> int | None:
        """The newest block a good sync of this chain's current identity went through: the newest block of a sync
        run that did not fail, or a newer one a block-driven sync confirmed without writing (nothing moved there:
        ``confirm_block``, the identity's ``last_block``); ``None`` if there is none."""
        runs = sa.select(sa.func.max(SYNC_RUNS.c.block_number)).where(
            SYNC_RUNS.c.chain_id == chain_id, SYNC_RUNS.c.status != SyncStatus.FAILED.value,
            SYNC_RUNS.c.chain_ref_id.in_(current_chain_ids()),
        )
        confirmed = sa.select(sa.func.max(CHAINS.c.last_block)).where(
            CHAINS.c.chain_id == chain_id, CHAINS.c.retired_at.is_(None))
        with read_transaction(self._engine) as conn:
            values = [conn.execute(runs).scalar_one(), conn.execute(confirmed).scalar_one()]
        known = [int(v) for v in values if v is not None]
        return max(known) if known else None

    def latest_prices(self, chain_id: int | None = None) -> list[PriceRow]:
        """The newest stored observation (highest block) of every (chain, asset, source) on the current chains,
        ordered by chain, symbol and source.

        One windowed pass over the prices table (it holds a few rows per sync run, and :meth:`prune` bounds it).
        """
        # The newest by block (then by insertion): a sync of an older block never hides a newer price.
        rank = sa.func.row_number().over(partition_by=(PRICES.c.asset_id, PRICES.c.source),
                                         order_by=(PRICES.c.block_number.desc(), PRICES.c.id.desc()))
        ranked = sa.select(PRICES.c.id, rank.label("rank")).where(PRICES.c.sync_run_id.in_(
            sa.select(SYNC_RUNS.c.id).where(SYNC_RUNS.c.chain_ref_id.in_(current_chain_ids()))))
        if chain_id is not None:
            ranked = ranked.where(PRICES.c.chain_id == chain_id)
        ranked_sq = ranked.subquery()
        ids = sa.select(ranked_sq.c.id).where(ranked_sq.c.rank == 1).subquery()
        query = (
            sa.select(PRICES, *_asset_columns())
            .join(ids, ids.c.id == PRICES.c.id)
            .join(ASSETS, ASSETS.c.id == PRICES.c.asset_id)
            .order_by(PRICES.c.chain_id, ASSETS.c.symbol, PRICES.c.source)
        )
        with read_transaction(self._engine) as conn:
            return [_price_row(r) for r in conn.execute(query).mappings()]

    def market_params(self, venue: str) -> dict[str, dict[str, Any]]:
        """Every stored market of ``venue`` (by its key: the reserve's asset address, the market id…) with its
        newest params, as the venue adapter wrote them at the newest sync; ``{}`` for an unknown venue."""
        query = (
            sa.select(MARKETS.c.key, MARKETS.c.params)
            .join(VENUES, VENUES.c.id == MARKETS.c.venue_id)
            .where(VENUES.c.name == venue)
            .order_by(MARKETS.c.key)
        )
        with read_transaction(self._engine) as conn:
            return {r.key: dict(r.params or {}) for r in conn.execute(query)}

    def prune(self, keep_last_n_per_wallet_venue: int) -> int:
        """Delete all but the newest ``n`` snapshots of each (wallet, venue, chain), with their positions and health,
        and the prices of sync runs left without snapshots. Sync run rows are kept. Returns snapshots deleted.
        """
        if keep_last_n_per_wallet_venue < 1:
            raise ValueError("keep_last_n_per_wallet_venue must be at least 1")
        ranked = sa.select(
            SNAPSHOTS.c.id,
            SNAPSHOTS.c.sync_run_id,
            sa.func.row_number()
            .over(
                partition_by=(SNAPSHOTS.c.wallet_id, SNAPSHOTS.c.venue_id, SNAPSHOTS.c.chain_ref_id),
                order_by=SNAPSHOTS.c.block_number.desc(),
            )
            .label("rn"),
        ).subquery()
        with write_transaction(self._engine) as conn:
            doomed = conn.execute(
                sa.select(ranked.c.id, ranked.c.sync_run_id).where(ranked.c.rn > keep_last_n_per_wallet_venue)
            ).all()
            if not doomed:
                return 0
            ids = [row.id for row in doomed]
            for chunk in _chunks(ids):
                conn.execute(sa.delete(SNAPSHOTS).where(SNAPSHOTS.c.id.in_(chunk)))
            runs = sorted({row.sync_run_id for row in doomed})
            still_used = sa.select(SNAPSHOTS.c.id).where(SNAPSHOTS.c.sync_run_id == PRICES.c.sync_run_id)
            for chunk in _chunks(runs):
                conn.execute(sa.delete(PRICES).where(PRICES.c.sync_run_id.in_(chunk), ~still_used.exists()))
        return len(ids)



    def compact(self, policy: RetentionPolicy | None = None, *, now: datetime | None = None) -> CompactStats:
        """Downsample what is older than the policy's full-resolution window (:class:`db.changes.RetentionPolicy`;
        by block time, against ``now``, the current time unless given): of each series — a (wallet, venue)'s health,
        a wallet's risk, an asset's price from one source, a (wallet, venue)'s position versions — only the first and
        the last row of each bucket (an hour by default) stay. A version is kept while a health row still points at
        it; the range of a deleted version goes to the version before it. One transaction; idempotent."""
        policy = policy if policy is not None else RetentionPolicy()
        cutoff = policy.cutoff(now if now is not None else _now())
        stats = CompactStats(cutoff=cutoff)
        with write_transaction(self._engine) as conn:
            health = conn.execute(
                sa.select(HEALTH.c.id, SNAPSHOTS.c.wallet_id, SNAPSHOTS.c.venue_id, SNAPSHOTS.c.chain_ref_id,
                          sa.func.coalesce(HEALTH.c.block_timestamp, SNAPSHOTS.c.block_timestamp))
                .join(SNAPSHOTS, SNAPSHOTS.c.id == HEALTH.c.snapshot_id)
                .where(sa.func.coalesce(HEALTH.c.block_timestamp, SNAPSHOTS.c.block_timestamp) < cutoff)
                .order_by(SNAPSHOTS.c.wallet_id, SNAPSHOTS.c.venue_id, SNAPSHOTS.c.chain_ref_id,
                          HEALTH.c.block_number, HEALTH.c.id)  # two versions' rows at one block: the same one kept
            ).all()
            doomed = _downsample([(r[0], (r[1], r[2], r[3]), r[4]) for r in health], policy)
            stats.health_deleted = _delete_ids(conn, HEALTH, doomed)

            risk = conn.execute(
                sa.select(RISK.c.id, RISK.c.chain_ref_id, RISK.c.wallet_id, SYNC_RUNS.c.block_timestamp)
                .join(SYNC_RUNS, SYNC_RUNS.c.id == RISK.c.sync_run_id)
                .where(SYNC_RUNS.c.block_timestamp < cutoff)
                .order_by(RISK.c.chain_ref_id, RISK.c.wallet_id, RISK.c.block_number, RISK.c.id)
            ).all()
            stats.risk_deleted = _delete_ids(conn, RISK, _downsample([(r[0], (r[1], r[2]), r[3]) for r in risk],
                                                                     policy))

            prices = conn.execute(
                sa.select(PRICES.c.id, SYNC_RUNS.c.chain_ref_id, PRICES.c.asset_id, PRICES.c.source,
                          SYNC_RUNS.c.block_timestamp)
                .join(SYNC_RUNS, SYNC_RUNS.c.id == PRICES.c.sync_run_id)
                .where(SYNC_RUNS.c.block_timestamp < cutoff)
                .order_by(SYNC_RUNS.c.chain_ref_id, PRICES.c.asset_id, PRICES.c.source, PRICES.c.block_number,
                          PRICES.c.id)
            ).all()
            stats.prices_deleted = _delete_ids(
                conn, PRICES, _downsample([(r[0], (r[1], r[2], r[3]), r[4]) for r in prices], policy))

            has_health = sa.select(HEALTH.c.id).where(HEALTH.c.snapshot_id == SNAPSHOTS.c.id).exists()
            versions = conn.execute(
                sa.select(SNAPSHOTS.c.id, SNAPSHOTS.c.wallet_id, SNAPSHOTS.c.venue_id, SNAPSHOTS.c.chain_ref_id,
                          SNAPSHOTS.c.block_timestamp, has_health.label("has_health"),
                          SNAPSHOTS.c.valid_to_block.is_(None).label("newest"))
                .where(SNAPSHOTS.c.block_timestamp < cutoff)
                .order_by(SNAPSHOTS.c.wallet_id, SNAPSHOTS.c.venue_id, SNAPSHOTS.c.chain_ref_id,
                          SNAPSHOTS.c.block_number)
            ).all()
            keep_health = {r[0] for r in versions if r[5] or r[6]}  # pointed at by health, or the newest
            gone = [i for i in _downsample([(r[0], (r[1], r[2], r[3]), r[4]) for r in versions], policy)
                    if i not in keep_health]
            touched_keys = {(r[1], r[2], r[3]) for r in versions if r[0] in set(gone)}
            stats.versions_deleted = _delete_ids(conn, SNAPSHOTS, gone)
            for chain_ref in sorted({k[2] for k in touched_keys}):
                _recompute_ranges(conn, {(w, v) for w, v, c in touched_keys if c == chain_ref}, chain_ref)
        log.info("store compacted before %s: %d health, %d risk, %d price row(s) and %d version(s) deleted",
                 cutoff.isoformat(), stats.health_deleted, stats.risk_deleted, stats.prices_deleted,
                 stats.versions_deleted)
        return stats

# -- change detection ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Version:
    id: int
    block_number: int
    last_seen_block: int | None
    valid_to_block: int | None
    status: str
    error: str | None
    health_block: int | None = None
    """The block of the version's newest health row (``None``: none), where ``probed``."""
    probed: bool = False


_VERSION_COLUMNS = (SNAPSHOTS.c.id, SNAPSHOTS.c.wallet_id, SNAPSHOTS.c.venue_id, SNAPSHOTS.c.block_number,
                    SNAPSHOTS.c.last_seen_block, SNAPSHOTS.c.valid_to_block, SNAPSHOTS.c.status, SNAPSHOTS.c.error)
_NEWEST_HEALTH = (sa.select(sa.func.max(HEALTH.c.block_number)).where(HEALTH.c.snapshot_id == SNAPSHOTS.c.id)
                  .scalar_subquery().label("health_block"))
"""The block of a version's newest health row: one probe of the (snapshot, block) index."""


def _version(r: Any) -> _Version:
    return _Version(r.id, r.block_number, r.last_seen_block, r.valid_to_block, r.status, r.error)


@dataclass(frozen=True, slots=True)
class _Cached:
    """A (wallet, venue)'s current version as :meth:`Store.write_changes` left it, kept for the next write: the
    version's positions and its newest health row, which that write would otherwise read back (with their JSON)
    for every wallet it writes, changed or not.

    Used only while the store agrees: the same open version, its newest health row at the same block (one indexed
    probe per version, read with the versions anyway). Positions never change under a version id and a health row
    never changes under its (version, block), so nothing else can differ — unless rows are deleted and written
    again in place, which only a purge of reorganised blocks does: it counts itself in ``chains.purges``, and a
    write that sees the count moved (whichever process purged) uses nothing kept of that chain."""

    version_id: int
    health_block: int | None
    held: tuple[_Held, ...]
    health: Mapping[str, Any] | None
    """The newest health row's columns that the change detection reads, as the database returns them."""

    def holds(self, v: _Version) -> bool:
        return v.probed and v.id == self.version_id and v.health_block == self.health_block


@dataclass(slots=True)
class _Pending:
    """What a write would leave kept, applied once it commits: entries by (chain identity, wallet, venue)
    (``None``: drop), and the chain's purge count as the write read it."""

    entries: dict[tuple[int, int, int], _Cached | None] = dataclasses.field(default_factory=dict)
    chain: tuple[int, int] | None = None


_HEALTH_COMPARED = ("block_number", "flags", "matches_onchain", "health_factor", "collateral_usd", "debt_usd",
                    "liquidation_threshold", "health_factor_raw", "onchain_health_factor_raw", "extra",
                    "position_values")


def _as_stored(row: Mapping[str, Any], *, extra_stored: bool = False) -> dict[str, Any]:
    """The columns of a health row the change detection reads, as the database gives them back: a JSON column that
    would come back in another shape (tuples as lists, keys as text, a new NaN) goes through a JSON round trip.
    Most are plain JSON already and are kept as they are (``bench_block`` at 1,000 wallets, a write after the
    sweep: 0.24-0.31 s against 0.29-0.34 s with a round trip of every written row)."""
    out = {k: row.get(k) for k in (*_HEALTH_COMPARED, "_base")}
    for k in ("flags", "position_values") if extra_stored else ("flags", "extra", "position_values"):
        if out[k] is not None:
            out[k] = _stored_json(out[k])
    return out


def _plain_json(value: Any) -> bool:
    """Whether ``value`` comes back from a JSON column as itself: text, whole numbers, finite floats, booleans,
    ``None``, and lists and text-keyed dicts of those."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return True
    if kind is float:
        return math.isfinite(value)
    if kind is list:
        return all(_plain_json(x) for x in value)
    if kind is dict:
        return all(type(k) is str and _plain_json(v) for k, v in value.items())
    return False


def _kept_versions(
    kept: Mapping[tuple[int, int], tuple[_Version, int]], touched: set[tuple[int, int]], chain_ref: int,
    positions: Mapping[int, list[_Held]], last_health: Mapping[int, Mapping[str, Any]],
    written: Sequence[Mapping[str, Any]],
) -> dict[tuple[int, int, int], _Cached | None]:
    """What a write leaves of the versions that held on (see :class:`_Cached`): their positions, and the health row
    written now or the newest one before. ``None`` where that is not known for sure: the version was not probed,
    its ranges were recomputed, or it has a health row after the block."""
    newest: dict[int, Mapping[str, Any]] = {}
    for row in written:
        sid = row["snapshot_id"]
        if sid not in newest or newest[sid]["block_number"] < row["block_number"]:
            newest[sid] = row
    out: dict[tuple[int, int, int], _Cached | None] = {}
    for (w, v), (version, block) in kept.items():
        key = (chain_ref, w, v)
        if (w, v) in touched or not version.probed or (version.health_block or 0) > block:
            out[key] = None
            continue
        now = newest.get(version.id)
        if now is not None:
            health: Mapping[str, Any] | None = _as_stored(now, extra_stored=True)  # written: normalised already
            health_block: int | None = now["block_number"]
        else:
            before = last_health.get(version.id)
            health = None if before is None else {k: before.get(k) for k in (*_HEALTH_COMPARED, "_base")}
            health_block = version.health_block
        out[key] = _Cached(version.id, health_block, tuple(positions.get(version.id, ())), health)
    return out


def _covering_versions(
    conn: Connection, snapshots: Sequence[SnapshotRow], refs: _Refs, chain_ref: int, *, probe: bool = False
) -> tuple[dict[tuple[int, int, int], _Version | None], set[tuple[int, int]]]:
    """For each (wallet, venue, block) of the batch: the stored version whose range holds the block (the newest
    one starting at or before it), and the (wallet, venue) pairs whose ranges a new version there would cut into
    (the block is not after the newest version: written out of order). ``probe``: open versions carry the block
    of their newest health row."""
    keys = {(refs.wallets[_canonical_key(s.wallet)], refs.venues[s.venue], s.block_number) for s in snapshots}
    open_versions: dict[tuple[int, int], _Version] = {}
    columns = (*_VERSION_COLUMNS, _NEWEST_HEALTH) if probe else _VERSION_COLUMNS
    for chunk in _chunks(sorted({w for w, _, _ in keys})):
        for r in conn.execute(sa.select(*columns).where(
                SNAPSHOTS.c.chain_ref_id == chain_ref, SNAPSHOTS.c.wallet_id.in_(chunk),
                SNAPSHOTS.c.valid_to_block.is_(None))):
            key = (r.wallet_id, r.venue_id)
            if key not in open_versions or open_versions[key].block_number < r.block_number:
                version = _version(r)
                open_versions[key] = (dataclasses.replace(version, health_block=r.health_block, probed=True)
                                      if probe else version)
    out: dict[tuple[int, int, int], _Version | None] = {}
    slow: set[tuple[int, int]] = set()
    for w, v, b in keys:
        found = open_versions.get((w, v))
        if found is not None and found.block_number <= b:
            out[(w, v, b)] = found
            continue
        row = conn.execute(sa.select(*_VERSION_COLUMNS).where(
            SNAPSHOTS.c.chain_ref_id == chain_ref, SNAPSHOTS.c.wallet_id == w, SNAPSHOTS.c.venue_id == v,
            SNAPSHOTS.c.block_number <= b).order_by(SNAPSHOTS.c.block_number.desc()).limit(1)).first()
        out[(w, v, b)] = None if row is None else _version(row)
        if found is not None or row is not None:
            slow.add((w, v))
    return out, slow


@dataclass(frozen=True, slots=True)
class _Held:
    """One position as the version comparison sees it.

    ``exact`` must be equal for the version to hold: the position's identity (asset, market, side, collateral
    flag) and, when the venue declares the wallet's own ``state``, that state — or else the raw amount and the
    extra. ``values`` (amount, price, value) must stay within the tolerance only when there is no state: with one,
    interest and prices move the values without starting a version (they go to the health series).
    """

    exact: tuple[Any, ...]
    values: tuple[float | None, ...]
    amount_raw: int
    extra: Mapping[str, Any]
    stateful: bool
    position_id: int | None = None


def _json_key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _content_key(exact: tuple[Any, ...]) -> tuple[str, ...]:
    return tuple("" if x is None else str(x) for x in exact)


def _held(asset_id: int, market_id: int | None, side: str, amount_raw: int, is_collateral: bool,
          extra: Mapping[str, Any] | None, state: str | None, values: tuple[float | None, ...],
          position_id: int | None = None) -> _Held:
    extra = dict(extra or {})
    if state is not None:
        exact: tuple[Any, ...] = (asset_id, market_id, side, is_collateral, "state", state)
    else:
        exact = (asset_id, market_id, side, is_collateral, "raw", int(amount_raw), _json_key(extra))
    return _Held(exact, values, int(amount_raw), extra, state is not None, position_id)


def _content(s: SnapshotRow, venue_id: int, refs: _Refs) -> list[_Held]:
    out = []
    for p in s.positions:
        asset_id = refs.assets[(p.asset.chain_id, _canonical_key(p.asset.address))]
        market_id = None if p.market_key is None else refs.markets[(venue_id, _canonical_key(p.market_key))]
        out.append(_held(asset_id, market_id, str(p.side), p.amount_raw, p.is_collateral, p.extra, p.state,
                         (p.amount, p.price_usd, p.value_usd)))
    return sorted(out, key=lambda c: _content_key(c.exact))


def _position_contents(conn: Connection, ids: Sequence[int]) -> dict[int, list[_Held]]:
    out: dict[int, list[_Held]] = {}
    cols = (POSITIONS.c.id, POSITIONS.c.snapshot_id, POSITIONS.c.asset_id, POSITIONS.c.market_id, POSITIONS.c.side,
            POSITIONS.c.amount_raw, POSITIONS.c.is_collateral, POSITIONS.c.extra, POSITIONS.c.amount,
            POSITIONS.c.price_usd, POSITIONS.c.value_usd, POSITIONS.c.state)
    for chunk in _chunks(ids):
        for r in conn.execute(sa.select(*cols).where(POSITIONS.c.snapshot_id.in_(chunk))):
            out.setdefault(r.snapshot_id, []).append(
                _held(r.asset_id, r.market_id, r.side, r.amount_raw, r.is_collateral, r.extra, r.state,
                      (r.amount, r.price_usd, r.value_usd), r.id))
    return {k: sorted(v, key=lambda c: _content_key(c.exact)) for k, v in out.items()}


def _same_content(stored: list[_Held], new: list[_Held], policy: ChangePolicy) -> bool:
    """Same positions: the exact part equal (see :class:`_Held`), and without a declared state the amounts and
    prices within the policy's tolerance."""
    if len(stored) != len(new):
        return False
    return all(a.exact == b.exact and (a.stateful or not policy.any_moved(a.values, b.values))
               for a, b in zip(stored, new, strict=True))


def _position_values(stored: list[_Held], new: list[_Held]) -> dict[str, Any] | None:
    """The positions of an unchanged version valued at the new block, where they differ from the version's own:
    ``{position id: [amount_raw as text, amount, price_usd, value_usd, {extra keys that differ}]}`` (``None``:
    none differs). Exact: a row that holds them serves the positions as the read gave them at its block."""
    out: dict[str, Any] = {}
    for held, now in zip(stored, new, strict=True):
        differ = {k: v for k, v in now.extra.items() if held.extra.get(k) != v}
        if held.amount_raw != now.amount_raw or held.values != now.values or differ:
            out[str(held.position_id)] = [str(now.amount_raw), *now.values, differ]
    return out or None


def _json_moved(old: Any, new: Any, policy: ChangePolicy) -> bool:
    """Whether two JSON values differ: numbers beyond the tolerance, anything else by equality."""
    if isinstance(old, bool) or isinstance(new, bool):
        return bool(old != new)
    if isinstance(old, (int, float)) and isinstance(new, (int, float)):
        return policy.moved(float(old), float(new))
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        keys = {k for k in old if not is_per_block_key(k)}
        if keys != {k for k in new if not is_per_block_key(k)}:
            return True
        return any(_json_moved(old[k], new[k], policy) for k in keys)
    if isinstance(old, (list, tuple)) and isinstance(new, (list, tuple)):
        return len(old) != len(new) or any(_json_moved(a, b, policy) for a, b in zip(old, new, strict=True))
    return bool(old != new)


def _as_float(value: int | float | None) -> float | None:
    return None if value is None else float(value)


def _health_moved(last: Mapping[Any, Any], h: HealthRow, policy: ChangePolicy) -> bool:
    """Whether ``h`` differs from the stored health row ``last`` beyond the policy (its time never counts)."""
    if tuple(last["flags"] or ()) != tuple(h.flags) or last["matches_onchain"] != h.matches_onchain:
        return True
    old = (last["health_factor"], last["collateral_usd"], last["debt_usd"], last["liquidation_threshold"],
           _as_float(last["health_factor_raw"]), _as_float(last["onchain_health_factor_raw"]))
    new = (h.health_factor, h.collateral_usd, h.debt_usd, h.liquidation_threshold,
           _as_float(h.health_factor_raw), _as_float(h.onchain_health_factor_raw))
    return policy.any_moved(old, new) or _json_moved(dict(last["extra"] or {}), dict(h.extra), policy)


def _last_health(conn: Connection, wanted: Mapping[int, int],
                 newest: Mapping[int, int | None] | None = None) -> dict[int, Mapping[Any, Any]]:
    """The newest health row of each version (id) at or before its block. ``newest``: the block of a version's
    newest health row where it is known (``None``: it has none): at or before the block, that row is the answer,
    read by its unique key; a window over the version's rows finds the rest."""
    out: dict[int, Mapping[Any, Any]] = {}
    by_block: dict[int, list[int]] = {}
    exact: list[tuple[int, int]] = []
    for vid, block in wanted.items():
        if newest is not None and vid in newest:
            top = newest[vid]
            if top is None:
                continue
            if top <= block:
                exact.append((vid, top))
                continue
        by_block.setdefault(block, []).append(vid)
    base = SNAPSHOTS.c.health_base.label("_base")
    for pairs in _chunks(sorted(exact)):
        for r in conn.execute(sa.select(HEALTH, base).join(SNAPSHOTS, SNAPSHOTS.c.id == HEALTH.c.snapshot_id).where(
                sa.tuple_(HEALTH.c.snapshot_id, HEALTH.c.block_number).in_(pairs))).mappings():
            out[r["snapshot_id"]] = _whole(r)
    for block, ids in by_block.items():
        for chunk in _chunks(sorted(ids)):
            rank = sa.func.row_number().over(partition_by=HEALTH.c.snapshot_id,
                                             order_by=HEALTH.c.block_number.desc()).label("rn")
            ranked = sa.select(HEALTH, rank).where(HEALTH.c.snapshot_id.in_(chunk),
                                                   HEALTH.c.block_number <= block).subquery()
            for r in conn.execute(sa.select(ranked, base).join(SNAPSHOTS, SNAPSHOTS.c.id == ranked.c.snapshot_id)
                                  .where(ranked.c.rn == 1)).mappings():
                out[r["snapshot_id"]] = _whole(r)
    return out


def _whole(r: Mapping[Any, Any]) -> dict[str, Any]:
    """A health row read with its version's base (``_base``, kept), its ``extra`` as written (merge it once)."""
    row = dict(r)
    row["extra"] = _merged_extra(row["_base"], row["extra"])
    return row


CARRIED_FROM_KEY = "heavy_measures_block"
"""A risk document's key naming the block whose stored document holds the measures it leaves ``None`` (the heavy
measures, computed on their own cadence): they are stored once, in that block's row, and filled in on reading."""


def _with_carried(conn: Connection, wallet_id: int, chain_ref: int, block: int, document: Any) -> Any:
    """``document`` with its ``None`` values filled from the row its :data:`CARRIED_FROM_KEY` names (the same
    wallet and chain identity, an earlier block); unchanged when it names none, or that row is gone."""
    if not isinstance(document, Mapping):
        return document
    source = document.get(CARRIED_FROM_KEY)
    if not isinstance(source, int) or isinstance(source, bool) or source >= block:
        return document
    missing = [k for k, v in document.items() if v is None]
    if not missing:
        return document
    held = conn.execute(
        sa.select(RISK.c.document).join(SYNC_RUNS, SYNC_RUNS.c.id == RISK.c.sync_run_id)
        .where(RISK.c.wallet_id == wallet_id, RISK.c.block_number == source, SYNC_RUNS.c.chain_ref_id == chain_ref)
        .order_by(RISK.c.id.desc()).limit(1)).scalar_one_or_none()
    if not isinstance(held, Mapping):
        return document
    return {**document, **{k: held[k] for k in missing if held.get(k) is not None}}


def _last_risk(conn: Connection, chain_ref: int, wanted: Mapping[tuple[int, int], Any]
               ) -> dict[tuple[int, int], Mapping[Any, Any]]:
    """The newest risk row of each (wallet, block) on the chain at or before the block."""
    out: dict[tuple[int, int], Mapping[Any, Any]] = {}
    by_block: dict[int, list[int]] = {}
    for wallet_id, block in wanted:
        by_block.setdefault(block, []).append(wallet_id)
    cols = (RISK.c.wallet_id, RISK.c.block_number, RISK.c.unified_health, RISK.c.equity_usd, RISK.c.margin_usd,
            RISK.c.netting_benefit_usd)
    for block, wallets in by_block.items():
        # One seek per wallet in the (chain, wallet, block) unique index for its newest block, then that row: the
        # cost follows the wallets asked about, not the length of their history (a window over every row did).
        seek = RISK.alias("seek")
        newest = (sa.select(sa.func.max(seek.c.block_number))
                  .where(seek.c.chain_ref_id == chain_ref, seek.c.wallet_id == WALLETS.c.id,
                         seek.c.block_number <= block).correlate(WALLETS).scalar_subquery())
        for chunk in _chunks(sorted(wallets)):
            query = sa.select(*cols).select_from(WALLETS).join(RISK, sa.and_(
                RISK.c.chain_ref_id == chain_ref, RISK.c.wallet_id == WALLETS.c.id, RISK.c.block_number == newest,
            )).where(WALLETS.c.id.in_(chunk))
            for r in conn.execute(query).mappings():
                out[(r["wallet_id"], block)] = r
    return out


def _recompute_ranges(conn: Connection, keys: set[tuple[int, int]], chain_ref: int) -> None:
    """Set ``valid_to_block`` of every version of ``keys`` (wallet, venue) on the chain: the block before the next
    version's first, ``NULL`` for the newest."""
    updates = []
    for wallet_id, venue_id in sorted(keys):
        rows = conn.execute(sa.select(SNAPSHOTS.c.id, SNAPSHOTS.c.block_number, SNAPSHOTS.c.valid_to_block).where(
            SNAPSHOTS.c.chain_ref_id == chain_ref, SNAPSHOTS.c.wallet_id == wallet_id,
            SNAPSHOTS.c.venue_id == venue_id).order_by(SNAPSHOTS.c.block_number)).all()
        for i, r in enumerate(rows):
            want = rows[i + 1].block_number - 1 if i + 1 < len(rows) else None
            if r.valid_to_block != want:
                updates.append({"_id": r.id, "_to": want})
    if updates:
        conn.execute(sa.update(SNAPSHOTS).where(SNAPSHOTS.c.id == sa.bindparam("_id"))
                     .values(valid_to_block=sa.bindparam("_to")), updates)


def _downsample(rows: Sequence[tuple[int, tuple[Any, ...], datetime]], policy: RetentionPolicy) -> list[int]:
    """Ids to delete from ``(id, series key, block time)`` rows ordered by series and block: all but the first and
    the last of each (series, bucket)."""
    groups: dict[tuple[tuple[Any, ...], int], list[int]] = {}
    for row_id, key, at in rows:
        groups.setdefault((key, policy.bucket(at)), []).append(row_id)
    return [i for ids in groups.values() for i in ids[1:-1]]


def _delete_ids(conn: Connection, table: sa.Table, ids: Sequence[int]) -> int:
    for chunk in _chunks(sorted(ids)):
        conn.execute(sa.delete(table).where(table.c.id.in_(chunk)))
    return len(ids)

# -- resolution of natural keys -----------------------------------------------------------------------


def _replace_superseded(conn: Connection, snapshots: Sequence[SnapshotRow], refs: _Refs, chain_ref: int) -> int:
    """Delete the stored snapshots (with their positions and health) that the batch's supersede at the same
    (wallet, venue, block number): one read at another block hash (the block was reorganised; the batch's was
    confirmed canonical when read), or an error where the batch read the venue cleanly. A clean stored snapshot of
    the same block hash stays (a second sync of one block writes nothing new). Any deletion counts in
    ``chains.purges``. Returns how many were deleted."""
    if not snapshots:
        return 0
    wanted = {(refs.wallets[_canonical_key(s.wallet)], refs.venues[s.venue], s.block_number): s for s in snapshots}
    blocks = sorted({s.block_number for s in snapshots})
    batch_hashes = {s.block_number: s.block_hash.lower() for s in snapshots}
    chains = {s.block_number: s.chain_id for s in snapshots}
    stale: list[int] = []
    for chunk in _chunks(sorted({w for w, _, _ in wanted})):
        rows = conn.execute(
            sa.select(SNAPSHOTS.c.id, SNAPSHOTS.c.wallet_id, SNAPSHOTS.c.venue_id, SNAPSHOTS.c.block_number,
                      SNAPSHOTS.c.block_hash, SNAPSHOTS.c.status)
            .where(SNAPSHOTS.c.wallet_id.in_(chunk), SNAPSHOTS.c.block_number.in_(blocks),
                   SNAPSHOTS.c.chain_ref_id == chain_ref)
        )
        for sid, w, v, b, block_hash, status in rows:
            new = wanted.get((w, v, b))
            if new is None:
                continue
            other_block = block_hash.lower() != new.block_hash.lower()
            repaired = status == SnapshotStatus.ERROR.value and SnapshotStatus(new.status) is SnapshotStatus.OK
            if other_block or repaired:
                stale.append(sid)
    for chunk_ids in _chunks(stale):
        # The superseded reads' risk results (per wallet and block) go with them; the new batch brings its own.
        pairs = conn.execute(sa.select(SNAPSHOTS.c.wallet_id, SNAPSHOTS.c.block_number, SNAPSHOTS.c.sync_run_id,
                                       SNAPSHOTS.c.block_hash).where(SNAPSHOTS.c.id.in_(chunk_ids))).all()
        for wallet_id, block_number, run_id in sorted({(w, b, r) for w, b, r, _ in pairs}):
            conn.execute(sa.delete(RISK).where(RISK.c.wallet_id == wallet_id, RISK.c.block_number == block_number,
                                               RISK.c.sync_run_id == run_id))
        reorganised = {b for _, b, _, block_hash in pairs if block_hash.lower() != batch_hashes.get(b)}
        for b in sorted(reorganised):  # a reorganised block's prices (of every run that read it) go too
            orphan_runs = sa.select(SYNC_RUNS.c.id).where(
                SYNC_RUNS.c.chain_id == chains[b], SYNC_RUNS.c.block_number == b, SYNC_RUNS.c.chain_ref_id == chain_ref,
                sa.func.lower(SYNC_RUNS.c.block_hash) != batch_hashes[b])
            conn.execute(sa.delete(PRICES).where(PRICES.c.sync_run_id.in_(orphan_runs)))
        conn.execute(sa.delete(POSITIONS).where(POSITIONS.c.snapshot_id.in_(chunk_ids)))
        conn.execute(sa.delete(HEALTH).where(HEALTH.c.snapshot_id.in_(chunk_ids)))
        conn.execute(sa.delete(SNAPSHOTS).where(SNAPSHOTS.c.id.in_(chunk_ids)))
    if stale:
        # Versions deleted and written again at the same blocks: counted as a purge, so that every store forgets
        # what it kept of this chain (SQLite may give a new version a deleted one's id, and a kept entry would
        # still match it: its positions and its health base would be the deleted version's).
        conn.execute(sa.update(CHAINS).where(CHAINS.c.id == chain_ref).values(purges=CHAINS.c.purges + 1))
    return len(stale)


def _unique_snapshots(snapshots: Iterable[SnapshotRow]) -> list[SnapshotRow]:
    seen: set[tuple[str, str, int]] = set()
    out = []
    for s in snapshots:
        key = (canonical_address(s.wallet), s.venue, s.block_number)
        if key in seen:
            log.warning("duplicate snapshot in one batch skipped: %s on %s at %d", *key)
            continue
        seen.add(key)
        out.append(s)
    return out


def _resolve(conn: Connection, batch: SyncBatch, snapshots: Sequence[SnapshotRow]) -> _Refs:
    venue_ids = _venue_ids(conn, {s.venue for s in snapshots} | {m.venue for m in batch.markets})
    wallet_ids = _wallet_ids(conn, {canonical_address(s.wallet) for s in snapshots}
                             | {canonical_address(r.wallet) for r in batch.risks})
    assets: list[AssetRow] = [p.asset for p in batch.prices]
    assets += [m.asset for m in batch.markets if m.asset is not None]
    assets += [p.asset for s in snapshots for p in s.positions]
    asset_ids = _upsert_assets(conn, assets)
    market_ids = _upsert_markets(conn, batch.markets, venue_ids, asset_ids)
    implicit = {
        (venue_ids[s.venue], _canonical_key(p.market_key))
        for s in snapshots
        for p in s.positions
        if p.market_key is not None
    } - market_ids.keys()
    if implicit:
        market_ids |= _get_or_create(
            conn,
            MARKETS,
            ("venue_id", "key"),
            {k: {"venue_id": k[0], "key": k[1], "name": k[1], "asset_id": None, "params": {}} for k in implicit},
            update=(),
        )
    return _Refs(venues=venue_ids, wallets=wallet_ids, assets=asset_ids, markets=market_ids)


def _venue_ids(conn: Connection, names: set[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for chunk in _chunks(sorted(names)):
        found |= dict(conn.execute(sa.select(VENUES.c.name, VENUES.c.id).where(VENUES.c.name.in_(chunk))).all())
    missing = names - found.keys()
    if missing:
        raise UnknownReferenceError(f"unknown venue(s), add them with upsert_venues first: {sorted(missing)}")
    return found


def _wallet_ids(conn: Connection, addresses: set[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for chunk in _chunks(sorted(addresses)):
        found |= dict(
            conn.execute(sa.select(WALLETS.c.address, WALLETS.c.id).where(WALLETS.c.address.in_(chunk))).all()
        )
    missing = addresses - found.keys()
    if missing:
        shown = sorted(missing)[:5]
        raise UnknownReferenceError(f"{len(missing)} unknown wallet(s), add them with add_wallets first: {shown}")
    return found


def _upsert_venues(conn: Connection, venues: Sequence[VenueRow]) -> dict[str, int]:
    rows = {
        (v.name,): {"name": v.name, "kind": VenueKind(v.kind).value, "chain_id": v.chain_id, "config": dict(v.config)}
        for v in venues
    }
    ids = _get_or_create(conn, VENUES, ("name",), rows, update=("kind", "chain_id", "config"))
    return {key[0]: venue_id for key, venue_id in ids.items()}


def _upsert_assets(conn: Connection, assets: Iterable[AssetRow]) -> dict[tuple[int, str], int]:
    rows: dict[tuple[int, str], dict[str, Any]] = {}
    for a in assets:
        key = (a.chain_id, _canonical_key(a.address))
        rows[key] = {"chain_id": key[0], "address": key[1], "symbol": a.symbol, "decimals": a.decimals}
    return _get_or_create(conn, ASSETS, ("chain_id", "address"), rows, update=("symbol", "decimals"))


def _upsert_markets(
    conn: Connection,
    markets: Iterable[MarketRow],
    venue_ids: Mapping[str, int],
    asset_ids: Mapping[tuple[int, str], int],
) -> dict[tuple[int, str], int]:
    rows: dict[tuple[int, str], dict[str, Any]] = {}
    for m in markets:
        key = (venue_ids[m.venue], _canonical_key(m.key))
        asset_id = None
        if m.asset is not None:
            asset_id = asset_ids[(m.asset.chain_id, _canonical_key(m.asset.address))]
        rows[key] = {
            "venue_id": key[0],
            "key": key[1],
            "name": m.name,
            "asset_id": asset_id,
            "params": dict(m.params),
        }
    return _get_or_create(conn, MARKETS, ("venue_id", "key"), rows, update=("name", "asset_id", "params"))


def _get_or_create(
    conn: Connection,
    table: sa.Table,
    key_columns: tuple[str, ...],
    rows: Mapping[Any, dict[str, Any]],
    *,
    update: tuple[str, ...],
) -> dict[Any, int]:
    """Ids of ``rows`` (keyed by their ``key_columns`` values as a tuple), inserting the missing ones and
    updating ``update`` columns that differ. Concurrent inserts of the same key are tolerated (``ON
    CONFLICT DO NOTHING``, then read back). Unchanged rows are not rewritten."""
    if not rows:
        return {}
    keys = list(rows)
    first = table.c[key_columns[0]]
    cols = [table.c.id, *(table.c[c] for c in key_columns), *(table.c[c] for c in update)]

    def select_existing(wanted: Sequence[Any]) -> dict[Any, tuple[int, dict[str, Any]]]:
        found: dict[Any, tuple[int, dict[str, Any]]] = {}
        wanted_set = set(wanted)
        firsts = sorted({k[0] for k in wanted})
        for chunk in _chunks(firsts):
            for r in conn.execute(sa.select(*cols).where(first.in_(chunk))).mappings():
                key = tuple(r[c] for c in key_columns)
                if key in wanted_set:
                    found[key] = (r["id"], {c: r[c] for c in update})
        return found

    found = select_existing(keys)
    missing = [k for k in keys if k not in found]
    if missing:
        conn.execute(
            upsert_insert(conn, table).on_conflict_do_nothing(index_elements=list(key_columns)),
            [rows[k] for k in missing],
        )
        found |= select_existing(missing)
    changed = [
        {"_id": found[k][0], **{c: rows[k][c] for c in update}}
        for k in keys
        if any(found[k][1][c] != rows[k][c] for c in update)
    ]
    if changed:
        conn.execute(
            sa.update(table).where(table.c.id == sa.bindparam("_id")).values({c: sa.bindparam(c) for c in update}),
            changed,
        )
    return {k: found[k][0] for k in keys}


# -- row <-> params -----------------------------------------------------------------------------------


def _position_params(p: PositionRow, snapshot_id: int, venue_id: int, refs: _Refs) -> dict[str, Any]:
    asset_id = refs.assets[(p.asset.chain_id, _canonical_key(p.asset.address))]
    market_id = None
    if p.market_key is not None:
        market_id = refs.markets[(venue_id, _canonical_key(p.market_key))]
    return {
        "snapshot_id": snapshot_id,
        "market_id": market_id,
        "asset_id": asset_id,
        "side": str(p.side),
        "amount_raw": p.amount_raw,
        "amount": p.amount,
        "price_usd": p.price_usd,
        "value_usd": p.value_usd,
        "is_collateral": p.is_collateral,
        "extra": dict(p.extra),
        "state": p.state,
    }


def _health_params(h: HealthRow, snapshot_id: int, wallet_id: int, venue_id: int, block: int) -> dict[str, Any]:
    return {
        "snapshot_id": snapshot_id,
        "wallet_id": wallet_id,
        "venue_id": venue_id,
        "block_number": block,
        "computed_at": h.computed_at,
        "health_factor": h.health_factor,
        "health_factor_raw": h.health_factor_raw,
        "onchain_health_factor_raw": h.onchain_health_factor_raw,
        "collateral_usd": h.collateral_usd,
        "debt_usd": h.debt_usd,
        "liquidation_threshold": h.liquidation_threshold,
        "matches_onchain": h.matches_onchain,
        "flags": list(h.flags),
        "extra": dict(h.extra),
    }


def _price_params(p: PriceRow, run_id: int, refs: _Refs) -> dict[str, Any]:
    return {
        "sync_run_id": run_id,
        "asset_id": refs.assets[(p.asset.chain_id, _canonical_key(p.asset.address))],
        "chain_id": p.asset.chain_id,
        "block_number": p.block_number,
        "source": p.source,
        "source_address": None if p.source_address is None else canonical_address(p.source_address),
        "price_raw": p.price_raw,
        "decimals": p.decimals,
        "price_usd": p.price_usd,
        "updated_at": p.updated_at,
        "age_s": p.age_s,
        "flags": list(p.flags),
        "observed_at": p.observed_at,
    }


_JSON_COLUMNS: dict[str, tuple[str, ...]] = {}


def _json_text(table: sa.Table, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` (copies) with their JSON columns' values serialized once, for the engine and the byte count alike
    (:class:`~db.engine.JsonText`); NULLs and SQL expressions as they are."""
    cols = _JSON_COLUMNS.get(table.name)
    if cols is None:
        cols = _JSON_COLUMNS[table.name] = tuple(c.name for c in table.columns if isinstance(c.type, sa.JSON))
    if not cols or not rows:
        return rows
    return [r | {c: JsonText.of(r[c]) for c in cols
                 if r.get(c) is not None and not isinstance(r[c], (JsonText, sa.ClauseElement))} for r in rows]


def _copy_rows(
    conn: Connection, table: sa.Table, columns: tuple[tuple[str, str], ...], rows: list[dict[str, Any]]
) -> None:
    """Binary COPY of ``rows`` into ``table`` on the connection's own transaction (PostgreSQL only).

    Values are written as they are (ints for NUMERIC, dicts for JSONB, aware datetimes): the column types'
    bind processing is bypassed, so only tables whose Python values psycopg dumps exactly may use this.
    """
    names = [name for name, _ in columns]
    quote = conn.dialect.identifier_preparer.quote
    statement = f"COPY {quote(table.name)} ({', '.join(quote(n) for n in names)}) FROM STDIN (FORMAT BINARY)"
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    with dbapi.cursor() as cursor, cursor.copy(statement) as copy:  # type: ignore[attr-defined]
        copy.set_types([pg_type for _, pg_type in columns])
        for row in rows:
            copy.write_row([row[n] for n in names])


# -- rows out -----------------------------------------------------------------------------------------


def _wallet_row(r: Mapping[Any, Any]) -> WalletRow:
    return WalletRow(id=r["id"], address=r["address"], label=r["label"], created_at=r["created_at"], active=r["active"],
                     ens_name=r.get("ens_name"))


def _health_row(r: Mapping[Any, Any]) -> HealthRow:
    return HealthRow(
        computed_at=r["computed_at"],
        collateral_usd=r["collateral_usd"],
        debt_usd=r["debt_usd"],
        health_factor=r["health_factor"],
        health_factor_raw=r["health_factor_raw"],
        onchain_health_factor_raw=r["onchain_health_factor_raw"],
        liquidation_threshold=r["liquidation_threshold"],
        matches_onchain=r["matches_onchain"],
        flags=tuple(r["flags"]),
        extra=r["extra"],
    )


def _merged_extra(base: Any, extra: Any) -> Any:
    """A stored health row's ``extra`` as written: whole where its version has no ``health_base``, else the base
    with the row's changes applied (:mod:`db.jsondelta`)."""
    return extra if base is None else jsondelta.apply(base, extra or {})


def _stored_json(value: Any) -> Any:
    """``value`` as a JSON column gives it back (see :func:`_plain_json`)."""
    return value if _plain_json(value) else json.loads(json.dumps(value))


def _asset_row(r: Mapping[Any, Any]) -> AssetRow:
    return AssetRow(chain_id=r["a_chain_id"], address=r["a_address"], symbol=r["a_symbol"], decimals=r["a_decimals"])


def _asset_columns() -> list[sa.Label[Any]]:
    return [
        ASSETS.c.chain_id.label("a_chain_id"),
        ASSETS.c.address.label("a_address"),
        ASSETS.c.symbol.label("a_symbol"),
        ASSETS.c.decimals.label("a_decimals"),
    ]


def _positions_by_snapshot(conn: Connection, ids: Sequence[int],
                           values: Mapping[int, Mapping[str, Any] | None] | None = None
                           ) -> dict[int, tuple[PositionRow, ...]]:
    """The positions of each version (id), in their stored order; with ``values`` (by version id, a health row's
    ``position_values``), valued at that row's block where it says so."""
    out: dict[int, list[PositionRow]] = {}
    for chunk in _chunks(ids):
        query = (
            sa.select(POSITIONS, MARKETS.c.key.label("market_key"), *_asset_columns())
            .join(ASSETS, ASSETS.c.id == POSITIONS.c.asset_id)
            .outerjoin(MARKETS, MARKETS.c.id == POSITIONS.c.market_id)
            .where(POSITIONS.c.snapshot_id.in_(chunk))
            .order_by(POSITIONS.c.id)
        )
        for r in conn.execute(query).mappings():
            position = PositionRow(
                asset=_asset_row(r),
                side=PositionSide(r["side"]),
                amount_raw=r["amount_raw"],
                amount=r["amount"],
                price_usd=r["price_usd"],
                value_usd=r["value_usd"],
                is_collateral=r["is_collateral"],
                market_key=r["market_key"],
                extra=r["extra"],
                state=r["state"],
            )
            at = ((values or {}).get(r["snapshot_id"]) or {}).get(str(r["id"]))
            if at:
                raw, amount, price, value, moved = at
                position = dataclasses.replace(position, amount_raw=int(raw), amount=amount, price_usd=price,
                                               value_usd=value, extra={**position.extra, **(moved or {})})
            out.setdefault(r["snapshot_id"], []).append(position)
    return {k: tuple(v) for k, v in out.items()}


def _as_of(conn: Connection, s: Mapping[Any, Any]) -> dict[str, Any]:
    """The newest block read of a version (``last_seen_block``) with its sync run, block hash and time: what the
    version is "as of". The version's own first block when that run is gone."""
    block = s["last_seen_block"] if s["last_seen_block"] is not None else s["block_number"]
    out: dict[str, Any] = {"block_number": block, "sync_run_id": s["sync_run_id"], "block_hash": s["block_hash"],
                           "block_timestamp": s["block_timestamp"], "taken_at": s["taken_at"]}
    if block == s["block_number"]:
        return out
    run = conn.execute(
        sa.select(SYNC_RUNS.c.id, SYNC_RUNS.c.block_hash, SYNC_RUNS.c.block_timestamp, SYNC_RUNS.c.started_at)
        .where(SYNC_RUNS.c.chain_ref_id == s["chain_ref_id"], SYNC_RUNS.c.block_number == block,
               SYNC_RUNS.c.status != SyncStatus.FAILED.value)
        .order_by(SYNC_RUNS.c.id.desc()).limit(1)  # the newest: a reorganised block's runs stay as records
    ).first()
    if run is None or run.block_hash is None or run.block_timestamp is None:
        return out
    return {"block_number": block, "sync_run_id": run.id, "block_hash": run.block_hash,
            "block_timestamp": run.block_timestamp, "taken_at": run.started_at}


def _confirmed(conn: Connection, snaps: Sequence[Mapping[Any, Any]],
               as_of: Mapping[int, Mapping[str, Any]]) -> dict[int, dict[str, Any]]:
    """Open, good versions whose venue a later good sync confirmed (``venue_confirmations``: it went through every
    tracked wallet of the venue at that block and had nothing to write for this one): that block, its hash and
    time and the confirmation's time, by version id. The caller passes only versions of a tracked wallet whose
    newest read did not fail."""
    open_ok = [s for s in snaps if s["valid_to_block"] is None and s["status"] == SnapshotStatus.OK.value]
    if not open_ok:
        return {}
    found = {(r.chain_ref_id, r.venue_id): r for r in conn.execute(
        sa.select(CONFIRMATIONS).where(CONFIRMATIONS.c.chain_ref_id.in_(sorted({s["chain_ref_id"] for s in open_ok})),
                                       CONFIRMATIONS.c.venue_id.in_(sorted({s["venue_id"] for s in open_ok}))))}
    out = {}
    for s in open_ok:
        conf = found.get((s["chain_ref_id"], s["venue_id"]))
        if conf is None or conf.block_number <= as_of[s["id"]]["block_number"]:
            continue
        out[s["id"]] = {**as_of[s["id"]], "block_number": conf.block_number, "block_hash": conf.block_hash,
                        "block_timestamp": conf.block_timestamp, "taken_at": conf.confirmed_at}
    return out


def _prices_for(conn: Connection, run_ids: set[int], addresses: set[str]) -> dict[int, list[PriceRow]]:
    out: dict[int, list[PriceRow]] = {}
    if not run_ids or not addresses:
        return out
    for chunk in _chunks(sorted(run_ids)):
        query = (
            sa.select(PRICES, *_asset_columns())
            .join(ASSETS, ASSETS.c.id == PRICES.c.asset_id)
            .where(PRICES.c.sync_run_id.in_(chunk))
            .order_by(PRICES.c.id)
        )
        for r in conn.execute(query).mappings():
            if r["a_address"] not in addresses:
                continue
            out.setdefault(r["sync_run_id"], []).append(_price_row(r))
    return out


def _price_row(r: Mapping[Any, Any]) -> PriceRow:
    return PriceRow(
        asset=_asset_row(r),
        block_number=r["block_number"],
        source=r["source"],
        price_raw=r["price_raw"],
        decimals=r["decimals"],
        price_usd=r["price_usd"],
        observed_at=r["observed_at"],
        source_address=r["source_address"],
        updated_at=r["updated_at"],
        age_s=r["age_s"],
        flags=tuple(r["flags"]),
    )


def _snapshot_row(
    s: Mapping[Any, Any], wallet: str, positions: tuple[PositionRow, ...], health: HealthRow | None
) -> SnapshotRow:
    return SnapshotRow(
        wallet=wallet,
        venue=s["venue_name"],
        chain_id=s["chain_id"],
        block_number=s["block_number"],
        block_hash=s["block_hash"],
        block_timestamp=s["block_timestamp"],
        taken_at=s["taken_at"],
        venue_timestamp=s["venue_timestamp"],
        status=SnapshotStatus(s["status"]),
        error=s["error"],
        positions=positions,
        health=health,
    )


def _aware_or_none(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is None:
        return None
    return value


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return first[:_ERROR_TEXT_MAX]
