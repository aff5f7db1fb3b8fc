"""Aave v3's what-if part: the wallet's scaled balances replayed with the pool's own integer arithmetic
(:mod:`riskcore.venues.aave_v3.whatif`), and ``getUserAccountData`` recomputed
(:func:`riskcore.venues.aave_v3.health.account_data`) — the health factor is the protocol's to the last unit.

A what-if price is the reserve's oracle price, rounded half-even to the oracle's base unit (1e-8 USD). Changes:
``supply`` / ``withdraw`` the token, ``borrow`` it at the variable rate, ``repay`` the variable debt (the stable
debt when there is no variable debt). A reserve the wallet does not hold is opened from the venue's stored market
state when that is of the snapshot's block.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar

from pydantic import Field

from aggregator.venues.aave_v3.detail import AaveBalanceDetail, AaveHealthDetail, AaveMarketReserveDetail
from aggregator.venues.detail import parse
from aggregator.venues.whatif import (
    Action,
    Change,
    PartBase,
    PricesOnly,
    VenueWhatIf,
    WhatIfContext,
    WhatIfError,
    fmt,
    position_doc,
    price_key,
    price_raw,
    replay_detail,
    resolve_symbol,
    stamp_ok,
    to_raw,
)
from db.rows import AssetRow, LatestVenueHealth, PositionRow, PositionSide, SnapshotRow
from riskcore.units import WAD, bps_to_fraction, from_raw
from riskcore.venues.aave_v3.health import AaveEMode, AaveReserveParams, AaveUserBalance
from riskcore.venues.aave_v3.whatif import (
    AaveReserveFlags,
    AaveStep,
    AaveWallet,
    aave_borrow,
    aave_repay,
    aave_supply,
    aave_withdraw,
)

__all__ = ["WHATIF", "AaveV3State", "AaveV3WhatIf"]


@dataclass
class _Reserve:
    asset: AssetRow
    liquidation_threshold_bps: int
    """In force for this wallet (the e-mode category's when the reserve is in the wallet's category)."""
    liquidation_bonus_bps: int
    debt_ceiling: int


def _params(d: AaveMarketReserveDetail | AaveBalanceDetail) -> AaveReserveParams:
    return AaveReserveParams(d.reserve_id, d.decimals, d.reserve_ltv_bps, d.reserve_liquidation_threshold_bps,
                             d.reserve_emode_category, d.price_raw, d.normalized_income_ray,
                             d.normalized_variable_debt_ray)


def _flags(d: AaveMarketReserveDetail) -> AaveReserveFlags:
    return AaveReserveFlags(active=d.active, frozen=d.frozen, paused=d.paused,
                            borrowing_enabled=d.borrowing_enabled, debt_ceiling=d.debt_ceiling)


class AaveV3State(PricesOnly):
    """The wallet's Aave account at the snapshot's block, replayed."""

    def __init__(self, item: LatestVenueHealth, ctx: WhatIfContext) -> None:
        super().__init__(item, ctx)
        h = self.snap.health
        assert h is not None
        account = replay_detail(AaveHealthDetail, h.extra, self.venue, self.snap)
        self.base = account.base_decimals
        self.user_configuration = account.user_configuration
        self.user_emode = account.emode_category
        categories: dict[int, AaveEMode] = {}
        self.emode_bonus = 0
        if self.user_emode and account.emode is not None:
            emode = account.emode
            categories[self.user_emode] = AaveEMode(emode.ltv_bps, emode.liquidation_threshold_bps, emode.price_raw)
            self.emode_bonus = emode.liquidation_bonus_bps
        self.meta: dict[int, _Reserve] = {}
        reserves: dict[int, AaveReserveParams] = {}
        balances: dict[int, AaveUserBalance] = {}
        flags: dict[int, AaveReserveFlags] = {}
        for p in self.snap.positions:
            e = replay_detail(AaveBalanceDetail, p.extra, self.venue, self.snap)
            rid = e.reserve_id
            reserves[rid] = _params(e)
            bal = balances.get(rid) or AaveUserBalance(rid, 0, 0, 0, e.usage_as_collateral, e.borrowing)
            if p.side is PositionSide.COLLATERAL:
                bal = dataclasses.replace(bal, scaled_a_token_balance_raw=e.scaled_raw)
            else:
                bal = dataclasses.replace(bal, scaled_variable_debt_raw=e.scaled_raw, stable_debt_raw=e.stable_debt_raw)
            balances[rid] = bal
            flags[rid] = AaveReserveFlags(debt_ceiling=e.debt_ceiling)
            self.meta[rid] = _Reserve(p.asset, e.liquidation_threshold_bps, e.liquidation_bonus_bps, e.debt_ceiling)
        self.wallet = AaveWallet(reserves, balances, self.user_emode, categories, flags)
        self.unknown_bits: list[int] = []
        self._params_loaded = False

    # -- market state (reserves the wallet does not hold, the reserves' flags) -----------------------------------
    def _load_params(self) -> None:
        """Reserve flags, and the reserves behind configuration bits without a balance, from the venue's stored
        market state when it is of the snapshot's block."""
        if self._params_loaded:
            return
        self._params_loaded = True
        fresh = {k: v for k, v in self.ctx.markets(self.venue).items() if stamp_ok(v, self.snap)}
        by_id = {d.reserve_id: (k, d) for k, v in fresh.items() if "reserve_id" in v
                 for d in (parse(AaveMarketReserveDetail, v),)}
        flags = dict(self.wallet.flags)
        for rid, (_key, v) in by_id.items():
            if rid in self.wallet.reserves:
                flags[rid] = _flags(v)
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

    def _add_reserve(self, key: str, v: AaveMarketReserveDetail, *, usage: bool = False,
                     borrowing: bool = False) -> int:
        rid = v.reserve_id
        params = _params(v)
        in_emode = self.user_emode != 0 and params.emode_category == self.user_emode
        category = self.wallet.emode_categories.get(self.user_emode)
        lt = category.liquidation_threshold_bps if in_emode and category else params.liquidation_threshold_bps
        bonus = self.emode_bonus if in_emode else v.liquidation_bonus_bps
        symbol = str(self.ctx.markets(self.venue)[key].get("symbol", key))
        self.meta[rid] = _Reserve(AssetRow(self.snap.chain_id, key, symbol, params.decimals), lt, bonus,
                                  v.debt_ceiling)
        self.wallet = dataclasses.replace(
            self.wallet, reserves={**self.wallet.reserves, rid: params},
            balances={**self.wallet.balances, rid: AaveUserBalance(rid, 0, 0, 0, usage, borrowing)},
            flags={**self.wallet.flags, rid: _flags(v)})
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
                new[rid] = price_raw(self.prices[key], self.base, m.asset.symbol)
                in_category = category is not None and self.wallet.reserves[rid].emode_category == self.user_emode
                note = (f"{self.venue}: the wallet's e-mode category prices {m.asset.symbol} with its own oracle, "
                        "which a what-if price does not move")
                if in_category and category is not None and category.price_raw and note not in self.notes:
                    self.notes.append(note)
        self.wallet = self.wallet.with_prices(new)

    # -- changes -----------------------------------------------------------------------------------------------
    def _reserve(self, change: Change) -> int:
        held = {m.asset.symbol: rid for rid, m in self.meta.items()}
        symbol = resolve_symbol(change.asset, held)
        if symbol is not None:
            return held[symbol]
        markets = self.ctx.markets(self.venue)
        by_symbol = {str(v.get("symbol")): k for k, v in markets.items() if "reserve_id" in v}
        symbol = resolve_symbol(change.asset, by_symbol)
        if symbol is None:
            known = sorted(set(held) | {s for s in by_symbol if s != "None"})
            raise WhatIfError(f"{change.venue} has no reserve {change.asset!r}; its reserves: {', '.join(known)}")
        key = by_symbol[symbol]
        if not stamp_ok(markets[key], self.snap):
            raise WhatIfError(f"{change.venue}: the stored state of reserve {symbol} is of block "
                              f"{markets[key].get('block')}, not the snapshot's block {self.snap.block_number}: run "
                              "`xmargin sync --once` and try again")
        return self._add_reserve(key, parse(AaveMarketReserveDetail, markets[key]))

    def apply(self, change: Change) -> tuple[str | None, dict[str, Any]]:
        if change.market is not None:
            raise WhatIfError(f"{change.venue}: @{change.market}: Aave has no markets to choose (one pool)")
        self._load_params()
        rid = self._reserve(change)
        meta = self.meta[rid]
        what = f"{change.action} {change.asset} on {change.venue}"
        raw = to_raw(change.amount, meta.asset.decimals, what)
        sym = meta.asset.symbol
        w = self.wallet
        step: AaveStep
        if change.action == "supply":
            step = aave_supply(w, rid, raw)
        elif change.action == "withdraw":
            held = w.supplied_raw(rid)
            if raw > held:
                raise WhatIfError(f"{what}: withdrawing {fmt(change.amount)} {sym}, more than the "
                                  f"{fmt(Decimal(held).scaleb(-meta.asset.decimals))} {sym} supplied")
            step = aave_withdraw(w, rid, raw)
        elif change.action == "borrow":
            step = aave_borrow(w, rid, raw)
        else:
            variable, stable = w.variable_debt_raw(rid), w.stable_debt_raw(rid)
            owed = variable or stable
            if raw > owed:
                kind = "variable " if variable and stable else ""
                raise WhatIfError(f"{what}: repaying {fmt(change.amount)} {sym}, more than the "
                                  f"{fmt(Decimal(owed).scaleb(-meta.asset.decimals))} {sym} of {kind}debt owed")
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
        return {**self._figures(), "positions": [position_doc(p) for p in self._rows()]}

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


class AaveV3WhatIf(PartBase):
    actions: ClassVar[tuple[Action, ...]] = ("supply", "withdraw", "borrow", "repay")
    cli_examples: ClassVar[Mapping[Action, str]] = {"repay": "USDC=5000", "withdraw": "WETH=1.5"}
    api_action_doc = ("Aave: supply / withdraw the token, borrow it (variable rate), repay the variable debt (the "
                      "stable debt when there is none).")
    api_engine_doc = "Aave exactly as getUserAccountData"
    api_health_raw_doc = "Aave: exactly what getUserAccountData's healthFactor returns (WAD)"
    api_position_market_doc = "Aave: the reserve's asset"
    api_state_fields: ClassVar[Mapping[str, tuple[Any, Any]]] = {
        "liquidation_threshold": (float | None, None),
        "ltv": (float | None, None),
        "available_borrows_usd": (float | None, None),
        "total_collateral_base_raw": (str | None, Field(None, description="Aave: getUserAccountData's "
                                                                          "totalCollateralBase.")),
        "total_debt_base_raw": (str | None, Field(None, description="Aave: getUserAccountData's totalDebtBase.")),
    }

    def open(self, item: LatestVenueHealth, ctx: WhatIfContext) -> VenueWhatIf:
        return AaveV3State(item, ctx)


WHATIF = AaveV3WhatIf()
