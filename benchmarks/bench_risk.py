"""Liquidation-aware scenario margin: numpy engine vs the plain-Python reference, measured in one run.

10,000 wallets × 50 positions (Aave, Morpho, two perp venues, Uniswap v3 ranges, tokens; 20 underlyings) under
16 / 100 / 1,000 scenarios. Figures are wallet-scenarios per second (one wallet revalued, every venue rule applied,
in one scenario). The plain-Python reference is far too slow for the whole book, so it runs on a subset of wallets
and its rate is per wallet-scenario of that subset (its cost is linear in wallets). The numpy figure is given
"warm" (the book already reduced to exposures by ``riskcore.margin.prepare``, as a service does once per refresh
and reuses for every scenario set) and "cold" (including that reduction), on one thread and on ``--workers``
threads (the book split by wallets with ``Book.wallet_slice``; numpy releases the GIL, and OpenBLAS is held to one
thread per worker). The plain-Python figure is one thread (the GIL). Results of both implementations are compared
on the subset.

    python benchmarks/bench_risk.py [--wallets 10000] [--positions 50] [--scenarios 16 100 1000] [--workers 2]

Targets (2 cores): ≥ 2 M wallet-scenarios/s and ≥ 100× the plain-Python figure.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one BLAS thread per worker thread (set before numpy loads)

import argparse
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from riskcore.margin import PreparedBook, ScenarioResult, prepare, revalue, scenario_multipliers
from riskcore.reference import (
    SyntheticScenarios,
    revalue_reference,
    synthetic_book,
    synthetic_scenarios,
)

TARGET_RATE = 2_000_000.0
TARGET_RATIO = 100.0


def best_of(n: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wallets", type=int, default=10_000)
    ap.add_argument("--positions", type=int, default=50)
    ap.add_argument("--underlyings", type=int, default=20)
    ap.add_argument("--scenarios", type=int, nargs="+", default=[16, 100, 1_000])
    ap.add_argument("--ref-budget", type=float, default=3.0, help="seconds of plain Python per scenario count")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    book = synthetic_book(rng, args.wallets, args.positions, args.underlyings)
    print(f"book: {book.n_wallets:,} wallets, {book.n_positions:,} positions, {book.n_accounts:,} accounts, "
          f"{book.n_underlyings} underlyings; cpus={os.cpu_count()}")
    t0 = time.perf_counter()
    prepared = prepare(book)
    t_prep = time.perf_counter() - t0
    n_k = max(1, args.workers)
    bounds = np.linspace(0, book.n_wallets, n_k + 1).astype(int)
    pool = ThreadPoolExecutor(n_k)
    t0 = time.perf_counter()
    shards = list(pool.map(lambda i: prepare(book.wallet_slice(bounds[i], bounds[i + 1])), range(n_k)))
    t_prep_k = time.perf_counter() - t0

    def sharded(sc: SyntheticScenarios) -> list[ScenarioResult]:
        return list(pool.map(lambda pb: revalue(pb, sc), shards))

    def one(pb: PreparedBook, sc: SyntheticScenarios) -> Callable[[], object]:
        return lambda: revalue(pb, sc)

    print(f"prepare (book → exposures): {t_prep * 1e3:.0f} ms on 1 thread, {t_prep_k * 1e3:.0f} ms on {n_k}")
    print(f"{'S':>5} {'numpy 1 thread':>16} {f'numpy {n_k} thr.':>14} {f'{n_k} thr. cold':>14} {'python':>11} "
          f"{'ref wallets':>11} {'ratio 1':>8} {f'ratio {n_k}':>8} {'liq/ws':>7} {'max rel diff':>12}")
    failures = []
    for n_s in args.scenarios:
        sc = synthetic_scenarios(rng, book.underlyings, n_s)
        result = revalue(prepared, sc)
        parts = sharded(sc)
        t_1 = best_of(args.repeat, one(prepared, sc))
        t_np = best_of(args.repeat, lambda sc=sc: sharded(sc))  # type: ignore[misc]
        rate_1 = book.n_wallets * n_s / t_1
        rate = book.n_wallets * n_s / t_np
        rate_cold = book.n_wallets * n_s / (t_np + t_prep_k)
        shard_pnl = np.vstack([p.pnl_usd for p in parts])

        # plain Python on a subset sized to the time budget (probe with a few wallets first)
        mult = scenario_multipliers(book, sc)
        probe = list(range(min(5, book.n_wallets)))
        t0 = time.perf_counter()
        revalue_reference(book, mult, sc.weights, probe)
        per_wallet = (time.perf_counter() - t0) / len(probe)
        n_ref = int(max(5, min(book.n_wallets, args.ref_budget / per_wallet)))
        subset = list(range(0, book.n_wallets, max(1, book.n_wallets // n_ref)))[:n_ref]
        t0 = time.perf_counter()
        ref = revalue_reference(book, mult, sc.weights, subset)
        t_ref = time.perf_counter() - t0
        rate_ref = len(subset) * n_s / t_ref

        idx = np.asarray(subset)
        scale = np.maximum(1.0, np.abs(ref.pnl_usd))
        diff = max(
            float(np.max(np.abs(result.pnl_usd[idx] - ref.pnl_usd) / scale)),
            float(np.max(np.abs(result.liquidation_loss_usd[idx] - ref.liquidation_loss_usd) / scale)),
            float(np.max(np.abs(result.worst_weighted_loss_usd[idx] - ref.worst_weighted_loss_usd)
                         / np.maximum(1.0, np.abs(ref.worst_weighted_loss_usd)))),
        )
        agree = (
            diff <= 1e-9
            and bool(np.array_equal(result.n_liquidated[idx], ref.n_liquidated))
            and bool(np.allclose(shard_pnl, result.pnl_usd, rtol=1e-12, atol=1e-6))
        )
        liq_share = result.n_liquidated.sum() / (book.n_wallets * n_s)
        ratio = rate / rate_ref
        print(f"{n_s:>5} {rate_1 / 1e6:>12.2f} M/s {rate / 1e6:>10.2f} M/s {rate_cold / 1e6:>10.2f} M/s "
              f"{rate_ref / 1e3:>7.1f} k/s {len(subset):>11,} {rate_1 / rate_ref:>7.0f}× {ratio:>7.0f}× "
              f"{liq_share:>7.3f} {diff:>12.1e}{'' if agree else '  DISAGREE'}")
        if not agree:
            failures.append(f"S={n_s}: numpy and plain Python disagree (max rel diff {diff:.1e})")
        if rate < TARGET_RATE:
            failures.append(f"S={n_s}: {rate / 1e6:.2f} M wallet-scenarios/s < 2 M (warm, {n_k} threads)")
        if ratio < TARGET_RATIO:
            failures.append(f"S={n_s}: {ratio:.0f}× < 100× the plain-Python figure ({n_k} threads)")
    print("liq/ws: accounts liquidated per wallet-scenario (the venue mechanics are exercised).")
    if failures:
        print("below target / disagreement:")
        for f in failures:
            print("  -", f)
    assert not any("disagree" in f for f in failures), "results differ"


if __name__ == "__main__":
    main()
