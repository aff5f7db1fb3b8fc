"""What a venue's keeper part is (``aggregator/venues/<venue>/keeper.py``'s ``KEEPER``) and what it hands the
planner.

A venue's keeper part turns the venue's newest stored snapshot of a wallet into the planner's venues
(:class:`riskcore.rebalance.LendingVenue` / :class:`~riskcore.rebalance.PerpVenue`) with how each maps back to
the configured venue and market (:class:`PlannedVenue`). Which actions the keeper may take on a venue is what
its connector declares (:attr:`connectors.base.Capabilities.actions`): the executor refuses any other.

A venue that declares actions also says how the keeper acts on it: the contract its actions go to and the
market they act on (:meth:`VenueKeeper.target`), each action's calldata (:meth:`VenueKeeper.call`, from an
:class:`ActionSpec`, the action in on-chain terms), and the reads that give its health in a simulated state
(:meth:`VenueKeeper.health_reads`). A venue without actions derives from :class:`NoActions`.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal, Protocol, cast

from aggregator.config import KeeperConfig, VenueConfig
from aggregator.venues.detail import PerpHealthDetail, parse
from aggregator.venues.plugin import ChainLink
from connectors.errors import InvalidInputError
from connectors.registry import capabilities, venue_module
from connectors.types import checksum
from db import LatestVenueHealth
from riskcore.rebalance import LendingVenue, PerpLine, PerpVenue

__all__ = [
    "MAX_UINT256",
    "ActionSpec",
    "ActionTarget",
    "HealthReads",
    "NoActions",
    "PlannedVenue",
    "PlannerPair",
    "Read",
    "StateError",
    "TokenInfo",
    "VenueCall",
    "VenueKeeper",
    "checked_address",
    "format_amount",
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


MAX_UINT256 = 2**256 - 1


def format_amount(amount_raw: int, decimals: int) -> str:
    """``1234500000`` with 6 decimals → ``"1,234.5"``; :data:`MAX_UINT256` → ``"all"``."""
    if amount_raw == MAX_UINT256:
        return "all"
    value = (Decimal(amount_raw).scaleb(-decimals)).normalize()
    return f"{value:,f}"


def checked_address(value: object, what: str) -> str:
    """``value`` checksummed; an :class:`InvalidInputError` naming ``what`` when it is not an address."""
    if not isinstance(value, str):
        raise InvalidInputError(f"{what}: not an address: {value!r}")
    try:
        return checksum(value)
    except InvalidInputError as exc:
        raise InvalidInputError(f"{what}: {exc}") from exc


@dataclass(frozen=True)
class ActionSpec:
    """One rebalance action in on-chain terms.

    ``protocol`` is the venue's configuration ``type`` (whose keeper part builds the call); ``wallet`` owns the
    position (and receives withdrawals); ``token`` is the ERC-20 repaid, supplied or withdrawn; ``target`` the
    contract the action goes to (and the spender of its approval); ``market`` the venue's market, for a venue of
    isolated markets (of the type its keeper part's :meth:`VenueKeeper.target` gives); ``interest_rate_mode``
    the debt repaid where a venue holds several (2 variable, 1 stable).
    """

    kind: Literal["repay", "supply", "withdraw"]
    protocol: str
    venue: str
    wallet: str
    token: str
    symbol: str
    decimals: int
    amount_raw: int
    target: str
    market: object | None = None
    interest_rate_mode: int = 2

    @property
    def what(self) -> str:
        """The amount and token, for descriptions: ``"1,234.5 USDC"``, ``"all WETH"``."""
        return f"{format_amount(self.amount_raw, self.decimals)} {self.symbol}"


@dataclass(frozen=True)
class ActionTarget:
    """Where a venue's actions on one planned venue go: the contract (checksummed), and the market they act on
    (the venue's own type; ``None`` for a venue without isolated markets)."""

    to: str
    market: object | None = None


@dataclass(frozen=True)
class VenueCall:
    """An action's calldata and its readable description."""

    data: bytes
    description: str


@dataclass(frozen=True)
class Read:
    """A read-only call appended after a simulation's calls (e.g. ``getUserAccountData``), evaluated in the
    state those calls leave."""

    to: str
    data: bytes


@dataclass(frozen=True)
class HealthReads:
    """The reads that give a venue's health in a simulated state, and how their answers become that health."""

    reads: tuple[Read, ...]
    health: Callable[[Sequence[bytes]], float | None]
    """From the answers of :attr:`reads`, in order (more may follow): the venue's own health factor, ``None``
    for a position without debt."""


class VenueKeeper(Protocol):
    """A venue's keeper part."""

    lending: bool
    """Its positions secure debt: a plan needs its newest snapshot (a failed read stops the plan), and its
    snapshots fix the block the plan is made at."""

    def planner_venues(self, item: LatestVenueHealth, cfg: KeeperConfig,
                       tokens: dict[str, TokenInfo]) -> list[PlannerPair]:
        """The planner's venues for the wallet's newest snapshot on this venue (noting the tokens it uses)."""
        ...

    def target(self, cfg: VenueConfig, planned: PlannedVenue, link: ChainLink) -> ActionTarget:
        """The contract actions on ``planned`` go to and the market they act on, read from the chain (the
        caller keeps it: what it reads is immutable once deployed). ``ValueError`` on a venue without actions."""
        ...

    def validate(self, action: ActionSpec) -> None:
        """Raise :class:`InvalidInputError` (a ``ValueError``) naming what is wrong with ``action`` for this
        venue; the amount, the kind and the addresses are checked by the caller."""
        ...

    def call(self, action: ActionSpec) -> VenueCall:
        """The calldata that performs the validated ``action`` on its ``target`` (addresses checksummed)."""
        ...

    def spender_name(self, action: ActionSpec) -> str:
        """How an approval names ``action``'s target: ``"approve 150 DAI to <this>"``."""
        ...

    def health_reads(self, planned: PlannedVenue, target: ActionTarget, wallet: str) -> HealthReads:
        """The reads that give ``wallet``'s health on ``planned`` after a simulated plan."""
        ...


class NoActions:
    """The action part of a venue that declares no actions: planned around, never acted on."""

    def target(self, cfg: VenueConfig, planned: PlannedVenue, link: ChainLink) -> ActionTarget:
        raise ValueError(f"{planned.venue}: the keeper cannot execute on {planned.protocol}")

    def validate(self, action: ActionSpec) -> None:
        raise InvalidInputError(f"{action.kind} {action.symbol} on {action.venue}: {action.protocol} declares no "
                                "actions")

    def call(self, action: ActionSpec) -> VenueCall:
        self.validate(action)
        raise AssertionError("unreachable")

    def spender_name(self, action: ActionSpec) -> str:
        return action.venue

    def health_reads(self, planned: PlannedVenue, target: ActionTarget, wallet: str) -> HealthReads:
        raise ValueError(f"{planned.venue}: the keeper cannot execute on {planned.protocol}")


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
