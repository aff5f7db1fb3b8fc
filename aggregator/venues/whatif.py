"""What a venue contributes to the what-if (``aggregator/venues/<venue>/whatif.py``'s ``WHATIF``), and what every
venue's part shares.

The engine (:mod:`aggregator.whatif`) knows no venue: for each of the wallet's venues it asks the venue's part
(:class:`WhatIfPart`, found by :func:`venue_whatif`) to open the newest stored snapshot as a
:class:`VenueWhatIf` — the venue's state for the what-if — then moves prices on it, applies the wallet's changes
the part accepts (:attr:`WhatIfPart.actions`: ``supply | withdraw | borrow | repay`` on a lending venue, none on a
venue that only takes prices), and reads its figures and its snapshot before and after. The part also says what
the command line and the API show of it (examples, the meaning of an action or a market there, its figures in
the API's schema); the generic views compose those texts in registry order.

A venue of a type that is not registered is revalued at the what-if prices and takes no change
(:data:`PRICES_ONLY`).
"""

from __future__ import annotations

import dataclasses
import importlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from functools import cache
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, TypeVar, cast

import numpy as np
from pydantic import ValidationError

from aggregator.venues.detail import Detail, PerpHealthDetail, parse
from connectors.registry import VENUES, venue_module
from db.rows import LatestVenueHealth, PositionRow, PositionSide, SnapshotRow
from riskcore.assets import DEFAULT_ASSET_MAP, AssetKind
from riskcore.units import UINT256_MAX

if TYPE_CHECKING:
    from db.store import Store
    from riskcore.perp import PerpHealth

__all__ = [
    "ACTIONS",
    "PERP_STATE_FIELDS",
    "PRICES_ONLY",
    "Action",
    "Change",
    "PartBase",
    "PerpWhatIf",
    "PricesOnly",
    "VenueWhatIf",
    "WhatIfContext",
    "WhatIfError",
    "WhatIfPart",
    "change_example",
    "changing_venues",
    "finite",
    "fmt",
    "position_doc",
    "price_key",
    "price_raw",
    "refused_change",
    "replay_detail",
    "resolve_symbol",
    "stamp_ok",
    "to_raw",
    "venue_whatif",
    "whatif_parts",
]

Action = Literal["supply", "withdraw", "borrow", "repay"]
ACTIONS: tuple[Action, ...] = ("supply", "repay", "withdraw", "borrow")
"""The actions, in the order the command line applies them (those that add safety first)."""


class WhatIfError(ValueError):
    """Input that cannot be applied to the wallet; the message says why in one line."""


@dataclass(frozen=True, slots=True)
class Change:
    """One action of the wallet: ``amount`` whole tokens of ``asset`` on ``venue`` (``market``: which of the
    venue's markets, on a venue of several)."""

    action: Action
    venue: str
    asset: str
    amount: Decimal
    market: str | None = None

    def __str__(self) -> str:
        where = f"{self.venue}@{self.market}" if self.market else self.venue
        return f"{self.action} {self.amount:f} {self.asset} on {where}"


def price_key(symbol: str) -> str:
    """What a price moves: the underlying for the underlying itself, its 1:1 wrappers and its perp markets
    (``WETH``, ``ETH``, ``ETH-USD`` → ``ETH``), else the symbol itself."""
    base = symbol.strip()
    for suffix in ("-USD", "-PERP", "-USDC"):
        if base.upper().endswith(suffix):
            base = base[: -len(suffix)]
            break
    try:
        spec = DEFAULT_ASSET_MAP[base]
    except KeyError:
        return base.upper()
    if spec.kind is AssetKind.NATIVE and spec.ratio == 1.0:
        return spec.underlying.upper()
    return spec.symbol.upper()


# --- what the venues share ----------------------------------------------------------------------------------
class WhatIfContext:
    """What the venues share: the store (market params, the run's prices) and the snapshots' price rows."""

    def __init__(self, store: Store, latest: Sequence[LatestVenueHealth]) -> None:
        self.store = store
        self._markets: dict[str, dict[str, dict[str, Any]]] = {}
        self._raw: dict[tuple[int, str], tuple[int, int]] = {}
        for item in latest:
            for p in item.prices:
                if not p.flags and p.price_raw > 0:
                    self._raw.setdefault((item.snapshot.block_number, p.asset.address.lower()),
                                         (p.price_raw, p.decimals))
        self._loaded: set[tuple[int, int]] = set()

    def markets(self, venue: str) -> dict[str, dict[str, Any]]:
        """The venue's stored market state (of its newest sync), by market key."""
        if venue not in self._markets:
            self._markets[venue] = self.store.market_params(venue)
        return self._markets[venue]

    def usd_raw(self, chain_id: int, block: int, address: str) -> tuple[int, int] | None:
        """A token's USD price at ``block`` from the price sources the sync stored: (raw, decimals)."""
        key = (block, address.lower())
        if key not in self._raw and (chain_id, block) not in self._loaded:
            self._loaded.add((chain_id, block))
            for p in self.store.latest_prices(chain_id):
                if p.block_number == block and not p.flags and p.price_raw > 0:
                    self._raw.setdefault((block, p.asset.address.lower()), (p.price_raw, p.decimals))
        return self._raw.get(key)


def stamp_ok(params: Mapping[str, Any], snap: SnapshotRow) -> bool:
    """Whether a venue's stored market state is of the snapshot's own block."""
    return params.get("block") == snap.block_number and params.get("block_hash", snap.block_hash) == snap.block_hash


def to_raw(amount: Decimal, decimals: int, what: str) -> int:
    """``amount`` whole tokens in the token's units (:class:`WhatIfError` when it has more decimals, or is out
    of range)."""
    scaled = amount.scaleb(decimals)
    if scaled != scaled.to_integral_value():
        raise WhatIfError(f"{what}: {amount:f} has more than the token's {decimals} decimals")
    raw = int(scaled)
    if raw <= 0 or raw > UINT256_MAX:
        raise WhatIfError(f"{what}: {amount:f} is out of range")
    return raw


def price_raw(usd: Decimal, decimals: int, what: str) -> int:
    """A USD price at an oracle's ``decimals``, rounded half-even (:class:`WhatIfError` when it rounds to 0)."""
    raw = int(usd.scaleb(decimals).to_integral_value(ROUND_HALF_EVEN))
    if raw <= 0:
        raise WhatIfError(f"price of {what}: {usd:f} rounds to 0 at the oracle's {decimals} decimals")
    return raw


_D = TypeVar("_D", bound=Detail)


def replay_detail(model: type[_D], raw: Mapping[str, Any], venue: str, snap: SnapshotRow) -> _D:
    """A stored detail (``extra``) as the venue's typed model; a field the replay needs and the snapshot lacks is
    a :class:`WhatIfError` naming it (the snapshot predates it)."""
    try:
        return parse(model, raw)
    except ValidationError as exc:
        missing = [str(e["loc"][-1]) for e in exc.errors() if e["type"] == "missing" and e["loc"]]
        if not missing:
            raise
    raise WhatIfError(f"{venue}: the stored snapshot (block {snap.block_number}) lacks the detail a what-if "
                      f"replays ({missing[0]}): it predates it — run `xmargin sync --once` and try again")


def fmt(amount: Decimal) -> str:
    """An exact decimal without exponent or trailing zeros."""
    return f"{amount.normalize():f}"


def resolve_symbol(symbol: str, known: Iterable[str]) -> str | None:
    """``symbol`` among ``known``: itself, else the one name equal to it case-insensitively (None: none or
    several)."""
    names = list(dict.fromkeys(known))
    if symbol in names:
        return symbol
    folded = [n for n in names if n.casefold() == symbol.casefold()]
    return folded[0] if len(folded) == 1 else None


def finite(x: float | None) -> float | None:
    """``x`` as a float, ``None`` when it is not finite."""
    return None if x is None or not math.isfinite(x) else float(x)


def position_doc(p: PositionRow, market: str | None = None) -> dict[str, Any]:
    """A position as the what-if document shows it (``market``: how the venue names the position's market)."""
    return {"asset": p.asset.symbol, "asset_address": p.asset.address, "side": str(p.side), "amount": p.amount,
            "amount_raw": str(p.amount_raw), "price_usd": p.price_usd, "value_usd": p.value_usd,
            "is_collateral": p.is_collateral, "market": market or p.market_key}


# --- a venue's state for the what-if --------------------------------------------------------------------------
class VenueWhatIf(Protocol):
    """One venue's newest snapshot, opened for a what-if: prices and changes applied to it, its figures after."""

    kind: str
    """``lending``, ``lp`` or ``perp`` (when the venue's row does not say)."""
    moved: dict[str, Decimal]
    """The prices (price key → USD) that moved something of this venue."""
    notes: list[str]
    """What the reader should know about this venue's figures."""

    def symbols(self) -> set[str]:
        """The tokens (and instruments) this venue prices, for validating price symbols."""
        ...

    def set_prices(self, prices: Mapping[str, Decimal]) -> None:
        """Apply the what-if prices (price key → USD)."""
        ...

    def apply(self, change: Change) -> tuple[str | None, dict[str, Any]]:
        """Apply one change; (the protocol's refusal or None, what was applied: ``asset``, ``market``,
        ``market_id``, ``amount_raw``)."""
        ...

    def state(self) -> dict[str, Any]:
        """The venue's health figures and positions."""
        ...

    def snapshot(self) -> SnapshotRow:
        """The snapshot the risk engine reads for the state after."""
        ...

    def matches_sync(self) -> bool | None:
        """Whether replaying the stored snapshot gives the sync's own health (None: nothing to compare)."""
        ...


class PricesOnly:
    """A venue revalued at the what-if prices, position by position, that takes no change: the base every venue's
    state derives from."""

    kind = "lending"

    def __init__(self, item: LatestVenueHealth, ctx: WhatIfContext) -> None:
        self.item = item
        self.snap = item.snapshot
        self.venue = item.venue
        self.ctx = ctx
        self.prices: dict[str, Decimal] = {}
        """Every what-if price (price key → USD): a market opened by a later change is priced too."""
        self.moved: dict[str, Decimal] = {}
        self.notes: list[str] = []

    def symbols(self) -> set[str]:
        return {p.asset.symbol for p in self.snap.positions}

    def set_prices(self, prices: Mapping[str, Decimal]) -> None:
        self.prices = dict(prices)
        for p in self.snap.positions:
            key = price_key(p.asset.symbol)
            if key in prices:
                self.moved[key] = prices[key]

    def apply(self, change: Change) -> tuple[str | None, dict[str, Any]]:
        raise WhatIfError(refused_change(change, ()))

    def state(self) -> dict[str, Any]:
        h = self.snap.health
        return {
            "health_factor": finite(h.health_factor) if h else None,
            "health_factor_raw": str(h.health_factor_raw) if h and h.health_factor_raw is not None else None,
            "healthy": h is None or h.health_factor is None or h.health_factor >= 1,
            "collateral_usd": h.collateral_usd if h else 0.0,
            "debt_usd": h.debt_usd if h else 0.0,
            "positions": [position_doc(p) for p in self._positions()],
        }

    def _repriced(self, p: PositionRow) -> PositionRow:
        key = price_key(p.asset.symbol)
        if key in self.moved and p.price_usd is not None:
            price = float(self.moved[key])
            return dataclasses.replace(p, price_usd=price, value_usd=p.amount * price)
        return p

    def _positions(self) -> tuple[PositionRow, ...]:
        return tuple(self._repriced(p) for p in self.snap.positions)

    def snapshot(self) -> SnapshotRow:
        return dataclasses.replace(self.snap, positions=self._positions())

    def matches_sync(self) -> bool | None:
        return None


class PerpWhatIf(PricesOnly):
    """What every perp venue's state shares: its margin rule rerun at the what-if marks (the venue's part
    implements :meth:`_health` with its own rule, from the positions' stored detail)."""

    kind = "perp"

    def __init__(self, item: LatestVenueHealth, ctx: WhatIfContext) -> None:
        super().__init__(item, ctx)
        assert self.snap.health is not None
        self.perps = [p for p in self.snap.positions if p.side is PositionSide.PERP]
        self.stored_marks = self._read_detail()
        """Each perp position's mark in the snapshot, in :attr:`perps`' order."""

    def _read_detail(self) -> list[float]:
        """Read the venue's stored detail (raising :class:`WhatIfError` for what the replay lacks); each perp
        position's stored mark."""
        raise NotImplementedError

    def _health(self, marks: np.ndarray[Any, np.dtype[np.float64]]) -> PerpHealth:
        """The venue's margin rule at ``marks`` (one per position of :attr:`perps`)."""
        raise NotImplementedError

    def _marks(self) -> list[float]:
        return [float(self.moved[price_key(p.asset.symbol)]) if price_key(p.asset.symbol) in self.moved
                else mark for p, mark in zip(self.perps, self.stored_marks, strict=True)]

    def _figures(self) -> dict[str, Any]:
        health = self._health(np.array(self._marks(), dtype=np.float64))
        equity = float(np.sum(health.equity_usd))
        maintenance = float(np.sum(health.maintenance_usd))
        healths = [float(x) for x in health.health if math.isfinite(x)]
        return {
            "health_factor": min(healths) if healths and maintenance > 0 else None,
            "health_factor_raw": None,
            "healthy": not health.any_liquidatable,
            "collateral_usd": equity, "debt_usd": 0.0,
            "equity_usd": equity, "maintenance_margin_usd": maintenance,
            "liquidation_price": {label: finite(float(px))
                                  for label, px in zip(health.position_labels, health.liquidation_px, strict=True)},
        }

    def _rows(self) -> list[PositionRow]:
        return [dataclasses.replace(p, price_usd=mark, value_usd=p.amount * mark)
                for p, mark in zip(self.perps, self._marks(), strict=True)]

    def state(self) -> dict[str, Any]:
        return {**self._figures(), "positions": [position_doc(p) for p in self._rows()]}

    def snapshot(self) -> SnapshotRow:
        f = self._figures()
        assert self.snap.health is not None
        extra = {**self.snap.health.extra, "equity_usd": f["equity_usd"],
                 "maintenance_margin_usd": f["maintenance_margin_usd"], "liquidation_price": f["liquidation_price"]}
        health = dataclasses.replace(self.snap.health, health_factor=f["health_factor"],
                                     collateral_usd=f["equity_usd"], flags=(), extra=extra)
        others = tuple(p for p in self.snap.positions if p.side is not PositionSide.PERP)
        return dataclasses.replace(self.snap, positions=(*self._rows(), *others), health=health)

    def matches_sync(self) -> bool | None:
        h = self.snap.health
        if h is None:
            return None
        f = self._figures()
        stored = parse(PerpHealthDetail, h.extra)
        maintenance = stored.maintenance_margin_usd if "maintenance_margin_usd" in stored.model_fields_set else None
        return bool(f["health_factor"] == finite(h.health_factor) and f["equity_usd"] == stored.equity_usd
                    and f["maintenance_margin_usd"] == maintenance)


# --- what a venue contributes -----------------------------------------------------------------------------------
class WhatIfPart(Protocol):
    """A venue's what-if part: how it opens its snapshot, which changes it takes and what the views show of it."""

    actions: ClassVar[tuple[Action, ...]]
    """The changes the venue takes (empty: it only takes prices)."""
    cli_examples: ClassVar[Mapping[Action, str]]
    """``ASSET[@MARKET]=AMOUNT`` examples the command line's help shows for some actions (the first venue in
    registry order with one for an action gives that action's example)."""
    cli_market_help: ClassVar[str | None]
    """What ``@MARKET`` picks on this venue (``None``: it has no markets to choose)."""
    api_action_doc: ClassVar[str | None]
    """What each action does on this venue, for the API's schema."""
    api_market_doc: ClassVar[str | None]
    """What a change's ``market`` names on this venue, for the API's schema (``None``: no markets)."""
    api_engine_doc: ClassVar[str | None]
    """How the venue's health is recomputed, for the route's description (perp venues share theirs)."""
    api_health_raw_doc: ClassVar[str | None]
    """What ``health_factor_raw`` is on this venue (``None``: null there)."""
    api_position_market_doc: ClassVar[str | None]
    """What a position's ``market`` is on this venue (``None``: the market, as the snapshot stores it)."""
    api_state_fields: ClassVar[Mapping[str, tuple[Any, Any]]]
    """The venue's own figures in the API's venue state: ``name → (annotation, pydantic field)``."""
    changed_note: ClassVar[str | None]
    """A note the document carries when this venue's figures changed."""

    def open(self, item: LatestVenueHealth, ctx: WhatIfContext) -> VenueWhatIf:
        """The venue's newest snapshot of the wallet, opened for the what-if."""
        ...


class PartBase:
    """The defaults of a venue's part: prices only, nothing to add to the views."""

    actions: ClassVar[tuple[Action, ...]] = ()
    cli_examples: ClassVar[Mapping[Action, str]] = {}
    cli_market_help: ClassVar[str | None] = None
    api_action_doc: ClassVar[str | None] = None
    api_market_doc: ClassVar[str | None] = None
    api_engine_doc: ClassVar[str | None] = None
    api_health_raw_doc: ClassVar[str | None] = None
    api_position_market_doc: ClassVar[str | None] = None
    api_state_fields: ClassVar[Mapping[str, tuple[Any, Any]]] = {}
    changed_note: ClassVar[str | None] = None

    def open(self, item: LatestVenueHealth, ctx: WhatIfContext) -> VenueWhatIf:
        return PricesOnly(item, ctx)


def _perp_state_fields() -> dict[str, tuple[Any, Any]]:
    from pydantic import Field

    return {
        "equity_usd": (float | None, Field(None, description="Perps: account equity.")),
        "maintenance_margin_usd": (float | None, Field(None, description="Perps: maintenance requirement.")),
        "liquidation_price": (dict[str, float | None] | None, Field(None, description="Perps: per coin, USD.")),
    }


PERP_STATE_FIELDS: Mapping[str, tuple[Any, Any]] = _perp_state_fields()
"""A perp venue's figures in the API's venue state (every perp venue's part declares these)."""

PRICES_ONLY: WhatIfPart = PartBase()
"""The part of a venue whose type is not registered: revalued at the what-if prices, no change."""


def venue_whatif(venue_type: str) -> WhatIfPart:
    """``venue_type``'s what-if part (``aggregator/venues/<venue>/whatif.py``'s ``WHATIF``); :data:`PRICES_ONLY`
    for a type that is not registered."""
    if venue_type not in VENUES:
        return PRICES_ONLY
    module = importlib.import_module(venue_module("aggregator", venue_type, "whatif"))
    return cast(WhatIfPart, module.WHATIF)


@cache
def whatif_parts() -> tuple[tuple[str, WhatIfPart], ...]:
    """Every registered venue's what-if part, in registry order."""
    return tuple((v, venue_whatif(v)) for v in VENUES)


def changing_venues() -> list[str]:
    """The venue types that take changes, in registry order."""
    return [v for v, part in whatif_parts() if part.actions]


def change_example(action: Action) -> str:
    """``VENUE:ASSET[@MARKET]=AMOUNT`` for ``action``, from the first venue whose part gives an example of it."""
    for venue, part in whatif_parts():
        if action in part.cli_examples:
            return f"{venue}:{part.cli_examples[action]}"
    venue = next(iter(changing_venues()), "VENUE")
    return f"{venue}:ASSET=1"


def refused_change(change: Change, actions: tuple[Action, ...]) -> str:
    """Why a venue whose part takes ``actions`` refuses ``change`` (one line)."""
    if not actions:
        return (f"{change.venue}: a what-if changes only prices there (supply, withdraw, borrow and repay are for "
                f"the lending venues: {', '.join(changing_venues())})")
    return f"{change.venue}: a what-if cannot {change.action} there (it takes {', '.join(actions)})"
