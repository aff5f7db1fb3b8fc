"""Rules, alerts and keeper plans in the store, on SQLite and PostgreSQL: the exactly-once guarantees the alert
engine and the keeper rely on are the database's."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from db import NewAlert, NewTx, RuleUpdate, Store, UnknownReferenceError

ADDR = "0x52908400098527886E0F7030069857D2E4169EE7"
OTHER = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


@pytest.fixture
def wallets(store: Store) -> Store:
    store.add_wallets([(ADDR, "main"), (OTHER, None)])
    return store


def _alert(rule_id: int, episode: int, wallet: str = ADDR) -> NewAlert:
    return NewAlert(event_id=f"rule-{rule_id}-episode-{episode}", rule_id=rule_id, wallet=wallet, episode=episode,
                    fired_at=NOW, chain_id=31337, block_number=100 + episode, value=1.02, threshold=1.1,
                    severity="critical", message="aave health 1.02 < 1.1", payload={"venue": "aave"})


def test_rule_crud(wallets: Store) -> None:
    rule = wallets.add_rule(ADDR.lower(), "venue_health_below", {"venue": "aave", "threshold": 1.2},
                            hysteresis=0.05, cooldown_s=600, severity="critical", now=NOW)
    other = wallets.add_rule(OTHER, "price_cross", {"asset": "WETH", "level": 3000, "direction": "below"}, now=NOW)
    assert rule.wallet == ADDR
    assert rule.params == {"venue": "aave", "threshold": 1.2}
    assert (rule.active, rule.episode, rule.last_fired_at) == (False, 0, None)
    assert [r.id for r in wallets.list_rules()] == [rule.id, other.id]
    assert [r.id for r in wallets.list_rules(ADDR)] == [rule.id]
    assert wallets.list_rules("0x" + "1" * 40) == []
    assert wallets.remove_rule(rule.id) is True
    assert wallets.remove_rule(rule.id) is False
    assert [r.id for r in wallets.list_rules()] == [other.id]
    assert wallets.get_rule(rule.id) is None


@pytest.mark.parametrize(("kind", "severity"), [("health_is_bad", "warning"), ("price_cross", "panic")])
def test_rule_rejects_unknown_kind_and_severity(wallets: Store, kind: str, severity: str) -> None:
    with pytest.raises(ValueError, match="unknown"):
        wallets.add_rule(ADDR, kind, {}, severity=severity, now=NOW)
    assert wallets.list_rules() == []


def test_rule_for_unknown_wallet(wallets: Store) -> None:
    with pytest.raises(UnknownReferenceError, match="unknown wallet"):
        wallets.add_rule("0x" + "2" * 40, "oracle_invalid", {}, now=NOW)


def test_alert_is_stored_and_returned_once(wallets: Store) -> None:
    rule = wallets.add_rule(ADDR, "venue_health_below", {"venue": "aave", "threshold": 1.1}, now=NOW)
    update = RuleUpdate(rule.id, active=True, episode=1, last_value=1.02, last_block=101, last_fired_at=NOW)
    first = wallets.record_evaluation([update], [_alert(rule.id, 1)])
    assert [a.event_id for a in first] == [f"rule-{rule.id}-episode-1"]
    assert first[0].state == "fired"
    assert first[0].wallet == ADDR
    assert first[0].payload == {"venue": "aave"}
    # The same event again (a restart re-evaluating the same sync): nothing new to send.
    assert wallets.record_evaluation([update], [_alert(rule.id, 1), _alert(rule.id, 1)]) == []
    stored = wallets.get_rule(rule.id)
    assert stored is not None
    assert (stored.active, stored.episode, stored.last_block) == (True, 1, 101)
    assert len(wallets.list_alerts(ADDR)) == 1
    # a new episode is a new event
    assert len(wallets.record_evaluation([], [_alert(rule.id, 2)])) == 1


def test_delivery_state(wallets: Store) -> None:
    rule = wallets.add_rule(ADDR, "oracle_invalid", {}, now=NOW)
    a1, a2 = wallets.record_evaluation([], [_alert(rule.id, 1), _alert(rule.id, 2)])
    assert [a.id for a in wallets.undelivered_alerts()] == [a1.id, a2.id]
    wallets.mark_alert(a1.id, "delivered", attempts=2, delivered_at=NOW)
    wallets.mark_alert(a2.id, "failed", attempts=4, error="HTTP 500")
    assert wallets.undelivered_alerts() == []
    by_id = {a.id: a for a in wallets.list_alerts()}
    assert (by_id[a1.id].state, by_id[a1.id].attempts, by_id[a1.id].delivered_at) == ("delivered", 2, NOW)
    assert (by_id[a2.id].state, by_id[a2.id].last_error) == ("failed", "HTTP 500")
    with pytest.raises(ValueError, match="alert state"):
        wallets.mark_alert(a1.id, "lost", attempts=0)


def _plan(store: Store, key: str, wallet: str = ADDR, usd: float = 1_000.0) -> int:
    row = store.insert_plan(plan_key=key, wallet=wallet, chain_id=31337, block_number=7, status="planned",
                            execute=True, signer=wallet, usd_total=usd, plan={"actions": []}, now=NOW)
    assert row is not None
    return row.id


def _tx(seq: int) -> NewTx:
    return NewTx(seq=seq, description=f"tx {seq}", to_address=OTHER, nonce=seq, tx_hash="0x" + f"{seq:064x}",
                 raw_tx="0x02f8")


def test_plan_is_stored_once(wallets: Store) -> None:
    _plan(wallets, "k1")
    assert wallets.insert_plan(plan_key="k1", wallet=ADDR, chain_id=1, block_number=8, status="planned",
                               execute=False, signer=None, usd_total=0, plan={}, now=NOW) is None
    assert [p.plan_key for p in wallets.list_plans(ADDR)] == ["k1"]


def test_begin_execution_is_compare_and_set(wallets: Store) -> None:
    plan_id = _plan(wallets, "k1")
    assert wallets.begin_execution(plan_id, [_tx(0)], now=NOW) is False  # not simulated yet
    assert wallets.update_plan(plan_id, "simulated", now=NOW, simulation={"ok": True}, expect=["planned"])
    assert wallets.begin_execution(plan_id, [_tx(0), _tx(1)], now=NOW) is True
    assert wallets.begin_execution(plan_id, [_tx(0)], now=NOW) is False  # a second start (restart) is refused
    assert [t.seq for t in wallets.plan_txs(plan_id)] == [0, 1]
    assert [p.id for p in wallets.executing_plans(ADDR)] == [plan_id]
    # another plan of the same wallet cannot start while this one is executing
    second = _plan(wallets, "k2")
    wallets.update_plan(second, "simulated", now=NOW)
    assert wallets.begin_execution(second, [_tx(2)], now=NOW) is False
    assert wallets.plan_txs(second) == []
    # other wallets are not blocked
    third = _plan(wallets, "k3", wallet=OTHER)
    wallets.update_plan(third, "simulated", now=NOW)
    assert wallets.begin_execution(third, [], now=NOW) is True


def test_concurrent_begin_execution_starts_once(wallets: Store) -> None:
    plan_id = _plan(wallets, "race")
    wallets.update_plan(plan_id, "simulated", now=NOW)
    results: list[bool] = []
    barrier = threading.Barrier(4)

    def start() -> None:
        barrier.wait()
        results.append(wallets.begin_execution(plan_id, [_tx(0)], now=NOW))

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False, False, False, True]
    assert len(wallets.plan_txs(plan_id)) == 1


def test_daily_spend(wallets: Store) -> None:
    for key, usd, status in (("a", 1_000.0, "executed"), ("b", 2_500.0, "executing"), ("c", 9_999.0, "refused")):
        plan_id = _plan(wallets, key, usd=usd)
        wallets.update_plan(plan_id, status, now=NOW)
    assert wallets.executed_usd_since(NOW - timedelta(days=1)) == pytest.approx(3_500.0)
    assert wallets.executed_usd_since(NOW + timedelta(seconds=1)) == 0.0
    assert wallets.executed_usd_since(NOW - timedelta(days=1), signer=OTHER) == 0.0


def test_a_plan_made_before_another_one_ran_cannot_start(wallets: Store) -> None:
    """Two keepers sharing a store: B planned while A's plan was running; once A has finished, B's plan (made
    from a state A changed) must not start."""
    a = _plan(wallets, "a")
    b_row = wallets.insert_plan(plan_key="b", wallet=ADDR, chain_id=31337, block_number=8, status="planned",
                                execute=True, signer=ADDR, usd_total=1.0, plan={}, now=NOW)
    assert b_row is not None
    later = NOW + timedelta(seconds=5)
    wallets.update_plan(a, "simulated", now=NOW)
    assert wallets.begin_execution(a, [_tx(0)], now=later)
    wallets.update_plan(a, "executed", now=later, expect=["executing"])
    wallets.update_plan(b_row.id, "simulated", now=later)
    assert wallets.begin_execution(b_row.id, [_tx(1)], now=later) is False
    # a plan made after A finished may start
    c = wallets.insert_plan(plan_key="c", wallet=ADDR, chain_id=31337, block_number=9, status="simulated",
                            execute=True, signer=ADDR, usd_total=1.0, plan={}, now=later + timedelta(seconds=1))
    assert c is not None
    assert wallets.begin_execution(c.id, [_tx(2)], now=later + timedelta(seconds=2)) is True


def test_an_edit_during_an_evaluation_wins(wallets: Store) -> None:
    """The engine read version 0; the rule was edited (re-armed with a new threshold) or disabled before the
    engine stored its result: the stale result and its alert are dropped, the edit stays."""
    rule = wallets.add_rule(ADDR, "venue_health_below", {"venue": "aave", "threshold": 1.1}, now=NOW)
    stale = RuleUpdate(rule.id, active=True, episode=1, last_value=1.02, last_block=101, last_fired_at=NOW,
                       version=rule.version)
    edited = wallets.update_rule(rule.id, params={"venue": "aave", "threshold": 1.5})
    assert edited is not None
    assert edited.version == rule.version + 1
    assert wallets.record_evaluation([stale], [_alert(rule.id, 1)]) == []
    after = wallets.get_rule(rule.id)
    assert after is not None
    assert (after.active, after.episode, after.params["threshold"]) == (False, 0, 1.5)
    assert wallets.list_alerts(ADDR) == []
    # Evaluated from the current version, it is stored.
    fresh = RuleUpdate(rule.id, active=True, episode=1, last_value=1.02, last_block=102, last_fired_at=NOW,
                       version=after.version)
    assert len(wallets.record_evaluation([fresh], [_alert(rule.id, 1)])) == 1
    # Disabled or removed in between: nothing more fires.
    current = wallets.get_rule(rule.id)
    assert current is not None
    wallets.update_rule(rule.id, enabled=False)
    late = RuleUpdate(rule.id, active=True, episode=2, last_value=1.0, last_block=103, last_fired_at=NOW,
                      version=current.version)
    assert wallets.record_evaluation([late], [_alert(rule.id, 2)]) == []


def test_rules_of_untracked_wallets_are_not_evaluated(wallets: Store) -> None:
    rule = wallets.add_rule(ADDR, "oracle_invalid", {}, now=NOW)
    assert [r.id for r in wallets.list_rules(enabled_only=True)] == [rule.id]
    wallets.remove_wallet(ADDR)
    assert wallets.list_rules(enabled_only=True) == []
    assert [r.id for r in wallets.list_rules()] == [rule.id]  # kept: tracking the wallet again revives it


def _record(store: Store, key: str, *, same: bool, status: str = "refused", block: int = 10, chain_id: int = 1,
            minutes: int = 0) -> tuple[int | None, bool]:
    row, new = store.record_plan(same=lambda _: same, plan_key=key, wallet=ADDR, chain_id=chain_id,
                                 block_number=block, status=status, execute=False, signer=None, usd_total=5.0,
                                 plan={"actions": []}, now=NOW + timedelta(minutes=minutes), error="over the limit",
                                 simulation={"ok": True} if status == "simulated" else None)
    return (row.id if row is not None else None), new


def test_a_standing_plan_is_seen_again_not_stored_again(wallets: Store) -> None:
    first, new = _record(wallets, "s1", same=True)
    assert new
    again, new = _record(wallets, "s2", same=True, block=12, minutes=1)
    assert (again, new) == (first, False)
    (row,) = wallets.list_plans(ADDR)
    assert (row.block_number, row.last_seen_block, row.seen_count) == (10, 12, 2)
    assert row.last_seen_at == NOW + timedelta(minutes=1)
    assert row.created_at == NOW
    assert row.plan_key == "s1"
    # an older block never moves the last-seen block back
    assert _record(wallets, "s0", same=True, block=11, minutes=2) == (first, False)
    assert wallets.get_plan(first or 0).last_seen_block == 12  # type: ignore[union-attr]
    # `same` says no: a new row; a different status is never the standing plan, whatever `same` says
    changed, new = _record(wallets, "s3", same=False, block=13)
    assert new
    assert changed != first
    simulated, new = _record(wallets, "s4", same=True, status="simulated", block=14)
    assert new
    assert wallets.get_plan(simulated or 0).simulation == {"ok": True}  # type: ignore[union-attr]
    # only the newest plan of the wallet on the chain stands: the refusals above are not seen again
    refused, new = _record(wallets, "s5", same=True, block=15)
    assert new
    assert refused not in (first, changed)
    # another chain's newest plan is its own
    assert _record(wallets, "s6", same=True, block=15, chain_id=2)[1]
    # a key already stored (not the standing plan): nothing stored
    assert _record(wallets, "s4", same=False, status="simulated", block=16) == (None, False)
    assert len(wallets.list_plans(ADDR)) == 5


def test_keeper_figures(wallets: Store) -> None:
    empty = wallets.keeper_figures()
    assert set(empty.plans.values()) == {0}
    assert set(empty.txs.values()) == {0}
    assert (empty.executed_usd, empty.last_plan_at, empty.standing_refusals) == (0.0, None, 0)
    plan_id = _plan(wallets, "run", usd=750.0)
    wallets.update_plan(plan_id, "simulated", now=NOW)
    assert wallets.begin_execution(plan_id, [_tx(0), _tx(1)], now=NOW)
    (tx0, tx1) = wallets.plan_txs(plan_id)
    wallets.update_tx(tx0.id, "confirmed", now=NOW, block_number=9, gas_used=1)
    wallets.update_tx(tx1.id, "reverted", now=NOW, block_number=9, gas_used=1)
    wallets.update_plan(plan_id, "executed", now=NOW, expect=["executing"])
    _record(wallets, "refused", same=False, block=11, minutes=5)
    _record(wallets, "refused-again", same=True, block=12, minutes=9)  # seen again: the last plan time moves
    figures = wallets.keeper_figures()
    assert (figures.plans["executed"], figures.plans["refused"], figures.plans["planned"]) == (1, 1, 0)
    assert (figures.txs["confirmed"], figures.txs["reverted"], figures.txs["signed"]) == (1, 1, 0)
    assert figures.executed_usd == pytest.approx(750.0)
    assert figures.last_plan_at == NOW + timedelta(minutes=9)
    assert figures.standing_refusals == 1
    _record(wallets, "simulated", same=False, status="simulated", block=13)
    assert wallets.keeper_figures().standing_refusals == 0
