"""dYdX v4: bech32 accounts, decoding of the indexer's documented payloads, and the connector over MockTransport."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.base import OffchainConnector
from connectors.dydx_v4 import DydxConnector, bech32_encode, parse_account, validate_address
from connectors.dydx_v4.decode import decode_perpetual_markets, decode_subaccount
from connectors.errors import (
    DecodeError,
    InvalidAddressError,
    InvalidInputError,
    RateLimitedError,
    RpcTimeoutError,
    RpcUnavailableError,
)
from connectors.http import http_date_ms

PAYLOADS = Path(__file__).parent / "payloads"
MARKETS = json.loads((PAYLOADS / "dydx_perpetual_markets_ccxt.json").read_text())
SHORT = json.loads((PAYLOADS / "dydx_subaccount_btc_short.json").read_text())
USDC_ONLY = json.loads((PAYLOADS / "dydx_subaccount_docs_usdc_only.json").read_text())
ADDR = "dydx199tqg4wdlnu4qjlxchpd7seg454937hjrknju4"  # from the dYdX docs
OTHER = "dydx155va0m7wz5n8zcqscn9afswwt04n4usj46wvp5"  # from dYdX's abacus test payloads
DATE = "Mon, 14 Jul 2025 08:00:00 GMT"


# --- addresses ---------------------------------------------------------------------------------------
def test_documented_addresses_validate_with_their_checksum() -> None:
    assert validate_address(ADDR) == ADDR
    assert validate_address(OTHER) == OTHER
    assert parse_account(ADDR) == (ADDR, 0)
    assert parse_account(f"{ADDR}/128") == (ADDR, 128)
    assert parse_account(ADDR, default_subaccount=3) == (ADDR, 3)


def test_encoding_round_trips_through_validation() -> None:
    addr = bech32_encode(bytes(range(20)))
    assert addr.startswith("dydx1")
    assert len(addr) == 43
    assert validate_address(addr) == addr


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("0x31ca8395cf837de08b24da3f660e77761dfb974b", "EVM address"),
        ("dydx199tqg4wdlnu4qjlxchpd7seg454937hjrknju5", "checksum"),  # last character changed
        ("dydx199tqg4wdlnu4qjlxchpd7seg454937hjrknju", "38 characters"),  # one short
        ("dydx199tqg4wdlnu4qjlxchpd7seg454937hjrknjub", "38 characters"),  # 'b' is not bech32
        ("DYDX199TQG4WDLNU4QJLXCHPD7SEG454937HJRKNJU4", "lower-case"),
        ("cosmos199tqg4wdlnu4qjlxchpd7seg454937hjrknju4", "38 characters"),
        (f"{ADDR}/x", "subaccount"),
        (f"{ADDR}/128000", "subaccount"),
    ],
)
def test_bad_accounts_are_refused_clearly(value: str, why: str) -> None:
    with pytest.raises(InvalidAddressError, match=why) as info:
        parse_account(value)
    assert isinstance(info.value, InvalidInputError)
    assert isinstance(info.value, ValueError)


# --- decoding ----------------------------------------------------------------------------------------
def test_documented_perpetual_markets_decode() -> None:
    markets = decode_perpetual_markets(MARKETS, 5, "http_date")
    btc = markets.market("BTC-USD")
    assert btc is not None
    assert btc.oracle_price_usd == Decimal("118976.5376")
    assert (btc.initial_margin_fraction, btc.maintenance_margin_fraction) == (Decimal("0.02"), Decimal("0.012"))
    assert btc.open_interest == Decimal("52.0691")
    assert (btc.open_interest_lower_cap_usd, btc.open_interest_upper_cap_usd) == (Decimal(0), Decimal(0))
    assert btc.market_type == "CROSS"
    assert btc.raw == MARKETS["markets"]["BTC-USD"]
    assert markets.market("ETH-USD") is None


def test_newer_indexers_pnl_price_stands_in_for_oracle_price() -> None:
    raw = copy.deepcopy(MARKETS)
    m = raw["markets"]["BTC-USD"]
    m["pnlPrice"] = m.pop("oraclePrice")
    btc = decode_perpetual_markets(raw, 0, "local_clock").market("BTC-USD")
    assert btc is not None
    assert btc.oracle_price_usd == Decimal("118976.5376")


@pytest.mark.parametrize(
    "mutate",
    [
        lambda r: r.pop("markets"),
        lambda r: r["markets"]["BTC-USD"].pop("initialMarginFraction"),
        lambda r: r["markets"]["BTC-USD"].update(maintenanceMarginFraction="0.5"),  # MMF > IMF
        lambda r: r["markets"]["BTC-USD"].update(ticker="ETH-USD"),
        lambda r: r["markets"].update({"X": 3}),
    ],
)
def test_malformed_markets_are_decode_errors(mutate: Any) -> None:
    raw = copy.deepcopy(MARKETS)
    mutate(raw)
    with pytest.raises(DecodeError):
        decode_perpetual_markets(raw, 0, "local_clock")


def test_documented_subaccount_with_a_short_decodes_exactly() -> None:
    sub = decode_subaccount(SHORT, ADDR, 0, 7, "http_date")
    assert sub.exists
    assert sub.account_id == f"{ADDR}/0"
    assert sub.equity_usd == Decimal("1635.19293616")
    assert sub.free_collateral_usd == Decimal("667.8943257632")
    assert sub.usdc_usd == Decimal("50000.123456")
    (p,) = sub.positions
    assert (p.market, p.side, p.status) == ("BTC-USD", "SHORT", "OPEN")
    assert p.size == Decimal("-0.407")
    assert p.entry_price_usd == Decimal("118692.04840909090909090909")
    assert p.unrealized_pnl_usd == Decimal("-57.26681734000000000000037")
    assert p.implied_oracle_usd == Decimal("118832.75312")
    assert p.created_at_height == 44140908
    assert sub.latest_processed_block_height == 44865196
    assert sub.raw == SHORT
    assert p.raw == SHORT["subaccount"]["openPerpetualPositions"]["BTC-USD"]


def test_an_unsigned_short_size_is_negated_and_a_negative_long_refused() -> None:
    raw = copy.deepcopy(SHORT)
    raw["subaccount"]["openPerpetualPositions"]["BTC-USD"]["size"] = "0.407"
    assert decode_subaccount(raw, ADDR, 0, 0, "local_clock").positions[0].size == Decimal("-0.407")
    raw["subaccount"]["openPerpetualPositions"]["BTC-USD"]["side"] = "LONG"
    raw["subaccount"]["openPerpetualPositions"]["BTC-USD"]["size"] = "-0.407"
    with pytest.raises(DecodeError, match="LONG"):
        decode_subaccount(raw, ADDR, 0, 0, "local_clock")


def test_documented_usdc_only_subaccount_decodes() -> None:
    sub = decode_subaccount(USDC_ONLY, ADDR, 0, 0, "local_clock")
    assert sub.positions == ()
    assert sub.usdc_usd == Decimal(100_000_000_000)
    assert sub.equity_usd == Decimal("100000000000.000000")


@pytest.mark.parametrize(
    "mutate",
    [
        lambda s: s.pop("equity"),
        lambda s: s.pop("freeCollateral"),
        lambda s: s.update(equity="lots"),
        lambda s: s["openPerpetualPositions"]["BTC-USD"].pop("entryPrice"),
        lambda s: s["openPerpetualPositions"]["BTC-USD"].update(side="FLAT"),
        lambda s: s.update(subaccountNumber=1),  # not the subaccount asked for
    ],
)
def test_malformed_subaccounts_are_decode_errors(mutate: Any) -> None:
    raw = copy.deepcopy(SHORT)
    mutate(raw["subaccount"])
    with pytest.raises(DecodeError):
        decode_subaccount(raw, ADDR, 0, 0, "local_clock")


# --- connector ---------------------------------------------------------------------------------------
def indexer(subaccounts: dict[tuple[str, int], Any], seen: list[str] | None = None) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        assert request.method == "GET"
        path = request.url.path
        if seen is not None:
            seen.append(path)
        if path == "/v4/perpetualMarkets":
            return httpx.Response(200, json=MARKETS, headers={"date": DATE})
        parts = path.split("/")
        key = (parts[3], int(parts[5]))
        if key not in subaccounts:
            msg = f"No subaccount found with address {key[0]} and subaccountNumber {key[1]}"
            return httpx.Response(404, json={"errors": [{"msg": msg}]}, headers={"date": DATE})
        return httpx.Response(200, json=subaccounts[key], headers={"date": DATE})

    return httpx.MockTransport(handle)


def test_capabilities_and_protocol() -> None:
    caps = DydxConnector.capabilities
    assert (caps.venue_type, caps.kind, caps.transport, caps.block_pinned) == ("dydx_v4", "perp", "http", False)
    assert caps.positions == ("perp",)
    assert caps.reports_own_health
    assert isinstance(DydxConnector("https://x.test"), OffchainConnector)


def test_read_accounts_gets_markets_then_each_subaccount() -> None:
    seen: list[str] = []
    c = DydxConnector("https://indexer.example.test", transport=indexer({(ADDR, 0): SHORT}, seen))
    snap = c.read_accounts([ADDR, f"{OTHER}/2", f"{ADDR}/0"])
    assert seen == [
        "/v4/perpetualMarkets",
        f"/v4/addresses/{ADDR}/subaccountNumber/0",
        f"/v4/addresses/{OTHER}/subaccountNumber/2",
    ]
    assert [a.account_id for a in snap.accounts] == [f"{ADDR}/0", f"{OTHER}/2"]
    unknown = snap.account(f"{OTHER}/2")
    assert not unknown.exists
    assert unknown.positions == ()
    assert unknown.equity_usd == 0
    assert unknown.raw["errors"][0]["msg"].startswith("No subaccount found")
    assert (snap.observed_at_ms, snap.observed_at_source) == (http_date_ms(DATE), "http_date")
    inputs = snap.health_inputs(ADDR)
    assert inputs["oracle_usd"].tolist() == [118832.75312]  # the price the indexer valued it at
    assert snap.health_inputs(ADDR, price="market")["oracle_usd"].tolist() == [118976.5376]


def test_the_default_subaccount_number_applies_to_bare_addresses() -> None:
    seen: list[str] = []
    c = DydxConnector("https://i.test", subaccount_number=5, transport=indexer({}, seen))
    c.read_accounts([ADDR])
    assert seen[-1] == f"/v4/addresses/{ADDR}/subaccountNumber/5"


def test_bad_accounts_are_refused_before_any_request() -> None:
    seen: list[str] = []
    c = DydxConnector("https://i.test", transport=indexer({}, seen))
    with pytest.raises(InvalidAddressError, match="EVM address"):
        c.read_accounts([ADDR, "0x31ca8395cf837de08b24da3f660e77761dfb974b"])
    assert seen == []


def test_transport_faults_map_onto_the_error_tree() -> None:
    def timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("slow", request=request)

    with pytest.raises(RpcTimeoutError):
        DydxConnector("https://i.test", transport=httpx.MockTransport(timeout), max_retries=0).read_accounts([ADDR])

    calls = 0

    def flaky(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            return httpx.Response(500)
        if calls == 2:
            return httpx.Response(429, headers={"retry-after": "1"})
        return indexer({(ADDR, 0): SHORT}).handle_request(request)

    sleeps: list[float] = []
    snap = DydxConnector("https://i.test", transport=httpx.MockTransport(flaky), sleep=sleeps.append).read_accounts(
        [ADDR]
    )
    assert snap.accounts[0].equity_usd == Decimal("1635.19293616")
    assert len(sleeps) == 2
    assert sleeps[1] >= 1

    with pytest.raises(RateLimitedError) as info:
        DydxConnector(
            "https://i.test",
            transport=httpx.MockTransport(lambda r: httpx.Response(429, headers={"retry-after": "3"})),
            max_retries=1,
            sleep=lambda s: None,
        ).read_accounts([ADDR])
    assert info.value.retry_after == 3

    with pytest.raises(RpcUnavailableError):
        DydxConnector(
            "https://i.test",
            transport=httpx.MockTransport(lambda r: httpx.Response(503)),
            max_retries=1,
            sleep=lambda s: None,
        ).read_accounts([ADDR])


def test_a_400_from_the_indexer_is_a_caller_fault_with_its_message() -> None:
    def bad(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"errors": [{"msg": "address must be a valid dydx address"}]})

    with pytest.raises(InvalidInputError, match="valid dydx address"):
        DydxConnector("https://i.test", transport=httpx.MockTransport(bad)).read_markets()


def test_malformed_answers_are_decode_errors() -> None:
    def garbage(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"<html>")

    with pytest.raises(DecodeError, match="malformed JSON"):
        DydxConnector("https://i.test", transport=httpx.MockTransport(garbage)).read_accounts([ADDR])
    wrong = {"subaccount": {**SHORT["subaccount"], "address": OTHER}}
    with pytest.raises(DecodeError, match="answered"):
        DydxConnector("https://i.test", transport=indexer({(ADDR, 0): wrong})).read_accounts([ADDR])
