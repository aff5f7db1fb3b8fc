"""Venue adapters: connector snapshot → risk core → :mod:`aggregator.views`.

One registry maps each configured venue type to how its connector is built and how its snapshot is
evaluated. On-chain venues expose a read program (run together with the chain's other venues in shared
Multicall3 round trips at one block); off-chain venues are read over HTTP and stamped with their own time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aggregator.config import ChainConfig, VenueConfig
from aggregator.views import Kind, VenueReading
from connectors.base import OnchainConnector
from connectors.evm.multicall import Multicall
from connectors.evm.rpc import RpcClient
from connectors.types import BlockRef

__all__ = ["KINDS", "OffchainVenue", "OnchainVenue", "open_offchain", "open_onchain"]


@dataclass(frozen=True)
class OnchainVenue:
    """A configured on-chain venue: its connector and how its snapshot becomes a reading."""

    config: VenueConfig
    connector: OnchainConnector
    evaluate: Callable[[Any, Mapping[str, float]], VenueReading]
    """``(snapshot, usd_prices)``: USD prices by token address, from the price sources of the same block."""
    price_source: bool = False
    """Its readings' prices feed the book the other venues of the chain are valued with."""


@dataclass(frozen=True)
class OffchainVenue:
    """A configured off-chain venue: how to read wallets and evaluate the snapshot against a chain block."""

    config: VenueConfig
    read: Callable[[Sequence[str]], Any]
    evaluate: Callable[[Any, BlockRef], VenueReading]
    close: Callable[[], None]


def _aave(cfg: VenueConfig, chain: ChainConfig, rpc: RpcClient, multicall: Multicall) -> OnchainVenue:
    from aggregator.venues import aave
    from connectors.aave_v3.connector import AaveV3Connector
    from connectors.aave_v3.deployments import AaveDeployment, get_deployment

    if cfg.deployment is not None:
        deployment = get_deployment(cfg.deployment)
    else:
        assert cfg.pool_addresses_provider is not None
        deployment = AaveDeployment(name=cfg.name, chain_id=chain.chain_id,
                                    pool_addresses_provider=cfg.pool_addresses_provider)
    connector = AaveV3Connector(rpc, deployment, multicall)
    return OnchainVenue(cfg, connector, lambda snapshot, _prices: aave.evaluate(snapshot, cfg.name), price_source=True)


def _morpho(cfg: VenueConfig, chain: ChainConfig, rpc: RpcClient, multicall: Multicall) -> OnchainVenue:
    from aggregator.venues import morpho
    from connectors.morpho_blue.connector import MorphoBlueConnector
    from connectors.morpho_blue.deployments import MorphoDeployment

    assert cfg.morpho is not None
    deployment = MorphoDeployment(name=cfg.name, chain_id=chain.chain_id, morpho=cfg.morpho, markets=cfg.markets)
    connector = MorphoBlueConnector(rpc, deployment, multicall)
    return OnchainVenue(cfg, connector, lambda snapshot, prices: morpho.evaluate(snapshot, cfg.name, prices))


def _uniswap(cfg: VenueConfig, chain: ChainConfig, rpc: RpcClient, multicall: Multicall) -> OnchainVenue:
    from aggregator.venues import uniswap
    from connectors.uniswap_v3.connector import UniswapV3Connector
    from connectors.uniswap_v3.deployments import UniswapV3Deployment

    assert cfg.position_manager is not None
    assert cfg.factory is not None
    deployment = UniswapV3Deployment(name=cfg.name, chain_id=chain.chain_id, position_manager=cfg.position_manager,
                                     factory=cfg.factory)
    connector = UniswapV3Connector(rpc, deployment, multicall)
    return OnchainVenue(cfg, connector, lambda snapshot, prices: uniswap.evaluate(snapshot, cfg.name, prices))


def _hyperliquid(cfg: VenueConfig) -> OffchainVenue:
    from aggregator.venues.perps import evaluate_hyperliquid
    from connectors.hyperliquid.connector import HyperliquidConnector

    assert cfg.base_url is not None
    connector = HyperliquidConnector(cfg.base_url, timeout_s=cfg.timeout_s)
    return OffchainVenue(
        cfg,
        read=connector.read_accounts,
        evaluate=lambda snapshot, block: evaluate_hyperliquid(snapshot, cfg.name, block),
        close=connector.close,
    )


def _dydx(cfg: VenueConfig) -> OffchainVenue:
    from aggregator.venues.perps import evaluate_dydx
    from connectors.dydx_v4.connector import DydxConnector
    from connectors.types import checksum

    assert cfg.base_url is not None
    connector = DydxConnector(cfg.base_url, timeout_s=cfg.timeout_s)
    accounts = {checksum(wallet): account for wallet, account in cfg.accounts.items()}
    wallets_by_account = {account.split("/")[0]: wallet for wallet, account in accounts.items()}

    def read(wallets: Sequence[str]) -> Any:
        return connector.read_accounts([accounts[w] for w in wallets if w in accounts])

    return OffchainVenue(
        cfg,
        read=read,
        evaluate=lambda snapshot, block: evaluate_dydx(snapshot, cfg.name, block, wallets_by_account),
        close=connector.close,
    )


_ONCHAIN: dict[str, Callable[[VenueConfig, ChainConfig, RpcClient, Multicall], OnchainVenue]] = {
    "aave_v3": _aave,
    "morpho_blue": _morpho,
    "uniswap_v3": _uniswap,
}
_OFFCHAIN: dict[str, Callable[[VenueConfig], OffchainVenue]] = {
    "hyperliquid": _hyperliquid,
    "dydx_v4": _dydx,
}

KINDS: dict[str, Kind] = {
    "aave_v3": "lending",
    "morpho_blue": "lending",
    "uniswap_v3": "lp",
    "hyperliquid": "perp",
    "dydx_v4": "perp",
}
"""The kind of venue each connector type is."""


def open_onchain(cfg: VenueConfig, chain: ChainConfig, rpc: RpcClient, multicall: Multicall) -> OnchainVenue:
    """Build the on-chain venue ``cfg`` over the chain's client."""
    try:
        build = _ONCHAIN[cfg.type]
    except KeyError:
        raise ValueError(f"venue {cfg.name!r}: type {cfg.type!r} has no on-chain connector") from None
    return build(cfg, chain, rpc, multicall)


def open_offchain(cfg: VenueConfig) -> OffchainVenue:
    """Build the off-chain venue ``cfg``."""
    try:
        build = _OFFCHAIN[cfg.type]
    except KeyError:
        raise ValueError(f"venue {cfg.name!r}: type {cfg.type!r} has no off-chain connector") from None
    return build(cfg)
