"""Hyperliquid decoding from the documented example payloads (``payloads/SOURCES.md``); malformed ones fail cleanly."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from connectors.errors import DecodeError, InvalidAddressError
from connectors.hyperliquid.decode import (
    EMPTY_CLEARINGHOUSE_STATE,
    decode_clearinghouse_state,
    decode_margin_tables,
    decode_meta_and_asset_ctxs,
)
from connectors.hyperliquid.models import HyperliquidMarginTier, HyperliquidSnapshot

PAYLOADS = Path(__file__).parent / "payloads"
WALLET = "0x31ca8395cf837de08b24da3f660e77761dfb974b"


def load(name: str) -> Any:
    return json.loads((PAYLOADS / name).read_text())


def test_documented_clearinghouse_state_decodes_exactly_and_keeps_the_raw_payload() -> None:
    raw = load("hyperliquid_clearinghouse_state_docs.json")
    acct = decode_clearinghouse_state(raw, WALLET, http_date_ms=1, local_ms=2)
    assert acct.wallet == "0x31cA8395cF837DE08B24dA3F660E77761DFb974b"  # EIP-55 of WALLET
    assert acct.time_ms == 1708622398623
    assert (acct.observed_at_ms, acct.observed_at_source) == (1708622398623, "venue")
    assert acct.margin_summary.account_value_usd == Decimal("13109.482328")
    assert acct.cross_margin_summary.total_raw_usd == Decimal("13104.514502")
    assert acct.cross_maintenance_margin_used_usd == Decimal("0.0")
    assert acct.withdrawable_usd == Decimal("13104.514502")
    assert acct.total_notional_usd == Decimal("100.02765")
    (pos,) = acct.positions
    assert pos.coin == "ETH"
    assert pos.szi == Decimal("0.0335")
    assert isinstance(pos.szi, Decimal)
    assert pos.entry_px == Decimal("2986.3")
    assert pos.leverage.type == "isolated"
    assert pos.leverage.value == 20
    assert pos.leverage.raw_usd == Decimal("-95.059824")
    assert pos.liquidation_px == Decimal("2866.26936529")
    assert pos.margin_used_usd == Decimal("4.967826")
    assert pos.max_leverage == 50
    assert pos.cum_funding is not None
    assert pos.cum_funding.all_time_usd == Decimal("514.085417")
    assert pos.mark_px == Decimal("2985.9")
    assert not pos.is_cross
    # The raw payload is kept beside the parsed one, unchanged.
    assert acct.raw == raw
    assert pos.raw == raw["assetPositions"][0]["position"]


def test_a_null_liquidation_price_stays_none() -> None:
    raw = load("hyperliquid_clearinghouse_state_docs.json")
    raw["assetPositions"][0]["position"]["liquidationPx"] = None
    (pos,) = decode_clearinghouse_state(raw, WALLET).positions
    assert pos.liquidation_px is None


def test_time_falls_back_to_the_http_date_then_the_local_clock() -> None:
    raw = load("hyperliquid_clearinghouse_state_docs.json")
    del raw["time"]
    acct = decode_clearinghouse_state(raw, WALLET, http_date_ms=1_700_000_000_000, local_ms=5)
    assert (acct.observed_at_ms, acct.observed_at_source, acct.time_ms) == (1_700_000_000_000, "http_date", None)
    acct = decode_clearinghouse_state(raw, WALLET, local_ms=5)
    assert (acct.observed_at_ms, acct.observed_at_source) == (5, "local_clock")
    with pytest.raises(DecodeError, match="no time"):
        decode_clearinghouse_state(raw, WALLET)


def test_an_unknown_user_is_an_empty_account() -> None:
    raw = {**copy.deepcopy(EMPTY_CLEARINGHOUSE_STATE), "time": 1}
    acct = decode_clearinghouse_state(raw, WALLET)
    assert acct.positions == ()
    assert acct.account_value_usd == 0
    assert decode_clearinghouse_state(None, WALLET, local_ms=3).positions == ()


def test_a_zero_size_position_is_dropped() -> None:
    raw = load("hyperliquid_clearinghouse_state_docs.json")
    raw["assetPositions"][0]["position"]["szi"] = "0.0"
    assert decode_clearinghouse_state(raw, WALLET).positions == ()


def _drop(obj: dict[str, Any], path: list[str]) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    node: Any = out
    for key in path[:-1]:
        node = node[key] if not isinstance(node, list) else node[int(key)]
    del node[path[-1]]
    return out


@pytest.mark.parametrize(
    "path",
    [
        ["marginSummary"],
        ["crossMarginSummary", "totalRawUsd"],
        ["crossMaintenanceMarginUsed"],
        ["assetPositions"],
        ["assetPositions", "0", "position", "szi"],
        ["assetPositions", "0", "position", "leverage"],
        ["assetPositions", "0", "position", "leverage", "rawUsd"],  # isolated without its margin
        ["assetPositions", "0", "position", "positionValue"],
    ],
)
def test_missing_fields_are_decode_errors(path: list[str]) -> None:
    raw = _drop(load("hyperliquid_clearinghouse_state_docs.json"), path)
    with pytest.raises(DecodeError):
        decode_clearinghouse_state(raw, WALLET)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (["szi"], "abc"),
        (["szi"], True),
        (["entryPx"], "NaN"),
        (["leverage", "type"], "portfolio"),
        (["maxLeverage"], "fifty"),
    ],
)
def test_wrong_values_are_decode_errors(path: list[str], value: Any) -> None:
    raw = load("hyperliquid_clearinghouse_state_docs.json")
    node = raw["assetPositions"][0]["position"]
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(DecodeError):
        decode_clearinghouse_state(raw, WALLET)


def test_non_objects_are_decode_errors() -> None:
    raws: list[Any] = [[], "x", 3]
    for raw in raws:
        with pytest.raises(DecodeError):
            decode_clearinghouse_state(raw, WALLET)


def test_an_invalid_wallet_is_refused() -> None:
    with pytest.raises(InvalidAddressError):
        decode_clearinghouse_state(load("hyperliquid_clearinghouse_state_docs.json"), "0x1234")


def test_documented_meta_and_asset_ctxs_decode() -> None:
    raw = load("hyperliquid_meta_and_asset_ctxs_docs.json")
    market = decode_meta_and_asset_ctxs(raw, 123, "http_date")
    assert [a.name for a in market.assets] == ["BTC", "ETH", "HPOS"]
    btc = market.asset("BTC")
    assert btc is not None
    assert (btc.index, btc.sz_decimals, btc.max_leverage) == (0, 5, 50)
    assert btc.mark_px == Decimal("14.3161")
    assert btc.oracle_px == Decimal("14.32")
    assert btc.open_interest == Decimal("688.11")
    # No margin table named: one tier at maxLeverage.
    assert btc.margin_tiers == (HyperliquidMarginTier(lower_bound_usd=Decimal(0), max_leverage=50),)
    hpos = market.asset("HPOS")
    assert hpos is not None
    assert hpos.only_isolated
    assert hpos.mark_px == Decimal("8.4542")
    assert hpos.raw_ctx == raw[1][2]
    assert market.asset("DOGE") is None
    assert (market.observed_at_ms, market.observed_at_source) == (123, "http_date")


def test_documented_margin_tables_resolve_per_asset() -> None:
    meta = load("hyperliquid_meta_docs.json")
    tables = decode_margin_tables(meta["marginTables"])
    assert tables[51] == (
        HyperliquidMarginTier(lower_bound_usd=Decimal(0), max_leverage=10),
        HyperliquidMarginTier(lower_bound_usd=Decimal(3_000_000), max_leverage=5),
    )
    # Point ETH at the tiered table and SOL-like HPOS at an id < 50 (one tier at the id's leverage).
    meta["universe"][1]["marginTableId"] = 51
    meta["universe"][2]["marginTableId"] = 3
    ctx = {"markPx": "1.0", "oraclePx": "1.0"}
    market = decode_meta_and_asset_ctxs([meta, [ctx] * 4], 0, "local_clock")
    eth, hpos = market.asset("ETH"), market.asset("HPOS")
    assert eth is not None
    assert hpos is not None
    assert [t.max_leverage for t in eth.margin_tiers] == [10, 5]
    assert hpos.margin_tiers == (HyperliquidMarginTier(lower_bound_usd=Decimal(0), max_leverage=3),)
    loom = market.asset("LOOM")
    assert loom is not None
    assert loom.is_delisted


@pytest.mark.parametrize(
    "raw",
    [
        {},
        [{"universe": []}],
        [{"universe": [{"name": "BTC", "szDecimals": 5, "maxLeverage": 50}]}, []],  # misaligned
        [{"universe": [{"name": "BTC", "szDecimals": 5}]}, [{}]],  # no maxLeverage
        [{"universe": [], "marginTables": [[51, {"marginTiers": []}]]}, []],
        [
            {
                "universe": [],
                "marginTables": [
                    [
                        51,
                        {
                            "marginTiers": [
                                {"lowerBound": "5", "maxLeverage": 10},
                                {"lowerBound": "1", "maxLeverage": 5},
                            ]
                        },
                    ]
                ],
            },
            [],
        ],
    ],
)
def test_malformed_meta_and_asset_ctxs_are_decode_errors(raw: Any) -> None:
    with pytest.raises(DecodeError):
        decode_meta_and_asset_ctxs(raw, 0, "local_clock")


def test_health_inputs_turn_decimals_into_floats_with_tiers() -> None:
    acct = decode_clearinghouse_state(load("hyperliquid_clearinghouse_state_docs.json"), WALLET)
    market = decode_meta_and_asset_ctxs(load("hyperliquid_meta_and_asset_ctxs_docs.json"), 0, "local_clock")
    snap = HyperliquidSnapshot(market=market, accounts=(acct,), observed_at_ms=0, observed_at_source="venue")
    inputs = snap.health_inputs(WALLET.upper().replace("0X", "0x"))
    assert inputs["coin"] == ("ETH",)
    assert inputs["szi"].tolist() == [0.0335]
    assert inputs["is_cross"].tolist() == [False]
    assert inputs["isolated_raw_usd"].tolist() == [-95.059824]
    assert inputs["tier_lower_usd"].tolist() == [[0.0]]
    assert inputs["tier_max_leverage"].tolist() == [[50.0]]
    assert inputs["reported_liquidation_px"].tolist() == [2866.26936529]
