"""The change-only store (issue 14): position versions, health and risk as series of changes, a block synced
twice adds nothing, compaction keeps the first and last row per hour beyond the full-resolution window; every
test on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from db import (
    ChangePolicy,
    HealthRow,
    LatestVenueHealth,
    PositionRow,
    PositionSide,
    PriceRow,
    RetentionPolicy,
    RiskRow,
    SnapshotRow,
    SnapshotStatus,
    Store,
    SyncBatch,
    SyncStatus,
    WriteStats,
)
from tests.db.db_testdata import CHAIN, T0, USDC, WETH, block_time, setup

PER_WALLET = ("position_snapshots", "positions", "health_results", "risk_results")
PER_BLOCK = ("sync_runs", "prices")


def rows(store: Store) -> dict[str, int]:
    with store.engine.connect() as conn:
        return {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one() for t in (*PER_WALLET, *PER_BLOCK)}


def steady_snapshot(address: str, block: int, *, debt_raw: int = 1_000 * 10**6, venue: str = "aave_v3",
                    collateral_usd: float = 6000.0) -> SnapshotRow:
    """A wallet whose positions are the same at every block unless ``debt_raw`` changes; everything per-block (the
    block's hash and time, the read's and the computation's time, the raw health's last digits) moves."""
    debt = debt_raw / 10**6
    return SnapshotRow(
        wallet=address, venue=venue, chain_id=CHAIN, block_number=block, block_hash=f"0x{block:064x}",
        block_timestamp=block_time(block), taken_at=block_time(block) + timedelta(seconds=1),
        positions=(
            PositionRow(WETH, PositionSide.COLLATERAL, 2 * 10**18, 2.0, 3000.0, 6000.0, True, WETH.address),
            PositionRow(USDC, PositionSide.DEBT, debt_raw, debt, 1.0, debt, False, USDC.address),
        ),
        health=HealthRow(
            computed_at=block_time(block) + timedelta(seconds=2), collateral_usd=collateral_usd, debt_usd=debt,
            health_factor=collateral_usd * 0.825 / debt,
            health_factor_raw=int(collateral_usd * 0.825 / debt * 10**18) + block % 7,  # noise far below 1e-4
            liquidation_threshold=0.825, matches_onchain=True, extra={"age_s": float(block % 13)},
        ),
    )


def steady_batch(wallets: list[str], block: int, debts: dict[str, int] | None = None) -> SyncBatch:
    debts = debts or {}
    snaps = tuple(steady_snapshot(w, block, debt_raw=debts.get(w, 1_000 * 10**6)) for w in wallets)
    return SyncBatch(
        chain_id=CHAIN, started_at=block_time(block), finished_at=block_time(block) + timedelta(seconds=3),
        status=SyncStatus.OK, block_number=block, block_hash=f"0x{block:064x}", block_timestamp=block_time(block),
        snapshots=snaps,
        prices=(PriceRow(WETH, block, "oracle", 3000 * 10**8, 8, 3000.0, block_time(block),
                         updated_at=block_time(block) - timedelta(seconds=block % 60), age_s=float(block % 60)),),
        risks=tuple(RiskRow(wallet=s.wallet, block_number=block, computed_at=block_time(block),
                            unified_health=s.health.health_factor if s.health else None, equity_usd=6000.0 - (
                                s.health.debt_usd if s.health else 0.0), margin_usd=500.0, netting_benefit_usd=0.0,
                            document={"block": block, "price_age_s": block % 60}) for s in snaps),
    )


def test_unchanged_blocks_add_no_rows_and_history_is_the_changes(store: Store) -> None:
    """500 blocks, of which 490 change nothing for the wallets: the per-wallet tables grow by the changed rows
    (plus one health and one risk row per series when the last is max_age_blocks old), not by 500 × wallets."""
    wallets = setup(store, 3)
    first, n_blocks = 1_000, 500
    change_at = {first + 45 * k: 1_000 * 10**6 + 10**6 * k for k in range(1, 11)}  # 10 blocks move wallet 0's debt
    policy = store.change_policy
    assert policy == ChangePolicy(rel_tolerance=1e-4, max_age_blocks=300)
    store.write_sync(steady_batch(wallets, first))
    start = rows(store)
    assert start == {"position_snapshots": 3, "positions": 6, "health_results": 3, "risk_results": 3,
                     "sync_runs": 1, "prices": 1}
    stats: list[WriteStats] = []
    debt = 1_000 * 10**6
    for block in range(first + 1, first + n_blocks):
        debt = change_at.get(block, debt)
        stats.append(store.write_changes(steady_batch(wallets, block, {wallets[0]: debt})))
    end = rows(store)
    changed = len(change_at)
    # wallet 0: a new version (2 positions), a health and a risk row per change; wallets 1 and 2: only the refresh
    # of health and risk once their newest row is 300 blocks old (block first + 300)
    refresh_quiet = 2  # wallets 1 and 2, once each
    refresh_w0 = 0  # wallet 0 changes every 45 blocks up to first + 450: never 300 blocks without a row
    assert end["position_snapshots"] - start["position_snapshots"] == changed
    assert end["positions"] - start["positions"] == 2 * changed
    assert end["health_results"] - start["health_results"] == changed + refresh_quiet + refresh_w0
    assert end["risk_results"] - start["risk_results"] == changed + refresh_quiet + refresh_w0
    grown = sum(end[t] - start[t] for t in PER_WALLET)
    assert grown == changed * (1 + 2 + 1 + 1) + 2 * refresh_quiet  # not 499 blocks × 3 wallets × 5 rows
    assert end["sync_runs"] - start["sync_runs"] == n_blocks - 1  # one run and one price row per block
    assert end["prices"] - start["prices"] == n_blocks - 1
    assert sum(s.rows_written for s in stats) == sum(end[t] - start[t] for t in (*PER_WALLET, *PER_BLOCK))
    assert all(s.bytes_estimate > 0 for s in stats)
    quiet = [s for b, s in zip(range(first + 1, first + n_blocks), stats, strict=True)
             if b not in change_at and b != first + 300]
    assert len(quiet) == n_blocks - 1 - changed - 1
    assert {(s.rows_written, s.versions_written, s.health_written, s.risk_written) for s in quiet} == {(2, 0, 0, 0)}
    assert {s.extended for s in quiet} == {3}

    # the newest state, as of the newest block
    last = first + n_blocks - 1
    for w, want_debt in ((wallets[0], debt), (wallets[1], 1_000 * 10**6)):
        (latest,) = store.latest_health(w)
        assert latest.as_of_block == last
        assert latest.snapshot.block_number == last
        assert latest.snapshot.block_hash == f"0x{last:064x}"
        assert latest.snapshot.block_timestamp == block_time(last)
        assert latest.snapshot.positions[1].amount_raw == want_debt
        assert latest.health is not None
        assert latest.health.debt_usd == want_debt / 10**6
        assert [p.block_number for p in latest.prices] == [last]
    (w0,) = store.latest_health(wallets[0])
    assert w0.valid_from_block == max(change_at)
    (w1,) = store.latest_health(wallets[1])
    assert w1.valid_from_block == first

    # history: the changes (and the age refresh), newest first, each with its own block's time
    got = [(p.block_number, p.block_timestamp, p.health.debt_usd if p.health else None)
           for p in store.history(wallets[0])]
    want = [(b, block_time(b), d / 10**6) for b, d in sorted(change_at.items(), reverse=True)]
    assert got == [*want, (first, block_time(first), 1000.0)]
    assert [p.block_number for p in store.history(wallets[1])] == [first + 300, first]
    assert [b for b, _, _ in store.risk_history(wallets[0])] == [first, *sorted(change_at)]
    risk = store.latest_risk(wallets[0])
    assert risk is not None
    assert risk.block_number == max(change_at)

    # the same block synced again adds nothing: no run, no price, no row
    before = rows(store)
    again = store.write_changes(steady_batch(wallets, last, {wallets[0]: debt}))
    assert again.reused_run
    assert again.rows_written == 0
    assert again.skipped >= 3
    assert rows(store) == before
    assert store.write_sync(steady_batch(wallets, last, {wallets[0]: debt})) == again.run_id
    assert rows(store) == before


def test_a_block_synced_again_after_a_failure_ends_the_failure(store: Store) -> None:
    """A re-sync of a stored block reuses its run and stores nothing new, yet it is a good sync: once it follows a
    failed attempt, the chain's status is no longer failing and its newest good sync is the re-sync's time."""
    wallets = setup(store, 2)

    def synced_now(block: int) -> SyncBatch:  # the clock record_failed_sync uses
        now = datetime.now(UTC)
        return dataclasses.replace(steady_batch(wallets, block), started_at=now, finished_at=now)

    first = store.write_changes(synced_now(10))
    (before,) = store.sync_status({CHAIN})
    assert before.last_attempt_status is SyncStatus.OK
    assert before.failing_since is None
    assert before.last_ok_at is not None
    store.record_failed_sync(CHAIN, "eth_chainId: connection refused", started_at=before.last_ok_at)
    (failing,) = store.sync_status({CHAIN})
    assert failing.last_attempt_status is SyncStatus.FAILED
    assert failing.failing_since is not None
    assert failing.last_error == "eth_chainId: connection refused"
    assert failing.last_attempt_at is not None
    runs = rows(store)["sync_runs"]
    again = store.write_changes(synced_now(10))
    assert again.reused_run
    assert again.run_id == first.run_id
    assert rows(store)["sync_runs"] == runs  # nothing new stored
    (after,) = store.sync_status({CHAIN})
    assert after.last_attempt_status is SyncStatus.OK
    assert after.failing_since is None
    assert after.last_error is None
    assert after.last_ok_at is not None
    assert after.last_ok_at > failing.last_attempt_at
    assert after.last_attempt_at == after.last_ok_at
    assert after.last_ok_block == 10
    # failing again: since the newest failure after that re-sync, not the first one
    store.record_failed_sync(CHAIN, "timeout", started_at=after.last_ok_at + timedelta(microseconds=1))
    (again_failing,) = store.sync_status({CHAIN})
    assert again_failing.last_attempt_status is SyncStatus.FAILED
    assert again_failing.last_error == "timeout"
    assert again_failing.failing_since == after.last_ok_at + timedelta(microseconds=1)


def test_heavy_measures_are_stored_once_and_carried_on_reading(store: Store) -> None:
    """A per-block risk row names the block of the wallet's last heavy measures instead of holding a copy: the heavy
    row is written even when its figures did not move, the light rows are a fraction of its size, and
    latest_risk fills the measures back in from it (a light row naming a block with no row stays as stored)."""
    (w,) = setup(store, 1)
    grid = {"axes": list(range(40)), "pnl_usd": [[float(i * j) for j in range(40)] for i in range(40)]}
    var_es = {"1d": {"0.99": {"var_usd": 1234.5, "es_usd": 1500.25}}}

    def risk(block: int, document: dict[str, object], uh: float = 1.5) -> RiskRow:
        return RiskRow(wallet=w, block_number=block, computed_at=block_time(block), unified_health=uh,
                       equity_usd=5000.0, margin_usd=500.0, netting_benefit_usd=0.0, document=document)

    def write(block: int, *risks: RiskRow) -> WriteStats:
        return store.write_changes(SyncBatch(CHAIN, block_time(block), SyncStatus.OK, block, f"0x{block:064x}",
                                             block_time(block), snapshots=(steady_snapshot(w, block),), risks=risks))

    write(1, risk(1, {"block": 1, "var_es": None, "pnl_grid": None, "heavy_measures_block": None}))
    heavy = write(2, risk(2, {"block": 2, "var_es": var_es, "pnl_grid": grid, "heavy_measures_block": 2}))
    assert heavy.risk_written == 1  # its figures did not move, yet it holds the measures
    light = write(3, risk(3, {"block": 3, "var_es": None, "pnl_grid": None, "heavy_measures_block": 2}, uh=1.4))
    assert light.risk_written == 1
    assert light.bytes_estimate * 10 < heavy.bytes_estimate
    got = store.latest_risk(w)
    assert got is not None
    assert got.block_number == 3
    assert got.unified_health == 1.4
    assert got.document["var_es"] == var_es
    assert got.document["pnl_grid"] == grid
    assert got.document["heavy_measures_block"] == 2
    # a light row whose heavy row was never stored (its write failed) stays as it is: no measures, no guess
    write(4, risk(4, {"block": 4, "var_es": None, "pnl_grid": None, "heavy_measures_block": 9}, uh=1.3))
    got = store.latest_risk(w)
    assert got is not None
    assert got.block_number == 4
    assert got.document["var_es"] is None


def accruing_snapshot(address: str, block: int, *, scaled: int = 10**18, price: float = 3000.0,
                      index_ray: int = 10**27) -> SnapshotRow:
    """A lending position as a venue that declares the wallet's own state gives it: the scaled balance is the
    state; the balance (scaled × the block's index), its price and value, and the reserve's index in the extra move
    with the block."""
    raw = scaled * index_ray // 10**27
    amount = raw / 10**18
    value = amount * price
    debt = 1_000.0
    return SnapshotRow(
        wallet=address, venue="aave_v3", chain_id=CHAIN, block_number=block, block_hash=f"0x{block:064x}",
        block_timestamp=block_time(block), taken_at=block_time(block) + timedelta(seconds=1),
        positions=(
            PositionRow(WETH, PositionSide.COLLATERAL, raw, amount, price, value, True, WETH.address,
                        extra={"liquidity_index": index_ray, "income_ray": str(index_ray), "scaled_raw": scaled,
                               "max_withdraw_usd": value / 2},
                        state=f"scaled={scaled};collateral=1"),
            PositionRow(USDC, PositionSide.DEBT, 1_000 * 10**6, debt, 1.0, debt, False, USDC.address,
                        extra={"scaled_raw": 10**9}, state="scaled=1000000000"),
        ),
        health=HealthRow(computed_at=block_time(block), collateral_usd=value, debt_usd=debt,
                         health_factor=value * 0.825 / debt, liquidation_threshold=0.825, matches_onchain=True),
    )


def test_a_declared_state_holds_the_version_while_interest_and_prices_move_the_values(store: Store) -> None:
    """With the venue's state declared, interest and prices move the values, not the version: the positions are
    written once; a block whose values differ from the newest stored ones is one health row holding them (exact
    raw amounts, values and the extra keys that differ), a block that changes nothing is no row; the latest
    positions are the newest row's, exact as of the newest block. A changed state is a new version."""
    (w,) = setup(store, 1)

    def write(block: int, **kw: Any) -> WriteStats:
        snap = accruing_snapshot(w, block, **kw)
        return store.write_changes(SyncBatch(CHAIN, block_time(block), SyncStatus.OK, block, f"0x{block:064x}",
                                             block_time(block), snapshots=(snap,)))

    first = write(1)
    assert first.versions_written == 1
    assert first.positions_written == 2
    for block in (2, 3):  # nothing moves: no row
        stats = write(block)
        assert (stats.versions_written, stats.positions_written, stats.health_written) == (0, 0, 0)
    index = 10**27
    for block in (4, 5):
        index += 10**20  # interest: 1e-7 a block, the balance's last digits move, far inside the tolerance
        stats = write(block, index_ray=index)
        assert stats.versions_written == 0
        assert stats.positions_written == 0
        assert stats.health_written == 1  # one compact row with the values, not a version and its positions
        assert stats.bytes_estimate < first.bytes_estimate
    (latest,) = store.latest_health(w)
    assert latest.as_of_block == 5
    assert latest.valid_from_block == 1
    coll = {p.side: p for p in latest.snapshot.positions}[PositionSide.COLLATERAL]
    assert coll.amount_raw == accruing_snapshot(w, 5, index_ray=index).positions[0].amount_raw  # exact at block 5
    assert coll.extra["liquidity_index"] == index

    index += 10**20
    moved = write(6, index_ray=index, price=3015.0)  # a 0.5 % price update: the health moves
    assert moved.versions_written == 0
    assert moved.positions_written == 0
    assert moved.health_written == 1
    want = accruing_snapshot(w, 6, index_ray=index, price=3015.0)
    (latest,) = store.latest_health(w)
    assert latest.valid_from_block == 1
    got = {p.side: p for p in latest.snapshot.positions}
    coll = got[PositionSide.COLLATERAL]
    assert coll.amount_raw == want.positions[0].amount_raw  # exact, at the health row's block
    assert coll.amount_raw != 10**18
    assert coll.price_usd == 3015.0
    assert coll.value_usd == want.positions[0].value_usd
    assert coll.extra["max_withdraw_usd"] == want.positions[0].extra["max_withdraw_usd"]
    assert coll.extra["liquidity_index"] == index
    assert coll.extra["income_ray"] == str(index)  # a big integer written as text, exact
    assert coll.state == "scaled=1000000000000000000;collateral=1"
    assert got[PositionSide.DEBT].amount_raw == 1_000 * 10**6
    assert latest.snapshot.health is not None
    assert latest.snapshot.health.collateral_usd == want.positions[0].value_usd

    # the wallet supplies more: its scaled balance changes, a new version
    acted = write(7, index_ray=index, price=3015.0, scaled=2 * 10**18)
    assert acted.versions_written == 1
    assert acted.positions_written == 2
    (latest,) = store.latest_health(w)
    assert latest.valid_from_block == 7
    assert {p.side: p.amount_raw for p in latest.snapshot.positions}[PositionSide.COLLATERAL] == \
        2 * 10**18 * index // 10**27
    assert [p.block_number for p in store.history(w)] == [7, 6, 5, 4, 1]  # the rows: each a change


def test_tolerance_and_per_block_fields(store: Store) -> None:
    """A health value that moves by less than 1e-4 is not written; one that moves by more is; per-block fields
    (times, price ages, raw-health noise) never are."""
    (w,) = setup(store, 1)
    store.write_sync(SyncBatch(CHAIN, block_time(1), SyncStatus.OK, 1, f"0x{1:064x}", block_time(1),
                               snapshots=(steady_snapshot(w, 1),)))
    for block, collateral in ((2, 6000.0 * (1 + 5e-5)), (3, 6000.0 * (1 + 3e-4))):
        snap = steady_snapshot(w, block, collateral_usd=collateral)
        stats = store.write_changes(SyncBatch(CHAIN, block_time(block), SyncStatus.OK, block, f"0x{block:064x}",
                                              block_time(block), snapshots=(snap,)))
        assert stats.versions_written == 0  # positions unchanged
        assert stats.health_written == (1 if block == 3 else 0)
    assert [p.block_number for p in store.history(w)] == [3, 1]


def test_versions_hold_ranges_and_out_of_order_blocks(store: Store) -> None:
    (w,) = setup(store, 1)

    def write(block: int, debt: int, status: SnapshotStatus = SnapshotStatus.OK) -> None:
        snap = steady_snapshot(w, block, debt_raw=debt)
        if status is SnapshotStatus.ERROR:
            snap = dataclasses.replace(snap, status=status, error="rpc timeout", positions=(), health=None)
        store.write_sync(SyncBatch(CHAIN, block_time(block), SyncStatus.OK, block, f"0x{block:064x}",
                                   block_time(block), snapshots=(snap,)))

    for block in (10, 11, 12):
        write(block, 5)
    write(13, 6)
    write(14, 6, SnapshotStatus.ERROR)
    write(15, 6)
    write(11, 5)  # again: nothing
    write(8, 5)  # older than every version: a version of its own, up to the next one
    with store.engine.connect() as conn:
        ranges = conn.execute(sa.text("SELECT block_number, valid_to_block, last_seen_block, status "
                                      "FROM position_snapshots ORDER BY block_number")).all()
    assert [tuple(r) for r in ranges] == [(8, 9, 8, "ok"), (10, 12, 12, "ok"), (13, 13, 13, "ok"),
                                          (14, 14, 14, "error"), (15, None, 15, "ok")]
    (latest,) = store.latest_health(w)
    assert (latest.valid_from_block, latest.as_of_block, latest.failed) == (15, 15, None)
    assert [(p.block_number, p.status) for p in store.history(w)] == [
        (15, SnapshotStatus.OK), (14, SnapshotStatus.ERROR), (13, SnapshotStatus.OK), (10, SnapshotStatus.OK),
        (8, SnapshotStatus.OK)]
    write(16, 6, SnapshotStatus.ERROR)
    (latest,) = store.latest_health(w)  # the newest read failed: the last good values, and the failed read
    assert latest.snapshot.status is SnapshotStatus.OK
    assert latest.snapshot.block_number == 15
    assert latest.failed is not None
    assert latest.failed.block_number == 16


def test_compaction_keeps_first_and_last_per_hour_beyond_the_window(store: Store) -> None:
    (w,) = setup(store, 1)
    n = 600  # 12 s blocks: blocks 0..299 are the first hour, 300..599 the second
    for block in range(n):
        store.write_sync(steady_batch([w], block, {w: 1_000 * 10**6 + 10**6 * block}))  # a change every block
    latest_before = store.latest_health(w)
    history_before = store.history(w, limit=10_000)
    assert len(history_before) == n
    recent = store.compact(RetentionPolicy(), now=block_time(n) + timedelta(days=6))
    assert recent.deleted == 0  # all within 7 days
    stats = store.compact(RetentionPolicy(), now=block_time(n) + timedelta(days=7, hours=1))
    assert stats.health_deleted == n - 4
    assert stats.risk_deleted == n - 4
    assert stats.prices_deleted == n - 4
    assert stats.versions_deleted == n - 4
    kept = [p.block_number for p in store.history(w, limit=10_000)]
    assert kept == [599, 300, 299, 0]
    assert [p.block_number for p in history_before if p.block_number in kept] == kept
    assert {p.block_number: p.health for p in history_before if p.block_number in kept} == {
        p.block_number: p.health for p in store.history(w)}
    assert store.latest_health(w) == latest_before
    assert [b for b, _, _ in store.risk_history(w)] == [0, 299, 300, 599]
    with store.engine.connect() as conn:
        ranges = conn.execute(sa.text("SELECT block_number, valid_to_block FROM position_snapshots "
                                      "ORDER BY block_number")).all()
        orphans = conn.execute(sa.text("SELECT count(*) FROM positions p LEFT JOIN position_snapshots s "
                                       "ON s.id = p.snapshot_id WHERE s.id IS NULL")).scalar_one()
    assert [tuple(r) for r in ranges] == [(0, 298), (299, 299), (300, 598), (599, None)]
    assert orphans == 0
    again = store.compact(RetentionPolicy(), now=block_time(n) + timedelta(days=7, hours=1))
    assert again.deleted == 0


@pytest.mark.parametrize("bad", [{"rel_tolerance": -1.0}, {"max_age_blocks": 0}])
def test_policies_refuse_nonsense(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        ChangePolicy(**bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="bucket_s"):
        RetentionPolicy(bucket_s=0)


def test_migration_folds_a_populated_store_without_changing_an_answer(db_url: str) -> None:
    """A store in the old layout (every snapshot at every block: what 0009 held) goes down to 0009 and up to 0010
    again: runs of equal snapshots fold into versions, and history, latest health and risk answer as before; down
    again, every snapshot is back."""
    from alembic import command

    from db.engine import make_engine
    from db.migrate import alembic_config, locked_migration_transaction, upgrade

    engine = make_engine(db_url)
    upgrade(engine)
    store = Store(engine)
    store.change_only = False  # the layout before the change-only store
    wallets = setup(store, 2)
    debt = {wallets[0]: 1_000 * 10**6, wallets[1]: 2_000 * 10**6}
    for block in range(1, 41):
        if block in (10, 25):
            debt[wallets[0]] += 10**8
        batch = steady_batch(wallets, block, debt)
        if block == 30:  # an error read of wallet 1 in the middle of a run of equal snapshots
            err = dataclasses.replace(batch.snapshots[1], status=SnapshotStatus.ERROR, error="rpc timeout",
                                      positions=(), health=None)
            batch = dataclasses.replace(batch, status=SyncStatus.PARTIAL, snapshots=(batch.snapshots[0], err))
        store.write_sync(batch)

    def answers() -> tuple[object, ...]:
        """Every answer, less the ids of the rows (a point's snapshot is now its version), the first block of the
        newest version (which the fold moves back to where the run began) and the time of the newest read (a
        folded snapshot's own read time is gone: its sync run's start stands for it)."""
        def latest(x: LatestVenueHealth) -> LatestVenueHealth:
            return dataclasses.replace(x, snapshot_id=0, valid_from_block=None,
                                       snapshot=dataclasses.replace(x.snapshot, taken_at=T0))

        return tuple(([dataclasses.replace(p, snapshot_id=0) for p in store.history(w, limit=1_000)],
                      [latest(x) for x in store.latest_health(w)],
                      store.risk_history(w), store.latest_risk(w)) for w in wallets)

    before, full = answers(), rows(store)
    assert full["position_snapshots"] == 80
    cfg = alembic_config()
    with locked_migration_transaction(engine) as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0009")
    upgrade(engine)
    after = rows(store)
    # wallet 0: three versions (blocks 1, 10, 25); wallet 1: 1..29, the error at 30, 31..40
    assert after["position_snapshots"] == 6
    assert after["positions"] == 2 * 5
    assert after["health_results"] == full["health_results"]
    assert answers() == before
    with engine.connect() as conn:
        ranges = conn.execute(sa.text("SELECT block_number, valid_to_block, last_seen_block FROM position_snapshots "
                                      "WHERE wallet_id = 1 ORDER BY block_number")).all()
    assert [tuple(r) for r in ranges] == [(1, 9, 9), (10, 24, 24), (25, None, 40)]
    with locked_migration_transaction(engine) as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0009")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM position_snapshots")).scalar_one() == 80
        assert conn.execute(sa.text("SELECT count(*) FROM positions")).scalar_one() == full["positions"]
    engine.dispose()
