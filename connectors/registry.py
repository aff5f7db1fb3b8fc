"""The one list of venues. Every layer finds its part of a venue by the venue's name.

A venue named ``<venue>`` (its configuration ``type``) is, in each layer, a module named after it:

========================================  =====================================================================
``connectors/<venue>/``                   reading the venue; ``connector.py`` ends with ``CONNECTOR = <class>``
``riskcore/venues/<venue>/``              the venue's own rules, pure (health, liquidation, what-if math)
``aggregator/venues/<venue>/``            the product's plugin (``PLUGIN``): config, detail models, health,
                                          risk-book lines, keeper actions, what-if
``devnet/venues/<venue>.py``              deploying and seeding the venue on the local chain
========================================  =====================================================================

This module is the only product file outside those modules that names a venue: kinds, transports,
capabilities and rate limits are read from each connector's declared :class:`~connectors.base.Capabilities`,
never repeated elsewhere.
"""

from __future__ import annotations

import importlib
from functools import cache

from connectors.base import Capabilities, OffchainConnector, OnchainConnector

__all__ = ["VENUES", "UnknownVenueError", "capabilities", "connector_class", "venue_module"]

VENUES: tuple[str, ...] = ("aave_v3", "morpho_blue", "uniswap_v3", "hyperliquid", "dydx_v4")
"""Every venue xmargin reads, by configuration ``type`` (the name of its module in every layer)."""


class UnknownVenueError(LookupError):
    """A venue type no plugin is registered for."""

    def __init__(self, venue: str) -> None:
        super().__init__(f"unknown venue type {venue!r} (known: {', '.join(VENUES)})")
        self.venue = venue


def venue_module(layer: str, venue: str, part: str | None = None) -> str:
    """The dotted name of ``venue``'s module in ``layer`` (``aggregator.venues.aave_v3.keeper``…)."""
    if venue not in VENUES:
        raise UnknownVenueError(venue)
    base = f"{layer}.{venue}" if layer == "connectors" else f"{layer}.venues.{venue}"
    return f"{base}.{part}" if part else base


@cache
def connector_class(venue: str) -> type[OnchainConnector] | type[OffchainConnector]:
    """The connector class of ``venue`` (its ``connector.py``'s ``CONNECTOR``)."""
    module = importlib.import_module(venue_module("connectors", venue, "connector"))
    cls: type[OnchainConnector] | type[OffchainConnector] = module.CONNECTOR
    return cls


def capabilities(venue: str) -> Capabilities:
    """What ``venue`` declares it can do (kind, transport, rate limit…)."""
    return connector_class(venue).capabilities
