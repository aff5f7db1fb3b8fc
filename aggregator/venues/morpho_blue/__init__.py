"""Morpho Blue: the venue's plugin — its ``[[venues]]`` table and how it is read."""

from __future__ import annotations

from typing import Literal

from aggregator.config import VenueConfig
from aggregator.venues.plugin import ChainLink, OnchainVenue, PluginBase
from connectors.types import Address

__all__ = ["PLUGIN", "MorphoBlueConfig", "MorphoBluePlugin"]


class MorphoBlueConfig(VenueConfig):
    """``type = "morpho_blue"``: ``morpho`` (the Morpho contract) and ``markets`` (market ids to watch)."""

    type: Literal["morpho_blue"]
    morpho: Address
    markets: tuple[str, ...] = ()


class MorphoBluePlugin(PluginBase):
    venue_type = "morpho_blue"
    config_model = MorphoBlueConfig

    def open_onchain(self, cfg: VenueConfig, link: ChainLink) -> OnchainVenue:
        from aggregator.venues.morpho_blue import sync
        from aggregator.venues.morpho_blue.incremental import incremental
        from connectors.morpho_blue.connector import MorphoBlueConnector
        from connectors.morpho_blue.deployments import MorphoDeployment

        own: MorphoBlueConfig = self.config(cfg)
        deployment = MorphoDeployment(name=own.name, chain_id=link.chain.chain_id, morpho=own.morpho,
                                      markets=own.markets)
        connector = MorphoBlueConnector(link.rpc, deployment, link.multicall)
        return OnchainVenue(own, connector, lambda snapshot, prices: sync.evaluate(snapshot, own.name, prices),
                            incremental=incremental(connector))


PLUGIN = MorphoBluePlugin()
