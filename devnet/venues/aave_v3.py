"""Aave v3 on the devnet: its part (:data:`PART`: the test market deployed by Aave's own scripts, which brings the
devnet's tokens; the demo wallets' Aave positions; its ``[[venues]]`` table), actions for arbitrary wallets
(fund, supply, borrow, repay, withdraw, collateral and e-mode switches, liquidation) and the reads tests compare
against. The helpers are also ``devnet.aave`` and re-exported by :mod:`devnet`.

Deployment (first run): ``hardhat deploy`` runs Aave's own deploy scripts with Aave's own published artifacts
(``@aave/deploy-v3``, v3.0.2 code; see ``aave_v3.hardhat.config.js`` beside this file; nothing is compiled).
Every address is read from the deployment. Then the devnet's Chainlink feeds start at the prices ``AaveOracle``
reports, and ``AaveOracle.setAssetSources`` (governance path, sent by the pool admin) points the oracle at them.

All amounts are raw token integers (``amount_raw``, in the token's own decimals). Each action approves the
Pool for what it needs first and returns the mined receipt; a revert raises
:class:`devnet.evm.RevertedError` whose ``reason`` is Aave's error code (e.g. ``"35"``).

Test-market facts (``MARKET_NAME=Test``, Aave v3.0.2): reserves AAVE, DAI, LINK, USDC, WETH; AAVE and
WETH cannot be borrowed; stable-rate borrowing is enabled on DAI, LINK and USDC; e-mode category 1
("Stable-EMode": LTV 98 %, LT 98.5 %, bonus 1 %) holds DAI and USDC.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

from eth_utils.address import to_checksum_address

from devnet.deploy import ADMIN, DeployError
from devnet.evm import Receipt, eth_call, transact
from devnet.models import DevnetInfo
from devnet.parts import DeployStage, DevnetPart, TokenMarket
from devnet.paths import DEVNET_DIR, NODE_MODULES
from devnet.wallets import wallet_address

__all__ = [
    "MAX_UINT256",
    "PART",
    "AccountData",
    "EModeCategory",
    "RateMode",
    "account_data",
    "balance_of",
    "borrow",
    "create_emode_category",
    "decimals",
    "emode_category",
    "fund",
    "liquidate",
    "repay",
    "set_emode",
    "set_use_as_collateral",
    "supply",
    "user_emode",
    "withdraw",
]

MAX_UINT256 = 2**256 - 1
"""Pass as ``amount_raw`` to :func:`repay` / :func:`withdraw` (all of it) or :func:`liquidate` (max)."""
HARDHAT_CONFIG = Path(__file__).with_name("aave_v3.hardhat.config.js")
"""The hardhat configuration the deployer runs Aave's deploy scripts with (its content is in the cache key)."""
_WRAPPED_NATIVE = "WETH"
_NO_REFERRAL = 0


class RateMode(IntEnum):
    """Aave interest rate modes."""

    STABLE = 1
    VARIABLE = 2


@dataclass(frozen=True)
class AccountData:
    """``Pool.getUserAccountData``: values in the oracle base currency (USD, 8 decimals); thresholds in
    basis points; ``health_factor_wad`` in WAD (1e18 = 1.0; uint256 max when there is no debt)."""

    total_collateral_base: int
    total_debt_base: int
    available_borrows_base: int
    current_liquidation_threshold_bps: int
    ltv_bps: int
    health_factor_wad: int


@dataclass(frozen=True)
class EModeCategory:
    """``Pool.getEModeCategoryData``; bps values, ``price_source`` zero when the reserves' own oracles apply."""

    ltv_bps: int
    liquidation_threshold_bps: int
    liquidation_bonus_bps: int
    price_source: str
    label: str


def account_data(info: DevnetInfo, wallet: str) -> AccountData:
    """The wallet's Aave account data as the Pool computes it."""
    values = eth_call(info, info.contract("aave_v3.pool"), "getUserAccountData(address)", [wallet], ["uint256"] * 6)
    return AccountData(*(int(v) for v in values))


def decimals(info: DevnetInfo, symbol: str) -> int:
    """The reserve token's ``decimals()``."""
    (value,) = eth_call(info, info.token(symbol), "decimals()", (), ["uint8"])
    return int(value)


def balance_of(info: DevnetInfo, token: str, wallet: str) -> int:
    """``balanceOf(wallet)`` (raw) of ``token``: a reserve symbol, or any ERC-20 address (e.g. an aToken)."""
    address = info.tokens.get(token, token)
    (value,) = eth_call(info, address, "balanceOf(address)", [wallet], ["uint256"])
    return int(value)


def fund(info: DevnetInfo, wallet: str, symbol: str, amount_raw: int) -> None:
    """Give ``wallet`` ``amount_raw`` more of reserve ``symbol``.

    Test tokens come from the faucet (owner-sent, in mints of at most the faucet's cap, 10,000 tokens);
    WETH, which the faucet may not mint, is wrapped from ETH the wallet is given.
    """
    token = info.token(symbol)
    if symbol == _WRAPPED_NATIVE:
        transact(info, wallet, token, "deposit()", value=amount_raw)
        return
    faucet = info.contract("aave_v3.faucet")
    (cap_tokens,) = eth_call(info, faucet, "getMaximumMintAmount()", (), ["uint256"])
    cap_raw = int(cap_tokens) * 10 ** decimals(info, symbol)
    remaining = amount_raw
    while remaining > 0:
        chunk = min(remaining, cap_raw)
        transact(info, ADMIN, faucet, "mint(address,address,uint256)", token, wallet, chunk)
        remaining -= chunk


def supply(info: DevnetInfo, wallet: str, symbol: str, amount_raw: int) -> Receipt:
    """Supply ``amount_raw`` of ``symbol`` from ``wallet`` (which must hold it) on its own behalf."""
    pool = _approve_pool(info, wallet, symbol, amount_raw)
    return transact(
        info,
        wallet,
        pool,
        "supply(address,uint256,address,uint16)",
        info.token(symbol),
        amount_raw,
        wallet,
        _NO_REFERRAL,
    )


def borrow(
    info: DevnetInfo, wallet: str, symbol: str, amount_raw: int, rate_mode: RateMode = RateMode.VARIABLE
) -> Receipt:
    """Borrow ``amount_raw`` of ``symbol`` at ``rate_mode`` (stable only where the reserve enables it)."""
    return transact(
        info,
        wallet,
        info.contract("aave_v3.pool"),
        "borrow(address,uint256,uint256,uint16,address)",
        info.token(symbol),
        amount_raw,
        int(rate_mode),
        _NO_REFERRAL,
        wallet,
    )


def repay(
    info: DevnetInfo, wallet: str, symbol: str, amount_raw: int, rate_mode: RateMode = RateMode.VARIABLE
) -> Receipt:
    """Repay ``amount_raw`` (:data:`MAX_UINT256`: the whole debt; the wallet must hold it, interest
    included) of the wallet's ``rate_mode`` debt in ``symbol``."""
    pool = _approve_pool(info, wallet, symbol, amount_raw)
    return transact(
        info,
        wallet,
        pool,
        "repay(address,uint256,uint256,address)",
        info.token(symbol),
        amount_raw,
        int(rate_mode),
        wallet,
    )


def withdraw(info: DevnetInfo, wallet: str, symbol: str, amount_raw: int) -> Receipt:
    """Withdraw ``amount_raw`` (:data:`MAX_UINT256`: all) of the wallet's ``symbol`` supply to itself."""
    return transact(
        info,
        wallet,
        info.contract("aave_v3.pool"),
        "withdraw(address,uint256,address)",
        info.token(symbol),
        amount_raw,
        wallet,
    )


def set_use_as_collateral(info: DevnetInfo, wallet: str, symbol: str, enabled: bool) -> Receipt:
    """Turn the wallet's ``symbol`` supply on or off as collateral."""
    return transact(
        info,
        wallet,
        info.contract("aave_v3.pool"),
        "setUserUseReserveAsCollateral(address,bool)",
        info.token(symbol),
        enabled,
    )


def set_emode(info: DevnetInfo, wallet: str, category: int) -> Receipt:
    """Put the wallet in e-mode ``category`` (0 leaves e-mode)."""
    return transact(info, wallet, info.contract("aave_v3.pool"), "setUserEMode(uint8)", category)


def user_emode(info: DevnetInfo, wallet: str) -> int:
    """The wallet's e-mode category (0: none)."""
    (value,) = eth_call(info, info.contract("aave_v3.pool"), "getUserEMode(address)", [wallet], ["uint256"])
    return int(value)


def emode_category(info: DevnetInfo, category: int) -> EModeCategory:
    """The configuration of e-mode ``category`` (all zero when it does not exist)."""
    (data,) = eth_call(
        info,
        info.contract("aave_v3.pool"),
        "getEModeCategoryData(uint8)",
        [category],
        ["(uint16,uint16,uint16,address,string)"],
    )
    ltv, threshold, bonus, source, label = data
    return EModeCategory(int(ltv), int(threshold), int(bonus), str(source), str(label))


def create_emode_category(
    info: DevnetInfo,
    category: int,
    ltv_bps: int,
    liquidation_threshold_bps: int,
    liquidation_bonus_bps: int,
    label: str,
    symbols: Sequence[str],
    price_source: str = "0x0000000000000000000000000000000000000000",
) -> None:
    """Create (or reconfigure) e-mode ``category`` as pool admin and put reserves ``symbols`` in it.

    Aave requires the category's LTV / threshold to exceed those of every reserve put in it, and
    ``liquidation_bonus_bps`` > 10,000 with threshold × bonus ≤ 100 %.
    """
    configurator = info.contract("aave_v3.pool_configurator")
    transact(
        info,
        ADMIN,
        configurator,
        "setEModeCategory(uint8,uint16,uint16,uint16,address,string)",
        category,
        ltv_bps,
        liquidation_threshold_bps,
        liquidation_bonus_bps,
        price_source,
        label,
    )
    for symbol in symbols:
        transact(info, ADMIN, configurator, "setAssetEModeCategory(address,uint8)", info.token(symbol), category)


def liquidate(
    info: DevnetInfo,
    liquidator: str,
    user: str,
    collateral_symbol: str,
    debt_symbol: str,
    debt_to_cover_raw: int,
    receive_a_token: bool = False,
) -> Receipt:
    """``liquidationCall`` by ``liquidator`` (which must hold the debt asset) on ``user``: repay up to
    ``debt_to_cover_raw`` of its ``debt_symbol`` debt (:data:`MAX_UINT256`: as much as allowed) and seize
    ``collateral_symbol`` collateral (as aTokens if ``receive_a_token``)."""
    pool = _approve_pool(info, liquidator, debt_symbol, debt_to_cover_raw)
    return transact(
        info,
        liquidator,
        pool,
        "liquidationCall(address,address,address,uint256,bool)",
        info.token(collateral_symbol),
        info.token(debt_symbol),
        user,
        debt_to_cover_raw,
        receive_a_token,
    )


def _approve_pool(info: DevnetInfo, wallet: str, symbol: str, amount_raw: int) -> str:
    """Approve the Pool to pull ``amount_raw`` of ``symbol`` from ``wallet``; return the Pool address."""
    pool = info.contract("aave_v3.pool")
    transact(info, wallet, info.token(symbol), "approve(address,uint256)", pool, amount_raw)
    return pool


# ----------------------------------------------------------------------------------------------- deploy
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


def deploy_market(rpc_url: str) -> tuple[dict[str, str], dict[str, str]]:
    """Aave's test market on the fresh node at ``rpc_url`` (``hardhat deploy``, ~20 s): ``(contracts, tokens)``."""
    with tempfile.TemporaryDirectory(prefix="xmargin-deployments-") as tmp:
        _hardhat_deploy(rpc_url, Path(tmp))
        return _read_deployments(Path(tmp) / "anvil")


def _hardhat_deploy(rpc_url: str, deployments_dir: Path) -> None:
    env = {
        **os.environ,
        "ANVIL_RPC_URL": rpc_url,
        "MARKET_NAME": "Test",
        "XMARGIN_DEPLOYMENTS_DIR": str(deployments_dir),
        "HARDHAT_DISABLE_TELEMETRY_PROMPT": "true",
    }
    cmd = [str(NODE_MODULES / ".bin" / "hardhat"), "--config", str(HARDHAT_CONFIG), "deploy", "--network", "anvil",
           "--no-compile"]
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


def _oracle_price(rpc_url: str, contracts: Mapping[str, str], token: str) -> int:
    """``AaveOracle.getAssetPrice``: the token's USD price (8 decimals), where its feed starts."""
    (price,) = eth_call(rpc_url, contracts["aave_v3.oracle"], "getAssetPrice(address)", [token], ["uint256"])
    return int(price)


def _use_feeds(
    rpc_url: str, contracts: Mapping[str, str], tokens: Mapping[str, str], feeds: Mapping[str, str]
) -> None:
    """``AaveOracle.setAssetSources`` to the feeds (by symbol), sent by the pool admin, and checked."""
    oracle = contracts["aave_v3.oracle"]
    symbols = list(feeds)
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


def _mint(info: DevnetInfo, wallet: str, symbol: str, amount_raw: int) -> None:
    """Give ``wallet`` ``amount_raw`` more of ``symbol`` in one transaction, beyond the faucet's per-mint cap: WETH
    is wrapped from ETH the wallet is given; a test token is minted by its owner, the faucet (impersonated)."""
    token = info.token(symbol)
    if symbol == _WRAPPED_NATIVE:
        transact(info, wallet, token, "deposit()", value=amount_raw)
    else:
        transact(info, info.contract("aave_v3.faucet"), token, "mint(address,uint256)", wallet, amount_raw)


# ------------------------------------------------------------------------------------------------- seed
_STABLE_EMODE = 1
# At the deploy prices (WETH $4,000, AAVE $300, LINK $30, DAI/USDC $1):
#
# ============== ================================================ ============================== =========
# label          supplies                                         borrows                        HF
# ============== ================================================ ============================== =========
# lender         200k DAI, 200k USDC, 20k LINK (the liquidity)    --                             no debt
# safe           10 WETH                                          5,000 DAI (variable)           6.6
# near_liq.      10 WETH                                          31,400 DAI (variable)          1.051
# multi          5 WETH, 1,000 LINK, 50 AAVE                      10k DAI + 200 LINK (variable), 2.03
#                                                                 8k USDC (stable)
# emode          10,000 USDC, in e-mode 1 (stablecoins)           9,000 DAI (variable)           1.094
# hedged         20 WETH                                          40,000 USDC (variable)         1.65
# ============== ================================================ ============================== =========
#
# ``near_liquidation`` becomes liquidatable when WETH falls ~5 % (to ~$3,806).
#
# seed label -> (supplies, borrows); amounts in whole tokens, borrows as (symbol, tokens, rate mode)
SEED_PLAN: dict[str, tuple[list[tuple[str, int]], list[tuple[str, int, RateMode]]]] = {
    "lender": ([("DAI", 200_000), ("USDC", 200_000), ("LINK", 20_000)], []),
    "safe": ([("WETH", 10)], [("DAI", 5_000, RateMode.VARIABLE)]),
    "near_liquidation": ([("WETH", 10)], [("DAI", 31_400, RateMode.VARIABLE)]),
    "multi": (
        [("WETH", 5), ("LINK", 1_000), ("AAVE", 50)],
        [("DAI", 10_000, RateMode.VARIABLE), ("USDC", 8_000, RateMode.STABLE), ("LINK", 200, RateMode.VARIABLE)],
    ),
    "emode": ([("USDC", 10_000)], [("DAI", 9_000, RateMode.VARIABLE)]),
    "hedged": ([("WETH", 20)], [("USDC", 40_000, RateMode.VARIABLE)]),
}
"""The demo wallets' Aave positions (see :mod:`devnet.seed`'s table); ``emode`` is in e-mode 1 (stablecoins)."""


def _seed(info: DevnetInfo, label: str, wallet: str) -> None:
    supplies, borrows = SEED_PLAN.get(label, ([], []))
    if label == "emode":
        set_emode(info, wallet, _STABLE_EMODE)
    for symbol, tokens in supplies:
        amount_raw = tokens * 10 ** decimals(info, symbol)
        fund(info, wallet, symbol, amount_raw)
        supply(info, wallet, symbol, amount_raw)
    for symbol, tokens, mode in borrows:
        borrow(info, wallet, symbol, tokens * 10 ** decimals(info, symbol), mode)


def _seeded(info: DevnetInfo) -> bool:
    """Whether the demo positions are open (the lender, seeded first, has collateral)."""
    return account_data(info, wallet_address(next(iter(SEED_PLAN)))).total_collateral_base > 0


def _tables(info: DevnetInfo, chain: str) -> list[dict[str, object]]:
    provider = info.contract("aave_v3.pool_addresses_provider")
    return [{"name": "aave_v3", "type": "aave_v3", "chain": chain, "pool_addresses_provider": provider}]


PART = DevnetPart(
    venue="aave_v3",
    title="Aave v3",
    short="Aave",
    module=__name__,
    present=lambda info: "aave_v3.pool" in info.contracts,
    venue_tables=_tables,
    npm_packages=("@aave/core-v3", "@aave/deploy-v3", "@aave/periphery-v3", "hardhat", "hardhat-deploy"),
    market=TokenMarket(
        stage=DeployStage("deploy_aave", "deploying Aave v3 with Aave's own scripts (hardhat deploy, first run)"),
        deploy=deploy_market,
        price=_oracle_price,
        use_feeds=_use_feeds,
        mint=_mint,
        seeded=_seeded,
    ),
    seed=_seed,
    banner=lambda info: f"Aave v3 pool {info.contract('aave_v3.pool')}",
    alias="aave",
    key_files=(HARDHAT_CONFIG,),
    exports=tuple(name for name in __all__ if name != "PART"),  # devnet.account_data, devnet.fund, ...
)
"""Aave v3's part of the devnet: the token market, its demo positions, its table."""
