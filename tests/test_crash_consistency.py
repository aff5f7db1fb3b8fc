"""Crash consistency of ``xmargin run`` (issue 7, item 4): ``kill -9`` during a sync and during a store write leaves
the store consistent — no partial snapshot, no orphan row — and a restart resumes the schedule without a duplicate
alert or keeper plan.

The campaign (:func:`run_crash_campaign`, also called by the docs generator to tabulate "fault, how often, survived,
data lost"):

* a private devnet with ~400 wallets holding positions on Aave v3, Morpho Blue and Uniswap v3 (the benchmark's
  seeding), mining a block every second as a live chain does; the config the devnet writes (its on-chain venues:
  the local perp API answers one request per wallet in ~45 ms, too slow for this many wallets), batches of 200
  wallets (one store write of 600 snapshots with their positions, health and risk rows takes ~100-500 ms), an alert
  rule that holds on the current state and a dry-run keeper that plans for the hedged wallet at every sync;
* ``xmargin -v run --interval 1`` started again and again as its own process group, its INFO log (stderr) to a
  file, and killed with ``SIGKILL`` at a seeded random moment steered by that log: just after a "writing a batch"
  line (inside the write), during the reads of a batch, after the last batch (alerts and keeper), between cycles,
  or at a random time after the start. Each kill is classified from the log afterwards;
* after every kill, the store is checked directly with SQL against a clean in-process sync of the same wallets:
  every ``ok``/``partial`` sync run holds exactly its batch's snapshots (wallets × venues), every snapshot its
  positions (as many as the clean sync stored for that wallet and venue) and one health row, every run its prices
  and risk rows; no orphan rows; SQLite's ``integrity_check`` and ``foreign_key_check`` pass; every run the log says
  was stored is there; one alert per (rule, episode), the rule fired at most once; one keeper plan per sync;
* finally ``xmargin run`` is restarted and must complete two clean cycles at newer blocks; the rule has fired
  exactly once over all restarts and its alert is delivered.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import devnet
from aggregator.alerts.engine import check_rule
from aggregator.config import Settings, write_settings_toml
from aggregator.devnet_cli import devnet_settings
from aggregator.pipeline import sync_once
from db import Store
from devnet.evm import rpc

pytestmark = [pytest.mark.chain, pytest.mark.slow]

HEDGED = devnet.wallet_address("hedged")
SEED_WALLETS = tuple(devnet.wallet_address(label) for label in devnet.SEED_LABELS if label != "lender")
WALLETS = 400
"""Tracked wallets: the seed wallets and benchmark wallets up to this many."""
BATCH = 200
"""``wallet_batch_size``: two batches (two store writes) per sync."""
RULE_THRESHOLD = 2.0
"""The hedged wallet's Aave health is ~1.65 at the devnet's prices: the rule fires at the first evaluation."""
KEEPER_TARGET, KEEPER_OFFSET = 1.8, 0.1
"""Above the hedged wallet's health: the dry-run keeper plans (and simulates) at every sync."""
START_TIMEOUT_S = 60.0
PHASES = ("startup", "read", "write", "post_sync", "idle")
FAULTS = {
    "write": "kill -9 during a store write",
    "read": "kill -9 during a sync, reading (no write in flight)",
    "post_sync": "kill -9 after the sync (alert rules, keeper, delivery)",
    "idle": "kill -9 between cycles",
    "startup": "kill -9 while starting (before the first sync)",
}
TARGETS = ("write", "read", "write", "idle", "read", "post_sync", "write", "random")
"""What the kills aim at, in turn (the log decides what they hit)."""

_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")
_WRITING = re.compile(r"writing a batch of (\d+) wallets at block (\d+) \((\d+) snapshots\)")
_STORED = re.compile(r"stored sync run (\d+) \(block (\d+)\)")
_NOT_STORED = re.compile(r"batch of \d+ wallets at block \d+ not stored")
_RUNNING = re.compile(r'Running job "')
_DONE = re.compile(r'Job ".*" (executed successfully|raised an exception)')
_ALERT_LINE = re.compile(r"xmargin\.alerts: alert venue_health_below ")


# --- the chain ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CrashChain:
    """A running devnet with the campaign's wallets (in the order they are tracked, which fixes the batches)."""

    info: devnet.DevnetInfo
    wallets: tuple[str, ...]
    setup_s: float


@contextmanager
def crash_devnet(n_wallets: int = WALLETS, seed: int = 7) -> Iterator[CrashChain]:
    """A private devnet with ``n_wallets`` wallets holding positions on every on-chain venue, mining a block a
    second."""
    # the benchmark's seeding (not a package: imported lazily)
    from benchmarks.bench_sync import bench_parts, onchain_config, setup_wallets

    t0 = time.perf_counter()
    with devnet.Devnet.launch() as dn:
        _, venues = onchain_config(devnet_settings(dn.info))
        wallets, _ = setup_wallets(dn.info, bench_parts(venues), n_wallets - len(SEED_WALLETS), seed)
        rpc(dn.info, "evm_setIntervalMining", [1])  # a live chain: every sync (and every restart) sees a new block
        yield CrashChain(dn.info, (*SEED_WALLETS, *wallets), time.perf_counter() - t0)


def campaign_settings(chain: CrashChain, batch_size: int = BATCH) -> Settings:
    """The devnet's on-chain venues (the perp API serves one wallet per request: too slow for this many)."""
    onchain = dataclasses.replace(chain.info, services={})
    return devnet_settings(onchain).model_copy(update={"wallet_batch_size": batch_size, "interval_s": 1.0})


AUTOMATION_TOML = f"""
[alerts]
log = true

[keeper]
enabled = true
execute = false
wallets = ["{HEDGED}"]

[keeper.default_target]
target = {KEEPER_TARGET}
offset = {KEEPER_OFFSET}
"""
"""The campaigns' log sink and dry-run keeper, appended to the devnet's config."""


def write_config(settings: Settings, path: Path) -> None:
    """The config file as ``xmargin devnet up`` writes it, plus the batch size, the log sink and a dry-run keeper."""
    write_settings_toml(settings, path)
    # sync_mode = "cycle" (block mode is the default) and [store] change_only = false: the checks below hold every
    # committed run to its whole batch of snapshots (one per wallet and venue), which is the full-rewrite layout; the
    # change-only store under kill -9 is the block campaign's (tests/test_crash_blocks.py).
    head = f'wallet_batch_size = {settings.wallet_batch_size}\nsync_mode = "cycle"\n'
    path.write_text(head + path.read_text() + """
[store]
change_only = false
""" + AUTOMATION_TOML)


def prepare_store(url: str, wallets: Sequence[str]) -> int:
    """Track ``wallets`` (in order) and add the alert rule; returns the rule's id."""
    with Store.open(url) as store:
        store.add_wallets([(w, None) for w in wallets])
        params = check_rule("venue_health_below", {"venue": "aave_v3", "threshold": RULE_THRESHOLD})
        rule = store.add_rule(HEDGED, "venue_health_below", params, hysteresis=0.05, severity="critical",
                              now=datetime.now(UTC))
        return rule.id


# --- the store, read with SQL ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SnapshotFacts:
    run_id: int
    block: int
    status: str
    wallet: str
    venue: str
    positions: int
    health: int


@dataclass(frozen=True)
class StoreFacts:
    """Everything the checks compare, read in one go."""

    runs: dict[int, dict[str, Any]]
    snapshots: list[SnapshotFacts]
    prices: Counter[int]
    risks: dict[int, set[str]]
    orphans: dict[str, int]
    mismatched: dict[str, int]
    integrity: list[str]
    foreign_keys: list[tuple[Any, ...]]
    alerts: list[tuple[int, int, str, str]]
    rule_episodes: dict[int, int]
    plans: list[tuple[str, int, int, str]]


_ORPHANS = {
    "positions without snapshot": "SELECT count(*) FROM positions p LEFT JOIN position_snapshots s "
                                  "ON s.id = p.snapshot_id WHERE s.id IS NULL",
    "health without snapshot": "SELECT count(*) FROM health_results h LEFT JOIN position_snapshots s "
                               "ON s.id = h.snapshot_id WHERE s.id IS NULL",
    "snapshots without sync run": "SELECT count(*) FROM position_snapshots s LEFT JOIN sync_runs r "
                                  "ON r.id = s.sync_run_id WHERE r.id IS NULL",
    "prices without sync run": "SELECT count(*) FROM prices p LEFT JOIN sync_runs r ON r.id = p.sync_run_id "
                               "WHERE r.id IS NULL",
    "risk without sync run": "SELECT count(*) FROM risk_results k LEFT JOIN sync_runs r ON r.id = k.sync_run_id "
                             "WHERE r.id IS NULL",
    "alerts without rule": "SELECT count(*) FROM alerts a LEFT JOIN alert_rules r ON r.id = a.rule_id "
                           "WHERE r.id IS NULL",
    "keeper txs without plan": "SELECT count(*) FROM keeper_txs t LEFT JOIN keeper_plans p ON p.id = t.plan_id "
                               "WHERE p.id IS NULL",
}
_MISMATCHED = {
    "snapshot block != its run's block": "SELECT count(*) FROM position_snapshots s JOIN sync_runs r "
                                         "ON r.id = s.sync_run_id WHERE s.block_number <> r.block_number",
    # a health row lies in the range of its position version (change-only store, issue 14)
    "health row != its snapshot": "SELECT count(*) FROM health_results h JOIN position_snapshots s "
                                  "ON s.id = h.snapshot_id WHERE h.wallet_id <> s.wallet_id "
                                  "OR h.venue_id <> s.venue_id OR h.block_number < s.block_number "
                                  "OR h.block_number > COALESCE(s.valid_to_block, h.block_number)",
    "price block != its run's block": "SELECT count(*) FROM prices p JOIN sync_runs r ON r.id = p.sync_run_id "
                                      "WHERE p.block_number <> r.block_number",
    "risk block != its run's block": "SELECT count(*) FROM risk_results k JOIN sync_runs r "
                                     "ON r.id = k.sync_run_id WHERE k.block_number <> r.block_number",
    "unfinished sync runs": "SELECT count(*) FROM sync_runs WHERE finished_at IS NULL",
}


def read_store(url: str) -> StoreFacts:
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            sql = conn.exec_driver_sql
            runs = {int(r[0]): {"status": r[1], "block": r[2], "wallets": int(r[3]), "error": r[4]}
                    for r in sql("SELECT id, status, block_number, wallets, error FROM sync_runs")}
            positions: dict[int, int] = {
                int(r[0]): int(r[1]) for r in sql("SELECT snapshot_id, count(*) FROM positions GROUP BY snapshot_id")}
            health: dict[int, int] = {
                int(r[0]): int(r[1])
                for r in sql("SELECT snapshot_id, count(*) FROM health_results GROUP BY snapshot_id")}
            snapshots = [
                SnapshotFacts(int(r[1]), int(r[2]), r[3], r[4], r[5], int(positions.get(r[0], 0)),
                              int(health.get(r[0], 0)))
                for r in sql("SELECT s.id, s.sync_run_id, s.block_number, s.status, w.address, v.name "
                             "FROM position_snapshots s JOIN wallets w ON w.id = s.wallet_id "
                             "JOIN venues v ON v.id = s.venue_id")
            ]
            prices: Counter[int] = Counter(
                {int(r[0]): int(r[1]) for r in sql("SELECT sync_run_id, count(*) FROM prices GROUP BY sync_run_id")})
            risks: dict[int, set[str]] = {}
            for run_id, address in sql("SELECT k.sync_run_id, w.address FROM risk_results k "
                                       "JOIN wallets w ON w.id = k.wallet_id"):
                risks.setdefault(int(run_id), set()).add(address)
            orphans = {name: int(sql(q).scalar_one()) for name, q in _ORPHANS.items()}
            mismatched = {name: int(sql(q).scalar_one()) for name, q in _MISMATCHED.items()}
            integrity: list[str] = []
            foreign_keys: list[tuple[Any, ...]] = []
            if conn.dialect.name == "sqlite":
                integrity = [str(r[0]) for r in sql("PRAGMA integrity_check")]
                foreign_keys = [tuple(r) for r in sql("PRAGMA foreign_key_check")]
            alerts = [(int(r[0]), int(r[1]), r[2], r[3])
                      for r in sql("SELECT rule_id, episode, event_id, state FROM alerts ORDER BY id")]
            rule_episodes = {int(r[0]): int(r[1]) for r in sql("SELECT id, episode FROM alert_rules")}
            plans = [(r[0], int(r[1]), int(r[2]), r[3])
                     for r in sql("SELECT plan_key, wallet_id, block_number, status FROM keeper_plans")]
    finally:
        engine.dispose()
    return StoreFacts(runs, snapshots, prices, risks, orphans, mismatched, integrity, foreign_keys, alerts,
                      rule_episodes, plans)


@dataclass(frozen=True)
class Reference:
    """What a clean sync of the same wallets stores: per (wallet, venue) the snapshot's status and positions, per
    batch the prices, and which wallets get a risk row."""

    batches: tuple[frozenset[str], ...]
    venues: frozenset[str]
    snapshots: dict[tuple[str, str], tuple[str, int]]
    prices: tuple[int, ...]
    risk_wallets: frozenset[str]

    def batch_of(self, wallets: set[str]) -> int | None:
        for k, batch in enumerate(self.batches):
            if wallets and wallets <= batch:
                return k
        return None


def clean_reference(chain: CrashChain, settings: Settings, workdir: Path) -> Reference:
    """One uninterrupted in-process sync into its own SQLite file, read back with the same queries."""
    url = f"sqlite:///{workdir / 'reference.db'}"
    with Store.open(url) as store:
        store.add_wallets([(w, None) for w in chain.wallets])
        report = sync_once(settings, store)
    assert report.ok, [b.error for b in report.batches]
    facts = read_store(url)
    batches = tuple(frozenset(chain.wallets[i : i + settings.wallet_batch_size])
                    for i in range(0, len(chain.wallets), settings.wallet_batch_size))
    ref = Reference(
        batches=batches,
        venues=frozenset(s.venue for s in facts.snapshots),
        snapshots={(s.wallet, s.venue): (s.status, s.positions) for s in facts.snapshots},
        prices=tuple(facts.prices[r.sync_run_id] for r in report.batches if r.sync_run_id is not None),
        risk_wallets=frozenset(w for ws in facts.risks.values() for w in ws),
    )
    assert len(ref.snapshots) == len(chain.wallets) * len(ref.venues)
    assert all(status == "ok" for status, _ in ref.snapshots.values())
    return ref


def prepare_campaign(chain: CrashChain, url: str, workdir: Path, write: Callable[[Settings, Path], None],
                     ) -> tuple[Settings, Reference, int, dict[str, str]]:
    """A campaign's settings, its config file (``write``), the clean reference sync, the store with the wallets and
    the alert rule, and the environment ``xmargin run`` starts with."""
    settings = campaign_settings(chain)
    config = workdir / "home" / "devnet.toml"
    write(settings, config)
    ref = clean_reference(chain, settings, workdir)
    rule_id = prepare_store(url, chain.wallets)
    env = {**os.environ, "XMARGIN_HOME": str(workdir / "home"), "XMARGIN_CONFIG": str(config),
           "XMARGIN_DB_URL": url}
    return settings, ref, rule_id, env


@dataclass
class CheckOutcome:
    passed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    duplicate_block_runs: int = 0

    def check(self, name: str, bad: Sequence[str] | str | None) -> None:
        if not bad:
            self.passed.append(name)
        elif isinstance(bad, str):
            self.problems.append(f"{name}: {bad}")
        else:
            self.problems.append(f"{name}: {len(bad)} — " + "; ".join(bad[:3]))


def check_store(facts: StoreFacts, ref: Reference, rule_id: int, *, fired_required: bool = False) -> CheckOutcome:
    """The consistency checks of the module docstring; returns which passed and what was wrong."""
    out = CheckOutcome()
    by_run: dict[int, list[SnapshotFacts]] = {}
    for s in facts.snapshots:
        by_run.setdefault(s.run_id, []).append(s)
    committed = {rid: r for rid, r in facts.runs.items() if r["status"] in ("ok", "partial")}
    out.check("no failed sync run (a kill records none)",
              [f"run {rid} at block {r['block']}: {r['error']}" for rid, r in facts.runs.items()
               if r["status"] == "failed"])
    # Whole batches: each committed run holds exactly its batch × venues (a second run at an already stored block
    # skips what the first stored: then the union of the block's runs must be complete).
    by_block: dict[int, list[int]] = {}
    for rid, r in committed.items():
        by_block.setdefault(int(r["block"]), []).append(rid)
    partial_runs = []
    for rid, r in sorted(committed.items()):
        snaps = by_run.get(rid, [])
        pairs = {(s.wallet, s.venue) for s in snaps}
        k = ref.batch_of({s.wallet for s in snaps})
        want = {(w, v) for w in ref.batches[k] for v in ref.venues} if k is not None else set()
        if k is not None and pairs == want and len(snaps) == len(want) and r["wallets"] == len(ref.batches[k]):
            continue
        earlier = [o for o in by_block[int(r["block"])] if o < rid]
        if earlier and r["wallets"] in {len(b) for b in ref.batches}:
            stored_at_block = {(s.wallet, s.venue) for o in by_block[int(r["block"])] for s in by_run.get(o, [])}
            if k is None or want <= stored_at_block:
                out.duplicate_block_runs += 1
                continue
        partial_runs.append(f"run {rid} (block {r['block']}, {r['wallets']} wallets): {len(snaps)} snapshots, "
                            f"batch {k} wants {len(want)}")
    out.check("every committed run holds its whole batch (wallets × venues)", partial_runs)
    snapshot_problems = []
    for s in facts.snapshots:
        status, positions = ref.snapshots.get((s.wallet, s.venue), ("?", -1))
        if s.run_id not in committed:
            snapshot_problems.append(f"snapshot of {s.wallet[:10]}/{s.venue} in run {s.run_id} "
                                     f"({facts.runs.get(s.run_id, {}).get('status', 'missing')})")
        elif s.status != status or s.positions != positions or s.health != (1 if s.status == "ok" else 0):
            snapshot_problems.append(f"{s.wallet[:10]}/{s.venue} block {s.block}: {s.status}, {s.positions} "
                                     f"positions, {s.health} health (clean sync: {status}, {positions}, 1)")
    out.check("every snapshot has its complete positions and one health row", snapshot_problems)
    rows_problems = []
    for rid, snaps in by_run.items():
        k = ref.batch_of({s.wallet for s in snaps})
        if rid not in committed or k is None:
            continue
        if facts.prices[rid] != ref.prices[k]:
            rows_problems.append(f"run {rid}: {facts.prices[rid]} prices (clean: {ref.prices[k]})")
        want_risk = {s.wallet for s in snaps} & ref.risk_wallets
        if facts.risks.get(rid, set()) != want_risk:
            rows_problems.append(f"run {rid}: {len(facts.risks.get(rid, set()))} risk rows "
                                 f"(clean: {len(want_risk)})")
    out.check("every committed run has its prices and risk rows", rows_problems)
    check_rows(out, facts)
    check_automation(out, facts, rule_id, fired_required=fired_required)
    return out


def check_rows(out: CheckOutcome, facts: StoreFacts) -> None:
    """No orphan row, every row agreeing with its parent, and (SQLite) the database's own checks."""
    out.check("no orphan rows", [f"{name}: {n}" for name, n in facts.orphans.items() if n])
    out.check("rows agree with their parents", [f"{name}: {n}" for name, n in facts.mismatched.items() if n])
    if facts.integrity or facts.foreign_keys:  # SQLite
        out.check("PRAGMA integrity_check", None if facts.integrity == ["ok"] else facts.integrity[:3])
        out.check("PRAGMA foreign_key_check", [str(r) for r in facts.foreign_keys])


def check_automation(out: CheckOutcome, facts: StoreFacts, rule_id: int, *, fired_required: bool = False) -> None:
    """Alerts: one per (rule, episode), one per event id; the rule fires once over every restart. Keeper plans: one
    per sync."""
    pairs_count = Counter((a[0], a[1]) for a in facts.alerts)
    events = Counter(a[2] for a in facts.alerts)
    out.check("one alert per (rule, episode) and event id",
              [f"rule {r} episode {e}: {n}" for (r, e), n in pairs_count.items() if n > 1]
              + [f"event {e}: {n}" for e, n in events.items() if n > 1])
    fired = sum(1 for a in facts.alerts if a[0] == rule_id)
    allowed = {1} if fired_required else {0, 1}
    out.check("the rule fired exactly once" if fired_required else "the rule fired at most once",
              None if fired in allowed and facts.rule_episodes.get(rule_id, 0) == fired
              else f"{fired} alerts, episode {facts.rule_episodes.get(rule_id)}")
    keys = Counter(p[0] for p in facts.plans)
    per_sync = Counter((p[1], p[2]) for p in facts.plans)
    out.check("one keeper plan per sync (plan_key unique)",
              [f"plan_key {k[:12]}…: {n}" for k, n in keys.items() if n > 1]
              + [f"wallet {w} block {b}: {n} plans" for (w, b), n in per_sync.items() if n > 1])


# --- the process and its log ----------------------------------------------------------------------------------


class RunLog:
    """The INFO log of one ``xmargin run`` process, read as it grows, and the cycle phase it shows."""

    def __init__(self, path: Path, n_batches: int) -> None:
        self.path = path
        self.n_batches = n_batches
        self._offset = 0
        self._partial = b""
        self.lines: list[str] = []
        self.counts: Counter[str] = Counter()
        self.phase = "startup"
        self._stored_in_cycle = 0
        self.stored_runs: list[tuple[int, int]] = []
        self.last_writing: tuple[int, int] | None = None  # (block, snapshots)
        self.write_ms: list[float] = []
        self._write_started: datetime | None = None

    def poll(self) -> None:
        try:
            with self.path.open("rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return
        self._offset += len(data)
        *complete, self._partial = (self._partial + data).split(b"\n")
        for raw in complete:
            self._line(raw.decode(errors="replace"))

    def _line(self, line: str) -> None:
        self.lines.append(line)
        stamp = _TIME.match(line)
        at = datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S,%f") if stamp else None
        if _RUNNING.search(line):
            self.counts["running"] += 1
            self.phase, self._stored_in_cycle = "read", 0
        elif m := _WRITING.search(line):
            self.counts["writing"] += 1
            self.phase, self.last_writing, self._write_started = "write", (int(m.group(2)), int(m.group(3))), at
        elif (m := _STORED.search(line)) or _NOT_STORED.search(line):
            self.counts["stored" if m else "not stored"] += 1
            if m:
                self.stored_runs.append((int(m.group(1)), int(m.group(2))))
                if at is not None and self._write_started is not None:
                    self.write_ms.append((at - self._write_started).total_seconds() * 1000)
            self._stored_in_cycle += 1
            self.phase = "post_sync" if self._stored_in_cycle >= self.n_batches else "read"
        elif _DONE.search(line):
            self.counts["done"] += 1
            self.phase = "idle"
        elif "sync failed" in line or "unavailable" in line:
            self.counts["sync failed"] += 1
            self.phase = "post_sync"
        if _ALERT_LINE.search(line):
            self.counts["alert delivered"] += 1

    def wait(self, proc: subprocess.Popen[bytes], until: Callable[[RunLog], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.poll()
            if until(self):
                return True
            if proc.poll() is not None:
                return False
            time.sleep(0.002)
        return False


def _exe() -> str:
    return str(Path(sys.executable).with_name("xmargin"))


def start_run(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``xmargin -v run --interval 1`` in its own process group, its log (stderr) to ``log``."""
    with log.open("ab") as err, log.with_suffix(".out").open("ab") as out:
        return subprocess.Popen([_exe(), "-v", "run", "--interval", "1", "--no-api"], env=env, stdout=out,
                                stderr=err, start_new_session=True)


def kill9(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def stop(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        kill9(proc)


# --- the campaign ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KillResult:
    """One ``kill -9`` and what the store looked like afterwards."""

    index: int
    backend: str
    target: str
    """What the kill aimed at (see :data:`TARGETS`)."""
    phase: str
    """What it hit, from the log: startup, read, write, post_sync or idle."""
    trigger: str
    """The log event the kill was timed from ("writing", "running", "stored", "done" or "start")."""
    delay_ms: float
    """From seeing the trigger to the kill."""
    uptime_s: float
    stored_runs: int
    """Batches this process logged as stored."""
    inflight: str
    """Write kills: whether the batch being written had committed ("committed") or not ("rolled back")."""
    lost_runs: int
    """Runs the log said were stored that the store no longer holds."""
    duplicate_block_runs: int
    checks: tuple[str, ...]
    problems: tuple[str, ...]

    @property
    def survived(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        verdict = "consistent" if self.survived else "INCONSISTENT: " + " | ".join(self.problems)
        return (f"kill {self.index:2d} [{self.backend}] aimed {self.target:<9} hit {self.phase:<9} "
                f"{self.trigger:>7}+{self.delay_ms:6.1f} ms  up {self.uptime_s:5.2f} s  stored {self.stored_runs}  "
                f"in-flight {self.inflight:<11} lost {self.lost_runs}  "
                + (f"{self.duplicate_block_runs} runs at an already stored block  " if self.duplicate_block_runs
                   else "")
                + f"{len(self.checks)} checks passed: {verdict}")


@dataclass(frozen=True)
class ResumeResult:
    """The restart after the last kill: the schedule resumes, nothing is duplicated."""

    cycles: int
    runs_after_restart: int
    block_before: int
    block_after: int
    alerts: int
    alert_state: str
    alert_deliveries_logged: int
    """Log-sink lines for the alert over every process (delivery is at-least-once)."""
    plans: int
    plans_interrupted: int
    """Dry-run plans a kill left ``planned`` (stored, not yet simulated)."""
    checks: tuple[str, ...]
    problems: tuple[str, ...]

    def summary(self) -> str:
        verdict = "ok" if not self.problems else "PROBLEMS: " + " | ".join(self.problems)
        return (f"restart: {self.cycles} cycles, {self.runs_after_restart} new sync runs, block {self.block_before} → "
                f"{self.block_after}; alerts {self.alerts} ({self.alert_state}, {self.alert_deliveries_logged} "
                f"deliveries logged); plans {self.plans} ({self.plans_interrupted} interrupted before simulation); "
                f"{len(self.checks)} checks passed: {verdict}")


@dataclass(frozen=True)
class FaultRow:
    """One row of the docs' table."""

    fault: str
    count: int
    survived: int
    data_lost: str


@dataclass(frozen=True)
class CampaignReport:
    backend: str
    seed: int
    wallets: int
    batch_size: int
    venues: tuple[str, ...]
    kills: list[KillResult]
    resume: ResumeResult
    write_ms: list[float]
    """Durations of the uninterrupted store writes (from the log's timestamps)."""
    seconds: float

    def phases(self) -> Counter[str]:
        return Counter(k.phase for k in self.kills)

    def table(self) -> list[FaultRow]:
        rows = []
        for phase in PHASES:
            kills = [k for k in self.kills if k.phase == phase]
            if not kills:
                continue
            lost = sum(k.lost_runs for k in kills)
            rolled = sum(k.inflight == "rolled back" for k in kills)
            data = f"{lost} committed sync runs" if lost else "none"
            if rolled:
                data += f" (the batch in flight was rolled back {rolled}× and re-read by the next sync)"
            rows.append(FaultRow(FAULTS[phase], len(kills), sum(k.survived for k in kills), data))
        return rows


def _aim(target: str, log: RunLog, proc: subprocess.Popen[bytes], rng: random.Random) -> tuple[str, float]:
    """Wait for the moment ``target`` aims at, then a seeded random delay; returns (trigger, delay in s)."""
    n = log.n_batches
    if target == "write":  # inside a store write: just after its "writing a batch" line
        k = rng.randint(1, n + 1)  # either batch of the first cycle, or the second cycle's first
        trigger, delay = "writing", rng.uniform(0.0, 0.05)
        hit = log.wait(proc, lambda lg: lg.counts["writing"] >= k, START_TIMEOUT_S)
    elif target == "read":  # reading a batch: after a cycle starts, or after a batch that is not the last
        if rng.random() < 0.5:
            k = 1 if rng.random() < 0.75 else 2
            trigger, delay = "running", rng.uniform(0.05, 0.6)
            hit = log.wait(proc, lambda lg: lg.counts["running"] >= k, START_TIMEOUT_S)
        else:
            k = rng.randint(1, max(1, n - 1))  # a batch of the first cycle that is not its last
            trigger, delay = "stored", rng.uniform(0.0, 0.3)
            hit = log.wait(proc, lambda lg: lg.counts["stored"] >= k, START_TIMEOUT_S)
    elif target == "post_sync":  # alerts and keeper: after a cycle's last batch
        k = n
        trigger, delay = "stored", rng.uniform(0.0, 0.3)
        hit = log.wait(proc, lambda lg: lg.counts["stored"] >= k, START_TIMEOUT_S)
    elif target == "idle":
        k = 1
        trigger, delay = "done", rng.uniform(0.0, 0.3)
        hit = log.wait(proc, lambda lg: lg.counts["done"] >= k, START_TIMEOUT_S)
    else:
        trigger, delay, hit = "start", rng.uniform(0.3, 5.0), True
    if not hit:
        trigger = "timeout"
    return trigger, delay


def _max_run_id(url: str) -> int:
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            return int(conn.exec_driver_sql("SELECT coalesce(max(id), 0) FROM sync_runs").scalar_one())
    finally:
        engine.dispose()


def _one_kill(index: int, target: str, backend: str, env: dict[str, str], url: str, workdir: Path, ref: Reference,
              rule_id: int, rng: random.Random) -> tuple[KillResult, RunLog]:
    before = _max_run_id(url)
    log = RunLog(workdir / f"run-{index:02d}.log", len(ref.batches))
    started = time.monotonic()
    proc = start_run(env, log.path)
    try:
        trigger, delay = _aim(target, log, proc, rng)
        seen = time.monotonic()
        while time.monotonic() < seen + delay:
            time.sleep(0.001)
        killed = time.monotonic()
        assert proc.poll() is None, f"xmargin run exited by itself (rc {proc.returncode}); see {log.path}"
    finally:
        kill9(proc)
    log.poll()
    facts = read_store(url)
    outcome = check_store(facts, ref, rule_id)
    new_runs = sorted(rid for rid in facts.runs if rid > before)
    logged = [rid for rid, _ in log.stored_runs]
    lost = [rid for rid in logged if rid not in facts.runs]
    outcome.check("every run the log says was stored is in the store", [f"run {rid}" for rid in lost])
    inflight = "-"
    if log.phase == "write":
        extra = [rid for rid in new_runs if rid not in logged]
        inflight = "committed" if extra else "rolled back"
        outcome.check("nothing but logged runs and the one in flight was stored",
                      None if len(extra) <= 1 else f"runs {extra}")
    else:
        outcome.check("nothing but logged runs was stored",
                      [f"run {rid}" for rid in new_runs if rid not in logged])
    result = KillResult(
        index=index, backend=backend, target=target, phase=log.phase, trigger=trigger,
        delay_ms=(killed - seen) * 1000, uptime_s=killed - started, stored_runs=len(logged), inflight=inflight,
        lost_runs=len(lost), duplicate_block_runs=outcome.duplicate_block_runs, checks=tuple(outcome.passed),
        problems=tuple(outcome.problems),
    )
    return result, log


def _resume(env: dict[str, str], url: str, workdir: Path, ref: Reference, rule_id: int,
            logs: list[RunLog]) -> ResumeResult:
    before = read_store(url)
    block_before = max((int(r["block"]) for r in before.runs.values()), default=0)
    max_before = max(before.runs, default=0)
    log = RunLog(workdir / "run-resume.log", len(ref.batches))
    proc = start_run(env, log.path)
    try:
        done = log.wait(proc, lambda lg: lg.counts["done"] >= 2, 4 * START_TIMEOUT_S)
    finally:
        stop(proc)
    log.poll()
    logs.append(log)
    facts = read_store(url)
    outcome = check_store(facts, ref, rule_id, fired_required=True)
    after = {rid: r for rid, r in facts.runs.items() if rid > max_before}
    block_after = max((int(r["block"]) for r in after.values()), default=0)
    outcome.check("two cycles completed after the restart", None if done else f"log: {log.counts}")
    outcome.check("the schedule resumed: new sync runs at a newer block",
                  None if len(after) >= 2 * len(ref.batches) and block_after > block_before
                  else f"{len(after)} new runs, block {block_before} → {block_after}")
    errors = [line for line in log.lines if (" ERROR " in line and "xmargin.alerts" not in line)
              or "Traceback" in line]
    outcome.check("the cycles after the restart are clean (no error logged)", errors)
    alerts = [a for a in facts.alerts if a[0] == rule_id]
    outcome.check("the alert is delivered", None if [a[3] for a in alerts] == ["delivered"] else str(alerts))
    return ResumeResult(
        cycles=log.counts["done"], runs_after_restart=len(after), block_before=block_before, block_after=block_after,
        alerts=len(alerts), alert_state=",".join(a[3] for a in alerts) or "-",
        alert_deliveries_logged=sum(lg.counts["alert delivered"] for lg in logs), plans=len(facts.plans),
        plans_interrupted=sum(p[3] == "planned" for p in facts.plans), checks=tuple(outcome.passed),
        problems=tuple(outcome.problems),
    )


def run_crash_campaign(
    n_kills: int = 12,
    seed: int = 7,
    db_url: str | None = None,
    *,
    chain: CrashChain | None = None,
    workdir: Path | None = None,
    min_write: int = 3,
    min_read: int = 3,
    echo: Callable[[str], None] | None = print,
) -> CampaignReport:
    """Kill ``xmargin run`` with SIGKILL ``n_kills`` times (more, up to twice as many, until ``min_write`` kills hit
    a store write and ``min_read`` a sync's reads), checking the store after each; then restart it once more and
    check the schedule resumes. ``db_url``: the store (default: a SQLite file in ``workdir``); ``chain``: a
    :func:`crash_devnet` (default: one started here). ``echo`` gets one summary line per kill."""
    t0 = time.perf_counter()
    rng = random.Random(seed)
    with ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="xmargin-crash-")))
        if chain is None:
            chain = stack.enter_context(crash_devnet(seed=seed))
        url = db_url or f"sqlite:///{workdir / 'xmargin.db'}"
        backend = sa.engine.make_url(url).get_backend_name()
        settings, ref, rule_id, env = prepare_campaign(chain, url, workdir, write_config)
        kills: list[KillResult] = []
        logs: list[RunLog] = []
        index = 0
        while index < 2 * n_kills:
            phases = Counter(k.phase for k in kills)
            if index >= n_kills and phases["write"] >= min_write and phases["read"] >= min_read:
                break
            target = TARGETS[index % len(TARGETS)]
            if index >= n_kills:  # extra kills only for the quota still missing
                target = "write" if phases["write"] < min_write else "read"
            result, log = _one_kill(index, target, backend, env, url, workdir, ref, rule_id, rng)
            kills.append(result)
            logs.append(log)
            if echo:
                echo(result.summary())
            index += 1
        resume = _resume(env, url, workdir, ref, rule_id, logs)
        if echo:
            echo(resume.summary())
        return CampaignReport(
            backend=backend, seed=seed, wallets=len(chain.wallets), batch_size=settings.wallet_batch_size,
            venues=tuple(sorted(ref.venues)), kills=kills, resume=resume,
            write_ms=[ms for lg in logs for ms in lg.write_ms], seconds=time.perf_counter() - t0,
        )


# --- the test -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def crash_chain() -> Iterator[CrashChain]:
    with crash_devnet() as chain:
        yield chain


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def campaign_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    if request.param == "sqlite":
        yield "sqlite", f"sqlite:///{tmp_path / 'xmargin.db'}"
    else:
        from tests.conftest import pg_schema_url

        for url in pg_schema_url():
            yield "postgres", url


KILLS = {"sqlite": 12, "postgres": 8}


def test_kill9_during_sync_and_write_leaves_store_consistent(
    crash_chain: CrashChain, campaign_db: tuple[str, str], tmp_path: Path
) -> None:
    backend, url = campaign_db
    report = run_crash_campaign(KILLS[backend], seed=20240507, db_url=url, chain=crash_chain, workdir=tmp_path,
                                min_write=3, min_read=2 if backend == "postgres" else 3)
    phases = report.phases()
    print(f"[{backend}] {len(report.kills)} kills in {report.seconds:.0f} s: {dict(phases)}; store writes "
          f"{min(report.write_ms, default=0):.0f}-{max(report.write_ms, default=0):.0f} ms")
    for row in report.table():
        print(f"  {row.fault}: {row.count}×, survived {row.survived}, data lost: {row.data_lost}")
    bad = [k.summary() for k in report.kills if not k.survived]
    assert not bad, "\n".join(bad)
    assert phases["write"] >= 3, phases
    assert phases["read"] >= (2 if backend == "postgres" else 3), phases
    assert sum(k.lost_runs for k in report.kills) == 0
    assert not report.resume.problems, report.resume.summary()
    assert report.resume.alerts == 1
    assert report.resume.runs_after_restart >= 2 * len(range(0, report.wallets, report.batch_size))
    assert report.resume.block_after > report.resume.block_before
