"""Uniswap v3: the venue's plugin — its ``[[venues]]`` table and how it is read."""

from __future__ import annotations

from typing import Any, Literal

from aggregator.config import VenueConfig
from aggregator.venues.plugin import ChainLink, OnchainVenue, PluginBase
from connectors.evm.logs import LogWatch
from connectors.types import Address

__all__ = ["PLUGIN", "UniswapV3Config", "UniswapV3Plugin"]


class UniswapV3Config(VenueConfig):
    """``type = "uniswap_v3"``: ``position_manager`` (NonfungiblePositionManager) and ``factory``."""

    type: Literal["uniswap_v3"]
    position_manager: Address
    factory: Address


class UniswapV3Plugin(PluginBase):
    venue_type = "uniswap_v3"
    config_model = UniswapV3Config

    def open_onchain(self, cfg: VenueConfig, link: ChainLink) -> OnchainVenue:
        from aggregator.venues.uniswap_v3 import sync
        from aggregator.venues.uniswap_v3.incremental import incremental
        from connectors.uniswap_v3.connector import UniswapV3Connector
        from connectors.uniswap_v3.deployments import UniswapV3Deployment

        own: UniswapV3Config = self.config(cfg)
        deployment = UniswapV3Deployment(name=own.name, chain_id=link.chain.chain_id,
                                         position_manager=own.position_manager, factory=own.factory)
        connector = UniswapV3Connector(link.rpc, deployment, link.multicall)
        return OnchainVenue(own, connector, lambda snapshot, prices: sync.evaluate(snapshot, own.name, prices),
                            incremental=incremental(connector),
                            summarize=lambda snapshot, prices: sync.evaluate(snapshot, own.name, prices, detail=False))

    def log_watch(self, venue: OnchainVenue, snapshot: Any) -> LogWatch:
        """The position manager's events (a token id → owner book seeded from ``snapshot``: stateful) and the
        snapshot's pools' events."""
        from connectors.uniswap_v3.events import uniswap_watch
        from connectors.uniswap_v3.models import UniswapSnapshot

        if not isinstance(snapshot, UniswapSnapshot):
            raise TypeError(f"venue {venue.config.name!r}: not a Uniswap v3 snapshot")
        return uniswap_watch(venue.config.name, snapshot)


PLUGIN = UniswapV3Plugin()
