"""Chain identities: which chain the stored rows were read from, and how syncing each chain has gone.

A chain *identity* (table ``chains``) is one chain behind a chain id: its genesis hash and the newest block stored
from it. Every sync run and snapshot points at the identity it was read from, and every "newest" query of the
store reads only *current* identities (``retired_at IS NULL``; at most one per chain id, enforced by a partial
unique index). When the chain behind a configured name changes — a devnet reset, a new fork, an RPC pointed
elsewhere — the syncer (:mod:`aggregator.chainid`) asks :meth:`ChainStore.begin_chain` to retire the old identity
and begin a new one: the old rows stay in the store, apart, and are neither served as current nor mixed into a
history.

:class:`ChainStore` is mixed into :class:`db.Store`. It decides nothing about chains itself (the store does no
I/O to nodes): the syncer compares what the node says with :meth:`ChainStore.stored_blocks` and tells the store.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from db.engine import read_transaction, upsert_insert, write_transaction
from db.models import Base
from db.rows import ChainRow, ChainSyncStatus, SyncStatus

__all__ = ["ChainStore", "StoredBlock", "current_chain_ids"]

log = logging.getLogger(__name__)

_T = Base.metadata.tables
CHAINS = _T["chains"]
SYNC_RUNS = _T["sync_runs"]
SNAPSHOTS = _T["position_snapshots"]
POSITIONS = _T["positions"]
HEALTH = _T["health_results"]
PRICES = _T["prices"]
RISK = _T["risk_results"]
CONFIRMATIONS = _T["venue_confirmations"]
VENUES = _T["venues"]

_ERROR_TEXT_MAX = 4_000


@dataclass(frozen=True, slots=True)
class StoredBlock:
    """A block some sync run of an identity read (and stored without failing)."""

    number: int
    hash: str
    timestamp: datetime | None


def _now() -> datetime:
    return datetime.now(UTC)


def _chain_row(r: Any) -> ChainRow:
    return ChainRow(id=r["id"], name=r["name"], chain_id=r["chain_id"], genesis_hash=r["genesis_hash"],
                    created_at=r["created_at"], first_block=r["first_block"], last_block=r["last_block"],
                    last_block_hash=r["last_block_hash"], last_block_timestamp=r["last_block_timestamp"],
                    last_synced_at=r["last_synced_at"], retired_at=r["retired_at"], retired_reason=r["retired_reason"])


def current_chain_ids() -> sa.Select[tuple[int]]:
    """``SELECT id FROM chains WHERE retired_at IS NULL``: the identities whose rows are served as current."""
    return sa.select(CHAINS.c.id).where(CHAINS.c.retired_at.is_(None))


def current_chain_ref(conn: Connection, chain_id: int, now: datetime) -> int:
    """The current identity of ``chain_id``, creating an unverified one (genesis unknown) when there is none."""
    found = conn.execute(sa.select(CHAINS.c.id).where(CHAINS.c.chain_id == chain_id,
                                                      CHAINS.c.retired_at.is_(None))).scalar_one_or_none()
    if found is not None:
        return int(found)
    created: int = conn.execute(sa.insert(CHAINS).returning(CHAINS.c.id),
                                {"chain_id": chain_id, "created_at": now}).scalar_one()
    return created


def note_stored_block(conn: Connection, chain_ref_id: int, number: int, block_hash: str | None,
                      timestamp: datetime | None, now: datetime, venues: Sequence[str] = ()) -> None:
    """Record that a good sync of ``chain_ref_id`` finished at ``now`` (the batch's own clock) having stored
    ``number`` — a block synced again included, which reuses its run: ``last_synced_at`` is the newest good sync's
    time (never moved back), and ``number`` becomes the identity's newest block when higher. ``venues``: those
    whose every tracked wallet the sync went through cleanly at ``number`` (:func:`_note_confirmed_venues`)."""
    row = conn.execute(sa.select(CHAINS.c.first_block, CHAINS.c.last_block, CHAINS.c.last_synced_at)
                       .where(CHAINS.c.id == chain_ref_id)).one()
    values: dict[str, Any] = {}
    if row.last_synced_at is None or now > row.last_synced_at:
        values["last_synced_at"] = now
    if row.first_block is None or number < row.first_block:
        values["first_block"] = number
    if row.last_block is None or number >= row.last_block:
        values |= {"last_block": number, "last_block_hash": block_hash, "last_block_timestamp": timestamp}
    if values:
        conn.execute(sa.update(CHAINS).where(CHAINS.c.id == chain_ref_id).values(values))
    _note_confirmed_venues(conn, chain_ref_id, venues, number, block_hash, timestamp, now)


def _note_confirmed_venues(conn: Connection, chain_ref_id: int, venues: Sequence[str], number: int,
                          block_hash: str | None, timestamp: datetime | None, now: datetime) -> None:
    """Record that a good sync went through every tracked wallet of ``venues`` at block ``number`` (a venue's
    confirmation only moves forward; unknown venue names and a block without hash or time record nothing)."""
    if not venues or block_hash is None or timestamp is None:
        return
    ids = conn.execute(sa.select(VENUES.c.id).where(VENUES.c.name.in_(sorted(set(venues))))).scalars().all()
    if not ids:
        return
    rows = [{"chain_ref_id": chain_ref_id, "venue_id": venue_id, "block_number": number, "block_hash": block_hash,
             "block_timestamp": timestamp, "confirmed_at": now} for venue_id in sorted(ids)]
    insert = upsert_insert(conn, CONFIRMATIONS)
    conn.execute(insert.on_conflict_do_update(
        index_elements=["chain_ref_id", "venue_id"],
        set_={k: insert.excluded[k] for k in ("block_number", "block_hash", "block_timestamp", "confirmed_at")},
        where=CONFIRMATIONS.c.block_number <= insert.excluded.block_number,
    ), rows)


class ChainStore:
    """Chain identities and sync status; mixed into :class:`db.Store` (which provides ``_engine``)."""

    _engine: Engine

    # -- identities ---------------------------------------------------------------------------------------------
    def current_chain(self, chain_id: int) -> ChainRow | None:
        """The current identity of ``chain_id`` (``None`` before the first sync of that chain id)."""
        with read_transaction(self._engine) as conn:
            row = conn.execute(sa.select(CHAINS).where(CHAINS.c.chain_id == chain_id, CHAINS.c.retired_at.is_(None))
                               ).mappings().one_or_none()
        return None if row is None else _chain_row(row)

    def list_chains(self, *, current_only: bool = False) -> list[ChainRow]:
        """Every chain identity, newest first (current ones only with ``current_only``)."""
        query = sa.select(CHAINS).order_by(CHAINS.c.id.desc())
        if current_only:
            query = query.where(CHAINS.c.retired_at.is_(None))
        with read_transaction(self._engine) as conn:
            return [_chain_row(r) for r in conn.execute(query).mappings()]

    def stored_blocks(self, chain_ref_id: int, limit: int = 16, *, at_most: int | None = None) -> list[StoredBlock]:
        """The ``limit`` highest distinct blocks that runs of the identity stored (failed runs excluded; with
        ``at_most``, only blocks at or below that height), highest first: what the syncer checks against the node
        to tell a reorganisation or a lagging node from another chain."""
        query = (
            sa.select(SYNC_RUNS.c.block_number, SYNC_RUNS.c.block_hash, sa.func.max(SYNC_RUNS.c.block_timestamp))
            .where(SYNC_RUNS.c.chain_ref_id == chain_ref_id, SYNC_RUNS.c.status != SyncStatus.FAILED.value,
                   SYNC_RUNS.c.block_number.is_not(None), SYNC_RUNS.c.block_hash.is_not(None))
            .group_by(SYNC_RUNS.c.block_number, SYNC_RUNS.c.block_hash)
            .order_by(SYNC_RUNS.c.block_number.desc())
            .limit(limit)
        )
        if at_most is not None:
            query = query.where(SYNC_RUNS.c.block_number <= at_most)
        with read_transaction(self._engine) as conn:
            return [StoredBlock(int(n), str(h), t) for n, h, t in conn.execute(query)]

    def begin_chain(self, chain_id: int, name: str, genesis_hash: str, *, retire: int | None = None,
                    reason: str | None = None) -> ChainRow:
        """Make a new identity the current one of ``chain_id``, retiring identity ``retire`` (with ``reason``).

        One transaction: the old identity is retired and the new one created together. When another process made
        the switch first (the partial unique index refuses a second current identity), its identity is returned
        if it has the same genesis hash; otherwise the conflict is raised.
        """
        now = _now()
        try:
            with write_transaction(self._engine) as conn:
                if retire is not None:
                    conn.execute(sa.update(CHAINS).where(CHAINS.c.id == retire, CHAINS.c.retired_at.is_(None))
                                 .values(retired_at=now, retired_reason=(reason or "")[:_ERROR_TEXT_MAX] or None))
                new_id: int = conn.execute(sa.insert(CHAINS).returning(CHAINS.c.id), {
                    "chain_id": chain_id, "name": name, "genesis_hash": genesis_hash, "created_at": now,
                }).scalar_one()
                row = conn.execute(sa.select(CHAINS).where(CHAINS.c.id == new_id)).mappings().one()
                return _chain_row(row)
        except IntegrityError:
            current = self.current_chain(chain_id)
            if current is not None and current.genesis_hash == genesis_hash:
                return current
            raise

    def verify_chain(self, chain_ref_id: int, name: str, genesis_hash: str) -> ChainRow:
        """Record the configured name and the genesis hash of an identity checked against the node (adopting an
        identity migrated from an older store, or recording a renamed chain)."""
        with write_transaction(self._engine) as conn:
            conn.execute(sa.update(CHAINS).where(CHAINS.c.id == chain_ref_id)
                         .values(name=name, genesis_hash=genesis_hash))
            return _chain_row(conn.execute(sa.select(CHAINS).where(CHAINS.c.id == chain_ref_id)).mappings().one())

    def purge_above(self, chain_ref_id: int, block_number: int) -> int:
        """Delete what the identity stored from blocks above ``block_number`` — reorganised away, no longer on the
        chain: snapshots with their positions and health, and the risk results and prices of those runs; a position
        version that began before then ends there (its later health rows go). Sync run rows stay (the record of what
        was read). Returns the snapshots deleted."""
        with write_transaction(self._engine) as conn:
            runs = sa.select(SYNC_RUNS.c.id).where(SYNC_RUNS.c.chain_ref_id == chain_ref_id,
                                                   SYNC_RUNS.c.block_number > block_number)
            snaps = sa.select(SNAPSHOTS.c.id).where(SNAPSHOTS.c.chain_ref_id == chain_ref_id,
                                                    SNAPSHOTS.c.block_number > block_number)
            conn.execute(sa.delete(POSITIONS).where(POSITIONS.c.snapshot_id.in_(snaps)))
            conn.execute(sa.delete(HEALTH).where(HEALTH.c.snapshot_id.in_(snaps)))
            deleted = conn.execute(sa.delete(SNAPSHOTS).where(SNAPSHOTS.c.chain_ref_id == chain_ref_id,
                                                              SNAPSHOTS.c.block_number > block_number)).rowcount
            conn.execute(sa.delete(RISK).where(RISK.c.sync_run_id.in_(runs)))
            conn.execute(sa.delete(PRICES).where(PRICES.c.sync_run_id.in_(runs)))
            conn.execute(sa.delete(CONFIRMATIONS).where(CONFIRMATIONS.c.chain_ref_id == chain_ref_id,
                                                        CONFIRMATIONS.c.block_number > block_number))
            # Versions that began before the fork end at it: their health rows of later blocks go, they were last
            # seen at the fork at the latest, and the newest left of each (wallet, venue) is open-ended again.
            versions = sa.select(SNAPSHOTS.c.id).where(SNAPSHOTS.c.chain_ref_id == chain_ref_id)
            conn.execute(sa.delete(HEALTH).where(HEALTH.c.snapshot_id.in_(versions),
                                                 HEALTH.c.block_number > block_number))
            conn.execute(sa.update(SNAPSHOTS).where(SNAPSHOTS.c.chain_ref_id == chain_ref_id,
                                                    SNAPSHOTS.c.last_seen_block > block_number)
                         .values(last_seen_block=block_number))
            conn.execute(sa.update(SNAPSHOTS).where(SNAPSHOTS.c.chain_ref_id == chain_ref_id,
                                                    SNAPSHOTS.c.valid_to_block >= block_number)
                         .values(valid_to_block=None))
            newest = conn.execute(
                sa.select(SYNC_RUNS.c.block_number, SYNC_RUNS.c.block_hash, SYNC_RUNS.c.block_timestamp)
                .where(SYNC_RUNS.c.chain_ref_id == chain_ref_id, SYNC_RUNS.c.block_number <= block_number,
                       SYNC_RUNS.c.status != SyncStatus.FAILED.value)
                .order_by(SYNC_RUNS.c.block_number.desc(), SYNC_RUNS.c.id.desc()).limit(1)).one_or_none()
            conn.execute(sa.update(CHAINS).where(CHAINS.c.id == chain_ref_id).values(
                purges=CHAINS.c.purges + 1,
                last_block=newest.block_number if newest else None,
                last_block_hash=newest.block_hash if newest else None,
                last_block_timestamp=newest.block_timestamp if newest else None))
            return int(deleted or 0)

    def confirm_block(self, chain_ref_id: int, number: int, block_hash: str | None, timestamp: datetime | None,
                      *, at: datetime | None = None, venues: Sequence[str] = ()) -> None:
        """A good sync went through block ``number`` and had nothing to write (nothing moved, or no block after the
        one it processed last): what the store holds through it is confirmed at ``at`` (default now) — the chain's
        newest good sync, as a block synced again is. ``venues``: those whose every tracked wallet it went through
        cleanly; their open versions are served as of this block (``venue_confirmations``)."""
        with write_transaction(self._engine) as conn:
            note_stored_block(conn, chain_ref_id, number, block_hash, timestamp, at or _now(), venues)

    # -- sync status --------------------------------------------------------------------------------------------
    def record_failed_sync(self, chain_id: int, error: str, *, started_at: datetime,
                           chain_ref_id: int | None = None, wallets: int = 0) -> int:
        """Store a sync attempt that failed before anything was read (the chain unreachable, the node behind, …),
        so every reader of the store can say that syncing fails, since when and why. Returns the run's id."""
        with write_transaction(self._engine) as conn:
            if chain_ref_id is None:
                chain_ref_id = current_chain_ref(conn, chain_id, _now())
            run_id: int = conn.execute(sa.insert(SYNC_RUNS).returning(SYNC_RUNS.c.id), {
                "started_at": started_at, "finished_at": _now(), "chain_id": chain_id, "chain_ref_id": chain_ref_id,
                "status": SyncStatus.FAILED.value, "wallets": wallets, "error": error[:_ERROR_TEXT_MAX],
            }).scalar_one()
        return run_id

    def sync_status(self, chain_ids: set[int] | None = None) -> list[ChainSyncStatus]:
        """Per current chain identity (of ``chain_ids``, default all): its newest good sync (ok or partial), its
        newest attempt and, when attempts have failed since the newest good sync, since when and the newest error.

        """
        out: list[ChainSyncStatus] = []
        with read_transaction(self._engine) as conn:
            query = sa.select(CHAINS).where(CHAINS.c.retired_at.is_(None)).order_by(CHAINS.c.chain_id)
            if chain_ids is not None:
                query = query.where(CHAINS.c.chain_id.in_(sorted(chain_ids)))
            chains = [_chain_row(r) for r in conn.execute(query).mappings()]
            for chain in chains:
                mine = SYNC_RUNS.c.chain_ref_id == chain.id
                ok = conn.execute(
                    sa.select(SYNC_RUNS.c.id, SYNC_RUNS.c.finished_at, SYNC_RUNS.c.block_number,
                              SYNC_RUNS.c.block_timestamp, SYNC_RUNS.c.status)
                    .where(SYNC_RUNS.c.chain_ref_id == chain.id, SYNC_RUNS.c.status != SyncStatus.FAILED.value)
                    .order_by(SYNC_RUNS.c.id.desc()).limit(1)).one_or_none()
                last = conn.execute(
                    sa.select(SYNC_RUNS.c.id, SYNC_RUNS.c.finished_at, SYNC_RUNS.c.started_at, SYNC_RUNS.c.status,
                              SYNC_RUNS.c.error)
                    .where(mine).order_by(SYNC_RUNS.c.id.desc()).limit(1)).one_or_none()
                # A block synced again reuses its run (nothing new is stored) yet is a good sync all the same: the
                # chain's ``last_synced_at`` says when the newest good sync finished, re-syncs included.
                ok_at = ok.finished_at if ok is not None else None
                if ok is not None and chain.last_synced_at is not None:
                    ok_at = max(ok_at, chain.last_synced_at) if ok_at is not None else chain.last_synced_at
                failing_since = last_error = None
                last_at = (last.finished_at or last.started_at) if last is not None else None
                last_status = SyncStatus(last.status) if last is not None else None
                if last is not None and last.status == SyncStatus.FAILED.value:
                    if ok is not None and ok_at is not None and last_at is not None and ok_at > last_at:
                        # a good re-sync of a stored block after the failure: the failure is over
                        last_at, last_status = ok_at, SyncStatus(ok.status)
                    else:
                        failed = conn.execute(
                            sa.select(SYNC_RUNS.c.started_at, SYNC_RUNS.c.finished_at)
                            .where(mine, SYNC_RUNS.c.status == SyncStatus.FAILED.value,
                                   SYNC_RUNS.c.id > (ok.id if ok is not None else 0))).all()
                        since = [r.started_at for r in failed
                                 if ok_at is None or (r.finished_at or r.started_at) > ok_at]
                        failing_since, last_error = min(since, default=last.started_at), last.error
                elif ok is not None and last is not None and last.id == ok.id and ok_at is not None:
                    last_at = ok_at
                ok_block = ok.block_number if ok is not None else None
                ok_block_ts = ok.block_timestamp if ok is not None else None
                if (ok is not None and chain.last_block is not None
                        and (ok_block is None or chain.last_block > ok_block)):
                    # blocks processed since that run stored nothing new (confirm_block): they count as synced
                    ok_block, ok_block_ts = chain.last_block, chain.last_block_timestamp
                out.append(ChainSyncStatus(
                    chain=chain,
                    last_ok_at=ok_at,
                    last_ok_block=ok_block,
                    last_ok_block_timestamp=ok_block_ts,
                    last_attempt_at=last_at,
                    last_attempt_status=last_status,
                    last_error=last_error,
                    failing_since=failing_since,
                ))
        return out
