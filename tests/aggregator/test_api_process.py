"""The HTTP API as users run it: ``xmargin serve`` in its own process over a real store (SQLite and PostgreSQL),
keys made with ``xmargin apikey create``. Writes need a key of scope write and land in the store; a read key is
refused every write; alert rules go through create / read / update / delete; prices carry source and age;
``/metrics`` reports what the store holds; reads can be keyed by configuration, and are keyed on a non-loopback
interface unless public reads are asked for, which then prints a warning."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from db import AlertRow, NewAlert, RiskRow, Store
from tests.db import db_testdata as td

EXE = shutil.which("xmargin", path=str(Path(sys.executable).parent))


@dataclasses.dataclass
class Served:
    url: str
    store: Store
    wallets: list[str]
    key: str
    env: dict[str, str]

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=15)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        assert EXE is not None
        return subprocess.run([EXE, *args], env=self.env, capture_output=True, text=True, timeout=120, check=False)


def _fill(store: Store) -> list[str]:
    wallets = td.setup(store, 3)
    for block in (100, 101, 102):
        store.write_sync(td.batch(wallets[:2], block))
    risk = RiskRow(wallet=wallets[0], block_number=102, computed_at=datetime(2026, 11, 21, tzinfo=UTC),
                   unified_health=1.7, equity_usd=10_000.0, margin_usd=2_000.0, netting_benefit_usd=500.0,
                   document={"wallet": wallets[0], "unified_health": 1.7, "first_liquidation": {}})
    store.write_sync(dataclasses.replace(td.batch(wallets[:2], 103), risks=(risk,)))
    return wallets


def _serve(env: dict[str, str], *args: str, log: Path | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``xmargin serve --port 0 ARGS``; its output goes to ``log`` (a pipe nobody reads could fill and block
    it). The URL returned is on 127.0.0.1 whatever interface the server listens on."""
    assert EXE is not None, "the xmargin console script is not installed in the venv"
    log = log or Path(env["XMARGIN_HOME"]) / f"serve-{time.monotonic_ns()}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        proc = subprocess.Popen([EXE, "serve", "--port", "0", *args], env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        found = re.search(r"http://[^\s/]+:(\d+)/ui/", log.read_text())
        if found:
            return proc, f"http://127.0.0.1:{found.group(1)}"
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    raise AssertionError(f"xmargin serve did not start: {log.read_text()}")


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith("XMARGIN_")}
    return {**keep, "XMARGIN_HOME": str(tmp_path / "home"), "XMARGIN_DB_URL": db_url, "COLUMNS": "200"}


@pytest.fixture
def served(db_url: str, env: dict[str, str]) -> Iterator[Served]:
    with Store.open(db_url) as store:
        wallets = _fill(store)
        # the store makes the fixture's key (keys made by `xmargin apikey create` are tested below)
        _, key = store.create_api_key("analytics", scope="write", now=datetime.now(UTC))
        proc, url = _serve(env)
        try:
            yield Served(url, store, wallets, key, env)
        finally:
            proc.terminate()
            proc.wait(timeout=20)


def test_writes_need_a_key_and_land_in_the_store(served: Served) -> None:
    new = "0x" + "ab" * 20
    with served.client() as anon, served.client(served.key) as keyed, served.client("xm_" + "A" * 43) as wrong:
        for c in (anon, wrong):
            resp = c.post("/v1/wallets", json={"address": new})
            assert resp.status_code == 401
            assert resp.headers["www-authenticate"] == "Bearer"
            assert "API key" in resp.json()["error"]
            assert c.delete(f"/v1/wallets/{served.wallets[0]}").status_code == 401
        assert served.store.get_wallet(new) is None  # nothing written by the refused requests

        resp = keyed.post("/v1/wallets", json={"address": new, "label": "fund"})
        assert resp.status_code == 201
        body = resp.json()
        assert body["changed"] == 1
        checksummed = body["wallets"][0]["address"]
        assert checksummed.lower() == new
        assert (served.store.get_wallet(new).label, body["wallets"][0]["label"]) == ("fund", "fund")
        assert keyed.post("/v1/wallets", json={"address": new, "label": "fund"}).json()["changed"] == 0

        batch = [{"address": "0x" + f"{i:040x}"} for i in range(1, 6)]
        resp = keyed.post("/v1/wallets", json=batch)
        assert resp.status_code == 201
        assert resp.json()["changed"] == 5
        assert served.store.count_wallets() == 3 + 1 + 5

        bad = keyed.post("/v1/wallets", json={"address": "0x1234"})
        assert bad.status_code == 422
        assert "address" in bad.json()["error"]
        assert keyed.post("/v1/wallets", json=[]).status_code == 422
        assert keyed.post("/v1/wallets", json={"address": new, "extra": 1}).status_code == 422

        assert keyed.delete(f"/v1/wallets/{checksummed}").status_code == 204
        assert not served.store.get_wallet(new).active  # untracked; its history stays
        gone = keyed.delete(f"/v1/wallets/{checksummed}")
        assert gone.status_code == 404
        assert "not tracked" in gone.json()["error"]
        assert keyed.delete("/v1/wallets/0xnope").status_code == 400
        listed = {w["address"] for w in anon.get("/v1/wallets", params={"limit": 100}).json()}
        assert listed == {w.address for w in served.store.list_wallets()}
        assert checksummed not in listed

    # A revoked key is refused from the next request on.
    assert served.cli("apikey", "revoke", "analytics").returncode == 0
    with served.client(served.key) as revoked:
        assert revoked.post("/v1/wallets", json={"address": new}).status_code == 401
    listing = served.cli("apikey", "list").stdout
    assert "analytics" in listing
    assert served.key not in listing
    assert served.key[10:] not in listing


def test_alert_rules_crud(served: Served) -> None:
    wallet = served.wallets[0]
    with served.client(served.key) as c, served.client() as anon:
        rule = {"wallet": wallet.lower(), "kind": "venue_health_below",
                "params": {"venue": "aave_v3", "threshold": 1.3}, "hysteresis": 0.05, "cooldown_s": 60}
        assert anon.post("/v1/alert-rules", json=rule).status_code == 401
        resp = c.post("/v1/alert-rules", json=rule)
        assert resp.status_code == 201, resp.text
        created = resp.json()
        assert (created["wallet"], created["kind"], created["params"]) == (
            wallet, "venue_health_below", {"venue": "aave_v3", "threshold": 1.3})
        stored = served.store.get_rule(created["id"])
        assert stored is not None
        assert (stored.hysteresis, stored.cooldown_s, stored.severity) == (0.05, 60.0, "warning")

        for body, words in (
            ({**rule, "params": {"venue": "nowhere", "threshold": 1.3}}, "unknown venue"),
            ({**rule, "params": {"venue": "aave_v3"}}, "threshold"),
            ({**rule, "kind": "price_cross", "params": {"asset": "WETH", "level": 3000}}, "direction"),
            ({**rule, "wallet": "0x" + "99" * 20}, "not tracked"),
            ({**rule, "wallet": "0xzz"}, "wallet"),
            ({**rule, "kind": "moon"}, "kind"),
            ({**rule, "hysteresis": -1}, "hysteresis"),
            ({**rule, "params": {"venue": "aave_v3", "threshold": 1.3, "asset": "WETH"}}, "params.asset"),
        ):
            bad = c.post("/v1/alert-rules", json=body)
            assert bad.status_code == 422, (body, bad.text)
            assert words in bad.json()["error"], (words, bad.json())
        notjson = c.post("/v1/alert-rules", content=b'{"wallet": ', headers={"content-type": "application/json"})
        assert notjson.status_code == 400
        assert "not valid JSON" in notjson.json()["error"]
        assert c.delete(f"/v1/wallets/{served.wallets[2]}").status_code == 204
        untracked = c.post("/v1/alert-rules", json={**rule, "wallet": served.wallets[2]})
        assert untracked.status_code == 422
        assert "not tracked" in untracked.json()["error"]
        assert len(served.store.list_rules()) == 1  # refused bodies stored nothing

        assert anon.get(f"/v1/alert-rules/{created['id']}").json() == created
        assert [r["id"] for r in anon.get("/v1/alert-rules", params={"wallet": wallet}).json()] == [created["id"]]
        assert anon.get("/v1/alert-rules", params={"wallet": served.wallets[2]}).json() == []
        assert anon.get("/v1/alert-rules", params={"wallet": "0x12"}).status_code == 400

        patched = c.patch(f"/v1/alert-rules/{created['id']}", json={"enabled": False, "severity": "critical"})
        assert patched.status_code == 200
        assert (patched.json()["enabled"], patched.json()["severity"], patched.json()["params"]) == (
            False, "critical", created["params"])
        raised = c.patch(f"/v1/alert-rules/{created['id']}", json={"params": {"venue": "aave_v3", "threshold": 1.5}})
        assert raised.json()["params"]["threshold"] == 1.5
        assert c.patch(f"/v1/alert-rules/{created['id']}", json={"params": {"venue": "x", "threshold": 1}}
                       ).status_code == 422
        assert c.patch("/v1/alert-rules/99999", json={"enabled": True}).status_code == 404
        for params, words in (({"threshold": 1.2}, "params.venue: Field required"),
                              ({"asset": "WETH", "level": 1.0, "direction": "above"}, "params.asset")):
            other_kind = c.patch(f"/v1/alert-rules/{created['id']}", json={"params": params})
            assert other_kind.status_code == 422
            assert "is venue_health_below, whose params are venue, threshold" in other_kind.json()["error"]
            assert words in other_kind.json()["error"]
        assert served.store.get_rule(created["id"]).params == {"venue": "aave_v3", "threshold": 1.5}

        assert c.delete(f"/v1/alert-rules/{created['id']}").status_code == 204
        assert anon.get(f"/v1/alert-rules/{created['id']}").status_code == 404
        assert c.delete(f"/v1/alert-rules/{created['id']}").status_code == 404
        assert served.store.get_rule(created["id"]) is None


def test_prices_alerts_and_metrics_report_the_store(served: Served) -> None:
    store, wallet = served.store, served.wallets[0]
    rule = store.add_rule(wallet, "unified_health_below", {"threshold": 2.0}, now=datetime.now(UTC))
    fired: list[AlertRow] = store.record_evaluation([], [NewAlert(
        event_id=f"xmargin-rule-{rule.id}-episode-1", rule_id=rule.id, wallet=wallet, episode=1,
        fired_at=datetime.now(UTC), chain_id=td.CHAIN, block_number=103, value=1.7, threshold=2.0,
        severity="warning", message="unified health 1.70 below 2.00",
        payload={"kind": "unified_health_below"})])
    with served.client() as c:
        prices = c.get("/v1/prices").json()["items"]
        expected = {(p.asset.symbol, p.source) for p in store.latest_prices()}
        assert {(p["asset"], p["source"]) for p in prices} == expected
        weth = next(p for p in prices if p["asset"] == "WETH")
        assert (weth["price_usd"], weth["block"], weth["age_s"], weth["price_raw"]) == (3000.0, 103, 30.0,
                                                                                        str(3000 * 10**8))
        assert weth["age_now_s"] > 0
        usdc = next(p for p in prices if p["asset"] == "USDC")
        assert usdc["flags"] == ["negative"]
        assert c.get("/v1/prices", params={"chain_id": td.CHAIN + 7}).json()["items"] == []
        assert c.get("/v1/prices", params={"chain_id": "x"}).status_code == 422

        alerts = c.get(f"/v1/wallets/{wallet}/alerts").json()["items"]
        assert [(a["id"], a["kind"], a["state"], a["block"]) for a in alerts] == [
            (fired[0].id, "unified_health_below", "fired", 103)]
        assert c.get(f"/v1/wallets/{served.wallets[1]}/alerts").json()["items"] == []

        metrics = c.get("/metrics")
        assert metrics.status_code == 200
        assert metrics.headers["content-type"].startswith("text/plain")
        values = _samples(metrics.text)
        assert values["xmargin_wallets"] == store.count_wallets() == 3
        assert values[f'xmargin_last_block{{chain_id="{td.CHAIN}"}}'] == store.latest_block(td.CHAIN) == 103
        assert values['xmargin_alerts{state="fired"}'] == 1
        assert values['xmargin_alerts{state="delivered"}'] == 0
        store.add_wallets([("0x" + "cd" * 20, None)])
        assert _samples(c.get("/metrics").text)["xmargin_wallets"] == 4  # read at scrape time


def _samples(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_reads_can_be_keyed_by_configuration(db_url: str, env: dict[str, str]) -> None:
    with Store.open(db_url) as store:
        wallets = _fill(store)
        _, key = store.create_api_key("reader", now=datetime.now(UTC))
    proc, url = _serve({**env, "XMARGIN_API_PUBLIC_READS": "false"})
    try:
        with httpx.Client(base_url=url, timeout=15) as anon:
            for path in ("/v1/wallets", f"/v1/wallets/{wallets[0]}/health", "/v1/prices", "/metrics",
                         "/v1/alert-rules"):
                assert anon.get(path).status_code == 401, path
            assert anon.get("/openapi.json").status_code == 200
            keyed = anon.get(f"/v1/wallets/{wallets[0]}/health", headers={"Authorization": f"Bearer {key}"})
            assert keyed.status_code == 200
            assert keyed.json()["block"] == 103
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_run_says_so_when_the_port_is_taken(env: dict[str, str]) -> None:
    assert EXE is not None
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([EXE, "run", "--port", str(port)], env=env, capture_output=True, text=True,
                              timeout=120, check=False)
    assert done.returncode == 2
    assert f"could not listen on 127.0.0.1:{port}" in " ".join(done.stderr.split())
    assert "Traceback" not in done.stderr


def test_key_scopes_bound_what_a_key_may_do(served: Served) -> None:
    """A read key reads and is refused every write with 403 (nothing changes); write and admin keys write; the
    scopes are chosen at ``apikey create`` (read by default) and listed."""
    keys = {}
    for name, args in (("dashboards", ()), ("ops", ("--scope", "admin"))):
        made = served.cli("apikey", "create", name, *args, "--json")
        assert made.returncode == 0, made.stderr
        keys[name] = json.loads(made.stdout)
    assert (keys["dashboards"]["scope"], keys["ops"]["scope"]) == ("read", "admin")
    shown = served.cli("apikey", "create", "plain")
    assert "scope read" in shown.stdout
    assert "--scope write" in " ".join(shown.stdout.split())  # says how to get a key that writes
    listing = served.cli("apikey", "list", "--json")
    assert {k["name"]: k["scope"] for k in json.loads(listing.stdout)} == {
        "analytics": "write", "dashboards": "read", "ops": "admin", "plain": "read"}
    table = served.cli("apikey", "list").stdout
    assert re.search(r"dashboards\s*│\s*read", table), table
    assert re.search(r"ops\s*│\s*admin", table), table
    bad = served.cli("apikey", "create", "root", "--scope", "root")
    assert bad.returncode != 0
    assert "Traceback" not in bad.stderr
    assert "root" not in {k["name"] for k in json.loads(served.cli("apikey", "list", "--json").stdout)}

    wallet, new = served.wallets[0], "0x" + "ef" * 20
    rule = served.store.add_rule(wallet, "unified_health_below", {"threshold": 1.1}, now=datetime.now(UTC))
    before = (served.store.list_wallets(), served.store.list_rules())
    with served.client(keys["dashboards"]["key"]) as reader:
        assert reader.get(f"/v1/wallets/{wallet}/health").status_code == 200
        for method, path, body in (
            ("POST", "/v1/wallets", {"address": new}),
            ("DELETE", f"/v1/wallets/{wallet}", None),
            ("POST", "/v1/alert-rules", {"wallet": wallet, "kind": "unified_health_below",
                                         "params": {"threshold": 1.2}}),
            ("PATCH", f"/v1/alert-rules/{rule.id}", {"enabled": False}),
            ("DELETE", f"/v1/alert-rules/{rule.id}", None),
        ):
            resp = reader.request(method, path, json=body)
            assert resp.status_code == 403, (method, path, resp.text)
            assert "scope read" in resp.json()["error"]
            assert "needs scope write" in resp.json()["error"]
    assert (served.store.list_wallets(), served.store.list_rules()) == before
    with served.client(keys["ops"]["key"]) as admin:
        assert admin.post("/v1/wallets", json={"address": new}).status_code == 201
        assert admin.patch(f"/v1/alert-rules/{rule.id}", json={"enabled": False}).json()["enabled"] is False
    with served.client(served.key) as writer:
        assert writer.delete(f"/v1/alert-rules/{rule.id}").status_code == 204


def test_a_non_loopback_server_keys_reads_unless_told_and_then_warns(db_url: str, env: dict[str, str]) -> None:
    """On 0.0.0.0 reads need a key by default (no warning); public reads asked for by flag or environment serve
    them without one and say so at start."""
    with Store.open(db_url) as store:
        wallets = _fill(store)
        _, key = store.create_api_key("reader", now=datetime.now(UTC))
    home = Path(env["XMARGIN_HOME"])
    cases = (("keyed", env, (), False), ("flag", env, ("--public-reads",), True),
             ("env", {**env, "XMARGIN_API_PUBLIC_READS": "true"}, (), True),
             ("flag-wins", {**env, "XMARGIN_API_PUBLIC_READS": "true"}, ("--keyed-reads",), False))
    for name, case_env, args, public in cases:
        log = home / f"serve-{name}.log"
        proc, url = _serve(case_env, "--host", "0.0.0.0", *args, log=log)
        try:
            with httpx.Client(base_url=url, timeout=15) as anon:
                health = anon.get(f"/v1/wallets/{wallets[0]}/health")
                assert health.status_code == (200 if public else 401), (name, health.text)
                keyed = anon.get(f"/v1/wallets/{wallets[0]}/health", headers={"Authorization": f"Bearer {key}"})
                assert keyed.status_code == 200
                assert anon.post("/v1/wallets", json={"address": "0x" + "ef" * 20}).status_code == 401
        finally:
            proc.terminate()
            proc.wait(timeout=20)
        said = " ".join(log.read_text().split())
        assert ("public reads on a non-loopback interface (0.0.0.0)" in said) is public, (name, said)
        assert "Traceback" not in said
