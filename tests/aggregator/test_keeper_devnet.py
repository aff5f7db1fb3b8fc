"""The keeper on the devnet, with the hedged wallet (Aave + Morpho + Uniswap + perps): a healthy wallet gets no
plan; a crash gets a plan that is simulated, executed with the wallet's devnet key and leaves every lending
venue at or above its target *as the protocols report it*; a dry run sends nothing; an infeasible or over-limit
plan is stored, reported and never executed; a keeper killed after storing its signed transactions finishes the
same plan once after a restart.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import devnet
from aggregator.config import KeeperConfig, Settings, TargetConfig
from aggregator.devnet_cli import devnet_settings
from aggregator.keeper.chain import SignedTx, send_raw, wait_receipt
from aggregator.keeper.runner import Keeper
from aggregator.pipeline import sync_once
from connectors.evm.rpc import RpcClient
from db import Store
from devnet import aave, morpho
from devnet.evm import rpc, transact

pytestmark = pytest.mark.chain

HEDGED = devnet.wallet_address("hedged")
KEY_ENV = "XMARGIN_TEST_KEEPER_KEY"
TARGET = TargetConfig(target=1.4, offset=0.1)
CRASH_USD = 3_000  # from $4,000: Aave 1.65 → 1.24, Morpho 1.72 → 1.29, both under the 1.3 trigger


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


def _settings(info: devnet.DevnetInfo, **keeper: Any) -> Settings:
    base = devnet_settings(info)
    cfg = {"enabled": True, "execute": True, "wallets": (HEDGED,), "signer_key_env": KEY_ENV,
           "default_target": TARGET, "buffer": 0.002, **keeper}
    return base.model_copy(update={"keeper": KeeperConfig(**cfg)})


@pytest.fixture
def signer_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, devnet.wallet_key("hedged"))


def _nonce(info: devnet.DevnetInfo) -> int:
    return int(rpc(info, "eth_getTransactionCount", [HEDGED, "latest"]), 16)


def _chain_health(info: devnet.DevnetInfo) -> tuple[float, float]:
    """(Aave, Morpho WETH/USDC) health factors as the protocols compute them now."""
    return (aave.account_data(info, HEDGED).health_factor_wad / 10**18,
            morpho.health_factor_wad(info, "WETH_USDC", HEDGED) / 10**18)


def _drain_idle(info: devnet.DevnetInfo) -> None:
    """Send the hedged wallet's idle USDC and WETH away."""
    for symbol in ("USDC", "WETH"):
        balance = aave.balance_of(info, symbol, HEDGED)
        if balance:
            transact(info, HEDGED, info.tokens[symbol], "transfer(address,uint256)", "0x" + "de" * 20, balance)


def _crash(info: devnet.DevnetInfo, settings: Settings, store: Store) -> None:
    devnet.set_price(info, "WETH", CRASH_USD)
    assert sync_once(settings, store).ok


def test_healthy_wallet_gets_no_plan(chain: devnet.DevnetInfo, store: Store, signer_env: None) -> None:
    settings = _settings(chain)
    assert sync_once(settings, store).ok
    nonce = _nonce(chain)
    with Keeper(settings, store) as keeper:
        (outcome,) = keeper.run()
    assert outcome.status == "healthy"
    assert store.list_plans() == []
    assert _nonce(chain) == nonce


def test_crash_is_repaired_to_target_as_the_chain_reports_it(
    chain: devnet.DevnetInfo, store: Store, signer_env: None
) -> None:
    settings = _settings(chain)
    _crash(chain, settings, store)
    before = _chain_health(chain)
    assert all(h < TARGET.target - TARGET.offset for h in before)
    nonce = _nonce(chain)
    with Keeper(settings, store) as keeper:
        (outcome,) = keeper.run()
        assert outcome.status == "executed", outcome.message
        assert outcome.plan is not None
        assert sorted((a.kind, a.venue.split(":")[0]) for a in outcome.plan.actions) == [
            ("repay", "aave_v3"), ("repay", "morpho_blue")]  # idle USDC repays both: two actions, no more
        plan = store.get_plan(outcome.plan_id or 0)
        assert plan is not None
        assert plan.status == "executed"
        assert plan.simulation is not None
        simulated = {k: v["health"] for k, v in plan.simulation["health"].items()}
        txs = store.plan_txs(plan.id)
        assert [t.status for t in txs] == ["confirmed"] * len(txs)
        assert _nonce(chain) == nonce + len(txs)  # two approvals, two repays
        # Measured from the chain, not from the plan: both venues at or above target, within the band.
        after = _chain_health(chain)
        for health in after:
            assert TARGET.target <= health <= TARGET.target + TARGET.offset + 0.01
        # The simulation predicted what the chain now says (interest of a few blocks apart).
        assert sorted(simulated.values()) == pytest.approx(sorted(after), rel=1e-4)
        # The next sync sees the repaired wallet: no new plan.
        assert sync_once(settings, store).ok
        (again,) = keeper.run()
        assert again.status == "healthy"
        assert len(store.list_plans()) == 1
        assert _nonce(chain) == nonce + len(txs)


def test_dry_run_simulates_and_sends_nothing(chain: devnet.DevnetInfo, store: Store) -> None:
    settings = _settings(chain, execute=False, signer_key_env=None)
    _crash(chain, settings, store)
    nonce, before = _nonce(chain), _chain_health(chain)
    with Keeper(settings, store) as keeper:
        (outcome,) = keeper.run()
    assert outcome.status == "simulated"
    assert outcome.message == "dry run"
    (plan,) = store.list_plans()
    assert plan.status == "simulated"
    assert plan.execute is False
    assert plan.simulation is not None
    assert all(v["health"] >= TARGET.target for v in plan.simulation["health"].values())
    assert store.plan_txs(plan.id) == []
    assert _nonce(chain) == nonce
    assert _chain_health(chain) == pytest.approx(before, rel=1e-6)


def test_infeasible_plan_is_reported_and_not_executed(
    chain: devnet.DevnetInfo, store: Store, signer_env: None
) -> None:
    settings = _settings(chain)
    _drain_idle(chain)  # no idle funds, and both lending venues need help: nothing can donate
    _crash(chain, settings, store)
    nonce = _nonce(chain)
    with Keeper(settings, store) as keeper:
        (outcome,) = keeper.run()
    assert outcome.status == "infeasible"
    assert "aave_v3" in outcome.message
    (plan,) = store.list_plans()
    assert (plan.status, plan.error) == ("infeasible", outcome.message)
    assert store.plan_txs(plan.id) == []
    assert _nonce(chain) == nonce


@pytest.mark.parametrize(("limits", "why"), [({"max_action_usd": 1_000.0}, "per-action limit"),
                                             ({"max_daily_usd": 2_000.0}, "daily limit")])
def test_over_limit_plan_is_refused(
    chain: devnet.DevnetInfo, store: Store, signer_env: None, limits: dict[str, float], why: str
) -> None:
    settings = _settings(chain, **limits)
    _crash(chain, settings, store)
    nonce = _nonce(chain)
    with Keeper(settings, store) as keeper:
        (outcome,) = keeper.run()
    assert outcome.status == "refused"
    assert why in outcome.message
    (plan,) = store.list_plans()
    assert plan.status == "refused"
    assert store.plan_txs(plan.id) == []
    assert _nonce(chain) == nonce


def test_gas_cap_stops_signing(chain: devnet.DevnetInfo, store: Store, signer_env: None) -> None:
    settings = _settings(chain, max_gas_per_tx=30_000)
    _crash(chain, settings, store)
    nonce = _nonce(chain)
    with Keeper(settings, store) as keeper:
        (outcome,) = keeper.run()
    assert outcome.status == "error"
    assert "gas" in outcome.message
    (plan,) = store.list_plans()
    assert plan.status == "simulated"  # never started: nothing signed is stored
    assert store.plan_txs(plan.id) == []
    assert _nonce(chain) == nonce


@pytest.mark.parametrize("sent_before_crash", [0, 1])
def test_restart_finishes_a_started_plan_once(
    chain: devnet.DevnetInfo, store: Store, signer_env: None, monkeypatch: pytest.MonkeyPatch,
    sent_before_crash: int,
) -> None:
    """The keeper dies after storing its signed transactions (and after sending ``sent_before_crash`` of them);
    a new keeper process re-sends the stored bytes, so each transaction runs exactly once."""
    settings = _settings(chain)
    _crash(chain, settings, store)
    nonce = _nonce(chain)
    with Keeper(settings, store) as doomed, monkeypatch.context() as patch:
        patch.setattr(Keeper, "_send", lambda self, plan_id: ("executing", "killed", []))
        (outcome,) = doomed.run()
    assert outcome.status == "executing"
    (plan,) = store.executing_plans()
    txs = store.plan_txs(plan.id)
    assert len(txs) >= 2
    assert _nonce(chain) == nonce
    client = RpcClient(chain.rpc_url)
    for tx in txs[:sent_before_crash]:
        send_raw(client, SignedTx(seq=tx.seq, description=tx.description, to=tx.to_address, nonce=tx.nonce,
                                  gas_limit=0, max_fee_per_gas=0, raw=tx.raw_tx, tx_hash=tx.tx_hash))
        wait_receipt(client, tx.tx_hash)
    client.close()
    assert _nonce(chain) == nonce + sent_before_crash
    with Keeper(settings, store) as restarted:
        assert sync_once(settings, store).ok  # a sync of the wallet mid-plan, before the restarted keeper runs
        outcomes = restarted.run()
        # The restart finished the stored plan; the sync predates it, so no new plan comes from it.
        assert [o.status for o in outcomes] == ["waiting"]
        assert store.get_plan(plan.id).status == "executed"  # type: ignore[union-attr]
        assert [t.status for t in store.plan_txs(plan.id)] == ["confirmed"] * len(txs)
        assert _nonce(chain) == nonce + len(txs)
        assert restarted.reconcile() == []
    assert len(store.list_plans()) == 1
    assert all(h >= TARGET.target for h in _chain_health(chain))


def test_keeper_plan_command_is_a_dry_run(
    chain: devnet.DevnetInfo, store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``xmargin keeper plan`` plans and simulates from the newest sync with the configured targets, and never
    sends, even when the configuration says execute."""
    import json

    from typer.testing import CliRunner

    from aggregator.cli import app
    from aggregator.config import write_settings_toml

    settings = _settings(chain)
    path = tmp_path / "config.toml"
    write_settings_toml(settings, path)
    monkeypatch.setenv("XMARGIN_CONFIG", str(path))
    monkeypatch.setenv("XMARGIN_DB_URL", store.engine.url.render_as_string(hide_password=False))
    _crash(chain, settings, store)
    nonce = _nonce(chain)
    result = CliRunner().invoke(app, ["keeper", "plan", HEDGED, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    (doc,) = json.loads(result.stdout)
    assert doc["status"] == "simulated"
    assert sorted(a["kind"] for a in doc["actions"]) == ["repay", "repay"]
    assert all(h >= 1.5 for h in doc["health_after"].values() if h is not None)  # the file's default target
    assert _nonce(chain) == nonce
    (plan,) = store.list_plans()
    assert plan.execute is False


def test_a_perp_below_its_target_does_not_block_the_lending_repair(
    chain: devnet.DevnetInfo, store: Store, signer_env: None
) -> None:
    """Perp reductions need the venue's own signing: the keeper leaves perps out of its plans, so a perp under
    its (here absurd) target cannot make the Aave / Morpho repair infeasible."""
    settings = _settings(chain, execute=False, targets={"hyperliquid": TargetConfig(target=1_000.0, offset=0.1)})
    _crash(chain, settings, store)
    with Keeper(settings, store) as keeper:
        (outcome,) = keeper.run()
    assert outcome.status == "simulated", outcome.message
    assert outcome.plan is not None
    assert "hyperliquid" not in outcome.plan.health_before


def test_a_stored_plan_never_broadcast_is_dropped_once_stale(
    chain: devnet.DevnetInfo, store: Store, signer_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A keeper that died before broadcasting leaves signed transactions simulated against a state that has since
    moved: after ``resend_window_s`` they are dropped (never sent) and the plan fails, so the next sync plans
    afresh."""
    settings = _settings(chain, resend_window_s=60)
    _crash(chain, settings, store)
    nonce = _nonce(chain)
    with Keeper(settings, store) as doomed, monkeypatch.context() as patch:
        patch.setattr(Keeper, "_send", lambda self, plan_id: ("executing", "killed", []))
        (outcome,) = doomed.run()
    assert outcome.status == "executing"
    (plan,) = store.executing_plans()
    later = plan.updated_at + timedelta(seconds=61)
    with Keeper(settings, store, clock=lambda: later) as restarted:
        assert restarted.reconcile() == [(plan.id, "failed")]
    failed = store.get_plan(plan.id)
    assert failed is not None
    assert failed.status == "failed"
    assert "not broadcast within 60 s" in (failed.error or "")
    assert {t.status for t in store.plan_txs(plan.id)} == {"dropped"}
    assert _nonce(chain) == nonce


def test_surplus_collateral_moves_from_a_healthy_venue_to_the_one_in_need(
    chain: devnet.DevnetInfo, store: Store, signer_env: None
) -> None:
    """No idle funds: the keeper withdraws surplus WETH from Morpho (down to Morpho's own target, not below) and
    supplies it to Aave — two actions, executed, both venues at target as the protocols report it."""
    aave_target, morpho_target = TargetConfig(target=1.5, offset=0.1), TargetConfig(target=1.1, offset=0.05)
    settings = _settings(chain, targets={"aave_v3": aave_target, "morpho_blue": morpho_target})
    _drain_idle(chain)
    devnet.set_price(chain, "WETH", 3_300)  # Aave 1.36 (< 1.4 trigger), Morpho 1.42 (a donor above 1.1)
    assert sync_once(settings, store).ok
    with Keeper(settings, store) as keeper:
        (outcome,) = keeper.run()
    assert outcome.status == "executed", outcome.message
    assert outcome.plan is not None
    assert [(a.kind, a.venue.split(":")[0]) for a in outcome.plan.actions] == [
        ("withdraw", "morpho_blue"), ("supply", "aave_v3")]
    withdrawn, supplied = (a.amount for a in outcome.plan.actions)
    assert supplied == pytest.approx(withdrawn, rel=1e-9)  # no idle WETH: what Aave gets is what Morpho gave
    aave_hf, morpho_hf = _chain_health(chain)
    assert aave_target.target <= aave_hf <= aave_target.target + aave_target.offset + 0.01
    assert morpho_hf >= morpho_target.target


def test_a_plan_interrupted_before_its_simulation_is_closed_by_the_next_keeper(
    chain: devnet.DevnetInfo, store: Store, signer_env: None
) -> None:
    """A keeper killed between storing a plan and simulating it leaves it ``planned``; the next keeper process
    closes it (nothing of it was signed) and plans afresh from the next sync."""
    settings = _settings(chain)
    _crash(chain, settings, store)
    left = store.insert_plan(plan_key="killed-before-simulation", wallet=HEDGED, chain_id=chain.chain_id,
                             block_number=1, status="planned", execute=True, signer=None, usd_total=1_000.0,
                             plan={"actions": []}, now=datetime.now(UTC) - timedelta(seconds=5))
    assert left is not None
    nonce = _nonce(chain)
    with Keeper(settings, store) as keeper:
        (outcome,) = keeper.run()
    closed = store.get_plan(left.id)
    assert closed is not None
    assert (closed.status, closed.error) == ("simulation_failed", "interrupted before its simulation (restart)")
    assert outcome.status == "executed", outcome.message  # the fresh plan from the sync ran
    assert _nonce(chain) > nonce
    fresh = store.get_plan(outcome.plan_id) if outcome.plan_id is not None else None
    assert fresh is not None
    # The closed plan moved nothing and counts nothing against the daily limit.
    assert store.executed_usd_since(datetime.now(UTC) - timedelta(days=1)) == pytest.approx(fresh.usd_total)
