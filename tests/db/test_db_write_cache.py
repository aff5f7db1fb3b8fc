"""The change-only store's memory of its own writes (``Store.write_cache_size``): the current versions' positions and
newest health rows kept between writes change nothing that is stored, on SQLite and PostgreSQL.

Two stores take the same randomized run of batches: one keeps what it wrote, one (``write_cache_size=0``) reads
everything back at every write, as before. The run has what a chain and the product throw at a store: positions
that change or hold, health that moves beyond the tolerance or only within it, declared states whose values move
with interest and prices, JSON that comes back other than it went in (tuples, numeric keys), failed reads, a block
synced again, blocks out of order, a reorganised block (same number, new hash), a purge above a fork and writing
on from there, compaction, and another process writing the same wallets between two writes. After every write both
stores report the same rows written and skipped; at the end every table holds the same rows, ids included.
The stronger checks of the kept versions (the same newest health row, the chain's purge count) are each needed:
without one of them, or without the JSON round trip of what is kept, this test fails.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from db import (
    HealthRow,
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
from tests.db.db_testdata import CHAIN, USDC, WETH, block_time, setup

TABLES = ("sync_runs", "position_snapshots", "positions", "health_results", "risk_results", "prices")
VENUES = ("aave_v3", "uniswap_v3")
STEPS = 240


@pytest.fixture
def twin_url(db_url: str, tmp_path: Any) -> Iterator[str]:
    """A second empty database on ``db_url``'s backend."""
    if db_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'twin.db'}"
    else:
        from tests.conftest import pg_schema_url

        yield from pg_schema_url()


@dataclasses.dataclass
class Holding:
    """One wallet's positions on one venue, as the random walk leaves them."""

    debt_raw: int = 1_000 * 10**6
    scaled: int = 10**18
    stateful: bool = False
    n_extra: int = 0
    failing: bool = False
    flagged: bool = False
    odd_json: bool = False


def _snapshot(wallet: str, venue: str, block: int, h: Holding, rng: random.Random, price: float,
              block_hash: str) -> SnapshotRow:
    when = block_time(block)
    read = SnapshotRow(wallet=wallet, venue=venue, chain_id=CHAIN, block_number=block, block_hash=block_hash,
                       block_timestamp=when, taken_at=when + timedelta(seconds=1))
    if h.failing:
        return dataclasses.replace(read, status=SnapshotStatus.ERROR, error="execution reverted")
    index = 10**27 + block // 4 * 10**21  # interest: the balance moves under a declared state, now and then
    raw = h.scaled * index // 10**27 if h.stateful else 2 * 10**18
    amount = raw / 10**18
    debt = h.debt_raw / 10**6
    extra: dict[str, Any] = {"liquidity_index": index, "range": [1, 2 + h.n_extra]}
    if h.odd_json:  # comes back from the database as [1, 2] and {"7": "x"}: a health row at every block
        extra |= {"range": (1, 2 + h.n_extra), "by_tick": {7: "x"}}
    positions = [
        PositionRow(WETH, PositionSide.COLLATERAL, raw, amount, price, amount * price, True, WETH.address,
                    extra=extra, state=f"scaled={h.scaled}" if h.stateful else None),
        PositionRow(USDC, PositionSide.DEBT, h.debt_raw, debt, 1.0, debt, False, USDC.address,
                    state=f"scaled={h.debt_raw}" if h.stateful else None),
    ]
    positions += [PositionRow(USDC, PositionSide.SUPPLY, 10**6 * (i + 1), float(i + 1), 1.0, float(i + 1), False,
                              f"0x{i + 1:040x}") for i in range(h.n_extra)]
    collateral = amount * price
    noise = rng.choice((0.0, 1e-9, 1e-7))  # within the tolerance, or beyond it through the price
    hf = collateral * 0.825 / debt * (1 + noise)
    return dataclasses.replace(
        read, positions=tuple(positions),
        health=HealthRow(computed_at=when + timedelta(seconds=2), collateral_usd=collateral, debt_usd=debt,
                         health_factor=hf, health_factor_raw=int(hf * 10**18) + block % 7,
                         liquidation_threshold=0.825, matches_onchain=not h.flagged,
                         flags=("stale",) if h.flagged else (),
                         extra={"age_s": float(block % 13), "seen": (h.n_extra, "a")}),
    )


def _batch(wallets: list[str], block: int, holdings: dict[tuple[str, str], Holding], rng: random.Random,
           price: float, block_hash: str) -> SyncBatch:
    snaps = tuple(_snapshot(w, v, block, holdings[(w, v)], rng, price, block_hash)
                  for w in wallets for v in VENUES)
    return SyncBatch(
        chain_id=CHAIN, started_at=block_time(block), finished_at=block_time(block) + timedelta(seconds=3),
        status=SyncStatus.OK, block_number=block, block_hash=block_hash, block_timestamp=block_time(block),
        snapshots=snaps,
        prices=(PriceRow(WETH, block, "oracle", int(price * 10**8), 8, price, block_time(block),
                         age_s=float(block % 60)),),
        risks=tuple(RiskRow(wallet=w, block_number=block, computed_at=block_time(block),
                            unified_health=1.5 + (block % 5) * 0.1, equity_usd=5000.0, margin_usd=500.0,
                            netting_benefit_usd=0.0, document={"block": block}) for w in wallets),
    )


def _compared(stats: WriteStats) -> dict[str, Any]:
    out = dataclasses.asdict(stats)
    del out["from_memory"]
    return out


def _dump(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    with store.engine.connect() as conn:
        return {t: [tuple(r) for r in conn.execute(sa.text(f"SELECT * FROM {t} ORDER BY id"))] for t in TABLES}


def test_kept_versions_write_exactly_what_reading_them_back_writes(db_url: str, twin_url: str) -> None:
    rng = random.Random(20261207)
    with Store.open(db_url) as kept, Store.open(twin_url, write_cache_size=0) as cold, \
            Store.open(db_url, write_cache_size=0) as other:
        wallets = setup(kept, 8)
        assert setup(cold, 8) == wallets
        holdings = {(w, v): Holding(stateful=v == "aave_v3" and i % 2 == 0, odd_json=i % 4 == 1)
                    for i, w in enumerate(wallets) for v in VENUES}
        block, price, from_memory, kinds = 100, 3000.0, 0, set()

        def write(block: int, block_hash: str, who: list[str], *, by_other: bool = False) -> None:
            nonlocal from_memory
            batch = _batch(who, block, holdings, rng, price, block_hash)
            a = (other if by_other else kept).write_changes(batch)
            b = cold.write_changes(batch)
            assert _compared(a) == _compared(b), (block, by_other)
            from_memory += a.from_memory

        for step in range(STEPS):
            for key, h in holdings.items():  # a few wallets act at each block
                roll = rng.random()
                if roll < 0.04:
                    h.debt_raw += 10**6
                elif roll < 0.05:
                    h.n_extra = (h.n_extra + 1) % 3
                elif roll < 0.06:
                    h.failing = not h.failing
                elif roll < 0.07:
                    h.scaled += 10**15
                elif roll < 0.075 and key[1] == "uniswap_v3":
                    h.stateful = not h.stateful
                elif roll < 0.08:
                    h.flagged = not h.flagged
            if rng.random() < 0.3:
                price *= 1 + rng.choice((-1, 1)) * rng.choice((1e-6, 1e-3))
            roll = rng.random()
            if roll < 0.05 and step > 5:
                kinds.add("again")
                write(block, f"0x{block:064x}", wallets)  # the same block synced again
            elif roll < 0.09 and step > 5:
                kinds.add("out of order")
                write(block - rng.randint(2, 4), f"0x{block + 10**6:064x}", rng.sample(wallets, 3))
            elif roll < 0.12 and step > 5:
                kinds.add("reorganised")
                write(block, f"0x{block + 2 * 10**6:064x}", wallets)
            elif roll < 0.16 and step > 5:
                # a reorganisation: the blocks above a fork purged, by this process or another, which writes on
                by_other = rng.random() < 0.5
                kinds.add("purge by another process" if by_other else "purge")
                fork = block - rng.randint(1, 3)
                for store in (other if by_other else kept, cold):
                    chain = store.current_chain(CHAIN)
                    assert chain is not None
                    store.purge_above(chain.id, fork)
                block = fork
                if by_other:
                    for _ in range(rng.randint(1, 3)):
                        block += 1
                        write(block, f"0x{block + 3 * 10**6:064x}", wallets, by_other=True)
            elif roll < 0.24:
                kinds.add("other process")
                block += 1
                write(block, f"0x{block:064x}", rng.sample(wallets, 4), by_other=True)
            elif roll < 0.25:
                kinds.add("compaction")
                # the newest 10 minutes of blocks at full resolution, then the first and last of each 5 minutes
                policy = RetentionPolicy(full_days=10 / 1440, bucket_s=300)
                assert kept.compact(policy, now=block_time(block)) == cold.compact(policy, now=block_time(block))
            block += 1
            write(block, f"0x{block:064x}", wallets if rng.random() < 0.8 else rng.sample(wallets, 5))
        assert kinds == {"again", "out of order", "reorganised", "purge", "purge by another process", "other process",
                         "compaction"}, kinds
        assert from_memory > STEPS * len(wallets) * len(VENUES) // 2, from_memory  # it is used, not bypassed
        assert _dump(kept) == _dump(cold)


def test_a_store_that_keeps_nothing_reads_everything_back(store: Store) -> None:
    """``write_cache_size=0`` keeps nothing; a small cache keeps the pairs written last, up to its size; a store
    opened again (another process) starts with nothing kept."""
    wallets = setup(store, 6)
    holdings = {(w, v): Holding(stateful=True) for w in wallets for v in VENUES}
    rng = random.Random(1)
    store.write_cache_size = 0
    for block in (1, 2):
        assert store.write_changes(_batch(wallets, block, holdings, rng, 3000.0, f"0x{block:064x}")).from_memory == 0
    store.write_cache_size = 4
    store.write_changes(_batch(wallets, 3, holdings, rng, 3000.0, f"0x{3:064x}"))
    stats = store.write_changes(_batch(wallets, 4, holdings, rng, 3000.0, f"0x{4:064x}"))
    assert stats.from_memory == 4
    assert stats.extended == len(wallets) * len(VENUES)
    assert Store(store.engine).write_changes(_batch(wallets, 5, holdings, rng, 3000.0, f"0x{5:064x}")).from_memory == 0

