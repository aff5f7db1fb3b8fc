"""Morpho Blue: the venue's plugin — its ``[[venues]]`` table and how it is read."""

from __future__ import annotations

from typing import Any, Literal

from aggregator.config import VenueConfig
from aggregator.venues.plugin import ChainLink, OnchainVenue, PluginBase
from connectors.evm.logs import LogWatch
from connectors.types import Address, checksum

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
                            incremental=incremental(connector),
                            summarize=lambda snapshot, prices: sync.evaluate(snapshot, own.name, prices, detail=False))

    def log_watch(self, venue: OnchainVenue, snapshot: Any) -> LogWatch:
        """The Morpho contract's events for the snapshot's markets, with the fee recipient as of the snapshot's
        block (one ``eth_call``: accrued fee shares change its position without a position event)."""
        from connectors.morpho_blue.connector import MorphoBlueConnector
        from connectors.morpho_blue.events import FEE_RECIPIENT, morpho_watch
        from connectors.morpho_blue.models import MorphoSnapshot

        connector = venue.connector
        if not isinstance(connector, MorphoBlueConnector) or not isinstance(snapshot, MorphoSnapshot):
            raise TypeError(f"venue {venue.config.name!r}: not a Morpho Blue venue and snapshot")
        raw = connector.rpc.eth_call(snapshot.morpho, FEE_RECIPIENT.encode(), snapshot.block)
        recipient = str(FEE_RECIPIENT.decode_one(raw))
        return morpho_watch(venue.config.name, snapshot, fee_recipient=checksum(recipient),
                            configured=connector.deployment.markets)


PLUGIN = MorphoBluePlugin()
