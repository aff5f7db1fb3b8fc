"""What-if: every venue's health and the wallet's unified risk after price moves and the wallet's own lending
actions — recomputed from the newest stored snapshots with the engine the sync uses; nothing is sent to any chain.

Input (:class:`Scenario`):

* **prices** — ``SYMBOL → USD``. A price applies to that token on every venue, and to the perp markets of the same
  underlying when the token is the underlying itself or a 1:1 wrapper of it (``WETH`` moves the ``ETH`` perp,
  ``ETH`` moves ``WETH``; ``stETH`` moves only ``stETH``). Aave takes it as its oracle price, rounded half-even to
  the oracle's base unit (1e-8 USD); a Morpho market's oracle moves by the ratio of its two tokens' USD prices
  (:func:`riskcore.whatif.morpho_oracle_price`); a perp is revalued with it as its mark (dYdX: oracle) price; a
  Uniswap range is revalued as if its pool moved to the two tokens' USD ratio (float; fees of that move left out).
* **changes** — ``supply | withdraw | borrow | repay`` of an amount of a token on a lending venue, in order.
  Aave: ``supply`` / ``withdraw`` the token, ``borrow`` it at the variable rate, ``repay`` the variable debt (the
  stable debt when there is no variable debt). Morpho Blue: ``supply`` of a market's collateral token is
  ``supplyCollateral``, of its loan token a lender's ``supply`` (``withdraw`` likewise); ``borrow`` / ``repay`` the
  loan token. Which Morpho market: ``@MARKET`` names it — its pair as the health document shows it
  (``WETH/USDC``: collateral/loan) or a prefix of its id (``0x`` + at least 6 hex digits); without it, the one
  market where the wallet already holds a position that fits the action, else the one market that fits at all;
  more than one → :class:`WhatIfError` naming them.

Engines, as in the sync: Aave replays the scaled balances with the pool's own integer arithmetic and recomputes
``getUserAccountData`` (:mod:`riskcore.whatif`, :func:`riskcore.venues.aave_v3.health.account_data`) — the
health factor is the protocol's to the last unit; Morpho replays shares and totals and reruns ``_isHealthy``
(:func:`riskcore.venues.morpho_blue.health.position_health`, oracle price at 1e36); perps rerun :mod:`riskcore.perp` at
the new marks. The unified figures are :func:`aggregator.risk.assess_book` over the before and after books built
from the snapshots (:func:`aggregator.risk.build_book`), as the sync builds them.

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
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any, Literal

import numpy as np

from db.rows import AssetRow, LatestVenueHealth, PositionRow, PositionSide, SnapshotRow, SnapshotStatus
from db.store import Store
from riskcore.assets import DEFAULT_ASSET_MAP, AssetKind
from riskcore.clmm import amounts_float
from riskcore.perp import PerpHealth
from riskcore.units import UINT256_MAX, WAD, bps_to_fraction, from_raw
from riskcore.venues.aave_v3.health import AaveEMode, AaveReserveParams, AaveUserBalance
from riskcore.venues.dydx_v4.health import DydxFigures, dydx_health
from riskcore.venues.hyperliquid.health import HyperliquidFigures, hyperliquid_health
from riskcore.venues.morpho_blue.health import MorphoMarketState, MorphoPositionHealth
from riskcore.venues.uniswap_v3.position import get_sqrt_ratio_at_tick
from riskcore.whatif import (
    AaveReserveFlags,
    AaveStep,
    AaveWallet,
    MorphoPosition,
    MorphoStep,
    aave_borrow,
    aave_repay,
    aave_supply,
    aave_withdraw,
    morpho_borrow,
    morpho_oracle_price,
    morpho_repay,
    morpho_supply,
    morpho_supply_collateral,
    morpho_withdraw,
    morpho_withdraw_collateral,
)

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

Action = Literal["supply", "withdraw", "borrow", "repay"]
ACTIONS: tuple[Action, ...] = ("supply", "repay", "withdraw", "borrow")
"""The actions, in the order the command line applies them (those that add safety first)."""
MAX_CHANGES = 50
"""At most this many prices and at most this many changes in one what-if."""
MAX_AMOUNT = Decimal(10) ** 30
"""Amounts and prices above this are refused (no token or price comes near it)."""
_LENDING = ("aave_v3", "morpho_blue")
_PERPS = ("hyperliquid", "dydx_v4")
_MARKET_ID = re.compile(r"^0x[0-9a-fA-F]{6,64}$")


class WhatIfError(ValueError):
    """Input that cannot be applied to the wallet; the message says why in one line."""


class NoSnapshotError(LookupError):
    """The wallet has no stored snapshot to start from."""


@dataclass(frozen=True, slots=True)
class Change:
    """One action of the wallet: ``amount`` whole tokens of ``asset`` on ``venue`` (``market``: Morpho's)."""

    action: Action
    venue: str
    asset: str
    amount: Decimal
    market: str | None = None

    def __str__(self) -> str:
        where = f"{self.venue}@{self.market}" if self.market else self.venue
        return f"{self.action} {self.amount:f} {self.asset} on {where}"


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
    """``VENUE:ASSET[@MARKET]=AMOUNT`` (``aave_v3:USDC=5000``, ``morpho_blue:WETH@WETH/USDC=2``)."""
    if action not in ACTIONS:
        raise WhatIfError(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
    target, sep, value = text.partition("=")
    venue, colon, asset = target.partition(":")
    asset, _, market = asset.partition("@")
    venue, asset, market = venue.strip(), asset.strip(), market.strip()
    if not (sep and colon and venue and asset):
        raise WhatIfError(f"--{action} {text!r}: expected VENUE:ASSET[@MARKET]=AMOUNT, e.g. aave_v3:USDC=5000")
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


# --- shared context -----------------------------------------------------------------------------------------
def _stamp_ok(params: Mapping[str, Any], snap: SnapshotRow) -> bool:
    """Whether a venue's stored market state is of the snapshot's own block."""
    return params.get("block") == snap.block_number and params.get("block_hash", snap.block_hash) == snap.block_hash


class _Context:
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


def _to_raw(amount: Decimal, decimals: int, what: str) -> int:
    scaled = amount.scaleb(decimals)
    if scaled != scaled.to_integral_value():
        raise WhatIfError(f"{what}: {amount:f} has more than the token's {decimals} decimals")
    raw = int(scaled)
    if raw <= 0 or raw > UINT256_MAX:
        raise WhatIfError(f"{what}: {amount:f} is out of range")
    return raw


def _price_raw(usd: Decimal, decimals: int, what: str) -> int:
    raw = int(usd.scaleb(decimals).to_integral_value(ROUND_HALF_EVEN))
    if raw <= 0:
        raise WhatIfError(f"price of {what}: {usd:f} rounds to 0 at the oracle's {decimals} decimals")
    return raw


def _detail(extra: Mapping[str, Any], keys: Iterable[str], venue: str, snap: SnapshotRow) -> None:
    missing = [k for k in keys if k not in extra]
    if missing:
        raise WhatIfError(f"{venue}: the stored snapshot (block {snap.block_number}) lacks the detail a what-if "
                          f"replays ({missing[0]}): it predates it — run `xmargin sync --once` and try again")


def _fmt(amount: Decimal) -> str:
    return f"{amount.normalize():f}"


def _resolve_symbol(symbol: str, known: Iterable[str]) -> str | None:
    names = list(dict.fromkeys(known))
    if symbol in names:
        return symbol
    folded = [n for n in names if n.casefold() == symbol.casefold()]
    return folded[0] if len(folded) == 1 else None


# --- venues -------------------------------------------------------------------------------------------------
class _Venue:
    """A venue's state for the what-if: prices and changes applied to it, its health and snapshot after."""

    kind = "lending"

    def __init__(self, item: LatestVenueHealth, ctx: _Context) -> None:
        self.item = item
        self.snap = item.snapshot
        self.venue = item.venue
        self.ctx = ctx
        self.prices: dict[str, Decimal] = {}
        """Every what-if price (price key → USD): a reserve or market opened by a later change is priced too."""
        self.moved: dict[str, Decimal] = {}
        """The prices that moved something of this venue."""
        self.notes: list[str] = []
        """What the reader should know about this venue's figures."""

    def symbols(self) -> set[str]:
        """The tokens (and instruments) this venue prices, for validating price symbols."""
        return {p.asset.symbol for p in self.snap.positions}

    def set_prices(self, prices: Mapping[str, Decimal]) -> None:
        """Apply the what-if prices (price key → USD)."""
        self.prices = dict(prices)
        for p in self.snap.positions:
            key = price_key(p.asset.symbol)
            if key in prices:
                self.moved[key] = prices[key]

    def apply(self, change: Change) -> tuple[str | None, dict[str, Any]]:
        """Apply one change; (the protocol's refusal or None, what was applied: ``market``, ``amount_raw``…)."""
        raise WhatIfError(f"{change.venue}: a what-if changes only prices there (supply, withdraw, borrow and "
                          f"repay are for the lending venues: {', '.join(_LENDING)})")

    def state(self) -> dict[str, Any]:
        """The venue's health figures and positions."""
        h = self.snap.health
        return {
            "health_factor": _finite(h.health_factor) if h else None,
            "health_factor_raw": str(h.health_factor_raw) if h and h.health_factor_raw is not None else None,
            "healthy": h is None or h.health_factor is None or h.health_factor >= 1,
            "collateral_usd": h.collateral_usd if h else 0.0,
            "debt_usd": h.debt_usd if h else 0.0,
            "positions": [_position_doc(p) for p in self._positions()],
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
        """The snapshot the risk engine reads for the state after."""
        return dataclasses.replace(self.snap, positions=self._positions())

    def matches_sync(self) -> bool | None:
        """Whether replaying the stored snapshot gives the sync's own health (None: nothing to compare)."""
        return None


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _position_doc(p: PositionRow, market: str | None = None) -> dict[str, Any]:
    return {"asset": p.asset.symbol, "asset_address": p.asset.address, "side": str(p.side), "amount": p.amount,
            "amount_raw": str(p.amount_raw), "price_usd": p.price_usd, "value_usd": p.value_usd,
            "is_collateral": p.is_collateral, "market": market or p.market_key}


@dataclass
class _AaveReserve:
    asset: AssetRow
    liquidation_threshold_bps: int
    """In force for this wallet (the e-mode category's when the reserve is in the wallet's category)."""
    liquidation_bonus_bps: int
    debt_ceiling: int


class _Aave(_Venue):
    """Aave v3: the wallet's scaled balances replayed with the pool's arithmetic (:mod:`riskcore.whatif`)."""

    _POSITION_KEYS = ("reserve_id", "decimals", "reserve_ltv_bps", "reserve_liquidation_threshold_bps",
                      "reserve_emode_category", "price_raw", "normalized_income_ray", "normalized_variable_debt_ray",
                      "scaled_raw", "usage_as_collateral", "borrowing", "debt_ceiling")

    def __init__(self, item: LatestVenueHealth, ctx: _Context) -> None:
        super().__init__(item, ctx)
        h = self.snap.health
        assert h is not None
        _detail(h.extra, ("user_configuration", "emode_category", "base_decimals"), self.venue, self.snap)
        self.base = int(h.extra["base_decimals"])
        self.user_configuration = int(str(h.extra["user_configuration"]))
        self.user_emode = int(h.extra["emode_category"])
        emode = h.extra.get("emode")
        categories: dict[int, AaveEMode] = {}
        self.emode_bonus = 0
        if self.user_emode and isinstance(emode, Mapping):
            categories[self.user_emode] = AaveEMode(int(emode["ltv_bps"]), int(emode["liquidation_threshold_bps"]),
                                                    int(str(emode.get("price_raw", 0))))
            self.emode_bonus = int(emode.get("liquidation_bonus_bps", 0))
        self.meta: dict[int, _AaveReserve] = {}
        reserves: dict[int, AaveReserveParams] = {}
        balances: dict[int, AaveUserBalance] = {}
        flags: dict[int, AaveReserveFlags] = {}
        for p in self.snap.positions:
            e = p.extra
            _detail(e, self._POSITION_KEYS, self.venue, self.snap)
            rid = int(e["reserve_id"])
            reserves[rid] = AaveReserveParams(
                rid, int(e["decimals"]), int(e["reserve_ltv_bps"]), int(e["reserve_liquidation_threshold_bps"]),
                int(e["reserve_emode_category"]), int(str(e["price_raw"])), int(str(e["normalized_income_ray"])),
                int(str(e["normalized_variable_debt_ray"])))
            bal = balances.get(rid) or AaveUserBalance(rid, 0, 0, 0, bool(e["usage_as_collateral"]),
                                                       bool(e["borrowing"]))
            if p.side is PositionSide.COLLATERAL:
                bal = dataclasses.replace(bal, scaled_a_token_balance_raw=int(str(e["scaled_raw"])))
            else:
                bal = dataclasses.replace(bal, scaled_variable_debt_raw=int(str(e["scaled_raw"])),
                                          stable_debt_raw=int(str(e.get("stable_debt_raw", 0))))
            balances[rid] = bal
            flags[rid] = AaveReserveFlags(debt_ceiling=int(e["debt_ceiling"]))
            self.meta[rid] = _AaveReserve(p.asset, int(e["liquidation_threshold_bps"]),
                                          int(e["liquidation_bonus_bps"]), int(e["debt_ceiling"]))
        self.wallet = AaveWallet(reserves, balances, self.user_emode, categories, flags)
        self.unknown_bits: list[int] = []
        self._params_loaded = False

    # -- market params (reserves the wallet does not hold, the reserves' flags) --------------------------------
    def _load_params(self) -> None:
        """Reserve flags, and the reserves behind configuration bits without a balance, from the venue's stored
        market state when it is of the snapshot's block."""
        if self._params_loaded:
            return
        self._params_loaded = True
        fresh = {k: v for k, v in self.ctx.markets(self.venue).items() if _stamp_ok(v, self.snap)}
        by_id = {int(v["reserve_id"]): (k, v) for k, v in fresh.items() if "reserve_id" in v}
        flags = dict(self.wallet.flags)
        for rid, (_key, v) in by_id.items():
            if rid in self.wallet.reserves:
                flags[rid] = self._flags(v)
        if not fresh:
            self.notes.append(f"{self.venue}: the reserves' flags (active, frozen, paused, borrowing enabled) are "
                              "not checked: the stored market state is not of the snapshot's block")
        self.wallet = dataclasses.replace(self.wallet, flags=flags)
        rid = 0
        bits = self.user_configuration
        while bits >> (2 * rid):
            if (bits >> (2 * rid)) & 3 and rid not in self.wallet.reserves:
                if rid in by_id:
                    self._add_reserve(*by_id[rid], usage=bool((bits >> (2 * rid + 1)) & 1),
                                      borrowing=bool((bits >> (2 * rid)) & 1))
                else:
                    self.unknown_bits.append(rid)
            rid += 1
        if self.unknown_bits:
            self.notes.append(f"{self.venue}: reserves {self.unknown_bits} are in the wallet's configuration without "
                              "a balance and their state is not stored: the pool's isolation-mode and zero-LTV "
                              "checks are made without them")

    @staticmethod
    def _flags(v: Mapping[str, Any]) -> AaveReserveFlags:
        return AaveReserveFlags(active=bool(v.get("active", True)), frozen=bool(v.get("frozen", False)),
                                paused=bool(v.get("paused", False)),
                                borrowing_enabled=bool(v.get("borrowing_enabled", True)),
                                debt_ceiling=int(v.get("debt_ceiling", 0)))

    def _add_reserve(self, key: str, v: Mapping[str, Any], *, usage: bool = False, borrowing: bool = False) -> int:
        rid = int(v["reserve_id"])
        params = AaveReserveParams(
            rid, int(v["decimals"]), int(v["reserve_ltv_bps"]), int(v["reserve_liquidation_threshold_bps"]),
            int(v["reserve_emode_category"]), int(str(v["price_raw"])), int(str(v["normalized_income_ray"])),
            int(str(v["normalized_variable_debt_ray"])))
        in_emode = self.user_emode != 0 and params.emode_category == self.user_emode
        category = self.wallet.emode_categories.get(self.user_emode)
        lt = category.liquidation_threshold_bps if in_emode and category else params.liquidation_threshold_bps
        bonus = self.emode_bonus if in_emode else int(v.get("liquidation_bonus_bps", 0))
        self.meta[rid] = _AaveReserve(AssetRow(self.snap.chain_id, key, str(v.get("symbol", key)), params.decimals),
                                      lt, bonus, int(v.get("debt_ceiling", 0)))
        self.wallet = dataclasses.replace(
            self.wallet, reserves={**self.wallet.reserves, rid: params},
            balances={**self.wallet.balances, rid: AaveUserBalance(rid, 0, 0, 0, usage, borrowing)},
            flags={**self.wallet.flags, rid: self._flags(v)})
        self._reprice()
        return rid

    # -- prices ------------------------------------------------------------------------------------------------
    def symbols(self) -> set[str]:
        known = {m.asset.symbol for m in self.meta.values()}
        known |= {str(v["symbol"]) for v in self.ctx.markets(self.venue).values() if "symbol" in v}
        return known

    def set_prices(self, prices: Mapping[str, Decimal]) -> None:
        self.prices = dict(prices)
        self._reprice()

    def _reprice(self) -> None:
        """Every reserve of the wallet at the what-if prices (from the snapshot's, so twice is once)."""
        new = {}
        category = self.wallet.emode_categories.get(self.user_emode)
        for rid, m in self.meta.items():
            key = price_key(m.asset.symbol)
            if key in self.prices:
                self.moved[key] = self.prices[key]
                new[rid] = _price_raw(self.prices[key], self.base, m.asset.symbol)
                in_category = category is not None and self.wallet.reserves[rid].emode_category == self.user_emode
                note = (f"{self.venue}: the wallet's e-mode category prices {m.asset.symbol} with its own oracle, "
                        "which a what-if price does not move")
                if in_category and category is not None and category.price_raw and note not in self.notes:
                    self.notes.append(note)
        self.wallet = self.wallet.with_prices(new)

    # -- changes -----------------------------------------------------------------------------------------------
    def _reserve(self, change: Change) -> int:
        held = {m.asset.symbol: rid for rid, m in self.meta.items()}
        symbol = _resolve_symbol(change.asset, held)
        if symbol is not None:
            return held[symbol]
        markets = self.ctx.markets(self.venue)
        by_symbol = {str(v.get("symbol")): (k, v) for k, v in markets.items() if "reserve_id" in v}
        symbol = _resolve_symbol(change.asset, by_symbol)
        if symbol is None:
            known = sorted(set(held) | {s for s in by_symbol if s != "None"})
            raise WhatIfError(f"{change.venue} has no reserve {change.asset!r}; its reserves: {', '.join(known)}")
        key, v = by_symbol[symbol]
        if not _stamp_ok(v, self.snap):
            raise WhatIfError(f"{change.venue}: the stored state of reserve {symbol} is of block {v.get('block')}, "
                              f"not the snapshot's block {self.snap.block_number}: run `xmargin sync --once` and "
                              "try again")
        return self._add_reserve(key, v)

    def apply(self, change: Change) -> tuple[str | None, dict[str, Any]]:
        if change.market is not None:
            raise WhatIfError(f"{change.venue}: @{change.market}: Aave has no markets to choose (one pool)")
        self._load_params()
        rid = self._reserve(change)
        meta = self.meta[rid]
        what = f"{change.action} {change.asset} on {change.venue}"
        raw = _to_raw(change.amount, meta.asset.decimals, what)
        sym = meta.asset.symbol
        w = self.wallet
        step: AaveStep
        if change.action == "supply":
            step = aave_supply(w, rid, raw)
        elif change.action == "withdraw":
            held = w.supplied_raw(rid)
            if raw > held:
                raise WhatIfError(f"{what}: withdrawing {_fmt(change.amount)} {sym}, more than the "
                                  f"{_fmt(Decimal(held).scaleb(-meta.asset.decimals))} {sym} supplied")
            step = aave_withdraw(w, rid, raw)
        elif change.action == "borrow":
            step = aave_borrow(w, rid, raw)
        else:
            variable, stable = w.variable_debt_raw(rid), w.stable_debt_raw(rid)
            owed = variable or stable
            if raw > owed:
                kind = "variable " if variable and stable else ""
                raise WhatIfError(f"{what}: repaying {_fmt(change.amount)} {sym}, more than the "
                                  f"{_fmt(Decimal(owed).scaleb(-meta.asset.decimals))} {sym} of {kind}debt owed")
            step = aave_repay(w, rid, raw)
        self.wallet = step.wallet
        return step.refused, {"asset": sym, "market": None, "amount_raw": str(raw)}

    # -- results -----------------------------------------------------------------------------------------------
    def _rows(self) -> list[PositionRow]:
        rows = []
        w = self.wallet
        for rid in sorted(self.meta):
            m, r, b = self.meta[rid], w.reserves[rid], w.balance(rid)
            price_usd = from_raw(r.price_raw, self.base)
            unit = 10**r.decimals
            detail = {
                "liquidation_threshold_bps": m.liquidation_threshold_bps,
                "liquidation_bonus_bps": m.liquidation_bonus_bps,
                "reserve_id": rid, "decimals": r.decimals, "reserve_ltv_bps": r.ltv_bps,
                "reserve_liquidation_threshold_bps": r.liquidation_threshold_bps,
                "reserve_emode_category": r.emode_category, "debt_ceiling": m.debt_ceiling,
                "price_raw": str(r.price_raw), "normalized_income_ray": str(r.normalized_income_ray),
                "normalized_variable_debt_ray": str(r.normalized_variable_debt_ray),
                "usage_as_collateral": b.usage_as_collateral, "borrowing": b.borrowing,
            }
            supplied = w.supplied_raw(rid)
            debt = w.variable_debt_raw(rid) + b.stable_debt_raw
            for side, amount, extra in (
                (PositionSide.COLLATERAL, supplied, {"scaled_raw": str(b.scaled_a_token_balance_raw)}),
                (PositionSide.DEBT, debt, {"scaled_raw": str(b.scaled_variable_debt_raw),
                                           "stable_debt_raw": str(b.stable_debt_raw)}),
            ):
                if amount == 0:
                    continue
                rows.append(PositionRow(
                    asset=m.asset, side=side, amount_raw=amount, amount=from_raw(amount, r.decimals),
                    price_usd=price_usd, value_usd=from_raw(amount * r.price_raw // unit, self.base),
                    is_collateral=side is PositionSide.COLLATERAL and b.usage_as_collateral
                    and r.liquidation_threshold_bps != 0,
                    market_key=m.asset.address, extra={**detail, **extra},
                ))
        return rows

    def _figures(self) -> dict[str, Any]:
        data = self.wallet.account_data()
        has_debt = data.total_debt_base_raw != 0
        return {
            "health_factor": data.health_factor_wad / WAD if has_debt else None,
            "health_factor_raw": str(data.health_factor_wad) if has_debt else None,
            "healthy": not has_debt or data.health_factor_wad >= WAD,
            "collateral_usd": from_raw(data.total_collateral_base_raw, self.base),
            "debt_usd": from_raw(data.total_debt_base_raw, self.base),
            "liquidation_threshold": (bps_to_fraction(data.current_liquidation_threshold_bps)
                                      if data.total_collateral_base_raw else None),
            "ltv": bps_to_fraction(data.ltv_bps) if data.total_collateral_base_raw else None,
            "available_borrows_usd": from_raw(data.available_borrows_base_raw, self.base),
            "total_collateral_base_raw": str(data.total_collateral_base_raw),
            "total_debt_base_raw": str(data.total_debt_base_raw),
        }

    def state(self) -> dict[str, Any]:
        return {**self._figures(), "positions": [_position_doc(p) for p in self._rows()]}

    def snapshot(self) -> SnapshotRow:
        f = self._figures()
        assert self.snap.health is not None
        health = dataclasses.replace(
            self.snap.health, collateral_usd=f["collateral_usd"], debt_usd=f["debt_usd"],
            health_factor=f["health_factor"],
            health_factor_raw=int(f["health_factor_raw"]) if f["health_factor_raw"] is not None else None,
            onchain_health_factor_raw=None, matches_onchain=None, liquidation_threshold=f["liquidation_threshold"],
            flags=())
        return dataclasses.replace(self.snap, positions=tuple(self._rows()), health=health)

    def matches_sync(self) -> bool | None:
        h = self.snap.health
        raw = self._figures()["health_factor_raw"]
        return h is not None and h.health_factor_raw == (int(raw) if raw is not None else None)


@dataclass
class _Market:
    market_id: str
    loan: AssetRow
    collateral: AssetRow
    lltv_wad: int
    price_raw: int
    state: MorphoMarketState
    loan_usd: float
    position: MorphoPosition

    @property
    def pair(self) -> str:
        return f"{self.collateral.symbol}/{self.loan.symbol}"

    def health(self) -> MorphoPositionHealth:
        return MorphoStep(self.position, self.state).health(self.price_raw, self.lltv_wad)


class _Morpho(_Venue):
    """Morpho Blue: each market's shares and totals replayed with ``Morpho.sol``'s roundings."""

    _MARKET_KEYS = ("market_id", "loan_token", "loan_symbol", "loan_decimals", "collateral_token",
                    "collateral_symbol", "collateral_decimals", "lltv_wad", "fee_wad", "price_raw",
                    "total_supply_assets_raw", "total_supply_shares", "total_borrow_assets_raw",
                    "total_borrow_shares", "accrued_to")

    def __init__(self, item: LatestVenueHealth, ctx: _Context) -> None:
        super().__init__(item, ctx)
        h = self.snap.health
        assert h is not None
        self.markets: dict[str, _Market] = {}
        for m in h.extra.get("markets", []):
            _detail(m, (*self._MARKET_KEYS, "loan_usd", "collateral_raw", "borrow_shares", "supply_shares"),
                    self.venue, self.snap)
            position = MorphoPosition(int(str(m["supply_shares"])), int(str(m["borrow_shares"])),
                                      int(str(m["collateral_raw"])))
            self.markets[str(m["market_id"])] = self._market(m, float(m["loan_usd"]), position)
        self.original = {k: dataclasses.replace(v) for k, v in self.markets.items()}

    def _market(self, m: Mapping[str, Any], loan_usd: float, position: MorphoPosition) -> _Market:
        chain = self.snap.chain_id
        return _Market(
            market_id=str(m["market_id"]),
            loan=AssetRow(chain, str(m["loan_token"]), str(m["loan_symbol"]), int(m["loan_decimals"])),
            collateral=AssetRow(chain, str(m["collateral_token"]), str(m["collateral_symbol"]),
                                int(m["collateral_decimals"])),
            lltv_wad=int(str(m["lltv_wad"])), price_raw=int(str(m["price_raw"])),
            state=MorphoMarketState(int(str(m["total_supply_assets_raw"])), int(str(m["total_supply_shares"])),
                                    int(str(m["total_borrow_assets_raw"])), int(str(m["total_borrow_shares"])),
                                    int(m["accrued_to"]), int(str(m["fee_wad"]))),
            loan_usd=loan_usd, position=position,
        )

    def _all_markets(self) -> dict[str, Mapping[str, Any]]:
        """Every watched market's stored state (of the venue's newest sync), by id."""
        return {k.lower(): v for k, v in self.ctx.markets(self.venue).items() if "loan_symbol" in v}

    def symbols(self) -> set[str]:
        known = super().symbols()
        for v in self._all_markets().values():
            known |= {str(v["loan_symbol"]), str(v["collateral_symbol"])}
        return known

    def set_prices(self, prices: Mapping[str, Decimal]) -> None:
        self.prices = dict(prices)
        for m in self.markets.values():
            self._reprice(m)

    def _reprice(self, m: _Market) -> bool:
        """Move the market's oracle and the loan token's USD price by the what-if prices (from the snapshot's)."""
        base = self.original.get(m.market_id, m)
        ck, lk = price_key(m.collateral.symbol), price_key(m.loan.symbol)
        if ck not in self.prices and lk not in self.prices:
            return False
        pairs = []
        for asset, key in ((m.collateral, ck), (m.loan, lk)):
            if key not in self.prices:
                pairs.append((1, 1))
                continue
            self.moved[key] = self.prices[key]
            raw = self.ctx.usd_raw(self.snap.chain_id, self.snap.block_number, asset.address)
            if raw is None:
                raise WhatIfError(f"{self.venue}: no stored USD price of {asset.symbol} at block "
                                  f"{self.snap.block_number} to move market {m.pair}'s oracle from")
            pairs.append((raw[0], _price_raw(self.prices[key], raw[1], asset.symbol)))
        m.price_raw = morpho_oracle_price(base.price_raw, pairs[0], pairs[1])
        if lk in self.prices:
            m.loan_usd = float(self.prices[lk])
        return True

    def _pick(self, change: Change) -> _Market:
        """The market a change acts on (see the module docstring)."""
        sym = change.asset.casefold()
        stored = self._all_markets()
        candidates: dict[str, tuple[str, str, str]] = {}  # id -> (pair, loan symbol, collateral symbol)
        for mid, v in stored.items():
            candidates[mid] = (f"{v['collateral_symbol']}/{v['loan_symbol']}", str(v["loan_symbol"]),
                               str(v["collateral_symbol"]))
        for mid, m in self.markets.items():
            candidates[mid] = (m.pair, m.loan.symbol, m.collateral.symbol)
        if change.market is not None:
            want = change.market.casefold()
            if _MARKET_ID.match(change.market):
                chosen = [mid for mid in candidates if mid.casefold().startswith(want)]
            else:
                chosen = [mid for mid, (pair, _, _) in candidates.items() if pair.casefold() == want]
            if not chosen:
                names = ", ".join(sorted({c[0] for c in candidates.values()}))
                raise WhatIfError(f"{change.venue} has no market {change.market!r}; its markets: {names}")
            if len(chosen) > 1:
                raise WhatIfError(f"{change.venue}: {change.market!r} names {len(chosen)} markets "
                                  f"({', '.join(sorted(chosen))}); give its id (0x…)")
            mid = chosen[0]
            pair, loan, coll = candidates[mid]
            if sym not in (loan.casefold(), coll.casefold()):
                raise WhatIfError(f"{change.venue}: market {pair} has no {change.asset} (collateral {coll}, "
                                  f"loan {loan})")
            if change.action in ("borrow", "repay") and sym != loan.casefold():
                raise WhatIfError(f"{change.venue}: market {pair} lends {loan}, not {change.asset} ({change.action} "
                                  "takes the loan token)")
            return self._open(mid)

        def fits(mid: str) -> bool:
            _, loan, coll = candidates[mid]
            if change.action in ("borrow", "repay"):
                return loan.casefold() == sym
            return sym in (loan.casefold(), coll.casefold())

        def held(mid: str) -> bool:
            m = self.markets.get(mid)
            if m is None:
                return False
            p = m.position
            if change.action == "repay":
                return p.borrow_shares > 0
            if change.action == "withdraw":
                return (p.collateral_raw > 0 and m.collateral.symbol.casefold() == sym) or (
                    p.supply_shares > 0 and m.loan.symbol.casefold() == sym)
            return bool(p.collateral_raw or p.borrow_shares or p.supply_shares)

        fitting = [mid for mid in candidates if fits(mid)]
        if not fitting:
            role = "the loan token of" if change.action in ("borrow", "repay") else "in"
            raise WhatIfError(f"{change.venue}: {change.asset} is not {role} any market it has "
                              f"({', '.join(sorted({c[0] for c in candidates.values()})) or 'none stored'})")
        preferred = [mid for mid in fitting if held(mid)] or fitting
        if len(preferred) > 1:
            pairs = ", ".join(sorted(candidates[mid][0] for mid in preferred))
            raise WhatIfError(f"{change.venue}: {change.asset} fits {len(preferred)} markets ({pairs}); name one: "
                              f"{change.venue}:{change.asset}@{candidates[preferred[0]][0]}=…")
        return self._open(preferred[0])

    def _open(self, mid: str) -> _Market:
        if mid in self.markets:
            return self.markets[mid]
        v = self._all_markets()[mid]
        if not _stamp_ok(v, self.snap):
            raise WhatIfError(f"{self.venue}: the stored state of market {v.get('symbol', mid)} is of block "
                              f"{v.get('block')}, not the snapshot's block {self.snap.block_number}: run "
                              "`xmargin sync --once` and try again")
        _detail(v, self._MARKET_KEYS, self.venue, self.snap)
        raw = self.ctx.usd_raw(self.snap.chain_id, self.snap.block_number, str(v["loan_token"]))
        if raw is None:
            raise WhatIfError(f"{self.venue}: no stored USD price of {v['loan_symbol']} at block "
                              f"{self.snap.block_number} to value market {v.get('symbol', mid)} with")
        m = self._market(v, raw[0] / 10 ** raw[1], MorphoPosition())
        self.original[mid] = dataclasses.replace(m)
        self.markets[mid] = m
        self._reprice(m)
        return m

    def apply(self, change: Change) -> tuple[str | None, dict[str, Any]]:
        m = self._pick(change)
        is_collateral = change.asset.casefold() == m.collateral.symbol.casefold() and change.action in (
            "supply", "withdraw")
        asset = m.collateral if is_collateral else m.loan
        what = f"{change.action} {asset.symbol} on {change.venue} ({m.pair})"
        raw = _to_raw(change.amount, asset.decimals, what)
        p, s = m.position, m.state

        def amount(x: int) -> str:
            return f"{_fmt(Decimal(x).scaleb(-asset.decimals))} {asset.symbol}"

        step: MorphoStep
        if change.action == "supply":
            step = morpho_supply_collateral(p, s, raw) if is_collateral else morpho_supply(p, s, raw)
        elif change.action == "withdraw":
            if is_collateral:
                if raw > p.collateral_raw:
                    raise WhatIfError(f"{what}: withdrawing {amount(raw)}, more than the {amount(p.collateral_raw)}"
                                      " of collateral")
                step = morpho_withdraw_collateral(p, s, raw, m.price_raw, m.lltv_wad)
            else:
                claim = _supplied(p, s)
                if raw > claim:
                    raise WhatIfError(f"{what}: withdrawing {amount(raw)}, more than the {amount(claim)} supplied")
                step = morpho_withdraw(p, s, raw)
        elif change.action == "borrow":
            step = morpho_borrow(p, s, raw, m.price_raw, m.lltv_wad)
        else:
            owed = m.health().borrowed_raw
            if raw > owed:
                raise WhatIfError(f"{what}: repaying {amount(raw)}, more than the {amount(owed)} owed")
            step = morpho_repay(p, s, raw)
        m.position, m.state = step.position, step.market
        return step.refused, {"asset": asset.symbol, "market": m.pair, "market_id": m.market_id,
                              "amount_raw": str(raw)}

    # -- results -----------------------------------------------------------------------------------------------
    def _open_markets(self) -> list[_Market]:
        return [m for m in self.markets.values()
                if m.position.collateral_raw or m.position.borrow_shares or m.position.supply_shares]

    def _figures(self) -> tuple[dict[str, Any], list[PositionRow], list[dict[str, Any]]]:
        rows: list[PositionRow] = []
        per_market: list[dict[str, Any]] = []
        collateral_usd = debt_usd = 0.0
        worst: int | None = None
        healthy = True
        for m in self._open_markets():
            h = m.health()
            ld, cd = m.loan.decimals, m.collateral.decimals
            coll_price_usd = m.price_raw / 10 ** (36 + ld - cd) * m.loan_usd
            coll_usd = from_raw(h.collateral_value_raw, ld) * m.loan_usd
            borrowed_usd = from_raw(h.borrowed_raw, ld) * m.loan_usd
            collateral_usd += coll_usd
            debt_usd += borrowed_usd
            healthy = healthy and h.healthy
            if h.health_wad is not None:
                worst = h.health_wad if worst is None else min(worst, h.health_wad)
            supplied = _supplied(m.position, m.state)
            for side, asset, raw, price, value, is_coll in (
                (PositionSide.COLLATERAL, m.collateral, m.position.collateral_raw, coll_price_usd, coll_usd, True),
                (PositionSide.DEBT, m.loan, h.borrowed_raw, m.loan_usd, borrowed_usd, False),
                (PositionSide.SUPPLY, m.loan, supplied, m.loan_usd, from_raw(supplied, ld) * m.loan_usd, False),
            ):
                if raw:
                    rows.append(PositionRow(asset=asset, side=side, amount_raw=raw,
                                            amount=from_raw(raw, asset.decimals), price_usd=price, value_usd=value,
                                            is_collateral=is_coll, market_key=m.market_id))
            per_market.append({
                "market_id": m.market_id, "pair": m.pair, "lltv": from_raw(m.lltv_wad, 18),
                "health_factor": h.health,
                "health_factor_raw": str(h.health_wad) if h.health_wad is not None else None,
                "healthy": h.healthy, "borrowed_raw": str(h.borrowed_raw),
                "collateral_raw": str(m.position.collateral_raw),
                "oracle_price_raw": str(m.price_raw),
                "liquidation_price": (from_raw(h.liquidation_price_raw, 36 + ld - cd) * m.loan_usd
                                      if h.liquidation_price_raw is not None else None),
                "max_borrow_usd": from_raw(h.max_borrow_raw, ld) * m.loan_usd,
            })
        figures = {
            "health_factor": worst / WAD if worst is not None else None,
            "health_factor_raw": str(worst) if worst is not None else None,
            "healthy": healthy, "collateral_usd": collateral_usd, "debt_usd": debt_usd,
        }
        return figures, rows, per_market

    def state(self) -> dict[str, Any]:
        figures, rows, per_market = self._figures()
        pairs = {m.market_id: m.pair for m in self.markets.values()}
        return {**figures, "markets": per_market,
                "positions": [_position_doc(p, pairs.get(p.market_key or "")) for p in rows]}

    def snapshot(self) -> SnapshotRow:
        figures, rows, per_market = self._figures()
        assert self.snap.health is not None
        health = dataclasses.replace(
            self.snap.health, collateral_usd=figures["collateral_usd"], debt_usd=figures["debt_usd"],
            health_factor=figures["health_factor"],
            health_factor_raw=int(figures["health_factor_raw"]) if figures["health_factor_raw"] else None,
            flags=(), extra={"markets": per_market})
        return dataclasses.replace(self.snap, positions=tuple(rows), health=health)

    def matches_sync(self) -> bool | None:
        h = self.snap.health
        raw = self._figures()[0]["health_factor_raw"]
        return h is not None and h.health_factor_raw == (int(raw) if raw is not None else None)


def _supplied(p: MorphoPosition, s: MorphoMarketState) -> int:
    from riskcore.venues.morpho_blue.health import supplied_assets

    return supplied_assets(p.supply_shares, s) if p.supply_shares else 0


class _Perp(_Venue):
    """Hyperliquid / dYdX v4: the margin rule of :mod:`riskcore.perp` rerun at the what-if marks."""

    kind = "perp"

    def __init__(self, item: LatestVenueHealth, ctx: _Context, venue_type: str) -> None:
        super().__init__(item, ctx)
        self.type = venue_type
        h = self.snap.health
        assert h is not None
        self.perps = [p for p in self.snap.positions if p.side is PositionSide.PERP]
        if venue_type == "hyperliquid":
            _detail(h.extra, ("cross_raw_usd",), self.venue, self.snap)
            keys: tuple[str, ...] = ("szi", "mark_usd", "tier_lower_usd", "tier_max_leverage", "cross")
        else:
            _detail(h.extra, ("usdc_usd",), self.venue, self.snap)
            keys = ("size", "mark_usd", "maintenance_margin_fraction", "initial_margin_fraction")
        for p in self.perps:
            _detail(p.extra, keys, self.venue, self.snap)

    def _marks(self) -> list[float]:
        return [float(self.moved[price_key(p.asset.symbol)]) if price_key(p.asset.symbol) in self.moved
                else float(p.extra["mark_usd"]) for p in self.perps]

    def _health(self) -> PerpHealth:
        h = self.snap.health
        assert h is not None
        n = len(self.perps)
        nan = np.full(n, np.nan)
        marks = np.array(self._marks(), dtype=np.float64)
        if self.type == "hyperliquid":
            width = max((len(p.extra["tier_lower_usd"]) for p in self.perps), default=1)
            lower = np.full((n, width), np.inf)
            lev = np.full((n, width), np.nan)
            for i, p in enumerate(self.perps):
                lows, levs = list(p.extra["tier_lower_usd"]), list(p.extra["tier_max_leverage"])
                lower[i, : len(lows)] = lows
                lev[i, : len(levs)] = levs
            szi = np.array([float(Decimal(str(p.extra["szi"]))) for p in self.perps], dtype=np.float64)
            fig = HyperliquidFigures(
                wallet=self.snap.wallet, coin=tuple(p.asset.symbol for p in self.perps), szi=szi,
                position_value_usd=np.abs(szi) * marks, entry_px=nan,
                is_cross=np.array([bool(p.extra["cross"]) for p in self.perps], dtype=bool),
                isolated_raw_usd=np.array([np.nan if p.extra.get("isolated_raw_usd") is None
                                           else float(p.extra["isolated_raw_usd"]) for p in self.perps]),
                tier_lower_usd=lower, tier_max_leverage=lev, cross_raw_usd=float(h.extra["cross_raw_usd"]),
                reported_cross_account_value_usd=math.nan, reported_cross_maintenance_usd=math.nan,
                reported_liquidation_px=nan, reported_margin_used_usd=nan, reported_unrealized_pnl_usd=nan)
            return hyperliquid_health(fig, marks)
        fig_d = DydxFigures(
            account=str(self.perps[0].extra.get("account", self.snap.wallet)) if self.perps else self.snap.wallet,
            market=tuple(p.asset.symbol for p in self.perps),
            size=np.array([float(p.extra["size"]) for p in self.perps], dtype=np.float64), oracle_usd=marks,
            initial_margin_fraction=np.array([float(p.extra["initial_margin_fraction"]) for p in self.perps]),
            maintenance_margin_fraction=np.array([float(p.extra["maintenance_margin_fraction"])
                                                  for p in self.perps]),
            usdc_usd=float(h.extra["usdc_usd"]), reported_equity_usd=math.nan,
            reported_free_collateral_usd=math.nan)
        return dydx_health(fig_d, marks)

    def _figures(self) -> dict[str, Any]:
        health = self._health()
        equity = float(np.sum(health.equity_usd))
        maintenance = float(np.sum(health.maintenance_usd))
        finite = [float(x) for x in health.health if math.isfinite(x)]
        return {
            "health_factor": min(finite) if finite and maintenance > 0 else None,
            "health_factor_raw": None,
            "healthy": not health.any_liquidatable,
            "collateral_usd": equity, "debt_usd": 0.0,
            "equity_usd": equity, "maintenance_margin_usd": maintenance,
            "liquidation_price": {label: _finite(float(px))
                                  for label, px in zip(health.position_labels, health.liquidation_px, strict=True)},
        }

    def _rows(self) -> list[PositionRow]:
        out = []
        for p, mark in zip(self.perps, self._marks(), strict=True):
            out.append(dataclasses.replace(p, price_usd=mark, value_usd=p.amount * mark))
        return out

    def state(self) -> dict[str, Any]:
        return {**self._figures(), "positions": [_position_doc(p) for p in self._rows()]}

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
        return bool(f["health_factor"] == _finite(h.health_factor)
                    and f["equity_usd"] == h.extra.get("equity_usd")
                    and f["maintenance_margin_usd"] == h.extra.get("maintenance_margin_usd"))


class _Uniswap(_Venue):
    """Uniswap v3 ranges: revalued (float) as if each pool moved to its two tokens' USD ratio."""

    kind = "lp"

    def _positions(self) -> tuple[PositionRow, ...]:
        legs: dict[str, list[PositionRow]] = {}
        for p in self.snap.positions:
            if p.side is PositionSide.LP:
                legs.setdefault(str(p.extra.get("token_id")), []).append(p)
        out: list[PositionRow] = [p for p in self.snap.positions if p.side is not PositionSide.LP]
        for pair in legs.values():
            keys = [price_key(p.asset.symbol) for p in pair]
            if len(pair) != 2 or not any(k in self.moved for k in keys) or any(p.price_usd is None for p in pair):
                out.extend(self._repriced(p) for p in pair)
                continue
            t0, t1 = pair
            p0 = float(self.moved.get(keys[0], t0.price_usd or 0.0))
            p1 = float(self.moved.get(keys[1], t1.price_usd or 0.0))
            d0, d1 = t0.asset.decimals, t1.asset.decimals
            sqrt_price = math.sqrt(p0 / p1 * 10 ** (d1 - d0))
            lo = get_sqrt_ratio_at_tick(int(t0.extra["tick_lower"])) / 2**96
            hi = get_sqrt_ratio_at_tick(int(t0.extra["tick_upper"])) / 2**96
            a0, a1 = amounts_float(float(int(str(t0.extra["liquidity"]))), sqrt_price, lo, hi)
            for leg, principal, price in ((t0, float(a0), p0), (t1, float(a1), p1)):
                raw = round(principal) + int(str(leg.extra.get("fees_raw", 0)))
                amount = from_raw(raw, leg.asset.decimals)
                out.append(dataclasses.replace(leg, amount_raw=raw, amount=amount, price_usd=price,
                                               value_usd=amount * price,
                                               extra={**leg.extra, "principal_raw": str(round(principal))}))
        return tuple(out)

    def state(self) -> dict[str, Any]:
        rows = self._positions()
        value = sum(p.value_usd or 0.0 for p in rows)
        return {"health_factor": None, "health_factor_raw": None, "healthy": True, "collateral_usd": value,
                "debt_usd": 0.0, "positions": [_position_doc(p) for p in rows]}

    def snapshot(self) -> SnapshotRow:
        rows = self._positions()
        assert self.snap.health is not None
        health = dataclasses.replace(self.snap.health, collateral_usd=sum(p.value_usd or 0.0 for p in rows))
        return dataclasses.replace(self.snap, positions=rows, health=health)


# --- the what-if --------------------------------------------------------------------------------------------
def _model(item: LatestVenueHealth, venue_type: str, ctx: _Context) -> _Venue:
    if venue_type == "aave_v3":
        return _Aave(item, ctx)
    if venue_type == "morpho_blue":
        return _Morpho(item, ctx)
    if venue_type in _PERPS:
        return _Perp(item, ctx, venue_type)
    if venue_type == "uniswap_v3":
        return _Uniswap(item, ctx)
    return _Venue(item, ctx)


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
    ctx = _Context(store, latest)
    notes: list[str] = []
    good = [item for item in latest if item.snapshot.status is SnapshotStatus.OK and item.snapshot.health]
    for item in latest:
        if item not in good:
            notes.append(f"{item.venue}: its newest read failed ({item.snapshot.error or 'no health'}); left out")
    before = {item.venue: _model(item, types.get(item.venue, ""), ctx) for item in good}
    after = {item.venue: _model(item, types.get(item.venue, ""), ctx) for item in good}

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
        refused, what = model.apply(change)
        applied.append({"step": step, "action": change.action, "venue": change.venue,
                        "asset": what.get("asset", change.asset), "market": what.get("market"),
                        "market_id": what.get("market_id"), "amount": _fmt(change.amount),
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
    if any(types.get(str(v["venue"])) == "uniswap_v3" and v["changed"] for v in venues):
        notes.append("uniswap_v3: ranges revalued as if each pool moved to its tokens' USD ratio (the fees of that "
                     "move are not included)")
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
        moved_prices.append({"asset": by_key[key], "price_usd": float(usd), "price": _fmt(usd),
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
