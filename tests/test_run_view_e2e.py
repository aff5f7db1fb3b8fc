"""What a trader sees from the console script when syncing fails — defect 3 of the trader issue, as a user runs it.

``xmargin devnet up`` + ``seed``, ``xmargin run`` in the background with the API served: the first cycle shows the
wallets' health, later cycles only what changed (Δ health) or one "no change" line; the devnet is then stopped
under it: ``run`` says the sync failed, why, and shows the last known values marked STALE (not an empty table),
``/healthz`` turns ``degraded`` (still 200) with the reason, the API's health document says stale with since when,
``xmargin health`` prints STALE with the age; ``sync --once`` against the dead chain exits 1 saying nothing was
stored. The devnet then comes back on other ports: ``run`` re-reads its config and follows it. SIGTERM then stops
``run`` cleanly (exit 0), as Ctrl-C does.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import devnet
from devnet.node import free_port

pytestmark = pytest.mark.chain

HEDGED = devnet.wallet_address("hedged")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _wait(what: str, check: Callable[[], Any], timeout_s: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    monkeypatch.setenv("XMARGIN_DEVNET_RUN", str(tmp_path / "devnet-run.json"))
    run_file = str(tmp_path / "devnet-run.json")
    full = {**os.environ, "XMARGIN_HOME": str(tmp_path / "home"), "XMARGIN_DEVNET_RUN": run_file,
            "XMARGIN_API_PORT": "0", "COLUMNS": "80", "XMARGIN_STALE_AFTER_S": "30"}
    full.pop("XMARGIN_CONFIG", None)
    full.pop("XMARGIN_DB_URL", None)
    yield full
    exe = str(Path(sys.executable).with_name("xmargin"))
    subprocess.run([exe, "devnet", "down"], env=full, capture_output=True, timeout=120, check=False)


def test_run_shows_changes_then_a_failed_sync_as_stale_and_stops_on_sigterm(env: dict[str, str],
                                                                             tmp_path: Path) -> None:
    exe = str(Path(sys.executable).with_name("xmargin"))

    def xm(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([exe, *args], env=env, capture_output=True, text=True, timeout=300, check=False)
        if ok:
            assert done.returncode == 0, f"xmargin {' '.join(args)}: {done.stderr}"
        return done

    xm("devnet", "up")
    env["XMARGIN_CONFIG"] = str(Path(env["XMARGIN_HOME"]) / "devnet.toml")
    xm("devnet", "seed")
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([exe, "run", "--interval", "1"], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        text = lambda: ANSI.sub("", log.read_text(errors="replace"))  # noqa: E731
        _wait("the first cycle's table", lambda: "health at block" in text())
        _wait("a cycle with no change", lambda: "no change (" in text())
        api = re.search(r"dashboard: (http://127\.0\.0\.1:\d+)/ui/", text())
        assert api, text()
        base = api.group(1)
        assert httpx.get(f"{base}/healthz").json()["status"] == "ok"
        xm("devnet", "set-price", "WETH", "3700")
        changed = _wait("a table of what changed", lambda: re.search(r"changed at block \d+", text()))
        after = text()[changed.start():]
        assert re.search(r"hedged 0x[0-9a-fA-F]{4}…[0-9a-fA-F]{4}", after)  # addresses shortened, never cut
        assert re.search(r"-0\.\d{4}", after)  # the Δ health of the dip
        assert "health at block" not in after  # the full table is printed once, not every interval

        xm("devnet", "down")  # the chain disappears under `run`
        _wait("the failure, said once, with the last known values", lambda: "last known values — STALE" in text())
        failed = text()[text().index("sync failed at"):]
        assert "unavailable" in failed
        assert "hedged" in failed[failed.index("last known values"):]  # not an empty table
        _wait("one line per failing cycle", lambda: "still failing" in text())
        assert text().count("last known values — STALE") == 1

        health = httpx.get(f"{base}/healthz")
        assert health.status_code == 200
        assert health.json()["status"] == "degraded"
        assert "sync failing since" in health.json()["reasons"][0]
        doc = httpx.get(f"{base}/v1/wallets/{HEDGED}/health").json()
        assert doc["freshness"]["stale"] is True
        assert doc["freshness"]["failing_since"] is not None
        assert doc["summary"]["text"].startswith("STALE — ")
        assert all(v["age_s"] is not None for v in doc["venues"])

        shown = xm("health", HEDGED)
        plain = ANSI.sub("", shown.stdout)
        assert "STALE" in plain
        assert "sync failing since" in plain
        assert re.search(r"synced \d+ (s|min) ago", plain)
        assert max(len(line) for line in plain.splitlines()) <= 80, plain
        as_json = json.loads(xm("health", HEDGED, "--json").stdout)
        assert as_json["freshness"]["stale"] is True

        dead = xm("sync", "--once", ok=False)
        assert dead.returncode == 1
        assert "nothing stored" in dead.stderr
        assert "synced" not in dead.stdout

        # The devnet comes back on other ports: `run` re-reads its config file and follows it.
        xm("devnet", "up", "--port", str(free_port()))
        _wait("run following the restarted devnet", lambda: "the devnet was restarted: following it" in text())
        _wait("the sync recovered", lambda: "sync recovered after" in text())
        assert httpx.get(f"{base}/healthz").json()["status"] == "ok"

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        assert "stopping…" in text()
        assert "Traceback" not in text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
