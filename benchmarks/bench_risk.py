"""Risk-core benchmarks, each against a plain baseline measured in the same run.

Section "margin" — liquidation-aware scenario margin: numpy engine vs the plain-Python reference.

10,000 wallets × 50 positions (a pooled lending account, isolated lending markets, two perp venues, concentrated
liquidity ranges, tokens; 20 underlyings) under 16 / 100 / 1,000 scenarios. Figures are wallet-scenarios per second
(one wallet revalued, every venue rule applied, in one scenario). The plain-Python reference is far too slow for
the whole book, so it runs on a subset of wallets and its rate is per wallet-scenario of that subset (its cost is
linear in wallets). The numpy figure is given "warm" (the book already reduced to exposures by
``riskcore.margin.prepare``, as a service does once per refresh and reuses for every scenario set) and "cold"
(including that reduction), on one thread and on ``--workers`` threads (the book split by wallets with
``Book.wallet_slice``; numpy releases the GIL, and OpenBLAS is held to one thread per worker). The plain-Python
figure is one thread (the GIL). Results of both implementations are compared on the subset.

    python benchmarks/bench_risk.py [--wallets 10000] [--positions 50] [--scenarios 16 100 1000] [--workers 2]

Targets (2 cores): ≥ 2 M wallet-scenarios/s and ≥ 100× the plain-Python figure.

Section "var" — historical VaR + ES at 95 / 99 / 99.9% of 10,000 linear books over 1,000 days × 20 assets
(``riskcore.var.historical_var_es_portfolios``). Returns are the real daily simple returns of the 14 assets of the
market data (the last 1,000 days of their common history); the 6 columns that make 20 are copies of the first 6
assets shifted back in time (100, 200, … 600 days), so they keep real marginal distributions with a weaker
correlation to the rest. Without the market data (or with too short a history) the returns are Student-t(4)
draws from a fixed seed. Books: USD deltas ~ N(0, 250k) per asset, fixed seed. Figures are portfolios per second
(all three levels, VaR and ES). Compared in the same run:

* riskcore on 1 thread and on ``--workers`` threads (the books split into contiguous shards; threading lives here,
  riskcore itself is single-threaded);
* "block partition": the previous implementation (one P&L matmul per 64 MiB block, then ``np.partition`` over
  every row and a sort of the tail), on the same threads — the before/after of the optimization;
* plain per portfolio (numpy sort of one book's losses, VaR and ES by rank) and, where installed, skfolio's
  ``value_at_risk`` / ``cvar`` per portfolio, on a subset sized to ``--ref-budget``.

Agreement: riskcore (1 and N threads) equals the block-partition figures bit for bit, and the plain and skfolio
figures within a relative 1e-10 (ES sums in another order).

    python benchmarks/bench_risk.py --only var [--var-portfolios 10000] [--var-days 1000] [--var-assets 20]

Target (2 cores): ≥ 100,000 portfolios/s.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one BLAS thread per worker thread (set before numpy loads)

import argparse
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from aggregator.marketdata import MarketDataNotFoundError, load_prices
from riskcore.margin import PreparedBook, ScenarioResult, prepare, revalue, scenario_multipliers
from riskcore.reference import (
    SyntheticScenarios,
    revalue_reference,
    synthetic_book,
    synthetic_scenarios,
)
from riskcore.var import DEFAULT_MAX_ELEMENTS, VarEs, historical_var_es_portfolios, tail_size

TARGET_RATE = 2_000_000.0
TARGET_RATIO = 100.0
TARGET_VAR_RATE = 100_000.0
VAR_LEVELS = (0.95, 0.99, 0.999)
MARKET_SYMBOLS = ("BTC", "ETH", "USDC", "USDT", "LINK", "XRP", "ADA", "BNB", "DOGE", "LTC", "MATIC", "SOL", "AVAX",
                  "DOT")
SHIFT_DAYS = 100


def best_of(n: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def margin_section(args: argparse.Namespace) -> list[str]:
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
    return failures


# ------------------------------------------------------------------------------------------ historical VaR
def var_returns(n_days: int, n_assets: int, seed: int) -> tuple[np.ndarray, str]:
    """(n_days, n_assets) daily simple returns: real (shifted copies beyond the 14 assets) or seeded Student-t."""
    n_real = min(n_assets, len(MARKET_SYMBOLS))
    n_extra = n_assets - n_real
    try:
        full = load_prices(MARKET_SYMBOLS[:n_real], "1d").simple_returns()
    except MarketDataNotFoundError as exc:
        reason = f"market data not found ({exc})"
    else:
        if full.shape[0] >= n_days + SHIFT_DAYS * n_extra:
            cols = [full[-n_days:]]
            for c in range(n_extra):
                shift = SHIFT_DAYS * (c + 1)
                cols.append(full[-n_days - shift : -shift, c % n_real, None])
            what = (f"real daily returns of {n_real} assets ({', '.join(MARKET_SYMBOLS[:n_real])}), last {n_days:,} "
                    "days of their common history")
            if n_extra:
                what += (f"; +{n_extra} columns = the first {n_extra} of them shifted back {SHIFT_DAYS}, "
                         f"{2 * SHIFT_DAYS}, … {SHIFT_DAYS * n_extra} days")
            return np.ascontiguousarray(np.hstack(cols)), what
        reason = f"only {full.shape[0]:,} days of common history"
    rng = np.random.default_rng(seed)
    return rng.standard_t(4, size=(n_days, n_assets)) * 0.02, f"synthetic Student-t(4) × 2%, seed {seed} ({reason})"


def block_partition(r: np.ndarray, e: np.ndarray, alphas: tuple[float, ...]) -> VarEs:
    """The previous ``historical_var_es_portfolios``: P&L in 64 MiB blocks, ``np.partition`` over every row."""
    n = r.shape[0]
    levels = [(k, min(math.floor(k), n - 1)) for k in (tail_size(n, a) for a in alphas)]
    j_max = max(j for _, j in levels)
    step = max(1, min(e.shape[0], DEFAULT_MAX_ELEMENTS // n))
    var = np.empty((len(alphas), e.shape[0]))
    es = np.empty_like(var)
    for s in range(0, e.shape[0], step):
        pnl = e[s : s + step] @ r.T
        if not np.all(np.isfinite(pnl)):
            raise ValueError("pnl contains NaN or inf")
        tail = np.sort(np.partition(pnl, j_max, axis=-1)[..., : j_max + 1], axis=-1)
        for i, (k, j) in enumerate(levels):
            at_var = tail[..., j]
            excess = (tail[..., :j] - at_var[..., None]).sum(axis=-1)
            var[i, s : s + step] = -at_var
            es[i, s : s + step] = -(at_var + excess / k)
    return VarEs(var, es)


def plain_var_es(r: np.ndarray, exposures: np.ndarray, alphas: tuple[float, ...]) -> np.ndarray:
    """(n_books, n_alphas, 2) VaR and ES one book at a time: sort its losses, read the ranks."""
    n = r.shape[0]
    out = np.empty((exposures.shape[0], len(alphas), 2))
    for b, e in enumerate(exposures):
        losses = np.sort(-(r @ e))[::-1]  # largest loss first
        for i, a in enumerate(alphas):
            k = tail_size(n, a)
            j = min(math.floor(k), n - 1)
            out[b, i] = losses[j], (math.fsum(losses[:j]) + (k - j) * losses[j]) / k
    return out


def skfolio_var_es(r: np.ndarray, exposures: np.ndarray, alphas: tuple[float, ...]) -> np.ndarray | None:
    """(n_books, n_alphas, 2) from skfolio's ``value_at_risk`` / ``cvar``, one book at a time; None if absent."""
    try:
        import skfolio.measures as skm  # type: ignore[import-untyped]
    except ImportError:
        return None
    out = np.empty((exposures.shape[0], len(alphas), 2))
    for b, e in enumerate(exposures):
        pnl = r @ e
        for i, a in enumerate(alphas):
            out[b, i] = skm.value_at_risk(pnl, beta=a), skm.cvar(pnl, beta=a)
    return out


def _rel_diff(got: np.ndarray, ref: np.ndarray) -> float:
    return float(np.max(np.abs(got - ref) / np.maximum(np.abs(ref), 1e-300)))


def var_section(args: argparse.Namespace) -> list[str]:
    failures: list[str] = []
    r, what = var_returns(args.var_days, args.var_assets, args.seed)
    rng = np.random.default_rng(args.seed + 1)
    books = rng.normal(0.0, 250_000.0, size=(args.var_portfolios, r.shape[1]))
    n_p = books.shape[0]
    n_k = max(1, args.workers)
    levels = VAR_LEVELS
    print()
    print(f"historical VaR + ES at {', '.join(f'{100 * a:g}%' for a in levels)}: {n_p:,} books × {r.shape[0]:,} days "
          f"× {r.shape[1]} assets; cpus={os.cpu_count()}")
    print(f"returns: {what}")
    bounds = np.linspace(0, n_p, n_k + 1).astype(int)
    shards = [books[bounds[i] : bounds[i + 1]] for i in range(n_k)]
    pool = ThreadPoolExecutor(n_k)

    def threaded(fn: Callable[[np.ndarray, np.ndarray, tuple[float, ...]], VarEs]) -> VarEs:
        parts = list(pool.map(lambda e: fn(r, e, levels), shards))
        return VarEs(np.hstack([p.var for p in parts]), np.hstack([p.es for p in parts]))

    def riskcore_fn(rr: np.ndarray, e: np.ndarray, a: tuple[float, ...]) -> VarEs:
        return historical_var_es_portfolios(rr, e, a)

    got_1 = riskcore_fn(r, books, levels)
    got_k = threaded(riskcore_fn)
    before = block_partition(r, books, levels)
    t_1 = best_of(args.repeat, lambda: riskcore_fn(r, books, levels))
    t_k = best_of(args.repeat, lambda: threaded(riskcore_fn))
    t_b1 = best_of(args.repeat, lambda: block_partition(r, books, levels))
    t_bk = best_of(args.repeat, lambda: threaded(block_partition))

    # plain per-portfolio baselines on a subset sized to the time budget
    probe = books[:20]
    t0 = time.perf_counter()
    plain_var_es(r, probe, levels)
    per_book = (time.perf_counter() - t0) / len(probe)
    n_ref = int(max(20, min(n_p, args.var_ref_budget / per_book)))
    subset = np.arange(0, n_p, max(1, n_p // n_ref))[:n_ref]
    t0 = time.perf_counter()
    plain = plain_var_es(r, books[subset], levels)
    rate_plain = len(subset) / (time.perf_counter() - t0)
    sk_books = subset[: max(20, len(subset) // 4)]
    skfolio_var_es(r, books[:2], levels)  # import and warm up outside the timing
    t0 = time.perf_counter()
    sk = skfolio_var_es(r, books[sk_books], levels)
    rate_sk = len(sk_books) / (time.perf_counter() - t0)

    rows = [
        ("riskcore", "1", t_1),
        ("riskcore", str(n_k), t_k),
        ("block partition (before)", "1", t_b1),
        ("block partition (before)", str(n_k), t_bk),
    ]
    print(f"{'implementation':<28} {'threads':>7} {'time':>9} {'portfolios/s':>13} {'vs plain':>9}")
    for name, threads, t in rows:
        print(f"{name:<28} {threads:>7} {t * 1e3:>6.1f} ms {n_p / t:>13,.0f} {n_p / t / rate_plain:>8.0f}×")
    print(f"{'plain numpy sort per book':<28} {'1':>7} {'':>9} {rate_plain:>13,.0f} {1:>8.0f}×   "
          f"({len(subset):,} books)")
    if sk is not None:
        print(f"{'skfolio per book':<28} {'1':>7} {'':>9} {rate_sk:>13,.0f} {rate_sk / rate_plain:>8.2f}×   "
              f"({len(sk_books):,} books)")
    else:
        print("skfolio not installed: its per-book figure is skipped")
    rate_k = n_p / t_k
    print(f"speed-up from the optimization: {t_b1 / t_1:.2f}× on 1 thread, {t_bk / t_k:.2f}× on {n_k}")

    same = all(np.array_equal(x, y) for x, y in ((got_1.var, before.var), (got_1.es, before.es),
                                                 (got_k.var, before.var), (got_k.es, before.es)))
    ours = np.stack([got_1.var[:, subset].T, got_1.es[:, subset].T], axis=-1)
    diff_plain = _rel_diff(ours, plain)
    diff_sk = _rel_diff(ours[: len(sk_books)], sk) if sk is not None else 0.0
    diff_before = max(_rel_diff(got_1.var, before.var), _rel_diff(got_1.es, before.es))
    print(f"agreement: vs block partition {'bit for bit' if same else f'max rel diff {diff_before:.1e}'}; "
          f"vs plain sort max rel diff {diff_plain:.1e} (its P&L is a per-book matrix-vector product)"
          + (f"; vs skfolio {diff_sk:.1e}" if sk is not None else ""))
    if not (diff_before <= 1e-12 and diff_plain <= 1e-10 and diff_sk <= 1e-10):
        failures.append(f"VaR/ES: implementations disagree (before {diff_before:.1e}, plain {diff_plain:.1e}, "
                        f"skfolio {diff_sk:.1e})")
    if rate_k < TARGET_VAR_RATE:
        failures.append(f"VaR/ES: {rate_k:,.0f} portfolios/s < {TARGET_VAR_RATE:,.0f} ({n_k} threads)")
    return failures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=["margin", "var"], help="run one section (default: both)")
    ap.add_argument("--wallets", type=int, default=10_000)
    ap.add_argument("--positions", type=int, default=50)
    ap.add_argument("--underlyings", type=int, default=20)
    ap.add_argument("--scenarios", type=int, nargs="+", default=[16, 100, 1_000])
    ap.add_argument("--ref-budget", type=float, default=3.0, help="seconds of plain Python per scenario count")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--var-portfolios", type=int, default=10_000)
    ap.add_argument("--var-days", type=int, default=1_000)
    ap.add_argument("--var-assets", type=int, default=20)
    ap.add_argument("--var-ref-budget", type=float, default=2.0, help="seconds of the per-book plain baseline")
    args = ap.parse_args()

    failures = []
    if args.only in (None, "margin"):
        failures += margin_section(args)
    if args.only in (None, "var"):
        failures += var_section(args)
    if failures:
        print("below target / disagreement:")
        for f in failures:
            print("  -", f)
    assert not any("disagree" in f for f in failures), "results differ"


if __name__ == "__main__":
    main()
