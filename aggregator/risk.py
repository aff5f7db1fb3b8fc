"""The wallet's true risk across venues: from the store's latest snapshots to the netting engine and back.

:func:`wallet_book` turns one wallet's newest snapshot on every venue into a :class:`riskcore.book.Book`
(each venue's lines from its own ``aggregator/venues/<venue>/risk.py``: lending accounts with each reserve's
threshold and bonus as the protocol applies them, isolated markets with their LLTV, perp margin accounts with
their maintenance rate, concentrated-liquidity ranges). :func:`assess_book` runs the
liquidation-aware scenario margin over the set :func:`unified_scenarios` builds, and VaR / ES (delta-normal with
EWMA covariance, historical, Monte Carlo).

Prices and factors
------------------
Tokens map to book underlyings through :data:`riskcore.assets.DEFAULT_ASSET_MAP`: WETH and ETH perps are ``ETH``;
a staked or wrapped token with a basis (stETH, wstETH, cbETH, WBTC…) and every stablecoin keep their own price
(the snapshot's oracle price, stablecoins included). :func:`riskcore.factors.factor_model` then says which risk
factors move each price: ``stETH`` moves with ``ETH`` and the basis ``stETH/ETH``, ``USDC`` with the peg
``USDC/USD``. A risky factor without market history (e.g. LINK) borrows ETH's, flagged ``proxy``.

The scenario set used for unified health (:func:`unified_scenarios`)
---------------------------------------------------------------------
Built over the factors, then composed onto the book's prices (:meth:`FactorModel.compose`):

* SPAN's 16 scenarios per risky factor and jointly, scan ranges ``max(10 %, 3 × EWMA daily vol × √h)``;
* the correlation breakdown (:func:`riskcore.scenarios.correlation_breakdown`): risky factors −30 % together with
  every basis widening, alone and with each peg depegging or (``premium``) trading above $1, and each depeg alone;
* the peg and basis stress (:func:`riskcore.scenarios.spread_scenarios`): each peg and basis alone down and up,
  every ordered pair against each other (USDC down while DAI up), every peg down together;
* every historical 1-day joint move of the risky factors at today's volatility (filtered historical simulation),
  for a whole-day horizon.

Peg sizes come from the real depegs in the market data, read where it lies at run time
(:func:`spread_sizes`): a stablecoin with its own daily history falls by its worst intraday low below $1 (USDC:
0.8774 on 2023-03-11, −12.3 %) and rises by its highest daily close above $1
(:func:`riskcore.scenarios.peg_stress_sizes`), at least :data:`PEG_FLOOR_DOWN` / :data:`PEG_FLOOR_UP`; one
without history (DAI, USDS…) is stressed like the worst stablecoin that has one (flagged ``peg_proxy``). The data
holds no staking or wrapping basis (no stETH, WBTC series): bases move by the asset map's ``basis_risk`` down and
:data:`PEG_FLOOR_UP` up (flagged ``basis_default``).

The headline never looks safer than the first venue liquidation
----------------------------------------------------------------
Let ``S`` be the set above, ``mf`` the maintenance factor, ``E`` a wallet's equity and, per scenario ``s``,
``w_s`` its weight and ``L_s`` the wallet's liquidation-aware loss. For every wallet:

1. for every ``s ∈ S`` in which some venue account of the wallet is liquidated,
   ``portfolio margin ≥ mf × w_s × L_s``; so when ``E > 0`` and ``L_s > 0``,
   ``unified health ≤ E / (mf × w_s × L_s)``;
2. if the nearest single-factor liquidation (``first_liquidation.nearest``: factor ``f`` moved alone by ``m``)
   lies strictly inside the range ``S`` moves ``f`` alone in that direction, then ``S`` holds a scenario in which
   that venue account is liquidated (every venue rule is linear in one factor's multiplier), and 1. applies to it;
3. for a book without options, a wallet of which ``S`` liquidates a venue account with a positive penalty (in
   particular under the condition of 2., for a lending account: the liquidation bonus or incentive is a
   penalty) has a finite unified health, never ∞: that scenario is a loss unless the rest of the book gains
   more from the same move, and ``S`` moves every factor alone both ways, so a book gaining one way loses the
   other (its P&L along one factor is linear, or concave for a concentrated-liquidity range).

Every peg and basis factor is moved alone both ways (:func:`spread_scenarios`), so a wallet whose only risk is a
peg or a basis gets a finite unified health and a first liquidation whenever its liquidation price lies within the
real depegs. ``tests/aggregator/test_risk_invariant.py`` checks 1–3 on random books with this module's own sets
(and that ``first_liquidation.down`` / ``up`` agree with ``nearest`` where a wallet holds one risky factor).
"""

from __future__ import annotations

import importlib
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from aggregator.marketdata import MarketDataNotFoundError, PriceHistory, load_prices
from aggregator.venues.risk_lines import FactorOf, VenueRiskLines
from connectors.registry import venue_module
from db.rows import LatestVenueHealth, SnapshotRow
from riskcore.assets import DEFAULT_ASSET_MAP, AssetKind, FactorKind
from riskcore.book import AccountSpec, Book, Kind, WalletSpec
from riskcore.ewma import ewma_covariance
from riskcore.factors import FactorModel, factor_model
from riskcore.margin import Assessment, ScenarioResult, assess, nearest_liquidation, revalue
from riskcore.scenarios import (
    DEFAULT_PREMIUM,
    ScenarioSet,
    correlation_breakdown,
    fhs_volatility,
    historical_scenarios,
    peg_stress_sizes,
    price_vol_grid,
    scan_ranges,
    span_scenarios,
    spread_scenarios,
)
from riskcore.var import (
    CONFIDENCE_LEVELS,
    HORIZONS_DAYS,
    historical_var_es_portfolios,
    monte_carlo_var_es,
    parametric_var_es,
)

__all__ = [
    "Flag",
    "RiskInputs",
    "SpreadSizes",
    "UnifiedScenarios",
    "assess_book",
    "build_book",
    "pnl_grids",
    "risk_documents",
    "scenario_label",
    "spread_sizes",
    "unified_scenarios",
    "wallet_book",
]

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
"""The heatmap's relative volatility shifts, for a wallet holding options (×0.5 … ×2); other wallets get the
unshifted row alone."""
PEG_FLOOR_DOWN = 0.05
"""Smallest fall of a stablecoin's peg in the stress, whatever its history (5 %)."""
PEG_FLOOR_UP = DEFAULT_PREMIUM
"""Smallest rise of a peg, and the rise of a basis, in the stress (2 %: minting at par caps a premium)."""


@dataclass(frozen=True)
class RiskInputs:
    """Wallets' book and what it was built from."""

    wallets: tuple[str, ...]
    book: Book
    factors: tuple[str, ...]
    """The book's underlyings (the prices it is valued at), in book order."""
    stable: frozenset[str]
    """Underlyings without a risky factor (stablecoins, USD): the uniform move holds them still."""
    block: int | None
    model: FactorModel | None = None
    """Which risk factors move each underlying (default: :func:`riskcore.factors.factor_model` of the book's)."""
    tokens: Mapping[tuple[str, str], str] = field(default_factory=dict)
    rule_labels: Mapping[str, str] = field(default_factory=dict)
    """Venue → the name its own module gives its liquidation rule in documents (e.g. a stress event's ``rule``);
    a venue without one shows the generic :class:`riskcore.book.Rule` name."""
    """(venue, underlying) → the token symbol the venue reports (``("main_market", "ETH")`` → ``"WETH"``)."""

    def __post_init__(self) -> None:
        if self.model is None:
            object.__setattr__(self, "model", factor_model(self.book.underlyings))

    @property
    def factor_model(self) -> FactorModel:
        model = self.model
        assert model is not None  # set in __post_init__
        return model

    def token(self, venue: str, underlying: str) -> str:
        """The symbol a trader knows for ``underlying`` on ``venue`` (WETH on a lending market, ETH on a perp venue)."""
        return self.tokens.get((venue, underlying), underlying)


def _factor(symbol: str) -> tuple[str, bool]:
    """(book underlying, is a stablecoin) of a token symbol or a perp market (``ETH-USD`` → ETH).

    WETH and ETH perps are ``ETH``; a staked or wrapped token with a basis (stETH, WBTC…) and a stablecoin keep
    their own symbol — their price moves with a basis or a peg as well (:mod:`riskcore.factors`).
    """
    for suffix in ("-USD", "-PERP", "-USDC"):
        if symbol.endswith(suffix):
            symbol = symbol[: -len(suffix)]
            break
    try:
        spec = DEFAULT_ASSET_MAP[symbol]
    except KeyError:
        return symbol, False
    if spec.kind is AssetKind.STABLE:
        return spec.symbol, True
    if spec.basis_factor is not None:
        return spec.symbol, False
    return spec.underlying, False


def wallet_book(wallet: str, latest: Sequence[LatestVenueHealth], venue_types: Mapping[str, str]) -> RiskInputs:
    """One wallet's newest snapshot on every venue as a book (prices: the snapshots' own USD prices)."""
    return build_book({wallet: [item.snapshot for item in latest]}, venue_types)


def build_book(snapshots: Mapping[str, Sequence[SnapshotRow]], venue_types: Mapping[str, str],
               prices_usd: Sequence[tuple[str, float]] = ()) -> RiskInputs:
    """Many wallets' snapshots (wallet → its snapshots, one per venue) as one vectorized book.

    Each underlying is priced by the first of ``prices_usd`` (token symbol, USD) that names it — the block's price
    sources, when the snapshots are not all of one read (a block writing some of a wallet's venues, the others
    held as stored) — else by the first position holding it."""
    prices: dict[str, float] = {}
    for symbol, price_usd in prices_usd:
        prices.setdefault(_factor(symbol)[0], price_usd)
    tokens: dict[tuple[str, str], str] = {}
    labels: dict[str, str] = {}
    wallets = [WalletSpec(w, tuple(_accounts(snaps, venue_types, prices, tokens, labels)))
               for w, snaps in snapshots.items()]
    blocks = [s.block_number for snaps in snapshots.values() for s in snaps]
    model = factor_model(tuple(prices))
    stable = frozenset(u for u, st in zip(model.underlyings, model.stable.tolist(), strict=True) if st)
    book = Book.from_wallets(wallets, prices, stable=stable)
    return RiskInputs(tuple(snapshots), book, book.underlyings, stable, max(blocks) if blocks else None, model, tokens,
                      labels)


def _accounts(
    snapshots: Sequence[SnapshotRow], venue_types: Mapping[str, str], prices: dict[str, float],
    tokens: dict[tuple[str, str], str], labels: dict[str, str],
) -> list[AccountSpec]:
    """Each snapshot's lines in the book, by its venue's own ``risk`` module (``aggregator/venues/<type>/risk.py``).

    A snapshot of a venue whose type the store does not know is left out; a type no venue is registered for is
    an error (:class:`connectors.registry.UnknownVenueError`), never silently skipped.
    """
    accounts: list[AccountSpec] = []
    for snap in snapshots:
        venue_type = venue_types.get(snap.venue)
        if snap.health is None or not venue_type:
            continue
        lines = _risk_lines(venue_type)
        accounts += lines.accounts(snap, _factor_of(snap.venue, prices, tokens))
        labels[snap.venue] = lines.RULE_LABEL
    return accounts


def _risk_lines(venue_type: str) -> VenueRiskLines:
    return cast(VenueRiskLines, importlib.import_module(venue_module("aggregator", venue_type, "risk")))


def _factor_of(venue: str, prices: dict[str, float], tokens: dict[tuple[str, str], str]) -> FactorOf:
    def factor(symbol: str, price_usd: float | None) -> str:
        name, _ = _factor(symbol)
        tokens.setdefault((venue, name), symbol)
        if price_usd is not None and name not in prices:
            prices[name] = price_usd
        return name

    return factor


# --- flags ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Flag:
    """A caveat of the computation: its code (kept in the JSON as it is), the same in plain words, and the factor
    it concerns (``None``: every wallet of the batch)."""

    code: str
    note: str
    factor: str | None = None


def _history(factors: Sequence[str]) -> tuple[PriceHistory | None, dict[str, str]]:
    """Daily history for the risky factors (proxying the ones the data lacks); ``None`` without market data or
    without a risky factor."""
    source = {f: f for f in factors}
    if not factors:
        return None, source
    try:
        load_prices([PROXY])
        for f in factors:
            try:
                load_prices([f])
            except (MarketDataNotFoundError, KeyError, ValueError):
                source[f] = PROXY
        return load_prices(sorted({source[f] for f in factors})), source
    except MarketDataNotFoundError:
        return None, source


@dataclass(frozen=True)
class SpreadSizes:
    """How far the stress moves each peg and basis factor, and why (fractions: 0.1226 = 12.26 %)."""

    down: dict[str, float]
    up: dict[str, float]
    basis: dict[str, str]
    """Factor → where its sizes come from, in words."""
    flags: tuple[Flag, ...]


@dataclass(frozen=True)
class _PegHistory:
    token: str
    down: float
    up: float
    low_usd: float
    low_date: str
    high_usd: float
    high_date: str


def _peg_histories() -> dict[str, _PegHistory]:
    """Every stablecoin of the asset map with a daily history in the market data: its peg stress sizes."""
    out: dict[str, _PegHistory] = {}
    for spec in DEFAULT_ASSET_MAP.specs:
        if spec.kind is not AssetKind.STABLE:
            continue
        try:
            lows = load_prices([spec.symbol], field="Low")
            closes = load_prices([spec.symbol], field="Close")
        except (MarketDataNotFoundError, ValueError):
            continue
        lo, cl = lows.column(spec.symbol), closes.column(spec.symbol)
        if lo.size == 0 or cl.size == 0:
            continue
        down, up = peg_stress_sizes(lo, cl, floor_down=PEG_FLOOR_DOWN, floor_up=PEG_FLOOR_UP)
        i, j = int(np.argmin(lo)), int(np.argmax(cl))
        out[spec.symbol] = _PegHistory(spec.symbol, down, up, float(lo[i]), str(lows.dates[i])[:10], float(cl[j]),
                                       str(closes.dates[j])[:10])
    return out


def spread_sizes(model: FactorModel) -> SpreadSizes:
    """The stress sizes of the model's peg and basis factors (see the module notes), from the market data.

    A peg with its own history: :func:`riskcore.scenarios.peg_stress_sizes` of it (worst daily low below $1, highest
    daily close above $1, floored at :data:`PEG_FLOOR_DOWN` / :data:`PEG_FLOOR_UP`). Without one: the largest fall
    and rise among the stablecoins that have one (flag ``peg_proxy:<token>``); without any stablecoin history: the
    asset map's ``basis_risk`` (at least the floor) and the floor (flag ``peg_default:<token>``). A basis: the asset
    map's ``basis_risk`` down and :data:`PEG_FLOOR_UP` up (flag ``basis_default:<token>``; the market data holds
    no staking or wrapping basis).
    """
    down: dict[str, float] = {}
    up: dict[str, float] = {}
    basis: dict[str, str] = {}
    flags: list[Flag] = []
    histories = _peg_histories() if model.pegs else {}
    worst_down = max(histories.values(), key=lambda h: h.down, default=None)
    worst_up = max(histories.values(), key=lambda h: h.up, default=None)
    for f in model.pegs:
        token = model.token(f)
        own = histories.get(token)
        if own is not None:
            down[f], up[f] = own.down, own.up
            basis[f] = (f"{token}'s own history: as low as ${own.low_usd:.4f} on {own.low_date}, closed as high as "
                        f"${own.high_usd:.4f} on {own.high_date}")
        elif worst_down is not None and worst_up is not None:
            down[f], up[f] = worst_down.down, worst_up.up
            basis[f] = (f"the worst stablecoin in the data: {worst_down.token} as low as ${worst_down.low_usd:.4f} on "
                        f"{worst_down.low_date}, {worst_up.token} closed as high as ${worst_up.high_usd:.4f} on "
                        f"{worst_up.high_date}")
            flags.append(Flag(f"peg_proxy:{token}", f"{token} has no price history here; its peg is stressed like "
                              f"the worst stablecoin in the data (down to ${1 - down[f]:.3f}, up to "
                              f"${1 + up[f]:.3f})", f))
        else:
            down[f] = max(PEG_FLOOR_DOWN, DEFAULT_ASSET_MAP.basis_risk_of(f))
            up[f] = PEG_FLOOR_UP
            basis[f] = "the asset map's depeg size (no stablecoin history found)"
            flags.append(Flag(f"peg_default:{token}", f"no stablecoin price history found; {token}'s peg is stressed "
                              f"by the asset map's size (down to ${1 - down[f]:.3f}, up to ${1 + up[f]:.3f})", f))
    for f in model.bases:
        token = model.token(f)
        down[f] = DEFAULT_ASSET_MAP.basis_risk_of(f)
        up[f] = PEG_FLOOR_UP
        under = f.split("/", 1)[1] if "/" in f else "its underlying"
        basis[f] = "the asset map's basis size (the market data holds no staking or wrapping basis)"
        flags.append(Flag(f"basis_default:{token}", f"{token} has no price history against {under} here; its basis "
                          f"is stressed by the asset map's size ({_pct(-down[f])} and {_pct(up[f])} against {under})",
                          f))
    return SpreadSizes(down, up, basis, tuple(flags))


# --- the scenario set used for unified health ---------------------------------------------------------------
@dataclass(frozen=True)
class UnifiedScenarios:
    """The scenario set of :func:`assess_book`, over the risk factors and composed onto the book's prices, with
    what the VaR models need from the same history."""

    factor_set: ScenarioSet
    """Over the model's factors (``ETH``, ``USDC/USD``, ``stETH/ETH``…)."""
    book_set: ScenarioSet
    """The same scenarios over the book's underlyings (what :func:`riskcore.margin.revalue` reads)."""
    risky: tuple[str, ...]
    ranges: np.ndarray[Any, np.dtype[np.float64]]
    """(R,) SPAN scan range of each risky factor."""
    vol_now: np.ndarray[Any, np.dtype[np.float64]]
    """(R,) EWMA daily volatility of each risky factor (nan without market data)."""
    simple: np.ndarray[Any, np.dtype[np.float64]] | None
    """(T, R) daily simple returns of the risky factors' histories (proxies included)."""
    covariance: np.ndarray[Any, np.dtype[np.float64]] | None
    sizes: SpreadSizes
    flags: tuple[Flag, ...]


def unified_scenarios(inputs: RiskInputs, horizon_days: float = 1.0) -> UnifiedScenarios:
    """The scenario set used for unified health (see the module notes): SPAN with dynamic scan ranges, the
    correlation breakdown, the peg and basis stress, and the filtered historical moves."""
    model = inputs.factor_model
    risky = list(model.risky)
    history, source = _history(risky)
    flags = [Flag(f"proxy:{f}={PROXY}", f"{f} has no price history here; {PROXY}'s history stands in", f)
             for f in risky if source[f] != f]
    historical: ScenarioSet | None = None
    simple: np.ndarray[Any, np.dtype[np.float64]] | None = None
    cov: np.ndarray[Any, np.dtype[np.float64]] | None = None
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
        if risky:
            flags.append(Flag("no_market_data", "no market data found: scan ranges are 30 %, and there is no "
                              "historical simulation and no VaR"))
        vol_now = np.full(len(risky), math.nan)
        ranges = np.full(len(risky), 0.3)
    sizes = spread_sizes(model)
    flags.extend(sizes.flags)
    sets: list[ScenarioSet] = []
    if risky:
        sets.append(span_scenarios(risky, ranges, horizon_days=horizon_days))
    if model.factors:
        pegs, bases = model.pegs, model.bases
        sets.append(correlation_breakdown(
            model.factors, stable_depeg={p: sizes.down[p] for p in pegs}, basis_drop={b: sizes.down[b] for b in bases},
            stable_premium={p: sizes.up[p] for p in pegs}, horizon_days=horizon_days))
        spread = spread_scenarios(model.factors, down=sizes.down, up=sizes.up, horizon_days=horizon_days)
        if len(spread):
            sets.append(spread)
    if historical is not None:
        sets.append(historical)
    factor_set = ScenarioSet.concat(*sets) if sets else user_noop(model.factors, horizon_days)
    return UnifiedScenarios(factor_set, model.compose(factor_set), tuple(risky), np.asarray(ranges, np.float64),
                            np.asarray(vol_now, np.float64), simple, cov, sizes, tuple(flags))


def _held(book: Book) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """(W, U): which underlyings each wallet holds, an LP's token1 included."""
    held = np.zeros((book.n_wallets, book.n_underlyings), dtype=bool)
    held[book.pos_wallet, book.pos_underlying] = True
    lp = book.pos_underlying2 >= 0
    held[book.pos_wallet[lp], book.pos_underlying2[lp]] = True
    return held


def _held_factors(model: FactorModel, held: np.ndarray[Any, np.dtype[np.bool_]]) -> list[set[str]]:
    """Each wallet's risk factors (the factors of the underlyings it holds), from :func:`_held`."""
    loaded = held.astype(np.float64) @ (model.loadings > 0).astype(np.float64) > 0  # (W, F)
    return [{model.factors[int(f)] for f in np.flatnonzero(row)} for row in loaded]


def assess_book(
    inputs: RiskInputs, horizon_days: float = 1.0, *, heavy: bool = True
) -> tuple[Assessment, ScenarioSet, list[dict[str, Any]]]:
    """Scenario margin over :func:`unified_scenarios` and VaR / ES of every wallet of the book at once; the third
    item holds each wallet's extra figures (book order). The scenario set returned is over the book's
    underlyings.

    ``heavy=False`` is the per-block tier: the liquidation-aware scenario margin, unified health, first
    liquidation and liquidation prices only; the heavy measures (parametric, historical and Monte Carlo VaR / ES
    and the P&L grid) are left out (``var_es`` and ``pnl_grid`` are None) for the
    caller to carry over from the wallet's last heavy assessment, which runs on its own cadence. Either way a
    wallet's figures do not depend on the other wallets of the book."""
    book = inputs.book
    model = inputs.factor_model
    uni = unified_scenarios(inputs, horizon_days)
    risky = list(uni.risky)
    result = assess(book, uni.book_set)
    n_w = book.n_wallets
    var: list[dict[str, Any]] = [{} for _ in range(n_w)]
    if heavy and uni.covariance is not None:
        # USD delta per (wallet, risky factor): the linear exposure the VaR models need, shape (W, R).
        cols = [model.factors.index(f) for f in risky]
        deltas = book.factor_exposure_usd() @ model.loadings[:, cols]
        simple = uni.simple
        for name, h in HORIZONS_DAYS.items():
            out = parametric_var_es(deltas, uni.covariance, list(CONFIDENCE_LEVELS), h)
            hist = None if simple is None else historical_var_es_portfolios(simple, deltas, list(CONFIDENCE_LEVELS), h)
            # Seeded per horizon, so a wallet's figure does not change between identical runs.
            mc = monte_carlo_var_es(deltas, np.random.default_rng(MC_SEED), MC_SCENARIOS, list(CONFIDENCE_LEVELS),
                                    covariance=uni.covariance, horizon_days=h)
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
    moved = [u for u, st in zip(book.underlyings, book.stable.tolist(), strict=True) if not st]
    grids = pnl_grids(book, moved, horizon_days, tokens=inputs.tokens) if heavy else [None] * n_w
    held_factors = _held_factors(model, _held(book))
    has_options = np.zeros(n_w, dtype=bool)
    has_options[book.pos_wallet[book.pos_kind == Kind.OPTION]] = True
    extras: list[dict[str, Any]] = []
    for w in range(n_w):
        factors = held_factors[w]
        flags = [f for f in uni.flags if f.factor is None or f.factor in factors]
        worst = int(result.health.worst_scenario[w])
        extras.append({
            "scan_ranges": {f: float(r) for f, r in zip(risky, uni.ranges, strict=True) if f in factors},
            "ewma_vol_daily": {f: float(v) for f, v in zip(risky, uni.vol_now, strict=True) if f in factors},
            "peg_basis_moves": {f: {"down": uni.sizes.down[f], "up": uni.sizes.up[f], "basis": uni.sizes.basis[f]}
                                for f in (*model.pegs, *model.bases) if f in factors},
            "flags": [f.code for f in flags],
            "flag_notes": [f.note for f in flags],
            "worst_scenario_label": (scenario_label(uni.factor_set, worst, model, book.price_usd, factors,
                                                    volatility=bool(has_options[w]))
                                     if 0 <= worst < len(uni.factor_set) else None),
            "var_es": var[w] if heavy else None,
            "pnl_grid": grids[w],
        })
    return result, uni.book_set, extras


# --- words ------------------------------------------------------------------------------------------------
def _pct(x: float) -> str:
    """A signed percentage in words: −0.3 → "−30 %", 0.0437 → "+4.4 %"."""
    v = 100.0 * x
    text = f"{abs(v):.0f}" if abs(v - round(v)) < 0.05 else f"{abs(v):.1f}"
    return f"{'−' if v < 0 else '+'}{text} %"


def _factor_price(model: FactorModel, prices: Any, factor: int) -> tuple[str, float]:
    """The token a peg is read as and its price today (its underlying's book price; $1 when none)."""
    name = model.factors[factor]
    token = model.token(name)
    for u in np.flatnonzero(model.loadings[:, factor] > 0):
        if model.underlyings[int(u)] == token:
            return token, float(prices[int(u)])
    return token, 1.0


def scenario_label(
    scenarios: ScenarioSet, index: int, model: FactorModel, prices: Any, factors: set[str] | None = None,
    *, volatility: bool = False,
) -> str:
    """Scenario ``index`` of a set over the model's factors, in plain words ("ETH −30 % with USDC at $0.877
    (correlation breakdown)"), naming only ``factors`` (default all); ``volatility`` adds the volatility shift."""
    row = scenarios.price_multipliers[index]
    risky_parts: list[str] = []
    spread_parts: list[tuple[float, str]] = []  # (multiplier, words): the falling ones are named first
    vol_parts: list[str] = []
    for c, name in enumerate(scenarios.underlyings):
        if name not in model.factors or (factors is not None and name not in factors):
            continue
        f = model.factors.index(name)
        m = float(row[c])
        kind = model.kinds[f]
        if kind is FactorKind.RISKY:
            if abs(m - 1.0) > 1e-9:
                risky_parts.append(f"{name} {_pct(m - 1.0)}")
            shift = float(scenarios.vol_shift[index, c])
            rel = float(scenarios.vol_shift_relative[index, c])
            if volatility and (shift or rel):
                pts = f"{shift * 100:+.0f} vol pts" if shift else f"vol ×{1 + rel:g}"
                vol_parts.append(f"{name} {pts}")
        elif abs(m - 1.0) > 1e-9:
            if kind is FactorKind.PEG:
                token, price = _factor_price(model, prices, f)
                spread_parts.append((m, f"{token} at ${price * m:.3f}"))
            else:
                token, under = name.split("/", 1) if "/" in name else (name, "its underlying")
                spread_parts.append((m, f"{token} {_pct(m - 1.0)} against {under}"))
    text = ", ".join(risky_parts + vol_parts)
    if spread_parts:
        spread = " and ".join(words for _, words in sorted(spread_parts, key=lambda p: p[0]))
        text = f"{text} with {spread}" if text else spread
    text = text or "prices unchanged"
    name = scenarios.names[index]
    weight = float(scenarios.weights[index])
    if name.startswith("SPAN "):
        context = "SPAN extreme move" if weight < 1 else "SPAN scan range"
    elif name.startswith("BREAK "):
        context = "correlation breakdown"
    elif name.startswith("SPREAD "):
        context = "stablecoin peg / basis stress"
    elif name.startswith("HIST "):
        context = f"the market's move of {name.rsplit(' ', 1)[-1]} at today's volatility"
    else:
        context = ""
    if weight < 1:
        context = f"{context}, counted at {weight:.0%}" if context else f"counted at {weight:.0%}"
    return f"{text} ({context})" if context else text


def _join(names: Sequence[str]) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def pnl_grids(
    book: Book, risky: Sequence[str], horizon_days: float = 1.0, *,
    tokens: Mapping[tuple[str, str], str] | None = None,
) -> list[dict[str, Any] | None]:
    """Each wallet's liquidation-aware P&L over the price × volatility heatmap grid: ``pnl_usd``,
    ``liquidation_loss_usd`` and the venues ``liquidated`` in each (vol, move) cell, as V lists of P values.

    Every underlying of ``risky`` moves together by the column's move (:data:`GRID_PRICE_MOVES`); others stay at
    today's price. Rows are :data:`GRID_VOL_SHIFTS` for a wallet holding options, the unshifted row alone
    (``vol_shifts == [0.0]``) for one without (volatility moves nothing else). ``underlyings`` lists the moved
    underlyings the wallet holds and ``moved`` says the same in words; ``None`` for a wallet holding none.
    """
    held = _held(book)
    index = {u: i for i, u in enumerate(book.underlyings)}
    moved_idx = {index[u] for u in risky if u in index}
    if not moved_idx:
        return [None] * book.n_wallets
    has_options = np.zeros(book.n_wallets, dtype=bool)
    has_options[book.pos_wallet[book.pos_kind == Kind.OPTION]] = True
    vol_shifts = GRID_VOL_SHIFTS if has_options.any() else (0.0,)
    grid = price_vol_grid(risky, GRID_PRICE_MOVES, vol_shifts, horizon_days=horizon_days)
    out: ScenarioResult = revalue(book, grid)
    n_v, n_p = len(vol_shifts), len(GRID_PRICE_MOVES)
    liquidated: list[list[list[set[str]]]] = [[[set() for _ in range(n_p)] for _ in range(n_v)]
                                              for _ in range(book.n_wallets)]
    for a, s in zip(out.liq_account, out.liq_scenario, strict=True):
        liquidated[int(book.acc_wallet[a])][int(s) // n_p][int(s) % n_p].add(book.venues[int(book.acc_venue[a])])
    pnl = out.pnl_usd.reshape(book.n_wallets, n_v, n_p)
    loss = out.liquidation_loss_usd.reshape(book.n_wallets, n_v, n_p)
    zero = vol_shifts.index(0.0)
    symbols: dict[str, set[str]] = defaultdict(set)
    for (_, u), sym in (tokens or {}).items():
        symbols[u].add(sym)
    docs: list[dict[str, Any] | None] = []
    for w in range(book.n_wallets):
        mine_idx = set(np.flatnonzero(held[w]).tolist())
        mine = [book.underlyings[i] for i in sorted(mine_idx & moved_idx)]
        if not mine:
            docs.append(None)
            continue
        rows = list(range(n_v)) if has_options[w] else [zero]
        still = [book.underlyings[i] for i in sorted(mine_idx - moved_idx)]

        def named(u: str) -> str:
            others = sorted(symbols.get(u, set()) - {u})
            return f"{u} ({', '.join(others)})" if others else u

        words = f"{_join([named(u) for u in mine])} {'moves' if len(mine) == 1 else 'move together'} by each " \
                "column's move"
        if still:
            words += f"; {_join(still)} {'stays' if len(still) == 1 else 'stay'} at today's price"
        docs.append({
            "price_moves": list(GRID_PRICE_MOVES), "vol_shifts": [vol_shifts[v] for v in rows], "underlyings": mine,
            "moved": words,
            "pnl_usd": [pnl[w, v].tolist() for v in rows], "liquidation_loss_usd": [loss[w, v].tolist() for v in rows],
            "liquidated": [[sorted(cell) for cell in liquidated[w][v]] for v in rows],
        })
    return docs


def user_noop(factors: Sequence[str], horizon_days: float) -> ScenarioSet:
    """A single unchanged scenario (a book without any risk factor)."""
    return ScenarioSet(names=("unchanged",), underlyings=tuple(factors),
                       price_multipliers=np.ones((1, len(factors))), vol_shift=np.zeros(1),
                       horizon_days=horizon_days)


def _f(x: float) -> float | None:
    return float(x) if math.isfinite(float(x)) else None


def _nearest(inputs: RiskInputs) -> list[dict[str, Any] | None]:
    """Each wallet's ``first_liquidation.nearest``: the single-factor liquidation nearest to today's prices."""
    book, model = inputs.book, inputs.factor_model
    near = nearest_liquidation(book, model.loadings)
    wanted = set(near.account[near.account >= 0].tolist())
    by_account: dict[int, set[int]] = defaultdict(set)
    for u, acc in zip(book.pos_underlying.tolist(), book.pos_account.tolist(), strict=True):
        if acc in wanted:
            by_account[acc].add(u)
    out: list[dict[str, Any] | None] = []
    for w in range(book.n_wallets):
        a, f = int(near.account[w]), int(near.factor[w])
        if a < 0:
            out.append(None)
            continue
        venue = book.venues[int(book.acc_venue[a])]
        loaded = [u for u in sorted(by_account[a]) if model.loadings[u, f] > 0]
        name = model.factors[f]
        token = model.token(name)
        pick = next((u for u in loaded if book.underlyings[u] in (name, token)), loaded[0])
        move = float(near.move[w])
        now = float(book.price_usd[pick])
        out.append({"venue": venue, "asset": inputs.token(venue, book.underlyings[pick]),
                    "factor": name, "direction": "falls" if near.side[w] < 0 else "rises",
                    "price_usd": now * (1.0 + move), "current_price_usd": now, "move": move})
    return out


def risk_documents(inputs: RiskInputs, result: Assessment, scenarios: ScenarioSet,
                   extras: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The ``xmargin risk --json`` document of every wallet of the book (book order).

    Whole-book quantities (factor exposures, liquidation prices, per-venue margins) are computed once and
    grouped by wallet, so a batch costs one pass over the book, not one per wallet.
    """
    book = inputs.book
    model = inputs.factor_model
    h = result.health
    move = result.moves
    exposure = book.factor_exposure_usd()
    by_factor = exposure @ model.loadings  # (W, F)
    held = _held(book)
    held_factors = _held_factors(model, held)
    liq = result.liquidation_prices
    liquidation_prices: list[list[dict[str, Any]]] = [[] for _ in range(book.n_wallets)]
    for a, u, p, c, side in zip(liq.account, liq.underlying, liq.price_usd, liq.current_price_usd, liq.side,
                                strict=True):
        if side != 0:
            venue = book.venues[int(book.acc_venue[a])]
            liquidation_prices[int(book.acc_wallet[a])].append({
                "venue": venue, "asset": book.underlyings[int(u)],
                "token": inputs.token(venue, book.underlyings[int(u)]),
                "price_usd": _f(p), "current_price_usd": float(c), "side": "below" if side < 0 else "above",
            })
    venue_margins: list[dict[str, float]] = [{} for _ in range(book.n_wallets)]
    groups = result.scenarios
    for gw, v, m in zip(groups.group_wallet, groups.group_venue, h.venue_margin_usd, strict=True):
        venue_margins[int(gw)][book.venues[int(v)]] = float(m)
    nearest = _nearest(inputs)
    kinds = dict(zip(model.factors, model.kinds, strict=True))

    def venue_of(account: int) -> str | None:
        return book.venues[int(book.acc_venue[account])] if account >= 0 else None

    docs = []
    for w, wallet in enumerate(inputs.wallets):
        worst = int(h.worst_scenario[w])
        factors = held_factors[w]
        net: dict[str, float] = {}
        for f, name in enumerate(model.factors):
            if name in factors and kinds[name] is FactorKind.RISKY:
                net[name] = float(by_factor[w, f])
        for i in np.flatnonzero(held[w] & book.stable).tolist():
            net[book.underlyings[i]] = float(exposure[w, i])
        moved = sorted(book.underlyings[i] for i in np.flatnonzero(held[w] & ~book.stable).tolist())
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
                "moves": moved,  # the wallet's underlyings ``down`` / ``up`` move together (every non-stable one)
                "nearest": nearest[w],
            },
            "liquidation_prices": liquidation_prices[w],
            "net_exposure_usd": net,
            "peg_basis_exposure_usd": {name: float(by_factor[w, f]) for f, name in enumerate(model.factors)
                                       if name in factors and kinds[name] is not FactorKind.RISKY},
            **dict(extras[w]),
        })
    return docs
