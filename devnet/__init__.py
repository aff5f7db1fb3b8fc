"""A local EVM chain (anvil) with Aave v3's own published bytecode, Morpho Blue (compiled from its npm
source) and Uniswap v3 (its npm artifacts) on the same tokens, Chainlink-shaped price feeds the devnet
can move on every venue at once, and Multicall3, driven from Python for tests and demos.

Quick start::

    from devnet import Devnet, morpho, set_price, seed, uniswap
    with Devnet.launch() as dn:
        wallets = seed(dn.info)
        set_price(dn.info, "WETH", 3500)  # feed, Aave, Morpho oracles, Uniswap pools, perp mark
        morpho.position(dn.info, "WETH_USDC", wallet_address("hedged"))
        uniswap.pool_state(dn.info, "WETH_USDC_500")

The first start deploys (~30 s) and caches the state outside git; later starts load it in well under a
second. See :mod:`devnet.chain` for the clock policy and :mod:`devnet.install` for what gets installed.
"""

from devnet import morpho, uniswap
from devnet.aave import (
    MAX_UINT256,
    AccountData,
    EModeCategory,
    RateMode,
    account_data,
    balance_of,
    borrow,
    create_emode_category,
    decimals,
    emode_category,
    fund,
    liquidate,
    repay,
    set_emode,
    set_use_as_collateral,
    supply,
    user_emode,
    withdraw,
)
from devnet.chain import (
    Devnet,
    DevnetAlreadyRunningError,
    DevnetNotRunningError,
    Ports,
    down,
    info,
    ports_of,
    remembered_ports,
    up,
)
from devnet.deploy import ADMIN, MULTICALL3, DeployError, feed_name
from devnet.evm import (
    DevnetError,
    Receipt,
    RevertedError,
    RpcError,
    block_timestamp,
    encode_call,
    eth_call,
    increase_time,
    mine,
    revert,
    rpc,
    send_tx,
    set_balance,
    snapshot,
    transact,
)
from devnet.feeds import RoundData, latest_round, refresh_feeds, set_price
from devnet.install import InstallError, ensure_installed
from devnet.models import DevnetInfo
from devnet.node import PortInUseError
from devnet.progress import Progress, StageEvent
from devnet.seed import HEDGED_VENUES, SEED_LABELS, SeedWallet, is_seeded, seed
from devnet.venues import LIQUIDITY, mint_tokens
from devnet.wallets import wallet_address, wallet_key

__all__ = [
    "ADMIN",
    "HEDGED_VENUES",
    "LIQUIDITY",
    "MAX_UINT256",
    "MULTICALL3",
    "SEED_LABELS",
    "AccountData",
    "DeployError",
    "Devnet",
    "DevnetAlreadyRunningError",
    "DevnetError",
    "DevnetInfo",
    "DevnetNotRunningError",
    "EModeCategory",
    "InstallError",
    "PortInUseError",
    "Ports",
    "Progress",
    "RateMode",
    "Receipt",
    "RevertedError",
    "RoundData",
    "RpcError",
    "SeedWallet",
    "StageEvent",
    "account_data",
    "balance_of",
    "block_timestamp",
    "borrow",
    "create_emode_category",
    "decimals",
    "down",
    "emode_category",
    "encode_call",
    "ensure_installed",
    "eth_call",
    "feed_name",
    "fund",
    "increase_time",
    "info",
    "is_seeded",
    "latest_round",
    "liquidate",
    "mine",
    "mint_tokens",
    "morpho",
    "ports_of",
    "refresh_feeds",
    "remembered_ports",
    "repay",
    "revert",
    "rpc",
    "seed",
    "send_tx",
    "set_balance",
    "set_emode",
    "set_price",
    "set_use_as_collateral",
    "snapshot",
    "supply",
    "transact",
    "uniswap",
    "up",
    "user_emode",
    "wallet_address",
    "wallet_key",
    "withdraw",
]
