"""API keys on both backends: only the hash is stored, the key verifies until revoked, names are unique;
the newest price of every (asset, source); a reorganised or repaired block supersedes what was stored."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from db import DuplicateNameError, SnapshotStatus, Store, SyncBatch
from db.apikeys import KEY_PREFIX, hash_key
from tests.db import db_testdata as td

NOW = datetime(2026, 11, 21, 15, tzinfo=UTC)


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    with Store.open(db_url) as s:
        yield s


def test_a_key_verifies_until_revoked_and_is_stored_only_hashed(store: Store) -> None:
    row, key = store.create_api_key("analytics", now=NOW)
    other_row, other = store.create_api_key("keeper-ops", now=NOW)
    assert key.startswith(KEY_PREFIX)
    assert len(key) == len(KEY_PREFIX) + 43
    assert key != other
    assert row.prefix == key[:10]
    assert row.active
    assert store.verify_api_key(key) == row
    assert store.verify_api_key(other) == other_row
    for wrong in (key[:-1] + ("A" if key[-1] != "A" else "B"), key + "x", "", "Bearer " + key, key.upper()):
        assert store.verify_api_key(wrong) is None, wrong
    with store.engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT name, prefix, key_hash FROM api_keys ORDER BY id")).all()
    assert [tuple(r) for r in stored] == [("analytics", key[:10], hash_key(key)),
                                          ("keeper-ops", other[:10], hash_key(other))]
    assert all(key not in str(r) and other not in str(r) for r in stored)

    with pytest.raises(DuplicateNameError, match="analytics"):
        store.create_api_key("analytics", now=NOW)
    for bad in ("  ", "2024"):  # numbers are ids: `xmargin apikey revoke 2024` must mean one key
        with pytest.raises(ValueError, match="needs a name"):
            store.create_api_key(bad, now=NOW)

    assert store.revoke_api_key("analytics", now=NOW)
    assert not store.revoke_api_key("analytics", now=NOW)  # already revoked
    assert store.verify_api_key(key) is None
    assert store.verify_api_key(other) == other_row
    assert store.revoke_api_key(other_row.id, now=NOW)
    assert store.verify_api_key(other) is None
    assert not store.revoke_api_key(999, now=NOW)
    assert [(k.name, k.active) for k in store.list_api_keys()] == [("analytics", False), ("keeper-ops", False)]


def test_latest_prices_are_the_newest_per_asset_and_source(store: Store) -> None:
    wallets = td.setup(store, 2)
    assert store.latest_prices() == []
    store.write_sync(td.batch(wallets, 100))
    newer = td.batch(wallets, 101)
    bumped = tuple(dataclasses.replace(p, price_usd=p.price_usd * 1.01) for p in newer.prices)
    store.write_sync(dataclasses.replace(newer, prices=bumped))
    latest = store.latest_prices()
    assert sorted((p.asset.symbol, p.source) for p in latest) == sorted((p.asset.symbol, p.source) for p in bumped)
    assert {p.block_number for p in latest} == {101}
    assert {(p.asset.symbol, p.source): p.price_usd for p in latest} == pytest.approx(
        {(p.asset.symbol, p.source): p.price_usd for p in bumped})
    assert store.latest_prices(chain_id=td.CHAIN + 1) == []
    assert len(store.latest_prices(chain_id=td.CHAIN)) == len(bumped)


def test_latest_prices_follow_the_block_not_the_insertion_order(store: Store) -> None:
    """A sync of an older block (``xmargin sync --block``) after a newer one never hides the newer price."""
    wallets = td.setup(store, 1)
    store.write_sync(td.batch(wallets, 103))
    store.write_sync(td.batch(wallets, 50))
    assert {p.block_number for p in store.latest_prices()} == {103}


def _rehash(batch: SyncBatch, block_hash: str) -> SyncBatch:
    return dataclasses.replace(batch, block_hash=block_hash, snapshots=tuple(
        dataclasses.replace(s, block_hash=block_hash) for s in batch.snapshots))


def test_a_reorganised_block_or_a_repaired_error_supersedes_the_stored_snapshot(store: Store) -> None:
    wallets = td.setup(store, 2)
    first = td.batch(wallets, 100)
    store.write_sync(first)
    positions = sum(len(s.positions) for s in first.snapshots)
    # The same block again, same hash: nothing new (idempotent).
    store.write_sync(first)
    # Block 100 was reorganised: the new canonical read replaces the stored one, positions and health with it.
    other = "0x" + "ab" * 32
    store.write_sync(_rehash(first, other))
    latest = store.latest_health(wallets[0])
    assert {v.snapshot.block_hash for v in latest} == {other}
    with store.engine.connect() as conn:
        count = conn.execute(sa.text("SELECT count(*) FROM position_snapshots")).scalar_one()
        stored_positions = conn.execute(sa.text("SELECT count(*) FROM positions")).scalar_one()
        orphans = conn.execute(sa.text(
            "SELECT count(*) FROM positions p LEFT JOIN position_snapshots s ON s.id = p.snapshot_id "
            "WHERE s.id IS NULL")).scalar_one()
    assert (count, stored_positions, orphans) == (len(first.snapshots), positions, 0)
    with store.engine.connect() as conn:  # the orphaned block's prices went with it
        prices = conn.execute(sa.text("SELECT count(*) FROM prices")).scalar_one()
    assert prices == len(first.prices)  # only the canonical read's: both runs that read the orphaned block lost theirs
    # An error read of block 101, then a clean read of the same block: the clean one is served.
    broken = td.batch(wallets, 101)
    broken = dataclasses.replace(broken, snapshots=tuple(
        dataclasses.replace(s, status=SnapshotStatus.ERROR, error="injected", positions=(), health=None)
        for s in broken.snapshots))
    store.write_sync(broken)
    # The failed read is reported beside the last known values (block 100's), not instead of them.
    assert all(v.failed is not None and v.failed.error == "injected" and v.failed.block_number == 101
               and v.snapshot.block_number == 100 and v.snapshot.health is not None
               for v in store.latest_health(wallets[0]))
    store.write_sync(td.batch(wallets, 101))
    assert all(v.snapshot.error is None and v.snapshot.health is not None and v.failed is None
               and v.snapshot.block_number == 101 for v in store.latest_health(wallets[0]))
    # ... but an error never replaces a clean read of the same block.
    store.write_sync(broken)
    assert all(v.snapshot.error is None for v in store.latest_health(wallets[0]))
