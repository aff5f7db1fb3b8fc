"""Aave v3 (and forks such as Spark): the venue's plugin — its ``[[venues]]`` table and how it is read."""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import model_validator

from aggregator.config import VenueConfig
from aggregator.venues.plugin import ChainLink, OnchainVenue, PluginBase
from connectors.evm.logs import LogWatch
from connectors.types import Address

__all__ = ["PLUGIN", "AaveV3Config", "AaveV3Plugin"]


class AaveV3Config(VenueConfig):
    """``type = "aave_v3"``: ``deployment`` (a shipped one) or ``pool_addresses_provider``."""

    type: Literal["aave_v3"]
    deployment: str | None = None
    pool_addresses_provider: Address | None = None

    @model_validator(mode="after")
    def _one_market_source(self) -> AaveV3Config:
        if (self.deployment is None) == (self.pool_addresses_provider is None):
            raise ValueError("give exactly one of deployment, pool_addresses_provider")
        return self


class AaveV3Plugin(PluginBase):
    venue_type = "aave_v3"
    config_model = AaveV3Config

    def open_onchain(self, cfg: VenueConfig, link: ChainLink) -> OnchainVenue:
        from aggregator.venues.aave_v3 import sync
        from aggregator.venues.aave_v3.incremental import incremental
        from connectors.aave_v3.connector import AaveV3Connector
        from connectors.aave_v3.deployments import AaveDeployment, get_deployment

        own: AaveV3Config = self.config(cfg)
        if own.deployment is not None:
            deployment = get_deployment(own.deployment)
        else:
            assert own.pool_addresses_provider is not None
            deployment = AaveDeployment(name=own.name, chain_id=link.chain.chain_id,
                                        pool_addresses_provider=own.pool_addresses_provider)
        connector = AaveV3Connector(link.rpc, deployment, link.multicall)
        return OnchainVenue(own, connector, lambda snapshot, _prices: sync.evaluate(snapshot, own.name),
                            price_source=True, incremental=incremental(connector),
                            summarize=lambda snapshot, _prices: sync.evaluate(snapshot, own.name, detail=False))

    def log_watch(self, venue: OnchainVenue, snapshot: Any) -> LogWatch:
        """The pool, the reserves' tokens, the oracle and its feeds (from ``snapshot``'s market), the
        provider's ``PoolConfigurator`` (one ``eth_call`` at the snapshot's block) and the aggregators behind
        proxy feeds (one batched request)."""
        from connectors.aave_v3.connector import AaveV3Connector
        from connectors.aave_v3.events import GET_POOL_CONFIGURATOR, aave_watch, feeds
        from connectors.aave_v3.models import AaveSnapshot
        from connectors.chainlink.events import underlying_aggregators

        connector = venue.connector
        if not isinstance(connector, AaveV3Connector) or not isinstance(snapshot, AaveSnapshot):
            raise TypeError(f"venue {venue.config.name!r}: not an Aave v3 venue and snapshot")
        provider = connector.deployment.pool_addresses_provider
        raw = connector.rpc.eth_call(provider, GET_POOL_CONFIGURATOR.encode(), snapshot.block)
        configurator = str(GET_POOL_CONFIGURATOR.decode_one(raw))
        behind = underlying_aggregators(connector.rpc, feeds(snapshot.market), snapshot.block)
        return aave_watch(venue.config.name, snapshot.market, configurator=configurator, provider=provider,
                          aggregators=behind.values())

    def env_venue(self, chain: str) -> dict[str, object] | None:
        """``XMARGIN_AAVE_V3_PROVIDER``: one Aave market by its PoolAddressesProvider, without a file."""
        provider = os.environ.get("XMARGIN_AAVE_V3_PROVIDER")
        if not provider:
            return None
        return {"name": "aave_v3", "type": "aave_v3", "chain": chain, "pool_addresses_provider": provider}


PLUGIN = AaveV3Plugin()
