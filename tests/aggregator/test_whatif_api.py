"""The what-if over the API (``POST /v1/wallets/{address}/whatif``) and the command line (``xmargin whatif``), on a
store filled by a real sync of the devnet's seeded wallets (SQLite and PostgreSQL: the exact integers the replay
needs must survive each backend's JSON): the same document as the engine, and every kind of bad input refused with
one clear line — 422 ``{"error": …}`` / exit 2 — and never a traceback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

import devnet
from aggregator.api.app import create_app
from aggregator.api.server import ApiServer
from aggregator.cli import app as cli
from aggregator.devnet_cli import devnet_settings
from aggregator.pipeline import sync_once
from aggregator.whatif import Change, Scenario, whatif
from db.store import Store
from tests.conftest import pg_schema_url
from tests.shared_devnet import SharedDevnet

pytestmark = pytest.mark.chain

HEDGED = devnet.wallet_address("hedged")
UNTRACKED = "0x52908400098527886E0F7030069857D2E4169EE7"
SAFE = devnet.wallet_address("safe")  # Aave only: no Morpho position
IDLE = devnet.wallet_address("lender")  # tracked here, never synced: no snapshot
EXAMPLE = {"prices": {"WETH": "3000"}, "changes": [
    {"action": "supply", "venue": "morpho_blue", "asset": "WETH", "amount": "2"},
    {"action": "repay", "venue": "aave_v3", "asset": "USDC", "amount": 5000}]}


@dataclass
class World:
    store: Store
    db_url: str
    url: str


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, shared_devnet: SharedDevnet
) -> Iterator[World]:
    if request.param == "sqlite":
        urls: Iterator[str] = iter([f"sqlite:///{tmp_path_factory.mktemp('whatif-api') / 'x.db'}"])
    else:
        urls = pg_schema_url()
    db_url = next(urls)
    try:
        info = shared_devnet.seeded()  # each backend's world syncs the chain as seeded
        with Store.open(db_url) as store:
            store.add_wallets([(HEDGED, "hedged"), (SAFE, "safe")])
            assert sync_once(devnet_settings(info), store).ok
            store.add_wallets([(IDLE, "idle")])
            with ApiServer(create_app(store)) as server:
                yield World(store, db_url, server.url)
    finally:
        for _ in urls:  # drops the PostgreSQL schema
            pass


@pytest.fixture
def client(world: World) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=world.url, timeout=30) as c:
        yield c


def _figures(doc: dict[str, Any]) -> Any:
    """What must not differ between two computations of one what-if (everything but the time it was computed)."""
    return {k: v for k, v in doc.items() if k != "computed_at"}


def test_the_api_answers_the_engines_document(world: World, client: httpx.Client) -> None:
    resp = client.post(f"/v1/wallets/{HEDGED.lower()}/whatif", json=EXAMPLE)
    assert resp.status_code == 200, resp.text
    got = resp.json()
    engine = whatif(world.store, HEDGED, Scenario({"WETH": Decimal(3000)}, (
        Change("supply", "morpho_blue", "WETH", Decimal(2)), Change("repay", "aave_v3", "USDC", Decimal(5000)))))
    venues = {v["venue"]: v for v in got["venues"]}
    for v in engine["venues"]:
        for when in ("before", "after"):
            for key, value in v[when].items():
                assert venues[v["venue"]][when][key] == value, (v["venue"], when, key)
    assert got["unified"]["after"]["unified_health"] == engine["unified"]["after"]["unified_health"]
    assert got["changes"] == engine["changes"]
    assert got["summary"] == engine["summary"]
    aave = venues["aave_v3"]
    assert aave["before"]["health_factor_raw"] == aave["before"]["health_factor_raw"]
    assert int(aave["after"]["health_factor_raw"]) < int(aave["before"]["health_factor_raw"])
    assert [c["market"] for c in got["changes"]] == ["WETH/USDC", None]


def test_the_schema_documents_the_body_and_the_answer(client: httpx.Client) -> None:
    schema = client.get("/openapi.json").json()
    op = schema["paths"]["/v1/wallets/{address}/whatif"]["post"]
    body = op["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    answer = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    components = schema["components"]["schemas"]
    assert set(components[body]["properties"]) == {"prices", "changes"}
    change = components["WhatIfChangeIn"]["properties"]
    assert set(change["action"]["enum"]) == {"supply", "withdraw", "borrow", "repay"}
    assert {"venues", "unified", "changes", "prices", "feasible", "summary"} <= set(components[answer]["properties"])
    assert set(op["responses"]) >= {"200", "400", "401", "404", "422"}


BAD: list[tuple[str, dict[str, Any], str]] = [
    ("unknown venue", {"changes": [{"action": "repay", "venue": "compound", "asset": "USDC", "amount": "1"}]},
     "unknown venue 'compound'"),
    ("asset not on the venue", {"changes": [{"action": "supply", "venue": "aave_v3", "asset": "DOGE",
                                             "amount": "1"}]}, "has no reserve 'DOGE'"),
    ("negative amount", {"changes": [{"action": "supply", "venue": "aave_v3", "asset": "WETH", "amount": "-1"}]},
     "must be positive"),
    ("negative number", {"changes": [{"action": "supply", "venue": "aave_v3", "asset": "WETH", "amount": -1.5}]},
     "must be positive"),
    ("zero", {"changes": [{"action": "borrow", "venue": "aave_v3", "asset": "USDC", "amount": "0"}]},
     "must be positive"),
    ("not a number", {"changes": [{"action": "supply", "venue": "aave_v3", "asset": "WETH", "amount": "lots"}]},
     "is not a number"),
    ("not finite", {"prices": {"WETH": "NaN"}}, "not a finite number"),
    ("more decimals than the token", {"changes": [{"action": "repay", "venue": "aave_v3", "asset": "USDC",
                                                   "amount": "0.0000001"}]}, "more than the token's 6 decimals"),
    ("repaying more than owed", {"changes": [{"action": "repay", "venue": "aave_v3", "asset": "USDC",
                                              "amount": "40001"}]}, "USDC of debt owed"),
    ("withdrawing more than supplied", {"changes": [{"action": "withdraw", "venue": "aave_v3", "asset": "WETH",
                                                     "amount": "20.5"}]}, "WETH supplied"),
    ("withdrawing more collateral than held", {"changes": [{"action": "withdraw", "venue": "morpho_blue",
                                                            "asset": "WETH", "amount": "11"}]},
     "more than the 10 WETH of collateral"),
    ("repaying a Morpho debt twice over", {"changes": [{"action": "repay", "venue": "morpho_blue", "asset": "USDC",
                                                        "amount": "40000"}]}, "owed"),
    ("unknown price symbol", {"prices": {"WETHH": "3000"}}, "unknown price symbol 'WETHH'"),
    ("two prices for one asset", {"prices": {"WETH": "3000", "ETH": "3100"}}, "two prices for ETH"),
    ("unknown Morpho market", {"changes": [{"action": "supply", "venue": "morpho_blue", "asset": "WETH",
                                            "amount": "1", "market": "WETH/USDT"}]}, "no market 'WETH/USDT'"),
    ("asset not in the named market", {"changes": [{"action": "supply", "venue": "morpho_blue", "asset": "DAI",
                                                    "amount": "1", "market": "WETH/USDC"}]}, "has no DAI"),
    ("borrowing the collateral token", {"changes": [{"action": "borrow", "venue": "morpho_blue", "asset": "WETH",
                                                     "amount": "1", "market": "WETH/USDC"}]},
     "lends USDC, not WETH"),
    ("borrowing a token no market lends", {"changes": [{"action": "borrow", "venue": "morpho_blue", "asset": "WETH",
                                                        "amount": "1"}]}, "not the loan token of any market"),
    ("a change on a perp venue", {"changes": [{"action": "supply", "venue": "hyperliquid", "asset": "USDC",
                                               "amount": "1"}]}, "changes only prices there"),
    ("a market on Aave", {"changes": [{"action": "supply", "venue": "aave_v3", "asset": "WETH", "amount": "1",
                                       "market": "x"}]}, "no markets to choose"),
    ("nothing to change", {}, "nothing to change"),
    ("an unknown action", {"changes": [{"action": "lend", "venue": "aave_v3", "asset": "WETH", "amount": "1"}]},
     "action"),
    ("an unknown field", {"prices": {}, "leverage": 3}, "leverage"),
    ("a boolean amount", {"changes": [{"action": "supply", "venue": "aave_v3", "asset": "WETH", "amount": True}]},
     "amount"),
]


@pytest.mark.parametrize(("body", "message"), [(b, m) for _, b, m in BAD], ids=[name for name, _, _ in BAD])
def test_bad_input_gets_a_422_with_one_line(client: httpx.Client, body: dict[str, Any], message: str | None) -> None:
    resp = client.post(f"/v1/wallets/{HEDGED}/whatif", json=body)
    assert resp.status_code == 422, resp.text
    error = resp.json()["error"]
    assert "\n" not in error
    assert "Traceback" not in error
    if message is not None:
        assert message in error, error


def test_the_morpho_market_is_named_when_more_than_one_fits(client: httpx.Client) -> None:
    supply_weth = {"changes": [{"action": "supply", "venue": "morpho_blue", "asset": "WETH", "amount": "1"}]}
    # A wallet without a Morpho position: WETH is the collateral of two markets.
    resp = client.post(f"/v1/wallets/{SAFE}/whatif", json=supply_weth)
    assert resp.status_code == 422
    assert resp.json()["error"] == ("morpho_blue: WETH fits 2 markets (WETH/DAI, WETH/USDC); name one: "
                                    "morpho_blue:WETH@WETH/DAI=…")
    named = {"changes": [{**supply_weth["changes"][0], "market": "weth/dai"}]}
    resp = client.post(f"/v1/wallets/{SAFE}/whatif", json=named)
    assert resp.status_code == 200, resp.text
    assert resp.json()["changes"][0]["market"] == "WETH/DAI"
    # The hedged wallet holds WETH/USDC: that market is the one meant.
    resp = client.post(f"/v1/wallets/{HEDGED}/whatif", json=supply_weth)
    assert resp.json()["changes"][0]["market"] == "WETH/USDC"
    # DAI is the loan token of WETH/DAI alone: lending it needs no name.
    resp = client.post(f"/v1/wallets/{HEDGED}/whatif", json={"changes": [
        {"action": "supply", "venue": "morpho_blue", "asset": "DAI", "amount": "100"}]})
    assert resp.status_code == 200, resp.text
    assert resp.json()["changes"][0]["market"] == "WETH/DAI"
    resp = client.post(f"/v1/wallets/{HEDGED}/whatif", json={"changes": [
        {"action": "borrow", "venue": "morpho_blue", "asset": "USDC", "amount": "100", "market": "0xzz"}]})
    assert resp.status_code == 422
    assert "no market '0xzz'" in resp.json()["error"]


def test_untracked_malformed_and_empty_wallets(client: httpx.Client) -> None:
    assert client.post(f"/v1/wallets/{UNTRACKED}/whatif", json=EXAMPLE).status_code == 404
    assert client.post("/v1/wallets/0x123/whatif", json=EXAMPLE).status_code == 400
    resp = client.post(f"/v1/wallets/{IDLE}/whatif", json=EXAMPLE)
    assert resp.status_code == 404
    assert "no snapshot" in resp.json()["error"]
    resp = client.post(f"/v1/wallets/{HEDGED}/whatif", content=b"{not json", headers={"Content-Type":
                                                                                       "application/json"})
    assert resp.status_code == 400


def test_reads_that_need_a_key_need_one_here_too(world: World) -> None:
    with ApiServer(create_app(world.store, public_reads=False)) as server, httpx.Client(base_url=server.url) as c:
        resp = c.post(f"/v1/wallets/{HEDGED}/whatif", json=EXAMPLE)
        assert resp.status_code == 401
        assert resp.json()["error"]
        _row, key = world.store.create_api_key(f"whatif-{id(c)}", now=datetime.now(UTC))
        ok = c.post(f"/v1/wallets/{HEDGED}/whatif", json=EXAMPLE, headers={"Authorization": f"Bearer {key}"},
                    timeout=30)
        assert ok.status_code == 200, ok.text


# --- the command line -------------------------------------------------------------------------------------------
@pytest.fixture
def env(world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XMARGIN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XMARGIN_DB_URL", world.db_url)
    monkeypatch.delenv("XMARGIN_CONFIG", raising=False)


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


ISSUE_EXAMPLE = ("--price", "WETH=3000", "--repay", "aave_v3:USDC=5000", "--supply", "morpho_blue:WETH=2")


def test_the_command_prints_before_and_after(env: None, world: World) -> None:
    code, out, err = run("whatif", HEDGED, *ISSUE_EXAMPLE)
    assert code == 0, err
    assert "what if WETH = $3,000 · supply 2 WETH on morpho_blue (WETH/USDC) · repay 5,000 USDC" in " ".join(
        out.split())
    for venue in ("aave_v3", "morpho_blue", "hyperliquid", "dydx_v4", "unified"):
        assert venue in out
    assert "liquidation prices" in out
    assert max(len(line) for line in out.splitlines()) <= 80  # an 80-column terminal cuts nothing


def test_the_commands_json_is_the_engines_document(env: None, world: World) -> None:
    code, out, err = run("whatif", HEDGED.lower(), *ISSUE_EXAMPLE, "--json")
    assert code == 0, err
    doc = json.loads(out)
    engine = whatif(world.store, HEDGED, Scenario({"WETH": Decimal(3000)}, (
        Change("supply", "morpho_blue", "WETH", Decimal(2)), Change("repay", "aave_v3", "USDC", Decimal(5000)))))
    assert _figures(doc) == json.loads(json.dumps(_figures(engine)))


@pytest.mark.parametrize(("args", "message"), [
    (("--repay", "compound:USDC=1"), "unknown venue 'compound'"),
    (("--supply", "aave_v3:DOGE=1"), "has no reserve 'DOGE'"),
    (("--supply", "aave_v3:WETH=-1"), "must be positive"),
    (("--borrow", "aave_v3:USDC=abc"), "is not a number"),
    (("--repay", "aave_v3:USDC=40001"), "USDC of debt owed"),
    (("--withdraw", "aave_v3:WETH=21"), "WETH supplied"),
    (("--price", "WETHH=3000"), "unknown price symbol 'WETHH'"),
    (("--price", "WETH"), "expected SYMBOL=USD"),
    (("--supply", "WETH=2"), "expected VENUE:ASSET[@MARKET]=AMOUNT"),
    (("--supply", "morpho_blue:WETH@WBTC/USDC=1"), "no market 'WBTC/USDC'"),
    ((), "nothing to change"),
])
def test_bad_input_is_one_line_and_exit_2(env: None, args: tuple[str, ...], message: str) -> None:
    code, out, err = run("whatif", HEDGED, *args)
    assert code == 2, out + err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert message in lines[0]
    assert "Traceback" not in err + out


def test_untracked_and_malformed_wallets(env: None) -> None:
    code, _, err = run("whatif", UNTRACKED, "--price", "WETH=3000")
    assert code == 1
    assert "not tracked" in err
    assert run("whatif", "0x123", "--price", "WETH=3000")[0] == 2
    code, _, err = run("whatif", IDLE, "--price", "WETH=3000")
    assert code == 1
    assert "no snapshot" in err
