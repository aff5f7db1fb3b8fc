"""First-run deployment of everything the devnet holds, onto a fresh anvil node.

1. Aave v3's test market (v3.0.2 code): ``hardhat deploy`` runs Aave's own deploy scripts with Aave's own
   published artifacts (``@aave/deploy-v3``; see ``hardhat.config.js``). Nothing is compiled.
2. Price feeds the devnet can move: one Chainlink ``MockV3Aggregator`` (8 decimals, USD) per reserve,
   starting at the price AaveOracle reports for it, then ``AaveOracle.setAssetSources`` (governance path,
   sent by the pool admin) points the oracle at them.
3. Multicall3 at its canonical address, placed with ``anvil_setCode`` (anvil 1.7.1 has no code there).
4. Morpho Blue (compiled from its npm source by ``compile.js``) and Uniswap v3 (its npm artifacts) with
   markets and pools on the Aave tokens at the feeds' prices, and their liquidity (:mod:`devnet.venues`,
   :mod:`devnet.morpho`, :mod:`devnet.uniswap`).

Every address is read from the deployment: none is hard-coded except Multicall3's canonical one and the
deployer (anvil's dev account 0, which the Aave scripts make deployer, ACL admin and pool admin).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from eth_utils.address import to_checksum_address

from devnet.evm import deploy_contract, eth_call, rpc, transact
from devnet.install import artifact
from devnet.models import DevnetInfo
from devnet.paths import DEVNET_DIR, NODE_MODULES
from devnet.progress import Progress, stage

__all__ = ["ADMIN", "FEED_DECIMALS", "MULTICALL3", "DeployError", "Deployment", "deploy_all", "feed_name"]

ADMIN = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
"""anvil dev account 0: the Aave deployer, ACL admin, pool admin and faucet owner."""
MULTICALL3 = "0xcA11bde05977b3631167028862bE2a173976CA11"
FEED_DECIMALS = 8
_SUFFIX = "-Test"
_DEPLOYMENT_IDS = {
    "aave_v3.pool": "Pool-Proxy-Test",
    "aave_v3.pool_configurator": "PoolConfigurator-Proxy-Test",
    "aave_v3.pool_addresses_provider": "PoolAddressesProvider-Test",
    "aave_v3.pool_addresses_provider_registry": "PoolAddressesProviderRegistry",
    "aave_v3.pool_data_provider": "PoolDataProvider-Test",
    "aave_v3.oracle": "AaveOracle-Test",
    "aave_v3.acl_manager": "ACLManager-Test",
    "aave_v3.faucet": "Faucet-Test",
    "aave_v3.treasury": "TreasuryProxy",
    "aave_v3.incentives_controller": "IncentivesProxy",
    "aave_v3.wallet_balance_provider": "WalletBalanceProvider",
    "aave_v3.wrapped_token_gateway": "WrappedTokenGatewayV3",
}
_PER_TOKEN_IDS = {
    "aave_v3.a_token": "AToken",
    "aave_v3.variable_debt_token": "VariableDebtToken",
    "aave_v3.stable_debt_token": "StableDebtToken",
}
_ERC20_KIND = "TestnetMintableERC20"


class DeployError(RuntimeError):
    """The first-run deployment failed; the message carries the tail of the deploy output."""


@dataclass(frozen=True)
class Deployment:
    """Addresses (checksummed) of what :func:`deploy_all` put on chain, and market ids, named as in
    ``DevnetInfo``."""

    contracts: dict[str, str]
    tokens: dict[str, str]
    markets: dict[str, str] = field(default_factory=dict)


def feed_name(symbol: str) -> str:
    """The ``DevnetInfo.contracts`` key of the USD price feed of ``symbol``."""
    return f"chainlink.{symbol}_USD"


def deploy_all(rpc_url: str, progress: Progress | None = None) -> Deployment:
    """Deploy the Aave test market, the Chainlink feeds, Multicall3, Morpho Blue and Uniswap v3 onto the
    fresh node at ``rpc_url``.

    Takes ~25 s (hardhat ~20 s). Needs :func:`devnet.install.ensure_installed` to have run. Reports the
    stages ``deploy_aave``, ``deploy_feeds`` and ``deploy_venues`` to ``progress``.
    """
    from devnet.venues import deploy_venues  # venues -> morpho/uniswap -> this module

    accounts = [to_checksum_address(a) for a in rpc(rpc_url, "eth_accounts")]
    if not accounts or accounts[0] != ADMIN:
        raise DeployError(f"expected anvil's default dev account 0 {ADMIN}, node has {accounts[:1]}")
    with (stage(progress, "deploy_aave", "deploying Aave v3 with Aave's own scripts (hardhat deploy, first run)"),
          tempfile.TemporaryDirectory(prefix="xmargin-deployments-") as tmp):
        _hardhat_deploy(rpc_url, Path(tmp))
        contracts, tokens = _read_deployments(Path(tmp) / "anvil")
    with stage(progress, "deploy_feeds", "deploying Chainlink price feeds and Multicall3"):
        contracts.update(_deploy_feeds(rpc_url, contracts["aave_v3.oracle"], tokens))
        contracts["multicall3"] = _place_multicall3(rpc_url)
    chain_id = int(rpc(rpc_url, "eth_chainId"), 16)
    with stage(progress, "deploy_venues", "deploying Morpho Blue and Uniswap v3 with their liquidity"):
        venue_contracts, markets = deploy_venues(DevnetInfo(rpc_url, chain_id, dict(contracts), dict(tokens)))
    contracts.update(venue_contracts)
    return Deployment(dict(sorted(contracts.items())), dict(sorted(tokens.items())), dict(sorted(markets.items())))


def _hardhat_deploy(rpc_url: str, deployments_dir: Path) -> None:
    env = {
        **os.environ,
        "ANVIL_RPC_URL": rpc_url,
        "MARKET_NAME": "Test",
        "XMARGIN_DEPLOYMENTS_DIR": str(deployments_dir),
        "HARDHAT_DISABLE_TELEMETRY_PROMPT": "true",
    }
    cmd = [str(NODE_MODULES / ".bin" / "hardhat"), "deploy", "--network", "anvil", "--no-compile"]
    proc = subprocess.run(cmd, cwd=DEVNET_DIR, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise DeployError(f"hardhat deploy failed (exit {proc.returncode}):\n{(proc.stdout + proc.stderr)[-4000:]}")


def _read_deployments(directory: Path) -> tuple[dict[str, str], dict[str, str]]:
    """Contract and token addresses from hardhat-deploy's ``<id>.json`` files."""
    addresses: dict[str, str] = {
        path.stem: to_checksum_address(json.loads(path.read_text())["address"])
        for path in directory.glob("*.json")
        if not path.name.startswith(".")
    }
    missing = [dep_id for dep_id in _DEPLOYMENT_IDS.values() if dep_id not in addresses]
    if missing:
        raise DeployError(f"deployments missing from {directory}: {missing}")
    contracts = {name: addresses[dep_id] for name, dep_id in _DEPLOYMENT_IDS.items()}
    token_suffix = f"-{_ERC20_KIND}{_SUFFIX}"
    tokens = {
        stem.removesuffix(token_suffix): address for stem, address in addresses.items() if stem.endswith(token_suffix)
    }
    for symbol in tokens:
        for prefix, kind in _PER_TOKEN_IDS.items():
            contracts[f"{prefix}.{symbol}"] = addresses[f"{symbol}-{kind}{_SUFFIX}"]
    return contracts, tokens


def _deploy_feeds(rpc_url: str, oracle: str, tokens: dict[str, str]) -> dict[str, str]:
    """One MockV3Aggregator per token at its current AaveOracle price; AaveOracle switched to them."""
    bytecode = str(artifact("MockV3Aggregator")["bytecode"])
    feeds: dict[str, str] = {}
    for symbol, token in tokens.items():
        (price,) = eth_call(rpc_url, oracle, "getAssetPrice(address)", [token], ["uint256"])
        feeds[symbol] = deploy_contract(rpc_url, ADMIN, bytecode, ["uint8", "int256"], [FEED_DECIMALS, price])
    symbols = list(tokens)
    transact(
        rpc_url,
        ADMIN,
        oracle,
        "setAssetSources(address[],address[])",
        [tokens[s] for s in symbols],
        [feeds[s] for s in symbols],
    )
    for symbol in symbols:
        (source,) = eth_call(rpc_url, oracle, "getSourceOfAsset(address)", [tokens[symbol]], ["address"])
        if to_checksum_address(source) != feeds[symbol]:
            raise DeployError(f"AaveOracle source of {symbol} is {source}, expected {feeds[symbol]}")
    return {feed_name(symbol): feed for symbol, feed in feeds.items()}


def _place_multicall3(rpc_url: str) -> str:
    """Put Multicall3's runtime code at its canonical address unless code is already there."""
    if rpc(rpc_url, "eth_getCode", [MULTICALL3, "latest"]) in ("0x", "0x0", ""):
        rpc(rpc_url, "anvil_setCode", [MULTICALL3, str(artifact("Multicall3")["deployedBytecode"])])
    return MULTICALL3
