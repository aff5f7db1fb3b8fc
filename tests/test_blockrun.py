"""``xmargin run`` in block mode (``sync_mode = "block"``, issue 14): each tick processes every block since the last,
in order, and stores what a full read gives; a quiet chain confirms its last block; a gap longer than the backfill
limit, or a reorganisation of the block processed last, is a full sweep at the head — never a silent skip."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import devnet
from aggregator.blockrun import BlockSyncer
from aggregator.blocksync import same_state
from aggregator.cycle import Cycle
from aggregator.devnet_cli import devnet_settings
from aggregator.pipeline import ChainContext, read_venues
from aggregator.render import check_text
from db.rows import SyncStatus
from db.store import Store
from tests.test_recompute_exact import _aave_act, _prices

pytestmark = [pytest.mark.chain]

SEED = 20261206


@pytest.fixture(scope="module")
def chain(seeded_devnet: devnet.DevnetInfo) -> Iterator[devnet.DevnetInfo]:
    snap = devnet.snapshot(seeded_devnet)
    yield seeded_devnet
    devnet.revert(seeded_devnet, snap)


def _equal_to_a_full_read(syncer: BlockSyncer, store: Store, ctx: ChainContext, wallets: list[str]) -> None:
    """What the newest block gave is what a full read of every wallet gives there (raw amounts and raw health
    equal); the store serves it as of that block, within its change tolerance (it writes a row when a value moved
    by more than that)."""
    block = syncer.reports[-1].block
    ours = {r.venue: {h.wallet: h for h in r.healths} for r in syncer.reports[-1].readings if r.error is None}
    steady = syncer.reports[-1].steady  # left as stored at this block: the store's figures are checked below
    tolerance = store.change_policy.rel_tolerance
    (status,) = store.sync_status({block.chain_id})
    assert status.last_ok_block == block.number  # processed: what is stored holds through it
    for full in read_venues(ctx, wallets, block):
        if full.venue not in syncer._syncs["devnet"].caches:  # the perp venues: refreshed within their budgets
            continue
        assert full.error is None, full.error
        for h in full.healths:
            if h.wallet in steady.get(full.venue, ()):
                assert h.wallet not in ours[full.venue]
            else:
                assert same_state(ours[full.venue][h.wallet], h), (full.venue, h.wallet, block.number)
            stored = {v.venue: v for v in store.latest_health(h.wallet)}[full.venue]
            assert stored.as_of_block <= block.number  # the block it last changed (or was written) at
            health = stored.snapshot.health
            assert health is not None
            if h.health_factor is not None:
                assert health.health_factor == pytest.approx(h.health_factor, rel=tolerance), (full.venue, h.wallet)
            got = sorted((p.asset.address.lower(), str(p.side), p.amount_raw) for p in stored.snapshot.positions)
            want = sorted((p.asset_address.lower(), str(p.side), p.amount_raw) for p in h.positions)
            assert [g[:2] for g in got] == [w[:2] for w in want], (full.venue, h.wallet)
            for g, w in zip(got, want, strict=True):
                assert g[2] == pytest.approx(w[2], rel=tolerance, abs=1), (full.venue, h.wallet, g, w)


def test_block_mode_follows_every_block_then_sweeps_after_a_gap_or_a_reorg(
    chain: devnet.DevnetInfo, tmp_path: Path
) -> None:
    rng = np.random.default_rng(SEED)
    settings = devnet_settings(chain).model_copy(update={"sync_mode": "block", "max_backfill_blocks": 32})
    store = Store.open(f"sqlite:///{tmp_path / 'x.db'}")
    wallets = [devnet.wallet_address(label) for label in devnet.SEED_LABELS if label != "lender"]
    store.add_wallets([(w, None) for w in wallets])
    ctx = ChainContext.open(settings, settings.chains[0])
    cycle = Cycle(settings, store)
    try:
        syncer = cycle.syncer
        assert isinstance(syncer, BlockSyncer)  # the setting picks the block path for xmargin run

        first = syncer.run()
        assert first.ok, [b.error for b in first.batches]
        assert [r.full_sweep for r in syncer.reports] == [True]
        head = syncer.reports[-1].block.number

        # Quiet: no new block. The last one is confirmed, nothing is read again.
        (before,) = store.sync_status({chain.chain_id})
        quiet = syncer.run()
        assert quiet.ok
        assert syncer.reports == []
        assert [b.block.number for b in quiet.batches if b.block] == [head]
        (after,) = store.sync_status({chain.chain_id})
        assert after.last_ok_at is not None
        assert before.last_ok_at is not None
        assert after.last_ok_at > before.last_ok_at

        # Activity over several blocks: each is processed, in order, from its logs.
        prices = _prices(chain)
        for w in rng.choice(wallets, size=2, replace=False):
            with contextlib.suppress(devnet.RevertedError):
                _aave_act(chain, str(w), rng, prices)
        devnet.set_price(chain, "WETH", round(prices["WETH"] * 0.98, 8))
        devnet.increase_time(chain, 600)
        devnet.mine(chain)
        now = ctx.rpc.get_block("latest").number
        assert now - head <= 32, "the activity above must fit the backfill limit"
        moved = syncer.run()
        assert moved.ok, [b.error for b in moved.batches]
        assert [r.block.number for r in syncer.reports] == list(range(head + 1, now + 1))
        assert not any(r.full_sweep for r in syncer.reports)
        assert all(r.get_logs == 1 for r in syncer.reports)
        assert sum(r.dirty_wallets for r in syncer.reports) >= 1
        _equal_to_a_full_read(syncer, store, ctx, wallets)
        # the last block (mined empty) read no wallet: the lending healths are recomputed, and say so
        (lending,) = [r for r in syncer.reports[-1].readings if r.venue == "aave_v3"]
        assert {check_text(h).plain for h in lending.healths if h.health_factor is not None} == {"recomputed"}
        assert not any(f.startswith("onchain_") for h in lending.healths for f in h.flags)  # nothing to disagree with

        # Steady state, one new block: its header and the last block's (for a reorganisation) are read once, in
        # the chain's identification request — not again to step through the range.
        rpc = syncer._syncs[settings.chains[0].name].ctx.rpc
        reads: list[list[object]] = []
        get_blocks = rpc.get_blocks

        def counted(blocks: list[object]) -> list[object]:
            reads.append(list(blocks))
            return get_blocks(blocks)  # type: ignore[arg-type]

        devnet.set_price(chain, "WETH", round(prices["WETH"] * 0.97, 8))
        assert syncer.run().ok
        last = syncer.reports[-1].block.number
        devnet.mine(chain)
        rpc.get_blocks = counted  # type: ignore[method-assign,assignment]
        try:
            one = syncer.run()
        finally:
            del rpc.get_blocks
        assert one.ok, [b.error for b in one.batches]
        assert [r.block.number for r in syncer.reports] == [last + 1]
        assert len(reads) == 1, reads
        assert "latest" in reads[0]
        assert last in reads[0]
        _equal_to_a_full_read(syncer, store, ctx, wallets)

        # A gap longer than the backfill limit: one full sweep at the head, never a silent skip.
        devnet.mine(chain, 40)
        gap = syncer.run()
        assert gap.ok
        assert [r.full_sweep for r in syncer.reports] == [True]
        assert syncer.reports[0].block.number == ctx.rpc.get_block("latest").number
        _equal_to_a_full_read(syncer, store, ctx, wallets)

        # A reorganisation of the block processed last: a full sweep at the new head.
        fork = devnet.snapshot(chain)
        devnet.mine(chain, 2)
        assert syncer.run().ok
        devnet.revert(chain, fork)
        devnet.set_price(chain, "WETH", round(prices["WETH"] * 0.95, 8))  # another block at the same height
        devnet.mine(chain, 2)
        reorged = syncer.run()
        assert reorged.ok, [b.error for b in reorged.batches]
        assert [r.full_sweep for r in syncer.reports] == [True]
        assert all(b.status is SyncStatus.OK for b in reorged.batches)
        _equal_to_a_full_read(syncer, store, ctx, wallets)
    finally:
        cycle.close()
        ctx.close()
        store.close()


def test_xmargin_run_in_block_mode_syncs_each_block_as_its_head_arrives(
    chain: devnet.DevnetInfo, tmp_path: Path
) -> None:
    """``xmargin run`` in block mode follows the chain's new heads over its WebSocket (the devnet's config names
    anvil's): each mined block is stored within seconds although the interval is ten minutes — only the head can
    have started those syncs."""
    import dataclasses
    import io
    import threading
    import time

    from rich.console import Console

    from aggregator.scheduler import run_forever
    from tests.timing import scaled

    onchain = dataclasses.replace(chain, services={})  # the heads' latency, not the perp venues' polls
    base = devnet_settings(onchain)
    ws_url = base.chains[0].ws_url
    assert ws_url is not None
    assert ws_url.startswith("ws://")
    settings = base.model_copy(update={
        "sync_mode": "block", "interval_s": 600.0, "db_url": f"sqlite:///{tmp_path / 'x.db'}",
        "api": base.api.model_copy(update={"enabled": False})})
    wallets = [devnet.wallet_address(label) for label in devnet.SEED_LABELS if label != "lender"]
    with Store.open(settings.db_url) as store:
        store.add_wallets([(w, None) for w in wallets])
    stop = threading.Event()
    out = io.StringIO()
    runner = threading.Thread(target=run_forever, args=(settings, Console(file=out, width=200)),
                              kwargs={"stop": stop}, daemon=True)

    def stored_block(store: Store) -> int | None:
        status = store.sync_status({chain.chain_id})
        return status[0].last_ok_block if status else None

    def wait_for(store: Store, block: int, within_s: float) -> float:
        t0 = time.monotonic()
        while time.monotonic() - t0 < within_s:
            if (stored_block(store) or 0) >= block:
                return time.monotonic() - t0
            time.sleep(0.05)
        raise AssertionError(f"block {block} not stored within {within_s:.0f} s (stored: {stored_block(store)}); "
                             f"console: {out.getvalue()[-2000:]}")

    with Store.open(settings.db_url) as store:
        runner.start()
        try:
            wait_for(store, int(devnet.rpc(chain, "eth_blockNumber"), 16), scaled(60))  # the first run, at the start
            assert "following new heads on 1 chain(s)" in out.getvalue()
            for _ in range(3):
                devnet.mine(chain)
                wait_for(store, int(devnet.rpc(chain, "eth_blockNumber"), 16), scaled(15))
        finally:
            stop.set()
            runner.join(scaled(60))
    assert not runner.is_alive()
    assert "Traceback" not in out.getvalue()


def test_another_chain_behind_the_last_block_is_swept_at_its_head_not_confirmed(
    chain: devnet.DevnetInfo, tmp_path: Path
) -> None:
    """A devnet reset (the node's head below every stored block: another chain, kept apart by the identification)
    under a running block syncer: the next run re-reads every wallet at the new chain's head and stores it there.
    It neither waits for the new chain to pass the old one's last block nor confirms that block on the new chain
    (a quiet run's "no change" would have shown the old chain's numbers as the new one's, fresh)."""
    settings = devnet_settings(chain).model_copy(update={"sync_mode": "block"})
    wallets = [devnet.wallet_address(label) for label in devnet.SEED_LABELS if label != "lender"]
    url = f"sqlite:///{tmp_path / 'x.db'}"
    with Store.open(url) as store, contextlib.closing(BlockSyncer(settings, store)) as syncer:
        store.add_wallets([(w, None) for w in wallets])
        snap = devnet.snapshot(chain)
        reset_head = int(devnet.rpc(chain, "eth_blockNumber"), 16)
        devnet.mine(chain, 3)
        first = syncer.run()
        assert first.ok, [b.error for b in first.batches]
        assert [r.block.number for r in syncer.reports] == [reset_head + 3]

        devnet.revert(chain, snap)  # the node now answers with a chain 3 blocks shorter
        again = syncer.run()
        assert again.ok, [b.error for b in again.batches]
        assert [(r.block.number, r.full_sweep) for r in syncer.reports] == [(reset_head, True)]
        assert [b.block.number for b in again.batches if b.block] == [reset_head]
        ((status,),) = [store.sync_status({chain.chain_id})]
        assert status.last_ok_block == reset_head
        assert {h.as_of_block for w in wallets for h in store.latest_health(w)} <= set(range(reset_head + 1))


def test_xmargin_run_follows_blocks_by_default(chain: devnet.DevnetInfo, tmp_path: Path) -> None:
    """The config ``xmargin devnet up`` writes names no ``sync_mode``: ``xmargin run``'s cycle syncs block by block
    (the full re-read of every wallet per tick only when asked for, ``sync_mode = "cycle"``)."""
    from aggregator.config import load_settings, write_settings_toml
    from aggregator.pipeline import Syncer

    path = tmp_path / "devnet.toml"
    write_settings_toml(devnet_settings(chain), path)
    assert "sync_mode" not in path.read_text()
    with Store.open(f"sqlite:///{tmp_path / 'x.db'}") as store:
        default = load_settings(path)
        with Cycle(default, store) as cycle:
            assert isinstance(cycle.syncer, BlockSyncer)
        path.write_text('sync_mode = "cycle"\n' + path.read_text())
        with Cycle(load_settings(path), store) as cycle:
            assert type(cycle.syncer) is Syncer


def test_a_reconciliation_mismatch_is_logged_and_counted_in_the_metrics(
    chain: devnet.DevnetInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """``reconcile_every_blocks`` reaches the block sync, and what its reconciliation finds reaches ``/metrics``: with
    the dirty set blinded (logs that name no wallet), a wallet's supply goes unseen by the recomputation and the full
    read at the next reconciled block disagrees — a log line, ``xmargin_reconcile_mismatches_total`` up, and a quiet
    run that confirms the block counts nothing again."""
    from aggregator.metrics import Metrics

    onchain = dataclasses.replace(chain, services={})
    settings = devnet_settings(onchain).model_copy(update={"sync_mode": "block", "reconcile_every_blocks": 1})
    wallet = devnet.wallet_address("safe")
    with Store.open(f"sqlite:///{tmp_path / 'x.db'}") as store, \
            contextlib.closing(BlockSyncer(settings, store)) as syncer:
        store.add_wallets([(wallet, None)])
        metrics = Metrics(store)

        def counted(name: str) -> float:
            return metrics.registry.get_sample_value(name, {"chain": "devnet"}) or 0.0

        first = syncer.run()
        metrics.observe_sync(first)
        assert first.ok, [b.error for b in first.batches]
        assert counted("xmargin_reconcile_sweeps_total") == 1  # every block is reconciled here
        assert counted("xmargin_reconcile_mismatches_total") == 0

        sync = syncer._syncs["devnet"]
        monkeypatch.setattr(sync, "_dirty", lambda block, report: {name: set() for name in sync._onchain})
        devnet.fund(chain, wallet, "WETH", 10**18)
        devnet.supply(chain, wallet, "WETH", 10**18)  # unseen: the cached state still holds the old collateral
        with caplog.at_level("WARNING", logger="aggregator.blocksync"):
            moved = syncer.run()
        metrics.observe_sync(moved)
        assert any(b.reconcile_mismatches for b in moved.batches)
        assert counted("xmargin_reconcile_mismatches_total") >= 1
        assert any("reconcile: aave_v3" in r.getMessage() and wallet in r.getMessage() for r in caplog.records)
        before = (counted("xmargin_reconcile_sweeps_total"), counted("xmargin_reconcile_mismatches_total"))
        quiet = syncer.run()  # no new block: the last one is confirmed, its reconciliation not counted again
        metrics.observe_sync(quiet)
        assert (counted("xmargin_reconcile_sweeps_total"), counted("xmargin_reconcile_mismatches_total")) == before


def test_rolling_reconciliation_checks_every_wallet_once_a_period_inside_the_blocks_own_read(
    chain: devnet.DevnetInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """``reconcile_every_blocks = K``: each block re-reads one slice of the wallets with its dirty ones and compares
    their cached state with the chain's — the slices of any K consecutive blocks cover every wallet once, a block's
    check costs no request or eth_call more than a block that re-reads a dirty wallet, and a supply the dirty set
    missed is found within K blocks, logged, counted and written from the state read."""
    every = 3
    onchain = dataclasses.replace(chain, services={})
    settings = devnet_settings(onchain).model_copy(update={"sync_mode": "block", "reconcile_every_blocks": every})
    wallets = [devnet.wallet_address(label) for label in devnet.SEED_LABELS if label != "lender"]
    assert len(wallets) > every
    with Store.open(f"sqlite:///{tmp_path / 'x.db'}") as store, \
            contextlib.closing(BlockSyncer(settings, store)) as syncer:
        store.add_wallets([(w, None) for w in wallets])
        assert syncer.run().ok
        sync = syncer._syncs["devnet"]
        rpc = sync.ctx.rpc
        last = rpc.get_block("latest").number
        # any K consecutive blocks: disjoint slices that cover every tracked wallet
        at = rpc.get_block(last)
        slices = [sync._slice(at.model_copy(update={"number": n})) for n in range(last + 1, last + 1 + every)]
        assert set().union(*slices) == set(sync.wallets)
        assert sum(len(s) for s in slices) == len(sync.wallets)

        devnet.mine(chain)
        sync._pending.add(wallets[-1])  # a block that re-reads one wallet (as a dirty one is), nothing checked
        plain = sync.step(rpc.get_block(last + 1), reconcile=False)
        assert not plain.reconciled
        assert plain.reconciled_wallets == 0
        last += 1

        # the dirty set blinded: one wallet's supply goes unseen by the recomputation
        monkeypatch.setattr(sync, "_dirty", lambda block, report: {name: set() for name in sync._onchain})
        target = wallets[0]
        devnet.fund(chain, target, "WETH", 10**18)
        devnet.supply(chain, target, "WETH", 10**18)
        head = rpc.get_block("latest").number
        reports = []
        with caplog.at_level("WARNING", logger="aggregator.blocksync"):
            for n in range(last + 1, head + every + 1):
                if n > rpc.get_block("latest").number:
                    devnet.mine(chain)
                reports.append(sync.step(rpc.get_block(n)))
        checked = sum(r.reconciled_wallets for r in reports[-every:])
        assert checked == len(sync.wallets)
        for r in reports:
            assert not r.errors, r.errors
            assert r.reconciled
            assert r.reconciled_wallets == len(
                {w for i, w in enumerate(sync.wallets) if i % every == r.block.number % every})
            # (the blinded dirty set reads no logs: its request aside)
            assert r.rpc_requests - r.get_logs <= plain.rpc_requests - plain.get_logs
            assert r.eth_calls <= plain.eth_calls
        found = [r for r in reports if r.reconcile_mismatches]
        assert len(found) == 1, [(r.block.number, r.reconcile_mismatches) for r in reports]
        assert found[0].block.number % every == sync.wallets.index(target) % every
        assert target in found[0].written
        assert target in found[0].written_pairs["aave_v3"]
        assert sync.mismatches_total == found[0].reconcile_mismatches
        assert any("reconcile: aave_v3" in r.getMessage() and target in r.getMessage() for r in caplog.records)
        # what was read is what is cached and stored: a full read of the block agrees
        full = {r.venue: {h.wallet: h for h in r.healths}
                for r in read_venues(sync.ctx, [target], found[0].block)}
        mine = {r.venue: {h.wallet: h for h in r.healths} for r in found[0].readings}
        assert same_state(mine["aave_v3"][target], full["aave_v3"][target])
