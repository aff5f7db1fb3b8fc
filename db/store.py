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

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from types import TracebackType
from typing import Any, Self, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, Engine

from db.addresses import HEX40, canonical_address
from db.apikeys import ApiKeyStore
from db.automation import AutomationStore
from db.chains import ChainStore, current_chain_ids, current_chain_ref, note_stored_block
from db.engine import make_engine, read_transaction, safe_url, write_transaction
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

__all__ = ["COPY_THRESHOLD", "Store", "canonical_address"]

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


def _upsert_insert(conn: Connection, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
    """``INSERT`` with the dialect's ``ON CONFLICT`` support (PostgreSQL and SQLite share the syntax)."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"unsupported database backend: {conn.dialect.name}")


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

    def __init__(self, engine: Engine, *, copy_threshold: int | None = COPY_THRESHOLD) -> None:
        """Wrap an engine made by :func:`db.engine.make_engine` (which sets SQLite up); not migrated here,
        see :meth:`open`.

        ``copy_threshold``: position count from which PostgreSQL uses binary COPY; ``None`` never does.
        """
        self._engine = engine
        self.copy_threshold = copy_threshold

    @classmethod
    def open(
        cls,
        url: str | URL | None = None,
        *,
        migrate: bool = True,
        copy_threshold: int | None = COPY_THRESHOLD,
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
        return cls(engine, copy_threshold=copy_threshold)

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
                conn.execute(_upsert_insert(conn, WALLETS).on_conflict_do_nothing(index_elements=["address"]), new)
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
        """Write one sync run and everything read in it, in one transaction; returns the sync run's id.

        See the module docstring for idempotence (already-stored snapshots are skipped) and failure handling
        (nothing is written; a ``failed`` run is recorded separately unless ``record_failure`` is false;
        :class:`~db.errors.SyncWriteError` is raised).
        """
        try:
            with write_transaction(self._engine) as conn:
                return self._write_sync(conn, batch)
        except Exception as exc:
            failed_id = self._record_failed_run(batch, exc) if record_failure else None
            raise SyncWriteError(
                f"sync batch for chain {batch.chain_id} at block {batch.block_number} was not written: "
                f"{type(exc).__name__}: {_short(exc)}",
                failed_run_id=failed_id,
            ) from exc

    def _write_sync(self, conn: Connection, batch: SyncBatch) -> int:
        snapshots = _unique_snapshots(batch.snapshots)
        refs = _resolve(conn, batch, snapshots)
        chain_ref = batch.chain_ref_id if batch.chain_ref_id is not None else current_chain_ref(
            conn, batch.chain_id, _now())

        run_id: int = conn.execute(
            sa.insert(SYNC_RUNS).returning(SYNC_RUNS.c.id),
            {
                "started_at": batch.started_at,
                "finished_at": batch.finished_at,
                "chain_id": batch.chain_id,
                "block_number": batch.block_number,
                "block_hash": batch.block_hash,
                "block_timestamp": batch.block_timestamp,
                "status": SyncStatus(batch.status).value,
                "wallets": len({refs.wallets[canonical_address(s.wallet)] for s in snapshots}),
                "error": batch.error,
                "chain_ref_id": chain_ref,
            },
        ).scalar_one()
        if batch.block_number is not None and SyncStatus(batch.status) is not SyncStatus.FAILED:
            note_stored_block(conn, chain_ref, batch.block_number, batch.block_hash, batch.block_timestamp, _now())

        replaced = _replace_superseded(conn, snapshots, refs, chain_ref)
        if replaced:
            log.info("sync run %d: %d stored snapshot(s) superseded (reorganised block, or an error read again)",
                     run_id, replaced)
        if snapshots:
            conn.execute(
                _upsert_insert(conn, SNAPSHOTS).on_conflict_do_nothing(
                    index_elements=["wallet_id", "venue_id", "chain_ref_id", "block_number"]
                ),
                [
                    {
                        "sync_run_id": run_id,
                        "wallet_id": refs.wallets[canonical_address(s.wallet)],
                        "venue_id": refs.venues[s.venue],
                        "chain_ref_id": chain_ref,
                        "chain_id": s.chain_id,
                        "block_number": s.block_number,
                        "block_hash": s.block_hash,
                        "block_timestamp": s.block_timestamp,
                        "taken_at": s.taken_at,
                        "venue_timestamp": s.venue_timestamp,
                        "status": SnapshotStatus(s.status).value,
                        "error": s.error,
                    }
                    for s in snapshots
                ],
            )
        # Ids of the snapshots this run actually inserted (conflicting ones belong to an earlier run).
        snapshot_ids: dict[tuple[int, int, int], int] = {
            (w, v, b): sid
            for sid, w, v, b in conn.execute(
                sa.select(SNAPSHOTS.c.id, SNAPSHOTS.c.wallet_id, SNAPSHOTS.c.venue_id, SNAPSHOTS.c.block_number).where(
                    SNAPSHOTS.c.sync_run_id == run_id
                )
            )
        }
        skipped = len(snapshots) - len(snapshot_ids)
        if skipped:
            log.info("sync run %d: %d snapshot(s) already stored, skipped", run_id, skipped)

        positions: list[dict[str, Any]] = []
        health: list[dict[str, Any]] = []
        for s in snapshots:
            wallet_id = refs.wallets[canonical_address(s.wallet)]
            venue_id = refs.venues[s.venue]
            sid = snapshot_ids.get((wallet_id, venue_id, s.block_number))
            if sid is None:
                continue
            for p in s.positions:
                positions.append(_position_params(p, sid, venue_id, refs))
            if s.health is not None:
                health.append(_health_params(s.health, sid, wallet_id, venue_id, s.block_number))

        self._insert_positions(conn, positions)
        if health:
            conn.execute(sa.insert(HEALTH), health)
        if batch.prices:
            conn.execute(sa.insert(PRICES), [_price_params(p, run_id, refs) for p in batch.prices])
        if batch.risks:
            conn.execute(sa.insert(RISK), [
                {"sync_run_id": run_id, "wallet_id": refs.wallets[canonical_address(r.wallet)],
                 "block_number": r.block_number, "computed_at": r.computed_at, "unified_health": r.unified_health,
                 "equity_usd": r.equity_usd, "margin_usd": r.margin_usd,
                 "netting_benefit_usd": r.netting_benefit_usd, "document": dict(r.document)}
                for r in batch.risks
            ])
        return run_id

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
        with self._engine.connect() as conn:
            r = conn.execute(query).mappings().first()
        if r is None:
            return None
        return RiskRow(wallet=r["address"], block_number=r["block_number"], computed_at=r["computed_at"],
                       unified_health=r["unified_health"], equity_usd=r["equity_usd"], margin_usd=r["margin_usd"],
                       netting_benefit_usd=r["netting_benefit_usd"], document=r["document"])

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

    def _insert_positions(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        if conn.dialect.name == "postgresql" and self.copy_threshold is not None and len(rows) >= self.copy_threshold:
            _copy_rows(conn, POSITIONS, _POSITION_COPY_COLUMNS, rows)
        else:
            conn.execute(sa.insert(POSITIONS), rows)

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
                sa.select(WALLETS.c.id, WALLETS.c.address).where(WALLETS.c.address == canonical_address(address))
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
            positions = _positions_by_snapshot(conn, ids)
            health = _health_by_snapshot(conn, ids)
            prices = _prices_for(
                conn,
                {s["sync_run_id"] for s in snaps},
                {p.asset.address for ps in positions.values() for p in ps},
            )
        out = []
        for s in snaps:
            snapshot = _snapshot_row(s, wallet.address, positions.get(s["id"], ()), health.get(s["id"]))
            used = {(p.asset.chain_id, p.asset.address) for p in snapshot.positions}
            bad = failed.get(s["id"])
            out.append(
                LatestVenueHealth(
                    venue=s["venue_name"],
                    sync_run_id=s["sync_run_id"],
                    snapshot_id=s["id"],
                    snapshot=snapshot,
                    prices=tuple(
                        p for p in prices.get(s["sync_run_id"], ()) if (p.asset.chain_id, p.asset.address) in used
                    ),
                    failed=None if bad is None else _snapshot_row(bad, wallet.address, (), None),
                    chain_ref_id=s["chain_ref_id"],
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
        query = (
            sa.select(
                SNAPSHOTS.c.id,
                SNAPSHOTS.c.block_number,
                SNAPSHOTS.c.block_timestamp,
                SNAPSHOTS.c.status,
                SNAPSHOTS.c.error,
                VENUES.c.name.label("venue_name"),
                *[c.label(f"h_{c.name}") for c in HEALTH.c],
            )
            .join(WALLETS, WALLETS.c.id == SNAPSHOTS.c.wallet_id)
            .join(VENUES, VENUES.c.id == SNAPSHOTS.c.venue_id)
            .outerjoin(HEALTH, HEALTH.c.snapshot_id == SNAPSHOTS.c.id)
            .where(WALLETS.c.address == canonical_address(address),
                   SNAPSHOTS.c.chain_ref_id.in_(current_chain_ids()))
            .order_by(SNAPSHOTS.c.block_number.desc(), VENUES.c.name)
            .limit(limit)
        )
        if venue is not None:
            query = query.where(VENUES.c.name == venue)
        if from_block is not None:
            query = query.where(SNAPSHOTS.c.block_number >= from_block)
        if to_block is not None:
            query = query.where(SNAPSHOTS.c.block_number <= to_block)
        with read_transaction(self._engine) as conn:
            rows = conn.execute(query).mappings().all()
        return [
            HealthPoint(
                venue=r["venue_name"],
                block_number=r["block_number"],
                block_timestamp=r["block_timestamp"],
                snapshot_id=r["id"],
                status=SnapshotStatus(r["status"]),
                error=r["error"],
                health=None if r["h_id"] is None else _health_row({c.name: r[f"h_{c.name}"] for c in HEALTH.c}),
            )
            for r in rows
        ]

    def latest_block(self, chain_id: int) -> int | None:
        """The newest block of a sync run on this chain's current identity that did not fail; ``None`` if there
        is none."""
        query = sa.select(sa.func.max(SYNC_RUNS.c.block_number)).where(
            SYNC_RUNS.c.chain_id == chain_id, SYNC_RUNS.c.status != SyncStatus.FAILED.value,
            SYNC_RUNS.c.chain_ref_id.in_(current_chain_ids()),
        )
        with read_transaction(self._engine) as conn:
            value: int | None = conn.execute(query).scalar_one()
        return value

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


# -- resolution of natural keys -----------------------------------------------------------------------


def _replace_superseded(conn: Connection, snapshots: Sequence[SnapshotRow], refs: _Refs, chain_ref: int) -> int:
    """Delete the stored snapshots (with their positions and health) that the batch's supersede at the same
    (wallet, venue, block number): one read at another block hash (the block was reorganised; the batch's was
    confirmed canonical when read), or an error where the batch read the venue cleanly. A clean stored snapshot of
    the same block hash stays (a second sync of one block writes nothing new). Returns how many were deleted."""
    if not snapshots:
        return 0
    wanted = {(refs.wallets[canonical_address(s.wallet)], refs.venues[s.venue], s.block_number): s for s in snapshots}
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
            _upsert_insert(conn, table).on_conflict_do_nothing(index_elements=list(key_columns)),
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


def _asset_row(r: Mapping[Any, Any]) -> AssetRow:
    return AssetRow(chain_id=r["a_chain_id"], address=r["a_address"], symbol=r["a_symbol"], decimals=r["a_decimals"])


def _asset_columns() -> list[sa.Label[Any]]:
    return [
        ASSETS.c.chain_id.label("a_chain_id"),
        ASSETS.c.address.label("a_address"),
        ASSETS.c.symbol.label("a_symbol"),
        ASSETS.c.decimals.label("a_decimals"),
    ]


def _positions_by_snapshot(conn: Connection, ids: Sequence[int]) -> dict[int, tuple[PositionRow, ...]]:
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
            out.setdefault(r["snapshot_id"], []).append(
                PositionRow(
                    asset=_asset_row(r),
                    side=PositionSide(r["side"]),
                    amount_raw=r["amount_raw"],
                    amount=r["amount"],
                    price_usd=r["price_usd"],
                    value_usd=r["value_usd"],
                    is_collateral=r["is_collateral"],
                    market_key=r["market_key"],
                    extra=r["extra"],
                )
            )
    return {k: tuple(v) for k, v in out.items()}


def _health_by_snapshot(conn: Connection, ids: Sequence[int]) -> dict[int, HealthRow]:
    out: dict[int, HealthRow] = {}
    for chunk in _chunks(ids):
        for r in conn.execute(sa.select(HEALTH).where(HEALTH.c.snapshot_id.in_(chunk))).mappings():
            out[r["snapshot_id"]] = _health_row(r)
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
