"""Hyperliquid: the venue's plugin — its ``[[venues]]`` table and how it is read."""

from __future__ import annotations

from typing import Any, Literal

from aggregator.config import OffchainVenueConfig, VenueConfig
from aggregator.venues.live import LivePerpVenue
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

    def open_live(self, cfg: VenueConfig, **options: Any) -> LivePerpVenue:
        from aggregator.venues.hyperliquid import live
        from aggregator.venues.live import LiveParts
        from connectors.hyperliquid.connector import HyperliquidConnector
        from connectors.hyperliquid.stream import HyperliquidStream
        from connectors.transport import TransportOptions
        from connectors.types import checksum

        own: HyperliquidConfig = self.config(cfg)
        # options a test may inject: the budget (a fake clock's) and the HTTP transport options
        budget = options.pop("budget", None) or self.rate_budget(own, own.base_url)
        transport = options.pop("transport_options", None) or TransportOptions(timeout_s=own.timeout_s)
        connector = HyperliquidConnector(own.base_url, options=transport, budget=budget)

        def read_account(account: str) -> tuple[Any, int]:
            state = connector.read_account(account)
            return state, state.observed_at_ms

        ws_url = own.ws_url
        parts = LiveParts(
            venue=own.name, budget=budget, poll_endpoint="clearinghouseState", marks_endpoint="metaAndAssetCtxs",
            account_of=checksum, read_marks=connector.read_marks, read_account=read_account,
            evaluate=lambda pairs, marks, block: live.evaluate(pairs, marks, own.name, block),
            close=connector.close,
            new_stream=None if ws_url is None else (lambda cache: HyperliquidStream(ws_url, cache)),
        )
        return LivePerpVenue(parts, **options)


PLUGIN = HyperliquidPlugin()
