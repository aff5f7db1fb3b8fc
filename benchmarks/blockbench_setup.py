"""The block benchmark's chain: N wallets with positions on every venue of the devnet, and blocks of activity.

::

    bench = setup(info, 10_000, random.Random(1))      # every wallet on every venue (on-chain and perps)
    report = bench.activity(random.Random(2))           # 1 % of the wallets act, prices move: one block mined
    seconds = baseline_full_cycle(bench)                # today's full cycle (sync + alerts + keeper) of them all

:func:`setup` plans every wallet on every venue with a part (``benchmarks/venues/<venue>.py``): the on-chain
venues' positions are opened by :func:`benchmarks.bench_sync.setup_wallets` (JSON-RPC batches, 100 transactions a
block; the lenders and their liquidity sized from the planned borrows), then each on-chain part reads what its
actions need (:meth:`~benchmarks.venues.BenchPart.settled`); the perp venues' accounts are added to the devnet's
local venue API in bulk (its control route ``POST /devnet/accounts``).

:meth:`Bench.activity` is one block: Chainlink-like price moves (:meth:`Bench.move_prices`: the feeds, and what
each on-chain part does to follow them — oracles set, pools arbitraged — and the perp marks), one random action of
``frac`` of the wallets on one of their venues (each part's ``act``, valid at the prices before and after the
move), all sent with automine off and mined in one block; every receipt is checked unless ``verify=False``.
"""

from __future__ import annotations

import math
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks.venues holds each venue's part

import devnet
from aggregator.config import Settings
from aggregator.cycle import Cycle, CycleReport
from aggregator.devnet_cli import devnet_settings
from benchmarks.bench_sync import RawRpc, SetupReport, _mine_all, _send, bench_parts, onchain_config, setup_wallets
from benchmarks.venues import BenchPart, PerpBook, Setup, Tx, calldata, perp_part
from db.store import Store

__all__ = ["ActivityReport", "Bench", "PriceModel", "PriceMove", "baseline_full_cycle", "bench_settings", "full_cycle",
           "setup"]

STABLES = ("DAI", "USDC", "USDT")
"""Feeds that move little and back towards $1."""
PERP_ONLY_MARKS = {"BTC": Decimal(60_000), "SOL": Decimal(150)}
"""The perp-only coins' marks at setup (the devnet's perp API's own starting marks); ETH follows the WETH feed."""
WRAPPED = {"WETH": "ETH"}
"""Feeds whose token's perp coin follows them (as ``devnet.set_price`` moves it)."""
UPDATE_CHANCE, STABLE_CHANCE = 0.5, 0.1
"""The ``stress`` price model, per block: the chance a risky feed (or perp-only mark) crosses its deviation
threshold and updates; a stable's. Against the market history (:func:`history_model`) that is 100-350 times the
rate Chainlink's 0.5 % feeds updated at over 2024-11..2025-02 (0.4-2 updates an hour for ETH)."""
BLOCKS_PER_HOUR = 300
"""Ethereum: a block every 12 s."""
HISTORY_SYMBOL = {"WETH": "ETH", "ETH": "ETH", "WBTC": "BTC", "BTC": "BTC", "LINK": "LINK", "SOL": "SOL",
                  "USDC": "USDC", "USDT": "USDT", "DAI": "USDC"}
"""Whose hourly history gives a feed's or a mark's volatility (DAI: USDC's). A risky token without a history of its
own takes :data:`ALT_HISTORY`'s."""
ALT_HISTORY = "LINK"
"""The most volatile major of the data (1.4 % an hour over 2024-11..2025-02): the stand-in for an alt's history."""
DEVIATION = {"stable": 0.0025, "risky": 0.005}
"""Chainlink's deviation thresholds on Ethereum: 0.25 % for the USD stablecoin feeds, 0.5 % for ETH, BTC, LINK."""
HEARTBEAT_BLOCKS = {"stable": 86_400 // 12, "risky": 3_600 // 12}
"""Chainlink's heartbeats (24 h for the stablecoins, 1 h for the majors), in blocks."""


@dataclass
class PriceModel:
    """How prices move per block.

    ``history``: every symbol's true price walks each block with the per-block volatility of its real hourly
    history (σ_hour / √300; stablecoins pulled back towards $1), the perp marks are that price at every block, and
    a feed updates as Chainlink's do — when the true price is its deviation threshold away from the last answer,
    or its heartbeat has passed. ``stress``: each risky feed and perp-only mark updates with probability
    :data:`UPDATE_CHANCE` a block, a stable's with :data:`STABLE_CHANCE` (every wallet's figures move nearly
    every block)."""

    name: str
    sigma_block: dict[str, float] = field(default_factory=dict)
    true_price: dict[str, float] = field(default_factory=dict)
    since_update: dict[str, int] = field(default_factory=dict)

    @classmethod
    def stress(cls) -> PriceModel:
        return cls("stress")

    @classmethod
    def history(cls, symbols: Sequence[str], root: Path | None = None) -> PriceModel:
        """Per-block volatilities from ``<market data>/hourly`` (2024-11-14..2025-02-10) for ``symbols``."""
        from aggregator.marketdata import load_prices, log_returns

        sigma: dict[str, float] = {}
        for sym in symbols:
            source = HISTORY_SYMBOL.get(sym, "USDC" if sym in STABLES else ALT_HISTORY)
            hist = load_prices([source], "1h", root=root)
            sigma[sym] = float(log_returns(hist.prices)[:, 0].std()) / math.sqrt(BLOCKS_PER_HOUR)
        return cls("history", sigma)
PER_BLOCK = 500
"""Setup transactions per block: 10,000 wallets took 400 s at 500 a block against 542 s at 100 (anvil's per-block
cost grows with the state; receipt lookups with the block's size: 634 ms of 1,152 ms per 500-transaction block)."""
HISTORY_STATES = 64
"""Block states the benchmark's anvil keeps (reads pinned to the last 64 blocks; the devnet's default keeps 500)."""
PERP_CHUNK = 5_000
"""Accounts per request of the perp API's control route."""
SEND_CHUNK = 1_000


@dataclass
class PriceMove:
    """One block's price updates: the feeds' new answers (8 decimals), the perp marks moved (USD), and the
    transactions that post them (the feeds) and bring every on-chain venue to them."""

    answers: dict[str, int]
    marks: dict[str, Decimal]
    transactions: list[Tx]


@dataclass
class ActivityReport:
    """One block of activity."""

    block: int
    wallets: int  # that acted
    transactions: int  # in the block (actions and price updates)
    actions_by_venue: Counter[str]
    perp_trades: int  # accounts updated in the perp API
    prices: dict[str, float]  # symbol -> new USD price (feeds and perp-only marks)
    seconds: float  # to plan, send and mine the block (and check its receipts when verified)


@dataclass
class Bench:
    """The benchmark's devnet: its wallets, the venue parts that opened their positions, and the prices they
    last moved to."""

    info: devnet.DevnetInfo
    wallets: list[str]
    parts: dict[str, BenchPart]  # on-chain venue name -> part
    perps: dict[str, PerpBook]  # off-chain venue name -> part
    setup: Setup
    marks: dict[str, Decimal]  # perp coin -> mark (shared with the perp parts)
    report: SetupReport
    perp_seconds: float = 0.0
    seconds: float = 0.0  # the whole setup
    price_model: PriceModel = field(default_factory=PriceModel.stress)
    blocks: list[ActivityReport] = field(default_factory=list)

    # --- prices ------------------------------------------------------------------------------------------------
    def move_prices(self, rng: random.Random, pct: float = 0.005) -> PriceMove:
        """One block's price moves by :attr:`price_model`: the feeds' new answers and the marks moved. Recorded at
        once (:meth:`Setup.moved`: the parts' actions of this block are sized at the worst of both prices); the
        transactions are the feeds' ``updateAnswer`` (by the feeds' owner) and each on-chain part's
        :meth:`~benchmarks.venues.BenchPart.price_txs`."""
        if self.price_model.name == "history":
            answers, marks = self._history_moves(rng)
        else:
            answers, marks = self._stress_moves(rng, pct)
        self.setup.moved(answers)
        txs = [Tx(devnet.ADMIN, self.info.contract(devnet.feed_name(sym)), calldata("updateAnswer(int256)", raw),
                  f"feed {sym}") for sym, raw in sorted(answers.items())]
        for part in self.parts.values():
            txs += part.price_txs(answers)
        return PriceMove(answers, marks, txs)

    def _history_moves(self, rng: random.Random) -> tuple[dict[str, int], dict[str, Decimal]]:
        """The ``history`` model (see :class:`PriceModel`)."""
        model = self.price_model
        answers: dict[str, int] = {}
        for sym in sorted(self.setup.prices):
            old = self.setup.prices[sym]
            true = model.true_price.setdefault(sym, old / 1e8)
            kind = "stable" if sym in STABLES else "risky"
            step = rng.gauss(0.0, model.sigma_block[sym])
            if kind == "stable":
                step -= 0.01 * math.log(true)  # pulled back towards $1
            true *= math.exp(step)
            model.true_price[sym] = true
            since = model.since_update.get(sym, 0) + 1
            if abs(true / (old / 1e8) - 1.0) >= DEVIATION[kind] or since >= HEARTBEAT_BLOCKS[kind]:
                answers[sym] = max(1, round(true * 1e8))
                since = 0
            model.since_update[sym] = since
        marks: dict[str, Decimal] = {}
        for coin in sorted(self.marks):
            sym = next((s for s, c in WRAPPED.items() if c == coin), coin)
            true = model.true_price.get(sym)
            if true is None:  # a perp-only coin: its own walk
                true = model.true_price.setdefault(coin, float(self.marks[coin]))
                true *= math.exp(rng.gauss(0.0, model.sigma_block[coin]))
                model.true_price[coin] = true
            marks[coin] = Decimal(str(round(true, 2)))
        return answers, marks

    def _stress_moves(self, rng: random.Random, pct: float) -> tuple[dict[str, int], dict[str, Decimal]]:
        """The ``stress`` model: each risky feed (and perp-only mark) crosses its deviation threshold with
        probability 1/2 and moves by ``pct``-1.5×``pct`` either way; a stablecoin's with probability 1/10 by up to
        ``pct``/5, back towards $1 once 0.3 % away."""
        answers: dict[str, int] = {}
        for sym in sorted(self.setup.prices):
            old = self.setup.prices[sym]
            if sym in STABLES:
                if rng.random() >= STABLE_CHANCE:
                    continue
                away = old / 1e8 - 1.0
                sign = -1.0 if away > 0.003 else 1.0 if away < -0.003 else rng.choice((-1.0, 1.0))
                answers[sym] = max(1, round(old * (1 + sign * rng.uniform(0.2, 1.0) * pct / 5)))
            elif rng.random() < UPDATE_CHANCE:
                answers[sym] = max(1, round(old * (1 + rng.choice((-1, 1)) * rng.uniform(1.0, 1.5) * pct)))
        marks: dict[str, Decimal] = {}
        for coin in sorted(PERP_ONLY_MARKS):
            if coin in self.marks and rng.random() < UPDATE_CHANCE:
                step = Decimal(str(round(rng.choice((-1, 1)) * rng.uniform(1.0, 1.5) * pct, 6)))
                marks[coin] = (self.marks[coin] * (1 + step)).quantize(Decimal("0.01"))
        for sym, coin in WRAPPED.items():
            if sym in answers and coin in self.marks:
                marks[coin] = Decimal(answers[sym]) / Decimal(10**8)
        return answers, marks

    # --- one block ---------------------------------------------------------------------------------------------
    def activity(self, block_rng: random.Random, frac: float = 0.01, *, pct: float = 0.005,
                 verify: bool = True) -> ActivityReport:
        """One block: :meth:`move_prices`, then one action of ``frac`` of the wallets (at least one; each on one
        of its venues, drawn until one has an action for it), the perp trades and marks posted to the local
        venue API, and every transaction mined in one block (``verify``: each receipt checked, the first failure
        raised naming the transaction and its revert reason)."""
        t0 = time.perf_counter()
        move = self.move_prices(block_rng, pct)
        k = max(1, round(frac * len(self.wallets)))
        actors = block_rng.sample(self.wallets, min(k, len(self.wallets)))
        txs = list(move.transactions)
        by_venue: Counter[str] = Counter()
        perp_docs: dict[str, list[Any]] = {}
        venues: list[tuple[str, BenchPart | PerpBook]] = [*self.parts.items(), *self.perps.items()]
        for wallet in actors:
            order = list(venues)
            block_rng.shuffle(order)
            for name, part in order:
                if isinstance(part, PerpBook):
                    docs = part.act(wallet, block_rng)
                    if docs:
                        perp_docs.setdefault(name, []).extend(docs)
                        by_venue[name] += 1
                        break
                else:
                    acts = part.act(wallet, block_rng)
                    if acts:
                        txs += acts
                        by_venue[name] += 1
                        break
        block = self._mine(txs, move, perp_docs, verify)
        prices = {s: a / 1e8 for s, a in move.answers.items()} | {c: float(m) for c, m in move.marks.items()}
        report = ActivityReport(block, len(actors), len(txs), by_venue, sum(len(d) for d in perp_docs.values()),
                                prices, time.perf_counter() - t0)
        self.blocks.append(report)
        return report

    def _mine(self, txs: Sequence[Tx], move: PriceMove, perp_docs: dict[str, list[Any]], verify: bool) -> int:
        chain = RawRpc(self.info.rpc_url)
        try:
            senders = sorted({tx.sender for tx in txs})
            counts = chain.batch([("eth_getTransactionCount", [s, "pending"]) for s in senders])
            nonces = {s: int(c, 16) for s, c in zip(senders, counts, strict=True)}
            gas_limit = chain.call("eth_getBlockByNumber", ["latest", False])["gasLimit"]
            chain.call("evm_setBlockGasLimit", [hex(max(int(gas_limit, 16), sum(tx.gas for tx in txs) + 1))])
            chain.call("evm_setAutomine", [False])
            try:
                hashes: list[str] = []
                for start in range(0, len(txs), SEND_CHUNK):
                    hashes += _send(chain, txs[start : start + SEND_CHUNK], nonces)
                for coin, usd in move.marks.items():
                    devnet.perp_api.set_mark(self.info, coin, usd)
                    self.marks[coin] = usd
                for name, docs in perp_docs.items():
                    devnet.perp_api.add_accounts(self.info, self.perps[name].api_venue, docs)
                if verify:
                    blocks = _mine_all(chain, hashes, txs)
                    assert blocks == 1, f"the block's transactions took {blocks} blocks"
                else:
                    chain.call("evm_mine")
            finally:
                chain.call("evm_setAutomine", [True])
                chain.call("evm_setBlockGasLimit", [gas_limit])
            head = chain.call("eth_getBlockByNumber", ["latest", False])
            if not verify:
                assert len(head["transactions"]) == len(txs), (len(head["transactions"]), len(txs))
            return int(head["number"], 16)
        finally:
            chain.close()


# --- setup ---------------------------------------------------------------------------------------------------------
def setup(info: devnet.DevnetInfo, n_wallets: int, rng: random.Random, *, per_block: int = PER_BLOCK,
          chunk: int = 2_000) -> Bench:
    """``n_wallets`` wallets, each with positions on every venue of the devnet's config that has a part: the
    on-chain ones opened on chain (the lenders supplying 1.25x of the planned borrows), the perp venues'
    accounts added to the local venue API. The devnet is seeded first (its demo wallets, not returned). Sent
    ``chunk`` wallets at a time, blocks of ``per_block`` transactions (:func:`~benchmarks.bench_sync.setup_wallets`)."""
    t0 = time.perf_counter()
    settings = devnet_settings(info, Settings())
    _, onchain = onchain_config(settings)
    parts = bench_parts(onchain)
    for part in parts.values():
        part.share = 1.0
    wallets, report = setup_wallets(info, parts, n_wallets, rng.getrandbits(32), per_block, chunk)
    for part in parts.values():
        part.settled()
    setup_ = next(iter(parts.values())).setup if parts else Setup.read(info)  # type: ignore[attr-defined]
    t1 = time.perf_counter()
    marks = dict(PERP_ONLY_MARKS)
    marks["ETH"] = Decimal(setup_.prices["WETH"]) / Decimal(10**8)
    for coin, usd in marks.items():
        devnet.perp_api.set_mark(info, coin, usd)
    perps: dict[str, PerpBook] = {}
    perp_rng = random.Random(rng.getrandbits(32))
    for cfg in settings.venues:
        book = None if cfg.onchain else perp_part(cfg.type)
        if book is None:
            continue
        book.prepare(marks)
        for w in wallets:
            book.plan(w, perp_rng)
        docs = [book.document(w) for w in wallets if w in book.accounts]
        for start in range(0, len(docs), PERP_CHUNK):
            devnet.perp_api.add_accounts(info, book.api_venue, docs[start : start + PERP_CHUNK])
        perps[cfg.name] = book
    now = time.perf_counter()
    return Bench(info, wallets, parts, perps, setup_, marks, report, perp_seconds=now - t1, seconds=now - t0)


# --- today's full cycle, for the same wallets -----------------------------------------------------------------------
def bench_settings(bench: Bench, db_url: str) -> Settings:
    """The devnet's settings with every venue (each perp venue configured to read the benchmark's accounts)."""
    settings = devnet_settings(bench.info, Settings(db_url=db_url))
    venues = tuple(bench.perps[v.name].configure(v) if v.name in bench.perps else v for v in settings.venues)
    return settings.model_copy(update={"venues": venues})


def full_cycle(bench: Bench, db_url: str) -> tuple[float, CycleReport]:
    """One full scheduled cycle as ``xmargin run`` does it today (:class:`aggregator.cycle.Cycle`: sync of every
    wallet on every venue, alert rules, keeper) of the benchmark's wallets into the store at ``db_url`` (migrated,
    the wallets added): its seconds and its report. Raises when a stage failed."""
    settings = bench_settings(bench, db_url)
    store = Store.open(db_url)
    try:
        store.add_wallets([(w, None) for w in bench.wallets])
        with Cycle(settings, store) as cycle:
            t0 = time.perf_counter()
            report = cycle.run()
            seconds = time.perf_counter() - t0
        assert not report.errors, [str(e) for e in report.errors]
        assert report.sync.ok, [b.error for b in report.sync.batches]
        return seconds, report
    finally:
        store.close()


def baseline_full_cycle(bench: Bench, db_url: str | None = None) -> float:
    """Seconds of today's full cycle (:func:`full_cycle`) of the benchmark's wallets, into a new store (``db_url``;
    default a SQLite file in a temporary directory)."""
    with tempfile.TemporaryDirectory(prefix="xmargin-blockbench-") as tmp:
        return full_cycle(bench, db_url or f"sqlite:///{Path(tmp) / 'baseline.db'}")[0]


def main(argv: Sequence[str] | None = None) -> int:
    """``python benchmarks/blockbench_setup.py --wallets N [--blocks B] [--baseline]``: the setup's time, B blocks of
    activity (each receipt checked), and today's full cycle of the same wallets."""
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--wallets", type=int, default=1_000)
    ap.add_argument("--blocks", type=int, default=5)
    ap.add_argument("--frac", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--baseline", action="store_true", help="also time today's full cycle of the wallets")
    ap.add_argument("--history", type=int, default=HISTORY_STATES,
                    help=f"block states anvil keeps in memory (default {HISTORY_STATES}; each is a copy of the whole "
                         "state: 500 of a 10,000-wallet chain hold ~10 GB)")
    args = ap.parse_args(argv)
    devnet.ensure_installed()
    with devnet.Devnet.launch(history_states=args.history) as dn:
        bench = setup(dn.info, args.wallets, random.Random(args.seed))
        r = bench.report
        by_venue = ", ".join(f"{k} {v}" for k, v in sorted(r.transactions_by_venue.items()))
        print(f"setup {args.wallets} wallets: {bench.seconds:.1f} s — on chain {r.seconds:.1f} s ({r.transactions} "
              f"txs: {by_venue}; {r.blocks} blocks; {r.transactions / r.seconds:.0f} tx/s), settled + perp "
              f"accounts {bench.perp_seconds:.1f} s, {bench.seconds / args.wallets * 1e3:.1f} ms per wallet",
              flush=True)
        for name, part in [*bench.parts.items(), *bench.perps.items()]:
            print(f"  {name}: {part.summary()}")
        rng = random.Random(f"{args.seed}.blocks")
        for _ in range(args.blocks):
            a = bench.activity(rng, args.frac)
            print(f"block {a.block}: {a.wallets} wallets acted ({dict(a.actions_by_venue)}), {a.transactions} txs, "
                  f"{a.perp_trades} perp trades, {len(a.prices)} prices moved, {a.seconds:.2f} s", flush=True)
        if args.baseline:
            print(f"baseline full cycle of {args.wallets} wallets: {baseline_full_cycle(bench):.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
