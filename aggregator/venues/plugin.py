"""The interface every venue's plugin implements, and what it hands the rest of the product.

A venue's plugin is ``PLUGIN`` in ``aggregator/venues/<venue>/__init__.py``; the product finds it through
:func:`aggregator.venues.plugin_of` and calls only what :class:`VenuePlugin` declares: its configuration model
(one member of the ``[[venues]]`` union, discriminated by ``type``), how it opens a configured venue (its
connector, read over the chain's shared Multicall3 program or over HTTP) and how a snapshot becomes per-wallet
health by the venue's own rule. What the venue *is* (kind, transport, capabilities, rate limit) is read from its
connector's declared :class:`~connectors.base.Capabilities`, never repeated here.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import httpx

from aggregator.config import ChainConfig, OffchainVenueConfig, VenueConfig
from aggregator.views import Kind, VenueReading
from connectors.base import Capabilities, OnchainConnector, RateLimit
from connectors.evm.logs import LogWatch
from connectors.evm.multicall import Multicall
from connectors.evm.program import ReadProgram
from connectors.evm.rpc import RpcClient
from connectors.ratelimit import RateBudget, shared_budget
from connectors.registry import capabilities
from connectors.transport import redact_url
from connectors.types import BlockRef

if TYPE_CHECKING:
    from aggregator.venues.live import LivePerpVenue

__all__ = ["ChainLink", "Incremental", "MarketUpdate", "OffchainVenue", "OnchainVenue", "PluginBase", "VenuePlugin"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChainLink:
    """What an on-chain venue reads through: its chain's configuration, RPC client and Multicall3."""

    chain: ChainConfig
    rpc: RpcClient
    multicall: Multicall


@dataclass(frozen=True)
class Incremental:
    """How an on-chain venue's health is recomputed locally, without a per-wallet read (issue 14).

    A block's read splits in two programs that run together in ONE
    :func:`connectors.evm.program.run_programs` (the same multicall rounds, the same pinned block):

    * the *market* program — prices, indexes, totals, configurations: per market / reserve / pool, its size
      independent of the wallet count (``cached_accounts`` only says which pools and ranges matter where the
      venue's market state is per pool and range of the positions held);
    * the *account* program — the raw per-wallet state of the wallets that must be re-read (those an event
      touched): scaled balances and configuration, shares and collateral, NFTs' liquidity and fee growth.

    ``combine(market_state, accounts)`` (pure) builds the snapshot the full read gives — the same type, passed
    to the venue's own ``evaluate`` — from the block's market state and account states read at that block or at
    any earlier one; ``wallet_of(account)`` names an account state's wallet.
    """

    market_program: Callable[[BlockRef, Sequence[Any]], ReadProgram[Any]]
    """``(block, cached_accounts)`` → the block's market state."""
    account_program: Callable[[Sequence[str], BlockRef, Any | None], ReadProgram[Sequence[Any]]]
    """``(wallets, block, market)`` → one account state per wallet, in order; ``market`` is a market state
    already known (its static parts, such as token addresses, save a round), or None."""
    combine: Callable[[Any, Sequence[Any]], Any]
    """``(market_state, accounts)`` → the venue's snapshot at the market state's block."""
    wallet_of: Callable[[Any], str]
    """The wallet an account state belongs to."""
    market_update: Callable[[BlockRef, Sequence[Any], MarketUpdate], ReadProgram[Any]] | None = None
    """``(block, cached_accounts, update)`` → the block's market state, reading again only what the block's logs
    may have changed since the market state of the block before (``update``): for a venue whose market state
    grows with what the wallets hold (a pool venue's ticks and ranges). None: ``market_program`` every block."""
    steady: Callable[[Any, Any, Mapping[str, float], Mapping[str, float], float], Callable[[Any], bool]] | None = None
    """``(market_then, market_now, prices_then, prices_now, drift)`` → a test of an account state: True only when
    every figure the venue's rule gives the account at ``market_now`` (valued with ``prices_now``) — its positions'
    amounts and values, collateral, debt, health factor, liquidation threshold — is within ``drift`` (relative)
    of what it gave at ``market_then`` (with ``prices_then``), its positions and flags the same: nothing the
    account depends on changed but what accrues (an index, accrued totals) within the drift, integer roundings
    included. The block path does not recompute such an account's wallet at a block that writes nothing of it
    (:class:`aggregator.blocksync.BlockSync`). None: every wallet is recomputed every block."""


@dataclass(frozen=True)
class MarketUpdate:
    """What a venue's ``market_update`` starts from: its cached market state (carried from only when it is of the
    block just before, which the venue checks), and what the block's logs touched (the venue's ``touched``
    effects, in log order) at the contracts of ``watched`` (the watch that read them; state of any other contract
    is not known to be unchanged)."""

    previous: Any
    touched: tuple[object, ...]
    watched: frozenset[str]


@dataclass(frozen=True)
class OnchainVenue:
    """A configured on-chain venue: its connector and how its snapshot becomes a reading."""

    config: VenueConfig
    connector: OnchainConnector
    evaluate: Callable[[Any, Mapping[str, float]], VenueReading]
    """``(snapshot, usd_prices)``: USD prices by token address, from the price sources of the same block."""
    price_source: bool = False
    """Its readings' prices feed the book the other venues of the chain are valued with."""
    incremental: Incremental | None = None
    """How its health is recomputed from cached account state with a block's market state (None: re-read)."""
    summarize: Callable[[Any, Mapping[str, float]], VenueReading] | None = None
    """``evaluate`` without the venue's detail: every field as ``evaluate`` gives it but ``extra``, of which each
    health and position keeps only what is cheap and shown with the health (a recomputed health's provenance),
    leaving out the costly part (largest withdrawals, Greeks, per-position parameters). The block path computes
    every wallet's health with it, and ``evaluate`` again for the wallets it writes. None: ``evaluate`` for every
    wallet."""


@dataclass(frozen=True)
class OffchainVenue:
    """A configured off-chain venue: how to read wallets and evaluate the snapshot against a chain block."""

    config: VenueConfig
    read: Callable[[Sequence[str]], Any]
    evaluate: Callable[[Any, BlockRef], VenueReading]
    close: Callable[[], None]
    budget: RateBudget | None = None
    """The rate budget its reads spend (shared by every venue of this type at the same host in the process)."""


@runtime_checkable
class VenuePlugin(Protocol):
    """One venue, as the product sees it."""

    venue_type: str
    """The configuration ``type`` (the venue's module name in every layer)."""
    config_model: type[VenueConfig]
    """The venue's ``[[venues]]`` table, a pydantic model whose ``type`` is ``Literal[venue_type]``."""

    @property
    def capabilities(self) -> Capabilities:
        """What the venue's connector declares (kind, transport, rate limit, keeper actions…)."""
        ...

    @property
    def onchain(self) -> bool:
        """Read at a chain block through Multicall3 (else over HTTP, stamped with the venue's own time)."""
        ...

    @property
    def kind(self) -> Kind:
        """``lending``, ``lp`` or ``perp``."""
        ...

    def open_onchain(self, cfg: VenueConfig, link: ChainLink) -> OnchainVenue:
        """Build the on-chain venue ``cfg`` over its chain's client (on-chain venues only)."""
        ...

    def open_offchain(self, cfg: VenueConfig) -> OffchainVenue:
        """Build the off-chain venue ``cfg`` (off-chain venues only)."""
        ...

    def env_venue(self, chain: str) -> dict[str, object] | None:
        """The venue's ``[[venues]]`` table configured by the environment alone (no file) on ``chain``, when
        its variables are set."""
        ...

    def log_watch(self, venue: OnchainVenue, snapshot: Any) -> LogWatch | None:
        """The events that change ``venue``'s wallets and market, at the contracts ``snapshot`` (the venue's
        read at a block) names, for per-block dirty sets (:mod:`aggregator.dirty`); ``None``: the venue declares
        none (every wallet is re-read every block)."""
        ...

    def open_live(self, cfg: VenueConfig, **options: Any) -> LivePerpVenue:
        """The perp venue ``cfg`` kept live inside its rate limit, for the block-driven sync (perp venues only)."""
        ...


class PluginBase:
    """What every plugin derives from its connector's capabilities; a venue overrides the ``open_*`` it has."""

    venue_type: ClassVar[str]
    config_model: ClassVar[type[VenueConfig]]

    @property
    def capabilities(self) -> Capabilities:
        return capabilities(self.venue_type)

    @property
    def onchain(self) -> bool:
        return self.capabilities.transport == "evm"

    @property
    def kind(self) -> Kind:
        kind: Kind = self.capabilities.kind
        return kind

    def open_onchain(self, cfg: VenueConfig, link: ChainLink) -> OnchainVenue:
        raise ValueError(f"venue {cfg.name!r}: type {cfg.type!r} has no on-chain connector")

    def open_offchain(self, cfg: VenueConfig) -> OffchainVenue:
        raise ValueError(f"venue {cfg.name!r}: type {cfg.type!r} has no off-chain connector")

    def env_venue(self, chain: str) -> dict[str, object] | None:
        return None

    def log_watch(self, venue: OnchainVenue, snapshot: Any) -> LogWatch | None:
        return None

    def open_live(self, cfg: VenueConfig, **options: Any) -> LivePerpVenue:
        """The perp venue ``cfg`` kept live inside its rate limit (:class:`~aggregator.venues.live.LivePerpVenue`:
        marks once per block, an account stream where ``ws_url`` is set, budgeted polls, local recompute); its
        ``options`` (``stale_after_s``, ``repoll_after_s``, ``clock``) go to it, but ``budget`` (a
        :class:`~connectors.ratelimit.RateBudget` instead of the shared one) and ``transport_options`` (the HTTP
        client's :class:`~connectors.transport.TransportOptions`), which go to its connector. Perp venues only."""
        raise ValueError(f"venue {cfg.name!r}: type {cfg.type!r} has no live perp reading")

    def rate_budget(self, cfg: OffchainVenueConfig, base_url: str) -> RateBudget | None:
        """The budget an off-chain venue's client spends: the connector's declared rate limit, or the configured
        ``rate_limit_per_minute`` with the venue's own request weights; one per venue type and host in the
        process (the venues limit per IP), so it holds across connectors and syncs. A configured budget above
        the published one for a host that is not this machine is logged as a warning."""
        declared = self.capabilities.rate_limit
        configured = cfg.rate_limit_per_minute
        if configured is None:
            limit = declared
        elif declared is None:
            limit = RateLimit(weight_per_minute=configured)
        else:
            limit = declared.per_minute(configured)
            if configured > declared.weight_per_minute and not _loopback(base_url):
                log.warning("venue %r: rate_limit_per_minute = %d is above the %d weight/min %s publishes (%s)",
                            cfg.name, configured, declared.weight_per_minute, self.venue_type, redact_url(base_url))
        return None if limit is None else shared_budget(self.venue_type, base_url, limit)

    def config(self, cfg: VenueConfig) -> Any:
        """``cfg`` as this venue's own configuration model (a clear error when it is another venue's)."""
        if not isinstance(cfg, self.config_model):
            raise TypeError(f"venue {cfg.name!r}: a {type(cfg).__name__} is not a {self.venue_type} configuration")
        return cfg


def _loopback(url: str) -> bool:
    """Whether ``url``'s host is this machine (a local API server, such as the devnet's)."""
    try:
        host = httpx.URL(url).host
    except (httpx.InvalidURL, TypeError, ValueError):
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
