"""What-if: every venue's health and the wallet's unified risk after price moves and the wallet's own actions —
recomputed from the newest stored snapshots with the engine the sync uses; nothing is sent to any chain.

Input (:class:`Scenario`):

* **prices** — ``SYMBOL → USD``. A price applies to that token on every venue, and to the perp markets of the same
  underlying when the token is the underlying itself or a 1:1 wrapper of it (``WETH`` moves the ``ETH`` perp,
  ``ETH`` moves ``WETH``; ``stETH`` moves only ``stETH``; :func:`price_key`). Each venue applies it as its own
  rule reads a price: a lending pool as its oracle price at the oracle's unit, an isolated market's oracle by the
  ratio of its two tokens' USD prices, a perp as its mark, a liquidity range as its pool moved to the tokens' USD
  ratio.
* **changes** — ``supply | withdraw | borrow | repay`` of an amount of a token on a venue that takes them, in
  order; ``@MARKET`` names the market on a venue of several. What each action does there, and which venues take
  which actions, is the venue's what-if part (``aggregator/venues/<venue>/whatif.py``, found through
  :func:`aggregator.venues.whatif.venue_whatif`).

Engines, as in the sync: each venue's part replays the change with the venue's own arithmetic
(``riskcore/venues/<venue>/whatif.py``) and reruns the venue's own health rule — for the lending venues the health
factor is the protocol's to the last unit; perps rerun their margin rules at the new marks. The unified figures are
:func:`aggregator.risk.assess_book` over the before and after books built from the snapshots
(:func:`aggregator.risk.build_book`), as the sync builds them.

Time: the replay is at the snapshot's block and timestamp. Interest accruing after it is not included — the what-if
equals the protocols' own reading when the actions land in blocks with the snapshot's timestamp (the devnet test,
``tests/aggregator/test_whatif_devnet.py``, does exactly that).

Input the wallet cannot do raises :class:`WhatIfError` with one line: an unknown venue, asset or price symbol, an
amount that is not a positive number of the token's units, repaying more than owed, withdrawing more than held, a
change on a venue that only takes prices. An action the protocol would revert (a withdrawal or a borrow that
leaves the position unhealthy, a borrow beyond the loan-to-value…) is applied all the same and reported with the
protocol's reason (``changes[].refused``; ``feasible`` is then false).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from aggregator.venues.whatif import (
    ACTIONS,
    Action,
    Change,
    VenueWhatIf,
    WhatIfContext,
    WhatIfError,
    WhatIfPart,
    change_example,
    fmt,
    price_key,
    refused_change,
    venue_whatif,
    whatif_parts,
)
from db.rows import LatestVenueHealth, PositionSide, SnapshotRow, SnapshotStatus
from db.store import Store
from riskcore.assets import DEFAULT_ASSET_MAP, AssetKind

__all__ = [
    "ACTIONS",
    "MAX_CHANGES",
    "Action",
    "Change",
    "NoSnapshotError",
    "Scenario",
    "WhatIfError",
    "cli_scenario",
    "parse_amount",
    "parse_change",
    "parse_price",
    "price_key",
    "whatif",
]

log = logging.getLogger(__name__)

MAX_CHANGES = 50
"""At most this many prices and at most this many changes in one what-if."""
MAX_AMOUNT = Decimal(10) ** 30
"""Amounts and prices above this are refused (no token or price comes near it)."""


class NoSnapshotError(LookupError):
    """The wallet has no stored snapshot to start from."""


@dataclass(frozen=True, slots=True)
class Scenario:
    """Prices (symbol → USD) and the wallet's changes, applied in order."""

    prices: Mapping[str, Decimal] = dataclasses.field(default_factory=dict)
    changes: tuple[Change, ...] = ()


# --- parsing ------------------------------------------------------------------------------------------------
def parse_amount(value: str | int | float | Decimal, what: str) -> Decimal:
    """A positive finite decimal number (text, int or float); :class:`WhatIfError` otherwise."""
    if isinstance(value, bool):
        raise WhatIfError(f"{what}: {value!r} is not a number")
    try:
        number = Decimal(str(value).strip()) if not isinstance(value, Decimal) else value
    except (InvalidOperation, ValueError):
        raise WhatIfError(f"{what}: {str(value)[:40]!r} is not a number") from None
    if not number.is_finite():
        raise WhatIfError(f"{what}: {value} is not a finite number")
    if number <= 0:
        raise WhatIfError(f"{what}: must be positive, got {value}")
    if number > MAX_AMOUNT:
        raise WhatIfError(f"{what}: {value} is too large")
    return number


def parse_price(text: str) -> tuple[str, Decimal]:
    """``SYMBOL=USD`` (``WETH=3000``)."""
    symbol, sep, value = text.partition("=")
    symbol = symbol.strip()
    if not sep or not symbol:
        raise WhatIfError(f"price {text!r}: expected SYMBOL=USD, e.g. WETH=3000")
    return symbol, parse_amount(value, f"price of {symbol}")


def parse_change(action: str, text: str) -> Change:
    """``VENUE:ASSET[@MARKET]=AMOUNT`` (``VENUE:USDC=5000``, ``VENUE:WETH@WETH/USDC=2``)."""
    if action not in ACTIONS:
        raise WhatIfError(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
    target, sep, value = text.partition("=")
    venue, colon, asset = target.partition(":")
    asset, _, market = asset.partition("@")
    venue, asset, market = venue.strip(), asset.strip(), market.strip()
    if not (sep and colon and venue and asset):
        raise WhatIfError(f"--{action} {text!r}: expected VENUE:ASSET[@MARKET]=AMOUNT, e.g. "
                          f"{change_example('repay')}")
    amount = parse_amount(value, f"--{action} {target}")
    return Change(action, venue, asset, amount, market or None)


def cli_scenario(prices: Sequence[str] = (), supply: Sequence[str] = (), repay: Sequence[str] = (),
                 withdraw: Sequence[str] = (), borrow: Sequence[str] = ()) -> Scenario:
    """The command line's options as a scenario: changes in :data:`ACTIONS` order, each option's in its order."""
    parsed = [parse_price(p) for p in prices]
    changes = [parse_change(action, text) for action, texts in
               (("supply", supply), ("repay", repay), ("withdraw", withdraw), ("borrow", borrow)) for text in texts]
    return Scenario(_price_map(parsed), tuple(changes))


def _price_map(items: Iterable[tuple[str, Decimal]]) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for symbol, usd in items:
        if symbol in out and out[symbol] != usd:
            raise WhatIfError(f"two prices for {symbol}: {out[symbol]} and {usd}")
        out[symbol] = usd
    return out


def _unified(snapshots: Sequence[SnapshotRow], wallet: str, types: Mapping[str, str],
             horizon_days: float) -> tuple[dict[str, Any] | None, str | None]:
    """The netting engine's figures for one book (the sync's :func:`aggregator.risk.risk_documents` document,
    trimmed to the headline), or why it could not run."""
    from aggregator.risk import assess_book, build_book, risk_documents

    try:
        inputs = build_book({wallet: list(snapshots)}, types)
        result, scenarios, extras = assess_book(inputs, horizon_days)
        doc = risk_documents(inputs, result, scenarios, extras)[0]
    except (ValueError, KeyError, ArithmeticError, OSError) as exc:
        log.warning("what-if: the risk engine failed for %s: %s", wallet, exc)
        return None, str(exc) or type(exc).__name__
    keep = ("unified_health", "equity_usd", "portfolio_margin_usd", "netting_benefit_usd", "worst_scenario",
            "worst_scenario_label", "first_liquidation", "liquidation_prices", "net_exposure_usd")
    return {k: doc.get(k) for k in keep if k in doc}, None


def _is_stable(symbol: str) -> bool:
    try:
        return DEFAULT_ASSET_MAP[symbol].kind is AssetKind.STABLE
    except KeyError:
        return False


def _venue_order(item: LatestVenueHealth) -> str:
    return item.venue


def whatif(store: Store, address: str, scenario: Scenario, *, horizon_days: float = 1.0) -> dict[str, Any]:
    """The what-if document of ``address`` (checksummed) for ``scenario`` (see the module docstring).

    Raises
    ------
    NoSnapshotError
        The wallet has no stored snapshot.
    WhatIfError
        The scenario cannot be applied (the message says why, in one line), or the stored data cannot be replayed
        (logged with its traceback: never a traceback to the user).
    """
    try:
        return _whatif(store, address, scenario, horizon_days)
    except (WhatIfError, NoSnapshotError):
        raise
    except (KeyError, TypeError, ValueError, ArithmeticError, AttributeError) as exc:
        log.exception("what-if for %s: the stored snapshots could not be replayed", address)
        raise WhatIfError(f"the stored snapshots cannot be replayed ({type(exc).__name__}: {exc})") from exc


def _whatif(store: Store, address: str, scenario: Scenario, horizon_days: float) -> dict[str, Any]:
    if len(scenario.prices) > MAX_CHANGES or len(scenario.changes) > MAX_CHANGES:
        raise WhatIfError(f"at most {MAX_CHANGES} prices and {MAX_CHANGES} changes in one what-if")
    latest = sorted(store.latest_health(address), key=_venue_order)
    if not latest:
        raise NoSnapshotError(f"{address} has no snapshot yet — run `xmargin sync --once`")
    venue_rows = store.list_venues()
    types = {v.name: str(v.config.get("type", "")) for v in venue_rows}
    kinds = {v.name: str(v.kind) for v in venue_rows}
    ctx = WhatIfContext(store, latest)
    notes: list[str] = []
    good = [item for item in latest if item.snapshot.status is SnapshotStatus.OK and item.snapshot.health]
    for item in latest:
        if item not in good:
            notes.append(f"{item.venue}: its newest read failed ({item.snapshot.error or 'no health'}); left out")
    parts: dict[str, WhatIfPart] = {item.venue: venue_whatif(types.get(item.venue, "")) for item in good}
    before: dict[str, VenueWhatIf] = {item.venue: parts[item.venue].open(item, ctx) for item in good}
    after: dict[str, VenueWhatIf] = {item.venue: parts[item.venue].open(item, ctx) for item in good}

    # Prices: every symbol must be one the wallet's venues price; one price per key.
    known = {s for m in after.values() for s in m.symbols()}
    prices: dict[str, Decimal] = {}
    by_key: dict[str, str] = {}
    for symbol, usd in scenario.prices.items():
        if not isinstance(usd, Decimal):
            usd = parse_amount(usd, f"price of {symbol}")
        key = price_key(symbol)
        if not any(price_key(k) == key for k in known):
            raise WhatIfError(f"unknown price symbol {symbol!r}: the wallet's venues price "
                              f"{', '.join(sorted(known, key=str.casefold))}")
        if key in prices and prices[key] != usd:
            raise WhatIfError(f"two prices for {key}: {by_key[key]}={prices[key]:f} and {symbol}={usd:f}")
        prices[key] = usd
        by_key[key] = symbol
    for m in after.values():
        m.set_prices(prices)

    # Changes, in order.
    applied: list[dict[str, Any]] = []
    for step, change in enumerate(scenario.changes, start=1):
        if change.venue not in types:
            raise WhatIfError(f"unknown venue {change.venue!r}; known: {', '.join(sorted(types))}")
        model = after.get(change.venue)
        if model is None:
            raise WhatIfError(f"{change.venue}: the wallet has no usable snapshot there to start from")
        if change.action not in parts[change.venue].actions:
            raise WhatIfError(refused_change(change, parts[change.venue].actions))
        refused, what = model.apply(change)
        applied.append({"step": step, "action": change.action, "venue": change.venue,
                        "asset": what.get("asset", change.asset), "market": what.get("market"),
                        "market_id": what.get("market_id"), "amount": fmt(change.amount),
                        "amount_raw": what.get("amount_raw"), "refused": refused})

    venues: list[dict[str, Any]] = []
    for item in good:
        b, a = before[item.venue], after[item.venue]
        matches = b.matches_sync()
        if matches is False:
            notes.append(f"{item.venue}: replaying the stored snapshot does not give the sync's own health — "
                         "the what-if figures of this venue are suspect")
        venues.append({
            "venue": item.venue, "kind": kinds.get(item.venue, b.kind), "type": types.get(item.venue),
            "block": item.snapshot.block_number, "matches_sync": matches,
            "changed": bool(a.moved) or any(c["venue"] == item.venue for c in applied),
            "before": b.state(), "after": a.state(),
        })
    for m in after.values():
        notes.extend(m.notes)
    if any(_is_stable(by_key[k]) for k in prices):
        notes.append("the unified figures value stablecoins at $1 (their pegs move in the scenarios); the venues' "
                     "figures use the what-if price")
    for venue_type, part in whatif_parts():
        if part.changed_note and any(types.get(str(v["venue"])) == venue_type and v["changed"] for v in venues):
            notes.append(part.changed_note)
    wallet = latest[0].snapshot.wallet
    unified_before, err_before = _unified([item.snapshot for item in good], wallet, types, horizon_days)
    unified_after, err_after = _unified([m.snapshot() for m in after.values()], wallet, types, horizon_days)
    for when, err in (("before", err_before), ("after", err_after)):
        if err:
            notes.append(f"unified figures {when} the change: the risk engine failed ({err})")
    newest = max(latest, key=lambda i: i.snapshot.block_number).snapshot
    moved_prices = []
    for key, usd in prices.items():
        previous = next((p.price_usd for item in good for p in item.snapshot.positions
                         if price_key(p.asset.symbol) == key and p.price_usd is not None
                         and p.side is not PositionSide.LP), None)
        applies = {f"{v['venue']}:{p['asset']}" for v in venues for p in v["after"]["positions"]
                   if price_key(p["asset"]) == key}
        moved_prices.append({"asset": by_key[key], "price_usd": float(usd), "price": fmt(usd),
                             "previous_price_usd": previous, "applies_to": sorted(applies)})
    doc: dict[str, Any] = {
        "wallet": wallet,
        "chain_id": newest.chain_id,
        "block": newest.block_number,
        "block_timestamp": newest.block_timestamp.isoformat(),
        "computed_at": datetime.now(UTC).isoformat(),
        "prices": moved_prices,
        "changes": applied,
        "feasible": all(c["refused"] is None for c in applied),
        "venues": venues,
        "unified": {"before": unified_before, "after": unified_after},
        "notes": notes,
    }
    doc["summary"] = _summary(doc)
    return doc


def _hf(x: float | None) -> str:
    return "∞" if x is None else f"{x:.4f}"


def _summary(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The headline: each changed venue's health before → after, and the unified health."""
    parts = [f"{v['venue']} {_hf(v['before']['health_factor'])} → {_hf(v['after']['health_factor'])}"
             for v in doc["venues"] if v["changed"]
             and (v["before"]["health_factor"] is not None or v["after"]["health_factor"] is not None)]
    ub, ua = doc["unified"]["before"], doc["unified"]["after"]
    unified = None
    if ub is not None and ua is not None:
        unified = {"before": ub.get("unified_health"), "after": ua.get("unified_health")}
        parts.append(f"unified {_hf(unified['before'])} → {_hf(unified['after'])}")
    lowest = [(v["after"]["health_factor"], v["venue"]) for v in doc["venues"]
              if v["after"]["health_factor"] is not None]
    low = min(lowest) if lowest else None
    return {"text": " · ".join(parts) or "nothing changed",
            "lowest_venue_after": {"venue": low[1], "health_factor": low[0]} if low else None,
            "unified_health": unified, "feasible": doc["feasible"]}
