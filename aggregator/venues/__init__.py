"""Venue plugins: the one place the product finds a venue's part, by the venue's configuration ``type``.

Each venue is a package ``aggregator/venues/<venue>/`` whose ``PLUGIN`` implements
:class:`~aggregator.venues.plugin.VenuePlugin`; the list of venues is :data:`connectors.registry.VENUES`. Kinds,
transports, capabilities and rate limits come from each venue's connector declaration, never from a table here.
On-chain venues expose a read program (run together with the chain's other venues in shared Multicall3 round
trips at one block); off-chain venues are read over HTTP and stamped with their own time.
"""

from __future__ import annotations

import importlib
from typing import cast

from aggregator.config import ChainConfig, VenueConfig
from aggregator.venues.plugin import ChainLink, OffchainVenue, OnchainVenue, VenuePlugin
from aggregator.views import Kind
from connectors.evm.multicall import Multicall
from connectors.evm.rpc import RpcClient
from connectors.registry import VENUES, venue_module

__all__ = [
    "ChainLink",
    "OffchainVenue",
    "OnchainVenue",
    "kind_of",
    "open_offchain",
    "open_onchain",
    "plugin_of",
    "plugins",
]


def plugin_of(venue_type: str) -> VenuePlugin:
    """The plugin of ``venue_type`` (``UnknownVenueError`` when no venue of that type is registered)."""
    module = importlib.import_module(venue_module("aggregator", venue_type))
    return cast(VenuePlugin, module.PLUGIN)


def plugins() -> tuple[VenuePlugin, ...]:
    """Every registered venue's plugin, in registry order."""
    return tuple(plugin_of(v) for v in VENUES)


def kind_of(venue_type: str) -> Kind:
    """``lending``, ``lp`` or ``perp``: the kind the venue's connector declares."""
    return plugin_of(venue_type).kind


def open_onchain(cfg: VenueConfig, chain: ChainConfig, rpc: RpcClient, multicall: Multicall) -> OnchainVenue:
    """Build the on-chain venue ``cfg`` over the chain's client."""
    return plugin_of(cfg.type).open_onchain(cfg, ChainLink(chain, rpc, multicall))


def open_offchain(cfg: VenueConfig) -> OffchainVenue:
    """Build the off-chain venue ``cfg``."""
    return plugin_of(cfg.type).open_offchain(cfg)
