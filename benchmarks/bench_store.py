"""Benchmark of the change-only store: rows and bytes written per block for N wallets, change-only against a full
rewrite of every wallet at every block, in the same run.

Each store syncs the same ``--blocks`` blocks of N wallets (two positions, a health and a risk result each; the
per-block fields — block hash and time, read and computation times, price ages, the raw health's last digits —
move at every block), of which a fraction ``--change`` of the wallets change their debt at each block. One store
writes change-only (:meth:`db.Store.write_changes`, the default policy), another every row at every block
(``Store.change_only = False``: the layout before issue 14). A third writes change-only but keeps nothing between
writes (``write_cache_size = 0``: it reads every written wallet's current version, positions and newest health
row back at every block, as before the store kept them). Printed per store: rows and estimated bytes written per
block (:class:`db.WriteStats`), the database's size on disk per block (SQLite file; PostgreSQL
``pg_total_relation_size`` of the sync tables), seconds per block; then the ratios full / change-only, and the
line ``kept versions: …``: the time of the first against the third, and the memory a kept (wallet, venue) takes.

Usage: ``python benchmarks/bench_store.py [--wallets 1000] [--blocks 100] [--change 0.02] [--pg-url URL]
[--json out.json]`` (SQLite files in a temporary directory; PostgreSQL when ``--pg-url`` is given, each store in a
private schema dropped at the end).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from db import (
    AssetRow,
    HealthRow,
    PositionRow,
    PositionSide,
    PriceRow,
    RiskRow,
    SnapshotRow,
    Store,
    SyncBatch,
    SyncStatus,
    VenueKind,
    VenueRow,
    WriteStats,
    canonical_address,
)
from db.changes import WRITE_CACHE_SIZE

CHAIN = 1
VENUE = "lending"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
WETH = AssetRow(CHAIN, "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2", "WETH", 18)
USDC = AssetRow(CHAIN, "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48", "USDC", 6)
MODES = ("change-only", "nothing-kept", "full")
SYNC_TABLES = ("sync_runs", "position_snapshots", "positions", "health_results", "risk_results", "prices")


def _time(block: int) -> datetime:
    return T0 + timedelta(seconds=12 * block)


def _snapshot(wallet: str, block: int, debt_raw: int) -> SnapshotRow:
    debt = debt_raw / 10**6
    hf = 6000.0 * 0.825 / debt
    return SnapshotRow(
        wallet=wallet, venue=VENUE, chain_id=CHAIN, block_number=block, block_hash=f"0x{block:064x}",
        block_timestamp=_time(block), taken_at=_time(block) + timedelta(seconds=1),
        positions=(
            PositionRow(WETH, PositionSide.COLLATERAL, 2 * 10**18, 2.0, 3000.0, 6000.0, True, WETH.address),
            PositionRow(USDC, PositionSide.DEBT, debt_raw, debt, 1.0, debt, False, USDC.address),
        ),
        health=HealthRow(computed_at=_time(block) + timedelta(seconds=2), collateral_usd=6000.0, debt_usd=debt,
                         health_factor=hf, health_factor_raw=int(hf * 10**18) + block % 7, liquidation_threshold=0.825,
                         matches_onchain=True),
    )


def _batch(wallets: list[str], debts: dict[str, int], block: int) -> SyncBatch:
    snaps = tuple(_snapshot(w, block, debts[w]) for w in wallets)
    return SyncBatch(
        chain_id=CHAIN, started_at=_time(block), finished_at=_time(block) + timedelta(seconds=3), status=SyncStatus.OK,
        block_number=block, block_hash=f"0x{block:064x}", block_timestamp=_time(block), snapshots=snaps,
        prices=(PriceRow(WETH, block, "oracle", 3000 * 10**8, 8, 3000.0, _time(block), age_s=float(block % 60)),
                PriceRow(USDC, block, "oracle", 10**8, 8, 1.0, _time(block), age_s=float(block % 60))),
        risks=tuple(RiskRow(s.wallet, block, _time(block), s.health.health_factor if s.health else None,
                            6000.0 - (s.health.debt_usd if s.health else 0.0), 500.0, 0.0, {"block": block})
                    for s in snaps),
    )


@dataclass
class Result:
    mode: str
    backend: str
    rows_per_block: float
    bytes_per_block: float
    disk_bytes_per_block: float
    seconds_per_block: float
    rows_by_table: dict[str, int]
    kept_versions: int
    kept_bytes_each: float


def _disk_bytes(store: Store) -> int:
    with store.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            pages = conn.exec_driver_sql("PRAGMA page_count").scalar_one()
            size = conn.exec_driver_sql("PRAGMA page_size").scalar_one()
            return int(pages) * int(size)
        return sum(int(conn.execute(sa.text("SELECT pg_total_relation_size(:t)"), {"t": t}).scalar_one())
                   for t in SYNC_TABLES)


def _deep_size(obj: Any, seen: set[int] | None = None) -> int:
    """Bytes of ``obj`` and everything it holds (dicts, sequences, dataclasses with slots), each object once."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    size = sys.getsizeof(obj)
    if isinstance(obj, dict):
        size += sum(_deep_size(k, seen) + _deep_size(v, seen) for k, v in obj.items())
    elif isinstance(obj, (list, tuple, set, frozenset)):
        size += sum(_deep_size(x, seen) for x in obj)
    elif dataclasses.is_dataclass(obj):
        size += sum(_deep_size(getattr(obj, f.name), seen) for f in dataclasses.fields(obj))
    return size


def run_store(store: Store, mode: str, backend: str, n_wallets: int, n_blocks: int, change: float,
              seed: int) -> Result:
    store.change_only = mode != "full"
    store.write_cache_size = 0 if mode == "nothing-kept" else WRITE_CACHE_SIZE
    store.upsert_venues([VenueRow(VENUE, VenueKind.LENDING, CHAIN)])
    wallets = [canonical_address(f"0x{0xB0B0000 + i:040x}") for i in range(n_wallets)]
    store.add_wallets([(w, None) for w in wallets])
    rng = random.Random(seed)
    debts = dict.fromkeys(wallets, 1000 * 10 ** 6)
    store.write_changes(_batch(wallets, debts, 0))  # the first block writes everything in both modes
    before = _disk_bytes(store)
    total = WriteStats(run_id=0)
    started = time.perf_counter()
    for block in range(1, n_blocks + 1):
        for w in rng.sample(wallets, round(change * n_wallets)):
            debts[w] += 10**6
        stats = store.write_changes(_batch(wallets, debts, block))
        total.rows_written += stats.rows_written
        total.bytes_estimate += stats.bytes_estimate
        for table, n in stats.by_table.items():
            total.by_table[table] = total.by_table.get(table, 0) + n
    elapsed = time.perf_counter() - started
    kept = store._write_cache  # measured here, not used
    return Result(mode, backend, total.rows_written / n_blocks, total.bytes_estimate / n_blocks,
                  (_disk_bytes(store) - before) / n_blocks, elapsed / n_blocks, dict(sorted(total.by_table.items())),
                  len(kept), _deep_size(kept) / max(len(kept), 1))


def _pg_store(url: str) -> tuple[Store, str]:
    schema = f"bench_store_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    return Store.open(url, connect_args={"options": f"-csearch_path={schema}"}), schema


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--wallets", type=int, default=1_000)
    parser.add_argument("--blocks", type=int, default=100)
    parser.add_argument("--change", type=float, default=0.02, help="fraction of wallets changing at each block")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--pg-url", help="also run on this PostgreSQL database (private schemas, dropped after)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    results: list[Result] = []
    with tempfile.TemporaryDirectory() as tmp:
        for mode in MODES:
            with Store.open(f"sqlite:///{Path(tmp) / f'{mode}.db'}") as store:
                results.append(run_store(store, mode, "sqlite", args.wallets, args.blocks, args.change, args.seed))
    if args.pg_url:
        for mode in MODES:
            store, schema = _pg_store(args.pg_url)
            try:
                results.append(run_store(store, mode, "postgresql", args.wallets, args.blocks, args.change,
                                         args.seed))
            finally:
                store.close()
                engine = sa.create_engine(args.pg_url)
                with engine.begin() as conn:
                    conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
                engine.dispose()
    print(f"{args.wallets} wallets, {args.blocks} blocks, {args.change:.1%} of the wallets changing per block")
    print(f"{'backend':<11}{'mode':<13}{'rows/block':>12}{'bytes/block':>14}{'disk B/block':>14}{'ms/block':>10}")
    for r in results:
        print(f"{r.backend:<11}{r.mode:<13}{r.rows_per_block:>12.1f}{r.bytes_per_block:>14.0f}"
              f"{r.disk_bytes_per_block:>14.0f}{r.seconds_per_block * 1e3:>10.1f}")
    for backend in dict.fromkeys(r.backend for r in results):
        by_mode = {r.mode: r for r in results if r.backend == backend}
        full, change = by_mode["full"], by_mode["change-only"]
        print(f"{backend}: full / change-only = {full.rows_per_block / change.rows_per_block:.1f}x rows, "
              f"{full.bytes_per_block / change.bytes_per_block:.1f}x bytes, "
              f"{full.disk_bytes_per_block / max(change.disk_bytes_per_block, 1):.1f}x on disk, "
              f"{full.seconds_per_block / change.seconds_per_block:.1f}x time")
        cold = by_mode["nothing-kept"]
        print(f"{backend}: kept versions: {change.seconds_per_block * 1e3:.1f} ms/block against "
              f"{cold.seconds_per_block * 1e3:.1f} ms/block reading them back "
              f"({change.seconds_per_block / cold.seconds_per_block:.2f}x), {change.kept_versions} kept, "
              f"{change.kept_bytes_each / 1024:.2f} KiB each")
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in results], indent=2))


if __name__ == "__main__":
    main()
