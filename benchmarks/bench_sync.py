"""Benchmark of one refresh: N devnet wallets with positions on every on-chain venue, read and stored by the pipeline.

What it measures, all in one run on one private devnet (``make bench``)::

    setup     N wallets (default 1,000), sent as JSON-RPC batches of eth_sendTransaction with automine off,
              mined 100 transactions per block: each on-chain venue's part of the benchmark
              (``benchmarks/venues/<venue>.py``, found by the registry's venue names) opens its positions —
              collateral and debts on the lending venues, LP ranges in or out of range — on some or all of the
              wallets, and prints what it opened.
    batched   every on-chain venue of the devnet config read together through run_programs at one pinned
              block (one shared Multicall3 round trip per round, fresh connectors per repeat as every sync_once
              builds, then once more with them warm as a long-running Syncer has them), and each venue alone
              for comparison (interleaved with the joint reads): HTTP requests, eth_calls, aggregate3 sub-calls
              (reads), bytes, seconds, per round too.
    naive     the very same sub-calls of all venues, one eth_call per read and one HTTP POST each (plain
              httpx, keep-alive, same pinned block), executed, timed, and checked byte for byte against the
              multicall results.
    sync_once the whole pipeline (block, read, health, one store transaction) into a SQLite file, one new
              block per repeat so every repeat writes every row: with the on-chain venues only, and with
              every venue of the devnet config (the off-chain venues are HTTP to the devnet's local perp API,
              counted apart from the chain's JSON-RPC; repeated only within ``--perp-budget-s``, as that API
              answers each of its one-per-wallet requests in ~45 ms).
    store     Store.write_sync of the pipeline's own SyncBatch, and of a synthetic batch that repeats its
              snapshots over more wallets, on SQLite and on PostgreSQL (a private schema, dropped at the end).

Figures are medians over ``--repeats`` (the machine is small and noisy: read the ratios, measured in the same
run, rather than the absolute numbers).

Usage: ``python benchmarks/bench_sync.py [--wallets 1000] [--repeats 3] [--json out.json]``
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import itertools
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks.venues holds each venue's part

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import make_url

import devnet
from aggregator import pipeline
from aggregator.config import ChainConfig, Settings, VenueConfig
from aggregator.devnet_cli import devnet_settings
from aggregator.venues import open_onchain
from benchmarks.venues import BenchPart, Setup, Tx, bench_part, label_address, minting
from connectors.errors import ConnectorError
from connectors.evm.multicall import Call, CallResult, Multicall
from connectors.evm.program import ReadProgram, run_programs
from connectors.evm.rpc import RpcClient, RpcStats
from connectors.registry import capabilities
from connectors.types import BlockRef
from db.rows import SyncBatch
from db.store import Store

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
WALLET_ETH = 100 * 10**18


# --- small helpers ------------------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


class RawRpc:
    """Plain JSON-RPC over one keep-alive httpx client: single requests and batches (for the setup)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client = httpx.Client(timeout=httpx.Timeout(300.0, connect=5.0))
        self._ids = itertools.count(1)

    def close(self) -> None:
        self.client.close()

    def call(self, method: str, params: Sequence[Any] = ()) -> Any:
        return self.batch([(method, params)])[0]

    def batch(self, requests: Sequence[tuple[str, Sequence[Any]]], per_request: int = 1_000) -> list[Any]:
        """Results in order; raises on the first JSON-RPC error (with the request that caused it)."""
        out: list[Any] = []
        for start in range(0, len(requests), per_request):
            part = requests[start : start + per_request]
            ids = [next(self._ids) for _ in part]
            body = [
                {"jsonrpc": "2.0", "id": i, "method": m, "params": list(p)} for i, (m, p) in zip(ids, part, strict=True)
            ]
            resp = self.client.post(self.url, json=body)
            resp.raise_for_status()
            by_id = {item["id"]: item for item in resp.json()}
            for i, (method, params) in zip(ids, part, strict=True):
                item = by_id[i]
                if item.get("error") is not None:
                    raise RuntimeError(f"{method} {json.dumps(list(params))[:300]} failed: {item['error']}")
                out.append(item["result"])
        return out


# --- setup: N wallets with real positions ---------------------------------------------------------------------


@dataclass
class SetupReport:
    wallets: int
    seconds: float
    transactions: int
    blocks: int
    transactions_by_venue: Counter[str] = field(default_factory=Counter)
    venues: dict[str, dict[str, Any]] = field(default_factory=dict)  # venue type -> what its part opened
    summaries: dict[str, str] = field(default_factory=dict)  # venue type -> its part's line


def bench_parts(venues: Sequence[VenueConfig]) -> dict[str, BenchPart]:
    """The on-chain venues' parts of the benchmark, by venue name (a venue without one opens no positions)."""
    out: dict[str, BenchPart] = {}
    for cfg in venues:
        part = bench_part(cfg.type)
        if part is None:
            print(f"{cfg.name}: no part in benchmarks/venues/ — read with no positions opened")
        else:
            out[cfg.name] = part
    return out


def _send(chain: RawRpc, txs: Sequence[Tx], nonces: dict[str, int]) -> list[str]:
    """eth_sendTransaction of every tx (explicit nonces: automine is off, so they queue in order)."""
    requests = []
    for tx in txs:
        nonce = nonces.get(tx.sender, 0)
        nonces[tx.sender] = nonce + 1
        params = {"from": tx.sender, "to": tx.to, "data": tx.data, "value": hex(tx.value), "gas": hex(tx.gas),
                  "nonce": hex(nonce)}
        requests.append(("eth_sendTransaction", [params]))
    return [str(h) for h in chain.batch(requests)]


def _mine_all(chain: RawRpc, hashes: Sequence[str], txs: Sequence[Tx]) -> int:
    """Mine until every tx has a receipt; raise naming the first failed tx. Returns blocks mined.

    Keep blocks small (see _run_phase): anvil's receipt lookups scan the whole block, so their cost grows with
    the square of the block's transaction count (5,600 in one block: 70 s for its receipts)."""
    index = {h.lower(): k for k, h in enumerate(hashes)}
    blocks = 0
    while index:
        if blocks >= 20:
            raise RuntimeError(f"{len(index)} transactions still unmined after {blocks} blocks")
        chain.call("evm_mine")
        blocks += 1
        for receipt in chain.call("eth_getBlockReceipts", ["latest"]) or []:
            k = index.pop(str(receipt["transactionHash"]).lower(), None)
            if k is None or int(receipt["status"], 16) == 1:
                continue
            tx = txs[k]
            reason = "?"
            try:
                parent = hex(int(receipt["blockNumber"], 16) - 1)
                chain.call("eth_call", [{"from": tx.sender, "to": tx.to, "data": tx.data, "value": hex(tx.value)},
                                        parent])
                reason = "no revert on replay"
            except RuntimeError as exc:
                reason = str(exc)
            raise RuntimeError(f"setup tx failed: {tx.what} from {tx.sender}: {reason}")
    return blocks


def _run_phase(chain: RawRpc, txs: Sequence[Tx], nonces: dict[str, int], per_block: int) -> int:
    """Send and mine ``txs`` in blocks of ``per_block`` (nonce order kept per sender); returns blocks mined."""
    blocks = 0
    for start in range(0, len(txs), per_block):
        part = txs[start : start + per_block]
        blocks += _mine_all(chain, _send(chain, part, nonces), part)
    return blocks


def setup_wallets(
    info: devnet.DevnetInfo, parts: Mapping[str, BenchPart], n: int, seed: int, per_block: int = 100,
    chunk: int = 2_000,
) -> tuple[list[str], SetupReport]:
    """Open positions for ``n`` wallets on every venue with a part; returns their addresses (the seed wallets'
    demo positions are opened too, but not returned).

    The first part plans every wallet from the seed's own random stream, the others wallet by wallet from a second
    stream (``<seed>.venues``), so the first venue's positions do not depend on the others'. The transactions are
    built and sent ``chunk`` wallets at a time (the helpers first): a 100,000-wallet setup holds one chunk's."""
    t0 = time.perf_counter()
    devnet.seed(info)
    chain = RawRpc(info.rpc_url)
    try:
        setup = Setup.read(info)
        setup.mint = minting(list(parts.values()))
        for part in parts.values():
            part.prepare(setup)
        wallets = [label_address(f"wallet.{i}") for i in range(n)]
        ordered = list(parts.values())
        if ordered:
            main_rng, venues_rng = random.Random(seed), random.Random(f"{seed}.venues")
            for w in wallets:
                ordered[0].plan(w, main_rng)
            for w in wallets:
                for part in ordered[1:]:
                    part.plan(w, venues_rng)
        helpers = [h for part in ordered for h in part.helpers()]

        by_venue: Counter[str] = Counter()
        # Sent in groups (the helpers, then ``chunk`` wallets at a time), so that only one group's transactions are
        # ever held: each group's positions (phase 1), then what needs them mined first (phase 2: debts, which also
        # need the helpers' liquidity, mined with the first group).
        groups = [list(dict.fromkeys(helpers))] + [wallets[k : k + chunk] for k in range(0, n, chunk)]
        gas_limit = chain.call("eth_getBlockByNumber", ["latest", False])["gasLimit"]
        nonces: dict[str, int] = {}
        blocks = transactions = 0
        try:
            for group in groups:
                phase1: list[Tx] = []  # per sender, in nonce order: each venue's positions
                phase2: list[Tx] = []  # what needs every position of phase 1 mined first
                for sender in group:
                    for name, part in parts.items():
                        first, second = part.transactions(sender)
                        phase1 += first
                        phase2 += second
                        by_venue[name] += len(first) + len(second)
                transactions += len(phase1) + len(phase2)
                chain.batch([("anvil_setBalance", [a, hex(WALLET_ETH)]) for a in group])
                # Automine off, blocks of ``per_block`` transactions (with room for them: each has the most gas any
                # has).
                most_gas = max((tx.gas for tx in phase1 + phase2), default=0)
                if not most_gas:
                    continue
                chain.call("evm_setBlockGasLimit", [hex(per_block * most_gas)])
                chain.call("evm_setAutomine", [False])
                blocks += _run_phase(chain, phase1, nonces, per_block)
                blocks += _run_phase(chain, phase2, nonces, per_block)
        finally:
            chain.call("evm_setAutomine", [True])
            chain.call("evm_setBlockGasLimit", [gas_limit])
        assert sum(by_venue.values()) == transactions, by_venue
        report = SetupReport(
            wallets=n,
            seconds=time.perf_counter() - t0,
            transactions=transactions,
            blocks=blocks,
            transactions_by_venue=by_venue,
            venues={name: part.figures() for name, part in parts.items()},
            summaries={name: part.summary() for name, part in parts.items()},
        )
        return wallets, report
    finally:
        chain.close()


# --- batched read of the on-chain venues, recorded -------------------------------------------------------------


@dataclass
class RoundFigures:
    """One Multicall.execute (one round trip: one round of every still-running read program)."""

    sub_calls: int
    eth_calls: int
    http_requests: int
    bytes_sent: int
    bytes_received: int
    seconds: float


class RecordingMulticall(Multicall):
    """A Multicall that keeps every sub-call it made with its result (for the naive replay), and the
    counters of each execute (each round of the read programs)."""

    def __init__(self, rpc: RpcClient) -> None:
        super().__init__(rpc)
        self.log: list[CallResult] = []
        self.rounds: list[RoundFigures] = []

    def execute(self, calls: Sequence[Call], block: int | BlockRef, *, strict: bool = True) -> list[CallResult]:
        before = self.rpc.stats.copy()
        t0 = time.perf_counter()
        results = super().execute(calls, block, strict=strict)
        dt = time.perf_counter() - t0
        d = self.rpc.stats - before
        self.rounds.append(RoundFigures(len(calls), d.calls_by_method.get("eth_call", 0), d.http_requests,
                                        d.bytes_sent, d.bytes_received, dt))
        self.log.extend(results)
        return results


@dataclass
class ReadFigures:
    seconds: float
    http_requests: int
    eth_calls: int
    other_calls: int
    sub_calls: int
    bytes_sent: int
    bytes_received: int

    @classmethod
    def of(cls, seconds: float, stats: RpcStats, sub_calls: int) -> ReadFigures:
        eth_calls = stats.calls_by_method.get("eth_call", 0)
        return cls(seconds, stats.http_requests, eth_calls, stats.calls - eth_calls, sub_calls, stats.bytes_sent,
                   stats.bytes_received)


def med_figures(runs: Sequence[ReadFigures]) -> ReadFigures:
    """Median seconds; the counts must not vary between repeats (asserted)."""
    first = runs[0]
    for r in runs[1:]:
        assert (r.http_requests, r.eth_calls, r.sub_calls) == (first.http_requests, first.eth_calls, first.sub_calls)
    return dataclasses.replace(
        first,
        seconds=median([r.seconds for r in runs]),
        bytes_sent=int(median([r.bytes_sent for r in runs])),
        bytes_received=int(median([r.bytes_received for r in runs])),
    )


def counted(program: ReadProgram[Any], per_round: list[int]) -> ReadProgram[Any]:
    """``program``, noting the sub-calls it asks for in each of its rounds."""
    try:
        plans = next(program)
        while True:
            per_round.append(sum(len(p.calls) for p in plans))
            values = yield plans
            plans = program.send(values)
    except StopIteration as stop:
        return stop.value
    finally:
        program.close()


@dataclass
class ProgramRun:
    """One run_programs of some on-chain venues at one block."""

    figures: ReadFigures
    rounds: list[RoundFigures]
    per_venue: dict[str, list[int]]  # venue -> sub-calls in each of its rounds
    snapshots: dict[str, Any]
    log: list[CallResult]

    @property
    def round_trips(self) -> int:
        return len(self.rounds)


def onchain_config(settings: Settings) -> tuple[ChainConfig, list[VenueConfig]]:
    (chain,) = settings.chains
    return chain, [v for v in settings.venues if v.onchain]


def read_programs(
    chain: ChainConfig, venues: Sequence[VenueConfig], wallets: Sequence[str], block: BlockRef, passes: int = 1
) -> list[ProgramRun]:
    """``venues`` read together through run_programs at ``block``, with connectors built as the pipeline builds
    them (one client, one Multicall shared by the venues). The first pass is cold (new connectors discover what
    they read once — addresses, market parameters, token metadata — as in every sync_once); further passes reuse
    the connectors (as a long-running Syncer does between refreshes)."""
    out = []
    with RpcClient(chain.resolve_rpc_url(), timeout_s=120) as rpc:
        mc = RecordingMulticall(rpc)
        opened = [open_onchain(cfg, chain, rpc, mc) for cfg in venues]
        for _ in range(passes):
            gc.collect()  # start each timed pass from the same collector state (the bench keeps big results alive)
            before, subs_before = rpc.stats.copy(), mc.stats.sub_calls
            mc.log, mc.rounds = [], []
            per_venue: dict[str, list[int]] = {v.config.name: [] for v in opened}
            programs = {
                v.config.name: counted(v.connector.program(wallets, block), per_venue[v.config.name]) for v in opened
            }
            t0 = time.perf_counter()
            results = run_programs(mc, programs, block)
            dt = time.perf_counter() - t0
            for name, result in results.items():
                if isinstance(result, ConnectorError):
                    raise RuntimeError(f"{name} failed: {result}") from result
            d = rpc.stats - before
            out.append(ProgramRun(ReadFigures.of(dt, d, mc.stats.sub_calls - subs_before), mc.rounds, per_venue,
                                  results, mc.log))
    return out


@dataclass
class VenueReadFigures:
    """Medians of repeated reads of one set of venues."""

    name: str
    figures: ReadFigures
    round_trips: int
    rounds: list[RoundFigures]  # seconds: medians per round
    per_venue: dict[str, list[int]]


def summarize(name: str, runs: Sequence[ProgramRun]) -> VenueReadFigures:
    first = runs[0]
    for r in runs[1:]:
        assert r.per_venue == first.per_venue, (name, r.per_venue, first.per_venue)
    rounds = [
        dataclasses.replace(rf, seconds=median([r.rounds[k].seconds for r in runs]))
        for k, rf in enumerate(first.rounds)
    ]
    return VenueReadFigures(name, med_figures([r.figures for r in runs]), first.round_trips, rounds, first.per_venue)


@dataclass
class OnchainCheck:
    """What the batched read found on chain, against what the setup opened: each venue's phrase, by venue name."""

    found: dict[str, str]
    wallets_on_all: int  # wallets with a position on every venue with a part


def check_snapshots(
    snapshots: Mapping[str, Any], parts: Mapping[str, BenchPart], wallets: Sequence[str]
) -> OnchainCheck:
    found: dict[str, str] = {}
    on_all = set(wallets)
    for name, part in parts.items():
        found[name], holders = part.check(snapshots[name], wallets)
        on_all &= holders
    return OnchainCheck(found, len(on_all))


# --- naive baseline: one eth_call per read, one HTTP request each ---------------------------------------------


@dataclass
class NaiveFigures:
    reads_total: int
    reads_executed: int
    seconds_executed: float  # median over repeats, for the executed reads
    http_requests: int  # executed
    bytes_sent: int
    bytes_received: int
    repeats: int
    verified: int

    @property
    def sampled(self) -> bool:
        return self.reads_executed < self.reads_total

    @property
    def seconds_full(self) -> float:
        return self.seconds_executed * self.reads_total / self.reads_executed


def naive_pass(
    client: httpx.Client, url: str, calls: Sequence[CallResult], block_hex: str, budget_s: float | None
) -> tuple[float, int, int, int, list[tuple[bool, bytes]]]:
    """POST one eth_call per read; stop early when ``budget_s`` runs out. Returns seconds, requests, bytes
    up, bytes down and each executed read's (success, bytes)."""
    headers = {"content-type": "application/json"}
    out: list[tuple[bool, bytes]] = []
    sent = received = 0
    t0 = time.perf_counter()
    for k, r in enumerate(calls):
        payload = json.dumps({
            "jsonrpc": "2.0", "id": k + 1, "method": "eth_call",
            "params": [{"to": r.call.target, "data": "0x" + r.call.calldata.hex()}, block_hex],
        }).encode()
        resp = client.post(url, content=payload, headers=headers)
        sent += len(payload)
        received += len(resp.content)
        body = resp.json()
        if body.get("error") is not None:
            data = body["error"].get("data")
            out.append((False, bytes.fromhex(data[2:]) if isinstance(data, str) and data.startswith("0x") else b""))
        else:
            out.append((True, bytes.fromhex(body["result"][2:])))
        if budget_s is not None and time.perf_counter() - t0 > budget_s:
            break
    return time.perf_counter() - t0, len(out), sent, received, out


def naive_baseline(
    url: str, recorded: Sequence[CallResult], block: BlockRef, repeats: int, budget_s: float, seed: int
) -> NaiveFigures:
    # Every read, in a random order (so a budget-limited pass is a fair sample of the read mix).
    order = list(recorded)
    random.Random(seed).shuffle(order)
    block_hex = hex(block.number)
    secs: list[float] = []
    with httpx.Client(timeout=httpx.Timeout(60.0, connect=5.0)) as client:
        dt, n, sent, received, results = naive_pass(client, url, order, block_hex, budget_s)
        secs.append(dt)
        executed = order[:n]
        verified = 0
        for r, (ok, data) in zip(executed, results, strict=True):
            # Multicall3 reports (success, returnData) per sub-call; a plain eth_call must agree byte for byte.
            # CallResult.ok is also false for a decode failure: then the sub-call itself succeeded.
            if ok:
                assert data == r.raw, f"naive {r.call.describe()} returned {data.hex()}, multicall {r.raw.hex()}"
                assert r.ok or r.error is not None
            else:
                assert not r.ok, f"naive {r.call.describe()} reverted but succeeded in aggregate3"
                assert data == r.raw, f"revert data of {r.call.describe()} differs"
            verified += 1
        # Further timing passes only when a full one was made and all of them fit in the budget.
        if n == len(order) and dt * (repeats - 1) < budget_s:
            for _ in range(repeats - 1):
                secs.append(naive_pass(client, url, executed, block_hex, None)[0])
    return NaiveFigures(len(order), n, median(secs), n, sent, received, len(secs), verified)


# --- the whole pipeline -----------------------------------------------------------------------------------------


class TimedStore(Store):
    """A Store that times its write_sync calls and keeps the last batch (the pipeline's own)."""

    def __init__(self, engine: sa.Engine) -> None:
        super().__init__(engine)
        self.write_seconds: list[float] = []
        self.last_batch: SyncBatch | None = None

    def write_sync(self, batch: SyncBatch, *, record_failure: bool = True) -> int:
        t0 = time.perf_counter()
        run_id = super().write_sync(batch, record_failure=record_failure)
        self.write_seconds.append(time.perf_counter() - t0)
        self.last_batch = batch
        return run_id


@contextlib.contextmanager
def captured_contexts() -> Iterator[list[pipeline.ChainContext]]:
    """Record the ChainContext (its RpcClient and connectors) each sync_once opens, to read its counters."""
    seen: list[pipeline.ChainContext] = []
    original = pipeline.ChainContext.open

    def spy(settings: Settings, chain: Any) -> pipeline.ChainContext:
        ctx = original(settings, chain)
        seen.append(ctx)
        return ctx

    pipeline.ChainContext.open = spy  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        pipeline.ChainContext.open = original  # type: ignore[method-assign]


def offchain_http(ctx: pipeline.ChainContext) -> dict[str, tuple[int, int, int]]:
    """(HTTP requests, bytes up, bytes down) of each off-chain venue's client (its connector is the object the
    venue's ``close`` is bound to)."""
    out = {}
    for off in ctx.offchain:
        stats = getattr(getattr(off.close, "__self__", None), "stats", None)
        if stats is not None:
            out[off.config.name] = (stats.http_requests, stats.bytes_sent, stats.bytes_received)
    return out


@dataclass
class SyncFigures:
    label: str
    repeats: int
    venues: list[str]
    read: ReadFigures  # chain JSON-RPC counters of the whole sync_once; seconds = whole sync_once
    write_seconds: float
    snapshots: Counter[str]  # per venue
    positions: Counter[str]  # per venue
    perp_http: dict[str, tuple[int, int, int]]  # per off-chain venue: HTTP requests, bytes up, bytes down
    own_health: dict[str, tuple[int, int]]  # per venue that reports its own health: (healths equal to it, healths)
    with_debt: Counter[str]  # per venue

    @property
    def perp_requests(self) -> int:
        return sum(r for r, _, _ in self.perp_http.values())


def run_sync_once(
    info: devnet.DevnetInfo, wallets: Sequence[str], repeats: int, tmp: Path, onchain_only: bool,
    budget_s: float | None = None,
) -> tuple[SyncFigures, SyncBatch]:
    """``repeats`` sync_once of ``wallets`` (fewer when their time passes ``budget_s``; at least one)."""
    label = "onchain" if onchain_only else "all"
    url = f"sqlite:///{tmp / f'sync_once_{label}.db'}"
    settings = devnet_settings(info, Settings(db_url=url))
    if onchain_only:
        settings = settings.model_copy(update={"venues": tuple(v for v in settings.venues if v.onchain)})
    store = TimedStore(Store.open(url).engine)  # Store.open migrates
    try:
        store.add_wallets([(w, None) for w in wallets])
        runs: list[ReadFigures] = []
        perp: list[dict[str, tuple[int, int, int]]] = []
        for _ in range(repeats):
            devnet.mine(info)  # a new block: every repeat writes every snapshot (none skipped as already stored)
            with captured_contexts() as ctxs:
                t0 = time.perf_counter()
                report = pipeline.sync_once(settings, store, wallets=wallets)
                dt = time.perf_counter() - t0
            assert report.ok, [b.error for b in report.batches]
            assert len(report.batches) == 1, report
            (ctx,) = ctxs
            runs.append(ReadFigures.of(dt, ctx.rpc.stats, ctx.multicall.stats.sub_calls))
            perp.append(offchain_http(ctx))
            if budget_s is not None and sum(r.seconds for r in runs) > budget_s:
                break
        for p in perp[1:]:
            assert {k: v[0] for k, v in p.items()} == {k: v[0] for k, v in perp[0].items()}, perp
        healths = list(report.healths())
        own = [v for v in settings.venues if capabilities(v.type).reports_own_health]
        batch = store.last_batch
        assert batch is not None
        figures = SyncFigures(
            label=label,
            repeats=len(runs),
            venues=[v.name for v in settings.venues],
            read=med_figures(runs),
            write_seconds=median(store.write_seconds),
            snapshots=Counter(s.venue for s in batch.snapshots),
            positions=Counter(s.venue for s in batch.snapshots for _ in s.positions),
            perp_http={k: (v[0], int(median([p[k][1] for p in perp])), int(median([p[k][2] for p in perp])))
                       for k, v in perp[0].items()},
            own_health={v.name: (sum(bool(h.matches_onchain) for h in healths if h.venue == v.name),
                                 sum(h.venue == v.name for h in healths)) for v in own},
            with_debt=Counter(h.venue for h in healths if h.debt_usd > 0),
        )
        return figures, batch
    finally:
        store.close()


# --- store write throughput -------------------------------------------------------------------------------------


def batch_rows(batch: SyncBatch) -> int:
    """Rows of snapshots + positions + health + prices (the sync_runs row and market upserts not counted)."""
    snaps = batch.snapshots
    return len(snaps) + sum(len(s.positions) for s in snaps) + sum(s.health is not None for s in snaps) + len(
        batch.prices
    )


def at_block(batch: SyncBatch, block_number: int, wallets: Sequence[str] | None = None) -> SyncBatch:
    """The batch moved to another block (so it is all new to the store); with ``wallets``, its snapshots
    repeated over those wallets (cycling through the real ones)."""
    snaps = batch.snapshots
    if wallets is not None:
        snaps = tuple(dataclasses.replace(snaps[k % len(snaps)], wallet=w) for k, w in enumerate(wallets))
    return dataclasses.replace(
        batch,
        block_number=block_number,
        chain_ref_id=None,  # the batch's chain identity is the sync store's: in another store, its current one
        snapshots=tuple(dataclasses.replace(s, block_number=block_number) for s in snaps),
        prices=tuple(dataclasses.replace(p, block_number=block_number) for p in batch.prices),
    )


@dataclass
class WriteFigures:
    backend: str
    batch: str
    rows: int
    positions: int
    seconds: float

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds


def write_throughput(
    backend: str, url: str, settings: Settings, real: SyncBatch, synthetic_wallets: Sequence[str], repeats: int
) -> list[WriteFigures]:
    store = Store.open(url)
    try:
        pipeline.register_venues(store, settings)
        store.add_wallets([(s.wallet, None) for s in real.snapshots])
        if synthetic_wallets:
            store.add_wallets([(w, None) for w in synthetic_wallets])
        block = (real.block_number or 0) + 1_000
        out = []
        cases: list[tuple[str, Callable[[int], SyncBatch]]] = [
            (f"pipeline ({len(real.snapshots)} snapshots)", lambda b: at_block(real, b)),
        ]
        if synthetic_wallets:
            cases.append(
                (f"synthetic ({len(synthetic_wallets)} snapshots)", lambda b: at_block(real, b, synthetic_wallets))
            )
        for name, make in cases:
            secs = []
            rows = positions = 0
            for _ in range(repeats):
                block += 1
                batch = make(block)
                rows, positions = batch_rows(batch), sum(len(s.positions) for s in batch.snapshots)
                t0 = time.perf_counter()
                store.write_sync(batch)
                secs.append(time.perf_counter() - t0)
            out.append(WriteFigures(backend, name, rows, positions, median(secs)))
        return out
    finally:
        store.close()


@contextlib.contextmanager
def pg_schema(base_url: str) -> Iterator[str | None]:
    """A URL on a fresh private schema (dropped afterwards), or None when PostgreSQL cannot be reached."""
    admin = sa.create_engine(make_url(base_url), poolclass=sa.NullPool)
    schema = f"xmargin_bench_{os.getpid()}_{uuid.uuid4().hex[:10]}"
    try:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    except sa.exc.OperationalError as exc:
        print(f"PostgreSQL at {make_url(base_url).render_as_string()} not reachable, skipped: "
              f"{str(exc).splitlines()[0]}")
        admin.dispose()
        yield None
        return
    try:
        url = make_url(base_url).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()


# --- output -----------------------------------------------------------------------------------------------------


def mb(n: float) -> str:
    return f"{n / 1e6:.2f} MB"


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[str(c) for c in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    print(f"\n{title}")
    for k, r in enumerate(cells):
        print("  " + "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))))
        if k == 0:
            print("  " + "  ".join("-" * w for w in widths))


@dataclass
class Results:
    setup: SetupReport
    together: VenueReadFigures
    warm: VenueReadFigures
    alone: list[VenueReadFigures]
    check: OnchainCheck
    naive: NaiveFigures
    syncs: list[SyncFigures]
    writes: list[WriteFigures]
    pg_note: str
    total_s: float = 0.0
    rounds: dict[str, str] = field(default_factory=dict)  # venue name -> what its read program's rounds ask for
    offchain: list[str] = field(default_factory=list)  # the off-chain venues of sync_once all


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--wallets", type=int, default=1_000, help="wallets with positions (default 1000)")
    ap.add_argument("--repeats", type=int, default=3, help="repeats per measurement; medians are shown (default 3)")
    ap.add_argument("--perp-budget-s", type=float, default=20.0,
                    help="no further repeat of the sync_once with the perp venues once its runs took this long "
                         "(the devnet's perp API takes ~45 ms per request, one per wallet; default 20)")
    ap.add_argument("--synthetic-wallets", type=int, default=20_000,
                    help="wallets of the synthetic store batch (0: skip it; default 20000)")
    ap.add_argument("--naive-budget-s", type=float, default=120.0,
                    help="time budget of the naive pass; past it a sample is extrapolated (default 120)")
    ap.add_argument("--pg-url", default=os.environ.get("XMARGIN_BENCH_PG_URL", DEFAULT_PG_URL),
                    help="PostgreSQL server (a private schema is created and dropped)")
    ap.add_argument("--no-pg", action="store_true", help="skip PostgreSQL")
    ap.add_argument("--seed", type=int, default=1, help="random seed of the wallet positions")
    ap.add_argument("--json", type=Path, help="also write the figures as JSON to this path")
    args = ap.parse_args(argv)
    if args.wallets < 1 or args.repeats < 1:
        ap.error("--wallets and --repeats must be >= 1")

    t_start = time.perf_counter()
    devnet.ensure_installed()
    with devnet.Devnet.launch() as dn, tempfile.TemporaryDirectory(prefix="xmargin-bench-") as tmpdir:
        info = dn.info
        print(f"devnet up in {dn.startup_s:.1f} s ({'deployed' if dn.deployed else 'cached state'}); "
              f"setting up {args.wallets} wallets…", flush=True)
        settings = devnet_settings(info, Settings())
        chain, venues = onchain_config(settings)
        assert venues, "the devnet's config has no on-chain venue"
        parts = bench_parts(venues)
        wallets, setup = setup_wallets(info, parts, args.wallets, args.seed)
        print(f"setup: {setup.transactions} transactions in {setup.blocks} blocks, {setup.seconds:.1f} s", flush=True)

        with RpcClient(info.rpc_url) as rpc:
            block = rpc.get_block("latest")

        # 1. all on-chain venues together (cold, then warm connectors), then each alone, at the pinned block;
        # interleaved, so that drift of the machine weighs on both alike. Only the first run keeps its results.
        cold: list[ProgramRun] = []
        warm: list[ProgramRun] = []
        alone_runs: dict[str, list[ProgramRun]] = {v.name: [] for v in venues}
        for k in range(args.repeats):
            c, w = read_programs(chain, venues, wallets, block, passes=2)
            cold.append(c)
            warm.append(w)
            for v in venues:
                alone_runs[v.name] += read_programs(chain, [v], wallets, block)
            for run in [w, *(r[-1] for r in alone_runs.values()), *([c] if k else [])]:
                run.log, run.snapshots = [], {}
        together = summarize("together (run_programs)", cold)
        together_warm = summarize("together, warm connectors", warm)
        alone = [summarize(name, runs) for name, runs in alone_runs.items()]
        check = check_snapshots(cold[0].snapshots, parts, wallets)
        assert together.figures.sub_calls == sum(a.figures.sub_calls for a in alone)
        assert together.round_trips == max(a.round_trips for a in alone)
        recorded = cold[0].log
        assert len(recorded) == together.figures.sub_calls
        print(f"batched read: {together.figures.sub_calls} reads of {len(venues)} venues in "
              f"{together.figures.seconds * 1e3:.0f} ms; naive replay…", flush=True)

        # 2. naive baseline: the same reads, one eth_call / one HTTP request each
        naive = naive_baseline(info.rpc_url, recorded, block, args.repeats, args.naive_budget_s, args.seed)
        print(f"naive: {naive.reads_executed} reads in {naive.seconds_executed:.1f} s; sync_once…", flush=True)

        # 3. the whole pipeline into SQLite: on-chain venues only, then every venue of the devnet config
        syncs = []
        for onchain_only in (True, False):
            budget = None if onchain_only else args.perp_budget_s
            fig, real_batch = run_sync_once(info, wallets, args.repeats, Path(tmpdir), onchain_only, budget)
            syncs.append(fig)
            print(f"sync_once ({fig.label}): {fig.read.seconds:.2f} s", flush=True)

        # 4. store write throughput per backend (the batch of the all-venue sync_once)
        synthetic = [label_address(f"synthetic.{i}") for i in range(args.synthetic_wallets)]
        writes = write_throughput("sqlite", f"sqlite:///{Path(tmpdir) / 'writes.db'}", settings, real_batch,
                                  synthetic, args.repeats)
        pg_note = "skipped (--no-pg)"
        if not args.no_pg:
            with pg_schema(args.pg_url) as pg_url:
                if pg_url is None:
                    pg_note = "skipped (unreachable)"
                else:
                    writes += write_throughput("postgresql", pg_url, settings, real_batch, synthetic, args.repeats)
                    pg_note = "ok (private schema, dropped)"

    res = Results(setup, together, together_warm, alone, check, naive, syncs, writes, pg_note,
                  time.perf_counter() - t_start, rounds={name: part.rounds for name, part in parts.items()},
                  offchain=[v.name for v in settings.venues if not v.onchain])
    report(args, res)
    return 0


def _read_row(name: str, v: VenueReadFigures, reads: int | None = None) -> list[Any]:
    f = v.figures
    naive_http = f.sub_calls if reads is None else reads
    return [name, v.round_trips, f.http_requests, f.eth_calls, f.sub_calls, f"{f.sub_calls / f.eth_calls:.0f}",
            mb(f.bytes_sent), mb(f.bytes_received), f"{f.seconds * 1e3:.0f}", naive_http,
            f"{naive_http / f.http_requests:.0f}x"]


def report(args: argparse.Namespace, res: Results) -> None:
    setup, conn, naive = res.setup, res.together.figures, res.naive
    n = setup.wallets
    print(f"\n=== bench_sync: {n} wallets x {len(res.alone)} on-chain venues (+ {len(res.offchain)} off-chain "
          f"venues over HTTP in sync_once all), medians of {args.repeats} repeats, {os.cpu_count()} CPUs ===")
    by_venue = ", ".join(f"{k} {v}" for k, v in sorted(setup.transactions_by_venue.items()))
    print(f"setup     {setup.seconds:.1f} s: {setup.transactions} txs ({by_venue}) in {setup.blocks} blocks")
    width = max((len(name) for name in setup.summaries), default=0)
    for name, line in setup.summaries.items():
        print(f"  {name:<{width}} {line}")
    c = res.check
    found = "; ".join(f"{name} {phrase}" for name, phrase in c.found.items())
    print(f"  on chain at the pinned block: {found}; {c.wallets_on_all} wallets on all {len(c.found)}")

    on, alls = res.syncs
    naive_http = naive.reads_total  # one POST per read (the pinned block is given, like the batched read)
    naive_time = naive.seconds_full
    up = naive.bytes_sent * naive.reads_total / naive.reads_executed
    down = naive.bytes_received * naive.reads_total / naive.reads_executed
    rows: list[list[Any]] = [
        ["JSON-RPC HTTP requests", conn.http_requests, on.read.http_requests, alls.read.http_requests, naive_http,
         f"{naive_http / conn.http_requests:.0f}x"],
        ["eth_call", conn.eth_calls, on.read.eth_calls, alls.read.eth_calls, naive_http,
         f"{naive_http / conn.eth_calls:.0f}x"],
        ["other JSON-RPC calls", conn.other_calls, on.read.other_calls, alls.read.other_calls, 0, ""],
        ["reads (aggregate3 sub-calls)", conn.sub_calls, on.read.sub_calls, alls.read.sub_calls, naive.reads_total,
         ""],
        ["reads per eth_call", f"{conn.sub_calls / conn.eth_calls:.0f}",
         f"{on.read.sub_calls / on.read.eth_calls:.0f}", f"{alls.read.sub_calls / alls.read.eth_calls:.0f}", 1, ""],
        ["bytes up (JSON-RPC)", mb(conn.bytes_sent), mb(on.read.bytes_sent), mb(alls.read.bytes_sent), mb(up),
         f"{up / conn.bytes_sent:.1f}x"],
        ["bytes down (JSON-RPC)", mb(conn.bytes_received), mb(on.read.bytes_received),
         mb(alls.read.bytes_received), mb(down), f"{down / conn.bytes_received:.1f}x"],
        ["perp API HTTP requests", "", on.perp_requests, alls.perp_requests, "", ""],
        ["seconds", f"{conn.seconds:.3f}", f"{on.read.seconds:.3f}", f"{alls.read.seconds:.3f}",
         f"{naive_time:.2f}" + ("*" if naive.sampled else ""), f"{naive_time / conn.seconds:.0f}x"],
    ]
    print_table(
        f"Per refresh of {n} wallets x {' + '.join(a.name for a in res.alone)} (batched = run_programs of them all "
        "at a pinned block, cold connectors; sync_once = block + read + health + store write)",
        ["", "batched read", "sync_once on-chain", f"sync_once all ({alls.repeats} run(s))", "naive 1 call/read",
         "naive / batched"],
        rows,
    )
    if naive.sampled:
        print(f"  * naive: {naive.reads_executed} of {naive.reads_total} reads executed (random sample, budget "
              f"{args.naive_budget_s:g} s) in {naive.seconds_executed:.1f} s; time and bytes extrapolated "
              f"linearly to all reads, request counts are one per read.")
    else:
        print(f"  naive: all {naive.reads_total} reads executed, median of {naive.repeats} pass(es).")
    print(f"  verified: {naive.verified} naive eth_call results equal the aggregate3 sub-results byte for byte.")
    print("  bytes: aggregate3 carries more bytes per read than a small JSON request of its own (ABI heads and "
          "offsets, hex-encoded); what the naive way pays for is the round trips.")
    perp = "; ".join(f"{k}: {r} requests, {mb(u)} up, {mb(d)} down" for k, (r, u, d) in alls.perp_http.items())
    per_request = (alls.read.seconds - on.read.seconds) / max(1, alls.perp_requests)
    print(f"  sync_once all: the perp venues are HTTP to the devnet's local perp API, not JSON-RPC ({perp}); "
          f"~{per_request * 1e3:.0f} ms per perp request (sync_once all - on-chain, per request).")
    for s in res.syncs:
        per_venue = ", ".join(f"{v} {s.snapshots[v]}/{s.positions[v]}/{s.with_debt[v]}" for v in s.venues)
        print(f"  sync_once {s.label}: {s.read.seconds:.2f} s of which {s.write_seconds:.2f} s Store.write_sync "
              f"(SQLite); snapshots/positions/with debt per venue: {per_venue}; healths equal to the venue's own "
              f"figure: {', '.join(f'{v} {m}/{t}' for v, (m, t) in s.own_health.items()) or 'none reported'}.")

    summed = ReadFigures(
        seconds=sum(a.figures.seconds for a in res.alone),
        **{k: sum(getattr(a.figures, k) for a in res.alone)
           for k in ("http_requests", "eth_calls", "other_calls", "sub_calls", "bytes_sent", "bytes_received")},
    )
    sum_row = VenueReadFigures("sum", summed, sum(a.round_trips for a in res.alone), [], {})
    print_table(
        "Each on-chain venue alone vs all together (run_programs: one shared aggregate3 batch per round); "
        "naive HTTP = one request per read",
        ["venue(s)", "round trips", "HTTP", "eth_call", "reads", "reads/eth_call", "up", "down", "ms", "naive HTTP",
         "naive/batched HTTP"],
        [*(_read_row(a.name, a) for a in res.alone), _read_row(f"sum of the {len(res.alone)} alone", sum_row),
         _read_row(res.together.name, res.together), _read_row(res.warm.name, res.warm)],
    )
    print(f"  together: {res.together.round_trips} round trips = the longest program "
          f"({max(res.alone, key=lambda a: a.round_trips).name}, {max(a.round_trips for a in res.alone)}), not the "
          f"sum ({sum_row.round_trips}); warm connectors (a long-running Syncer) skip the reads marked cold below.")

    names = list(res.together.per_venue)
    round_rows = []
    for k, r in enumerate(res.together.rounds):
        asked = [res.together.per_venue[v][k] if k < len(res.together.per_venue[v]) else "-" for v in names]
        round_rows.append([k + 1, *asked, r.sub_calls, r.eth_calls, f"{r.sub_calls / r.eth_calls:.0f}",
                           r.http_requests, mb(r.bytes_sent), mb(r.bytes_received), f"{r.seconds * 1e3:.1f}"])
    print_table(
        f"Rounds of the batched read of all {len(names)} (cold): reads each venue's program asked for, per shared "
        "round trip",
        ["round", *names, "reads", "aggregate3", "reads/aggregate3", "HTTP", "up", "down", "ms"],
        round_rows,
    )
    print("  " + "; ".join(f"{name}: {rounds}" for name, rounds in res.rounds.items()) + ".")

    print_table(
        "Store.write_sync throughput (rows = snapshots + positions + health + prices; one transaction; the batch "
        "of sync_once all)",
        ["backend", "batch", "rows", "positions", "seconds", "rows/s"],
        [[w.backend, w.batch, w.rows, w.positions, f"{w.seconds:.3f}", f"{w.rows_per_s:,.0f}"] for w in res.writes],
    )
    print(f"  postgresql: {res.pg_note}")
    print(f"\ntotal {res.total_s:.0f} s")

    if args.json:
        data = {
            "wallets": n,
            "repeats": args.repeats,
            "setup": {**dataclasses.asdict(setup), "transactions_by_venue": dict(setup.transactions_by_venue)},
            "onchain": dataclasses.asdict(res.check),
            "batched_read": {v.name: {**dataclasses.asdict(v.figures), "round_trips": v.round_trips,
                                      "rounds": [dataclasses.asdict(r) for r in v.rounds],
                                      "reads_per_round": v.per_venue}
                             for v in [res.together, res.warm, *res.alone]},
            "sync_once": {s.label: {**dataclasses.asdict(s.read), "write_seconds": s.write_seconds,
                                    "venues": s.venues, "snapshots": dict(s.snapshots),
                                    "positions": dict(s.positions), "with_debt": dict(s.with_debt),
                                    "perp_http": s.perp_http, "own_health": s.own_health}
                          for s in res.syncs},
            "naive": {**dataclasses.asdict(naive), "sampled": naive.sampled, "seconds_full": naive.seconds_full},
            "ratios": {
                "http_requests": naive_http / conn.http_requests,
                "eth_calls": naive_http / conn.eth_calls,
                "reads_per_eth_call": conn.sub_calls / conn.eth_calls,
                "time": naive_time / conn.seconds,
            },
            "store_writes": [{**dataclasses.asdict(w), "rows_per_s": w.rows_per_s} for w in res.writes],
            "postgresql": res.pg_note,
            "total_s": res.total_s,
        }
        args.json.write_text(json.dumps(data, indent=1))
        print(f"figures written to {args.json}")


if __name__ == "__main__":
    sys.exit(main())
