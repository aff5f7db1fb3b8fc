"""Issue 7: every fault of the reliability catalogue (tests/reliability.py) driven through the fault proxy or the
devnet's oracles against a real sync, asserting what the user sees and what the store holds. One test per scenario,
seed 0; ``docs/reliability.py`` reruns them all with several seeds and writes docs/reliability.md.

Every test asserts the scenario survived (all its checks held) and lost no data (see tests/reliability.py for the
exact definition: a clean sync at the same block is the reference), then the scenario's own specifics.
"""

from __future__ import annotations

import pytest

import devnet
from tests.reliability import DEADLINE_S, Lab, ScenarioResult, lab_on, run_scenario

pytestmark = pytest.mark.chain

ONCHAIN = ["aave_v3", "morpho_blue", "uniswap_v3"]
OFFCHAIN = ["hyperliquid", "dydx_v4"]
CHAIN_ID = 31337

# Scenarios that fail until a product fix (the reason of each one's xfail mark; docs/reliability.py shows them too).
KNOWN_BUGS: dict[str, str] = {}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, seeded_devnet: devnet.DevnetInfo) -> Lab:
    return lab_on(seeded_devnet, tmp_path_factory.mktemp("reliability"))


def run(name: str, lab: Lab, seed: int = 0) -> ScenarioResult:
    """The scenario's result, asserted to have survived with nothing lost."""
    result = run_scenario(name, lab, seed)
    assert result.failed_checks == [], (result.user_sees, result.details)
    assert result.survived
    assert result.data_lost == 0, result.details["loss"]
    assert result.injected > 0
    return result


def statuses(result: ScenarioResult) -> list[list[str]]:
    """Per sync of the scenario (warm-up first): the statuses of its batches."""
    return [s["status"] for s in result.details["syncs"]]


def sync_errors(result: ScenarioResult) -> list[str]:
    return [e for s in result.details["syncs"] for e in s["error"] if e]


# --- transport faults, retried on the same endpoint ------------------------------------------------------------------


def test_latency_under_the_timeout_costs_nothing_but_time(lab: Lab) -> None:
    r = run("latency", lab)
    assert statuses(r) == [["ok"]] * 3
    assert r.details["retries"] == 0
    assert r.details["faults"] == {"latency": r.injected}
    assert r.injected == 12  # every request of the two faulted syncs (6 each)
    assert all(s["seconds"] >= 6 * r.details["latency_s"] for s in r.details["syncs"][1:])
    assert r.user_sees.startswith("every sync ok, all 5 venues fresh")


def test_timeouts_are_retried(lab: Lab) -> None:
    r = run("timeouts", lab)
    assert statuses(r) == [["ok"]] * 3
    assert r.details["faults"] == {"timeout": r.injected}
    assert r.details["retries"] == r.injected
    assert f"timed out after {DEADLINE_S:g} s and were retried" in r.user_sees


def test_an_answer_trickled_past_the_deadline_is_retried(lab: Lab) -> None:
    r = run("trickle", lab)
    assert statuses(r) == [["ok"]] * 3
    assert r.details["faults"] == {"trickle": 1}
    assert r.details["retries"] == 1


def test_429_waits_out_retry_after(lab: Lab) -> None:
    r = run("http_429", lab)
    assert statuses(r) == [["ok"]] * 3
    assert r.details["faults"] == {"http_429": r.injected}
    assert r.details["retries"] == r.injected
    assert r.details["waited_s"] >= 0.5 * r.injected  # Retry-After: 0.5 honoured each time


def test_a_json_rpc_rate_limit_error_is_retried(lab: Lab) -> None:
    r = run("rate_limit_error", lab)  # -32005 in an item of the Multicall3 batch: the batch is retried
    assert statuses(r) == [["ok"]] * 3
    assert r.details["faults"] == {"error_object": r.injected}
    assert r.details["retries"] == r.injected
    assert r.user_sees.endswith("JSON-RPC -32005 'rate limited' retried")


def test_5xx_bursts_are_retried(lab: Lab) -> None:
    r = run("http_5xx_bursts", lab)
    assert statuses(r) == [["ok"]] * 3
    assert set(r.details["faults"]) == {"http_5xx"}
    assert r.details["retries"] == r.injected >= 3


def test_dropped_connections_are_retried(lab: Lab) -> None:
    r = run("dropped_connections", lab)
    assert statuses(r) == [["ok"]] * 3
    assert r.details["faults"] == {"drop_connection": r.injected}
    assert r.details["retries"] == r.injected >= 3


def test_an_answer_cut_mid_body_is_retried(lab: Lab) -> None:
    r = run("truncated_connection", lab)
    assert statuses(r) == [["ok"]] * 3
    assert r.details["faults"] == {"truncated_json": r.injected}
    assert r.details["retries"] == r.injected >= 2


# --- failover -----------------------------------------------------------------------------------------------------


def test_5xx_forever_on_the_primary_fails_over_and_opens_its_breaker(lab: Lab) -> None:
    r = run("failover_5xx", lab)
    assert statuses(r) == [["ok"]] * 3
    primary, fallback = r.details["endpoints"]
    before_primary, before_fallback = r.details["endpoints_before"]
    assert (primary["state"], primary["trips"]) == ("open", 1)  # 3 consecutive failures, then kept away
    assert primary["requests"] == before_primary["requests"]
    assert fallback["state"] == "closed"
    assert fallback["requests"] - before_fallback["requests"] == 12  # the two faulted syncs, all served there
    assert r.injected == 6  # 3 failed requests × (1 try + 1 retry) before the breaker opened


def test_a_503_with_a_long_retry_after_fails_over_at_once(lab: Lab) -> None:
    r = run("failover_retry_after", lab)
    assert statuses(r) == [["ok"]] * 3
    assert r.details["elapsed_s"] < 10  # not the 120 s the primary asked for
    assert r.injected == 3  # no retry on the primary: each of its 3 failures failed over immediately
    assert r.details["endpoints"][0]["state"] == "open"


def test_malformed_json_from_the_primary_is_answered_by_the_fallback(lab: Lab) -> None:
    r = run("failover_malformed_json", lab)
    assert statuses(r) == [["ok"]] * 3
    assert r.details["faults"] == {"malformed_json": r.injected}
    before, after = r.details["endpoints_before"][1], r.details["endpoints"][1]
    assert after["requests"] - before["requests"] >= r.injected


def test_truncated_json_from_the_primary_is_answered_by_the_fallback(lab: Lab) -> None:
    r = run("failover_truncated_json", lab)
    assert statuses(r) == [["ok"]] * 3
    assert r.details["faults"] == {"truncated_json": r.injected}
    before, after = r.details["endpoints_before"][1], r.details["endpoints"][1]
    assert after["requests"] - before["requests"] >= r.injected


def test_all_endpoints_down_fails_the_sync_writes_nothing_and_recovers(lab: Lab) -> None:
    r = run("all_endpoints_down", lab)
    assert statuses(r) == [["ok"], ["failed"], ["failed"], ["failed"], ["ok"]]
    assert [s["block"] for s in r.details["syncs"][1:4]] == [[None]] * 3  # no block: nothing stored for them
    for error in r.details["errors"]:
        # the head, the genesis and the newest stored block, in one batch
        assert error.startswith("chain devnet unavailable: batch of 3: no RPC endpoint answered (")
        assert "HTTP 502" in error  # the primary's answer, named
    assert [e["state"] for e in r.details["endpoints_during"]] == ["open", "open"]
    assert r.details["endpoints"][0]["state"] == "closed"  # the half-open trial succeeded after recovery
    assert "no data written (the failed attempts recorded, with since when and why), previous snapshots still " \
           "served" in r.user_sees
    assert r.user_sees.endswith("after recovery: 5 venues ok")


def test_a_primary_serving_another_chain_is_refused_and_the_fallback_used(lab: Lab) -> None:
    r = run("wrong_chain_id_fallback", lab)
    assert statuses(r) == [["ok"]]
    primary, fallback = r.details["endpoints"]
    assert (primary["state"], primary["requests"]) == ("open", 0)
    assert fallback["requests"] > 0
    assert r.details["faults"] == {"wrong_chain_id": 1}  # checked once, then held open


def test_the_only_endpoint_serving_another_chain_fails_the_sync_and_writes_nothing(lab: Lab) -> None:
    r = run("wrong_chain_id_alone", lab)
    assert statuses(r) == [["failed"]]
    served = r.details["served_chain_id"]
    assert f"serves chain id {served}, not the configured chain id {CHAIN_ID}" in r.details["error"]
    assert r.user_sees.endswith("; no data written (the failed attempt recorded with its reason)")


# --- faults aimed at the venues' reads ------------------------------------------------------------------------------


def _stale_then_ok(r: ScenarioResult, text: str) -> None:
    assert statuses(r) == [["ok"], ["partial"], ["ok"]]
    assert sorted(r.details["stale"]) == sorted(ONCHAIN)
    assert all(text in e for e in r.details["stale"].values())
    assert sync_errors(r) == ["; ".join(f"{v}: {r.details['stale'][v]}" for v in ONCHAIN)]
    assert r.user_sees.endswith("next sync: 5 venues ok")
    assert not set(OFFCHAIN) & set(r.details["stale"])
    assert "2 venues ok" in r.user_sees  # the perp venues, read off-chain, stored in the faulted sync


def test_malformed_json_from_the_only_endpoint_marks_the_onchain_venues_stale_for_one_sync(lab: Lab) -> None:
    r = run("malformed_json_alone", lab)
    _stale_then_ok(r, "malformed JSON")  # not retried (a DecodeError), no fallback: stale, never half-stored


def test_an_answer_with_a_wrong_id_marks_the_onchain_venues_stale_for_one_sync(lab: Lab) -> None:
    _stale_then_ok(run("wrong_id", lab), "matches no request")


def test_a_null_result_marks_the_onchain_venues_stale_for_one_sync(lab: Lab) -> None:
    _stale_then_ok(run("empty_result", lab), "eth_call result is not hex")


def test_a_json_rpc_error_on_a_read_round_marks_the_onchain_venues_stale_for_one_sync(lab: Lab) -> None:
    _stale_then_ok(run("error_object_round", lab), "eth_call: injected error (code -32000)")


def test_a_json_rpc_error_on_the_last_round_stales_only_the_venues_reading_in_it(lab: Lab) -> None:
    r = run("error_object_last_round", lab)
    assert r.details["finished"] == ["morpho_blue"]
    assert sorted(r.details["stale"]) == r.details["targeted"] == ["aave_v3", "uniswap_v3"]


def test_one_venue_api_down_stales_only_that_venue(lab: Lab) -> None:
    r = run("offchain_venue_down", lab)
    assert statuses(r) == [["ok"], ["partial"], ["ok"]]
    (venue, error), = r.details["stale"].items()
    assert venue == "hyperliquid"
    assert "HTTP 50" in error
    assert r.user_sees.startswith("hyperliquid stale: ")
    assert "4 venues ok" in r.user_sees


# --- reorgs ---------------------------------------------------------------------------------------------------------


def test_a_reorg_during_the_reads_is_stored_at_the_new_canonical_block_only(lab: Lab) -> None:
    r = run("reorg_mid_read", lab)
    assert statuses(r) == [["ok"], ["ok"]]
    assert r.details["faults"] == {"reorg": 1}
    assert r.details["old_hash"] != r.details["new_hash"]
    assert r.details["snapshot_hashes"] == [r.details["new_hash"]]  # one hash in the run: the canonical one


def test_a_reorg_of_the_stored_block_replaces_its_snapshots(lab: Lab) -> None:
    r = run("reorg_between_syncs", lab)
    assert statuses(r) == [["ok"]] * 3
    assert r.details["faults"] == {"reorg": 1}
    first, second = r.details["syncs"][1:]
    assert first["block"] == second["block"] == [r.details["block"]]  # the same height, read again
    assert r.details["served_hashes"] == [r.details["canonical"]]  # the orphaned block's snapshots superseded


def test_a_clean_resync_of_the_same_block_replaces_stale_snapshots(lab: Lab) -> None:
    r = run("resync_same_block", lab)
    assert statuses(r) == [["ok"], ["partial"], ["ok"]]
    faulted, clean = r.details["syncs"][1:]
    assert faulted["block"] == clean["block"] == [r.details["block"]]
    assert r.details["served_statuses"] == {"ok": 21}  # 5 wallets × 4 venues + the hedged wallet's dYdX account


# --- oracle faults --------------------------------------------------------------------------------------------------


def _oracle_flagged(r: ScenarioResult, flag: str) -> None:
    assert statuses(r) == [["ok"]] * 3
    assert r.details["stale"] == {}
    assert any(flag in flags for flags in r.details["price_flags"])
    assert r.details["holders"]
    assert r.details["bad_oracle"] == r.details["holders"]  # exactly the healths holding the asset
    (alert,) = r.details["alerts"]
    assert f"invalid oracle price — {r.details['symbol']} {flag}" in alert
    assert r.injected == 1


def test_a_zero_price_is_flagged_and_alerted(lab: Lab) -> None:
    r = run("oracle_zero", lab)  # AaveOracle reverts on it: read as 0, flagged from the feed
    _oracle_flagged(r, "zero")
    assert r.details["holders"] == ["multi/aave_v3"]  # only that health; every other wallet and venue unaffected


def test_a_negative_price_is_flagged_and_alerted(lab: Lab) -> None:
    r = run("oracle_negative", lab)
    _oracle_flagged(r, "negative")
    assert r.details["holders"] == ["multi/aave_v3"]


def test_a_stale_feed_is_flagged_and_alerted(lab: Lab) -> None:
    r = run("oracle_stale", lab)
    _oracle_flagged(r, "stale")
    assert r.details["symbol"] in ("LINK", "AAVE")
    assert r.details["holders"] == ["multi/aave_v3"]  # only the multi-asset wallet holds LINK / AAVE
    assert r.user_sees.endswith("1 oracle_invalid alert(s)")


def test_a_price_jump_beyond_the_bound_is_flagged_and_alerted(lab: Lab) -> None:
    r = run("oracle_jump", lab)
    _oracle_flagged(r, "jump")
    assert r.details["symbol"] == "WETH"
    expected: list[str] = ["hedged/aave_v3", "hedged/morpho_blue", "hedged/uniswap_v3", "multi/aave_v3",
                           "near_liquidation/aave_v3", "safe/aave_v3"]
    assert r.details["bad_oracle"] == expected  # every venue's WETH holders, valued with the same oracle
