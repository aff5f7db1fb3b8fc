"""Configuration: the file, the environment, secrets kept out of the file, per-type venue fields."""

from __future__ import annotations

from pathlib import Path

import pytest

from aggregator.config import ConfigError, Settings, load_settings, write_settings_toml
from aggregator.venues import open_onchain
from connectors.aave_v3.connector import AaveV3Connector
from connectors.aave_v3.deployments import SPARK_ETHEREUM
from connectors.evm.multicall import Multicall
from connectors.evm.rpc import RpcClient

MAINNET = """
interval_s = 30

[[chains]]
name = "ethereum"
chain_id = 1
rpc_url_env = "TEST_ETH_RPC_URL"

[[venues]]
name = "aave_v3"
type = "aave_v3"
chain = "ethereum"
deployment = "aave_v3_ethereum"

[[venues]]
name = "spark"
type = "aave_v3"
chain = "ethereum"
deployment = "spark_ethereum"
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_spark_is_the_aave_connector_with_sparks_addresses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_ETH_RPC_URL", "https://eth.example/v2/SECRET-KEY")
    settings = load_settings(_write(tmp_path, MAINNET))
    spark = next(v for v in settings.venues if v.name == "spark")
    chain = settings.chain("ethereum")
    with RpcClient(chain.resolve_rpc_url()) as rpc:
        venue = open_onchain(spark, chain, rpc, Multicall(rpc))
        assert isinstance(venue.connector, AaveV3Connector)
        assert venue.connector.deployment == SPARK_ETHEREUM
        assert "SECRET-KEY" not in repr(rpc)


def test_the_rpc_secret_stays_in_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_ETH_RPC_URL", raising=False)
    settings = load_settings(_write(tmp_path, MAINNET))
    with pytest.raises(ConfigError, match="TEST_ETH_RPC_URL is not set"):
        settings.chain("ethereum").resolve_rpc_url()


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XMARGIN_DB_URL", "postgresql+psycopg://u@h/db")
    monkeypatch.setenv("XMARGIN_INTERVAL_S", "7.5")
    settings = load_settings(_write(tmp_path, MAINNET))
    assert settings.db_url == "postgresql+psycopg://u@h/db"
    assert settings.interval_s == 7.5


@pytest.mark.parametrize(
    ("venue", "message"),
    [
        ('type = "morpho_blue"', "needs morpho"),
        ('type = "uniswap_v3"\nposition_manager = "0x' + "11" * 20 + '"', "needs factory"),
        ('type = "hyperliquid"', "needs base_url"),
        ('type = "aave_v3"', "exactly one of deployment, pool_addresses_provider"),
        ('type = "compound_v3"', "type"),
        ('type = "aave_v3"\npool_addresses_provider = "0x1234"', "address"),
    ],
)
def test_each_venue_type_names_what_it_is_missing(tmp_path: Path, venue: str, message: str) -> None:
    chain = '[[chains]]\nname = "c"\nchain_id = 1\nrpc_url = "http://x"\n'
    text = f'{chain}\n[[venues]]\nname = "v"\nchain = "c"\n{venue}\n'
    with pytest.raises(ConfigError, match=message):
        load_settings(_write(tmp_path, text))


def test_unknown_chain_and_duplicate_names_are_refused(tmp_path: Path) -> None:
    text = '[[venues]]\nname = "v"\ntype = "hyperliquid"\nchain = "nowhere"\nbase_url = "http://x"\n'
    with pytest.raises(ConfigError, match="not configured"):
        load_settings(_write(tmp_path, text))


def test_written_config_reads_back_the_same(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_ETH_RPC_URL", "http://127.0.0.1:8545")
    settings = load_settings(_write(tmp_path, MAINNET))
    out = tmp_path / "copy.toml"
    write_settings_toml(settings, out)
    again = load_settings(out)
    assert again.model_dump(exclude={"source"}) == settings.model_dump(exclude={"source"})
    assert isinstance(again, Settings)


_CHAIN = """
[[chains]]
name = "eth"
chain_id = 1
rpc_url = "http://127.0.0.1:8545"

[[venues]]
name = "aave"
type = "aave_v3"
chain = "eth"
deployment = "aave_v3_ethereum"
"""


def test_alerts_and_keeper_from_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "c.toml"
    path.write_text(_CHAIN + """
[[alerts.webhooks]]
name = "ops"
url_env = "OPS_HOOK_URL"
secret_env = "OPS_HOOK_SECRET"

[keeper]
enabled = true
wallets = ["0x52908400098527886e0f7030069857d2e4169ee7"]
signer_key_env = "KEEPER_KEY"
execute = true
max_daily_usd = 1000

[keeper.targets.aave]
target = 1.8
offset = 0.2
""")
    settings = load_settings(path)
    assert settings.keeper.wallets == ("0x52908400098527886E0F7030069857D2E4169EE7",)
    assert settings.keeper.target("aave").target == 1.8
    assert settings.keeper.target("elsewhere") == settings.keeper.default_target
    hook = settings.alerts.webhooks[0]
    with pytest.raises(ConfigError, match="OPS_HOOK_URL is not set"):
        hook.resolve()
    monkeypatch.setenv("OPS_HOOK_URL", "https://hooks.example/abc?token=t")
    with pytest.raises(ConfigError, match="OPS_HOOK_SECRET is not set"):
        hook.resolve()
    monkeypatch.setenv("OPS_HOOK_SECRET", "s3cret")
    assert hook.resolve() == ("https://hooks.example/abc?token=t", "s3cret")


@pytest.mark.parametrize(("keeper", "message"), [
    ('execute = true', "needs a signer"),
    ('signer_key_env = "K"\nkeystore = "/k.json"\nkeystore_password_env = "P"', "at most one"),
    ('keystore = "/k.json"', "keystore_password_env"),
    ('[keeper.targets.nowhere]\ntarget = 1.5', "unknown venue"),
    ('[keeper.default_target]\ntarget = 1.1\noffset = 0.2', "above 1.0"),
    ('max_action_usd = 0', "greater than 0"),
])
def test_keeper_config_errors(tmp_path: Path, keeper: str, message: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(_CHAIN + "\n[keeper]\n" + keeper + "\n")
    with pytest.raises(ConfigError, match=message):
        load_settings(path)
