"""Alert rules: each kind's value, the hysteresis and cooldown that keep a rule from flapping, and the engine
storing each firing once and delivering it to a real webhook receiver with a valid signature; a rule on an asset
the store holds no price of (it could never fire) is refused by the CLI and the API with the known symbols."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from aggregator.alerts.engine import AlertEngine, UnknownAssetError, check_rule
from aggregator.alerts.rules import Observation, evaluate_rule, event_id, observe
from aggregator.alerts.sinks import LogSink, WebhookSink
from db import RiskRow, RuleRow, Store
from tests.db import db_testdata as td
from tests.webhook_receiver import WebhookReceiver

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
WALLET = "0x52908400098527886E0F7030069857D2E4169EE7"


def _rule(kind: str, params: dict[str, Any], *, hysteresis: float = 0.0, cooldown_s: float = 0.0) -> RuleRow:
    return RuleRow(id=7, wallet=WALLET, kind=kind, params=params, hysteresis=hysteresis, cooldown_s=cooldown_s,
                   severity="warning", enabled=True, created_at=T0, active=False, episode=0, last_value=None,
                   last_block=None, last_fired_at=None)


def _obs(**kw: Any) -> Observation:
    base: dict[str, Any] = {"wallet": WALLET, "chain_id": 1, "block_number": 100, "venue_health": {},
                            "unified_health": None, "move_to_liquidation_pct": None, "prices_usd": {},
                            "oracle_problems": {}}
    return Observation(**(base | kw))


def _run(rule: RuleRow, observations: list[Observation], step_s: float = 60.0) -> tuple[list[bool], RuleRow]:
    """Feed observations one minute apart; return which evaluations fired and the final state."""
    fired = []
    for i, obs in enumerate(observations):
        ev = evaluate_rule(rule, obs, T0 + timedelta(seconds=step_s * i))
        fired.append(ev.fires)
        rule = replace(rule, active=ev.active, episode=ev.episode, last_value=ev.value, last_fired_at=ev.last_fired_at)
    return fired, rule


def test_venue_health_fires_once_per_crossing_with_hysteresis() -> None:
    rule = _rule("venue_health_below", {"venue": "aave", "threshold": 1.2}, hysteresis=0.05)
    values = [1.5, 1.19, 1.21, 1.18, 1.22, 1.3, 1.1]  # dips, wobbles inside the band, recovers, dips again
    fired, final = _run(rule, [_obs(venue_health={"aave": v}) for v in values])
    assert fired == [False, True, False, False, False, False, True]
    assert final.episode == 2
    assert final.active is True


def test_cooldown_delays_the_next_alert_until_it_has_passed() -> None:
    rule = _rule("unified_health_below", {"threshold": 1.1}, cooldown_s=300)
    values = [1.0, 1.2, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]  # re-arms at once, but the second alert waits 300 s
    fired, _ = _run(rule, [_obs(unified_health=v) for v in values], step_s=60)
    assert fired == [True, False, False, False, False, True, False, False]


def test_missing_value_changes_nothing() -> None:
    rule = _rule("venue_health_below", {"venue": "aave", "threshold": 1.2})
    fired, final = _run(rule, [_obs(venue_health={"aave": 1.1}), _obs(venue_health={}),  # the venue not read
                               _obs(venue_health={"other": 2.0}), _obs(venue_health={"aave": 1.1})])
    assert fired == [True, False, False, False]
    assert final.active is True


@pytest.mark.parametrize(("direction", "prices", "expected"), [
    ("below", [3100, 2999, 2990, 3050, 2950], [False, True, False, False, True]),
    ("above", [2900, 3001, 3100, 2950, 3010], [False, True, False, False, True]),
])
def test_price_cross(direction: str, prices: list[float], expected: list[bool]) -> None:
    rule = _rule("price_cross", {"asset": "WETH", "level": 3000, "direction": direction}, hysteresis=25)
    fired, _ = _run(rule, [_obs(prices_usd={"WETH": p}) for p in prices])
    assert fired == expected


def test_move_to_liquidation_and_oracle_rules() -> None:
    move = _rule("move_to_liquidation_below", {"threshold": 10.0})
    assert _run(move, [_obs(move_to_liquidation_pct=v) for v in (25.0, 9.5, 8.0)])[0] == [False, True, False]
    oracle = _rule("oracle_invalid", {})
    fired, _ = _run(oracle, [_obs(), _obs(oracle_problems={"WETH": ("stale",)}), _obs(), _obs(
        oracle_problems={"venue:aave": ("bad_oracle",)})])
    assert fired == [False, True, False, True]
    scoped = _rule("oracle_invalid", {"asset": "DAI"})
    assert _run(scoped, [_obs(oracle_problems={"WETH": ("stale",)})])[0] == [False]


@pytest.mark.parametrize(("kind", "params", "match"), [
    ("venue_health_below", {"threshold": 1.2}, "needs venue"),
    ("price_cross", {"asset": "WETH", "level": 3000}, "needs direction"),
    ("unified_health_below", {"threshold": -1}, "positive"),
    ("price_cross", {"asset": "WETH", "level": 0, "direction": "below"}, "level"),
    ("unified_health_below", {"threshold": 1.0, "colour": "red"}, "colour"),
])
def test_invalid_rule_parameters(kind: str, params: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        check_rule(kind, params)


def test_event_ids_are_stable_and_distinct() -> None:
    assert event_id(3, 1) == event_id(3, 1)
    assert len({event_id(3, 1), event_id(3, 2), event_id(4, 1)}) == 3


def test_engine_stores_each_firing_once_and_delivers_it_signed(tmp_path: Any) -> None:
    secret = "whsec-test"
    store = Store.open(f"sqlite:///{tmp_path / 'x.db'}")
    wallets = td.setup(store, 1)
    wallet = wallets[0]
    store.write_sync(td.batch(wallets, 100))
    latest = store.latest_health(wallet)
    hf = latest[0].health.health_factor if latest[0].health else None
    assert hf is not None
    assert observe(wallet, latest, None).venue_health == {"aave_v3": hf}
    store.add_rule(wallet, "venue_health_below", {"venue": "aave_v3", "threshold": hf + 0.5}, now=T0)
    store.add_rule(wallet, "venue_health_below", {"venue": "aave_v3", "threshold": hf - 0.5}, now=T0)
    with WebhookReceiver(secret) as rx:
        engine = AlertEngine(store, [LogSink(), WebhookSink(rx.url, secret, timeout_s=2)], clock=lambda: T0)
        report = engine.run()
        assert report.evaluated == 2
        assert len(report.fired) == 1  # only the rule whose threshold is above the health
        rx.wait_for(1, timeout=10)
        # The same sync evaluated again (a restart, or a second process): nothing new fires or is sent.
        again = engine.run()
        assert again.fired == []
        assert again.deliveries == []
        engine.close()
        assert len(rx.accepted) == 1
        body = rx.accepted[0].json
        assert isinstance(body, dict)
        assert body["event_id"] == report.fired[0].event_id
        assert body["wallet"] == wallet
        assert body["kind"] == "venue_health_below"
        assert body["value"] == pytest.approx(hf)
    alerts = store.list_alerts(wallet)
    assert [a.state for a in alerts] == ["delivered"]
    store.close()


def test_engine_retries_a_failed_delivery_on_later_runs_then_gives_up(tmp_path: Any) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'x.db'}")
    wallets = td.setup(store, 1)
    store.write_sync(td.batch(wallets, 100))
    store.add_rule(wallets[0], "venue_health_below", {"venue": "aave_v3", "threshold": 1e9}, now=T0)
    now = [T0]
    with WebhookReceiver("s") as rx:
        rx.script([500, 500, 503, 503])  # the receiver is down for two runs, then back
        sink = WebhookSink(rx.url, "s", max_attempts=2, backoff_s=0, sleep=lambda _s: None)
        engine = AlertEngine(store, [sink], clock=lambda: now[0], retry_for_s=600)
        report = engine.run()
        assert [r.ok for _, results in report.deliveries for r in results] == [False]
        (alert,) = store.list_alerts()
        assert alert.state == "fired"  # kept for the next run
        assert "500" in (alert.last_error or "")
        now[0] = T0 + timedelta(seconds=60)
        assert [r.ok for _, rs in engine.run().deliveries for r in rs] == [False]
        now[0] = T0 + timedelta(seconds=120)
        assert [r.ok for _, rs in engine.run().deliveries for r in rs] == [True]
        assert engine.run().deliveries == []  # delivered: never sent again
        engine.close()
        assert len(rx.received) == 5
        assert len({r.event_id for r in rx.received}) == 1
    (alert,) = store.list_alerts()
    assert (alert.state, alert.attempts) == ("delivered", 5)
    # A receiver that stays down: given up once retry_for_s has passed since the alert fired.
    store.add_rule(wallets[0], "venue_health_below", {"venue": "aave_v3", "threshold": 2e9}, now=T0)
    with WebhookReceiver("s") as rx:
        rx.script([500] * 10)
        sink = WebhookSink(rx.url, "s", max_attempts=1, backoff_s=0, sleep=lambda _s: None)
        engine = AlertEngine(store, [sink], clock=lambda: now[0], retry_for_s=600)
        engine.run()
        now[0] += timedelta(seconds=599)
        engine.run()
        assert sorted(a.state for a in store.list_alerts()) == ["delivered", "fired"]
        now[0] += timedelta(seconds=1)
        engine.run()
        engine.close()
        assert len(rx.received) == 3
    states = sorted(a.state for a in store.list_alerts())
    assert states == ["delivered", "failed"]
    store.close()


def test_repaid_debt_re_arms_and_a_liquidatable_wallet_fires() -> None:
    rule = _rule("venue_health_below", {"venue": "aave", "threshold": 1.1})
    # fires at 1.05, the debt is repaid (no health: infinitely healthy), later it falls again: fires again
    fired, _ = _run(rule, [_obs(venue_health={"aave": 1.05}), _obs(venue_health={"aave": None}),
                           _obs(venue_health={"aave": 1.02})])
    assert fired == [True, False, True]
    move = _rule("move_to_liquidation_below", {"threshold": 5.0})
    doc = {"first_liquidation": {"down": {"move": 0.0, "venue": "aave"}, "up": {"move": None, "venue": None}}}
    risk = RiskRow(wallet=WALLET, block_number=1, computed_at=T0, unified_health=0.9, equity_usd=1.0,
                   margin_usd=1.0, netting_benefit_usd=0.0, document=doc)
    obs = observe(WALLET, [], risk)
    assert obs.move_to_liquidation_pct == 0.0  # already liquidatable: the smallest move is none at all
    assert evaluate_rule(move, obs, T0).fires


@pytest.mark.parametrize(("kind", "params", "stored"), [
    ("price_cross", {"asset": "WETH", "level": 3000, "direction": "below"}, "WETH"),
    ("price_cross", {"asset": "weth", "level": 3000, "direction": "below"}, "WETH"),  # stored as the store spells it
    ("oracle_invalid", {"asset": "Usdc"}, "USDC"),
    ("oracle_invalid", {"asset": "aave_v3"}, "aave_v3"),  # a venue: its healths' oracle flags
    ("oracle_invalid", {}, None),
])
def test_rule_assets_are_ones_the_store_prices(kind: str, params: dict[str, Any], stored: str | None) -> None:
    checked = check_rule(kind, params, assets=["USDC", "WETH"], venues=["aave_v3"])
    assert checked.get("asset") == stored


@pytest.mark.parametrize(("kind", "params", "assets", "match"), [
    ("price_cross", {"asset": "WETHH", "level": 3000, "direction": "below"}, ["USDC", "WETH"],
     "unknown asset 'WETHH'; the store knows: USDC, WETH"),
    ("price_cross", {"asset": "aave_v3", "level": 1, "direction": "above"}, ["WETH"], "unknown asset 'aave_v3'"),
    ("oracle_invalid", {"asset": "NOPE"}, ["WETH"], "unknown asset 'NOPE'; the store knows: WETH"),
    ("price_cross", {"asset": "WETH", "level": 3000, "direction": "below"}, [], "holds no prices yet"),
])
def test_rules_on_assets_without_a_price_are_refused(
    kind: str, params: dict[str, Any], assets: list[str], match: str
) -> None:
    with pytest.raises(UnknownAssetError, match=match):
        check_rule(kind, params, assets=assets, venues=["aave_v3"])
    assert check_rule(kind, params)  # without the store's assets only the parameters' shape is checked


def test_priced_symbols_are_the_assets_with_a_stored_price(tmp_path: Path) -> None:
    with Store.open(f"sqlite:///{tmp_path / 'x.db'}") as store:
        assert store.priced_symbols() == []
        wallets = td.setup(store, 1)
        assert store.priced_symbols() == []  # assets known from positions alone are not priced
        store.write_sync(td.batch(wallets, 100))
        store.write_sync(td.batch(wallets, 101))
        assert store.priced_symbols() == sorted({p.asset.symbol for p in td.batch(wallets, 100).prices})


def test_cli_and_api_refuse_a_price_rule_on_an_unknown_asset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aggregator.api.app import create_app
    from aggregator.api.server import ApiServer
    from aggregator.cli import app as cli

    monkeypatch.setenv("XMARGIN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "60")  # the error stays one line however narrow the terminal
    for name in ("XMARGIN_CONFIG", "XMARGIN_DB_URL"):
        monkeypatch.delenv(name, raising=False)
    with Store.open() as store:
        wallets = td.setup(store, 1)
        store.write_sync(td.batch(wallets, 100))
        _, key = store.create_api_key("writer", now=T0, scope="write")
    known = ", ".join(sorted({p.asset.symbol for p in td.batch(wallets, 100).prices}))

    def alert_add(*args: str) -> tuple[int, str, str]:
        done = CliRunner().invoke(cli, ["alert", "add", wallets[0], "price_cross", *args], catch_exceptions=False)
        return done.exit_code, done.stdout, done.stderr

    code, _out, err = alert_add("--asset", "WETHH", "--level", "3000", "--direction", "below")
    assert code == 2
    assert err.strip().splitlines() == [f"error: unknown asset 'WETHH'; the store knows: {known}"]
    code, out, _err = alert_add("--asset", "weth", "--level", "3000", "--direction", "below", "--json")
    assert code == 0, _err
    assert json.loads(out)["params"]["asset"] == "WETH"

    with Store.open() as store, ApiServer(create_app(store)) as server, httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=10) as client:
        body = {"wallet": wallets[0], "kind": "price_cross", "params": {"asset": "NOPE", "level": 1.5,
                                                                       "direction": "above"}}
        refused = client.post("/v1/alert-rules", json=body)
        assert refused.status_code == 422
        assert refused.json() == {"error": f"unknown asset 'NOPE'; the store knows: {known}"}
        made = client.post("/v1/alert-rules", json={**body, "params": {**body["params"], "asset": "usdc"}})
        assert made.status_code == 201, made.text
        assert made.json()["params"]["asset"] == "USDC"
        patched = client.patch(f"/v1/alert-rules/{made.json()['id']}", json={"params": {
            "asset": "WETHH", "level": 2.0, "direction": "above"}})
        assert patched.status_code == 422
        assert "unknown asset 'WETHH'" in patched.json()["error"]
        assert [(r.kind, r.params["asset"]) for r in store.list_rules(wallets[0])] == [
            ("price_cross", "WETH"), ("price_cross", "USDC")]
