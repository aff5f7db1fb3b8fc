"""Chain identities on both backends: two chains behind one chain id (a reset devnet) stay apart, only the current
one is served as newest — health, risk, history, prices, last block — a reorganisation's orphaned blocks are purged,
and failed sync attempts are recorded so every reader can say since when syncing fails."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic import command

from db import RiskRow, Store, SyncStatus
from db.engine import make_engine
from db.migrate import alembic_config, locked_migration_transaction, upgrade
from tests.db import db_testdata as td

GENESIS = "0x" + "11" * 32
OTHER_GENESIS = "0x" + "22" * 32


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    with Store.open(db_url) as s:
        yield s


def _rehash(batch: td.SyncBatch, salt: str, chain_ref_id: int | None = None) -> td.SyncBatch:
    """The same batch as read from another chain: every block hash differs."""
    def h(block: int) -> str:
        return "0x" + salt + f"{block:062x}"
    return dataclasses.replace(
        batch, block_hash=h(batch.block_number or 0), chain_ref_id=chain_ref_id,
        snapshots=tuple(dataclasses.replace(s, block_hash=h(s.block_number),
                                            health=dataclasses.replace(s.health, debt_usd=7.0) if s.health else None)
                        for s in batch.snapshots))


def _risk(wallet: str, block: int, uh: float) -> RiskRow:
    return RiskRow(wallet=wallet, block_number=block, computed_at=td.block_time(block), unified_health=uh,
                   equity_usd=1.0, margin_usd=1.0, netting_benefit_usd=0.0, document={"marker": uh})


def test_a_second_chain_with_the_same_id_is_kept_apart_and_only_the_current_one_served(store: Store) -> None:
    wallets = td.setup(store, 2)
    chain_a = store.begin_chain(td.CHAIN, "devnet", GENESIS)
    for block in (256, 258, 269):
        batch = dataclasses.replace(td.batch(wallets, block), chain_ref_id=chain_a.id,
                                    risks=tuple(_risk(w, block, 1.5) for w in wallets))
        store.write_sync(batch)
    assert store.latest_block(td.CHAIN) == 269
    assert store.current_chain(td.CHAIN) == dataclasses.replace(
        chain_a, first_block=256, last_block=269, last_block_hash=f"0x{269:064x}",
        last_block_timestamp=td.block_time(269), last_synced_at=store.current_chain(td.CHAIN).last_synced_at)

    # The devnet is reset: same chain id, lower blocks. The old identity retires, a new one begins.
    chain_b = store.begin_chain(td.CHAIN, "devnet", OTHER_GENESIS, retire=chain_a.id, reason="reset")
    assert store.current_chain(td.CHAIN) == chain_b
    assert store.latest_health(wallets[0]) == []  # nothing of the new chain yet: the old one is never served
    assert store.latest_risk(wallets[0]) is None
    assert store.history(wallets[0]) == []
    assert store.latest_block(td.CHAIN) is None
    assert store.latest_prices(td.CHAIN) == []

    new = dataclasses.replace(_rehash(td.batch(wallets, 256), "cd", chain_b.id),
                              risks=tuple(_risk(w, 256, 9.0) for w in wallets))
    store.write_sync(new)  # block 256 again, on the other chain: stored beside the old chain's, not skipped
    latest = store.latest_health(wallets[0])
    assert [(v.snapshot.block_number, v.snapshot.block_hash, v.chain_ref_id) for v in latest] == [
        (256, new.snapshots[0].block_hash, chain_b.id)]
    assert latest[0].snapshot.health is not None
    assert latest[0].snapshot.health.debt_usd == 7.0
    risk = store.latest_risk(wallets[0])
    assert risk is not None
    assert risk.unified_health == 9.0
    assert risk.block_number == 256
    assert [p.block_number for p in store.history(wallets[0])] == [256]
    assert store.latest_block(td.CHAIN) == 256
    assert {p.block_number for p in store.latest_prices(td.CHAIN)} == {256}
    # The old chain's rows are all still there, tied to the retired identity.
    with store.engine.connect() as conn:
        by_chain = dict(conn.execute(sa.text(
            "SELECT chain_ref_id, count(*) FROM position_snapshots GROUP BY chain_ref_id")).all())
    assert by_chain == {chain_a.id: 3 * len(wallets), chain_b.id: len(wallets)}
    retired = [c for c in store.list_chains() if c.id == chain_a.id]
    assert retired[0].retired_at is not None
    assert retired[0].retired_reason == "reset"
    assert [c.id for c in store.list_chains(current_only=True)] == [chain_b.id]


def test_a_batch_without_identity_uses_the_current_one_or_an_unverified_one(store: Store) -> None:
    wallets = td.setup(store, 1)
    store.write_sync(td.batch(wallets, 100))
    first = store.current_chain(td.CHAIN)
    assert first is not None
    assert not first.verified
    assert first.last_block == 100
    store.write_sync(td.batch(wallets, 101))
    assert store.current_chain(td.CHAIN) == dataclasses.replace(
        first, last_block=101, last_block_hash=f"0x{101:064x}", last_block_timestamp=td.block_time(101),
        last_synced_at=store.current_chain(td.CHAIN).last_synced_at)
    verified = store.verify_chain(first.id, "mainnet", GENESIS)
    assert verified.verified
    assert verified.name == "mainnet"
    assert verified.id == first.id
    assert [b.number for b in store.stored_blocks(first.id)] == [101, 100]


def test_only_one_identity_is_current_per_chain_id(store: Store) -> None:
    """Two processes that see the same reset at once: one switch wins, the other gets the winner's identity."""
    td.setup(store, 1)
    old = store.begin_chain(td.CHAIN, "devnet", GENESIS)
    results: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(3)

    def switch() -> None:
        try:
            barrier.wait()
            results.append(store.begin_chain(td.CHAIN, "devnet", OTHER_GENESIS, retire=old.id, reason="reset").id)
        except BaseException as exc:  # re-raised in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=switch) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    current = store.current_chain(td.CHAIN)
    assert current is not None
    assert set(results) == {current.id}
    with store.engine.connect() as conn:
        live = conn.execute(sa.text(f"SELECT count(*) FROM chains WHERE chain_id = {td.CHAIN} "
                                    "AND retired_at IS NULL")).scalar_one()
    assert live == 1


def test_purge_above_removes_a_reorganised_branch(store: Store) -> None:
    wallets = td.setup(store, 2)
    chain = store.begin_chain(td.CHAIN, "devnet", GENESIS)
    for block in (100, 101, 102):
        store.write_sync(dataclasses.replace(td.batch(wallets, block), chain_ref_id=chain.id,
                                             risks=(_risk(wallets[0], block, 2.0),)))
    before = td.counts(store)
    assert store.purge_above(chain.id, 100) == 2 * len(wallets)
    after = td.counts(store)
    assert after["sync_runs"] == before["sync_runs"]  # the record of what was read stays
    assert after["position_snapshots"] == len(wallets)
    assert after["positions"] == before["positions"] // 3
    assert after["prices"] == before["prices"] // 3
    assert {v.snapshot.block_number for v in store.latest_health(wallets[0])} == {100}
    risk = store.latest_risk(wallets[0])
    assert risk is not None
    assert risk.block_number == 100
    current = store.current_chain(td.CHAIN)
    assert current is not None
    assert (current.last_block, current.last_block_hash) == (100, f"0x{100:064x}")


def test_failed_attempts_are_recorded_with_since_when_and_why(store: Store) -> None:
    wallets = td.setup(store, 1)
    assert store.sync_status() == []
    t0 = datetime(2026, 12, 4, 17, tzinfo=UTC)
    # A chain that was never reachable still reports its failure.
    store.record_failed_sync(td.CHAIN, "RPC unreachable: connection refused", started_at=t0)
    [status] = store.sync_status()
    assert status.last_ok_at is None
    assert status.failing_since == t0
    assert status.last_attempt_status is SyncStatus.FAILED
    assert status.last_error == "RPC unreachable: connection refused"

    store.write_sync(td.batch(wallets, 100))
    [status] = store.sync_status()
    assert status.failing_since is None
    assert status.last_error is None
    assert status.last_ok_block == 100
    assert status.last_attempt_status is SyncStatus.OK
    assert status.last_ok_at == td.block_time(100) + timedelta(seconds=3)

    store.record_failed_sync(td.CHAIN, "first", started_at=t0 + timedelta(minutes=1))
    store.record_failed_sync(td.CHAIN, "second", started_at=t0 + timedelta(minutes=2))
    [status] = store.sync_status({td.CHAIN})
    assert status.failing_since == t0 + timedelta(minutes=1)
    assert status.last_error == "second"
    assert status.last_ok_block == 100
    assert store.sync_status({999}) == []
    # A failure never hides the last known values.
    assert [v.snapshot.block_number for v in store.latest_health(wallets[0])] == [100]


def test_upgrading_a_store_keeps_every_row_and_adopts_them_as_one_unverified_chain(db_url: str) -> None:
    """A store written at revision 0006 (before chain identities): the upgrade loses no row — positions and health
    included, which a table rebuild with foreign keys on would cascade away — and ties them to one identity."""
    engine = make_engine(db_url)
    try:
        upgrade(engine, "0006")
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO wallets (address, label, created_at, active) VALUES "
                                 "(:a, 'w', :t, true)"), {"a": td.wallet(0), "t": td.T0})
            conn.execute(sa.text("INSERT INTO venues (name, kind, chain_id, config) VALUES "
                                 "('aave_v3', 'lending', 1, '{}')"))
            conn.execute(sa.text("INSERT INTO assets (chain_id, address, symbol, decimals) VALUES "
                                 "(1, '0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2', 'WETH', 18)"))
            for i, block in enumerate((10, 11)):
                conn.execute(sa.text(
                    "INSERT INTO sync_runs (id, started_at, finished_at, chain_id, block_number, block_hash, "
                    "block_timestamp, status, wallets) VALUES (:id, :t, :t, 1, :b, :h, :t, 'ok', 1)"),
                    {"id": i + 1, "t": td.block_time(block), "b": block, "h": f"0x{block:064x}"})
                conn.execute(sa.text(
                    "INSERT INTO position_snapshots (id, sync_run_id, wallet_id, venue_id, chain_id, block_number, "
                    "block_hash, block_timestamp, taken_at, status) VALUES (:id, :id, 1, 1, 1, :b, :h, :t, :t, 'ok')"),
                    {"id": i + 1, "t": td.block_time(block), "b": block, "h": f"0x{block:064x}"})
                conn.execute(sa.text(
                    "INSERT INTO positions (snapshot_id, asset_id, side, amount_raw, amount, is_collateral, extra) "
                    "VALUES (:id, 1, 'collateral', '5', 5e-18, true, '{}')"), {"id": i + 1})
                conn.execute(sa.text(
                    "INSERT INTO health_results (snapshot_id, wallet_id, venue_id, block_number, computed_at, "
                    "collateral_usd, debt_usd, flags, extra) VALUES (:id, 1, 1, :b, :t, 1.0, 0.0, '[]', '{}')"),
                    {"id": i + 1, "b": block, "t": td.block_time(block)})
        upgrade(engine, "0008")  # the chain identities' revision (0010 then folds the two equal snapshots)
        with engine.connect() as conn:
            counts = {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()
                      for t in ("sync_runs", "position_snapshots", "positions", "health_results", "chains")}
            refs = conn.execute(sa.text("SELECT DISTINCT chain_ref_id FROM position_snapshots")).scalars().all()
            chain = conn.execute(sa.text("SELECT id, chain_id, genesis_hash, last_block, last_block_hash, retired_at "
                                         "FROM chains")).one()
        assert counts == {"sync_runs": 2, "position_snapshots": 2, "positions": 2, "health_results": 2, "chains": 1}
        assert refs == [chain.id]
        assert (chain.chain_id, chain.genesis_hash, chain.last_block, chain.last_block_hash, chain.retired_at) == (
            1, None, 11, f"0x{11:064x}", None)
        upgrade(engine)
        with engine.connect() as conn:
            counts = {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()
                      for t in ("sync_runs", "position_snapshots", "positions", "health_results", "chains")}
        # the change-only store (0010): one position version for both blocks, both health rows kept
        assert counts == {"sync_runs": 2, "position_snapshots": 1, "positions": 1, "health_results": 2, "chains": 1}
        with Store(engine) as store:
            assert [v.snapshot.block_number for v in store.latest_health(td.wallet(0))] == [11]
            assert [p.block_number for p in store.history(td.wallet(0))] == [11, 10]
        # And back: the downgrade loses nothing of a single chain either.
        with locked_migration_transaction(engine) as conn:
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0006")
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM positions")).scalar_one() == 2
    finally:
        engine.dispose()


def test_a_block_confirmed_without_a_write_is_the_latest_block(store: Store) -> None:
    """Block mode writes nothing for a block where nothing moved and confirms it instead (``confirm_block``): the
    store's newest good block (the ``xmargin_last_block`` metric) is that block, not the last one written, and the
    confirmed venues' wallets are served as of it; a wallet no longer tracked and a retired identity are not."""
    wallets = td.setup(store, 1)
    chain = store.begin_chain(td.CHAIN, "devnet", GENESIS)
    store.write_sync(dataclasses.replace(td.batch(wallets, 300), chain_ref_id=chain.id))
    assert store.latest_block(td.CHAIN) == 300
    store.confirm_block(chain.id, 305, f"0x{305:064x}", td.block_time(305))
    assert store.latest_block(td.CHAIN) == 305
    # the chain's block alone says nothing of a venue: the wallet is served as of its last read
    assert [v.as_of_block for v in store.latest_health(wallets[0])] == [300]
    store.confirm_block(chain.id, 305, f"0x{305:064x}", td.block_time(305), venues=["aave_v3", "no_such_venue"])
    store.confirm_block(chain.id, 303, f"0x{303:064x}", td.block_time(303), venues=["aave_v3"])  # never back
    assert store.latest_block(td.CHAIN) == 305
    # the venue confirmed: the wallet is served as of that block (its values, run and prices are block 300's)
    (served,) = store.latest_health(wallets[0])
    assert (served.as_of_block, served.snapshot.block_number, served.snapshot.block_hash) == (305, 305,
                                                                                              f"0x{305:064x}")
    assert served.snapshot.block_timestamp == td.block_time(305)
    assert served.valid_from_block == 300
    assert {p.block_number for p in served.prices} == {300}
    # a wallet no longer tracked is not confirmed by the syncs: served as of its last read
    assert store.remove_wallet(wallets[0])
    assert [v.as_of_block for v in store.latest_health(wallets[0])] == [300]
    store.begin_chain(td.CHAIN, "devnet", OTHER_GENESIS, retire=chain.id, reason="reset")
    assert store.latest_block(td.CHAIN) is None


def test_a_venue_confirmed_with_a_written_batch_and_purged_with_its_blocks(store: Store) -> None:
    """A batch names the venues it went through (``confirmed_venues``, the block-driven sync's whole venue, written
    or not): another wallet of the venue, not in the batch, is served as of it; a purge of the reorganised blocks
    takes the confirmation back."""
    wallets = td.setup(store, 2)
    chain = store.begin_chain(td.CHAIN, "devnet", GENESIS)
    store.write_sync(dataclasses.replace(td.batch(wallets, 300), chain_ref_id=chain.id))
    store.write_sync(dataclasses.replace(td.batch(wallets[:1], 310), chain_ref_id=chain.id,
                                         confirmed_venues=("aave_v3",)))
    assert [v.as_of_block for v in store.latest_health(wallets[1])] == [310]
    assert [v.valid_from_block for v in store.latest_health(wallets[1])] == [300]
    store.purge_above(chain.id, 305)
    assert [v.as_of_block for v in store.latest_health(wallets[1])] == [300]
