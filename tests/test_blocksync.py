"""The block-driven incremental sync (issue 14) against a full re-read, on the seeded devnet.

Random wallets act on Aave, Morpho and Uniswap round after round (each devnet transaction is its own block), prices
move and time passes (interest accrues without a log). :class:`aggregator.blocksync.BlockSync` follows every block
in order: one ``eth_getLogs`` names the wallets to re-read, the market state is read every block, every other
wallet is recomputed from its cached account state, or left as stored when nothing it holds moved but what accrues
(``Incremental.steady``). After each round every recomputed wallet's health equals a full re-read at the same block
(Aave's integers, Morpho's and Uniswap's exact figures), every wallet left as stored holds figures within the write
tolerance of that read, and the reconcile sweep finds nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import devnet
from aggregator.blocksync import BlockReport, BlockSync, material_change, same_state
from aggregator.devnet_cli import devnet_settings
from aggregator.pipeline import ChainContext, read_venues, register_venues
from aggregator.views import VenueHealth
from db.store import Store
from devnet import uniswap
from tests.test_recompute_exact import STABLES, _aave_act, _morpho_act, _prices, _summary_of, _uniswap_act

pytestmark = [pytest.mark.chain, pytest.mark.slow]

SEED = 20261207
NEW_WALLETS = 10
ROUNDS = 25
ACTORS = 3
_LOCAL = ("source", "verified_at_block")


@pytest.fixture(scope="module")
def chain(seeded_devnet: devnet.DevnetInfo) -> Iterator[devnet.DevnetInfo]:
    snap = devnet.snapshot(seeded_devnet)
    yield seeded_devnet
    devnet.revert(seeded_devnet, snap)


def _move_market(info: devnet.DevnetInfo, rng: np.random.Generator, prices: dict[str, float],
                 since: dict[str, int]) -> None:
    """Two feeds move (up to 3 %, stables 0.3 %) and a few minutes pass: interest accrues without a log. A feed
    not updated for 40 minutes posts its answer again (a heartbeat update, as Chainlink's do), so every feed stays
    inside its heartbeat — a stale price fails a venue on both paths alike."""
    movers = {str(s) for s in rng.choice(sorted(info.tokens), size=2, replace=False)}
    for s in sorted(info.tokens):
        if s in movers:
            move = float(rng.uniform(0.997, 1.003)) if s in STABLES else float(rng.uniform(0.97, 1.03))
            devnet.set_price(info, s, round(prices[s] * move, 8))
            since[s] = 0
        elif since.get(s, 0) >= 2_400:
            devnet.set_price(info, s, prices[s])
            since[s] = 0
    # a pool of neither mover trades a little (as busy pools do every block): its LPs' amounts and fees move by
    # far less than the tolerance, which the Uniswap steady rule bounds without recomputing them
    quiet = [n for n in uniswap.pool_names(info)
             if not {uniswap.pool_tokens(info, n).symbol0, uniswap.pool_tokens(info, n).symbol1} & movers]
    if quiet:
        name = str(rng.choice(quiet))
        now = uniswap.pool_state(info, name).sqrt_price_x96
        uniswap.swap_to_sqrt_price(info, name, int(now * (1 + float(rng.uniform(-2e-6, 2e-6)))))
    elapsed = int(rng.integers(60, 900))
    devnet.increase_time(info, elapsed)
    for s in info.tokens:
        since[s] = since.get(s, 2_400) + elapsed


def _swapped_since(sync: BlockSync, venue: str, wallet: str) -> bool:
    """Whether a pool of ``wallet``'s LP NFTs traded since its figures were stored (held by the steady rule's bound,
    not by an unchanged pool)."""
    if venue != "uniswap_v3":
        return False
    cache = sync.caches[venue]
    then = cache.inputs[cache.stored[wallet][1]][0]
    return any(then.pools[n.key].sqrt_price_x96 != cache.market.pools[n.key].sqrt_price_x96
               for a in cache.accounts if a.wallet == wallet for n in a.nfts)


def _comparable(h: VenueHealth) -> VenueHealth:
    extra = {k: v for k, v in h.extra.items() if k not in _LOCAL}
    flags = tuple(f for f in h.flags if f not in ("onchain_unavailable", "onchain_mismatch", "stale"))
    return replace(h, onchain_health_factor_raw=None, matches_onchain=None, flags=flags, extra=extra)


def _follow(sync: BlockSync, ctx: ChainContext, last: int) -> tuple[int, list[BlockReport]]:
    """Step through every block after ``last`` up to the head, in order."""
    head = ctx.rpc.get_block("latest").number
    reports = [sync.step(ctx.rpc.get_block(n)) for n in range(last + 1, head + 1)]
    return head, reports


def test_incremental_health_equals_a_full_read_block_after_block(chain: devnet.DevnetInfo, tmp_path: Path) -> None:
    rng = np.random.default_rng(SEED)
    settings = devnet_settings(chain)
    ctx = ChainContext.open(settings, settings.chains[0])
    store = Store.open(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        register_venues(store, settings)
        seeded = [devnet.wallet_address(label) for label in devnet.SEED_LABELS if label != "lender"]
        fresh = [devnet.wallet_address(f"blocksync-{SEED}-{i}") for i in range(NEW_WALLETS)]
        wallets = seeded + fresh
        store.add_wallets([(w, None) for w in wallets])
        sync = BlockSync(ctx, store, reconcile_every=0, heavy_every_s=1e9)
        sync.track(wallets)
        first = ctx.rpc.get_block("latest")
        start = sync.step(first)
        assert start.full_sweep
        assert not start.errors, start.errors
        assert start.written_wallets == len(wallets)
        last = first.number
        blocks = 0
        reports: list[BlockReport] = []
        acted_total = 0
        reverted = 0
        since: dict[str, int] = {}
        detailed = bare = held = partial = risked = swapped = blended = 0
        held_by: Counter[str] = Counter()
        summarized = {v.config.name for v in ctx.onchain if v.summarize is not None}
        for _ in range(ROUNDS):
            prices = _prices(chain)
            for wallet in rng.choice(wallets, size=ACTORS, replace=False):
                w = str(wallet)
                act = str(rng.choice(["aave_v3", "morpho_blue", "uniswap_v3"]))
                try:
                    if act == "aave_v3":
                        _aave_act(chain, w, rng, prices)
                    elif act == "morpho_blue":
                        _morpho_act(chain, w, rng)
                    else:
                        _uniswap_act(chain, w, rng, prices)
                except devnet.RevertedError:  # a random action the protocol refuses (a cap): the block goes on
                    reverted += 1
            _move_market(chain, rng, prices, since)
            last, done = _follow(sync, ctx, last)
            blocks += len(done)
            reports += done
            for r in done:
                assert not r.errors, (r.block.number, r.errors)
                assert not r.full_sweep, r.block.number
                assert r.get_logs == 1
                # health rows only for the (wallet, venue) pairs whose figures moved; one risk row at most per wallet
                assert r.rows_by_table.get("health_results", 0) <= sum(len(p) for p in r.written_pairs.values())
                assert r.rows_by_table.get("risk_results", 0) <= r.written_wallets
                partial += sum(1 for w in r.written if sum(w in p for p in r.written_pairs.values()) < len(
                    [c for c in sync.caches.values() if w in c.stored and c.stored[w][0].positions]))
            # A wallet written for some of its venues: its risk row is over all of them (the others as stored).
            for w in next((r.written for r in reversed(done) if r.written), ()):
                doc = store.latest_risk(w)
                assert doc is not None, w
                venues = {name for name, c in sync.caches.items() if w in c.stored and c.stored[w][0].positions}
                assert venues <= set(doc.document["venue_margins_usd"]), (w, venues, doc.document["venue_margins_usd"])
                risked += 1
            acted_total += sum(r.dirty_wallets for r in done)
            # Every wallet at the round's last block; the wallets written, with the venue's detail, at the round's
            # last block that wrote any (a block that moves nothing past the tolerance writes none).
            checked = [done[-1]] if done else []
            checked += [r for r in reversed(done[:-1]) if r.written][:1]
            for report in checked:
                block = report.block
                ours = {r.venue: {h.wallet: h for h in r.healths} for r in report.readings}
                for full in read_venues(ctx, wallets, block):
                    if full.venue not in sync.caches:
                        continue
                    assert full.error is None, full.error
                    # the (wallet, venue) pairs the block wrote: a written wallet's other venues hold as stored
                    written = report.written_pairs.get(full.venue, frozenset())
                    assert written <= set(report.written)
                    mine = ours[full.venue]
                    steady = report.steady.get(full.venue, frozenset())
                    assert not steady & set(mine), full.venue
                    assert set(mine) | steady == {h.wallet for h in full.healths}, full.venue
                    for h in full.healths:
                        got = mine.get(h.wallet)
                        if got is None:
                            # Left steady at this block: the figures stored hold within the tolerance (checked at
                            # the newest block, where the cache holds what is stored).
                            assert h.wallet not in written
                            if report is done[-1]:
                                stored = sync.caches[full.venue].stored[h.wallet][0]
                                assert not material_change(_comparable(stored), _comparable(h), sync.tolerance), (
                                    full.venue, h.wallet, block.number)
                                held += 1
                                held_by[full.venue] += 1
                                swapped += _swapped_since(sync, full.venue, h.wallet)
                                blended += full.venue == "aave_v3" and len(
                                    {p.extra.get("liquidation_threshold_bps") for p in stored.positions
                                     if p.is_collateral}) > 1
                            continue
                        assert same_state(got, h), (full.venue, h.wallet, block.number)
                        # The venue's detail is computed for the wallets the block wrote; every figure for all.
                        if h.wallet in written or full.venue not in summarized:
                            detailed += 1
                            assert _comparable(got) == _comparable(h), (full.venue, h.wallet, block.number)
                        else:
                            bare += 1
                            assert _summary_of(_comparable(got), _comparable(h)), (full.venue, h.wallet,
                                                                                   block.number)
        print(f"\n{blocks} blocks, {acted_total} dirty wallet-blocks, "
              f"eth_calls/block max {max(r.eth_calls for r in reports)}, "
              f"requests/block max {max(r.rpc_requests for r in reports)}")
        assert blocks >= 200
        print(f"healths compared with their detail {detailed}, without {bare}; left steady and held within the "
              f"tolerance {held} {dict(held_by)}, {swapped} of them LPs whose pool traded since, {blended} "
              f"Aave accounts of collateral with several thresholds; "
              f"steady (wallet, venue) per block {Counter(r.steady_wallets for r in reports)}")
        print(f"written wallets with a venue left as stored {partial}; their risk rows checked {risked}")
        assert partial >= ROUNDS
        assert risked >= ROUNDS
        assert held >= ROUNDS
        assert swapped >= ROUNDS // 5
        assert detailed >= ROUNDS
        assert bare >= ROUNDS
        assert reverted <= ROUNDS * ACTORS // 4
        # Only the wallets that acted were re-read; the cost per block did not grow with the wallets.
        assert acted_total < blocks * len(wallets) / 5
        quiet = [r for r in reports if r.dirty_wallets == 0]
        busy = [r for r in reports if r.dirty_wallets]
        print("requests per quiet block", Counter(r.rpc_requests for r in quiet),
              "per block with re-reads", Counter(r.rpc_requests for r in busy),
              "eth_calls", Counter(r.eth_calls for r in reports))
        assert len(quiet) >= len(reports) // 2
        assert max(r.rpc_requests for r in quiet) <= 5
        assert max(r.eth_calls for r in reports) <= 10
        # A full sweep at the head finds nothing the cache missed.
        sync.reconcile_every = 1
        final = sync.step(ctx.rpc.get_block(last + 1)) if ctx.rpc.get_block("latest").number > last else None
        if final is None:
            devnet.mine(chain)
            final = sync.step(ctx.rpc.get_block(last + 1))
        assert final.reconciled
        assert final.reconcile_mismatches == 0
        assert sync.mismatches_total == 0
    finally:
        store.close()
        ctx.close()


def _health(**kw: object) -> VenueHealth:
    base: dict[str, object] = {
        "venue": "v", "wallet": "0x" + "11" * 20, "kind": "lending", "health_factor": 1.6, "health_factor_raw": None,
        "onchain_health_factor_raw": None, "matches_onchain": None, "collateral_usd": 100.0, "debt_usd": 50.0,
        "liquidation_threshold": 0.8, "positions": ()}
    base.update(kw)
    return VenueHealth(**base)  # type: ignore[arg-type]


def test_material_change_ignores_noise_and_sees_moves() -> None:
    old = _health()
    assert not material_change(old, _health(debt_usd=50.0 * (1 + 5e-5)))
    assert material_change(old, _health(debt_usd=50.0 * (1 + 5e-4)))
    assert material_change(old, _health(flags=("bad_oracle",)))
    assert material_change(None, old)
    assert material_change(old, _health(health_factor=None))
