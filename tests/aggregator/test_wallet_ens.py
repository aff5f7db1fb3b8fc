"""`xmargin wallet add name.eth`: the name is resolved on the configured chain (the shared devnet, with stub ENS
registry and resolver contracts placed by anvil_setCode: ENS is not deployed there), the address is tracked and
the name stored beside it; `wallet list` and the API's wallet list show it. A name that does not resolve is a
clear error and stores nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from ens.utils import normal_name_to_hash  # type: ignore[import-untyped]
from typer.testing import CliRunner

import devnet
from aggregator.api.app import create_app
from aggregator.api.server import ApiServer
from aggregator.cli import app
from connectors.evm.ens import ENS_REGISTRY
from connectors.evm.rpc import RpcClient
from connectors.types import checksum
from db import Store

STUB = "0x600435546000526020" + "6000f3"  # answers any call with the storage slot named by its first argument
RESOLVER = checksum("0x" + "e5" * 20)
ALICE = checksum("0x" + "a1" * 20)


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def env(fresh_devnet: devnet.DevnetInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("XMARGIN_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XMARGIN_CONFIG", raising=False)
    monkeypatch.delenv("XMARGIN_DB_URL", raising=False)
    monkeypatch.setenv("XMARGIN_RPC_URL", fresh_devnet.rpc_url)
    monkeypatch.setenv("XMARGIN_CHAIN_ID", str(fresh_devnet.chain_id))
    snap = devnet.snapshot(fresh_devnet)
    with RpcClient(fresh_devnet.rpc_url) as rpc:
        for address in (ENS_REGISTRY, RESOLVER):
            rpc.request("anvil_setCode", [address, STUB])
        node = "0x" + normal_name_to_hash("alice.eth").hex()
        for contract, value in ((ENS_REGISTRY, RESOLVER), (RESOLVER, ALICE)):
            rpc.request("anvil_setStorageAt", [contract, node, "0x" + value[2:].lower().rjust(64, "0")])
        rpc.request("anvil_mine", ["0x1"])
    yield
    devnet.revert(fresh_devnet, snap)


@pytest.mark.chain
def test_wallet_add_by_ens_name_stores_the_address_and_the_name(env: None) -> None:
    code, out, err = run("wallet", "add", "Alice.eth", "--label", "a")
    assert code == 0, err
    assert ALICE in out
    assert "alice.eth at block" in out
    code, out, _ = run("wallet", "list", "--json")
    assert json.loads(out) == [{"address": ALICE, "label": "a", "ens_name": "alice.eth"}]
    with Store.open() as store, ApiServer(create_app(store, public_reads=True)) as server:
        listed = httpx.get(server.url + "/v1/wallets", timeout=10).json()
    assert listed == [{"address": ALICE, "label": "a", "ens_name": "alice.eth"}]


@pytest.mark.chain
@pytest.mark.parametrize(("name", "message"), [("bob.eth", "no resolver"), ("ali ce.eth", "not a valid ENS name")])
def test_an_unresolvable_name_is_a_clear_error_and_stores_nothing(env: None, name: str, message: str) -> None:
    code, _, err = run("wallet", "add", name)
    assert code == 2
    assert message in " ".join(err.split())  # rich wraps long lines
    assert "Traceback" not in err
    assert json.loads(run("wallet", "list", "--json")[1]) == []


def test_without_a_chain_an_ens_name_says_what_to_configure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XMARGIN_HOME", str(tmp_path / "home"))
    for var in ("XMARGIN_CONFIG", "XMARGIN_DB_URL", "XMARGIN_RPC_URL"):
        monkeypatch.delenv(var, raising=False)
    code, _, err = run("wallet", "add", "alice.eth")
    assert code == 2
    assert "configured chain" in err
