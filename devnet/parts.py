"""What a venue adds to the devnet: the interface of its part, ``PART`` in ``devnet/venues/<venue>.py``.

An on-chain venue's part is a :class:`DevnetPart`: the npm packages and compile inputs the install needs for it,
its first-run deployer (onto the chain that already holds the tokens and the price feeds), how it follows a price
move, how it opens the demo wallets' positions, its files in the deployment cache's key, and the ``[[venues]]``
tables that point xmargin at it. Exactly one on-chain part also brings the chain's tokens, their first prices and
the oracle the feeds are wired into (its :class:`TokenMarket`).

An off-chain venue's part is an :class:`ApiPart`: its routes and documents in the local venue API
(:mod:`devnet.perp_api`), which serves every such part on one port, and its ``[[venues]]`` tables.

The generic modules (install, deploy, cache, seed, feeds, chain, the local API) iterate over the parts
(:mod:`devnet.venues`) and never name a venue.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, Protocol

from devnet.models import DevnetInfo

__all__ = [
    "ApiPart",
    "CompileJob",
    "DeployStage",
    "DevnetPart",
    "PerpPosition",
    "StreamingVenueApi",
    "TokenMarket",
    "VenueApi",
    "VenueTables",
    "dec",
]

VenueTables = Callable[[DevnetInfo, str], list[dict[str, object]]]
"""A part's ``[[venues]]`` tables for a running devnet, on the chain named by the second argument (none when the
devnet lacks the venue)."""


@dataclass(frozen=True)
class DeployStage:
    """A progress stage (:mod:`devnet.progress`): its stable key and its text."""

    key: str
    text: str


@dataclass(frozen=True)
class TokenMarket:
    """The deployment that brings the devnet's tokens (one on-chain part has it).

    ``deploy(rpc_url)`` runs first on a fresh node and returns ``(contracts, tokens)``; ``price(rpc_url,
    contracts, token)`` is a token's first USD price (8 decimals), which its feed starts at; ``use_feeds(rpc_url,
    contracts, tokens, feeds)`` wires the market's oracle to the feeds (by symbol); ``mint(info, wallet, symbol,
    amount_raw)`` gives a wallet any amount of a token in one transaction; ``seeded(info)`` tells whether the demo
    positions are open.
    """

    stage: DeployStage
    deploy: Callable[[str], tuple[dict[str, str], dict[str, str]]]
    price: Callable[[str, Mapping[str, str], str], int]
    use_feeds: Callable[[str, Mapping[str, str], Mapping[str, str], Mapping[str, str]], None]
    mint: Callable[[DevnetInfo, str, str, int], None]
    seeded: Callable[[DevnetInfo], bool]


@dataclass(frozen=True)
class CompileJob:
    """Contracts ``compile.js`` builds with solc-js from one source tree: ``contracts`` maps each contract's name to
    its source file under ``root``; ``settings`` are solc's standard-JSON settings (optimizer, EVM version, via-IR)
    they are built with. Each lands in ``vendor/build/<name>.json``."""

    root: Path
    contracts: Mapping[str, str]
    settings: Mapping[str, Any]

    def spec(self, name: str) -> dict[str, Any]:
        """The job as ``compile.js`` reads it (one entry of its jobs file)."""
        return {"name": name, "root": str(self.root), "contracts": dict(self.contracts),
                "settings": _plain(self.settings)}


def _plain(value: Any) -> Any:
    """``value`` with every mapping a ``dict`` (for ``json.dumps``; key order kept)."""
    return {k: _plain(v) for k, v in value.items()} if isinstance(value, Mapping) else value


@dataclass(frozen=True)
class DevnetPart:
    """An on-chain venue on the devnet.

    ``deploy(info, liquidity)`` puts the venue on ``info``'s chain (tokens, feeds and the parts before it
    already there), its own liquidity owned by ``liquidity``, and returns ``(contracts, markets)`` to merge into
    the devnet's info, every key prefixed with the venue. ``present(info)``: whether ``info``'s devnet has the
    venue. ``sync_price(info, symbol, answers)`` brings the venue's prices of ``symbol`` to the feeds' answers
    (``answers``, raw 8-decimal, override the feeds'). ``seed(info, label, address)`` opens the venue's demo
    positions of the seed wallet ``label`` (:data:`devnet.seed.SEED_LABELS`).
    """

    venue: str
    title: str
    """The venue in words (``"… v3"``), for progress lines."""
    short: str
    """The venue's short name, for the lists in progress lines."""
    module: str
    """The part's module (``devnet.venues.<venue>``): its file is in the deployment cache's key."""
    present: Callable[[DevnetInfo], bool]
    venue_tables: VenueTables
    npm_packages: tuple[str, ...] = ()
    """The npm packages (``package.json``) the venue's deployment uses."""
    compile_jobs: Mapping[str, CompileJob] = field(default_factory=dict)
    """What the venue compiles from source, by job name (``compile.js`` holds no job of its own)."""
    key_files: tuple[Path, ...] = ()
    """Files besides its module that its deployment reads (a deploy tool's configuration): their content is in the
    deployment cache's key."""
    npm_artifacts: Mapping[str, str] = field(default_factory=dict)
    """Contracts used as their npm packages publish them: name -> path under ``node_modules``."""
    market: TokenMarket | None = None
    deploy: Callable[[DevnetInfo, str], tuple[dict[str, str], dict[str, str]]] | None = None
    sync_price: Callable[[DevnetInfo, str, Mapping[str, int] | None], object] | None = None
    seed: Callable[[DevnetInfo, str, str], None] | None = None
    banner: Callable[[DevnetInfo], str] | None = None
    """A line's worth about the venue on a running devnet (the demo prints it)."""
    alias: str | None = None
    """The part's module is also ``devnet.<alias>`` (its helpers' short name)."""
    exports: tuple[str, ...] = ()
    """Names of the part's module that :mod:`devnet` re-exports."""

    kind: Literal["chain"] = "chain"

    @property
    def compiled(self) -> tuple[str, ...]:
        """The contracts its compile jobs build (``vendor/build/<name>.json``)."""
        return tuple(name for job in self.compile_jobs.values() for name in job.contracts)


def dec(value: float | int | str | Decimal) -> Decimal:
    """``value`` as a Decimal (a float through its shortest text)."""
    return value if isinstance(value, Decimal) else Decimal(str(value))


@dataclass(frozen=True)
class PerpPosition:
    """A seeded perp position: ``size`` signed (base units), opened at ``entry_px`` (USD).

    ``leverage`` and ``margin`` (``"cross"`` or ``"isolated"``; an isolated position holds
    ``isolated_margin_usd``) where the venue has them; ``symbol`` is the coin (``ETH``), which a venue may name
    its market after (``ETH-USD``).
    """

    symbol: str
    size: Decimal | float | int | str
    entry_px: Decimal | float | int | str
    leverage: int = 10
    margin: Literal["cross", "isolated"] = "cross"
    isolated_margin_usd: Decimal | float | int | str = 0


class VenueApi(Protocol):
    """One off-chain venue's state and routes in the local venue API. The server holds its lock around every
    call."""

    def add_account(self, account: str, usdc: Decimal, positions: Sequence[PerpPosition]) -> None:
        """Seed (or replace) an account (``ValueError`` for one the venue cannot have)."""
        ...

    def set_mark(self, coin: str, price: Decimal) -> bool:
        """Move ``coin``'s prices; whether the venue has a market in it."""
        ...

    def marks(self) -> dict[str, Decimal]:
        """Each coin's price now (what :meth:`set_mark` moves), by coin (``ETH``)."""
        ...

    def route(self, method: str, route: str, body: bytes) -> tuple[int, Any] | None:
        """The answer ``(status, JSON body)`` to a request on one of the venue's routes; None for another route."""
        ...


class StreamingVenueApi(VenueApi, Protocol):
    """A venue whose part also serves its WebSocket channels (on the local API's WebSocket port, at ``ws_path``), in
    the venue's documented message shapes. ``conn`` is one connection's own state (message counters, ids), kept by
    the server; subscription keys are ``(channel, account)``; the server holds its lock around every call.

    ``ws_max_accounts``: the most distinct accounts subscribed at once across connections (the venue's per-IP limit),
    None when unlimited.
    """

    ws_path: str
    ws_max_accounts: int | None

    def ws_open(self, conn: dict[str, Any]) -> list[Any]:
        """Messages sent when a connection opens."""
        ...

    def ws_request(self, conn: dict[str, Any], message: Any) -> tuple[list[Any], list[tuple[str, str]]]:
        """The replies to one client message, and the subscriptions it adds."""
        ...

    def ws_error(self, conn: dict[str, Any], text: str) -> Any:
        """An error message in the venue's shape."""
        ...

    def ws_push(self, conn: dict[str, Any], key: tuple[str, str], previous: Any) -> tuple[Any, Any | None]:
        """A subscription's state now: ``(fingerprint, message)``; the message is None when nothing changed since
        ``previous`` (the fingerprint last pushed; None before the first push)."""
        ...


@dataclass(frozen=True)
class ApiPart:
    """An off-chain venue on the devnet: its routes in the local venue API.

    ``new()`` is the venue's fresh state; ``seed(api)`` adds its demo accounts to it.
    """

    venue: str
    title: str
    module: str
    names: tuple[str, ...]
    """The names :meth:`devnet.perp_api.PerpApi.add_account` takes for the venue."""
    new: Callable[[], VenueApi]
    seed: Callable[[VenueApi], None]
    venue_tables: VenueTables
    exports: tuple[str, ...] = ()
    """Names of the part's module that :mod:`devnet.perp_api` re-exports."""

    kind: Literal["api"] = "api"
