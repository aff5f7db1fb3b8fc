"""What every venue connector declares and offers: capabilities as data, and one way to read.

A venue is one folder under ``connectors/`` with the same shape::

    connectors/<venue>/
        models.py        typed boundary models (pydantic, frozen; raw integers kept, raw payloads kept)
        decode.py        pure decoding of the venue's raw answers (ABI words, JSON payloads)
        deployments.py   where the venue lives (addresses / base URLs), as configuration
        connector.py     the I/O: a class with ``capabilities`` and ``read_accounts``

On-chain connectors also offer ``program(wallets, block)`` — a :data:`~connectors.evm.program.ReadProgram`
that :func:`~connectors.evm.program.run_programs` runs together with the other venues of the chain in
shared Multicall3 round trips at one pinned block. Off-chain connectors (perp venues' HTTP APIs) read
over httpx and stamp each snapshot with the venue's own time.

Each venue has one subclass of the shared conformance suite (``tests/connectors/conformance.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, ClassVar, Literal, Protocol, runtime_checkable

from pydantic import Field

from connectors.evm.program import ReadProgram
from connectors.types import BlockRef, Frozen

__all__ = ["Capabilities", "EndpointLimit", "OffchainConnector", "OnchainConnector", "RateLimit", "VenueKind"]

VenueKind = Literal["lending", "lp", "perp"]


class EndpointLimit(Frozen):
    """A budget of one endpoint (request name) inside a venue's :class:`RateLimit`: at most ``weight_per_minute`` of
    that endpoint's weight per minute, in bursts of at most ``burst`` (default: a whole minute's). The venue-wide
    budget is charged as well: an endpoint limit only narrows it (e.g. per-wallet polls capped so that the market
    read of every block always fits)."""

    weight_per_minute: Annotated[int, Field(gt=0)]
    burst: Annotated[int, Field(gt=0)] | None = None


class RateLimit(Frozen):
    """A venue's documented request budget, declared as data: ``weight_per_minute`` of request weight per
    minute per IP (e.g. 1,200), each request weighing ``request_weights[name]`` when its name is
    listed, else ``weight_per_request``; at most ``burst`` at once (default: a whole minute's weight).

    :class:`connectors.ratelimit.RateBudget` enforces it on the venue's HTTP client (every attempt, retries
    included, is charged its weight before it is sent)."""

    weight_per_minute: Annotated[int, Field(gt=0)]
    weight_per_request: Annotated[int, Field(ge=0)] = 1
    """The weight of a request whose name is not in ``request_weights``."""
    request_weights: dict[str, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)
    """Weight by request name (the name the connector gives its HTTP client, e.g. ``clearinghouseState``)."""
    burst: Annotated[int, Field(gt=0)] | None = None
    """The most weight spent at once (the bucket's size), when the venue limits a shorter window than a minute
    (100 per 10 s is 600 per minute in bursts of at most 100)."""

    endpoints: dict[str, EndpointLimit] = Field(default_factory=dict)
    """Budgets of single endpoints (by request name), each charged besides the venue-wide one."""

    def weight(self, name: str) -> int:
        """What a request called ``name`` costs."""
        return self.request_weights.get(name, self.weight_per_request)

    def per_minute(self, weight_per_minute: int) -> RateLimit:
        """This limit with another budget per minute (a private or local API server), its weights kept; the
        burst is the whole minute's; endpoint limits scale with it."""
        scale = weight_per_minute / self.weight_per_minute
        endpoints = {k: EndpointLimit(weight_per_minute=max(1, int(e.weight_per_minute * scale)))
                     for k, e in self.endpoints.items()}
        return self.model_copy(update={"weight_per_minute": weight_per_minute, "burst": None, "endpoints": endpoints})

    def __hash__(self) -> int:  # the dict of weights would make pydantic's frozen hash fail
        return hash((self.weight_per_minute, self.weight_per_request, self.burst,
                     tuple(sorted(self.request_weights.items())), tuple(sorted(self.endpoints.items()))))


class Capabilities(Frozen):
    """What a connector can do, declared as data on its class (``Connector.capabilities``)."""

    venue_type: str
    """The connector's name in configuration: one of :data:`connectors.registry.VENUES`."""
    kind: VenueKind
    transport: Literal["evm", "http"]
    block_pinned: bool
    """Every read of a snapshot is pinned to one block (on-chain venues)."""
    batch_wallets: bool
    """Many wallets are read in one pass whose request count does not grow with the wallet count."""
    reports_own_health: bool
    """The venue reports its own health / margin figure, which xmargin recomputes and cross-checks."""
    positions: tuple[str, ...]
    """Position sides the venue yields: ``collateral``, ``debt``, ``lp``, ``perp``."""
    rate_limit: RateLimit | None = None
    actions: tuple[Literal["repay", "supply", "withdraw"], ...] = ()
    """What a keeper may do on the venue for a wallet (``repay`` debt, ``supply`` / ``withdraw`` collateral); a
    venue without actions is planned around, never acted on."""


@runtime_checkable
class OnchainConnector(Protocol):
    """An EVM venue: reads many wallets at one block through Multicall3."""

    capabilities: ClassVar[Capabilities]

    def program(self, wallets: Sequence[str], block: BlockRef) -> ReadProgram[Any]: ...

    def read_accounts(self, wallets: Sequence[str], block: BlockRef | int | None = None) -> Any: ...


@runtime_checkable
class OffchainConnector(Protocol):
    """An HTTP venue: reads many wallets; its snapshot carries the venue's own timestamp."""

    capabilities: ClassVar[Capabilities]

    def read_accounts(self, wallets: Sequence[str]) -> Any: ...
