"""What a venue's keeper part is (``aggregator/venues/<venue>/keeper.py``'s ``KEEPER``) and what it hands the
planner.

A venue's keeper part turns the venue's newest stored snapshot of a wallet into the planner's venues
(:class:`riskcore.rebalance.LendingVenue` / :class:`~riskcore.rebalance.PerpVenue`) with how each maps back to
the configured venue and market (:class:`PlannedVenue`). Which actions the keeper may take on a venue is what
its connector declares (:attr:`connectors.base.Capabilities.actions`): the executor refuses any other.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, cast

from aggregator.config import KeeperConfig
from aggregator.venues.detail import PerpHealthDetail, parse
from connectors.registry import capabilities, venue_module
from db import LatestVenueHealth
from riskcore.rebalance import LendingVenue, PerpLine, PerpVenue

__all__ = [
    "PlannedVenue",
    "PlannerPair",
    "StateError",
    "TokenInfo",
    "VenueKeeper",
    "note_token",
    "perp_planner_venues",
    "venue_actions",
    "venue_keeper",
]


class StateError(ValueError):
    """The store does not hold what a plan needs (no sync yet, a venue failed, a price missing)."""


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """An ERC-20 token of the chain: its symbol, decimals and USD price at the sync's block."""

    address: str
    symbol: str
    decimals: int
    price_usd: float


@dataclass(frozen=True, slots=True)
class PlannedVenue:
    """How a planner venue maps back to the configured venue and the protocol's market."""

    venue: str
    """The configured venue's name."""
    protocol: str
    """The venue's configuration ``type``."""
    market_key: str | None
    """The market within the venue, for a venue of isolated markets (its id); ``None`` otherwise."""
    collateral_raw: Mapping[str, int] = field(default_factory=dict)
    debt_raw: Mapping[str, int] = field(default_factory=dict)


PlannerPair = tuple[LendingVenue | PerpVenue, PlannedVenue]


class VenueKeeper(Protocol):
    """A venue's keeper part."""

    lending: bool
    """Its positions secure debt: a plan needs its newest snapshot (a failed read stops the plan), and its
    snapshots fix the block the plan is made at."""

    def planner_venues(self, item: LatestVenueHealth, cfg: KeeperConfig,
                       tokens: dict[str, TokenInfo]) -> list[PlannerPair]:
        """The planner's venues for the wallet's newest snapshot on this venue (noting the tokens it uses)."""
        ...


def venue_keeper(venue_type: str) -> VenueKeeper:
    """``venue_type``'s keeper part (``aggregator/venues/<venue>/keeper.py``)."""
    module = importlib.import_module(venue_module("aggregator", venue_type, "keeper"))
    return cast(VenueKeeper, module.KEEPER)


def venue_actions(venue_type: str) -> tuple[str, ...]:
    """The actions the keeper may take on ``venue_type``: what its connector declares."""
    return capabilities(venue_type).actions


def note_token(tokens: dict[str, TokenInfo], address: str, symbol: str, decimals: int, price: float | None,
               venue: str) -> None:
    """Record a token the plan uses, with its USD price (a missing or invalid price is a :class:`StateError`)."""
    if price is None or not math.isfinite(price) or price <= 0:
        raise StateError(f"{venue}: no valid USD price for {symbol}")
    tokens.setdefault(address, TokenInfo(address=address, symbol=symbol, decimals=decimals, price_usd=price))


def perp_planner_venues(item: LatestVenueHealth, cfg: KeeperConfig, protocol: str) -> list[PlannerPair]:
    """A perp venue's account as one planner venue: its equity and one blended maintenance rate per position
    (the venues report the account's maintenance, not each position's)."""
    assert item.health is not None
    detail = parse(PerpHealthDetail, item.health.extra)
    equity = detail.equity_usd if detail.equity_usd is not None else 0.0
    maintenance = detail.maintenance_margin_usd
    positions = [p for p in item.snapshot.positions if p.side == "perp" and p.price_usd]
    notional = sum(abs(p.amount) * (p.price_usd or 0.0) for p in positions)
    if not positions or maintenance <= 0 or notional <= 0:
        return []
    rate = maintenance / notional
    lines = tuple(PerpLine(market=p.asset.address, size=p.amount, mark_usd=p.price_usd or 0.0, maintenance_rate=rate)
                  for p in positions)
    target = cfg.target(item.venue)
    return [(PerpVenue(name=item.venue, equity_usd=equity, positions=lines, target=target.target,
                       offset=target.offset),
             PlannedVenue(venue=item.venue, protocol=protocol, market_key=None))]
