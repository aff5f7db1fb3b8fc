"""A local EVM chain (anvil) with every on-chain venue deployed from its own published packages on the same
tokens, Chainlink-shaped price feeds the devnet can move on every venue at once, Multicall3, and a local API for
the off-chain venues, driven from Python for tests and demos.

Each venue's part is ``devnet/venues/<venue>.py`` (:mod:`devnet.parts`, listed by :mod:`devnet.venues`); a part's
helpers are also ``devnet.<alias>`` (:attr:`devnet.parts.DevnetPart.alias`), and the names it exports
(:attr:`devnet.parts.DevnetPart.exports`) are this package's too.

Quick start::

    from devnet import Devnet, set_price, seed
    with Devnet.launch() as dn:
        wallets = seed(dn.info)
        set_price(dn.info, "WETH", 3500)  # the feed, then every venue's prices of WETH

The first start deploys (~30 s) and caches the state outside git; later starts load it in well under a
second. See :mod:`devnet.chain` for the clock policy and :mod:`devnet.install` for what gets installed.
"""

import importlib
import sys

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
from devnet.seed import SEED_LABELS, SeedWallet, is_seeded, seed
from devnet.tokens import LIQUIDITY, mint_tokens
from devnet.venues import chain_parts
from devnet.wallets import wallet_address, wallet_key

__all__ = [
    "ADMIN",
    "LIQUIDITY",
    "MULTICALL3",
    "SEED_LABELS",
    "DeployError",
    "Devnet",
    "DevnetAlreadyRunningError",
    "DevnetError",
    "DevnetInfo",
    "DevnetNotRunningError",
    "InstallError",
    "PortInUseError",
    "Ports",
    "Progress",
    "Receipt",
    "RevertedError",
    "RoundData",
    "RpcError",
    "SeedWallet",
    "StageEvent",
    "block_timestamp",
    "down",
    "encode_call",
    "ensure_installed",
    "eth_call",
    "feed_name",
    "increase_time",
    "info",
    "is_seeded",
    "latest_round",
    "mine",
    "mint_tokens",
    "ports_of",
    "refresh_feeds",
    "remembered_ports",
    "revert",
    "rpc",
    "seed",
    "send_tx",
    "set_balance",
    "set_price",
    "snapshot",
    "transact",
    "up",
    "wallet_address",
    "wallet_key",
]


def _export_parts() -> None:
    """Each on-chain venue part's module as ``devnet.<alias>``, and the names it exports as this package's."""
    namespace = globals()
    for part in chain_parts():
        module = importlib.import_module(part.module)
        if part.alias is not None:
            namespace[part.alias] = module
            sys.modules.setdefault(f"{__name__}.{part.alias}", module)
        for name in part.exports:
            namespace[name] = getattr(module, name)


_export_parts()
