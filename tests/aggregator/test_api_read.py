"""The read API over a real store (SQLite and PostgreSQL): documents equal the store's, bad input is 4xx with
a message (a JSON ``{"error": …}``, the refused Host header's included; every malformed address 400, whatever
its length), never a 5xx, and history pages cover every point exactly once; reads are keyed on a server for
other machines unless public reads are asked for, which is logged as a warning."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from aggregator.api.app import create_app, is_loopback, public_reads_warning, trusted_hosts
from aggregator.api.server import ApiServer
from aggregator.config import load_settings
from aggregator.documents import health_view
from db import RiskRow, Store
from tests.db import db_testdata as td


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    with Store.open(db_url) as s:
        yield s


@pytest.fixture
def synced(store: Store) -> tuple[Store, list[str]]:
    wallets = td.setup(store, 3)
    for block in (100, 101, 102, 103):
        store.write_sync(td.batch(wallets[:2], block))
    risk = RiskRow(wallet=wallets[0], block_number=104, computed_at=datetime(2026, 11, 21, tzinfo=UTC),
                   unified_health=1.7, equity_usd=10_000.0, margin_usd=2_000.0, netting_benefit_usd=500.0,
                   document={"wallet": wallets[0], "unified_health": 1.7, "first_liquidation": {}})
    store.write_sync(dataclasses.replace(td.batch(wallets[:2], 104), risks=(risk,)))
    return store, wallets


@pytest.fixture
def client(synced: tuple[Store, list[str]]) -> Iterator[httpx.Client]:
    """The app served by uvicorn on a loopback port, in a thread; a plain HTTP client against it."""
    with ApiServer(create_app(synced[0])) as server, httpx.Client(base_url=server.url, timeout=10) as c:
        yield c


def _without_ages(doc: dict[str, Any]) -> dict[str, Any]:
    """The document less what moves with the clock (ages, and the sentences that name them)."""
    out = {**doc, "freshness": {k: v for k, v in doc["freshness"].items() if k not in ("age_s", "block_age_s",
                                                                                          "reason")},
           "summary": {k: v for k, v in doc["summary"].items() if k != "text"}}
    out["venues"] = [{k: v for k, v in venue.items() if k != "age_s"} for venue in doc["venues"]]
    return out


def test_health_and_positions_equal_the_store(synced: tuple[Store, list[str]], client: httpx.Client) -> None:
    store, wallets = synced
    wallet = wallets[0]
    resp = client.get(f"/v1/wallets/{wallet.lower()}/health")
    assert resp.status_code == 200
    doc = resp.json()
    assert _without_ages(doc) == _without_ages(health_view(store, wallet, stale_after_s=45.0))
    assert doc["block"] == 104
    # Every reading carries its age; these are from 2025: stale, and every view is told why.
    assert doc["freshness"]["stale"] is True
    assert doc["freshness"]["age_s"] > 86_400
    assert "no successful sync for" in doc["freshness"]["reason"]
    assert all(v["stale"] and v["age_s"] > 86_400 and v["synced_at"] for v in doc["venues"])
    assert doc["summary"]["text"].startswith("STALE — ")
    assert doc["summary"]["unified_health"] == 1.7
    assert doc["chain"]["chain_id"] == td.CHAIN
    positions = client.get(f"/v1/wallets/{wallet}/positions").json()
    expected = sum(len(item.snapshot.positions) for item in store.latest_health(wallet))
    assert len(positions["positions"]) == expected > 0
    assert {p["amount_raw"] for p in positions["positions"]} == {
        str(p.amount_raw) for item in store.latest_health(wallet) for p in item.snapshot.positions}


def test_risk_document(synced: tuple[Store, list[str]], client: httpx.Client) -> None:
    _, wallets = synced
    doc = client.get(f"/v1/wallets/{wallets[0]}/risk").json()
    assert doc["unified_health"] == 1.7
    assert doc["computed_at"].startswith("2026-11-21")
    assert doc["freshness"]["stale"] is True
    assert doc["chain"]["chain_id"] == td.CHAIN
    assert doc["summary"]["unified_health"] == 1.7
    missing = client.get(f"/v1/wallets/{wallets[1]}/risk")
    assert missing.status_code == 404
    assert "no risk result" in missing.json()["error"]


def test_risk_and_positions_are_described_in_the_openapi_document(client: httpx.Client) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    risk = schemas["RiskOut"]["properties"]
    assert {"unified_health", "portfolio_margin_usd", "netting_benefit_usd", "first_liquidation",
            "liquidation_prices", "var_es", "pnl_grid", "chain", "freshness", "summary"} <= set(risk)
    assert {"down", "up", "moves", "nearest"} <= set(schemas["FirstLiquidationsOut"]["properties"])
    assert {"pnl_usd", "liquidated"} <= set(schemas["PnlGridOut"]["properties"])
    row = schemas["PositionRowOut"]["properties"]
    assert {"venue", "block", "asset", "side", "amount", "amount_raw", "price_usd", "value_usd", "detail"} <= set(row)


@pytest.mark.parametrize(("path", "status", "message"), [
    ("/v1/wallets/0x123/health", 400, "address"),
    ("/v1/wallets/not-an-address/positions", 400, "address"),
    ("/v1/wallets/0x52908400098527886E0F7030069857D2E4169Ee7/health", 400, "checksum"),
    ("/v1/wallets/0x0000000000000000000000000000000000000001/health", 404, "not tracked"),
    ("/v1/wallets/0x" + "0" * 20_000 + "/health", 400, "20,002 characters"),
    ("/v1/wallets/0x" + "0" * 41 + "/health", 400, "address"),
    ("/v1/wallets/" + "z" * 300 + "/alerts", 400, "address"),
    ("/v1/alert-rules?wallet=0x" + "0" * 20_000, 400, "20,002 characters"),
    ("/v1/alert-rules?wallet=0x12", 400, "address"),
    ("/v1/wallets/{w0}/history?limit=0", 422, "limit"),
    ("/v1/wallets/{w0}/history?limit=100000", 422, "limit"),
    ("/v1/wallets/{w0}/history?from_block=-1", 422, "from_block"),
    ("/v1/wallets/{w0}/history?from_block=abc", 422, "from_block"),
    ("/v1/wallets/{w0}/history?from_block=10&to_block=5", 422, "after"),
    ("/v1/wallets/{w0}/history?venue=nowhere", 404, "unknown venue"),
    ("/v1/wallets/{w2}/health", 404, "no snapshot"),
])
def test_bad_input_is_a_clear_4xx(
    synced: tuple[Store, list[str]], client: httpx.Client, path: str, status: int, message: str
) -> None:
    _, wallets = synced
    resp = client.get(path.format(w0=wallets[0], w2=wallets[2]) if len(path) < 1_000 else path)
    assert resp.status_code == status, resp.text[:300]
    assert message in resp.json()["error"]
    assert len(resp.text) < 500  # a long input is not echoed back whole


def test_history_pages_cover_every_point_once(synced: tuple[Store, list[str]], client: httpx.Client) -> None:
    store, wallets = synced
    wallet = wallets[0]
    everything = store.history(wallet)
    seen: list[tuple[str, int]] = []
    cursor: int | None = None
    pages = 0
    while True:
        url = f"/v1/wallets/{wallet}/history?limit=3" + (f"&before_block={cursor}" if cursor is not None else "")
        body = client.get(url).json()
        seen += [(i["venue"], i["block"]) for i in body["items"]]
        pages += 1
        cursor = body["next_before_block"]
        if cursor is None:
            break
    assert sorted(seen) == sorted((p.venue, p.block_number) for p in everything)
    assert len(seen) == len(set(seen))
    assert pages > 1
    window = client.get(f"/v1/wallets/{wallet}/history?from_block=101&to_block=102").json()["items"]
    assert {i["block"] for i in window} == {101, 102}


def test_wallets_and_venues(synced: tuple[Store, list[str]], client: httpx.Client) -> None:
    store, wallets = synced
    assert [w["address"] for w in client.get("/v1/wallets").json()] == wallets
    assert {v["name"] for v in client.get("/v1/venues").json()} == {v.name for v in store.list_venues()}
    schema = client.get("/openapi.json").json()
    assert "/v1/wallets/{address}/risk" in schema["paths"]


def test_history_bounds_and_aliases(synced: tuple[Store, list[str]], client: httpx.Client) -> None:
    _, wallets = synced
    url = f"/v1/wallets/{wallets[0]}/history"

    def blocks(**params: object) -> set[int]:
        resp = client.get(url, params=params)
        assert resp.status_code == 200, resp.text
        return {i["block"] for i in resp.json()["items"]}

    assert blocks(**{"from": 101, "to": 102}) == {101, 102}
    assert blocks(from_block=101, to_block=102) == {101, 102}
    assert blocks(to_block=0, before_block=102) == set()  # to_block = 0 is a bound, not "no bound"
    assert blocks(to=101, before_block=103) == {100, 101}
    assert blocks(to=103, before_block=102) == {100, 101}
    disagree = client.get(url, params={"from": 100, "from_block": 101})
    assert disagree.status_code == 422
    assert "disagree" in disagree.json()["error"]
    # The last page has no cursor: a client walking the pages never gets an empty one.
    body = client.get(url, params={"limit": 1, "before_block": 102}).json()
    assert ([i["block"] for i in body["items"]], body["next_before_block"]) == ([101], 101)
    body = client.get(url, params={"limit": 1, "before_block": 101}).json()
    assert ([i["block"] for i in body["items"]], body["next_before_block"]) == ([100], None)


def test_only_loopback_host_names_and_security_headers(client: httpx.Client) -> None:
    rebound = client.get("/v1/wallets", headers={"Host": "attacker.example"})
    assert rebound.status_code == 400  # a DNS-rebinding page's requests carry its own host name
    assert rebound.headers["content-type"] == "application/json"
    assert "attacker.example" in rebound.json()["error"]
    assert client.get("/v1/wallets", headers={"Host": "attacker.example:8700"}).json()["error"]
    assert client.get("/v1/wallets", headers={"Host": "localhost:8700"}).status_code == 200
    assert client.get("/v1/wallets", headers={"Host": "[::1]:8700"}).status_code == 200
    assert client.get("/v1/wallets", headers={"Host": "127.0.0.1"}).status_code == 200
    assert client.get("/v1/wallets", headers={"Host": "localhost.attacker.example"}).status_code == 400
    page = client.get("/ui/")
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert client.get("/docs").status_code == 404  # it would load its scripts from a CDN


def test_healthz_says_degraded_with_the_reason_when_syncing_fails(
    synced: tuple[Store, list[str]], client: httpx.Client,
) -> None:
    store, wallets = synced
    old = client.get("/healthz")
    assert old.status_code == 200
    assert old.json()["status"] == "degraded"  # the fixture's newest sync is from 2025: older than the bound
    assert "no successful sync for" in old.json()["reasons"][0]
    store.write_sync(dataclasses.replace(td.batch(wallets[:2], 105), started_at=datetime.now(UTC),
                                         finished_at=datetime.now(UTC)))
    assert client.get("/healthz").json() == {**client.get("/healthz").json(), "status": "ok", "reasons": []}
    store.record_failed_sync(td.CHAIN, "chain devnet unavailable: connection refused", started_at=datetime.now(UTC))
    body = client.get("/healthz")
    assert body.status_code == 200  # a probe chooses what to do with "degraded"
    assert body.json()["status"] == "degraded"
    assert "sync failing since" in body.json()["reasons"][0]
    assert "connection refused" in body.json()["reasons"][0]
    health = client.get(f"/v1/wallets/{wallets[0]}/health").json()
    assert health["block"] == 105  # the last known values, still shown ...
    assert health["freshness"]["stale"] is True  # ... marked stale, with since when and why
    assert health["freshness"]["failing_since"] is not None
    assert "connection refused" in health["freshness"]["reason"]
    assert health["freshness"]["last_sync"]["status"] == "failed"


def test_reads_are_keyed_on_other_interfaces_unless_asked_for(
    synced: tuple[Store, list[str]], caplog: pytest.LogCaptureFixture
) -> None:
    store, wallets = synced
    assert [h for h in ("127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]") if not is_loopback(h)] == []
    assert [h for h in ("0.0.0.0", "::", "192.168.1.20", "api.example.com") if is_loopback(h)] == []
    assert trusted_hosts("0.0.0.0") is None
    assert "127.0.0.2" in (trusted_hosts("127.0.0.2") or ())
    assert public_reads_warning("127.0.0.1", True) is None
    assert public_reads_warning("0.0.0.0", False) is None
    assert public_reads_warning("0.0.0.0", None) is None
    assert "0.0.0.0" in (public_reads_warning("0.0.0.0", True) or "")
    _, key = store.create_api_key("reader", now=datetime.now(UTC))
    path = f"/v1/wallets/{wallets[0]}/health"
    cases = ((None, "127.0.0.1", 200, False), (None, "0.0.0.0", 401, False), (True, "0.0.0.0", 200, True),
             (False, "127.0.0.1", 401, False), (True, "127.0.0.1", 200, False))
    for public_reads, host, status, warned in cases:
        caplog.clear()
        app = create_app(store, public_reads=public_reads, allowed_hosts=trusted_hosts(host))
        with caplog.at_level(logging.WARNING, logger="aggregator.api"), ApiServer(app, host) as server, \
                httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=10) as c:
            assert c.get(path).status_code == status, (public_reads, host)
            assert c.get(path, headers={"Authorization": f"Bearer {key}"}).status_code == 200
            documented = c.get("/openapi.json").json()["paths"][path.replace(wallets[0], "{address}")]["get"]
            assert ({} in documented.get("security", [])) is (status == 200)  # the schema: a key is optional
        assert any("public reads on a non-loopback interface" in r.getMessage() for r in caplog.records) is warned


def test_public_reads_are_unset_unless_asked_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset by default (the server decides by its interface); a config file or the environment sets it."""
    monkeypatch.delenv("XMARGIN_API_PUBLIC_READS", raising=False)
    config = tmp_path / "config.toml"
    config.write_text('[api]\nhost = "0.0.0.0"\n')
    assert load_settings(config).api.public_reads is None
    config.write_text('[api]\nhost = "0.0.0.0"\npublic_reads = true\n')
    assert load_settings(config).api.public_reads is True
    monkeypatch.setenv("XMARGIN_API_PUBLIC_READS", "false")
    assert load_settings(config).api.public_reads is False  # the environment wins


def test_history_carries_the_unified_health_of_its_blocks(synced: tuple[Store, list[str]],
                                                          client: httpx.Client) -> None:
    store, wallets = synced
    body = client.get(f"/v1/wallets/{wallets[0]}/history").json()
    assert [(p["block"], p["unified_health"]) for p in body["unified_health"]] == [(104, 1.7)]
    assert body["unified_health"][0]["block_timestamp"] == td.block_time(104).isoformat()
    older = client.get(f"/v1/wallets/{wallets[0]}/history?to=103").json()
    assert older["unified_health"] == []  # only the page's blocks
    assert store.risk_history(wallets[0]) == [(104, td.block_time(104), 1.7)]
