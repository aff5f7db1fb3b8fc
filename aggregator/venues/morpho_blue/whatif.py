"""Morpho Blue's what-if part: each market's shares and totals replayed with ``Morpho.sol``'s own roundings
(:mod:`riskcore.venues.morpho_blue.whatif`), and ``_isHealthy`` rerun
(:func:`riskcore.venues.morpho_blue.health.position_health`, oracle price at 1e36).

A market's oracle moves by the ratio of its two tokens' USD prices
(:func:`riskcore.venues.morpho_blue.whatif.morpho_oracle_price`). Changes: ``supply`` of a market's collateral
token is ``supplyCollateral``, of its loan token a lender's ``supply`` (``withdraw`` likewise); ``borrow`` /
``repay`` the loan token. Which market: ``@MARKET`` names it — its pair as the health document shows it
(``WETH/USDC``: collateral/loan) or a prefix of its id (``0x`` + at least 6 hex digits); without it, the one
market where the wallet already holds a position that fits the action, else the one market that fits at all;
more than one is a :class:`~aggregator.venues.whatif.WhatIfError` naming them.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar

from pydantic import BaseModel, Field

from aggregator.venues.morpho_blue.detail import MorphoMarketStateDetail, MorphoReplayDetail
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
    stamp_ok,
    to_raw,
)
from db.rows import AssetRow, LatestVenueHealth, PositionRow, PositionSide, SnapshotRow
from riskcore.units import WAD, from_raw
from riskcore.venues.morpho_blue.health import MorphoMarketState, MorphoPositionHealth, supplied_assets
from riskcore.venues.morpho_blue.whatif import (
    MorphoPosition,
    MorphoStep,
    morpho_borrow,
    morpho_oracle_price,
    morpho_repay,
    morpho_supply,
    morpho_supply_collateral,
    morpho_withdraw,
    morpho_withdraw_collateral,
)

__all__ = ["WHATIF", "MorphoBlueState", "MorphoBlueWhatIf", "WhatIfMarketOut"]

_MARKET_ID = re.compile(r"^0x[0-9a-fA-F]{6,64}$")


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


class MorphoBlueState(PricesOnly):
    """The wallet's Morpho Blue markets: each market's shares and totals replayed with ``Morpho.sol``'s roundings."""

    def __init__(self, item: LatestVenueHealth, ctx: WhatIfContext) -> None:
        super().__init__(item, ctx)
        h = self.snap.health
        assert h is not None
        self.markets: dict[str, _Market] = {}
        for m in replay_detail(MorphoReplayDetail, h.extra, self.venue, self.snap).markets:
            position = MorphoPosition(m.supply_shares, m.borrow_shares, m.collateral_raw)
            self.markets[m.market_id] = self._market(m, m.loan_usd, position)
        self.original = {k: dataclasses.replace(v) for k, v in self.markets.items()}

    def _market(self, m: MorphoMarketStateDetail, loan_usd: float, position: MorphoPosition) -> _Market:
        chain = self.snap.chain_id
        return _Market(
            market_id=m.market_id,
            loan=AssetRow(chain, m.loan_token, m.loan_symbol, m.loan_decimals),
            collateral=AssetRow(chain, m.collateral_token, m.collateral_symbol, m.collateral_decimals),
            lltv_wad=m.lltv_wad, price_raw=m.price_raw,
            state=MorphoMarketState(m.total_supply_assets_raw, m.total_supply_shares, m.total_borrow_assets_raw,
                                    m.total_borrow_shares, m.accrued_to, m.fee_wad),
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
            pairs.append((raw[0], price_raw(self.prices[key], raw[1], asset.symbol)))
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
        if not stamp_ok(v, self.snap):
            raise WhatIfError(f"{self.venue}: the stored state of market {v.get('symbol', mid)} is of block "
                              f"{v.get('block')}, not the snapshot's block {self.snap.block_number}: run "
                              "`xmargin sync --once` and try again")
        d = replay_detail(MorphoMarketStateDetail, v, self.venue, self.snap)
        raw = self.ctx.usd_raw(self.snap.chain_id, self.snap.block_number, d.loan_token)
        if raw is None:
            raise WhatIfError(f"{self.venue}: no stored USD price of {d.loan_symbol} at block "
                              f"{self.snap.block_number} to value market {v.get('symbol', mid)} with")
        m = self._market(d, raw[0] / 10 ** raw[1], MorphoPosition())
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
        raw = to_raw(change.amount, asset.decimals, what)
        p, s = m.position, m.state

        def amount(x: int) -> str:
            return f"{fmt(Decimal(x).scaleb(-asset.decimals))} {asset.symbol}"

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
                "positions": [position_doc(p, pairs.get(p.market_key or "")) for p in rows]}

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
    return supplied_assets(p.supply_shares, s) if p.supply_shares else 0


class WhatIfMarketOut(BaseModel):
    """One Morpho Blue market of the wallet, as ``Morpho._isHealthy`` judges it."""

    market_id: str
    pair: str
    lltv: float
    health_factor: float | None
    health_factor_raw: str | None = Field(description="maxBorrow × 1e18 / borrowed, rounded down (WAD).")
    healthy: bool
    borrowed_raw: str
    collateral_raw: str
    oracle_price_raw: str = Field(description="The oracle's price() (1e36-scaled), after the what-if prices.")
    liquidation_price: float | None = Field(description="USD per collateral token below which it is liquidated.")
    max_borrow_usd: float


class MorphoBlueWhatIf(PartBase):
    actions: ClassVar[tuple[Action, ...]] = ("supply", "withdraw", "borrow", "repay")
    cli_examples: ClassVar[Mapping[Action, str]] = {"supply": "WETH=2", "borrow": "USDC@WETH/USDC=500"}
    cli_market_help = "a Morpho market (its pair, WETH/USDC, or an id prefix) where the asset is in several."
    api_action_doc = ("Morpho Blue: supply / withdraw a market's collateral token (supplyCollateral / "
                      "withdrawCollateral) or its loan token (lending); borrow / repay the loan token.")
    api_market_doc = ("Morpho Blue only: the market, as its pair (`WETH/USDC`: collateral/loan) or a prefix of its "
                      "id (`0x` + at least 6 hex digits). Optional when one market fits: the one where the wallet "
                      "already holds a position that fits the action, else the only one that fits.")
    api_engine_doc = "Morpho as _isHealthy"
    api_health_raw_doc = "Morpho: the weakest market's"
    api_position_market_doc = "Morpho: the pair"
    api_state_fields: ClassVar[Mapping[str, tuple[Any, Any]]] = {
        "markets": (list[WhatIfMarketOut] | None, Field(None, description="Morpho Blue: each market of the wallet.")),
    }

    def open(self, item: LatestVenueHealth, ctx: WhatIfContext) -> VenueWhatIf:
        return MorphoBlueState(item, ctx)


WHATIF = MorphoBlueWhatIf()
