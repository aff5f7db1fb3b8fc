"""Block-driven incremental sync against today's full cycle, on the devnet (issue 14).

``python benchmarks/bench_block.py --wallets N --blocks B [--db-url URL]``

N wallets with positions on every venue (:mod:`benchmarks.blockbench_setup`: the on-chain venues on anvil, the
perp venues' accounts in the devnet's local venue API). Then, in the same run:

* **baseline** — today's full scheduled cycle of the same wallets (:class:`aggregator.cycle.Cycle`: every wallet
  read, computed and written), twice into its own store: its seconds, requests and the bytes its second cycle
  added (a steady rewrite);
* **blocks** — B blocks of activity (1 % of the wallets act on one of their venues; prices move with the per-block
  volatility of the real hourly history, the feeds updating as Chainlink's do — 0.5 % deviation or the heartbeat —
  and the perp marks at every block; ``--prices stress``: half the feeds update every block), each followed by
  :class:`aggregator.blocksync.BlockSync` (one
  ``eth_getLogs``, the market state, the dirty wallets re-read, every other wallet recomputed, perps at the
  block's marks and within their rate budgets), measured from the block's arrival (the head seen) to every
  wallet's health stored and the API (in process, through its ASGI app) serving the block for a wallet that acted;
* the rolling reconciliation in every block (a slice of the wallets re-read with the dirty ones and compared with
  their cached state: every wallet once in ``reconcile_every_blocks``), and after the last block, outside the
  block times, a full sweep: every wallet read in full by the independent read path and compared.

The last line is the issue's, exactly::

    bench_block: wallets=N blocks=B p50_s=… p99_s=… rpc_requests_per_block=… eth_calls_per_block=…
    offchain_requests_per_block=… rows_per_block=… bytes_per_block=… rss_mb=… reconcile_mismatches=…

(per-block figures are means over the B blocks; the first, full-sweep block is reported apart.)
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import gc
import math
import os
import pstats
import random
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastapi.testclient import TestClient

import devnet
from aggregator.api.app import create_app
from aggregator.blocksync import BlockReport, BlockSync
from aggregator.chainid import identify
from aggregator.config import Settings
from aggregator.cycle import Cycle
from aggregator.gcidle import IdleCollector
from aggregator.pipeline import ChainContext, register_venues
from aggregator.venues import plugin_of
from benchmarks.bench_sync import RawRpc
from benchmarks.blockbench_setup import HISTORY_STATES, UPDATE_CHANCE, Bench, PriceModel, bench_settings, setup
from db.changes import WRITE_CACHE_SIZE
from db.store import Store


def _db_bytes(url: str, store: Store) -> int:
    """The store's size on disk: the SQLite file and its WAL, or the PostgreSQL database."""
    if url.startswith("sqlite"):
        with store.engine.begin() as conn:  # the WAL's page images moved into the file: bytes the data holds
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        path = Path(url.split("///", 1)[1])
        return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
    with store.engine.connect() as conn:
        import sqlalchemy as sa

        return int(conn.execute(sa.text("select pg_database_size(current_database())")).scalar_one())


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _cycle(bench: Bench, url: str) -> tuple[float, int, int]:
    """One full cycle as ``xmargin run`` does it today: (seconds, RPC requests, eth_calls)."""
    settings = bench_settings(bench, url)
    store = Store.open(url, change_only=False)  # today: every row at every block
    try:
        store.add_wallets([(w, None) for w in bench.wallets])
        with Cycle(settings, store) as cycle:
            t0 = time.perf_counter()
            report = cycle.run()
            seconds = time.perf_counter() - t0
            stats = list(cycle.syncer.rpc_stats().values())
        if report.errors or not report.sync.ok:
            raise SystemExit(f"the baseline cycle failed: {[str(e) for e in report.errors]}")
        return seconds, sum(s.http_requests for s in stats), sum(s.calls_by_method.get("eth_call", 0) for s in stats)
    finally:
        store.close()


def _baseline(bench: Bench, url: str) -> tuple[float, float, int, int]:
    """Today's full cycle twice, a block apart: (seconds of the second, bytes it added, its RPC requests,
    eth_calls). The block between matters: the same block synced again stores nothing (its run is reused)."""
    _cycle(bench, url)
    store = Store.open(url, change_only=False)
    before = _db_bytes(url, store)
    store.close()
    chain = RawRpc(bench.info.rpc_url)
    try:
        chain.call("evm_mine")
    finally:
        chain.close()
    seconds, requests, calls = _cycle(bench, url)
    store = Store.open(url, change_only=False)
    grown = _db_bytes(url, store) - before
    store.close()
    return seconds, grown, requests, calls


def _rss_now_mb() -> float:
    """The process's resident memory now (``ru_maxrss`` is the peak, the baseline's full cycle included)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return math.nan


def run(args: argparse.Namespace) -> int:
    devnet.ensure_installed()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="xmargin-bench-block-") as tmp, \
            devnet.Devnet.launch(history_states=args.history) as dn:
        t0 = time.perf_counter()
        bench = setup(dn.info, args.wallets, rng)
        print(f"setup: {args.wallets} wallets on every venue in {time.perf_counter() - t0:.1f} s", flush=True)
        if args.prices == "history":
            bench.price_model = PriceModel.history([*bench.setup.prices, *bench.marks])
            print("prices: the market history's volatility per block (" + ", ".join(
                f"{s} {v * 100:.3f} %" for s, v in sorted(bench.price_model.sigma_block.items())) +
                  "); feeds update at Chainlink's deviation thresholds and heartbeats, marks every block", flush=True)
        else:
            print(f"prices: stress (a risky feed updates with probability {UPDATE_CHANCE} a block)", flush=True)

        base_url = args.baseline_db_url or f"sqlite:///{Path(tmp) / 'baseline.db'}"
        base_s, base_bytes, base_req, base_calls = _baseline(bench, base_url)
        print(f"baseline (today's full cycle, same wallets): {base_s:.2f} s, {base_bytes / 1e6:.2f} MB written, "
              f"{base_req} RPC requests, {base_calls} eth_calls", flush=True)

        url = args.db_url or f"sqlite:///{Path(tmp) / 'blocks.db'}"
        settings = bench_settings(bench, url)
        if args.perp_limits == "published":
            # The block path spends what the venues publish for their public servers, not the local API's allowance.
            settings = settings.model_copy(update={"venues": tuple(
                v.model_copy(update={"rate_limit_per_minute": None}) if not v.onchain else v
                for v in settings.venues)})
            print("perp budgets: " + ", ".join(
                f"{v.name} {plugin_of(v.type).capabilities.rate_limit}" for v in settings.venues if not v.onchain),
                flush=True)
        chain = settings.chains[0]
        store = Store.open(url, write_cache_size=args.write_cache_size)
        store.add_wallets([(w, None) for w in bench.wallets])
        register_venues(store, settings)
        gc.collect()  # the baseline's garbage, before the block path's memory is counted from here
        rss_before = _rss_now_mb()
        ctx = ChainContext.open(settings, chain)
        live = {v.name: plugin_of(v.type).open_live(v) for v in settings.venues
                if not v.onchain and v.chain == chain.name}
        every = Settings.model_fields["reconcile_every_blocks"].default
        sync = BlockSync(ctx, store, live=live, reconcile_every=every, skip_steady=not args.no_steady)
        sync.track(bench.wallets)
        chain_row, head = identify(store, ctx.rpc, chain.name, chain.chain_id)
        ctx.chain_ref_id = chain_row.id
        api = TestClient(create_app(store, dashboard=False), base_url="http://127.0.0.1")
        try:
            t = time.perf_counter()
            first = sync.step(head)
            print(f"first block {head.number} (full sweep of {len(bench.wallets)} wallets): "
                  f"{time.perf_counter() - t:.2f} s, {first.rows} rows", flush=True)
            last = head.number
            profiler = cProfile.Profile() if args.profile else None
            collector = IdleCollector()
            collector.idle()
            reports: list[BlockReport] = []
            seconds: list[float] = []
            bytes_before = _db_bytes(url, store)
            block_rng = random.Random(f"{args.seed}.blocks")
            for _ in range(args.blocks):
                activity = bench.activity(block_rng, args.frac, verify=False)
                for n in range(last + 1, activity.block + 1):
                    t = time.perf_counter()  # the block's arrival: its header in hand
                    block = ctx.rpc.get_block(n)
                    if profiler is not None:
                        profiler.enable()
                    report = sync.step(block)
                    if profiler is not None:
                        profiler.disable()
                    actor = report.written[0] if report.written else bench.wallets[0]
                    served = api.get(f"/v1/wallets/{actor}/health")
                    if served.status_code != 200:
                        raise SystemExit(f"the API did not serve block {n}: {served.status_code} {served.text}")
                    seconds.append(time.perf_counter() - t)
                    # kept without its readings (every wallet's health of the block): the bench's memory, not the
                    # block path's (`xmargin run` keeps a tick's reports only)
                    reports.append(dataclasses.replace(report, readings=()))
                    collector.idle()  # as xmargin run does once a block is stored and served (aggregator/gcidle.py)
                    if report.errors:
                        print(f"  block {n}: errors {report.errors}", flush=True)
                last = activity.block
                r = reports[-1]
                print(f"block {last}: {activity.wallets} acted, {r.dirty_wallets} dirty, {r.steady_wallets} steady "
                      f"({ {k: len(v) for k, v in r.steady.items()} }), "
                      f"{r.written_wallets} written "
                      f"({r.heavy_wallets} heavy), {r.rpc_requests} RPC requests, {r.eth_calls} eth_calls, "
                      f"{r.offchain_requests} off-chain, {seconds[-1]:.2f} s; changed by venue {r.changed_by_venue}",
                      flush=True)
            grown = _db_bytes(url, store) - bytes_before
            # Every wallet read in full by the independent read path at the last block and compared with what the
            # block path gave: the count of the issue's last line (outside the block times: `xmargin run`'s rolling
            # reconciliation checks a slice of the wallets at each block, every wallet once in `every` blocks).
            devnet.mine(dn.info)  # one more block, every wallet recomputed there (no steady skip) and swept
            t = time.perf_counter()
            sweep = sync.step(ctx.rpc.get_block(last + 1), reconcile=True)
            print(f"full reconcile sweep at block {sweep.block.number} (every wallet read in full, outside the block "
                  f"times): {time.perf_counter() - t:.2f} s, {sweep.reconcile_mismatches} mismatches; rolling "
                  f"reconciliation in the blocks: {sum(r.reconciled_wallets for r in reports)} wallet checks, "
                  f"{sum(r.reconcile_mismatches for r in reports)} mismatches", flush=True)
            collector.close()
            print(f"full garbage collections between blocks (aggregator/gcidle.py, not in the block times): "
                  f"{collector.collections - 1} after the first block, {collector.seconds:.2f} s in all", flush=True)
            if profiler is not None:
                pstats.Stats(profiler).sort_stats(args.profile_sort).print_stats(args.profile)
                if os.environ.get("BENCH_PROFILE_OUT"):
                    profiler.dump_stats(os.environ["BENCH_PROFILE_OUT"])
        finally:
            api.close()
            for venue in live.values():
                venue.close()
            ctx.close()
            store.close()
        n = len(reports)
        rss_after = _rss_now_mb()
        print(f"resident memory: {rss_before:.0f} MB before the block path (after the setup and the baseline), "
              f"{rss_after:.0f} MB after its {n + 1} blocks: the block path holds {rss_after - rss_before:.0f} MB, "
              f"{(rss_after - rss_before) * 1024 / max(args.wallets, 1):.0f} kB per wallet (its caches, the store's "
              f"write cache, the API); peak {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB",
              flush=True)
        p50, p99 = statistics.median(seconds), _pct(seconds, 0.99)
        rpc = sum(r.rpc_requests for r in reports) / n
        calls = sum(r.eth_calls for r in reports) / n
        off = sum(r.offchain_requests for r in reports) / n
        rows = sum(r.rows for r in reports) / n
        estimate = sum(r.bytes_written for r in reports) / n
        per_block_bytes = grown / n
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        tables: dict[str, int] = {}
        sizes: dict[str, int] = {}
        for r in reports:
            for table, count in r.rows_by_table.items():
                tables[table] = tables.get(table, 0) + count
                sizes[table] = sizes.get(table, 0) + r.bytes_by_table.get(table, 0)
        print("rows (payload kB) per block by table: " + ", ".join(
            f"{t} {c / n:.1f} ({sizes[t] / n / 1e3:.1f})" for t, c in sorted(tables.items())) +
              f"; wallets written per block {sum(r.written_wallets for r in reports) / n:.1f} of {args.wallets}")
        phases: dict[str, list[float]] = {}
        for r in reports:
            for phase, s in r.phases.items():
                phases.setdefault(phase, []).append(s)
        print("seconds per block by phase (median): " + ", ".join(
            f"{phase} {statistics.median(v):.3f}" for phase, v in phases.items()))
        mismatches = sum(r.reconcile_mismatches for r in reports) + sweep.reconcile_mismatches
        print(f"baseline full cycle {base_s:.2f} s against p50 {p50:.2f} s per block: ratio {p50 / base_s:.3f}; "
              f"bytes per block {per_block_bytes / 1e3:.1f} kB against {base_bytes / 1e3:.1f} kB per full rewrite: "
              f"ratio {per_block_bytes / max(base_bytes, 1):.4f} (payload the store counted: {estimate / 1e3:.1f} kB); "
              f"RPC requests {rpc:.1f} against {base_req}, "
              f"eth_calls {calls:.1f} against {base_calls}")
        if n > 1:
            # the first block after the full sweep still reads what the sweep left to the next block
            later = reports[1:]
            print(f"after the first block ({len(later)} blocks): "
                  f"{sum(r.rpc_requests for r in later) / len(later):.1f} RPC requests and "
                  f"{sum(r.eth_calls for r in later) / len(later):.1f} eth_calls per block, "
                  f"p50 {statistics.median(seconds[1:]):.3f} s; each block checked "
                  f"{sum(r.reconciled_wallets for r in reports) / n:.0f} wallets against the chain in its own "
                  f"Multicall3 run (rolling reconciliation, every wallet once in {every} blocks)")
        print(f"bench_block: wallets={args.wallets} blocks={n} p50_s={p50:.3f} p99_s={p99:.3f} "
              f"rpc_requests_per_block={rpc:.1f} eth_calls_per_block={calls:.1f} "
              f"offchain_requests_per_block={off:.1f} rows_per_block={rows:.1f} bytes_per_block={per_block_bytes:.0f} "
              f"rss_mb={rss_mb:.0f} reconcile_mismatches={mismatches}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--wallets", type=int, default=1_000)
    ap.add_argument("--blocks", type=int, default=20)
    ap.add_argument("--frac", type=float, default=0.01, help="share of the wallets acting per block")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--db-url", default=os.environ.get("XMARGIN_BENCH_DB_URL"),
                    help="the block path's store (default: a SQLite file in a temporary directory)")
    ap.add_argument("--baseline-db-url", default=None, help="the baseline's store (default: SQLite, temporary)")
    ap.add_argument("--history", type=int, default=HISTORY_STATES)
    ap.add_argument("--perp-limits", choices=("published", "local"), default="published",
                    help="the block path's perp budgets: the venues' published rate limits (default) or the local "
                         "API's allowance (the baseline always reads every account once)")
    ap.add_argument("--profile", type=int, default=0, metavar="N",
                    help="profile the block steps and print the N functions with the most cumulative time")
    ap.add_argument("--write-cache-size", type=int, default=WRITE_CACHE_SIZE,
                    help="(wallet, venue) versions the block path's store keeps between writes (0: reads them back)")
    ap.add_argument("--no-steady", action="store_true",
                    help="recompute every wallet at every block (no Incremental.steady skip): the comparison run")
    ap.add_argument("--profile-sort", default="cumulative", help="the profile's order (pstats: cumulative, tottime)")
    ap.add_argument("--prices", choices=("history", "stress"), default="history",
                    help="history: per-block volatility of the real hourly prices, feeds updating as Chainlink's do "
                         "(default); stress: half the feeds update every block")
    return run(ap.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
