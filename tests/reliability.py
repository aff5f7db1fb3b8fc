"""Reliability scenarios (issue 7): every fault driven against a real sync of the devnet, with what the user sees
and what the store holds afterwards.

A scenario is a :class:`Scenario` — a name, the fault, how it is injected, and a function ``(lab, seed) →``
:class:`ScenarioResult` that sets up (a fresh store tracking the seeded wallets, a :class:`~aggregator.pipeline.Syncer`
whose chain RPC is a :class:`~tests.faultproxy.FaultProxy` in front of the devnet, a fallback proxy where the scenario
needs one), injects the fault (through the proxy, or on the devnet's own Chainlink feeds for the oracle faults), runs
one or more syncs (each at a new block, mined before it: a snapshot is stored once per wallet, venue and block) and
observes the reports, the store and the alert engine. Every scenario is deterministic for a
given seed (the seed places the faults and picks their sizes) and runs inside an ``evm_snapshot`` that is reverted
afterwards, so scenarios do not see each other::

    with launch_lab(tmp_dir) as lab:
        result = run_scenario("http_5xx_bursts", lab, seed=1)
        assert result.survived and result.data_lost == 0

What a result means:

``injected``
    faults the proxies injected (their ``stats.faults``, reorgs included), plus oracle manipulations on the devnet.
``syncs``
    :meth:`Syncer.run` calls of the scenario (warm-up, faulted and recovery syncs; reference syncs not counted).
``survived``
    every check of the scenario held (``details["checks"]``): no exception escaped a sync, the user sees what the
    scenario promises (statuses, error text, flags, alerts), the store is whole (no half-stored snapshot, every
    snapshot at its run's block and hash) and the syncs after the fault are back to normal.
``data_lost``
    rows that a clean sync would have stored but were not, or were stored wrong. Every block a sync of the scenario
    stored after its warm-up is compared with a *reference*: a clean sync of the same wallets and venues at the same
    block number, straight to the devnet (no proxy), into a store of its own. Per (wallet, venue) the reference
    stored healthily, the scenario's store must hold a snapshot at that block that is ``ok``, has its health, carries
    the block's canonical hash (``eth_getBlockByNumber`` after the scenario) and the same health, collateral, debt
    and number of positions. Counted as lost: a missing snapshot; an error snapshot for a venue the fault was not
    aimed at (an error snapshot of a venue whose own reads were faulted is the correct "stale" answer, not loss); a
    snapshot with another block's hash (mixed hashes in one run included); an ``ok`` snapshot without health; other
    values. A sync that failed as a whole and wrote nothing loses nothing by this measure (the store is checked to
    be unchanged instead). Oracle faults change the chain's prices, so a reference at the same block would see the
    same fault: there the reference is the scenario's own clean warm-up sync, and every (wallet, venue) it stored
    healthily must still be stored ``ok`` with a health (flagged, not dropped) at the faulted blocks.
"""

from __future__ import annotations

import contextlib
import itertools
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

import devnet
from aggregator.alerts.engine import AlertEngine
from aggregator.alerts.sinks import LogSink
from aggregator.config import Settings, VenueConfig
from aggregator.devnet_cli import devnet_settings
from aggregator.pipeline import ChainContext, Syncer, SyncReport
from connectors.chainlink.reader import DEFAULT_HEARTBEAT_S
from connectors.evm.multicall import Call, CallResult, Multicall
from connectors.evm.program import run_programs
from db.changes import ChangePolicy
from db.models import Base
from db.rows import SyncStatus
from db.store import Store
from devnet import perp_api
from tests.faultproxy import Fault, FaultProxy
from tests.timing import scaled

__all__ = [
    "DEADLINE_S",
    "SCENARIOS",
    "Lab",
    "Loss",
    "Scenario",
    "ScenarioResult",
    "StoredSnapshot",
    "lab_on",
    "launch_lab",
    "run_scenario",
    "store_problems",
    "stored_snapshots",
    "table_counts",
]

CHAIN = "devnet"
DEADLINE_S = scaled(1.0)
"""A scenario's deadline per answer: 1 s (× the tests' time scale, :mod:`tests.timing`)."""
FAST_CHAIN: dict[str, Any] = {"timeout_s": DEADLINE_S, "max_retries": 3, "breaker_failures": 3, "breaker_reset_s": 30.0}
"""The chain settings of a scenario unless it says otherwise: one deadline per answer, 3 retries per endpoint."""
COUNTED_TABLES = ("sync_runs", "position_snapshots", "positions", "prices", "health_results", "risk_results")
ORACLE_SOURCE = "aave_v3.oracle"

_T = Base.metadata.tables


# --- what the store holds -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredSnapshot:
    """One stored snapshot of a (wallet, venue) at a block, with what its health says."""

    run_id: int
    wallet: str
    venue: str
    block_number: int
    block_hash: str
    status: str
    error: str | None
    has_health: bool
    health_factor_raw: int | None
    collateral_usd: float | None
    debt_usd: float | None
    positions: int
    flags: tuple[str, ...]

    @property
    def key(self) -> tuple[str, str]:
        return self.wallet, self.venue

    def same_values(self, other: StoredSnapshot) -> bool:
        """Same number of positions, and the same health (raw integer), collateral and debt within what the
        change-only store tolerates: a health row is written again only when a value moved by more than the
        store's ``rel_tolerance`` (:class:`db.ChangePolicy`), so two stores that read the same block may each hold
        a row of a slightly earlier block — twice the tolerance apart at most (1e-9 for values that are equal)."""
        tolerance = 2 * ChangePolicy().rel_tolerance

        def close(a: float | None, b: float | None) -> bool:
            if a is None or b is None:
                return a is b
            return abs(a - b) <= max(1e-9 * max(1.0, abs(a), abs(b)), tolerance * max(abs(a), abs(b)))

        raw_a = None if self.health_factor_raw is None else float(self.health_factor_raw)
        raw_b = None if other.health_factor_raw is None else float(other.health_factor_raw)
        return (self.positions == other.positions and close(raw_a, raw_b)
                and close(self.collateral_usd, other.collateral_usd) and close(self.debt_usd, other.debt_usd))


def stored_snapshots(store: Store, *, block_number: int | None = None) -> list[StoredSnapshot]:
    """Every stored snapshot, with its health and position count: each position version at its first block (with
    the health row of that block); or, at ``block_number``, what the store holds for that block — the version
    whose range covers it and was read through it (first block <= number <= last block seen), with its newest
    health row at or before the block, and the block's own sync run and hash."""
    s, w, v, h, p, r = (_T[n] for n in ("position_snapshots", "wallets", "venues", "health_results", "positions",
                                        "sync_runs"))
    positions = sa.select(sa.func.count()).select_from(p).where(p.c.snapshot_id == s.c.id).scalar_subquery()
    cols = (s.c.id, s.c.sync_run_id, s.c.chain_ref_id, w.c.address, v.c.name, s.c.block_number, s.c.block_hash,
            s.c.status, s.c.error, positions.label("positions"))
    query = sa.select(*cols).join(w, w.c.id == s.c.wallet_id).join(v, v.c.id == s.c.venue_id).order_by(s.c.id)
    if block_number is not None:
        query = query.where(s.c.block_number <= block_number,
                            sa.func.coalesce(s.c.last_seen_block, s.c.block_number) >= block_number)
    out = []
    with store.engine.connect() as conn:
        versions: dict[tuple[Any, ...], Any] = {}
        for row in conn.execute(query).mappings():
            key = (row["address"], row["name"])
            if block_number is None:
                versions[(row["address"], row["name"], row["id"])] = row
            elif key not in versions or versions[key]["block_number"] < row["block_number"]:
                versions[key] = row
        for row in versions.values():
            at = row["block_number"] if block_number is None else block_number
            health = conn.execute(
                sa.select(h.c.id, h.c.health_factor_raw, h.c.collateral_usd, h.c.debt_usd, h.c.flags)
                .where(h.c.snapshot_id == row["id"], h.c.block_number <= at,
                       *([h.c.block_number == at] if block_number is None else []))
                .order_by(h.c.block_number.desc()).limit(1)).mappings().first()
            run_id, block_hash = row["sync_run_id"], row["block_hash"]
            if at != row["block_number"]:
                run = conn.execute(sa.select(r.c.id, r.c.block_hash).where(
                    r.c.chain_ref_id == row["chain_ref_id"], r.c.block_number == at, r.c.status != "failed")
                    .order_by(r.c.id.desc()).limit(1)).first()
                if run is not None:
                    run_id, block_hash = run.id, run.block_hash
            out.append(StoredSnapshot(
                run_id=run_id, wallet=row["address"], venue=row["name"], block_number=at, block_hash=block_hash,
                status=row["status"], error=row["error"], has_health=health is not None,
                health_factor_raw=None if health is None else health["health_factor_raw"],
                collateral_usd=None if health is None else health["collateral_usd"],
                debt_usd=None if health is None else health["debt_usd"],
                positions=int(row["positions"]), flags=tuple((health["flags"] if health else None) or ()),
            ))
    return out


@dataclass(frozen=True)
class StoredRun:
    id: int
    block_number: int | None
    block_hash: str | None
    status: str
    error: str | None


def stored_runs(store: Store, after_id: int = 0) -> list[StoredRun]:
    """The sync runs with an id above ``after_id``, oldest first."""
    t = _T["sync_runs"]
    query = sa.select(t.c.id, t.c.block_number, t.c.block_hash, t.c.status, t.c.error).where(t.c.id > after_id)
    with store.engine.connect() as conn:
        return [StoredRun(*row) for row in conn.execute(query.order_by(t.c.id)).all()]


def store_problems(store: Store) -> list[str]:
    """Half-stored data anywhere in ``store``: an ``ok`` snapshot without its health, an error snapshot with positions
    or a health, a snapshot whose block (number or hash) is not its sync run's (mixed hashes in one run)."""
    runs = {r.id: r for r in stored_runs(store)}
    out = []
    for s in stored_snapshots(store):
        run = runs.get(s.run_id)
        where = f"{s.wallet[:10]}/{s.venue} at {s.block_number} (run {s.run_id})"
        if run is None or (run.block_number, run.block_hash) != (s.block_number, s.block_hash):
            out.append(f"{where}: not at its run's block")
        if s.status == "ok" and not s.has_health:
            out.append(f"{where}: ok without a health")
        if s.status != "ok" and (s.has_health or s.positions):
            out.append(f"{where}: an error snapshot with positions or a health")
    return out


def table_counts(store: Store) -> dict[str, int]:
    """Rows per table of what a sync writes."""
    with store.engine.connect() as conn:
        return {name: int(conn.execute(sa.select(sa.func.count()).select_from(_T[name])).scalar_one())
                for name in COUNTED_TABLES}


# --- the lab: a seeded devnet, stores, reference syncs --------------------------------------------------------------


@dataclass
class Lab:
    """A running, seeded devnet and what the scenarios share: the tracked wallets (address → label), the settings
    that point every venue at it, and a work directory for the stores."""

    info: devnet.DevnetInfo
    wallets: dict[str, str]
    workdir: Path
    base: Settings = field(init=False)
    _ids: Iterator[int] = field(default_factory=itertools.count, init=False)

    def __post_init__(self) -> None:
        self.base = devnet_settings(self.info)
        self.workdir.mkdir(parents=True, exist_ok=True)

    @property
    def onchain(self) -> list[str]:
        return [v.name for v in self.base.venues if v.onchain]

    @property
    def venues(self) -> list[str]:
        return [v.name for v in self.base.venues]

    def label(self, address: str) -> str:
        return next((lbl for a, lbl in self.wallets.items() if a.lower() == address.lower()), address[:10])

    def settings(self, rpc_url: str, fallbacks: Sequence[str] = (), *, venues: Sequence[VenueConfig] | None = None,
                 **chain: Any) -> Settings:
        """The devnet's settings with the chain's RPC at ``rpc_url`` (then ``fallbacks``) and ``chain`` overrides."""
        updated = self.base.chains[0].model_copy(update={"rpc_url": rpc_url, "fallback_rpc_urls": tuple(fallbacks),
                                                         **chain})
        return self.base.model_copy(update={"chains": (updated,),
                                            "venues": tuple(venues) if venues is not None else self.base.venues})

    def open_store(self, name: str) -> Store:
        """A new SQLite store in the work directory, tracking the lab's wallets."""
        path = self.workdir / f"{next(self._ids):04d}-{name}.db"
        store = Store.open(f"sqlite:///{path}")
        store.add_wallets(list(self.wallets.items()))
        return store

    def head(self) -> int:
        return int(devnet.rpc(self.info, "eth_blockNumber"), 16)

    def canonical_hash(self, number: int) -> str:
        return str(devnet.rpc(self.info, "eth_getBlockByNumber", [hex(number), False])["hash"])

    @contextlib.contextmanager
    def isolated(self) -> Iterator[None]:
        """Run inside an ``evm_snapshot`` that is reverted afterwards (and the perp API's ETH mark put back)."""
        mark = devnet.latest_round(self.info, "WETH").price_usd
        snap = devnet.snapshot(self.info)
        try:
            yield
        finally:
            devnet.revert(self.info, snap)
            perp_api.set_mark(self.info, "WETH", mark)


def lab_on(info: devnet.DevnetInfo, workdir: Path) -> Lab:
    """A running devnet, seeded (here unless it is already), as a :class:`Lab` (the seeded wallets but the lender
    are tracked)."""
    wallets = {w.address: w.label for w in devnet.seed(info) if w.label != "lender"}
    return Lab(info, wallets, workdir)


@contextlib.contextmanager
def launch_lab(workdir: Path) -> Iterator[Lab]:
    """A private devnet, seeded, as a :class:`Lab`."""
    with devnet.Devnet.launch() as dn:
        yield lab_on(dn.info, workdir)


# --- results ------------------------------------------------------------------------------------------------------


@dataclass
class Loss:
    """Rows lost, by kind (see the module docstring), with a few examples."""

    missing: int = 0
    unexpected_error: int = 0
    wrong_hash: int = 0
    no_health: int = 0
    wrong_values: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.missing + self.unexpected_error + self.wrong_hash + self.no_health + self.wrong_values

    def add(self, kind: str, example: str) -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        if len(self.examples) < 5:
            self.examples.append(f"{kind}: {example}")

    def as_dict(self) -> dict[str, Any]:
        return {"missing": self.missing, "unexpected_error": self.unexpected_error, "wrong_hash": self.wrong_hash,
                "no_health": self.no_health, "wrong_values": self.wrong_values, "examples": list(self.examples)}


@dataclass(frozen=True)
class ScenarioResult:
    """What one run of a scenario did, what the user saw, and what the store lost (see the module docstring)."""

    name: str
    fault: str
    injected: int
    syncs: int
    survived: bool
    user_sees: str
    data_lost: int
    details: dict[str, Any]

    @property
    def failed_checks(self) -> list[str]:
        return [name for name, ok in self.details.get("checks", {}).items() if not ok]


@dataclass(frozen=True)
class Scenario:
    """A fault, how it is injected, and the function that runs it."""

    name: str
    fault: str
    how: str
    run: Callable[[Lab, int], ScenarioResult]


# --- one run of a scenario ------------------------------------------------------------------------------------------


def _short(text: str | None, limit: int = 110) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe(report: SyncReport) -> str:
    """One line: what a sync showed its user (venues ok, venues stale with their error, or the sync's failure)."""
    parts = []
    for batch in report.batches:
        if batch.block is None:
            parts.append(f"sync failed: {_short(batch.error)}")
            continue
        stale: dict[str, list[str]] = {}
        ok = []
        for r in batch.readings:
            if r.error is None:
                ok.append(r.venue)
            else:
                stale.setdefault(_short(r.error, 90), []).append(r.venue)
        text = [f"{', '.join(v)} stale: {e}" for e, v in stale.items()]
        if batch.status is SyncStatus.FAILED and batch.error and not stale:
            text.append(f"batch not stored: {_short(batch.error)}")
        text.append(f"{len(ok)} venues ok" if ok else "no venue ok")
        parts.append("; ".join(text))
    return " | ".join(parts) or "nothing synced"


class Trial:
    """One run of a scenario: its proxies, store and syncer, the syncs it made, its checks and details."""

    def __init__(self, lab: Lab, name: str, fault: str, seed: int, stack: contextlib.ExitStack, *,
                 fallback: bool = False, venues: Sequence[VenueConfig] | None = None, **chain: Any) -> None:
        self.lab = lab
        self.name = name
        self.fault = fault
        self.seed = seed
        self.rng = random.Random(f"{name}:{seed}")
        self.primary = stack.enter_context(FaultProxy(lab.info.rpc_url, seed=seed))
        self.fallback = stack.enter_context(FaultProxy(lab.info.rpc_url, seed=seed + 1)) if fallback else None
        self.extra_proxies: list[FaultProxy] = []
        self.store = lab.open_store(name)
        stack.callback(self.store.close)
        self.settings = lab.settings(self.primary.url, [self.fallback.url] if self.fallback else [], venues=venues,
                                     **{**FAST_CHAIN, **chain})
        self.syncer = Syncer(self.settings, self.store)
        stack.callback(self.syncer.close)
        self._stack = stack
        self._reference: tuple[Store, Syncer] | None = None
        self._references: dict[tuple[int, str], dict[tuple[str, str], StoredSnapshot]] = {}
        self.reports: list[SyncReport] = []
        self.syncs = 0
        self.extra_injected = 0
        self.checks: dict[str, bool] = {}
        self.details: dict[str, Any] = {"seed": seed}
        self.warm_run_id = 0
        self.warm_block: int | None = None
        self.allowed_stale: dict[int, set[str]] = {}
        self._retries_at_warm = 0

    # --- driving ----------------------------------------------------------------------------------------------------
    @property
    def proxies(self) -> list[FaultProxy]:
        return [p for p in (self.primary, self.fallback, *self.extra_proxies) if p is not None]

    def sync(self, *, mine: bool = True) -> SyncReport:
        """One :meth:`Syncer.run` of every tracked wallet, at a new block unless ``mine`` is false (a snapshot is
        stored once per (wallet, venue, block): a second sync of the same block stores nothing new); an exception
        escaping the sync is recorded as a failed check."""
        if mine:
            devnet.mine(self.lab.info, 1)
        self.syncs += 1
        try:
            report = self.syncer.run()
        except Exception as exc:
            self.check(f"sync {self.syncs} raised no exception", False)
            self.details.setdefault("exceptions", []).append(f"{type(exc).__name__}: {exc}")
            report = SyncReport()
        self.reports.append(report)
        self.details.setdefault("syncs", []).append({
            "status": [str(b.status) for b in report.batches],
            "block": [b.block.number if b.block else None for b in report.batches],
            "error": [b.error for b in report.batches],
            "seconds": round(report.seconds, 3),
            "user_sees": describe(report),
        })
        return report

    def warm_up(self) -> SyncReport:
        """A clean sync (discovery cached, previous data stored); counters start after it."""
        report = self.sync()
        self.check("warm-up sync ok", report.ok)
        runs = stored_runs(self.store)
        self.warm_run_id = runs[-1].id if runs else 0
        self.warm_block = report.batches[0].block.number if report.batches and report.batches[0].block else None
        for proxy in self.proxies:
            proxy.reset()
        self._retries_at_warm = self.retries()
        return report

    def retries(self) -> int:
        """HTTP retries of the chain's client since it opened."""
        stats = self.syncer.rpc_stats().get(CHAIN)
        return stats.http_retries if stats is not None else 0

    def retries_since_warm_up(self) -> int:
        return self.retries() - self._retries_at_warm

    def endpoints(self) -> list[dict[str, Any]]:
        return [{"url": e.url, "state": e.state, "failures": e.failures, "trips": e.trips, "requests": e.requests}
                for e in self.syncer.rpc_endpoints().get(CHAIN, [])]

    def clear_faults(self) -> None:
        for proxy in self.proxies:
            proxy.clear()

    @property
    def injected(self) -> int:
        return sum(sum(p.stats.faults.values()) for p in self.proxies) + self.extra_injected

    def check(self, name: str, ok: bool) -> bool:
        self.checks[name] = self.checks.get(name, True) and bool(ok)
        return bool(ok)

    def allow_stale(self, report: SyncReport, venues: Iterable[str]) -> None:
        """The venues whose reads the fault was aimed at, in ``report``'s block: an error snapshot there is the
        correct answer, not loss."""
        for batch in report.batches:
            if batch.block is not None:
                self.allowed_stale.setdefault(batch.block.number, set()).update(venues)

    # --- observing --------------------------------------------------------------------------------------------------
    def stale_venues(self, report: SyncReport) -> dict[str, str]:
        """Venue → error of the readings that failed in ``report``."""
        return {r.venue: r.error for b in report.batches for r in b.readings if r.error is not None}

    def runs_after_warm_up(self) -> list[StoredRun]:
        return stored_runs(self.store, self.warm_run_id)

    def reference(self, number: int) -> dict[tuple[str, str], StoredSnapshot]:
        """What a clean sync of the lab's wallets and venues stores at block ``number``: straight to the devnet, into
        a store of its own (one per trial, the blocks of one trial being distinct); cached per (number, hash)."""
        key = (number, self.lab.canonical_hash(number))
        if key not in self._references:
            if self._reference is None:
                store = self.lab.open_store(f"{self.name}-reference")
                self._stack.callback(store.close)
                syncer = Syncer(self.lab.base, store)
                self._stack.callback(syncer.close)
                self._reference = (store, syncer)
            store, syncer = self._reference
            syncer.run(block_number=number)
            self._references[key] = {s.key: s for s in stored_snapshots(store, block_number=number)}
        return self._references[key]

    def loss_against_reference(self) -> Loss:
        """Every block stored after the warm-up against a clean sync at the same block (see the module docstring)."""
        loss = Loss()
        blocks = sorted({r.block_number for r in self.runs_after_warm_up()
                         if r.block_number is not None and r.status != SyncStatus.FAILED.value})
        for number in blocks:
            canonical = self.lab.canonical_hash(number)
            reference = self.reference(number)
            stored = {s.key: s for s in stored_snapshots(self.store, block_number=number)}
            allowed = self.allowed_stale.get(number, set())
            bad_hash = set()
            for key, snap in stored.items():
                where = f"{self.lab.label(key[0])}/{key[1]} at {number}"
                if snap.block_hash != canonical:
                    bad_hash.add(key)
                    loss.add("wrong_hash", f"{where}: {snap.block_hash[:10]} is not canonical {canonical[:10]}")
                elif snap.status == "ok" and not snap.has_health:
                    loss.add("no_health", where)
            for key, ref in reference.items():
                if ref.status != "ok" or not ref.has_health or key in bad_hash:
                    continue
                where = f"{self.lab.label(key[0])}/{key[1]} at {number}"
                found = stored.get(key)
                if found is None:
                    loss.add("missing", where)
                elif found.status != "ok":
                    if key[1] not in allowed:
                        loss.add("unexpected_error", f"{where}: {_short(found.error, 80)}")
                elif found.has_health and not found.same_values(ref):
                    loss.add("wrong_values", where)
        self.details["checked_blocks"] = blocks
        return loss

    def loss_against_warm_up(self, blocks: Iterable[int]) -> Loss:
        """Every (wallet, venue) the warm-up stored healthily must be stored ``ok`` with a health at ``blocks``."""
        loss = Loss()
        assert self.warm_block is not None
        before = {s.key: s for s in stored_snapshots(self.store, block_number=self.warm_block)}
        for number in sorted(set(blocks)):
            canonical = self.lab.canonical_hash(number)
            stored = {s.key: s for s in stored_snapshots(self.store, block_number=number)}
            for key, ref in before.items():
                if ref.status != "ok" or not ref.has_health:
                    continue
                where = f"{self.lab.label(key[0])}/{key[1]} at {number}"
                snap = stored.get(key)
                if snap is None:
                    loss.add("missing", where)
                elif snap.block_hash != canonical:
                    loss.add("wrong_hash", where)
                elif snap.status != "ok":
                    loss.add("unexpected_error", f"{where}: {_short(snap.error, 80)}")
                elif not snap.has_health:
                    loss.add("no_health", where)
        self.details["checked_blocks"] = sorted(set(blocks))
        return loss

    def result(self, user_sees: str, loss: Loss | None = None) -> ScenarioResult:
        loss = loss if loss is not None else self.loss_against_reference()
        problems = store_problems(self.store)
        self.check("the store whole: no half-stored snapshot, one block per run", not problems)
        if problems:
            self.details["store_problems"] = problems[:5]
        self.details.update({
            "checks": dict(self.checks), "loss": loss.as_dict(), "endpoints": self.endpoints(),
            "faults": dict(sum((Counter(p.stats.faults) for p in self.proxies), Counter())),
            "retries": self.retries_since_warm_up(),
        })
        return ScenarioResult(name=self.name, fault=self.fault, injected=self.injected, syncs=self.syncs,
                              survived=all(self.checks.values()), user_sees=user_sees, data_lost=loss.total,
                              details=self.details)


@contextlib.contextmanager
def trial(lab: Lab, name: str, seed: int, *, fallback: bool = False, venues: Sequence[VenueConfig] | None = None,
          **chain: Any) -> Iterator[Trial]:
    """A :class:`Trial` inside an isolated devnet snapshot (taken before the proxies start: see the proxy's floor)."""
    with lab.isolated(), contextlib.ExitStack() as stack:
        yield Trial(lab, name, SCENARIO_FAULTS.get(name, name), seed, stack, fallback=fallback, venues=venues,
                    **chain)


# --- scenario helpers ---------------------------------------------------------------------------------------------


def _all_ok(t: Trial, reports: Sequence[SyncReport], what: str = "every faulted sync ok") -> bool:
    return t.check(what, all(r.ok and r.batches for r in reports))


def _ok_sees(t: Trial, reports: Sequence[SyncReport], note: str) -> str:
    """``note`` when every sync was ok; else what the first sync that was not showed."""
    bad = [r for r in reports if not (r.ok and r.batches)]
    if not bad:
        return f"every sync ok, all {len(t.lab.venues)} venues fresh; {note}"
    return f"{describe(bad[0])} ({len(bad)} of {len(reports)} faulted syncs)"


def _bursts(t: Trial, make: Callable[[int, int], Fault], *, count: int, max_len: int, start: int = 1) -> None:
    """Add ``count`` bursts of consecutive faults at seeded, disjoint positions (at most ``max_len`` in a row, so a
    call's retries always outlast a burst): ``make(after, length)`` builds each rule."""
    position = start
    for _ in range(count):
        position += t.rng.randint(0, 3)
        length = t.rng.randint(1, max_len)
        t.primary.add(make(position, length))
        position += length + 1


class _CountingMulticall(Multicall):
    """A Multicall3 reader that counts its rounds (one :meth:`execute` per read round)."""

    rounds = 0

    def execute(self, calls: Sequence[Call], block: Any, *, strict: bool = True) -> list[CallResult]:
        self.rounds += 1
        return super().execute(calls, block, strict=strict)


def venue_rounds(lab: Lab) -> dict[str, int]:
    """How many read rounds (``eth_call`` round trips) each on-chain venue's program takes now, discovery cached —
    what decides which venues' calls share the k-th ``eth_call`` of a sync."""
    ctx = ChainContext.open(lab.base, lab.base.chains[0])
    try:
        block = ctx.rpc.get_block("latest")
        out: dict[str, int] = {}
        for venue in ctx.onchain:
            for _ in range(2):  # the first run discovers (Aave's addresses), the second is what a warm sync does
                counting = _CountingMulticall(ctx.rpc)
                run_programs(counting, {venue.config.name: venue.connector.program(list(lab.wallets), block)}, block)
            out[venue.config.name] = counting.rounds
        return out
    finally:
        ctx.close()


# --- transport faults -----------------------------------------------------------------------------------------------


def _latency(lab: Lab, seed: int) -> ScenarioResult:
    with trial(lab, "latency", seed) as t:
        t.warm_up()
        delay = round(t.rng.uniform(0.1, 0.3), 3)
        t.primary.add(Fault.latency(delay))
        reports = [t.sync(), t.sync()]
        _all_ok(t, reports)
        t.check(f"no retry (every answer inside the {DEADLINE_S:g} s deadline)", t.retries_since_warm_up() == 0)
        t.details["latency_s"] = delay
        return t.result(_ok_sees(t, reports, f"{delay:.2f} s slower per request, no retry"))


def _timeouts(lab: Lab, seed: int) -> ScenarioResult:
    with trial(lab, "timeouts", seed) as t:
        t.warm_up()
        n = t.rng.randint(1, 2)
        t.primary.add(Fault.timeout(hold_s=1.5 * DEADLINE_S, times=n, after=t.rng.randint(0, 4)))
        reports = [t.sync(), t.sync()]
        _all_ok(t, reports)
        t.check("each timeout retried", t.retries_since_warm_up() == t.injected == n)
        return t.result(_ok_sees(t, reports, f"{n} request(s) timed out after {DEADLINE_S:g} s and were retried"))


def _trickle(lab: Lab, seed: int) -> ScenarioResult:
    with trial(lab, "trickle", seed) as t:
        t.warm_up()
        t.primary.add(Fault.trickle(1.5 * DEADLINE_S, times=1, after=t.rng.randint(0, 4)))
        reports = [t.sync(), t.sync()]
        _all_ok(t, reports)
        t.check("the trickled answer hit the total deadline and was retried", t.retries_since_warm_up() == 1)
        sees = f"an answer trickled past the {DEADLINE_S:g} s total deadline was retried"
        return t.result(_ok_sees(t, reports, sees))


def _http_429(lab: Lab, seed: int) -> ScenarioResult:
    with trial(lab, "http_429", seed) as t:
        t.warm_up()
        n = t.rng.randint(2, 3)
        wait = 0.5
        t.primary.add(Fault.http_429(retry_after=wait, times=n, after=t.rng.randint(0, 4)))
        reports = [t.sync(), t.sync()]
        _all_ok(t, reports)
        t.check("each 429 retried", t.retries_since_warm_up() == t.injected == n)
        waited = sum(r.seconds for r in reports)
        t.check("Retry-After honoured (the syncs took at least n × Retry-After)", waited >= n * wait)
        t.details["waited_s"] = round(waited, 3)
        return t.result(_ok_sees(t, reports, f"{n} × HTTP 429 waited out (Retry-After {wait:g} s)"))


def _rate_limit_error(lab: Lab, seed: int) -> ScenarioResult:
    with trial(lab, "rate_limit_error", seed) as t:
        t.warm_up()
        n = t.rng.randint(1, 3)
        t.primary.add(Fault.error_object(-32005, "daily request count exceeded, request rate limited",
                                         times=n, methods={"eth_call"}, after=t.rng.randint(0, 3)))
        reports = [t.sync(), t.sync()]
        _all_ok(t, reports)
        t.check("each rate-limit error retried", t.retries_since_warm_up() == t.injected == n)
        return t.result(_ok_sees(t, reports, f"{n} × JSON-RPC -32005 'rate limited' retried"))


def _http_5xx_bursts(lab: Lab, seed: int) -> ScenarioResult:
    with trial(lab, "http_5xx_bursts", seed) as t:
        t.warm_up()
        statuses = [500, 502, 503, 504]
        _bursts(t, lambda after, n: Fault.http_5xx(t.rng.choice(statuses), times=n, after=after), count=3,
                max_len=FAST_CHAIN["max_retries"])
        reports = [t.sync(), t.sync()]
        _all_ok(t, reports)
        t.check("every 5xx retried", t.retries_since_warm_up() == t.injected)
        return t.result(_ok_sees(t, reports, f"{t.injected} × HTTP 5xx in bursts, each retried"))


def _dropped_connections(lab: Lab, seed: int) -> ScenarioResult:
    with trial(lab, "dropped_connections", seed) as t:
        t.warm_up()
        _bursts(t, lambda after, n: Fault.drop_connection(reset=t.rng.random() < 0.5, times=n, after=after),
                count=3, max_len=2)
        reports = [t.sync(), t.sync()]
        _all_ok(t, reports)
        t.check("every dropped connection retried", t.retries_since_warm_up() == t.injected)
        return t.result(_ok_sees(t, reports, f"{t.injected} connection(s) closed or reset without an answer, "
                                             "each retried"))


def _truncated_connection(lab: Lab, seed: int) -> ScenarioResult:
    with trial(lab, "truncated_connection", seed) as t:
        t.warm_up()
        _bursts(t, lambda after, n: Fault.truncated_json(full_length=True, times=n, after=after), count=2, max_len=2)
        reports = [t.sync(), t.sync()]
        _all_ok(t, reports)
        t.check("every cut answer retried", t.retries_since_warm_up() == t.injected)
        return t.result(_ok_sees(t, reports, f"{t.injected} answer(s) cut mid-body (connection closed), "
                                             "each retried"))


# --- failover ---------------------------------------------------------------------------------------------------


def _failover(lab: Lab, seed: int, name: str, fault: Callable[[Trial], Fault], note: str,
              primary_opens: bool = True) -> ScenarioResult:
    with trial(lab, name, seed, fallback=True, max_retries=1) as t:
        t.warm_up()
        before = t.endpoints()
        t.primary.add(fault(t))
        started = time.perf_counter()
        reports = [t.sync(), t.sync()]
        elapsed = time.perf_counter() - started
        _all_ok(t, reports)
        after = t.endpoints()
        assert t.fallback is not None
        t.check("the fallback answered", after[1]["requests"] > before[1]["requests"])
        if primary_opens:
            t.check("the primary's circuit breaker opened", after[0]["state"] == "open" and after[0]["trips"] >= 1)
            t.check("no request answered by the primary after the fault", after[0]["requests"] == before[0]["requests"])
        t.details["elapsed_s"] = round(elapsed, 3)
        t.details["endpoints_before"] = before
        state = after[0]["state"]
        return t.result(_ok_sees(t, reports, f"{note}; primary breaker {state}, "
                                             f"{after[1]['requests'] - before[1]['requests']} requests served by the "
                                             "fallback"))


def _failover_5xx(lab: Lab, seed: int) -> ScenarioResult:
    return _failover(lab, seed, "failover_5xx", lambda t: Fault.http_5xx(t.rng.choice([500, 502, 504])),
                     "primary answers 5xx forever, failed over")


def _failover_retry_after(lab: Lab, seed: int) -> ScenarioResult:
    result = _failover(lab, seed, "failover_retry_after", lambda t: Fault.http_5xx(503, retry_after=120),
                       "primary says 503 Retry-After 120 s, not waited for: failed over at once")
    elapsed = result.details["elapsed_s"]
    ok = elapsed < scaled(10.0)
    checks = {**result.details["checks"], "did not wait the 120 s Retry-After": ok}
    details = {**result.details, "checks": checks}
    return ScenarioResult(result.name, result.fault, result.injected, result.syncs, result.survived and ok,
                          result.user_sees, result.data_lost, details)


def _failover_malformed(lab: Lab, seed: int) -> ScenarioResult:
    return _failover(lab, seed, "failover_malformed_json",
                     lambda t: Fault.malformed_json(times=t.rng.randint(1, 3), methods={"eth_call"},
                                                    after=t.rng.randint(0, 3)),
                     "malformed JSON from the primary, the same request answered by the fallback", primary_opens=False)


def _failover_truncated(lab: Lab, seed: int) -> ScenarioResult:
    return _failover(lab, seed, "failover_truncated_json",
                     lambda t: Fault.truncated_json(times=t.rng.randint(1, 3), after=t.rng.randint(0, 4)),
                     "half an answer from the primary, the same request answered by the fallback",
                     primary_opens=False)


def _all_endpoints_down(lab: Lab, seed: int) -> ScenarioResult:
    reset_s = scaled(0.5)  # the open breakers' wait: longer than the checks below take, on a loaded machine too
    with trial(lab, "all_endpoints_down", seed, fallback=True, max_retries=1, breaker_reset_s=reset_s) as t:
        t.warm_up()
        assert t.fallback is not None
        served = {a: [(v.venue, v.snapshot_id) for v in t.store.latest_health(a)] for a in lab.wallets}
        counts = table_counts(t.store)
        t.primary.add(Fault.http_5xx(502))
        t.fallback.add(Fault.drop_connection(reset=True))
        failed = [t.sync() for _ in range(FAST_CHAIN["breaker_failures"])]
        # read as the outage's last sync ends: the store checks below can outlast the breakers' wait on a loaded
        # machine, and then they are half-open already (seen in CI)
        during = t.endpoints()
        errors = [b.error or "" for r in failed for b in r.batches]
        t.check("every sync during the outage failed as a whole",
                all(not r.ok and r.batches and all(b.block is None for b in r.batches) for r in failed))
        t.check("the failure says no endpoint answered", all("no RPC endpoint answered" in e for e in errors))
        after = table_counts(t.store)
        t.check("no data written during the outage, only the record of each failed attempt",
                after == {**counts, "sync_runs": counts["sync_runs"] + len(failed)})
        status = t.store.sync_status({lab.info.chain_id})
        t.check("the store says since when syncing fails and why",
                len(status) == 1 and status[0].failing_since is not None
                and "no RPC endpoint answered" in (status[0].last_error or ""))
        t.check("the previous data still served by latest_health",
                {a: [(v.venue, v.snapshot_id) for v in t.store.latest_health(a)] for a in lab.wallets} == served)
        t.check("both circuit breakers opened", all(e["state"] == "open" for e in during))
        t.clear_faults()
        time.sleep(1.2 * reset_s)  # past breaker_reset_s: half-open, one trial request each
        recovered = t.sync()
        t.check("the sync after recovery ok", recovered.ok)
        t.check("breakers closed again", t.endpoints()[0]["state"] == "closed")
        t.check("no longer failing after recovery", t.store.sync_status({lab.info.chain_id})[0].failing_since is None)
        t.details.update({"errors": errors, "endpoints_during": during})
        return t.result(f"{len(failed)} syncs failed: {_short(errors[0], 150)}; no data written (the failed attempts "
                        "recorded, with since when and why), previous snapshots still served; after recovery: "
                        + describe(recovered))


def _wrong_chain_id(lab: Lab, seed: int, fallback: bool) -> ScenarioResult:
    name = "wrong_chain_id_fallback" if fallback else "wrong_chain_id_alone"
    with trial(lab, name, seed, fallback=fallback, max_retries=1) as t:
        served_chain = t.rng.choice([1, 10, 137, 42161])
        # The chain check runs once per endpoint, before its first request: the fault is there from the start.
        t.primary.add(Fault.wrong_chain_id(served_chain))
        report = t.sync()
        t.details["served_chain_id"] = served_chain
        if fallback:
            t.check("the sync ok through the fallback", report.ok)
            endpoints = t.endpoints()
            t.check("the primary refused: its breaker held open, nothing it served",
                    endpoints[0]["state"] == "open" and endpoints[0]["requests"] == 0)
            t.check("the fallback served the sync", endpoints[1]["requests"] > 0)
            return t.result(_ok_sees(t, [report], f"the primary (chain id {served_chain}) refused, the fallback "
                                                  "served"))
        expected = f"serves chain id {served_chain}, not the configured chain id {lab.info.chain_id}"
        error = report.batches[0].error if report.batches else None
        t.check("the sync failed with the mismatch", bool(report.batches) and not report.ok
                and expected in (error or ""))
        t.check("no data written, only the failed attempt",
                table_counts(t.store) == {**dict.fromkeys(COUNTED_TABLES, 0), "sync_runs": 1})
        status = t.store.sync_status({lab.info.chain_id})
        t.check("the store says why syncing fails", len(status) == 1 and expected in (status[0].last_error or ""))
        t.details["error"] = error
        return t.result(describe(report) + "; no data written (the failed attempt recorded with its reason)")


def _wrong_chain_id_fallback(lab: Lab, seed: int) -> ScenarioResult:
    return _wrong_chain_id(lab, seed, fallback=True)


def _wrong_chain_id_alone(lab: Lab, seed: int) -> ScenarioResult:
    return _wrong_chain_id(lab, seed, fallback=False)


# --- faults aimed at the venues' reads -------------------------------------------------------------------------------


def _stale_once(lab: Lab, seed: int, name: str, fault: Callable[[Trial, int], Fault],
                error_text: str) -> ScenarioResult:
    """A one-shot fault on one ``eth_call`` round of one sync (single endpoint), a round every on-chain venue reads in:
    the on-chain venues are stale for that sync with the fault's error, the off-chain venues stored, the next sync
    ok. (A round only some venues read in: ``error_object_last_round``.)"""
    with trial(lab, name, seed) as t:
        t.warm_up()
        k = t.rng.randrange(min(venue_rounds(lab).values()))
        t.primary.add(fault(t, k))
        faulted = t.sync()
        stale = t.stale_venues(faulted)
        t.allow_stale(faulted, lab.onchain)
        offchain = [v for v in lab.venues if v not in lab.onchain]
        t.check("the on-chain venues stale, with the fault's error",
                set(stale) == set(lab.onchain) and all(error_text in e for e in stale.values()))
        t.check("the off-chain venues stored", not set(offchain) & set(stale))
        t.check("the batch stored as partial",
                [b.status for b in faulted.batches] == [SyncStatus.PARTIAL] and faulted.batches[0].sync_run_id
                is not None)
        after = t.sync()
        t.check("the next sync ok", after.ok)
        t.details.update({"round": k, "stale": stale})
        return t.result(f"{describe(faulted)}; next sync: {describe(after)}")


def _malformed_alone(lab: Lab, seed: int) -> ScenarioResult:
    return _stale_once(lab, seed, "malformed_json_alone",
                       lambda t, k: Fault.malformed_json(times=1, methods={"eth_call"}, after=k), "malformed JSON")


def _wrong_id(lab: Lab, seed: int) -> ScenarioResult:
    return _stale_once(lab, seed, "wrong_id", lambda t, k: Fault.wrong_id(times=1, methods={"eth_call"}, after=k),
                       "matches no request")


def _empty_result(lab: Lab, seed: int) -> ScenarioResult:
    return _stale_once(lab, seed, "empty_result",
                       lambda t, k: Fault.empty_result(times=1, methods={"eth_call"}, after=k), "not hex")


def _error_object_round(lab: Lab, seed: int) -> ScenarioResult:
    return _stale_once(lab, seed, "error_object_round",
                       lambda t, k: Fault.error_object(-32000, "injected error", times=1, methods={"eth_call"},
                                                       after=k), "injected error")


def _error_object_last_round(lab: Lab, seed: int) -> ScenarioResult:
    """The last read round carries only the venues with the longest programs: a JSON-RPC error there is aimed at
    them; the venues whose programs already finished (all their reads answered) must still be stored."""
    with trial(lab, "error_object_last_round", seed) as t:
        t.warm_up()
        rounds = venue_rounds(lab)
        last = max(rounds.values()) - 1
        targeted = sorted(v for v, n in rounds.items() if n > last)
        finished = sorted(v for v, n in rounds.items() if n <= last)
        code, message = t.rng.choice([(-32000, "header not found"), (-32603, "internal error"),
                                      (-32000, "injected error")])
        t.primary.add(Fault.error_object(code, message, times=1, methods={"eth_call"}, after=last))
        faulted = t.sync()
        stale = t.stale_venues(faulted)
        t.allow_stale(faulted, targeted)
        t.check("the venues with reads in the faulted round stale, with the node's error",
                set(targeted) <= set(stale) and all(message in stale[v] for v in targeted))
        t.check("the venues whose reads had all been answered stored", not set(finished) & set(stale))
        t.check("the off-chain venues stored", not {v for v in lab.venues if v not in lab.onchain} & set(stale))
        after = t.sync()
        t.check("the next sync ok", after.ok)
        t.details.update({"rounds": rounds, "targeted": targeted, "finished": finished, "stale": stale})
        return t.result(f"{describe(faulted)}; next sync: {describe(after)}")


def _offchain_venue_down(lab: Lab, seed: int) -> ScenarioResult:
    """The fault aimed at one venue: a proxy in front of the perp API's ``/info`` that Hyperliquid reads answers 5xx."""
    perp_url = lab.info.services["perp_api"]
    with contextlib.ExitStack() as outer:
        api = outer.enter_context(FaultProxy(f"{perp_url}/info", seed=seed, reorg_floor=None))
        venues = [v.model_copy(update={"base_url": api.url}) if v.name == "hyperliquid" else v
                  for v in lab.base.venues]
        with trial(lab, "offchain_venue_down", seed, venues=venues) as t:
            t.extra_proxies.append(api)
            t.warm_up()
            status = t.rng.choice([500, 502, 503])
            api.add(Fault.http_5xx(status))
            faulted = t.sync()
            stale = t.stale_venues(faulted)
            t.allow_stale(faulted, ["hyperliquid"])
            t.check("only hyperliquid stale, with the HTTP status",
                    list(stale) == ["hyperliquid"] and f"HTTP {status}" in stale["hyperliquid"])
            api.clear()
            after = t.sync()
            t.check("the next sync ok", after.ok)
            t.details["stale"] = stale
            return t.result(f"{describe(faulted)}; next sync: {describe(after)}")


# --- reorgs ---------------------------------------------------------------------------------------------------------


def _reorg_mid_read(lab: Lab, seed: int) -> ScenarioResult:
    with trial(lab, "reorg_mid_read", seed) as t:
        t.warm_up()
        rounds = max(venue_rounds(lab).values())
        k = t.rng.randint(1, rounds + 1)  # before one of the eth_call rounds, or before the confirming block read
        t.primary.reorg_after(k)
        report = t.sync()  # at a block mined after the proxy started: above its reorg floor
        reorgs = t.primary.reorgs
        reorg = reorgs[0] if len(reorgs) == 1 else None
        block = report.batches[0].block if report.batches else None
        t.check("the sync ok", report.ok)
        t.check("a reorg happened during the reads", reorg is not None and block is not None
                and block.number in reorg.new_hashes)
        number = block.number if block else -1
        canonical = lab.canonical_hash(number) if block else ""
        run = next((r for r in t.runs_after_warm_up() if r.block_number == number), None)
        hashes = {s.block_hash for s in stored_snapshots(t.store, block_number=number)}
        t.check("the run stored at the new canonical hash", run is not None and run.block_hash == canonical
                and block is not None and block.hash == canonical)
        t.check("every snapshot of the run carries it (no mixed hashes)", hashes == {canonical})
        t.details.update({"reorg_before_request": k + 1, "old_hash": reorg.old_hashes.get(number) if reorg else None,
                          "new_hash": canonical, "snapshot_hashes": sorted(hashes)})
        return t.result(f"{describe(report)}; the run re-read at the new block {canonical[:10]}, every snapshot "
                        f"carries it" if hashes == {canonical} else f"{describe(report)}; hashes stored: "
                        f"{sorted(h[:10] for h in hashes)}, canonical {canonical[:10]}")


def _reorg_between_syncs(lab: Lab, seed: int) -> ScenarioResult:
    """A reorg that replaces the block the previous sync stored, before the chain grows: the next sync reads the same
    height at its new hash."""
    with trial(lab, "reorg_between_syncs", seed) as t:
        t.warm_up()
        first = t.sync()
        t.primary.add(Fault.reorg(1, times=1))  # before the next request: the next sync's first block read
        second = t.sync(mine=False)
        number = second.batches[0].block.number if second.batches and second.batches[0].block else -1
        canonical = lab.canonical_hash(number)
        t.check("both syncs ok", first.ok and second.ok)
        t.check("the second sync read the same height at the new hash",
                first.batches[0].block is not None and first.batches[0].block.number == number
                and second.batches[0].block is not None and second.batches[0].block.hash == canonical)
        served = {v.snapshot.block_hash for a in lab.wallets for v in t.store.latest_health(a)}
        t.check("latest_health serves the canonical block", served == {canonical})
        t.details.update({"block": number, "canonical": canonical, "served_hashes": sorted(served)})
        return t.result(f"{describe(second)}; latest_health serves block {number} at "
                        f"{', '.join(sorted(h[:10] for h in served))} (canonical {canonical[:10]})")


def _resync_same_block(lab: Lab, seed: int) -> ScenarioResult:
    """A sync whose on-chain reads failed (a JSON-RPC error), then a clean sync of the same block before the chain
    grows: the clean reads must replace the stale snapshots."""
    with trial(lab, "resync_same_block", seed) as t:
        t.warm_up()
        t.primary.add(Fault.error_object(-32000, "injected error", times=1, methods={"eth_call"}))
        faulted = t.sync()
        clean = t.sync(mine=False)
        number = clean.batches[0].block.number if clean.batches and clean.batches[0].block else -1
        t.check("the faulted sync marked the on-chain venues stale", set(t.stale_venues(faulted)) == set(lab.onchain))
        t.check("the clean resync read every venue", clean.ok)
        served = Counter(v.snapshot.status for a in lab.wallets for v in t.store.latest_health(a))
        t.check("latest_health serves the clean reads", set(served) == {"ok"})
        t.details.update({"block": number, "served_statuses": dict(served)})
        return t.result(f"{describe(faulted)}; resync of block {number}: {describe(clean)}; latest_health serves "
                        + ", ".join(f"{n} {s}" for s, n in sorted(served.items())) + " snapshot(s)")


# --- oracle faults ----------------------------------------------------------------------------------------------------


def _feed(lab: Lab, symbol: str) -> str:
    return lab.info.contract(devnet.feed_name(symbol))


def _holdings(t: Trial, asset: str) -> set[tuple[str, str]]:
    """(wallet, venue) pairs whose newest healthy snapshot holds ``asset`` (an address)."""
    out = set()
    for wallet in t.lab.wallets:
        for item in t.store.latest_health(wallet):
            if item.health is not None and any(p.asset.address.lower() == asset.lower()
                                               for p in item.snapshot.positions):
                out.add((wallet, item.venue))
    return out


def _oracle(lab: Lab, seed: int, name: str, flag: str, candidates: Sequence[str],
            inject: Callable[[Trial, str], None]) -> ScenarioResult:
    """An oracle fault on the devnet's own feed of one asset: the price flagged, the healths holding it flagged
    ``bad_oracle`` (and no other), every venue still stored, one ``oracle_invalid`` alert."""
    with trial(lab, name, seed) as t:
        symbol = t.rng.choice(list(candidates))
        asset = lab.info.tokens[symbol]
        t.warm_up()
        holders = _holdings(t, asset)
        t.check(f"some wallet holds {symbol}", bool(holders))
        wallet = min((w for w, _ in holders), key=lab.label, default=next(iter(lab.wallets)))
        t.store.add_rule(wallet, "oracle_invalid", {}, now=datetime.now(UTC))
        engine = AlertEngine(t.store, [LogSink()])
        _, fired_clean = engine.evaluate()
        t.check("no alert before the fault", not fired_clean)
        inject(t, symbol)
        faulted = t.sync()
        _, fired = engine.evaluate()
        prices = [p for p in t.store.latest_prices(lab.info.chain_id)
                  if p.asset.symbol == symbol and p.source == ORACLE_SOURCE]
        latest = {(w, item.venue) for w in lab.wallets for item in t.store.latest_health(w)
                  if item.health is not None and "bad_oracle" in item.health.flags}
        again = t.sync()
        _, fired_again = engine.evaluate()
        deliveries = engine.deliver()
        engine.close()
        t.check(f"{symbol}'s price flagged {flag} in latest_prices", any(flag in p.flags for p in prices))
        t.check(f"latest_health: exactly the healths holding {symbol} flagged bad_oracle",
                bool(holders) and latest == holders)
        alerts = [a for a in t.store.list_alerts(wallet) if a.payload.get("kind") == "oracle_invalid"]
        t.check("the oracle_invalid rule fired exactly one alert (latched on the next sync)",
                len(fired) == 1 and not fired_again and len(alerts) == 1)
        t.check("the alert delivered to the log sink", bool(deliveries) and all(r.ok for _, rs in deliveries
                                                                                for r in rs))
        stale = t.stale_venues(faulted)
        t.check("no venue stale", not stale)
        t.details.update({
            "symbol": symbol, "flag": flag, "price_flags": [list(p.flags) for p in prices],
            "holders": sorted(f"{lab.label(w)}/{v}" for w, v in holders),
            "bad_oracle": sorted(f"{lab.label(w)}/{v}" for w, v in latest),
            "alerts": [a.message for a in alerts], "stale": stale,
        })
        blocks = [b.block.number for r in (faulted, again) for b in r.batches if b.block]
        loss = t.loss_against_warm_up(blocks)
        if stale:
            sees = describe(faulted) + f"; {len(alerts)} alert(s)"
        else:
            price_flags = sorted({f for p in prices for f in p.flags})
            sees = (f"{symbol} price flagged {'/'.join(price_flags) or 'nothing'}; {len(latest)} health(s) flagged "
                    f"bad_oracle ({', '.join(sorted(f'{lab.label(w)}/{v}' for w, v in latest))}); "
                    f"{len(alerts)} oracle_invalid alert(s)")
        return t.result(sees, loss)


def _oracle_zero(lab: Lab, seed: int) -> ScenarioResult:
    def inject(t: Trial, symbol: str) -> None:
        devnet.transact(lab.info, devnet.ADMIN, _feed(lab, symbol), "updateAnswer(int256)", 0)
        t.extra_injected += 1

    return _oracle(lab, seed, "oracle_zero", "zero", ["LINK", "AAVE"], inject)


def _oracle_negative(lab: Lab, seed: int) -> ScenarioResult:
    def inject(t: Trial, symbol: str) -> None:
        answer = -t.rng.randint(1, 100) * 10**8
        devnet.transact(lab.info, devnet.ADMIN, _feed(lab, symbol), "updateAnswer(int256)", answer)
        t.extra_injected += 1

    return _oracle(lab, seed, "oracle_negative", "negative", ["LINK", "AAVE"], inject)


def _oracle_stale(lab: Lab, seed: int) -> ScenarioResult:
    def inject(t: Trial, symbol: str) -> None:
        # Past the heartbeat, then every other feed posts again: only ``symbol``'s answer is old.
        devnet.increase_time(lab.info, DEFAULT_HEARTBEAT_S + t.rng.randint(60, 3_600))
        for other in lab.info.tokens:
            if other != symbol:
                answer = devnet.latest_round(lab.info, other).answer_raw
                devnet.transact(lab.info, devnet.ADMIN, _feed(lab, other), "updateAnswer(int256)", answer)
        t.extra_injected += 1

    return _oracle(lab, seed, "oracle_stale", "stale", ["LINK", "AAVE"], inject)


def _oracle_jump(lab: Lab, seed: int) -> ScenarioResult:
    def inject(t: Trial, symbol: str) -> None:
        before = devnet.latest_round(lab.info, symbol).price_usd
        drop = Decimal(str(round(t.rng.uniform(0.55, 0.7), 3)))
        devnet.set_price(lab.info, symbol, before * (1 - drop))
        t.details["jump"] = f"{symbol} {before:.0f} → {before * (1 - drop):.0f} (−{drop:.1%})"
        t.extra_injected += 1

    return _oracle(lab, seed, "oracle_jump", "jump", ["WETH"], inject)


# --- the catalogue ----------------------------------------------------------------------------------------------------

SCENARIOS: tuple[Scenario, ...] = (
    Scenario("latency", "latency under the timeout", "every request delayed 0.1–0.3 s (deadline 1 s)", _latency),
    Scenario("timeouts", "timeouts", "1–2 requests held past the 1 s timeout, then answered", _timeouts),
    Scenario("trickle", "answer trickled past the deadline", "one answer sent in pieces over 1.5 s (deadline 1 s)",
             _trickle),
    Scenario("http_429", "HTTP 429 with Retry-After", "2–3 consecutive 429s with Retry-After: 0.5", _http_429),
    Scenario("rate_limit_error", "JSON-RPC rate-limit error", "1–3 eth_call answers replaced by error -32005",
             _rate_limit_error),
    Scenario("http_5xx_bursts", "HTTP 5xx bursts", "3 bursts of 1–3 consecutive 500/502/503/504", _http_5xx_bursts),
    Scenario("dropped_connections", "dropped connections", "3 bursts of 1–2 requests closed (FIN) or reset (RST) "
             "without an answer", _dropped_connections),
    Scenario("truncated_connection", "answer cut mid-body", "2 bursts of 1–2 answers cut in half with the full "
             "Content-Length declared", _truncated_connection),
    Scenario("failover_5xx", "primary 5xx forever, fallback healthy", "primary answers 500/502/504 to everything",
             _failover_5xx),
    Scenario("failover_retry_after", "primary 503 with a long Retry-After", "primary answers 503 Retry-After: 120 "
             "to everything", _failover_retry_after),
    Scenario("failover_malformed_json", "malformed JSON (with a fallback)", "1–3 eth_call answers of the primary "
             "replaced by broken JSON", _failover_malformed),
    Scenario("failover_truncated_json", "truncated JSON (with a fallback)", "1–3 answers of the primary cut in half",
             _failover_truncated),
    Scenario("all_endpoints_down", "all endpoints down", "primary 502 and fallback RST on every request for 3 syncs, "
             "then healthy", _all_endpoints_down),
    Scenario("wrong_chain_id_fallback", "wrong chain id on the primary (with a fallback)", "the primary's eth_chainId "
             "answers 1/10/137/42161", _wrong_chain_id_fallback),
    Scenario("wrong_chain_id_alone", "wrong chain id (no fallback)", "the only endpoint's eth_chainId answers "
             "1/10/137/42161", _wrong_chain_id_alone),
    Scenario("malformed_json_alone", "malformed JSON (no fallback)", "one eth_call round (all on-chain venues read in "
             "it) answered by broken JSON", _malformed_alone),
    Scenario("wrong_id", "answer with a wrong id", "one eth_call round (all on-chain venues read in it) answered with "
             "an id never sent", _wrong_id),
    Scenario("empty_result", "null result", "one eth_call round (all on-chain venues read in it) answered "
             "\"result\": null", _empty_result),
    Scenario("error_object_round", "JSON-RPC error on a read round", "one eth_call round (all on-chain venues read in "
             "it) answered by a -32000 error object", _error_object_round),
    Scenario("error_object_last_round", "JSON-RPC error on one venue's last reads", "the last eth_call round (only "
             "the venues with the longest read programs) answered by an error object", _error_object_last_round),
    Scenario("offchain_venue_down", "one venue's API down", "Hyperliquid's /info answers 500/502/503 to everything",
             _offchain_venue_down),
    Scenario("reorg_mid_read", "reorg in the middle of the reads", "anvil_reorg of the synced block before one of "
             "the sync's requests", _reorg_mid_read),
    Scenario("reorg_between_syncs", "reorg of the stored block", "anvil_reorg of the block the previous sync stored, "
             "before the chain grows", _reorg_between_syncs),
    Scenario("resync_same_block", "stale snapshots, then a clean read of the same block", "the first eth_call "
             "round answered by an error object, then a sync of the same block without faults", _resync_same_block),
    Scenario("oracle_zero", "oracle answers zero", "a Chainlink feed (LINK or AAVE) set to 0", _oracle_zero),
    Scenario("oracle_negative", "oracle answers a negative price", "a Chainlink feed (LINK or AAVE) set below 0",
             _oracle_negative),
    Scenario("oracle_stale", "stale oracle", "chain time moved past the 1 h heartbeat; every feed but one "
             "(LINK or AAVE) posts again", _oracle_stale),
    Scenario("oracle_jump", "oracle price jump", "WETH moved down 55–70 % between two syncs (bound 50 %)",
             _oracle_jump),
)
SCENARIO_FAULTS: dict[str, str] = {s.name: s.fault for s in SCENARIOS}
BY_NAME: dict[str, Scenario] = {s.name: s for s in SCENARIOS}


def run_scenario(name: str, lab: Lab, seed: int = 0) -> ScenarioResult:
    """Run scenario ``name`` once with ``seed``; its duration goes into ``details["seconds"]``."""
    began = time.perf_counter()
    result = BY_NAME[name].run(lab, seed)
    result.details["seconds"] = round(time.perf_counter() - began, 3)
    return result


def summary(results: Iterable[ScenarioResult]) -> Mapping[str, Any]:
    """Totals over several results of one scenario."""
    items = list(results)
    return {"runs": len(items), "injected": sum(r.injected for r in items), "syncs": sum(r.syncs for r in items),
            "survived": sum(r.survived for r in items), "data_lost": sum(r.data_lost for r in items)}
