"""write_sync: one transaction per sync run, idempotent per (wallet, venue, block), whole or nothing."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa

from db import (
    PositionRow,
    PositionSide,
    SnapshotStatus,
    Store,
    SyncStatus,
    SyncWriteError,
    UnknownReferenceError,
)
from db import store as store_module
from db.models import UINT256_MAX
from tests.db.db_testdata import (
    CHAIN,
    USDC,
    WETH,
    batch,
    block_time,
    counts,
    setup,
    snapshot,
    wallet,
)

EMPTY = dict.fromkeys(("sync_runs", "position_snapshots", "positions", "prices", "health_results"), 0)


def test_write_sync_writes_everything(store: Store) -> None:
    wallets = setup(store, 3)
    run_id = store.write_sync(batch(wallets, 100))
    assert run_id > 0
    assert counts(store) == {
        "sync_runs": 1,
        "position_snapshots": 3,
        "positions": 6,
        "prices": 2,
        "health_results": 3,
    }
    with store.engine.connect() as conn:
        run = conn.execute(sa.text("SELECT status, wallets, block_number FROM sync_runs")).one()
        markets = conn.execute(sa.text("SELECT key, name, params FROM markets ORDER BY id")).all()
    assert tuple(run) == ("ok", 3, 100)
    # the explicit market with its params, and the implicit one created from a position's market_key
    assert [(m.key, m.name) for m in markets] == [(WETH.address, "WETH"), (USDC.address, USDC.address)]


def test_latest_health_round_trips_the_snapshot(store: Store) -> None:
    (w,) = setup(store, 1)
    sent = batch([w], 100)
    run_id = store.write_sync(sent)
    (latest,) = store.latest_health(w.lower())
    assert latest.venue == "aave_v3"
    assert latest.sync_run_id == run_id
    assert latest.snapshot == sent.snapshots[0]
    assert latest.health == sent.snapshots[0].health
    # prices of that run for the assets of the positions, exact raw values (including a negative answer)
    assert sorted(latest.prices, key=lambda p: p.source) == sorted(sent.prices, key=lambda p: p.source)


def test_raw_amounts_survive_exactly(store: Store) -> None:
    (w,) = setup(store, 1)
    big = dataclasses.replace(
        snapshot(w, 7),
        positions=(
            PositionRow(WETH, PositionSide.SUPPLY, UINT256_MAX, float(UINT256_MAX)),
            PositionRow(WETH, PositionSide.DEBT, 2**53 + 1, float(2**53 + 1)),
            PositionRow(USDC, PositionSide.COLLATERAL, 0, 0.0),
        ),
    )
    store.write_sync(dataclasses.replace(batch([w], 7), snapshots=(big,)))
    (latest,) = store.latest_health(w)
    assert [p.amount_raw for p in latest.snapshot.positions] == [UINT256_MAX, 2**53 + 1, 0]


def test_latest_health_is_the_newest_block_per_venue(store: Store) -> None:
    (w,) = setup(store, 1)
    store.write_sync(batch([w], 200))
    store.write_sync(batch([w], 100))  # written later, but older
    store.write_sync(batch([w], 150, venue="uniswap_v3"))
    latest = store.latest_health(w)
    assert [(x.venue, x.snapshot.block_number) for x in latest] == [("aave_v3", 200), ("uniswap_v3", 150)]
    assert latest[0].snapshot.positions[0].amount_raw == 10**18 + 200
    assert store.latest_health(wallet(99)) == []


def test_duplicate_snapshots_are_skipped(store: Store) -> None:
    wallets = setup(store, 2)
    first = store.write_sync(batch(wallets, 100))
    before = counts(store)
    again = batch(wallets, 100)
    changed = dataclasses.replace(again, snapshots=(dataclasses.replace(again.snapshots[0], positions=()),))
    second = store.write_sync(changed)
    assert second == first  # the same block synced again: its run stands (change-only store, issue 14)
    after = counts(store)
    # nothing is duplicated: no second run, no second set of prices, snapshots, positions or health
    assert after == before
    (latest,) = store.latest_health(wallets[0])
    assert latest.sync_run_id == first
    assert len(latest.snapshot.positions) == 2


def test_duplicates_within_one_batch_keep_the_first(store: Store) -> None:
    (w,) = setup(store, 1)
    one = snapshot(w, 5)
    dup = dataclasses.replace(snapshot(w.lower(), 5), positions=())
    store.write_sync(dataclasses.replace(batch([w], 5), snapshots=(one, dup)))
    assert counts(store)["position_snapshots"] == 1
    (latest,) = store.latest_health(w)
    assert len(latest.snapshot.positions) == 2


def _bad_side(b: Any) -> Any:
    s = b.snapshots[-1]
    bad = dataclasses.replace(s.positions[0], side="not-a-side")
    return dataclasses.replace(b, snapshots=(*b.snapshots[:-1], dataclasses.replace(s, positions=(bad,))))


@pytest.mark.parametrize("record_failure", [True, False])
def test_constraint_violation_rolls_back_everything(store: Store, record_failure: bool) -> None:
    wallets = setup(store, 5)
    with pytest.raises(SyncWriteError) as info:
        store.write_sync(_bad_side(batch(wallets, 100)), record_failure=record_failure)
    assert isinstance(info.value.__cause__, sa.exc.IntegrityError)
    got = counts(store)
    if record_failure:
        assert info.value.failed_run_id is not None
        assert got == {**EMPTY, "sync_runs": 1}
        with store.engine.connect() as conn:
            status, error = conn.execute(sa.text("SELECT status, error FROM sync_runs")).one()
        assert status == "failed"
        assert "IntegrityError" in error
        assert store.latest_block(CHAIN) is None  # failed runs do not count
    else:
        assert info.value.failed_run_id is None
        assert got == EMPTY
    # nothing half-written blocks the next, correct write of the same block
    store.write_sync(batch(wallets, 100))
    assert counts(store)["position_snapshots"] == 5


def test_failure_after_snapshots_rolls_back_everything(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    wallets = setup(store, 3)
    seen: dict[str, int] = {}
    real = store_module._health_params

    def failing(*args: Any) -> dict[str, Any]:
        # by now the sync run and the snapshots are written in this transaction
        seen["calls"] = seen.get("calls", 0) + 1
        if seen["calls"] == 2:
            raise RuntimeError("injected failure")
        return real(*args)

    monkeypatch.setattr(store_module, "_health_params", failing)
    monkeypatch.setattr(store, "copy_threshold", 1)  # exercise COPY too on PostgreSQL
    with pytest.raises(SyncWriteError, match="injected failure"):
        store.write_sync(batch(wallets, 100), record_failure=False)
    assert counts(store) == EMPTY


def test_failure_in_the_last_step_rolls_back_everything(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    wallets = setup(store, 3)
    written: dict[str, int] = {}
    real_insert = Store._insert_positions

    def spy(self: Store, conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
        real_insert(self, conn, rows)
        for table in ("sync_runs", "position_snapshots", "positions"):
            written[table] = conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()

    def failing(*args: Any) -> dict[str, Any]:
        raise RuntimeError("price step failed")

    monkeypatch.setattr(Store, "_insert_positions", spy)
    monkeypatch.setattr(store_module, "_price_params", failing)
    with pytest.raises(SyncWriteError):
        store.write_sync(batch(wallets, 100), record_failure=False)
    assert written == {"sync_runs": 1, "position_snapshots": 3, "positions": 6}  # inside the transaction
    assert counts(store) == EMPTY
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM assets")).scalar_one() == 0  # also rolled back


def test_unknown_wallet_or_venue_is_refused(store: Store) -> None:
    wallets = setup(store, 1)
    with pytest.raises(SyncWriteError) as info:
        store.write_sync(batch([*wallets, wallet(42)], 100), record_failure=False)
    assert isinstance(info.value.__cause__, UnknownReferenceError)
    with pytest.raises(SyncWriteError) as info:
        store.write_sync(batch(wallets, 100, venue="nope"), record_failure=False)
    assert isinstance(info.value.__cause__, UnknownReferenceError)
    assert counts(store) == EMPTY


def test_naive_timestamps_are_refused(store: Store) -> None:
    wallets = setup(store, 1)
    b = batch(wallets, 100)
    naive = dataclasses.replace(b, snapshots=(dataclasses.replace(b.snapshots[0], taken_at=datetime(2025, 1, 1)),))
    with pytest.raises(SyncWriteError, match="naive datetime"):
        store.write_sync(naive)
    assert counts(store) == {**EMPTY, "sync_runs": 1}


def test_thousand_wallet_batch(store: Store) -> None:
    wallets = setup(store, 1000)
    store.write_sync(batch(wallets, 100, n_positions=3))
    assert counts(store) == {
        "sync_runs": 1,
        "position_snapshots": 1000,
        "positions": 3000,
        "prices": 2,
        "health_results": 1000,
    }
    latest = store.latest_health(wallets[777])
    assert latest[0].snapshot.wallet == wallets[777]
    assert [p.amount_raw for p in latest[0].snapshot.positions] == [10**18 + 100, 2 * 10**6 + 100, 3 * 10**18 + 100]


@pytest.mark.parametrize("copy_threshold", [None, 1])
def test_core_and_copy_paths_store_the_same(
    store: Store, copy_threshold: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL ``copy_threshold=1`` forces binary COPY for positions; the result must be identical."""
    (w,) = setup(store, 1)
    store.copy_threshold = copy_threshold
    copies: list[int] = []
    real_copy = store_module._copy_rows

    def spy(conn: sa.Connection, table: sa.Table, columns: Any, rows: list[dict[str, Any]]) -> None:
        copies.append(len(rows))
        real_copy(conn, table, columns, rows)

    monkeypatch.setattr(store_module, "_copy_rows", spy)
    sent = dataclasses.replace(
        snapshot(w, 9),
        positions=(
            PositionRow(WETH, PositionSide.SUPPLY, UINT256_MAX, 1e59, 3000.0, 3e62, True, WETH.address, {"a": [1]}),
            PositionRow(USDC, PositionSide.DEBT, 5, 5e-6),
        ),
    )
    store.write_sync(dataclasses.replace(batch([w], 9), snapshots=(sent,)))
    (latest,) = store.latest_health(w)
    assert latest.snapshot == sent
    uses_copy = store.engine.dialect.name == "postgresql" and copy_threshold is not None
    assert copies == ([2] if uses_copy else [])


def test_error_snapshots_have_no_health(store: Store) -> None:
    (w,) = setup(store, 1)
    err = dataclasses.replace(
        snapshot(w, 3), status=SnapshotStatus.ERROR, error="rpc timeout", positions=(), health=None
    )
    store.write_sync(dataclasses.replace(batch([w], 3), status=SyncStatus.PARTIAL, snapshots=(err,)))
    (latest,) = store.latest_health(w)
    assert latest.snapshot.status is SnapshotStatus.ERROR
    assert latest.health is None
    assert latest.prices == ()
    assert store.latest_block(CHAIN) == 3


def test_history_and_latest_block(store: Store) -> None:
    (w,) = setup(store, 1)
    for block in (100, 200, 300):
        store.write_sync(batch([w], block))
    store.write_sync(batch([w], 250, venue="uniswap_v3"))
    points = store.history(w)
    assert [(p.venue, p.block_number) for p in points] == [
        ("aave_v3", 300),
        ("uniswap_v3", 250),
        ("aave_v3", 200),
        ("aave_v3", 100),
    ]
    assert points[0].health is not None
    assert points[0].health.debt_usd == 1300.0
    assert points[0].block_timestamp == block_time(300)
    assert [p.block_number for p in store.history(w, venue="aave_v3", from_block=150, to_block=300)] == [300, 200]
    assert [p.block_number for p in store.history(w, limit=1)] == [300]
    assert store.history(w, venue="nope") == []
    assert store.history(wallet(5)) == []
    assert store.latest_block(CHAIN) == 300
    assert store.latest_block(CHAIN + 1) is None


def test_prune_keeps_the_newest_per_wallet_and_venue(store: Store) -> None:
    wallets = setup(store, 2)
    for block in (1, 2, 3, 4):
        store.write_sync(batch(wallets, block))
    store.write_sync(batch(wallets[:1], 2, venue="uniswap_v3"))
    assert store.prune(2) == 4
    assert [p.block_number for p in store.history(wallets[0], venue="aave_v3")] == [4, 3]
    assert [p.block_number for p in store.history(wallets[0], venue="uniswap_v3")] == [2]
    got = counts(store)
    assert got["position_snapshots"] == 5
    assert got["health_results"] == 5
    assert got["positions"] == 10
    assert got["prices"] == 3 * 2  # runs 3, 4 and the uniswap run keep theirs
    assert store.prune(2) == 0
    with pytest.raises(ValueError, match="at least 1"):
        store.prune(0)
