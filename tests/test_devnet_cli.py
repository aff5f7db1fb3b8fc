"""``xmargin devnet …`` as a user meets it: ports kept across restarts (so a running ``xmargin run`` finds its
chain again), the same config file after a restart, a clear line instead of a traceback for every mistake
(no devnet, a port taken, an unknown symbol, a bad price, seeding twice, stopping twice), and the progress of
the slow first-run stages (install, compile, deploy, seed) shown without the devnet package printing anything.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from rich.console import Console
from typer.testing import CliRunner

import devnet
from aggregator import devnet_cli
from aggregator.cli import app
from aggregator.config import load_settings
from aggregator.devnet_cli import StageDisplay, current_devnet_config, devnet_config_path, is_devnet_config
from devnet import install
from devnet.node import free_port
from devnet.progress import StageEvent, stage


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private XMARGIN_HOME and devnet run file (the devnet cache stays shared)."""
    monkeypatch.setenv("XMARGIN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XMARGIN_DEVNET_RUN", str(tmp_path / "run" / "run.json"))
    monkeypatch.delenv("XMARGIN_CONFIG", raising=False)
    monkeypatch.delenv("XMARGIN_DB_URL", raising=False)
    return tmp_path


def xm(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def _one_error_line(err: str) -> str:
    """The whole of stderr, which must be one ``error: …`` line and no traceback."""
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    return lines[0]


@pytest.fixture
def blocker() -> Iterator[socket.socket]:
    """A listener holding a loopback port (as another program would)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock
    sock.close()


# --------------------------------------------------------------------------------- no devnet: clear lines
@pytest.mark.parametrize("args", [["devnet", "info"], ["devnet", "info", "--json"],
                                  ["devnet", "set-price", "WETH", "10"], ["devnet", "seed"]])
def test_commands_without_a_running_devnet_say_so_in_one_line(env: Path, args: list[str]) -> None:
    code, out, err = xm(*args)
    assert code == 1
    assert out == ""
    line = _one_error_line(err)
    assert "no devnet is running" in line
    assert "xmargin devnet up" in line


def test_down_twice_is_not_an_error(env: Path) -> None:
    assert xm("devnet", "down") == (0, "no devnet was running\n", "")
    assert xm("devnet", "down") == (0, "no devnet was running\n", "")


@pytest.mark.parametrize(("price", "message"), [
    ("0", "a price must be a positive number of dollars, got 0"),
    ("nan", "got nan"),
    ("inf", "got inf"),
    ("1e-9", "a price must be at least $0.00000001"),
])
def test_set_price_refuses_a_price_the_feeds_cannot_hold(env: Path, price: str, message: str) -> None:
    code, out, err = xm("devnet", "set-price", "WETH", price)
    assert code == 2
    assert out == ""
    assert message in _one_error_line(err)


def test_an_unreadable_run_file_is_reported_and_cleared_by_down(env: Path) -> None:
    run = env / "run" / "run.json"
    run.parent.mkdir(parents=True)
    run.write_text("{not json")
    code, _, err = xm("devnet", "info")
    assert code == 1
    assert "unreadable" in _one_error_line(err)
    assert xm("devnet", "down")[0] == 0
    assert not run.exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--port", "0"], "--port must be a TCP port (1-65535), got 0"),
    (["--perp-port", "70000"], "--perp-port must be a TCP port"),
    (["--port", "40001", "--perp-port", "40001"], "must differ"),
])
def test_up_refuses_impossible_ports(env: Path, args: list[str], message: str) -> None:
    code, _, err = xm("devnet", "up", *args)
    assert code == 2
    assert message in _one_error_line(err)
    assert not (env / "run" / "run.json").exists()


# ------------------------------------------------------------------------------------------------ config
def test_current_devnet_config_fingerprints_the_file(env: Path) -> None:
    assert current_devnet_config() is None
    path = devnet_config_path()
    path.parent.mkdir(parents=True)
    path.write_text('[[chains]]\nname = "devnet"\nchain_id = 31337\nrpc_url = "http://127.0.0.1:1"\n')
    first = current_devnet_config()
    assert first is not None
    assert first.path == path
    assert "127.0.0.1:1" in first.text
    path.write_text(path.read_text().replace(":1", ":2"))
    second = current_devnet_config()
    assert second is not None
    assert second.fingerprint != first.fingerprint
    assert current_devnet_config(path) == second
    assert is_devnet_config(str(path))
    assert is_devnet_config(env / "home" / "." / "devnet.toml")
    assert not is_devnet_config(env / "other.toml")
    assert not is_devnet_config(None)


# ---------------------------------------------------------------------------------------------- progress
def test_stage_reports_start_update_done_and_failures() -> None:
    events: list[StageEvent] = []
    with stage(events.append, "seed", "seeding") as update:
        update("a (1/2)")
    with pytest.raises(RuntimeError), stage(events.append, "deploy_aave", "deploying"):
        raise RuntimeError("hardhat deploy failed (exit 1):\nlots of output")
    assert [(e.stage, e.status, e.detail) for e in events] == [
        ("seed", "start", None), ("seed", "update", "a (1/2)"), ("seed", "done", None),
        ("deploy_aave", "start", None), ("deploy_aave", "failed", "hardhat deploy failed (exit 1):"),
    ]
    assert all(e.elapsed_s >= 0 for e in events)
    with stage(None, "seed", "seeding") as update:  # no callback: nothing reported, nothing breaks
        update("x")


def test_first_install_reports_npm_ci_and_compile_and_prints_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """A first run (no install stamps) reports each install step it runs; the devnet package itself is silent.
    The npm and node commands are recorded instead of run (the shared node_modules stay as they are)."""
    ran: list[str] = []
    monkeypatch.setattr(install, "_NPM_STAMP", tmp_path / "npm-stamp")
    monkeypatch.setattr(install, "_BUILD_STAMP", tmp_path / "build-stamp")
    monkeypatch.setattr(install, "_run", lambda cmd, cwd: ran.append(" ".join(cmd[:2])) or "")
    events: list[StageEvent] = []
    install.ensure_installed(events.append)
    assert ran == ["npm ci", f"node {install.DEVNET_DIR / 'compile.js'}"]
    assert [(e.stage, e.status) for e in events] == [("npm_ci", "start"), ("npm_ci", "done"),
                                                    ("compile", "start"), ("compile", "done")]
    assert events[0].text.startswith("npm ci (first run)")
    assert "Morpho Blue" in events[2].text
    assert "solc-js" in events[2].text
    events.clear()
    ran.clear()
    install.ensure_installed(events.append)  # current now: nothing runs, nothing is reported
    assert (ran, events) == ([], [])
    assert capfd.readouterr() == ("", "")


def _events() -> list[StageEvent]:
    return [
        StageEvent("npm_ci", "npm ci (first run)", "start", 0.0),
        StageEvent("npm_ci", "npm ci (first run)", "done", 62.34),
        StageEvent("seed", "seeding 6 wallets", "start", 0.0),
        StageEvent("seed", "seeding 6 wallets", "update", 1.0, "safe (2/6)"),
        StageEvent("seed", "seeding 6 wallets", "failed", 2.0, "reverted"),
    ]


def test_stage_display_writes_one_plain_line_per_stage_when_not_a_terminal() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=False, width=40)  # narrower than the lines: no wrapping
    with StageDisplay(console) as display:
        for event in _events():
            display(event)
    assert buffer.getvalue().splitlines() == ["npm ci (first run)… done in 62.3 s",
                                              "seeding 6 wallets… failed after 2.0 s"]


def test_stage_display_shows_live_lines_with_marks_in_a_terminal() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=100)
    with StageDisplay(console) as display:
        for event in _events():
            display(event)
    text = buffer.getvalue()
    assert "✓" in text
    assert "npm ci (first run)" in text
    assert "✗" in text
    assert "failed: reverted" in text


# ------------------------------------------------------------------------------------- on a real devnet
@pytest.mark.chain
def test_a_restarted_devnet_keeps_its_ports_and_its_config(env: Path) -> None:
    """``devnet up`` after ``devnet down`` reuses both ports, so the config file is byte-identical and a
    client holding the old URLs (``xmargin run``) reaches the new chain."""
    try:
        code, out, err = xm("devnet", "up")
        assert code == 0, err
        assert "config for xmargin (written)" in out
        config = current_devnet_config()
        assert config is not None
        first = devnet.info()
        rpc_url, perp_url = first.rpc_url, first.services["perp_api"]
        assert xm("devnet", "down")[1] == "devnet stopped\n"
        code, out, err = xm("devnet", "up")
        assert code == 0, err
        assert f"devnet up at {rpc_url}" in out
        assert f"perp API {perp_url}" in out
        assert "config for xmargin (unchanged)" in out
        assert err == ""
        after = current_devnet_config()
        assert after is not None
        assert after.fingerprint == config.fingerprint
        settings = load_settings(config.path)  # what a running `xmargin run` holds
        assert devnet.rpc(settings.chains[0].resolve_rpc_url(), "eth_chainId") == "0x7a69"
        assert devnet.info().services["perp_api"] == perp_url
    finally:
        devnet.down()


@pytest.mark.chain
def test_when_the_last_port_is_taken_the_devnet_moves_and_says_so(env: Path, blocker: socket.socket) -> None:
    port = blocker.getsockname()[1]
    ports_file = env / "run" / "run.ports.json"
    ports_file.parent.mkdir(parents=True)
    ports_file.write_text(json.dumps({"rpc": port, "perp_api": None}))
    try:
        code, out, err = xm("devnet", "up")
        assert code == 0, err
        assert f"127.0.0.1:{port}" not in out
        assert f"the last run's RPC port {port} is taken, so the devnet moved to" in err
        assert "Traceback" not in err
        moved = devnet.ports_of(devnet.info())
        assert json.loads(ports_file.read_text()) == {"rpc": moved.rpc, "perp_api": moved.perp_api}
    finally:
        devnet.down()


@pytest.mark.chain
@pytest.mark.parametrize("option", ["--port", "--perp-port"])
def test_a_wanted_port_that_is_taken_is_one_clear_error(env: Path, blocker: socket.socket, option: str) -> None:
    port = blocker.getsockname()[1]
    code, _, err = xm("devnet", "up", option, str(port))
    assert code == 1
    line = _one_error_line(err)
    assert f"port {port} on 127.0.0.1 is in use by another process" in line
    assert "--port" in line
    assert not (env / "run" / "run.json").exists()  # nothing left running
    assert current_devnet_config() is None


@pytest.mark.chain
def test_up_on_other_ports_while_one_runs_refuses(env: Path) -> None:
    try:
        running = devnet_cli.up()
        code, _, err = xm("devnet", "up", "--port", str(free_port()))
        assert code == 1
        line = _one_error_line(err)
        assert f"a devnet is already running at {running.info['rpc_url']}" in line
        assert "xmargin devnet down" in line
        assert devnet.info().rpc_url == running.info["rpc_url"]  # still there, untouched
        same = devnet.ports_of(devnet.info()).rpc
        code, out, _ = xm("devnet", "up", "--port", str(same))
        assert code == 0
        assert "devnet already running at" in out
    finally:
        devnet.down()


@pytest.mark.chain
def test_set_price_and_seed_mistakes_on_a_running_devnet(env: Path) -> None:
    try:
        devnet_cli.up()
        running = devnet.info()
        before = devnet.latest_round(running, "WETH")
        code, _, err = xm("devnet", "set-price", "FOO", "10")
        assert code == 2
        assert _one_error_line(err) == "error: unknown symbol 'FOO': the devnet has AAVE, DAI, LINK, USDC, WETH"
        code, _, err = xm("devnet", "set-price", "WETH", "0")
        assert code == 2
        assert "positive" in _one_error_line(err)
        assert devnet.latest_round(running, "WETH") == before  # nothing moved
        assert xm("devnet", "set-price", "weth", "3999.5")[1] == "WETH = $3,999.5\n"
        assert devnet.latest_round(running, "WETH").answer_raw == 399_950_000_000
        code, out, _ = xm("devnet", "seed")
        assert code == 0
        assert "seeding 6 wallets" in out  # the stage, one line (not a terminal)
        assert "seeded 0x" in out
        code, out, _ = xm("devnet", "seed")
        assert code == 0
        assert "seeded already" in out
        assert "seeding 6 wallets" not in out
        assert out.count("tracking 0x") == len(devnet.SEED_LABELS) - 1  # the lender is not tracked
    finally:
        devnet.down()


@pytest.mark.chain
@pytest.mark.slow
def test_the_first_deployment_reports_every_stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A devnet cache of its own (no deployed state yet): the deployment's stages are reported in order, each
    started and done; the next start loads the cache and reports only the start."""
    monkeypatch.setenv("XMARGIN_DEVNET_CACHE", str(tmp_path / "cache"))
    events: list[StageEvent] = []
    with devnet.Devnet.launch(progress=events.append) as dn:
        assert dn.deployed
    stages = ["deploy_aave", "deploy_feeds", "deploy_venues", "cache", "anvil", "perp_api"]
    assert [(e.stage, e.status) for e in events] == [(s, status) for s in stages for status in ("start", "done")]
    assert "Aave v3" in events[0].text
    events.clear()
    with devnet.Devnet.launch(progress=events.append) as dn:
        assert not dn.deployed
    assert [(e.stage, e.status) for e in events] == [("anvil", "start"), ("anvil", "done"), ("perp_api", "start"),
                                                    ("perp_api", "done")]


def _runs(db_url: str) -> list[tuple[int, str]]:
    """(id, status) of every sync run in the store, oldest first."""
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT id, status FROM sync_runs ORDER BY id")).all()
    finally:
        engine.dispose()
    return [(int(i), str(s)) for i, s in rows]


def _wait_for(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.5)


@pytest.mark.chain
def test_a_running_xmargin_run_syncs_again_after_the_devnet_restarts(env: Path) -> None:
    """The issue's scenario: ``xmargin run`` on the devnet's config, ``devnet down`` then ``devnet up``: the
    chain comes back on the same URL, so the running process syncs it again without being touched."""
    exe = str(Path(sys.executable).with_name("xmargin"))
    full_env = {**os.environ, "XMARGIN_HOME": str(env / "home"), "XMARGIN_DEVNET_RUN": str(env / "run" / "run.json"),
                "XMARGIN_CONFIG": str(devnet_config_path())}
    db_url = f"sqlite:///{env / 'home' / 'xmargin.db'}"
    # The run's output goes to a file; PYTHONFAULTHANDLER makes a SIGABRT dump every thread's stack into it, so a
    # run that does not stop on SIGTERM says where it hangs.
    log = env / "run.log"
    proc: subprocess.Popen[bytes] | None = None
    try:
        assert xm("devnet", "up")[0] == 0
        os.environ["XMARGIN_CONFIG"] = full_env["XMARGIN_CONFIG"]  # `devnet seed` tracks into the config's store
        assert xm("devnet", "seed")[0] == 0
        with log.open("wb") as out:
            proc = subprocess.Popen([exe, "-v", "run", "--no-api", "--interval", "1"],
                                    env={**full_env, "PYTHONFAULTHANDLER": "1"}, stdout=out, stderr=subprocess.STDOUT)
        _wait_for(lambda: any(s == "ok" for _, s in _runs(db_url)), 60, "a first good sync")
        assert xm("devnet", "down")[0] == 0
        time.sleep(3)  # a few intervals with the chain gone: the syncs fail (whether or not the store records them)
        before = max(i for i, s in _runs(db_url) if s == "ok")
        code, out, err = xm("devnet", "up")
        assert code == 0, err
        assert "config for xmargin (unchanged)" in out
        _wait_for(lambda: any(i > before and s == "ok" for i, s in _runs(db_url)), 90, "a good sync after the restart")
        assert proc.poll() is None  # the same process, still running
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGABRT)  # the stacks, into the log
                proc.wait(30)
                raise AssertionError("xmargin run did not stop within 30 s of SIGTERM; its log ends:\n"
                                     + log.read_text(errors="replace")[-12_000:]) from None
        os.environ.pop("XMARGIN_CONFIG", None)
        devnet.down()
