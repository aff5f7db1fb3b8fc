"""The ``xmargin`` command line: wallets, health, bad input; ``sync --once`` and ``devnet`` on the devnet."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import devnet
from aggregator.cli import app
from db import Store
from tests.db import db_testdata as td

ROOT = Path(__file__).resolve().parents[2]
WALLET = "0x52908400098527886E0F7030069857D2E4169EE7"  # EIP-55 test vector


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A private XMARGIN_HOME (embedded SQLite store) and devnet run file."""
    monkeypatch.setenv("XMARGIN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XMARGIN_DEVNET_RUN", str(tmp_path / "devnet-run.json"))
    monkeypatch.delenv("XMARGIN_CONFIG", raising=False)
    monkeypatch.delenv("XMARGIN_DB_URL", raising=False)
    return {"XMARGIN_HOME": str(tmp_path / "home"), "XMARGIN_DEVNET_RUN": str(tmp_path / "devnet-run.json")}


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_wallet_add_list_remove(env: dict[str, str]) -> None:
    assert run("wallet", "add", WALLET.lower(), "--label", "alice")[0] == 0
    code, out, _ = run("wallet", "list", "--json")
    assert code == 0
    assert json.loads(out) == [{"address": WALLET, "label": "alice", "ens_name": None}]
    assert run("wallet", "remove", WALLET)[0] == 0
    assert json.loads(run("wallet", "list", "--json")[1]) == []
    code, _, err = run("wallet", "remove", WALLET)
    assert code == 1
    assert "not tracked" in err


@pytest.mark.parametrize("bad", ["0x123", "hello", "0x52908400098527886E0F7030069857D2E4169Ee7", "0x" + "g" * 40])
def test_invalid_addresses_get_a_clear_error_and_change_nothing(env: dict[str, str], bad: str) -> None:
    code, _, err = run("wallet", "add", bad)
    assert code == 2
    assert "address" in err
    assert json.loads(run("wallet", "list", "--json")[1]) == []
    assert run("health", bad)[0] == 2


def test_health_of_an_untracked_wallet_says_so(env: dict[str, str]) -> None:
    code, _, err = run("health", WALLET, "--json")
    assert code == 1
    assert "not tracked" in err


def test_sync_without_a_chain_explains_what_to_configure(env: dict[str, str]) -> None:
    code, _, err = run("sync", "--once")
    assert code == 2
    assert "no chain configured" in err


def test_a_broken_config_file_is_reported(env: dict[str, str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[venues]]\nname = "aave_v3"\ntype = "compound"\nchain = "x"\n')
    code, _, err = run("--config", str(bad), "wallet", "list")
    assert code == 2
    assert "invalid configuration" in err


@pytest.mark.chain
def test_devnet_up_seed_sync_health_down_through_the_console_script(env: dict[str, str]) -> None:
    """The real ``xmargin`` executable, as a user runs it, against the shared devnet it starts."""
    exe = str(Path(sys.executable).with_name("xmargin"))
    full_env = {**os.environ, **env}

    def xm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run([exe, *args], env=full_env, capture_output=True, text=True, check=check, timeout=300)

    try:
        xm("devnet", "up")
        info = json.loads(xm("devnet", "info", "--json").stdout)
        assert {"rpc_url", "chain_id", "contracts", "tokens"} <= set(info)
        assert "perp_api" in info["services"]
        assert {"aave_v3.pool", "aave_v3.oracle", "multicall3"} <= set(info["contracts"])
        full_env["XMARGIN_CONFIG"] = str(Path(env["XMARGIN_HOME"]) / "devnet.toml")
        seeded = xm("devnet", "seed").stdout
        assert "near_liquidation" in seeded
        assert xm("sync", "--once").returncode == 0
        near = devnet.wallet_address("near_liquidation")
        doc = json.loads(xm("health", near, "--json").stdout)
        venue = next(v for v in doc["venues"] if v["venue"] == "aave_v3")
        assert venue["matches_onchain"] is True
        assert 1.0 < venue["health_factor"] < 1.1
        assert xm("devnet", "set-price", "WETH", "3700").returncode == 0
        assert xm("sync", "--once").returncode == 0
        after = next(v for v in json.loads(xm("health", near, "--json").stdout)["venues"] if v["venue"] == "aave_v3")
        assert after["health_factor"] < 1.0
        assert after["block"] > venue["block"]
        table = xm("health", near).stdout
        assert "WETH" in table
        assert "health factor" in table
        bad = xm("devnet", "set-price", "NOPE", "1", check=False)
        assert bad.returncode != 0
        assert "unknown symbol" in bad.stderr
        # The tracked wallet's own book, backtested (ADDRESS), from the snapshots just synced.
        hedged = devnet.wallet_address("hedged")
        bt = xm("backtest", hedged, "--json", check=False)
        if "market data not found" in bt.stderr:
            assert bt.returncode == 1
        else:
            assert bt.returncode == 0, bt.stderr
            doc = json.loads(bt.stdout)
            assert doc["wallet"]["address"] == hedged
            assert doc["wallet"]["block"] >= after["block"]
            # 20 + 10 WETH collateral and an LP leg, 25 ETH short on the perps: long ETH, short USDC overall
            assert doc["exposures_usd"]["ETH"] > 0 > doc["exposures_usd"]["USDC"]
            assert {r["sample"] for r in doc["results"]} == {"in-sample", "out-of-sample"}
    finally:
        xm("devnet", "down", check=False)
    assert "no devnet" in xm("devnet", "down").stdout


@pytest.mark.chain
def test_demo_runs_the_requested_cycles_and_leaves_health_in_the_store(env: dict[str, str]) -> None:
    code, out, _ = run("demo", "--cycles", "4", "--interval", "0")
    assert code == 0
    # Progress, one line per stage (not a terminal): the start, and the seeding with its time.
    assert re.search(r"^starting anvil on the cached chain state… done in \d+\.\d s$", out, re.M), out[:2000]
    assert re.search(r"^seeding 6 wallets .*… done in \d+\.\d s$", out, re.M), out[:2000]
    assert re.search(r"^devnet ready in \d+\.\d s \((from the cached chain state|deployed and cached)", out, re.M)
    assert "cycle 4" in out
    assert "cycle 5" not in out
    assert "MISMATCH" not in out
    assert "LIQ" in out  # the scripted dip takes near_liquidation under 1
    assert "hedged: unified health" in out  # the netting engine's view of the wallet on several venues
    assert "netting benefit" in out
    # Every cycle ends with the dashboard's URL: the hedged wallet's page, served while the price moves.
    last = [line for line in out.splitlines() if line.strip()][-1]
    assert re.fullmatch(rf"dashboard: http://127\.0\.0\.1:\d+/ui/wallet/{devnet.wallet_address('hedged')}", last), last
    assert out.count("dashboard: http://") == 1 + 4  # at start (the list page) and after each cycle
    near = devnet.wallet_address("near_liquidation")
    code, doc_text, _ = run("health", near, "--json")
    assert code == 0
    venue = next(v for v in json.loads(doc_text)["venues"] if v["venue"] == "aave_v3")
    assert venue["matches_onchain"] is True
    assert venue["health_factor"] < 1.0  # the last cycle's price ($3,720) is what the store holds


def test_alert_add_list_remove(env: dict[str, str]) -> None:
    with Store.open() as store:  # a synced price of WETH: a price rule names an asset the store knows
        store.write_sync(td.batch(td.setup(store, 1), 100))
    assert run("wallet", "add", WALLET)[0] == 0
    code, out, _ = run("alert", "add", WALLET, "price_cross", "--asset", "WETH", "--level", "3000", "--direction",
                       "below", "--hysteresis", "25", "--cooldown", "600", "--json")
    assert code == 0
    rule = json.loads(out)
    assert rule["params"] == {"asset": "WETH", "level": 3000.0, "direction": "below"}
    code, out, _ = run("alert", "add", WALLET, "unified_health_below", "--threshold", "1.2", "--severity", "critical")
    assert code == 0
    listed = json.loads(run("alert", "list", "--json")[1])
    assert [(r["kind"], r["hysteresis"], r["cooldown_s"], r["active"]) for r in listed] == [
        ("price_cross", 25.0, 600.0, False), ("unified_health_below", 0.0, 0.0, False)]
    assert run("alert", "remove", str(rule["id"]))[0] == 0
    assert [r["kind"] for r in json.loads(run("alert", "list", WALLET, "--json")[1])] == ["unified_health_below"]
    code, _, err = run("alert", "remove", str(rule["id"]))
    assert code == 1
    assert "no alert rule" in err
    assert json.loads(run("alert", "history", "--json")[1]) == []


@pytest.mark.parametrize(("args", "message"), [
    (["venue_health_below", "--threshold", "1.2"], "needs venue"),
    (["venue_health_below", "--venue", "nowhere", "--threshold", "1.2"], "unknown venue"),
    (["price_cross", "--asset", "WETH", "--level", "-5", "--direction", "below"], "level"),
    (["unified_health_below", "--threshold", "1.2", "--cooldown", "-1"], "cooldown"),
])
def test_alert_add_rejects_bad_rules_and_stores_nothing(env: dict[str, str], args: list[str], message: str) -> None:
    assert run("wallet", "add", WALLET)[0] == 0
    code, _, err = run("alert", "add", WALLET, *args)
    assert code == 2
    assert message in err
    assert json.loads(run("alert", "list", "--json")[1]) == []


def test_alert_for_an_untracked_wallet_says_so(env: dict[str, str]) -> None:
    code, _, err = run("alert", "add", WALLET, "oracle_invalid")
    assert code == 2
    assert "not tracked" in err
    assert run("alert", "add", "0x123", "oracle_invalid")[0] == 2


def test_keeper_plans_is_empty_before_any_plan(env: dict[str, str]) -> None:
    code, out, _ = run("keeper", "plans", "--json")
    assert code == 0
    assert json.loads(out) == []


def test_backtest_of_a_wallet_goes_through_the_cli_store_and_address_checks(env: dict[str, str]) -> None:
    code, _, err = run("backtest", WALLET)
    assert code == 1
    assert "is not tracked" in err
    assert run("backtest", "0x123")[0] == 2
    assert run("wallet", "add", WALLET)[0] == 0
    code, _, err = run("backtest", WALLET.lower(), "--json")
    assert code == 1
    assert f"{WALLET} has no snapshot yet" in err


def test_an_unexpected_error_is_one_line_and_exit_1_never_a_traceback(env: dict[str, str], tmp_path: Path) -> None:
    """The console script itself (``main``), as a user runs it: a store that is not a database."""
    bad = tmp_path / "not-a-database.db"
    bad.write_bytes(b"this is not a SQLite file " * 10)
    exe = str(Path(sys.executable).with_name("xmargin"))
    done = subprocess.run([exe, "wallet", "list"], env={**os.environ, **env, "XMARGIN_DB_URL": f"sqlite:///{bad}"},
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr + done.stdout
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1
    assert lines[0].startswith("error: DatabaseError")


def test_empty_results_say_so(env: dict[str, str]) -> None:
    assert "no wallet tracked" in run("wallet", "list")[1]
    assert "no alert rules" in run("alert", "list")[1]
    assert "no alert has fired" in run("alert", "history")[1]
    assert "no chain synced yet" in run("chains")[1]
