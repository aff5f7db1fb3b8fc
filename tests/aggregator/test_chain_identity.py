"""Which chain a configured name points at: :func:`aggregator.chainid.judge` on every case, and on the devnet the
issue's own scenario — a chain reset behind the same name and chain id (same genesis, same deployed blocks, lower
block numbers) is recognised, its predecessor's data kept apart and never served as current or mixed into a
history; a reorganisation purges only the replaced blocks; a node behind the store fails the sync with that reason.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

import devnet
from aggregator.chainid import judge
from aggregator.config import Settings
from aggregator.devnet_cli import devnet_settings
from aggregator.pipeline import sync_once
from aggregator.render import health_document
from connectors.types import BlockRef
from db import ChainRow, Store, StoredBlock, SyncStatus
from tests.faultproxy import reorg

GENESIS = "0x" + "aa" * 32


def _h(n: int, fork: str = "0") -> str:
    return "0x" + fork * 2 + f"{n:062x}"


def _chain(genesis: str | None = GENESIS) -> ChainRow:
    return ChainRow(id=1, name="devnet", chain_id=31337, genesis_hash=genesis,
                    created_at=datetime(2026, 1, 1, tzinfo=UTC))


def _stored(*numbers: int, t0: int = 1_000) -> list[StoredBlock]:
    return [StoredBlock(n, _h(n), datetime.fromtimestamp(t0 + n, UTC)) for n in sorted(numbers, reverse=True)]


def _head(n: int, ts: int) -> BlockRef:
    return BlockRef(chain_id=31337, number=n, hash=_h(n, "f"), timestamp=ts)


def test_judge_the_common_case_is_the_same_chain() -> None:
    stored = _stored(100, 99, 98)
    assert judge(_chain(), GENESIS, _head(101, 2_000), stored, {100: _h(100)}).kind == "same"
    assert judge(_chain(), GENESIS, _head(101, 2_000), [], {}).kind == "same"  # nothing stored yet
    assert judge(None, GENESIS, _head(5, 2_000), [], {}).kind == "new"  # first sync


def test_judge_another_genesis_is_another_chain() -> None:
    verdict = judge(_chain(), "0x" + "bb" * 32, _head(101, 2_000), _stored(100), {100: _h(100)})
    assert verdict.kind == "new"
    assert "genesis" in (verdict.reason or "")


def test_judge_a_shallow_replacement_is_a_reorg_above_the_common_block() -> None:
    stored = _stored(100, 99, 98)
    canonical = {100: _h(100, "e"), 99: _h(99, "e"), 98: _h(98)}
    verdict = judge(_chain(), GENESIS, _head(101, 2_000), stored, canonical)
    assert (verdict.kind, verdict.ancestor) == ("reorg", 98)
    # A reorganisation to a shorter chain too (the replaced block is gone, an older one is kept).
    verdict = judge(_chain(), GENESIS, _head(99, 2_000), stored, {100: None, 99: _h(99, "e"), 98: _h(98)})
    assert (verdict.kind, verdict.ancestor) == ("reorg", 98)


def test_judge_a_reset_devnet_sharing_its_deployed_prefix_is_another_chain() -> None:
    """The issue's case: blocks 0..180 identical (the cached deployment), the seeded blocks differ, and the new
    chain's head is below the old one's newest block with a later time."""
    stored = _stored(269, 258, 256, 180)
    canonical = {269: None, 258: None, 256: _h(256, "e"), 180: _h(180)}
    verdict = judge(_chain(), GENESIS, _head(257, 5_000), stored, canonical)
    assert verdict.kind == "new"
    assert "more than 64 blocks back" in (verdict.reason or "")
    # Nothing stored at or below the new head (a devnet reset starts again below its predecessor's blocks, and its
    # clock may even be behind theirs: mined blocks advance a devnet's time a second each).
    for head_time in (5_000, 100):
        verdict = judge(_chain(), GENESIS, _head(200, head_time), _stored(269, 258), {269: None, 258: None})
        assert verdict.kind == "new"
        assert "below every block stored" in (verdict.reason or "")


def test_judge_a_node_behind_the_store_is_not_another_chain() -> None:
    stored = _stored(269, 258, 256)
    verdict = judge(_chain(), GENESIS, _head(260, 1_100), stored, {269: None, 258: _h(258), 256: _h(256)})
    assert verdict.kind == "behind"
    assert "behind block 269" in (verdict.reason or "")
    # Evidence is needed: a stored block at or below the head, still on the node's chain.
    stored = _stored(269, 258, 256, 190)
    verdict = judge(_chain(), GENESIS, _head(200, 1_100), stored, {269: None, 258: None, 256: None, 190: _h(190)})
    assert verdict.kind == "behind"


def test_judge_an_unverified_identity_is_adopted_only_when_plainly_the_same() -> None:
    stored = _stored(100, 99)
    assert judge(_chain(None), GENESIS, _head(101, 2_000), stored, {100: _h(100)}).kind == "same"
    verdict = judge(_chain(None), GENESIS, _head(101, 2_000), stored, {100: _h(100, "e"), 99: _h(99)})
    assert verdict.kind == "new"  # a migrated store may mix chains: never adopt one that does not match at the top


# -- on the devnet ---------------------------------------------------------------------------------------------

@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    with Store.open(db_url) as s:
        s.add_wallets([(devnet.wallet_address(label), label) for label in devnet.SEED_LABELS if label != "lender"])
        yield s


@pytest.fixture
def chain(seeded_devnet: devnet.DevnetInfo) -> Iterator[devnet.DevnetInfo]:
    """The shared seeded devnet (tests/conftest.py), reverted to its state before the test afterwards."""
    snap = devnet.snapshot(seeded_devnet)
    yield seeded_devnet
    devnet.revert(seeded_devnet, snap)


def _aave_only(info: devnet.DevnetInfo) -> Settings:
    settings = devnet_settings(info)
    return settings.model_copy(update={"venues": tuple(v for v in settings.venues if v.type == "aave_v3")})


@pytest.mark.chain
def test_a_reset_devnet_is_a_new_chain_and_the_old_data_is_never_served(
    store: Store, caplog: pytest.LogCaptureFixture,
) -> None:
    hedged = devnet.wallet_address("hedged")
    with devnet.Devnet.launch() as first:
        devnet.seed(first.info)
        for _ in range(3):  # the old chain runs ahead: its blocks are higher than the new chain's will be
            devnet.set_price(first.info, "WETH", 3_900.0)
            devnet.mine(first.info, 20)
            report = sync_once(_aave_only(first.info), store)
            assert report.ok
        old_block = store.latest_health(hedged)[0].snapshot.block_number
        old_chain = store.current_chain(first.info.chain_id)
    assert old_chain is not None
    assert old_chain.verified
    with devnet.Devnet.launch() as second:  # same cached deployment: same chain id, same genesis, same prefix
        devnet.seed(second.info)
        settings = _aave_only(second.info)
        caplog.set_level(logging.WARNING, logger="aggregator.chainid")
        report = sync_once(settings, store)
        assert report.ok
        new_block = report.batches[0].block
        assert new_block is not None
        assert new_block.number < old_block
        latest = store.latest_health(hedged)
        assert {(v.snapshot.block_number, v.snapshot.block_hash) for v in latest} == {(new_block.number,
                                                                                        new_block.hash)}
        doc = health_document(hedged, latest, {"aave_v3": "lending"})
        assert doc["block"] == new_block.number
        assert {p.block_number for p in store.history(hedged)} == {new_block.number}  # never mixed
        risk = store.latest_risk(hedged)
        assert risk is not None
        assert risk.block_number == new_block.number
        new_chain = store.current_chain(second.info.chain_id)
        assert new_chain is not None
        assert new_chain.id != old_chain.id
        assert new_chain.genesis_hash == old_chain.genesis_hash  # the genesis alone could not tell them apart
        retired = next(c for c in store.list_chains() if c.id == old_chain.id)
        assert retired.retired_at is not None
        lines = [r.getMessage() for r in caplog.records if "no longer the chain stored before" in r.getMessage()]
        assert len(lines) == 1
        assert "kept apart" in lines[0]
        # The next sync of the same chain says nothing more and stays on the new identity.
        devnet.set_price(second.info, "WETH", 3_950.0)
        again = sync_once(settings, store)
        assert again.ok
        assert store.current_chain(second.info.chain_id).id == new_chain.id  # type: ignore[union-attr]
        assert len([r for r in caplog.records if "no longer the chain" in r.getMessage()]) == 1
        next_block = again.batches[0].block
        assert next_block is not None
        # Only the new chain's two syncs: none of the old chain's (higher) blocks.
        assert {p.block_number for p in store.history(hedged)} == {new_block.number, next_block.number}


@pytest.mark.chain
def test_a_reorganisation_purges_the_replaced_blocks_and_keeps_the_chain(
    chain: devnet.DevnetInfo, store: Store, caplog: pytest.LogCaptureFixture,
) -> None:
    hedged = devnet.wallet_address("hedged")
    settings = _aave_only(chain)
    assert sync_once(settings, store).ok
    kept = store.latest_health(hedged)[0].snapshot.block_number
    stored_chain = store.current_chain(chain.chain_id)
    devnet.mine(chain, 1)
    assert sync_once(settings, store).ok
    replaced = store.latest_health(hedged)[0].snapshot.block_number
    assert replaced == kept + 1
    # Replace the newest block (anvil_reorg: depth 1, a new hash even for an empty block).
    result = reorg(chain.rpc_url, 1)
    assert result.new_hashes[replaced] != result.old_hashes[replaced]
    caplog.set_level(logging.WARNING, logger="aggregator.chainid")
    report = sync_once(settings, store)
    assert report.ok
    assert store.current_chain(chain.chain_id).id == stored_chain.id  # type: ignore[union-attr]
    assert any("reorganised" in r.getMessage() for r in caplog.records)
    head = report.batches[0].block
    assert head is not None
    history = store.history(hedged)
    hashes = {(p.block_number, p.snapshot_id) for p in history}
    # the replaced block's data went; the ancestor stayed (change-only store: the head is a history point of its own
    # only when the health moved beyond the store's tolerance, issue 14)
    blocks = {b for b, _ in hashes}
    assert kept in blocks
    assert blocks <= {kept, head.number}
    latest = store.latest_health(hedged)[0]
    assert latest.snapshot.block_hash == head.hash
    assert latest.as_of_block == head.number


@pytest.mark.chain
def test_a_node_behind_the_store_fails_the_sync_with_that_reason(chain: devnet.DevnetInfo, store: Store) -> None:
    settings = _aave_only(chain)
    assert sync_once(settings, store).ok  # a block the lagging node will still have: the evidence
    snap = devnet.snapshot(chain)
    devnet.mine(chain, 3)
    assert sync_once(settings, store).ok
    synced = store.latest_block(chain.chain_id)
    devnet.revert(chain, snap)  # the node goes back 3 blocks, in time too: a lagging node's view
    report = sync_once(settings, store)
    (batch,) = report.batches
    assert batch.status is SyncStatus.FAILED
    assert "behind block" in (batch.error or "")
    [status] = store.sync_status({chain.chain_id})
    assert status.failing_since is not None
    assert "behind block" in (status.last_error or "")
    assert store.latest_block(chain.chain_id) == synced  # what was stored is still served


def test_xmargin_chains_lists_the_current_and_the_replaced_chains(
    db_url: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from typer.testing import CliRunner

    from aggregator.cli import app

    with Store.open(db_url) as store:
        old = store.begin_chain(31337, "devnet", GENESIS)
        store.begin_chain(31337, "devnet", "0x" + "bb" * 32, retire=old.id, reason="replaced: reset")
    monkeypatch.setenv("XMARGIN_DB_URL", db_url)
    result = CliRunner().invoke(app, ["chains", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    docs = json.loads(result.stdout)
    assert [(d["current"], d["genesis_hash"][:4], d["retired_reason"]) for d in docs] == [
        (True, "0xbb", None), (False, "0xaa", "replaced: reset")]
    table = CliRunner().invoke(app, ["chains"], catch_exceptions=False, env={"COLUMNS": "80"})
    assert "current" in table.stdout
    assert "retired" in table.stdout
