"""Hyperliquid: the venue's plugin — its ``[[venues]]`` table and how it is read."""

from __future__ import annotations

from typing import Literal

from aggregator.config import OffchainVenueConfig, VenueConfig
from aggregator.venues.plugin import OffchainVenue, PluginBase

__all__ = ["PLUGIN", "HyperliquidConfig", "HyperliquidPlugin"]


class HyperliquidConfig(OffchainVenueConfig):
    """``type = "hyperliquid"``: ``base_url`` (the API root that serves ``/info``)."""

    type: Literal["hyperliquid"]
    base_url: str


class HyperliquidPlugin(PluginBase):
    venue_type = "hyperliquid"
    config_model = HyperliquidConfig

    def open_offchain(self, cfg: VenueConfig) -> OffchainVenue:
        from aggregator.venues.hyperliquid import sync
        from connectors.hyperliquid.connector import HyperliquidConnector
        from connectors.transport import TransportOptions

        own: HyperliquidConfig = self.config(cfg)
        budget = self.rate_budget(own, own.base_url)
        connector = HyperliquidConnector(own.base_url, options=TransportOptions(timeout_s=own.timeout_s), budget=budget)
        return OffchainVenue(own, read=connector.read_accounts,
                             evaluate=lambda snapshot, block: sync.evaluate(snapshot, own.name, block),
                             close=connector.close, budget=budget)


PLUGIN = HyperliquidPlugin()
