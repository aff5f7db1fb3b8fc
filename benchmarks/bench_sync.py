"""Benchmark of one refresh: N devnet wallets with real Aave v3 positions, read and stored by the pipeline.

What it measures, all in one run on one private devnet (``make bench``)::

    setup     N wallets (default 1,000) open 1-3 collateral positions among WETH/AAVE/LINK/DAI/USDC and most
              borrow DAI/USDC/LINK (variable or stable; some in e-mode 1), sent as JSON-RPC batches of
              eth_sendTransaction with automine off, mined 100 transactions per block (~3 s for 1,000 wallets).
    connector AaveV3Connector.read_accounts of all N wallets at one pinned block (a fresh connector per
              repeat, as every sync_once builds): HTTP requests, eth_calls, aggregate3 sub-calls, bytes.
    naive     the very same sub-calls, one eth_call per read and one HTTP POST each (plain httpx, keep-alive,
              same pinned block), executed, timed, and checked byte for byte against the multicall results.
    sync_once the whole pipeline (block, read, health, one store transaction) into a SQLite file, one new
              block per repeat so every repeat writes every row.
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
import itertools
import json
import math
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from eth_hash.auto import keccak
from eth_utils.address import to_checksum_address
from sqlalchemy.engine import make_url

import devnet
from aggregator import pipeline
from aggregator.config import Settings
from aggregator.devnet_cli import devnet_settings
from connectors.aave_v3.connector import AaveV3Connector
from connectors.aave_v3.deployments import AaveDeployment
from connectors.aave_v3.models import AaveSnapshot
from connectors.evm.multicall import Call, CallResult, Multicall
from connectors.evm.rpc import RpcClient, RpcStats
from connectors.types import BlockRef
from db.rows import SyncBatch
from db.store import Store

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
COLLATERALS = ("WETH", "AAVE", "LINK", "DAI", "USDC")
BORROWABLE = ("DAI", "USDC", "LINK")
STABLES = ("DAI", "USDC")
STABLE_EMODE = 1
# Whole-token ranges of one supply (each within one faucet mint of 10,000 tokens).
SUPPLY_RANGE = {"WETH": (0.25, 2.5), "AAVE": (5, 30), "LINK": (50, 300), "DAI": (500, 10_000), "USDC": (500, 10_000)}
POOL_GAS = 1_500_000
SMALL_GAS = 300_000
WALLET_ETH = 100 * 10**18
MAX_UINT256 = 2**256 - 1
ROUND_NAMES = ("A pool discovery", "B reserve list", "C reserves", "D wallets + feeds", "E debts")


# --- small helpers ------------------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def label_address(label: str) -> str:
    """A deterministic address (same derivation as devnet.wallet_address)."""
    return str(to_checksum_address(keccak(f"xmargin.bench.{label}".encode())[-20:]))


def calldata(signature: str, *args: Any) -> str:
    return devnet.encode_call(signature, *args)


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
class WalletPlan:
    address: str
    emode: bool
    supplies: list[tuple[str, int]]  # (symbol, raw)
    borrows: list[tuple[str, int, int]]  # (symbol, raw, rate mode 1 stable / 2 variable)


@dataclass
class Tx:
    sender: str
    to: str
    data: str
    what: str
    value: int = 0
    gas: int = SMALL_GAS


@dataclass
class SetupReport:
    wallets: int
    seconds: float
    transactions: int
    blocks: int
    borrowers: int
    emode: int
    stable_borrowers: int
    collateral_assets: Counter[int] = field(default_factory=Counter)
    lender_supplied: dict[str, float] = field(default_factory=dict)


def plan_wallets(
    n: int, rng: random.Random, prices: dict[str, int], decimals: dict[str, int], ltv_bps: dict[str, int]
) -> list[WalletPlan]:
    """Varied positions; debts at 20-90 % of the wallet's borrowing power (health factors ~1.1 to ~5)."""
    plans = []
    for i in range(n):
        emode = rng.random() < 0.08
        if emode:
            collateral = rng.sample(STABLES, rng.choice((1, 2)))
        else:
            collateral = rng.sample(COLLATERALS, rng.choices((1, 2, 3), weights=(40, 35, 25))[0])
        supplies = []
        power_usd = 0.0
        for sym in collateral:
            lo, hi = SUPPLY_RANGE[sym]
            tokens = rng.uniform(lo, hi)
            raw = int(tokens * 10 ** decimals[sym])
            supplies.append((sym, raw))
            power_usd += tokens * prices[sym] / 1e8 * ltv_bps[sym] / 10_000
        borrows: list[tuple[str, int, int]] = []
        if rng.random() < 0.8 and power_usd > 0:
            debt_usd = power_usd * rng.uniform(0.2, 0.9)
            choices = STABLES if emode else BORROWABLE
            assets = rng.sample(choices, rng.choice((1, 2)))
            weights = [rng.uniform(0.2, 1.0) for _ in assets]
            for sym, w in zip(assets, weights, strict=True):
                usd = debt_usd * w / sum(weights)
                raw = int(usd * 1e8 / prices[sym] * 10 ** decimals[sym])
                # Stable rate only where the wallet does not use the asset as collateral (an Aave rule).
                mode = 1 if (not emode and sym not in collateral and rng.random() < 0.25) else 2
                borrows.append((sym, raw, mode))
        plans.append(WalletPlan(label_address(f"wallet.{i}"), emode, supplies, borrows))
    return plans


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


def setup_wallets(info: devnet.DevnetInfo, n: int, seed: int, per_block: int = 100) -> tuple[list[str], SetupReport]:
    """Open positions for ``n`` wallets; returns their addresses (plus the seed wallets' demo positions)."""
    t0 = time.perf_counter()
    devnet.seed(info)
    chain = RawRpc(info.rpc_url)
    try:
        oracle, pool, faucet = (info.contract(k) for k in ("aave_v3.oracle", "aave_v3.pool", "aave_v3.faucet"))
        dp = info.contract("aave_v3.pool_data_provider")
        prices, decimals, ltv = {}, {}, {}
        for sym, token in info.tokens.items():
            (prices[sym],) = devnet.eth_call(info, oracle, "getAssetPrice(address)", [token], ["uint256"])
            cfg = devnet.eth_call(info, dp, "getReserveConfigurationData(address)", [token], ["uint256"] * 6)
            decimals[sym], ltv[sym] = int(cfg[0]), int(cfg[1])
        (cap_tokens,) = devnet.eth_call(info, faucet, "getMaximumMintAmount()", (), ["uint256"])
        plans = plan_wallets(n, random.Random(seed), prices, decimals, ltv)

        # Liquidity: a lender supplies 1.25x of everything borrowed, on top of the seed lender's.
        need: Counter[str] = Counter()
        for p in plans:
            for sym, raw, _ in p.borrows:
                need[sym] += raw
        lender = label_address("lender")
        lender_plan = WalletPlan(lender, False, [(s, raw * 5 // 4) for s, raw in need.items()], [])

        phase1: list[Tx] = []  # e-mode, mint / wrap, approve, supply (per sender, in nonce order)
        for p in [lender_plan, *plans]:
            if p.emode:
                phase1.append(Tx(p.address, pool, calldata("setUserEMode(uint8)", STABLE_EMODE), "setUserEMode",
                                 gas=POOL_GAS))
            for sym, raw in p.supplies:
                token = info.token(sym)
                if sym == "WETH":
                    phase1.append(Tx(p.address, token, calldata("deposit()"), "WETH deposit", value=raw))
                else:
                    cap_raw = int(cap_tokens) * 10 ** decimals[sym]
                    for k in range(math.ceil(raw / cap_raw)):
                        chunk = min(cap_raw, raw - k * cap_raw)
                        phase1.append(Tx(p.address, faucet, calldata("mint(address,address,uint256)", token,
                                                                     p.address, chunk), f"mint {sym}"))
                phase1.append(Tx(p.address, token, calldata("approve(address,uint256)", pool, MAX_UINT256),
                                 f"approve {sym}"))
                phase1.append(Tx(p.address, pool, calldata("supply(address,uint256,address,uint16)", token, raw,
                                                           p.address, 0), f"supply {sym}", gas=POOL_GAS))
        phase2 = [
            Tx(p.address, pool, calldata("borrow(address,uint256,uint256,uint16,address)", info.token(sym), raw,
                                         mode, 0, p.address), f"borrow {sym} mode {mode}", gas=POOL_GAS)
            for p in plans
            for sym, raw, mode in p.borrows
        ]

        senders = [lender] + [p.address for p in plans]
        chain.batch([("anvil_setBalance", [a, hex(WALLET_ETH)]) for a in senders])
        # Automine off, blocks of ``per_block`` transactions (with room for them: each has POOL_GAS at most).
        gas_limit = chain.call("eth_getBlockByNumber", ["latest", False])["gasLimit"]
        chain.call("evm_setBlockGasLimit", [hex(per_block * POOL_GAS)])
        chain.call("evm_setAutomine", [False])
        nonces: dict[str, int] = {}
        try:
            blocks = _run_phase(chain, phase1, nonces, per_block)
            blocks += _run_phase(chain, phase2, nonces, per_block)
        finally:
            chain.call("evm_setAutomine", [True])
            chain.call("evm_setBlockGasLimit", [gas_limit])
        report = SetupReport(
            wallets=n,
            seconds=time.perf_counter() - t0,
            transactions=len(phase1) + len(phase2),
            blocks=blocks,
            borrowers=sum(bool(p.borrows) for p in plans),
            emode=sum(p.emode for p in plans),
            stable_borrowers=sum(any(m == 1 for _, _, m in p.borrows) for p in plans),
            collateral_assets=Counter(len(p.supplies) for p in plans),
            lender_supplied={s: raw / 10 ** decimals[s] for s, raw in lender_plan.supplies},
        )
        return [p.address for p in plans], report
    finally:
        chain.close()


# --- connector read, recorded ----------------------------------------------------------------------------------


@dataclass
class RoundFigures:
    """One Multicall.execute (one round trip of the connector's read plan)."""

    sub_calls: int
    eth_calls: int
    http_requests: int
    bytes_sent: int
    bytes_received: int
    seconds: float


class RecordingMulticall(Multicall):
    """A Multicall that keeps every sub-call it made with its result (for the naive replay), and the
    counters of each execute (each round of the read plan)."""

    def __init__(self, rpc: RpcClient) -> None:
        super().__init__(rpc)
        self.log: list[CallResult] = []
        self.rounds: list[RoundFigures] = []

    def execute(self, calls: Sequence[Call], block: int | BlockRef) -> list[CallResult]:
        before = self.rpc.stats.copy()
        t0 = time.perf_counter()
        results = super().execute(calls, block)
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


def read_connector(
    info: devnet.DevnetInfo, deployment: AaveDeployment, wallets: Sequence[str], block: BlockRef
) -> tuple[ReadFigures, AaveSnapshot, RecordingMulticall]:
    """One read as every sync_once makes it: a new client and connector (so pool discovery is re-read)."""
    with RpcClient(info.rpc_url, timeout_s=120) as rpc:
        mc = RecordingMulticall(rpc)
        connector = AaveV3Connector(rpc, deployment, mc)
        t0 = time.perf_counter()
        snap = connector.read_accounts(wallets, block)
        dt = time.perf_counter() - t0
        return ReadFigures.of(dt, rpc.stats, mc.stats.sub_calls), snap, mc


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


@dataclass
class SyncFigures:
    read: ReadFigures  # rpc counters of the whole sync_once; seconds = whole sync_once
    write_seconds: float
    snapshots: int
    positions: int
    matches_onchain: int
    wallets_with_debt: int


def run_sync_once(
    info: devnet.DevnetInfo, wallets: Sequence[str], repeats: int, tmp: Path
) -> tuple[SyncFigures, SyncBatch]:
    url = f"sqlite:///{tmp / 'sync_once.db'}"
    settings = devnet_settings(info, Settings(db_url=url))
    store = TimedStore(Store.open(url).engine)  # Store.open migrates
    try:
        store.add_wallets([(w, None) for w in wallets])
        runs: list[ReadFigures] = []
        for _ in range(repeats):
            devnet.mine(info)  # a new block: every repeat writes every snapshot (none skipped as already stored)
            with captured_contexts() as ctxs:
                t0 = time.perf_counter()
                report = pipeline.sync_once(settings, store, wallets=wallets)
                dt = time.perf_counter() - t0
            assert report.ok, report
            assert len(report.batches) == 1, report
            (ctx,) = ctxs
            runs.append(ReadFigures.of(dt, ctx.rpc.stats, ctx.venues[0][1].multicall.stats.sub_calls))
        healths = list(report.healths())
        batch = store.last_batch
        assert batch is not None
        figures = SyncFigures(
            read=med_figures(runs),
            write_seconds=median(store.write_seconds),
            snapshots=len(batch.snapshots),
            positions=sum(len(s.positions) for s in batch.snapshots),
            matches_onchain=sum(bool(h.matches_onchain) for h in healths),
            wallets_with_debt=sum(h.debt_usd > 0 for h in healths),
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
            (f"pipeline ({len(real.snapshots)} wallets)", lambda b: at_block(real, b)),
        ]
        if synthetic_wallets:
            cases.append(
                (f"synthetic ({len(synthetic_wallets)} wallets)", lambda b: at_block(real, b, synthetic_wallets))
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


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--wallets", type=int, default=1_000, help="wallets with positions (default 1000)")
    ap.add_argument("--repeats", type=int, default=3, help="repeats per measurement; medians are shown (default 3)")
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
        wallets, setup = setup_wallets(info, args.wallets, args.seed)
        print(f"setup: {setup.transactions} transactions in {setup.blocks} blocks, {setup.seconds:.1f} s", flush=True)

        deployment = AaveDeployment(name="devnet", chain_id=info.chain_id,
                                    pool_addresses_provider=info.contract("aave_v3.pool_addresses_provider"))
        with RpcClient(info.rpc_url) as rpc:
            block = rpc.get_block("latest")

        # 1. connector read at the pinned block
        runs, mcs, snap = [], [], None
        for _ in range(args.repeats):
            fig, snap, mc = read_connector(info, deployment, wallets, block)
            runs.append(fig)
            mcs.append(mc)
        assert snap is not None
        conn_fig = med_figures(runs)
        recorded = mcs[0].log
        rounds = [
            dataclasses.replace(r, seconds=median([m.rounds[k].seconds for m in mcs]))
            for k, r in enumerate(mcs[0].rounds)
        ]
        with_collateral = sum(a.onchain.total_collateral_base_raw > 0 for a in snap.accounts)
        with_debt = sum(a.onchain.total_debt_base_raw > 0 for a in snap.accounts)
        assert with_collateral == len(wallets), f"only {with_collateral} of {len(wallets)} wallets have collateral"
        assert len(recorded) == conn_fig.sub_calls
        print(f"connector read: {conn_fig.sub_calls} reads in {conn_fig.seconds * 1e3:.0f} ms; naive replay…",
              flush=True)

        # 2. naive baseline: the same reads, one eth_call / one HTTP request each
        naive = naive_baseline(info.rpc_url, recorded, block, args.repeats, args.naive_budget_s, args.seed)
        print(f"naive: {naive.reads_executed} reads in {naive.seconds_executed:.1f} s; sync_once…", flush=True)

        # 3. the whole pipeline into SQLite
        settings = devnet_settings(info, Settings())
        sync_fig, real_batch = run_sync_once(info, wallets, args.repeats, Path(tmpdir))
        print(f"sync_once: {sync_fig.read.seconds:.2f} s; store writes…", flush=True)

        # 4. store write throughput per backend
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

    total_s = time.perf_counter() - t_start
    report(args, setup, conn_fig, rounds, naive, sync_fig, writes, with_debt, pg_note, total_s)
    return 0


def report(
    args: argparse.Namespace,
    setup: SetupReport,
    conn: ReadFigures,
    rounds: Sequence[RoundFigures],
    naive: NaiveFigures,
    sync: SyncFigures,
    writes: Sequence[WriteFigures],
    with_debt: int,
    pg_note: str,
    total_s: float,
) -> None:
    n = setup.wallets
    print(f"\n=== bench_sync: {n} wallets, medians of {args.repeats} repeats, "
          f"{os.cpu_count()} CPUs ===")
    mix = ", ".join(f"{k} asset(s): {v}" for k, v in sorted(setup.collateral_assets.items()))
    print(f"setup     {setup.seconds:.1f} s: {setup.transactions} txs in {setup.blocks} blocks; collateral {mix}; "
          f"{setup.borrowers} borrow ({setup.stable_borrowers} with a stable-rate debt), {setup.emode} in e-mode; "
          f"on chain: {n} with collateral, {with_debt} with debt")

    naive_http = naive.reads_total  # one POST per read (the pinned block is given, like the batched read)
    naive_time = naive.seconds_full
    rows: list[list[Any]] = [
        ["HTTP requests", conn.http_requests, sync.read.http_requests, naive_http,
         f"{naive_http / conn.http_requests:.0f}x"],
        ["eth_call", conn.eth_calls, sync.read.eth_calls, naive_http, f"{naive_http / conn.eth_calls:.0f}x"],
        ["other JSON-RPC calls", conn.other_calls, sync.read.other_calls, 0, ""],
        ["reads (aggregate3 sub-calls)", conn.sub_calls, sync.read.sub_calls, naive.reads_total, ""],
        ["reads per eth_call", f"{conn.sub_calls / conn.eth_calls:.0f}",
         f"{sync.read.sub_calls / sync.read.eth_calls:.0f}", 1, ""],
        ["bytes up", mb(conn.bytes_sent), mb(sync.read.bytes_sent),
         mb(naive.bytes_sent * naive.reads_total / naive.reads_executed), ""],
        ["bytes down", mb(conn.bytes_received), mb(sync.read.bytes_received),
         mb(naive.bytes_received * naive.reads_total / naive.reads_executed), ""],
        ["seconds", f"{conn.seconds:.3f}", f"{sync.read.seconds:.3f}",
         f"{naive_time:.2f}" + ("*" if naive.sampled else ""), f"{naive_time / conn.seconds:.0f}x"],
    ]
    print_table(
        "Per refresh of all wallets (batched = AaveV3Connector.read_accounts at a pinned block; "
        "sync_once = block + read + health + store write)",
        ["", "batched read", "sync_once", "naive 1 call/read", "naive / batched"],
        rows,
    )
    if naive.sampled:
        print(f"  * naive: {naive.reads_executed} of {naive.reads_total} reads executed (random sample, budget "
              f"{args.naive_budget_s:g} s) in {naive.seconds_executed:.1f} s; time and bytes extrapolated "
              f"linearly to all reads, request counts are one per read.")
    else:
        print(f"  naive: all {naive.reads_total} reads executed, median of {naive.repeats} pass(es).")
    print(f"  verified: {naive.verified} naive eth_call results equal the aggregate3 sub-results byte for byte; "
          f"{sync.matches_onchain}/{sync.snapshots} healths match Aave's getUserAccountData exactly.")
    print(f"  sync_once: {sync.snapshots} snapshots, {sync.positions} positions; of its "
          f"{sync.read.seconds:.2f} s, {sync.write_seconds:.2f} s are Store.write_sync (SQLite).")
    print_table(
        "Rounds of the batched read (A-E of the read plan in connectors/aave_v3/connector.py; each depends on the "
        "one before)",
        ["round", "reads", "aggregate3", "reads/aggregate3", "HTTP", "up", "down", "ms"],
        [
            [ROUND_NAMES[k] if k < len(ROUND_NAMES) else str(k + 1), r.sub_calls, r.eth_calls,
             f"{r.sub_calls / r.eth_calls:.0f}", r.http_requests, mb(r.bytes_sent), mb(r.bytes_received),
             f"{r.seconds * 1e3:.1f}"]
            for k, r in enumerate(rounds)
        ],
    )

    print_table(
        "Store.write_sync throughput (rows = snapshots + positions + health + prices; one transaction)",
        ["backend", "batch", "rows", "positions", "seconds", "rows/s"],
        [[w.backend, w.batch, w.rows, w.positions, f"{w.seconds:.3f}", f"{w.rows_per_s:,.0f}"] for w in writes],
    )
    print(f"  postgresql: {pg_note}")
    print(f"\ntotal {total_s:.0f} s")

    if args.json:
        data = {
            "wallets": n,
            "repeats": args.repeats,
            "setup": {**dataclasses.asdict(setup), "collateral_assets": dict(setup.collateral_assets),
                      "wallets_with_debt_onchain": with_debt},
            "batched_read": {**dataclasses.asdict(conn), "rounds": [dataclasses.asdict(r) for r in rounds]},
            "sync_once": {**dataclasses.asdict(sync.read), "write_seconds": sync.write_seconds,
                          "snapshots": sync.snapshots, "positions": sync.positions,
                          "matches_onchain": sync.matches_onchain, "wallets_with_debt": sync.wallets_with_debt},
            "naive": {**dataclasses.asdict(naive), "sampled": naive.sampled, "seconds_full": naive.seconds_full},
            "ratios": {
                "http_requests": naive_http / conn.http_requests,
                "eth_calls": naive_http / conn.eth_calls,
                "reads_per_eth_call": conn.sub_calls / conn.eth_calls,
                "time": naive_time / conn.seconds,
            },
            "store_writes": [{**dataclasses.asdict(w), "rows_per_s": w.rows_per_s} for w in writes],
            "postgresql": pg_note,
            "total_s": total_s,
        }
        args.json.write_text(json.dumps(data, indent=1))
        print(f"figures written to {args.json}")


if __name__ == "__main__":
    sys.exit(main())
