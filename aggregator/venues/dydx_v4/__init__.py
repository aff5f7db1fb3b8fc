"""dYdX v4: the venue's plugin — its ``[[venues]]`` table and how it is read."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field

from aggregator.config import OffchainVenueConfig, VenueConfig
from aggregator.venues.live import LivePerpVenue
from aggregator.venues.plugin import OffchainVenue, PluginBase

__all__ = ["PLUGIN", "DydxV4Config", "DydxV4Plugin"]


class DydxV4Config(OffchainVenueConfig):
    """``type = "dydx_v4"``: ``base_url`` (the indexer) and ``accounts`` (EVM wallet → ``dydx1…`` address)."""

    type: Literal["dydx_v4"]
    base_url: str
    accounts: dict[str, str] = Field(default_factory=dict)


class DydxV4Plugin(PluginBase):
    venue_type = "dydx_v4"
    config_model = DydxV4Config

    def open_offchain(self, cfg: VenueConfig) -> OffchainVenue:
        from aggregator.venues.dydx_v4 import sync
        from connectors.dydx_v4.connector import DydxConnector
        from connectors.transport import TransportOptions
        from connectors.types import checksum

        own: DydxV4Config = self.config(cfg)
        budget = self.rate_budget(own, own.base_url)
        connector = DydxConnector(own.base_url, options=TransportOptions(timeout_s=own.timeout_s), budget=budget)
        accounts = {checksum(wallet): account for wallet, account in own.accounts.items()}
        wallets_by_account = {account.split("/")[0]: wallet for wallet, account in accounts.items()}

        def read(wallets: Sequence[str]) -> Any:
            return connector.read_accounts([accounts[w] for w in wallets if w in accounts])

        return OffchainVenue(own, read=read,
                             evaluate=lambda snapshot, block: sync.evaluate(snapshot, own.name, block,
                                                                            wallets_by_account),
                             close=connector.close, budget=budget)

    def open_live(self, cfg: VenueConfig, **options: Any) -> LivePerpVenue:
        from aggregator.venues.dydx_v4 import live
        from aggregator.venues.live import LiveParts
        from connectors.dydx_v4.address import parse_account
        from connectors.dydx_v4.connector import DydxConnector
        from connectors.dydx_v4.stream import DydxStream
        from connectors.transport import TransportOptions
        from connectors.types import checksum

        own: DydxV4Config = self.config(cfg)
        # options a test may inject: the budget (a fake clock's) and the HTTP transport options
        budget = options.pop("budget", None) or self.rate_budget(own, own.base_url)
        transport = options.pop("transport_options", None) or TransportOptions(timeout_s=own.timeout_s)
        connector = DydxConnector(own.base_url, options=transport, budget=budget)
        accounts = {checksum(wallet): "{}/{}".format(*parse_account(account))
                    for wallet, account in own.accounts.items()}
        wallets_by_account = {account.split("/")[0]: wallet for wallet, account in accounts.items()}

        def read_account(account: str) -> tuple[Any, int]:
            state = connector.read_subaccount(account)
            return state, state.observed_at_ms

        ws_url = own.ws_url
        parts = LiveParts(
            venue=own.name, budget=budget, poll_endpoint="subaccount", marks_endpoint="perpetualMarkets",
            account_of=lambda wallet: accounts.get(checksum(wallet)), read_marks=connector.read_marks,
            read_account=read_account,
            evaluate=lambda pairs, marks, block: live.evaluate(pairs, marks, own.name, block, wallets_by_account),
            close=connector.close,
            new_stream=None if ws_url is None else (lambda cache: DydxStream(ws_url, cache)),
        )
        return LivePerpVenue(parts, **options)


PLUGIN = DydxV4Plugin()
