"""The keeper as its operators see it (issue 12, defect 7), on the devnet with the hedged wallet:

- a dry run never loads the signing key; executing without it fails with one clear line naming the variable,
  logged once, and ``xmargin run``'s cycle keeps syncing;
- a plan's identity includes what decides its outcome (limits, targets, mode): raising a limit plans again at
  the same block, while the same configuration never stores or sends a plan twice;
- a standing dry-run plan or refusal is stored once (its last-seen block advances) and logged once;
- starting a plan and sending each transaction is logged (plan id, wallet, tx hash, nonce; never the key), and
  ``/metrics`` carries the keeper's figures;
- ``keeper plans`` shows mode, transaction hashes and status; ``keeper plan`` prints symbols and fails non-zero,
  printing its error once;
- a key of another wallet is named with its address, and the ``xmargin run`` banner says which wallets the
  keeper can sign for.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import devnet
from aggregator.config import KeeperConfig, Settings, TargetConfig, write_settings_toml
from aggregator.cycle import Cycle
from aggregator.devnet_cli import devnet_settings
from aggregator.keeper.chain import Signer
from aggregator.keeper.runner import Keeper
from aggregator.metrics import Metrics
from aggregator.pipeline import sync_once
from db import NewTx, Store
from devnet.evm import mine, rpc

HEDGED = devnet.wallet_address("hedged")
STRANGER_KEY = devnet.wallet_key("keeper-operator-stranger")
STRANGER = devnet.wallet_address("keeper-operator-stranger")
KEY_ENV = "XMARGIN_TEST_KEEPER_OPS_KEY"
TARGET = TargetConfig(target=1.4, offset=0.1)
CRASH_USD = 3_000  # from $4,000: Aave 1.65 → 1.24, Morpho 1.72 → 1.29, both under the 1.3 trigger
EXE = str(Path(sys.executable).with_name("xmargin"))

chain_test = pytest.mark.chain


@pytest.fixture
def chain(seeded_devnet: devnet.DevnetInfo) -> Iterator[devnet.DevnetInfo]:
    snap = devnet.snapshot(seeded_devnet)
    yield seeded_devnet
    devnet.revert(seeded_devnet, snap)
    devnet.set_price(seeded_devnet, "WETH", 4_000)  # the perp API's marks are not in the chain's snapshot


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(f"sqlite:///{tmp_path / 'keeper.db'}") as s:
        s.add_wallets([(HEDGED, "hedged")])
        yield s


@pytest.fixture(autouse=True)
def no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)


@pytest.fixture
def signer_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, devnet.wallet_key("hedged"))


def _settings(info: devnet.DevnetInfo, **keeper: Any) -> Settings:
    cfg = {"enabled": True, "execute": True, "wallets": (HEDGED,), "signer_key_env": KEY_ENV,
           "default_target": TARGET, "buffer": 0.002, **keeper}
    return devnet_settings(info).model_copy(update={"keeper": KeeperConfig(**cfg)})


def _nonce(info: devnet.DevnetInfo) -> int:
    return int(rpc(info, "eth_getTransactionCount", [HEDGED, "latest"]), 16)


def _crash(info: devnet.DevnetInfo, settings: Settings, store: Store, usd: float = CRASH_USD) -> None:
    devnet.set_price(info, "WETH", usd)
    assert sync_once(settings, store).ok


def _next_block(info: devnet.DevnetInfo, settings: Settings, store: Store) -> None:
    mine(info, 1)
    assert sync_once(settings, store).ok


def _records(caplog: pytest.LogCaptureFixture, level: int, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno == level and text in r.getMessage()]


def _metrics(store: Store) -> dict[str, float]:
    out = {}
    for line in Metrics(store).render().decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


# ------------------------------------------------------------------------------------------------- the key
@chain_test
def test_a_dry_run_never_loads_the_key(
    chain: devnet.DevnetInfo, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``execute = false`` with ``signer_key_env`` naming an unset variable: the dry run plans and simulates; the
    key is never read (not even when the variable is set)."""
    settings = _settings(chain, execute=False)
    loaded: list[str] = []
    monkeypatch.setattr(Signer, "from_env", classmethod(lambda cls, var: loaded.append(var)))
    _crash(chain, settings, store)
    with Keeper(settings, store) as keeper:
        (outcome,) = keeper.run()
    assert (outcome.status, outcome.message) == ("simulated", "dry run")
    assert loaded == []


@chain_test
def test_execute_without_its_key_fails_with_one_clear_line_and_the_cycle_goes_on(
    chain: devnet.DevnetInfo, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """``execute = true`` with the key's variable unset: no traceback, one ERROR line naming the variable (not
    one per cycle), no plan stored, nothing sent; ``xmargin run``'s cycle still syncs and evaluates alerts."""
    caplog.set_level(logging.DEBUG)
    settings = _settings(chain)
    devnet.set_price(chain, "WETH", CRASH_USD)
    nonce = _nonce(chain)
    with Cycle(settings, store) as cycle:
        reports = [cycle.run() for _ in range(3)]
    for report in reports:
        assert report.sync.ok
        assert report.alerts is not None
        (outcome,) = report.keeper
        assert outcome.status == "error"
        assert KEY_ENV in outcome.message
    assert [r.keeper[0].repeated for r in reports] == [False, True, True]  # `run` prints it once too
    named = [r for r in caplog.records if r.levelno >= logging.ERROR and KEY_ENV in r.getMessage()]
    assert len(named) == 1, [r.getMessage() for r in named]
    assert all(r.exc_info is None for r in caplog.records if r.levelno >= logging.ERROR)
    assert store.list_plans() == []
    assert _nonce(chain) == nonce


def test_the_banner_names_the_wallets_the_keeper_signs_for(monkeypatch: pytest.MonkeyPatch) -> None:
    from aggregator.keeper.banner import keeper_banner

    others = (STRANGER, devnet.wallet_address("eth_long"))
    base = Settings()
    cfg = {"enabled": True, "wallets": (HEDGED, *others), "signer_key_env": KEY_ENV}
    off = base.model_copy(update={"keeper": KeeperConfig()})
    dry = base.model_copy(update={"keeper": KeeperConfig(**cfg)})
    live = base.model_copy(update={"keeper": KeeperConfig(**cfg, execute=True)})
    assert keeper_banner(off) == "keeper off"
    assert keeper_banner(dry) == "keeper dry run for 3 wallets"
    monkeypatch.setenv(KEY_ENV, devnet.wallet_key("hedged"))
    short = f"{HEDGED[:6]}…{HEDGED[-4:]}"
    assert keeper_banner(live) == f"keeper executing for {short}; dry run for 2 others"
    monkeypatch.setenv(KEY_ENV, devnet.wallet_key("nobody-managed"))
    nobody = devnet.wallet_address("nobody-managed")
    text = keeper_banner(live)
    assert text.startswith("keeper dry run for 3 wallets")
    assert f"{nobody[:6]}…{nobody[-4:]}" in text
    monkeypatch.delenv(KEY_ENV)
    text = keeper_banner(live)
    assert text.startswith("keeper not executing")
    assert KEY_ENV in text


@chain_test
def test_another_wallets_key_is_named(
    chain: devnet.DevnetInfo, store: Store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    monkeypatch.setenv(KEY_ENV, STRANGER_KEY)
    settings = _settings(chain)
    _crash(chain, settings, store)
    nonce = _nonce(chain)
    with Keeper(settings, store) as keeper:
        (outcome,) = keeper.run()
    assert outcome.status == "simulated"
    assert STRANGER in outcome.message
    assert HEDGED in outcome.message
    assert any(STRANGER in r.getMessage() and HEDGED in r.getMessage() for r in caplog.records)
    assert _nonce(chain) == nonce


# --------------------------------------------------------------------------------------------- plan identity
@chain_test
def test_raising_a_limit_plans_again_at_the_same_block(
    chain: devnet.DevnetInfo, store: Store, signer_env: None
) -> None:
    """Refused over ``max_action_usd``; a restart with the same limit stores nothing new and sends nothing; with
    the limit raised the same block is planned again and executed."""
    tight = _settings(chain, max_action_usd=1_000.0)
    _crash(chain, tight, store)
    nonce = _nonce(chain)
    with Keeper(tight, store) as keeper:
        (refused,) = keeper.run()
    assert refused.status == "refused"
    with Keeper(tight, store) as restarted:
        (again,) = restarted.run()
    assert again.status == "refused"
    assert [p.status for p in store.list_plans()] == ["refused"]
    assert _nonce(chain) == nonce
    with Keeper(_settings(chain, max_action_usd=50_000.0), store) as raised:
        (outcome,) = raised.run()
    assert outcome.status == "executed", outcome.message
    assert [p.status for p in store.list_plans()] == ["executed", "refused"]
    executed = store.list_plans()[0]
    assert executed.block_number == store.list_plans()[1].block_number
    sent = _nonce(chain) - nonce
    assert sent == len(store.plan_txs(executed.id)) > 0
    # the same (raised) configuration again, at the same sync: nothing new stored, nothing sent
    with Keeper(_settings(chain, max_action_usd=50_000.0), store) as restarted:
        (last,) = restarted.run()
    assert last.status == "waiting"
    assert len(store.list_plans()) == 2
    assert _nonce(chain) == nonce + sent


@chain_test
def test_a_changed_target_plans_again_at_the_same_block(chain: devnet.DevnetInfo, store: Store) -> None:
    settings = _settings(chain, execute=False, signer_key_env=None)
    _crash(chain, settings, store)
    with Keeper(settings, store) as keeper:
        (first,) = keeper.run()
    higher = _settings(chain, execute=False, signer_key_env=None,
                       default_target=TargetConfig(target=1.45, offset=0.1))
    with Keeper(higher, store) as keeper:
        (second,) = keeper.run()
    assert (first.status, second.status) == ("simulated", "simulated")
    plans = store.list_plans()
    assert len(plans) == 2
    assert plans[0].block_number == plans[1].block_number
    assert {p.plan["targets"]["aave_v3"]["target"] for p in plans} == {1.4, 1.45}


# ------------------------------------------------------------------------------------------ standing plans
@chain_test
def test_a_standing_dry_run_is_stored_once(chain: devnet.DevnetInfo, store: Store) -> None:
    """Block after block the same dry-run plan (amounts within tolerance, same outcome) is one row whose last-seen
    block advances; a plan that changes is stored anew."""
    settings = _settings(chain, execute=False, signer_key_env=None)
    _crash(chain, settings, store)
    with Keeper(settings, store) as keeper:
        first_block = keeper.run()[0]
        for _ in range(3):
            _next_block(chain, settings, store)
            (outcome,) = keeper.run()
            assert (outcome.status, outcome.repeated) == ("simulated", True)
        (plan,) = store.list_plans()
        assert plan.status == "simulated"
        assert plan.last_seen_block == store.latest_block(chain.chain_id)
        assert plan.last_seen_block >= plan.block_number + 3
        assert plan.seen_count == 4
        assert outcome.plan_id == plan.id == first_block.plan_id
        _crash(chain, settings, store, usd=2_800)  # a deeper crash: larger repays, a different plan
        (changed,) = keeper.run()
    assert (changed.status, changed.repeated) == ("simulated", False)
    assert len(store.list_plans()) == 2


@chain_test
def test_a_wallet_healthy_in_between_ends_the_standing_plan(chain: devnet.DevnetInfo, store: Store) -> None:
    """Unhealthy, healthy, then unhealthy again with the same plan: two episodes, two rows."""
    settings = _settings(chain, execute=False, signer_key_env=None)
    with Keeper(settings, store) as keeper:
        _crash(chain, settings, store)
        (first,) = keeper.run()
        _crash(chain, settings, store, usd=4_000)
        (healthy,) = keeper.run()
        _crash(chain, settings, store)
        (again,) = keeper.run()
    assert [o.status for o in (first, healthy, again)] == ["simulated", "healthy", "simulated"]
    assert again.repeated is False
    assert len(store.list_plans()) == 2


@chain_test
def test_a_standing_refusal_is_stored_and_logged_once(
    chain: devnet.DevnetInfo, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="aggregator.keeper")
    settings = _settings(chain, execute=False, signer_key_env=None, max_action_usd=1_000.0)
    _crash(chain, settings, store)
    with Keeper(settings, store) as keeper:
        keeper.run()
        for _ in range(3):
            _next_block(chain, settings, store)
            (outcome,) = keeper.run()
            assert outcome.status == "refused"
    (plan,) = store.list_plans()
    assert plan.seen_count == 4
    assert len(_records(caplog, logging.ERROR, "refused")) == 1
    assert len(_records(caplog, logging.DEBUG, "refused")) == 3
    figures = _metrics(store)
    assert figures['xmargin_keeper_plans{status="refused"}'] == 1
    assert figures["xmargin_keeper_refusals_standing"] == 1
    # a changed refusal (another limit) is logged again
    with Keeper(_settings(chain, execute=False, signer_key_env=None, max_action_usd=1_500.0), store) as keeper:
        (outcome,) = keeper.run()
    assert outcome.status == "refused"
    assert len(_records(caplog, logging.ERROR, "refused")) == 2
    assert len(store.list_plans()) == 2


# ------------------------------------------------------------------------------------------- logs, metrics
@chain_test
def test_execution_is_logged_and_counted(
    chain: devnet.DevnetInfo, store: Store, signer_env: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    settings = _settings(chain)
    _crash(chain, settings, store)
    with Keeper(settings, store) as keeper:
        (outcome,) = keeper.run()
    assert outcome.status == "executed", outcome.message
    plan = store.get_plan(outcome.plan_id or 0)
    assert plan is not None
    txs = store.plan_txs(plan.id)
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any(f"plan {plan.id}" in m and HEDGED in m and "executing" in m for m in infos), infos
    for tx in txs:
        assert any(tx.tx_hash in m and f"nonce {tx.nonce}" in m and f"plan {plan.id}" in m and "sent" in m
                   for m in infos), (tx.tx_hash, infos)
    key = devnet.wallet_key("hedged")
    assert not any(key[2:] in r.getMessage() for r in caplog.records)
    figures = _metrics(store)
    assert figures['xmargin_keeper_plans{status="executed"}'] == 1
    assert figures['xmargin_keeper_transactions{status="confirmed"}'] == len(txs)
    assert figures["xmargin_keeper_executed_usd_total"] == pytest.approx(plan.usd_total)
    assert figures["xmargin_keeper_last_plan_timestamp_seconds"] == pytest.approx(
        plan.created_at.timestamp(), abs=1)
    assert figures["xmargin_keeper_refusals_standing"] == 0


def test_metrics_count_plans_and_transactions_by_status(tmp_path: Path) -> None:
    """The keeper's figures are read from the store at scrape time (no chain needed)."""
    now = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    with Store.open(f"sqlite:///{tmp_path / 'm.db'}") as store:
        store.add_wallets([(HEDGED, None), (STRANGER, None)])
        empty = _metrics(store)
        assert empty['xmargin_keeper_plans{status="executed"}'] == 0
        assert empty["xmargin_keeper_executed_usd_total"] == 0
        assert "xmargin_keeper_last_plan_timestamp_seconds" not in empty

        def plan(key: str, status: str, wallet: str = HEDGED, usd: float = 100.0, minutes: int = 0) -> int:
            row = store.insert_plan(plan_key=key, wallet=wallet, chain_id=31337, block_number=10, status=status,
                                    execute=True, signer=wallet, usd_total=usd, plan={"actions": []},
                                    now=now + timedelta(minutes=minutes))
            assert row is not None
            return row.id

        done = plan("a", "simulated", usd=1_234.5)
        assert store.begin_execution(done, [NewTx(seq=i, description="d", to_address=STRANGER, nonce=i,
                                                  tx_hash="0x" + f"{i:064x}", raw_tx="0x02") for i in range(2)],
                                     now=now)
        for tx in store.plan_txs(done):
            store.update_tx(tx.id, "confirmed", now=now, block_number=11, gas_used=50_000)
        store.update_plan(done, "executed", now=now, expect=["executing"])
        plan("b", "refused", minutes=1)  # HEDGED's newest plan: a standing refusal
        plan("c", "refused", wallet=STRANGER, minutes=2)
        plan("d", "simulated", wallet=STRANGER, minutes=3)  # STRANGER's refusal no longer stands
        figures = _metrics(store)
    assert figures['xmargin_keeper_plans{status="executed"}'] == 1
    assert figures['xmargin_keeper_plans{status="refused"}'] == 2
    assert figures['xmargin_keeper_plans{status="simulated"}'] == 1
    assert figures['xmargin_keeper_transactions{status="confirmed"}'] == 2
    assert figures['xmargin_keeper_transactions{status="dropped"}'] == 0
    assert figures["xmargin_keeper_executed_usd_total"] == pytest.approx(1_234.5)
    assert figures["xmargin_keeper_last_plan_timestamp_seconds"] == (now + timedelta(minutes=3)).timestamp()
    assert figures["xmargin_keeper_refusals_standing"] == 1


# ---------------------------------------------------------------------------------------------------- CLI
def _cli_env(settings: Settings, store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    path = tmp_path / "config.toml"
    write_settings_toml(settings, path)
    env = {"XMARGIN_CONFIG": str(path), "XMARGIN_DB_URL": store.engine.url.render_as_string(hide_password=False),
           "XMARGIN_HOME": str(tmp_path / "home"), "COLUMNS": "100"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return {**os.environ, **env}


def test_keeper_plans_shows_mode_hashes_and_status(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aggregator.cli import app

    _cli_env(Settings(), store, tmp_path, monkeypatch)
    now = datetime.now(UTC)
    doc = {"actions": [{"kind": "repay", "venue": "aave_v3", "token": "0x" + "ab" * 20, "symbol": "USDC",
                        "amount": 1_500.0, "usd": 1_500.0}]}
    dry = store.insert_plan(plan_key="dry", wallet=HEDGED, chain_id=31337, block_number=7, status="simulated",
                            execute=False, signer=None, usd_total=1_500.0, plan=doc, now=now)
    live = store.insert_plan(plan_key="live", wallet=HEDGED, chain_id=31337, block_number=8, status="simulated",
                             execute=True, signer=HEDGED, usd_total=1_500.0, plan=doc, now=now)
    assert dry is not None
    assert live is not None
    hashes = ["0x4b27" + "0" * 56 + f"{i:02x}" + "22b8" for i in range(2)]
    assert store.begin_execution(live.id, [NewTx(seq=i, description="repay", to_address=STRANGER, nonce=40 + i,
                                                 tx_hash=h, raw_tx="0x02") for i, h in enumerate(hashes)], now=now)
    for tx in store.plan_txs(live.id):
        store.update_tx(tx.id, "confirmed", now=now, block_number=9, gas_used=1)
    store.update_plan(live.id, "executed", now=now, expect=["executing"])
    runner = CliRunner()
    table = runner.invoke(app, ["keeper", "plans"], catch_exceptions=False)
    assert table.exit_code == 0, table.output
    assert "dry run" in table.stdout
    assert "execute" in table.stdout
    assert "executed" in table.stdout
    assert f"{hashes[0][:6]}…{hashes[0][-4:]}" in table.stdout
    assert hashes[0] not in table.stdout  # shortened in the table
    assert "1,500 USDC" in table.stdout
    listed = runner.invoke(app, ["keeper", "plans", "--json"], catch_exceptions=False)
    assert listed.exit_code == 0, listed.output
    by_id = {p["id"]: p for p in json.loads(listed.stdout)}
    assert by_id[dry.id]["mode"] == "dry run"
    assert by_id[live.id]["mode"] == "execute"
    assert by_id[live.id]["status"] == "executed"
    assert [t["hash"] for t in by_id[live.id]["txs"]] == hashes
    assert [t["nonce"] for t in by_id[live.id]["txs"]] == [40, 41]
    assert by_id[dry.id]["txs"] == []


@chain_test
def test_keeper_plan_prints_symbols(
    chain: devnet.DevnetInfo, store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aggregator.cli import app

    settings = _settings(chain)
    _cli_env(settings, store, tmp_path, monkeypatch)
    _crash(chain, settings, store)
    result = CliRunner().invoke(app, ["keeper", "plan", HEDGED], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "USDC" in result.stdout
    for address in chain.tokens.values():
        assert address not in result.stdout
        assert address.lower() not in result.stdout.lower()
    doc = CliRunner().invoke(app, ["keeper", "plan", HEDGED, "--json"], catch_exceptions=False)
    (outcome,) = json.loads(doc.stdout)
    assert {a["symbol"] for a in outcome["actions"]} == {"USDC"}


@chain_test
def test_keeper_plan_failure_exits_non_zero_and_says_it_once(
    chain: devnet.DevnetInfo, store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No sync yet: the plan fails; the command exits non-zero and prints the reason once (a real process, so
    the logging set up by the CLI is the one a user sees)."""
    env = _cli_env(_settings(chain), store, tmp_path, monkeypatch)
    done = subprocess.run([EXE, "keeper", "plan", HEDGED], env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode != 0, done.stdout
    output = done.stdout + done.stderr
    assert "no synced state" in output
    assert output.count("no synced state") == 1, output
    assert "Traceback" not in output
