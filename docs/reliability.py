"""Rerun the reliability scenarios and write docs/reliability.md (issue 7).

Every scenario of tests/reliability.py runs ``--runs`` times with seeds ``--seed``, ``--seed + 1``, … against one
private, seeded devnet; then the ``kill -9`` campaign of tests/test_crash_consistency.py (``run_crash_campaign``, when
that module provides it) runs once with ``--kills`` kills. The table it writes: every fault, how it is injected, how
often, the syncs it took, how many runs survived, what the user saw and the rows lost::

    .venv/bin/python docs/reliability.py                      # 3 runs, seed 1, crash campaign with 8 kills
    .venv/bin/python docs/reliability.py --runs 5 --seed 100 --kills 12
    .venv/bin/python docs/reliability.py --only reorg_mid_read oracle_jump --no-crash --out /tmp/r.md
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `tests` is a package of the repository, not an installed one

if TYPE_CHECKING:
    from tests.reliability import Lab, Scenario, ScenarioResult

DEFAULT_OUT = ROOT / "docs" / "reliability.md"
_LOCAL_URL = re.compile(r"http://127\.0\.0\.1:\d+")


def echo(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _cell(text: object) -> str:
    """A table cell: one line, pipes escaped, loopback ports (new every run) elided."""
    value = _LOCAL_URL.sub("http://127.0.0.1:…", " ".join(str(text).split()))
    return value.replace("|", "\\|")


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip()


# --- the scenarios ------------------------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the table: a fault over all its runs."""

    fault: str
    how: str
    injected: int | str
    syncs: int | str
    survived: str
    user_sees: str
    data_lost: str
    ok: bool
    seconds: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _failed_result(scenario: Scenario, seed: int, exc: BaseException) -> ScenarioResult:
    from tests.reliability import ScenarioResult

    text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return ScenarioResult(name=scenario.name, fault=scenario.fault, injected=0, syncs=0, survived=False,
                          user_sees=f"the scenario raised {text}", data_lost=0,
                          details={"seed": seed, "checks": {"the scenario ran to its end": False}, "loss": {},
                                   "traceback": traceback.format_exc()})


def run_scenarios(lab: Lab, scenarios: Sequence[Scenario], runs: int, seed: int) -> dict[str, list[ScenarioResult]]:
    from tests.reliability import run_scenario

    results: dict[str, list[ScenarioResult]] = {s.name: [] for s in scenarios}
    for i in range(runs):
        for scenario in scenarios:
            run_seed = seed + i
            began = time.perf_counter()
            try:
                result = run_scenario(scenario.name, lab, run_seed)
            except Exception as exc:  # one broken scenario must not cost the others' rows
                result = _failed_result(scenario, run_seed, exc)
                result.details["seconds"] = round(time.perf_counter() - began, 3)
            results[scenario.name].append(result)
            verdict = "survived" if result.survived else "FAILED " + "; ".join(result.failed_checks)
            echo(f"[run {i + 1}/{runs}, seed {run_seed}] {scenario.name}: {verdict}, {result.data_lost} rows lost, "
                 f"{result.injected} faults, {result.syncs} syncs ({result.details.get('seconds', 0):.1f} s)")
    return results


def known_bugs() -> dict[str, str]:
    """Scenario → the product bug its test waits for (tests/test_reliability.py's ``KNOWN_BUGS``), when any."""
    try:
        from tests.test_reliability import KNOWN_BUGS
    except ImportError:
        return {}
    return dict(KNOWN_BUGS)


def scenario_row(scenario: Scenario, results: Sequence[ScenarioResult]) -> Row:
    survived = sum(r.survived for r in results)
    lost = sum(r.data_lost for r in results)
    sees = [r.user_sees for r in results]
    shown = sees[0] if sees else ""
    failed = list(dict.fromkeys(check for r in results for check in r.failed_checks))
    notes = [f"Failed checks: {'; '.join(failed)}"] if failed else []
    example = next((ex for r in results for ex in (r.details.get("loss", {}).get("examples") or [])[:1]), None)
    if example:
        notes.append(f"A lost row: {example}")
    cause = known_bugs().get(scenario.name)
    if cause and notes:
        notes.insert(0, "Known cause: " + re.sub(r"^product \w+: ", "", cause))
    return Row(fault=scenario.fault, how=scenario.how, injected=sum(r.injected for r in results),
               syncs=sum(r.syncs for r in results), survived=f"{survived}/{len(results)}", user_sees=shown,
               data_lost=str(lost), ok=survived == len(results) and lost == 0,
               seconds=[float(r.details.get("seconds", 0.0)) for r in results], notes=notes)


# --- the crash campaign -------------------------------------------------------------------------------------------


def find_crash_campaign() -> Callable[..., Any] | None:
    try:
        from tests import test_crash_consistency
    except ImportError as exc:
        echo(f"crash campaign: tests/test_crash_consistency.py not importable ({exc}); skipped")
        return None
    campaign = getattr(test_crash_consistency, "run_crash_campaign", None)
    return campaign if callable(campaign) else None


def run_crash(campaign: Callable[..., Any], kills: int, seed: int, workdir: Path) -> tuple[list[Row], float, str]:
    """Run the campaign with the arguments it takes; its report as table rows."""
    params = inspect.signature(campaign).parameters
    offered: dict[str, Any] = {"n_kills": kills, "kills": kills, "seed": seed, "workdir": workdir, "echo": echo}
    kwargs = {k: v for k, v in offered.items() if k in params}
    began = time.perf_counter()
    try:
        report = campaign(**kwargs)
    except Exception as exc:
        seconds = time.perf_counter() - began
        text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        echo(traceback.format_exc())
        return [Row("kill -9 campaign", "SIGKILL of `xmargin run`", "–", "–", "0/1", f"the campaign raised {text}",
                    "unknown", ok=False)], seconds, ""
    seconds = time.perf_counter() - began
    return crash_rows(report), seconds, _crash_setup(report)


def _crash_setup(report: Any) -> str:
    parts = []
    for attr, label in (("wallets", "wallets"), ("batch_size", "wallets per batch"), ("backend", "store")):
        value = getattr(report, attr, None)
        if value is not None:
            parts.append(f"{label}: {value}")
    venues = getattr(report, "venues", None)
    if venues:
        parts.append("venues: " + ", ".join(venues))
    write_ms = getattr(report, "write_ms", None)
    if write_ms:
        parts.append(f"store writes {min(write_ms):.0f}–{max(write_ms):.0f} ms")
    return "; ".join(parts)


def crash_rows(report: Any) -> list[Row]:
    """Rows from the campaign's report: its ``table()`` (fault, count, survived, data_lost) per phase hit, and the
    restart after the last kill."""
    how = ("SIGKILL of `xmargin run --interval 1` (its own process group) at a seeded moment timed from its log; "
           "the store checked against a clean sync after every kill")
    rows: list[Row] = []
    table = getattr(report, "table", None)
    if callable(table):
        for item in table():
            count = int(getattr(item, "count", 0))
            survived = int(getattr(item, "survived", 0))
            lost = str(getattr(item, "data_lost", "?"))
            if survived == count:
                sees = "after the restart the store holds only whole sync runs, matching a clean sync"
            else:
                sees = "the store was inconsistent after a kill (see the campaign's output)"
            rows.append(Row(fault=str(getattr(item, "fault", "kill -9")), how=how, injected=count, syncs="–",
                            survived=f"{survived}/{count} kills", user_sees=sees, data_lost=lost,
                            ok=survived == count and lost.startswith("none")))
    resume = getattr(report, "resume", None)
    if resume is not None:
        problems = tuple(getattr(resume, "problems", ()))
        summary = resume.summary() if callable(getattr(resume, "summary", None)) else str(resume)
        rows.append(Row(fault="restart after the last kill", how="`xmargin run` started again, two cycles",
                        injected="–", syncs=str(getattr(resume, "runs_after_restart", "–")),
                        survived="1/1" if not problems else "0/1", user_sees=summary,
                        data_lost="none" if not problems else "; ".join(problems), ok=not problems))
    if not rows:
        rows.append(Row("kill -9 campaign", how, "?", "–", "?", _cell(report), "?", ok=False))
    return rows


# --- the document -------------------------------------------------------------------------------------------------

INTRO = """# Reliability: faults injected, survived, data lost

Generated by `.venv/bin/python docs/reliability.py --runs {runs} --seed {seed}{crash_arg}` (about {minutes} minutes);
do not edit by hand. The same scenarios run in the test suite, one seed each: `tests/test_reliability.py`
(issue 7).

## What is injected, and how

- **RPC faults** go through `tests/faultproxy.py`, an HTTP proxy in front of the devnet's anvil node that is the
  chain's `rpc_url` (and, where a scenario has one, a second proxy as its `fallback_rpc_urls`): latency, timeouts,
  trickled answers, HTTP 429 with `Retry-After`, 5xx, malformed or truncated JSON, dropped connections, a wrong chain
  id, JSON-RPC error objects, `null` results, wrong response ids, and real reorgs (`anvil_reorg`) fired between two
  requests of a sync. Each scenario places its faults with a seeded random generator: the seeds differ per run.
- **Oracle faults** are made on the devnet's own Chainlink `MockV3Aggregator` feeds, which Aave's oracle reads and
  every other on-chain venue is valued with: an answer of zero, a negative answer, a feed left stale (chain time
  moved past the one-hour heartbeat while every other feed posts again) and a price jump beyond `max_price_jump`
  (50 %) between two syncs. An `oracle_invalid` alert rule watches a wallet holding the asset.
- **Crashes**: `kill -9` of a running `xmargin run` during reads, store writes, the alert / keeper stage and
  between cycles, then a restart (`tests/test_crash_consistency.py`).

Every scenario syncs the five seeded demo wallets on all five devnet venues (Aave v3, Morpho Blue, Uniswap v3,
and the local Hyperliquid and dYdX APIs) through `Syncer`, at a new block per sync, with a one-second deadline per
answer and three retries per endpoint (one where a fallback endpoint takes over), in an `evm_snapshot` reverted
afterwards.

**Data lost** counts rows: for every block a scenario stored, a clean sync of the same wallets and venues at the
same block (straight to the node, into a store of its own) is the reference; a (wallet, venue) it stored that the
scenario's store lacks, holds as an error though the fault was not aimed at that venue, holds with another block's
hash, without its health or with other values, is one row lost. An error snapshot of a venue whose own reads
were faulted is the correct "stale" answer, not loss; a sync that failed as a whole must have written nothing.
For oracle faults (where the reference block has the fault too) every (wallet, venue) of the clean sync before
the fault must still be stored, flagged rather than dropped. *Survived* means every check of the scenario held:
what the user sees (statuses, error text, flags, alerts), the store whole (no half-stored snapshot, one block
hash per run) and the syncs after the fault back to normal. Checks and definitions: `tests/reliability.py`.

## Results
"""


def code_version() -> str:
    """The commit under test, and whether tracked files differ from it (taken before the run starts)."""
    commit = _git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = " (with uncommitted changes)" if _git("status", "--porcelain", "--untracked-files=no") else ""
    return f"`{commit}`{dirty}"


def render(rows: list[Row], crash_rows_: list[Row], *, runs: int, seed: int, kills: int | None, crash_note: str,
           durations: dict[str, float], per_scenario: list[tuple[str, list[float]]], commit: str) -> str:
    minutes = max(1, round(durations.get("total", 0.0) / 60))
    crash_arg = f" --kills {kills}" if kills is not None else " --no-crash"
    out = [INTRO.format(runs=runs, seed=seed, crash_arg=crash_arg, minutes=minutes)]
    header = ("| fault | how it is injected | times injected | syncs | survived | what the user sees | "
              "data lost (rows) |\n|---|---|---:|---:|---|---|---:|")
    out.append(f"{runs} runs per scenario, seeds {seed}–{seed + runs - 1}.\n")
    out.append(header)
    for row in rows + crash_rows_:
        out.append(f"| {_cell(row.fault)} | {_cell(row.how)} | {row.injected} | {row.syncs} | {row.survived} | "
                   f"{_cell(row.user_sees)} | {_cell(row.data_lost)} |")
    out.append("")
    if crash_note:
        out.append(crash_note + "\n")
    gaps = [r for r in rows + crash_rows_ if not r.ok]
    out.append("## Open problems\n")
    if not gaps:
        out.append("None: every fault survived in every run, nothing lost.\n")
    else:
        out.append("Faults not survived, or with data lost (each is an `xfail(strict=True)` test in "
                   "`tests/test_reliability.py` until fixed):\n")
        for r in gaps:
            notes = ". ".join(r.notes) or r.user_sees
            out.append(f"- **{_cell(r.fault)}** ({r.survived} survived, {r.data_lost} rows lost): {_cell(notes)}")
        out.append("")
    out.append("---\n")
    out.append(f"Generated {datetime.now(UTC):%Y-%m-%d %H:%M UTC} at commit {commit}. Durations: "
               + ", ".join(f"{k} {v:.0f} s" for k, v in durations.items()) + ".")
    slow = ", ".join(f"{name} {sum(s) / len(s):.1f}" for name, s in per_scenario if s)
    out.append(f"\nSeconds per scenario run (mean): {slow}.\n")
    return "\n".join(out)


@contextlib.contextmanager
def private_home() -> Iterator[Path]:
    """Keep the run away from the user's store, config and shared devnet (as the test suite does)."""
    keys = ("XMARGIN_HOME", "XMARGIN_CONFIG", "XMARGIN_DB_URL", "XMARGIN_RPC_URL", "XMARGIN_DEVNET_RUN")
    saved = {k: os.environ.get(k) for k in keys}
    with tempfile.TemporaryDirectory(prefix="xmargin-reliability-") as tmp:
        home = Path(tmp)
        os.environ["XMARGIN_HOME"] = str(home / "home")
        os.environ["XMARGIN_DEVNET_RUN"] = str(home / "devnet-run.json")
        for key in ("XMARGIN_CONFIG", "XMARGIN_DB_URL", "XMARGIN_RPC_URL"):
            os.environ.pop(key, None)
        try:
            yield home
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs per scenario (seeds seed, seed+1, …); default 3")
    parser.add_argument("--seed", type=int, default=1, help="first seed; default 1")
    parser.add_argument("--kills", type=int, default=8, help="kills of the crash campaign; default 8")
    parser.add_argument("--no-crash", action="store_true", help="skip the kill -9 campaign")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="only these scenarios")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"default {DEFAULT_OUT.relative_to(ROOT)}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show the syncs' log")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    logging.basicConfig(level=logging.WARNING if args.verbose else logging.CRITICAL,
                        format="%(levelname)s %(name)s: %(message)s")
    from tests.reliability import BY_NAME, SCENARIOS, launch_lab

    unknown = sorted(set(args.only or ()) - set(BY_NAME))
    if unknown:
        parser.error(f"unknown scenario(s) {unknown}; known: {', '.join(BY_NAME)}")
    scenarios = [s for s in SCENARIOS if not args.only or s.name in args.only]

    commit = code_version()
    durations: dict[str, float] = {}
    t0 = time.perf_counter()
    with private_home() as home:
        with launch_lab(home / "stores") as lab:
            durations["devnet start and seeding"] = time.perf_counter() - t0
            t1 = time.perf_counter()
            results = run_scenarios(lab, scenarios, args.runs, args.seed)
            durations["scenarios"] = time.perf_counter() - t1
        rows = [scenario_row(s, results[s.name]) for s in scenarios]
        crash: list[Row] = []
        note = ""
        kills: int | None = None
        if not args.no_crash:
            campaign = find_crash_campaign()
            if campaign is None:
                note = ("The kill -9 campaign did not run: `tests/test_crash_consistency.py` has no "
                        "`run_crash_campaign`.")
            else:
                kills = args.kills
                echo(f"crash campaign: {kills} kills …")
                crash, seconds, setup = run_crash(campaign, kills, args.seed, home / "crash")
                durations["crash campaign"] = seconds
                note = (f"The kill -9 campaign ran once ({kills} kills, seed {args.seed}"
                        + (f"; {setup}" if setup else "") + ").")
    durations["total"] = time.perf_counter() - t0
    per_scenario = [(s.name, [float(r.details.get("seconds", 0.0)) for r in results[s.name]]) for s in scenarios]
    text = render(rows, crash, runs=args.runs, seed=args.seed, kills=kills, crash_note=note, durations=durations,
                  per_scenario=per_scenario, commit=commit)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    failed = [r.fault for r in rows + crash if not r.ok]
    echo(f"wrote {args.out} in {durations['total']:.0f} s; {len(rows) + len(crash)} rows, "
         f"{len(failed)} not survived or with data lost")
    return 0


if __name__ == "__main__":
    sys.exit(main())
