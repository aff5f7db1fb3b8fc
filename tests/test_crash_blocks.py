"""Crash consistency of block-driven ``xmargin run`` on the change-only store (issue 14): ``kill -9`` during a block's
store write, during its reads, after it and between blocks leaves the store whole — every wallet and venue served
from one current version with its positions and health, or none yet — and a restart goes on without a duplicate
alert or keeper plan.

The chain mines a block a second and a price moves every couple of seconds, so the run writes at blocks after its
first too (the holders whose figures moved), not only in the full sweep each start begins with. The campaign
reuses the full sync's (:mod:`tests.test_crash_consistency`): the same seeding, process, log and SQL reads; only
the checks differ, since a block writes what changed rather than whole batches:

* no failed run, no orphan row, every row inside its version's block range, SQLite's integrity and foreign-key
  checks;
* each (wallet, venue) has at most one current version, and the current versions cover every (wallet, venue) of
  a clean in-process sync, or none (before the first block's write commits);
* every version has the clean sync's status and number of positions, and at least one health row;
* every run the log says was stored is in the store; nothing but those and the one in flight was stored;
* one alert per (rule, episode), the rule fired at most once (exactly once at the end, delivered); one keeper plan
  per sync.
"""

from __future__ import annotations

import contextlib
import random
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from aggregator.config import Settings, write_settings_toml
from devnet.feeds import latest_round, set_price
from tests.test_crash_consistency import (
    AUTOMATION_TOML,
    START_TIMEOUT_S,
    CheckOutcome,
    CrashChain,
    Reference,
    RunLog,
    check_automation,
    check_rows,
    crash_devnet,
    kill9,
    prepare_campaign,
    read_store,
    start_run,
    stop,
)

pytestmark = [pytest.mark.chain, pytest.mark.slow]

WALLETS = 150
"""Tracked wallets (the seed wallets and benchmark wallets up to this many)."""
MOVED = "WETH"
"""The price the mover walks (±0.4 % around its start, every ~2 s)."""
TARGETS = ("write", "read", "post_sync", "write", "idle", "read", "write", "random")


def write_block_config(settings: Settings, path: Path) -> None:
    """The devnet's config in block mode on the change-only store (the default), with the log sink and a dry-run
    keeper."""
    write_settings_toml(settings, path)
    path.write_text('sync_mode = "block"\n' + path.read_text() + AUTOMATION_TOML)


@contextlib.contextmanager
def price_mover(chain: CrashChain, seed: int) -> Iterator[list[float]]:
    """Walk :data:`MOVED`'s price on every venue every ~2 s (a thread); yields the prices set."""
    base = float(latest_round(chain.info, MOVED).price_usd)
    rng = random.Random(seed)
    done = threading.Event()
    prices: list[float] = []

    def walk() -> None:
        while not done.wait(rng.uniform(1.5, 2.5)):
            price = round(base * (1 + rng.uniform(-0.004, 0.004)), 2)
            with contextlib.suppress(Exception):  # the chain is the campaign's; a failed move only moves nothing
                set_price(chain.info, MOVED, price)
                prices.append(price)

    thread = threading.Thread(target=walk, name="price-mover", daemon=True)
    thread.start()
    try:
        yield prices
    finally:
        done.set()
        thread.join(30)
        set_price(chain.info, MOVED, base)


def _current_versions(url: str) -> Counter[tuple[str, str]]:
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.exec_driver_sql(
                "SELECT w.address, v.name FROM position_snapshots s JOIN wallets w ON w.id = s.wallet_id "
                "JOIN venues v ON v.id = s.venue_id WHERE s.valid_to_block IS NULL").all()
    finally:
        engine.dispose()
    return Counter((str(w), str(v)) for w, v in rows)


def check_block_store(url: str, ref: Reference, rule_id: int, *, fired_required: bool = False) -> CheckOutcome:
    """The checks of the module docstring (the log's, apart)."""
    facts = read_store(url)
    out = CheckOutcome()
    out.check("no failed sync run (a kill records none)",
              [f"run {rid} at block {r['block']}: {r['error']}" for rid, r in facts.runs.items()
               if r["status"] == "failed"])
    check_rows(out, facts)
    current = _current_versions(url)
    out.check("at most one current version per wallet and venue",
              [f"{w[:10]}/{v}: {n}" for (w, v), n in current.items() if n > 1])
    want = set(ref.snapshots)
    out.check("the current versions cover every wallet and venue, or none yet",
              None if set(current) in (set(), want) else f"{len(set(current) & want)} of {len(want)}, "
              f"{len(set(current) - want)} unknown")
    bad = []
    for s in facts.snapshots:
        status, positions = ref.snapshots.get((s.wallet, s.venue), ("?", -1))
        if s.status != status or s.positions != positions or s.health < 1:
            bad.append(f"{s.wallet[:10]}/{s.venue} version at block {s.block}: {s.status}, {s.positions} positions, "
                       f"{s.health} health rows (clean sync: {status}, {positions}, ≥ 1)")
    out.check("every version has its complete positions and a health row", bad)
    check_automation(out, facts, rule_id, fired_required=fired_required)
    return out


@dataclass(frozen=True)
class BlockKill:
    index: int
    target: str
    phase: str
    trigger: str
    stored_runs: int
    writes: int
    """Writes the process began (its start's full sweep, then the blocks where figures moved)."""
    write_ms: tuple[float, ...]
    """Durations of its completed writes, from the log."""
    inflight: str
    lost_runs: int
    problems: tuple[str, ...]

    def summary(self) -> str:
        verdict = "consistent" if not self.problems else "INCONSISTENT: " + " | ".join(self.problems)
        took = ", ".join(f"{ms:.0f}" for ms in self.write_ms) or "-"
        return (f"kill {self.index:2d} aimed {self.target:<9} hit {self.phase:<9} after {self.trigger:<8} stored "
                f"{self.stored_runs} of {self.writes} writes ({took} ms)  "
                f"in-flight {self.inflight:<11} lost {self.lost_runs}: "
                f"{verdict}")


def _aim(target: str, log: RunLog, proc: subprocess.Popen[bytes], rng: random.Random,
         took_ms: tuple[list[float], list[float]] = ([], [])) -> tuple[str, float]:
    """Block mode's kill moments: every start begins with a full sweep (reads, then one write of every wallet),
    then each block reads its logs and market state and writes the wallets whose figures moved. ``took_ms``: the
    sweep's writes and the later blocks' writes seen so far, in ms (a kill aimed at a write lands inside the
    shortest seen: a later block writes only the (wallet, venue) pairs that moved, a few ms on a fast machine)."""

    def within(seen: list[float], default_s: float) -> float:
        return rng.uniform(0.0, 0.8 * min(seen) / 1000 if seen else default_s)

    if target == "write":  # the start's full sweep, or a later block's write (the holders of the moved price)
        k = rng.choice((1, 2))
        trigger, delay, key = "writing", within(took_ms[k - 1], 0.25 if k == 1 else 0.02), "writing"
    elif target == "later_write":  # a later block's write: short (tens of ms since the store keeps its versions)
        trigger, delay, k, key = "writing", within(took_ms[1], 0.02), 2, "writing"
    elif target == "read":
        trigger, delay, k, key = "running", rng.uniform(0.02, 0.5), rng.choice((1, 1, 2, 3)), "running"
    elif target == "post_sync":
        trigger, delay, k, key = "stored", rng.uniform(0.0, 0.2), 1, "stored"
    elif target == "idle":
        trigger, delay, k, key = "done", rng.uniform(0.0, 0.3), rng.choice((1, 2)), "done"
    else:
        return "start", rng.uniform(0.3, 5.0)
    hit = log.wait(proc, lambda lg: lg.counts[key] >= k, START_TIMEOUT_S)
    return (trigger if hit else "timeout"), delay


def _max_run(url: str) -> tuple[int, int]:
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            rid, block = conn.exec_driver_sql(
                "SELECT coalesce(max(id), 0), coalesce(max(block_number), 0) FROM sync_runs").one()
    finally:
        engine.dispose()
    return int(rid), int(block)


def _one_kill(index: int, target: str, env: dict[str, str], url: str, workdir: Path, ref: Reference, rule_id: int,
              rng: random.Random, took_ms: tuple[list[float], list[float]] = ([], [])) -> BlockKill:
    before, _ = _max_run(url)
    log = RunLog(workdir / f"block-run-{index:02d}.log", 1)
    proc = start_run(env, log.path)
    try:
        trigger, delay = _aim(target, log, proc, rng, took_ms)
        time.sleep(delay)
        assert proc.poll() is None, f"xmargin run exited by itself (rc {proc.returncode}); see {log.path}"
    finally:
        kill9(proc)
    log.poll()
    outcome = check_block_store(url, ref, rule_id)
    facts = read_store(url)
    logged = [rid for rid, _ in log.stored_runs]
    lost = [rid for rid in logged if rid not in facts.runs]
    outcome.check("every run the log says was stored is in the store", [f"run {rid}" for rid in lost])
    new_runs = sorted(rid for rid in facts.runs if rid > before)
    extra = [rid for rid in new_runs if rid not in logged]
    inflight = "-"
    if log.phase == "write":
        inflight = "committed" if extra else "rolled back"
        outcome.check("nothing but logged runs and the one in flight was stored",
                      None if len(extra) <= 1 else f"runs {extra}")
    else:
        outcome.check("nothing but logged runs was stored", [f"run {rid}" for rid in extra])
    return BlockKill(index, target, log.phase, trigger, len(logged), log.counts["writing"], tuple(log.write_ms),
                     inflight, len(lost), tuple(outcome.problems))


def run_block_campaign(chain: CrashChain, url: str, workdir: Path, *, n_kills: int, seed: int,
                       min_write: int = 3) -> tuple[list[BlockKill], list[str], int, int]:
    """``n_kills`` kills (more, up to twice as many, until ``min_write`` hit a write and one of them a later block's
    write), then a restart that must run
    two clean ticks at a newer block; returns the kills, the restart's problems and the blocks before and after."""
    rng = random.Random(seed)
    _, ref, rule_id, env = prepare_campaign(chain, url, workdir, write_block_config)
    kills: list[BlockKill] = []
    with price_mover(chain, seed):
        for index in range(2 * n_kills):
            writes = sum(k.phase == "write" for k in kills)
            later = any(k.phase == "write" and k.writes >= 2 for k in kills)
            if index >= n_kills and writes >= min_write and later:
                break
            target = TARGETS[index % len(TARGETS)] if index < n_kills else ("write" if later else "later_write")
            took_ms = ([ms for k in kills for ms in k.write_ms[:1]], [ms for k in kills for ms in k.write_ms[1:]])
            kills.append(_one_kill(index, target, env, url, workdir, ref, rule_id, rng, took_ms))
            print(kills[-1].summary())
        _, block_before = _max_run(url)
        log = RunLog(workdir / "block-run-resume.log", 1)
        proc = start_run(env, log.path)
        try:
            done = log.wait(proc, lambda lg: lg.counts["done"] >= 3 and lg.counts["stored"] >= 2, 4 * START_TIMEOUT_S)
        finally:
            stop(proc)
    log.poll()
    outcome = check_block_store(url, ref, rule_id, fired_required=True)
    _, block_after = _max_run(url)
    outcome.check("three ticks and a block after the sweep stored after the restart",
                  None if done else f"log: {log.counts}")
    outcome.check("the restart stored a newer block", None if block_after > block_before else
                  f"block {block_before} → {block_after}")
    errors = [line for line in log.lines if (" ERROR " in line and "xmargin.alerts" not in line)
              or "Traceback" in line]
    outcome.check("the ticks after the restart are clean (no error logged)", errors)
    alerts = [a for a in read_store(url).alerts if a[0] == rule_id]
    outcome.check("the alert is delivered", None if [a[3] for a in alerts] == ["delivered"] else str(alerts))
    return kills, outcome.problems, block_before, block_after


@pytest.fixture(scope="module")
def block_chain() -> Iterator[CrashChain]:
    with crash_devnet(WALLETS, seed=11) as chain:
        yield chain


KILLS = {"sqlite": 8, "postgres": 6}


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_kill9_in_block_mode_leaves_every_wallet_whole(block_chain: CrashChain, backend: str, tmp_path: Path) -> None:
    if backend == "sqlite":
        urls: Iterator[str] = iter([f"sqlite:///{tmp_path / 'xmargin.db'}"])
    else:
        from tests.conftest import pg_schema_url

        urls = pg_schema_url()
    for url in urls:
        kills, problems, before, after = run_block_campaign(block_chain, url, tmp_path, n_kills=KILLS[backend],
                                                            seed=20261207)
        bad = [k.summary() for k in kills if k.problems]
        assert not bad, "\n".join(bad)
        phases = Counter(k.phase for k in kills)
        assert phases["write"] >= 3, phases
        assert any(k.phase == "write" and k.writes >= 2 for k in kills), "no kill hit a write after the sweep"
        assert phases["read"] >= 1, phases
        assert sum(k.lost_runs for k in kills) == 0
        assert not problems, problems
        assert after > before
