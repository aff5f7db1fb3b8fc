"""The wallet's true risk across venues: from the store's latest snapshots to the netting engine and back.

:func:`wallet_book` turns one wallet's newest snapshot on every venue into a :class:`riskcore.book.Book`
(Aave accounts with each reserve's threshold and bonus as the protocol applies them, Morpho markets with their
LLTV, perp cross accounts with their maintenance rate, Uniswap ranges). :func:`assess_wallet` runs the
liquidation-aware scenario margin over SPAN-style scenarios whose scan ranges follow EWMA volatility from the
market data (dynamic margin), a correlation breakdown and every historical 1-day joint move scaled to today's
volatility (filtered historical simulation), and VaR / ES (delta-normal with EWMA covariance, and historical).

Tokens map to risk factors through :data:`riskcore.assets.DEFAULT_ASSET_MAP` (WETH → ETH); stablecoins keep
their own factor at $1; a factor without market history (e.g. AAVE) borrows ETH's, flagged ``proxy``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from aggregator.marketdata import MarketDataNotFoundError, PriceHistory, load_prices
from db.rows import LatestVenueHealth, PositionSide, SnapshotRow
from riskcore.assets import DEFAULT_ASSET_MAP, AssetKind
from riskcore.book import AaveAccountSpec, Book, LpSpec, MorphoMarketSpec, PerpAccountSpec, SpotSpec, WalletSpec
from riskcore.ewma import ewma_covariance
from riskcore.margin import Assessment, ScenarioResult, assess, revalue
from riskcore.scenarios import (
    ScenarioSet,
    correlation_breakdown,
    fhs_volatility,
    historical_scenarios,
    price_vol_grid,
    scan_ranges,
    span_scenarios,
)
from riskcore.var import (
    CONFIDENCE_LEVELS,
    HORIZONS_DAYS,
    historical_var_es_portfolios,
    monte_carlo_var_es,
    parametric_var_es,
)

__all__ = ["RiskInputs", "assess_book", "build_book", "pnl_grids", "risk_documents", "wallet_book"]

PROXY = "ETH"
"""The factor whose history stands in for a factor the market data lacks."""
SCAN_K = 3.0
"""Scan range = max(floor, k × daily EWMA vol × √horizon)."""
SCAN_FLOOR = 0.10
MC_SCENARIOS = 10_000
"""Monte Carlo draws per horizon (multivariate normal with the EWMA covariance; common to all wallets)."""
MC_SEED = 20_251_121
GRID_PRICE_MOVES: tuple[float, ...] = tuple(round(-0.5 + 0.05 * i, 2) for i in range(21))
"""The P&L heatmap's joint price moves of every non-stable underlying: −50 % … +50 % in 5 % steps."""
GRID_VOL_SHIFTS: tuple[float, ...] = (-0.5, -0.25, 0.0, 0.25, 0.5, 1.0)
"""The heatmap's relative volatility shifts (options and other vol-sensitive positions; ×0.5 … ×2)."""


@dataclass(frozen=True)
class RiskInputs:
    """Wallets' book and what it was built from."""

    wallets: tuple[str, ...]
    book: Book
    factors: tuple[str, ...]
    """The book's underlyings (risk factors), in book order."""
    stable: frozenset[str]
    block: int | None


def _factor(symbol: str) -> tuple[str, bool]:
    """(risk factor, is a stablecoin) of a token symbol or a perp market (``ETH-USD`` → ETH)."""
    for suffix in ("-USD", "-PERP", "-USDC"):
        if symbol.endswith(suffix):
            symbol = symbol[: -len(suffix)]
            break
    try:
        spec = DEFAULT_ASSET_MAP[symbol]
    except KeyError:
        return symbol, False
    if spec.kind is AssetKind.STABLE:
        return symbol, True  # each stablecoin is its own factor, pinned at $1 unless it depegs
    return spec.underlying, False


def wallet_book(wallet: str, latest: Sequence[LatestVenueHealth], venue_types: Mapping[str, str]) -> RiskInputs:
    """One wallet's newest snapshot on every venue as a book (prices: the snapshots' own USD prices)."""
    return build_book({wallet: [item.snapshot for item in latest]}, venue_types)


def build_book(snapshots: Mapping[str, Sequence[SnapshotRow]], venue_types: Mapping[str, str]) -> RiskInputs:
    """Many wallets' snapshots (wallet → its snapshots, one per venue) as one vectorized book."""
    prices: dict[str, float] = {}
    stable: set[str] = set()
    wallets = [WalletSpec(w, tuple(_accounts(snaps, venue_types, prices, stable))) for w, snaps in snapshots.items()]
    blocks = [s.block_number for snaps in snapshots.values() for s in snaps]
    book = Book.from_wallets(wallets, prices, stable=stable)
    return RiskInputs(tuple(snapshots), book, book.underlyings, frozenset(stable), max(blocks) if blocks else None)


def _accounts(
    snapshots: Sequence[SnapshotRow], venue_types: Mapping[str, str], prices: dict[str, float], stable: set[str]
) -> list[Any]:
    accounts: list[Any] = []

    def factor(symbol: str, price: float | None) -> str:
        name, is_stable = _factor(symbol)
        if is_stable:
            stable.add(name)
        if price is not None and name not in prices:
            prices[name] = 1.0 if is_stable else price
        return name

    for snap in snapshots:
        if snap.health is None:
            continue
        kind = venue_types.get(snap.venue, "")
        positions = snap.positions
        if kind == "aave_v3":
            collateral: dict[str, tuple[float, float]] = {}
            debt: dict[str, float] = defaultdict(float)
            bonus_num = bonus_den = 0.0
            for p in positions:
                f = factor(p.asset.symbol, p.price_usd)
                if p.side is PositionSide.COLLATERAL:
                    lt = float(p.extra.get("liquidation_threshold_bps", 0)) / 1e4 if p.is_collateral else 0.0
                    amount, _ = collateral.get(f, (0.0, lt))
                    collateral[f] = (amount + p.amount, lt)
                    if p.is_collateral and p.value_usd:
                        bonus_num += p.value_usd * (float(p.extra.get("liquidation_bonus_bps", 10_000)) / 1e4 - 1)
                        bonus_den += p.value_usd
                elif p.side is PositionSide.DEBT:
                    debt[f] += p.amount
            bonus = bonus_num / bonus_den if bonus_den else 0.05
            accounts.append(AaveAccountSpec(collateral, dict(debt), bonus=bonus, venue=snap.venue))
        elif kind == "morpho_blue":
            by_market: dict[str, dict[str, Any]] = defaultdict(dict)
            for p in positions:
                f = factor(p.asset.symbol, p.price_usd)
                if p.side is PositionSide.SUPPLY:  # lending to the market: held, never liquidated
                    accounts.append(SpotSpec(f, p.amount, venue=snap.venue))
                elif p.market_key is not None and p.side in (PositionSide.COLLATERAL, PositionSide.DEBT):
                    by_market[p.market_key][str(p.side)] = (f, p.amount)
            markets = {str(m["market_id"]): m for m in snap.health.extra.get("markets", [])}
            for market_id, legs in by_market.items():
                coll_f, coll = legs.get("collateral", (None, 0.0))
                loan_f, owed = legs.get("debt", (None, 0.0))
                meta = markets.get(market_id, {})
                if coll_f is None:
                    continue  # debt without collateral cannot be opened on Morpho
                if loan_f is None:  # collateral without debt: still the wallet's exposure, never liquidated
                    loan_f = coll_f
                accounts.append(MorphoMarketSpec(coll_f, coll, loan_f, owed, float(meta.get("lltv", 0.0)),
                                                 venue=snap.venue))
        elif kind in ("hyperliquid", "dydx_v4"):
            perps = [p for p in positions if p.side is PositionSide.PERP]
            if not perps:
                continue
            notional = sum(abs(p.amount) * (p.price_usd or 0.0) for p in perps)
            maintenance = float(snap.health.extra.get("maintenance_margin_usd", 0.0))
            mmr = maintenance / notional if notional else 0.0
            equity = float(snap.health.extra.get("equity_usd", snap.health.collateral_usd))
            sizes = {factor(p.asset.symbol, p.price_usd): (p.amount, mmr) for p in perps}
            cash = equity - sum(p.amount * (p.price_usd or 0.0) for p in perps)
            accounts.append(PerpAccountSpec(cash, sizes, venue=snap.venue))
        elif kind == "uniswap_v3":
            legs_by_nft: dict[str, list[Any]] = defaultdict(list)
            for p in positions:
                if p.side is PositionSide.LP:
                    legs_by_nft[str(p.extra.get("token_id"))].append(p)
            for nft_legs in legs_by_nft.values():
                if len(nft_legs) != 2:
                    continue
                t0, t1 = nft_legs
                f0, f1 = factor(t0.asset.symbol, t0.price_usd), factor(t1.asset.symbol, t1.price_usd)
                d0, d1 = t0.asset.decimals, t1.asset.decimals
                liquidity = int(str(t0.extra["liquidity"])) / 10 ** ((d0 + d1) / 2)
                lo = 1.0001 ** int(str(t0.extra["tick_lower"])) * 10 ** (d0 - d1)
                hi = 1.0001 ** int(str(t0.extra["tick_upper"])) * 10 ** (d0 - d1)
                accounts.append(LpSpec(f0, f1, liquidity, lo, hi, venue=snap.venue))
    return accounts


def _history(factors: Sequence[str]) -> tuple[PriceHistory | None, dict[str, str]]:
    """Daily history for the risky factors (proxying the ones the data lacks)."""
    source = {f: f for f in factors}
    try:
        available = set(load_prices(["ETH"]).symbols)
        for f in factors:
            try:
                load_prices([f])
                available.add(f)
            except (MarketDataNotFoundError, KeyError, ValueError):
                source[f] = PROXY
        names = sorted({source[f] for f in factors})
        return load_prices(names), source
    except MarketDataNotFoundError:
        return None, source


def assess_book(
    inputs: RiskInputs, horizon_days: float = 1.0
) -> tuple[Assessment, ScenarioSet, list[dict[str, Any]]]:
    """Scenario margin (SPAN-style with dynamic scan ranges + correlation breakdown) and VaR / ES of every
    wallet of the book at once; the third item holds each wallet's extra figures (book order)."""
    risky = [f for f in inputs.factors if f not in inputs.stable]
    history, source = _history(risky)
    flags: list[str] = [f"proxy:{f}={PROXY}" for f in risky if source[f] != f]
    historical: ScenarioSet | None = None
    simple: np.ndarray[Any, np.dtype[np.float64]] | None = None
    if history is not None and risky:
        col = {s: i for i, s in enumerate(history.symbols)}
        idx = [col[source[f]] for f in risky]
        returns = history.log_returns()[:, idx]
        vol_then, vol_now = fhs_volatility(returns)
        ranges = scan_ranges(vol_now, horizon_days, k=SCAN_K, floors=SCAN_FLOOR)
        simple = history.simple_returns()[:, idx]
        cov = ewma_covariance(simple)
        if float(horizon_days).is_integer():
            # Filtered historical simulation: every joint move since the data starts, at today's volatility.
            historical = historical_scenarios(risky, returns, history.dates[1:], int(horizon_days),
                                              vol_now=vol_now, vol_then=vol_then)
    else:
        flags.append("no_market_data")
        vol_now = np.full(len(risky), math.nan)
        ranges = np.full(len(risky), 0.3)
        cov = None
    scenarios = span_scenarios(risky, ranges, horizon_days=horizon_days) if risky else None
    breakdown = correlation_breakdown(risky, horizon_days=horizon_days) if risky else None
    sets = [s for s in (scenarios, breakdown, historical) if s is not None]
    scenario_set = ScenarioSet.concat(*sets) if sets else user_noop(inputs.factors, horizon_days)
    result = assess(inputs.book, scenario_set)
    book = inputs.book
    n_w = book.n_wallets
    var: list[dict[str, Any]] = [{} for _ in range(n_w)]
    if cov is not None:
        # USD delta per (wallet, risky factor): the linear exposure the VaR models need, shape (W, R).
        deltas = book.factor_exposure_usd()[:, [book.underlyings.index(f) for f in risky]]
        for name, h in HORIZONS_DAYS.items():
            out = parametric_var_es(deltas, cov, list(CONFIDENCE_LEVELS), h)
            hist = None if simple is None else historical_var_es_portfolios(simple, deltas, list(CONFIDENCE_LEVELS), h)
            # Seeded per horizon, so a wallet's figure does not change between identical runs.
            mc = monte_carlo_var_es(deltas, np.random.default_rng(MC_SEED), MC_SCENARIOS, list(CONFIDENCE_LEVELS),
                                    covariance=cov, horizon_days=h)
            for w in range(n_w):
                var[w][name] = {
                    f"{a:g}": {
                        "var_usd": float(out.var[k][w]), "es_usd": float(out.es[k][w]),
                        "historical_var_usd": float(hist.var[k][w]) if hist is not None else None,
                        "historical_es_usd": float(hist.es[k][w]) if hist is not None else None,
                        "monte_carlo_var_usd": float(mc.var[k][w]),
                        "monte_carlo_es_usd": float(mc.es[k][w]),
                    }
                    for k, a in enumerate(CONFIDENCE_LEVELS)
                }
    common = {"scan_ranges": dict(zip(risky, map(float, ranges), strict=True)),
              "ewma_vol_daily": dict(zip(risky, map(float, vol_now), strict=True)), "flags": flags}
    grids = pnl_grids(book, risky, horizon_days)
    return result, scenario_set, [{**common, "var_es": v, "pnl_grid": g} for v, g in zip(var, grids, strict=True)]


def pnl_grids(book: Book, risky: Sequence[str], horizon_days: float = 1.0) -> list[dict[str, Any] | None]:
    """Each wallet's liquidation-aware P&L over the price × volatility heatmap grid (``None`` without risky
    underlyings): ``pnl_usd``, ``liquidation_loss_usd`` and the venues ``liquidated`` in each (vol, move) cell,
    as V lists of P values (:data:`GRID_VOL_SHIFTS` × :data:`GRID_PRICE_MOVES`)."""
    if not risky:
        return [None] * book.n_wallets
    grid = price_vol_grid(risky, GRID_PRICE_MOVES, GRID_VOL_SHIFTS, horizon_days=horizon_days)
    out: ScenarioResult = revalue(book, grid)
    n_v, n_p = len(GRID_VOL_SHIFTS), len(GRID_PRICE_MOVES)
    liquidated: list[list[list[set[str]]]] = [[[set() for _ in range(n_p)] for _ in range(n_v)]
                                              for _ in range(book.n_wallets)]
    for a, s in zip(out.liq_account, out.liq_scenario, strict=True):
        liquidated[int(book.acc_wallet[a])][int(s) // n_p][int(s) % n_p].add(book.venues[int(book.acc_venue[a])])
    pnl = out.pnl_usd.reshape(book.n_wallets, n_v, n_p)
    loss = out.liquidation_loss_usd.reshape(book.n_wallets, n_v, n_p)
    return [{"price_moves": list(GRID_PRICE_MOVES), "vol_shifts": list(GRID_VOL_SHIFTS), "underlyings": list(risky),
             "pnl_usd": pnl[w].tolist(), "liquidation_loss_usd": loss[w].tolist(),
             "liquidated": [[sorted(cell) for cell in row] for row in liquidated[w]]}
            for w in range(book.n_wallets)]


def user_noop(factors: Sequence[str], horizon_days: float) -> ScenarioSet:
    """A single unchanged scenario (a book of stablecoins only)."""
    return ScenarioSet(names=("unchanged",), underlyings=tuple(factors),
                       price_multipliers=np.ones((1, len(factors))), vol_shift=np.zeros(1),
                       horizon_days=horizon_days)


def _f(x: float) -> float | None:
    return float(x) if math.isfinite(float(x)) else None


def risk_documents(inputs: RiskInputs, result: Assessment, scenarios: ScenarioSet,
                   extras: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The ``xmargin risk --json`` document of every wallet of the book (book order).

    Whole-book quantities (factor exposures, liquidation prices, per-venue margins) are computed once and
    grouped by wallet, so a batch costs one pass over the book, not one per wallet.
    """
    book = inputs.book
    h = result.health
    move = result.moves
    exposure = book.factor_exposure_usd()
    held: list[set[int]] = [set() for _ in range(book.n_wallets)]
    for w, u, u2 in zip(book.pos_wallet, book.pos_underlying, book.pos_underlying2, strict=True):
        held[int(w)].add(int(u))
        if u2 >= 0:
            held[int(w)].add(int(u2))
    liq = result.liquidation_prices
    liquidation_prices: list[list[dict[str, Any]]] = [[] for _ in range(book.n_wallets)]
    for a, u, p, c, side in zip(liq.account, liq.underlying, liq.price_usd, liq.current_price_usd, liq.side,
                                strict=True):
        if side != 0:
            liquidation_prices[int(book.acc_wallet[a])].append({
                "venue": book.venues[int(book.acc_venue[a])], "asset": book.underlyings[int(u)],
                "price_usd": _f(p), "current_price_usd": float(c), "side": "below" if side < 0 else "above",
            })
    venue_margins: list[dict[str, float]] = [{} for _ in range(book.n_wallets)]
    groups = result.scenarios
    for gw, v, m in zip(groups.group_wallet, groups.group_venue, h.venue_margin_usd, strict=True):
        venue_margins[int(gw)][book.venues[int(v)]] = float(m)

    def venue_of(account: int) -> str | None:
        return book.venues[int(book.acc_venue[account])] if account >= 0 else None

    docs = []
    for w, wallet in enumerate(inputs.wallets):
        worst = int(h.worst_scenario[w])
        docs.append({
            "wallet": wallet,
            "block": inputs.block,
            "unified_health": _f(h.health[w]),
            "equity_usd": float(h.equity_usd[w]),
            "portfolio_margin_usd": float(h.margin_usd[w]),
            "maintenance_factor": h.maintenance_factor,
            "venue_margins_usd": venue_margins[w],
            "sum_of_venue_margins_usd": float(h.venue_margin_sum_usd[w]),
            "netting_benefit_usd": float(h.netting_benefit_usd[w]),
            "worst_scenario": scenarios.names[worst] if 0 <= worst < len(scenarios.names) else None,
            "scenario_count": len(scenarios.names),
            "first_liquidation": {
                "down": {"move": _f(move.down[w]), "venue": venue_of(int(move.down_account[w]))},
                "up": {"move": _f(move.up[w]), "venue": venue_of(int(move.up_account[w]))},
            },
            "liquidation_prices": liquidation_prices[w],
            "net_exposure_usd": {f: float(exposure[w, i]) for i, f in enumerate(book.underlyings) if i in held[w]},
            **dict(extras[w]),
        })
    return docs
