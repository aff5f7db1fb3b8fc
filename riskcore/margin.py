"""Liquidation-aware scenario revaluation, unified health and the netting benefit, for many wallets at once.

In every scenario every position is revalued and every venue's own health rule is re-evaluated; where a venue
would liquidate, its own mechanics are applied and the penalty is counted. The portfolio margin of a wallet is
its worst (weighted) liquidation-aware loss over the scenario set; unified health is equity over that margin.

Scenarios
---------
A scenario multiplies each underlying's USD price by a factor ≥ 0 (``price_multipliers``, shape (S, U_s), matched to
the book's underlyings by name; a stablecoin the scenario set does not name stays at 1). Any object with the
attributes of ``riskcore.scenarios.ScenarioSet`` (``names``, ``underlyings``, ``price_multipliers``,
``weights``) will do (:class:`ScenarioLike`). ``weights`` (S,) is the fraction of a scenario's loss that counts
(0.35 for SPAN's extreme moves). Only option positions read the volatility shock and the horizon (see
"Options" below); nothing else accrues over ``horizon_days`` (no funding, interest or fees are projected).

Options
-------
An ``OPTION`` position (held in a never-liquidated account) is fully revalued in every scenario with Black-76:
forward = today's USD price × the underlying's multiplier; time to expiry ``max(T − horizon_days / 365, 0)``
(so its P&L includes the time decay over the horizon; an option expiring inside the horizon is worth its
intrinsic value); volatility shocked by the scenario set's own rule when it has one
(``ScenarioSet.shocked_vols``: ``σ·(1 + rel·g(DTE)) + abs``, floored), otherwise, for a plain
:class:`ScenarioLike`, ``max(σ + vol_shift, 0)`` when it has a ``vol_shift`` ((S,) or (S, U_s)) and ``σ``
unchanged when it has none; a scenario set without ``horizon_days`` has no time decay. An underlying the set does
not name (a stablecoin) keeps its volatility. The P&L ``quantity × (new price − today's price)`` is added to the
wallet's and its (wallet, venue)'s P&L exactly like an LP range's.

A scenario is a *single shock*: prices gap from today's to the scenario's, and every venue looks at its accounts
at the shocked prices (no path in between; :mod:`riskcore.cascade` replays paths).

Venue rules at the shocked prices (per account; ``C`` seizable collateral value, ``W`` threshold-weighted
collateral, ``D`` debt value, ``E`` perp equity, ``M`` perp maintenance requirement, all USD)
-----------------------------------------------------------------------------------------------------------
* **Pooled lending** (``Rule.LENDING``): liquidatable iff ``HF = W / D < 1``. A liquidator repays
  ``close_factor × D`` (all of ``D`` when ``HF ≤ full_close_hf``) and seizes ``repaid × (1 + bonus)`` of
  collateral; when that exceeds the collateral, all of it is seized and ``repaid = C / (1 + bonus)``. The wallet loses
  ``repaid × bonus`` (the protocol's fee is a slice of the bonus and is lost too). Liquidators call again while
  ``HF < 1`` and collateral is left (at most :data:`MAX_LIQUIDATION_CALLS` calls). Collateral is seized and debt repaid
  pro rata across the account's reserves (the liquidator's choice of reserve is not modelled; the weighted LT is
  therefore unchanged by a call), so each call is ``C, W ← C, W × (1 − seized / C)``, ``D ← D − repaid``. The
  small-position rules of newer pool versions (dust thresholds) are not modelled.
* **Isolated lending markets** (``Rule.ISOLATED``): liquidatable iff ``C × LLTV < D``. There is no close factor: the
  liquidator repays ``min(D, C / LIF)`` and seizes ``repaid × LIF``, ``LIF`` the market's incentive factor;
  the wallet loses ``repaid × (LIF − 1)``.

The terms (``bonus``, ``close_factor``, ``full_close_hf``, ``LIF``) are each account's, as its venue's own module
(``riskcore.venues``) put them in the book.
* **Perps** (a cross account, a subaccount): liquidatable iff ``E < M`` (with open positions),
  ``M = Σ |size| × price × mmr`` (one rate per position: the tier at today's notional). Every position is closed
  at the shocked price and the remaining equity, at most the maintenance margin, is lost to the liquidator
  (a backstop liquidation: "the maintenance margin is not returned"): ``loss = max(E, 0)`` (< ``M``). This is
  the conservative reading; a liquidation through the book that returns the remainder would cost less.
* **LP ranges, options and tokens held** are never liquidated; LP ranges are revalued along the concentrated-liquidity
  curve, options with Black-76.

No limited liability is applied: an account whose collateral cannot cover its debt (bad debt) still counts the
unpaid debt, or a perp account's negative equity, as the wallet's loss (conservative; a venue that socializes bad
debt would write the remainder off).

Cross-venue netting and "the hedge is gone"
-------------------------------------------
Each venue's rule reads only its own account, so in a single shock liquidation decisions are independent across
venues, and the wallet's equity after the shock is ``Σ account equities at the shocked prices − Σ penalties``:
the liquidation-aware P&L is the linear P&L minus the penalties. The liquidated venue's positions are closed at
the shocked prices, so the hedge it carried has done its work up to that point and does nothing afterwards:
within a single shock this costs only the penalty, while along a path (:mod:`riskcore.cascade`) the closed
positions no longer move and the other venues' exposure is left naked — which is where cascades come from.

Unified health and margins
--------------------------
* portfolio margin ``= maintenance_factor × max(0, max_s w_s × loss_s)`` with ``loss_s`` the wallet's
  liquidation-aware loss in scenario ``s``; :data:`MAINTENANCE_FACTOR` is 1.0 (a maintenance figure: at
  health < 1 the worst scenario would consume the equity; an initial-margin figure would use a factor > 1);
* unified health ``= equity / portfolio margin`` (``inf`` with no margin);
* per-venue margin: the same with only one (wallet, venue)'s positions (each venue's worst loss alone, its own
  liquidations included); netting benefit ``= Σ per-venue margins − portfolio margin`` (≥ 0, since a maximum of
  sums never exceeds the sum of maxima);
* :func:`uniform_move`: the smallest common move of all non-stable underlyings (down and up separately) that
  makes an account liquidatable, found by bisection on the venue rules, and the first account (venue) to go;
* :func:`liquidation_prices`: per account and underlying, the price at which the account's rule trips with every
  other price held at today's; :func:`factor_liquidation_moves` / :func:`nearest_liquidation` the same per risk
  factor (a peg or a basis moves every underlying that loads on it, :mod:`riskcore.factors`) and the nearest one
  per wallet.

Vectorization
-------------
Every quantity a venue rule reads is linear in the price multipliers (``|size × price × m| = |size| × price × m``
for ``m > 0``), so the book is first reduced to per-account USD exposures per underlying (``(A, U)`` matrices for
value, seizable collateral, weighted collateral, requirement, and the health margin ``g`` — ``W − D`` or
``E − M``); a scenario chunk is then one matrix product ``(2A, U) @ (U, S_c)``. Only the (account, scenario)
pairs with ``g < 0`` go through the venue mechanics. LP ranges and options, the non-linear kinds, are revalued
per position. Per-venue and per-wallet sums are ``np.add.reduceat`` over the sorted accounts; scenarios are chunked
so that no intermediate exceeds about ``chunk_elements`` values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from riskcore.book import Book, Kind, Rule, lp_value_usd, option_value_usd
from riskcore.options import DAYS_PER_YEAR, black76_price

__all__ = [
    "MAINTENANCE_FACTOR",
    "MAX_LIQUIDATION_CALLS",
    "Assessment",
    "Exposures",
    "FactorLiquidations",
    "LendingLiquidation",
    "LiquidationPrices",
    "NearestLiquidation",
    "PreparedBook",
    "ScenarioLike",
    "ScenarioResult",
    "UnifiedHealth",
    "UniformMove",
    "assess",
    "exposures",
    "factor_liquidation_moves",
    "isolated_liquidation",
    "lending_liquidation",
    "liquidation_prices",
    "nearest_liquidation",
    "option_scenario_inputs",
    "perp_liquidation_loss",
    "prepare",
    "revalue",
    "scenario_multipliers",
    "unified_health",
    "uniform_move",
]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.intp]

MAINTENANCE_FACTOR = 1.0
"""Portfolio margin = this × worst weighted liquidation-aware loss (1.0: maintenance; initial would be > 1)."""
MAX_LIQUIDATION_CALLS = 64
"""Most liquidation calls applied to one pooled lending account at one set of prices."""
DEFAULT_CHUNK_ELEMENTS = 1 << 23
"""Rough bound on the feature values per scenario chunk (64 MiB of float64)."""


class ScenarioLike(Protocol):
    """What :func:`revalue` reads of a scenario set (``riskcore.scenarios.ScenarioSet`` has it)."""

    @property
    def names(self) -> tuple[str, ...]: ...

    @property
    def underlyings(self) -> tuple[str, ...]: ...

    @property
    def price_multipliers(self) -> npt.NDArray[np.float64]: ...

    @property
    def weights(self) -> npt.NDArray[np.float64]: ...


# --- venue mechanics (shared with riskcore.cascade) ---------------------------------------------------
@dataclass(frozen=True, slots=True)
class LendingLiquidation:
    """What liquidators do to lending accounts at one set of prices; arrays of shape (k,), USD."""

    loss_usd: F64
    """Penalty to the wallet: collateral seized beyond the debt repaid."""
    repaid_usd: F64
    seized_usd: F64
    collateral_left_usd: F64
    weighted_collateral_left_usd: F64
    debt_left_usd: F64
    calls: npt.NDArray[np.int64]
    """Liquidation calls made (0 where the account was healthy)."""


def lending_liquidation(
    collateral_usd: npt.ArrayLike,
    weighted_collateral_usd: npt.ArrayLike,
    debt_usd: npt.ArrayLike,
    bonus: npt.ArrayLike,
    close_factor: npt.ArrayLike,
    full_close_hf: npt.ArrayLike,
    max_calls: int = MAX_LIQUIDATION_CALLS,
) -> LendingLiquidation:
    """Pooled lending liquidation of accounts at fixed prices, call after call while ``HF < 1`` (see the module notes).

    Parameters
    ----------
    collateral_usd, weighted_collateral_usd, debt_usd : array_like of shape (k,)
        Seizable collateral ``C``, ``W = Σ collateral × LT`` and debt ``D``, USD.
    bonus, close_factor, full_close_hf : array_like, broadcast to (k,)
        Liquidation bonus net of 1 (0.05 for 10,500 bps), close factor (the share of the debt one call may
        repay), HF at or below which the close factor is 100% — the venue's terms.

    Returns
    -------
    LendingLiquidation
    """
    c = np.array(collateral_usd, dtype=np.float64, ndmin=1)
    w = np.array(weighted_collateral_usd, dtype=np.float64, ndmin=1)
    d = np.array(debt_usd, dtype=np.float64, ndmin=1)
    k = c.shape[0]
    b = np.broadcast_to(np.asarray(bonus, dtype=np.float64), (k,))
    cf = np.broadcast_to(np.asarray(close_factor, dtype=np.float64), (k,))
    hf_full = np.broadcast_to(np.asarray(full_close_hf, dtype=np.float64), (k,))
    loss = np.zeros(k)
    repaid = np.zeros(k)
    seized = np.zeros(k)
    calls = np.zeros(k, dtype=np.int64)
    active = (d > 0) & (w < d) & (c > 0)
    for _ in range(max_calls):
        idx = np.nonzero(active)[0]
        if idx.size == 0:
            break
        ci, wi, di, bi = c[idx], w[idx], d[idx], b[idx]
        factor = np.where(wi / di <= hf_full[idx], 1.0, cf[idx])
        rep = factor * di
        sei = rep * (1.0 + bi)
        short = sei >= ci
        sei = np.where(short, ci, sei)
        rep = np.where(short, ci / (1.0 + bi), rep)
        c_new = np.where(short, 0.0, ci - sei)
        w_new = np.where(short, 0.0, wi * (c_new / ci))
        d_new = di - rep
        loss[idx] += rep * bi
        repaid[idx] += rep
        seized[idx] += sei
        calls[idx] += 1
        c[idx], w[idx], d[idx] = c_new, w_new, d_new
        active[idx] = (d_new > 0) & (w_new < d_new) & (c_new > 0)
    return LendingLiquidation(loss, repaid, seized, c, w, d, calls)


def isolated_liquidation(
    collateral_usd: npt.ArrayLike, weighted_collateral_usd: npt.ArrayLike, debt_usd: npt.ArrayLike, lif: npt.ArrayLike
) -> LendingLiquidation:
    """Isolated-market liquidation at fixed prices: where ``C × LLTV < D``, repay ``min(D, C / LIF)``, seize
    ``repaid × LIF``; loss ``repaid × (LIF − 1)``. Arrays of shape (k,), USD; ``lif`` broadcast to (k,)."""
    c = np.array(collateral_usd, dtype=np.float64, ndmin=1)
    w = np.array(weighted_collateral_usd, dtype=np.float64, ndmin=1)
    d = np.array(debt_usd, dtype=np.float64, ndmin=1)
    f = np.broadcast_to(np.asarray(lif, dtype=np.float64), c.shape)
    fails = (d > 0) & (w < d) & (c > 0)
    rep = np.where(fails, np.minimum(d, c / f), 0.0)
    short = fails & (d * f >= c)
    sei = np.where(short, c, rep * f)
    c_new = np.where(short, 0.0, c - sei)
    w_new = np.where(short, 0.0, np.where(fails, w * (c_new / np.where(c > 0, c, 1.0)), w))
    return LendingLiquidation(
        rep * (f - 1.0), rep, sei, c_new, w_new, d - rep, fails.astype(np.int64)
    )


def perp_liquidation_loss(equity_usd: npt.ArrayLike, maintenance_usd: npt.ArrayLike) -> F64:
    """Perp account liquidation: where ``0 < M`` and ``E < M``, all positions close and ``max(E, 0)`` is lost."""
    e = np.asarray(equity_usd, dtype=np.float64)
    m = np.asarray(maintenance_usd, dtype=np.float64)
    return np.asarray(np.where((m > 0) & (e < m), np.maximum(e, 0.0), 0.0), dtype=np.float64)


# --- exposures ------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Exposures:
    """Per-account USD exposures per underlying at today's prices; each (A, U). A feature at multipliers ``m``
    (U,) is ``X @ m``.

    ``value``: Σ quantity × price of the account's linear positions (not LP, not options); ``collateral``:
    seizable collateral; ``weighted``: collateral × threshold; ``requirement``: debt (lending) or
    ``|size| × price × mmr`` (perps);
    ``health``: the rule's margin ``g`` (``weighted − requirement``; perps ``value − requirement``), to which
    ``health_const`` (A,) is added (perp cash; ``+inf`` for accounts that are never liquidated).
    """

    value: F64
    collateral: F64
    weighted: F64
    requirement: F64
    health: F64
    health_const: F64


def exposures(book: Book, pos_quantity: npt.ArrayLike | None = None) -> Exposures:
    """Reduce the book (optionally with other quantities, shape (P,)) to :class:`Exposures`."""
    a, u = book.n_accounts, book.n_underlyings
    q = book.pos_quantity if pos_quantity is None else np.asarray(pos_quantity, dtype=np.float64)
    kind = book.pos_kind
    pv = q * book.price_usd[book.pos_underlying]
    idx = book.pos_account * u + book.pos_underlying
    n = a * u

    def acc(mask: npt.NDArray[np.bool_], weights: F64) -> F64:
        return np.asarray(np.bincount(idx[mask], weights=weights[mask], minlength=n), dtype=np.float64).reshape(a, u)

    value = acc((kind != Kind.LP) & (kind != Kind.OPTION), pv)
    coll_mask = (kind == Kind.COLLATERAL) & (book.pos_threshold > 0)
    collateral = acc(coll_mask, pv)
    weighted = acc(coll_mask, pv * book.pos_threshold)
    requirement = acc(kind == Kind.DEBT, -pv) + acc(kind == Kind.PERP, np.abs(pv) * book.pos_mmr)
    rule = book.acc_rule
    perp = (rule == Rule.PERP)[:, None]
    health = np.where(perp, value - requirement, weighted - requirement)
    open_perp = np.bincount(book.pos_account, weights=((kind == Kind.PERP) & (q != 0)).astype(np.float64), minlength=a)
    const = np.where(
        rule == Rule.PERP,
        np.where(open_perp > 0, book.acc_cash_usd, np.inf),
        np.where(rule == Rule.NONE, np.inf, 0.0),
    )
    return Exposures(value, collateral, weighted, requirement, np.asarray(health, np.float64), const)


def scenario_multipliers(book: Book, scenarios: ScenarioLike) -> F64:
    """The scenario set's price multipliers in the book's underlying order, shape (S, U).

    Raises ``KeyError`` for a non-stable underlying the scenario set does not name (stable ones stay at 1).
    """
    m = np.asarray(scenarios.price_multipliers, dtype=np.float64)
    names = tuple(scenarios.underlyings)
    if m.ndim != 2 or m.shape[1] != len(names):
        raise ValueError(f"price_multipliers must have shape (S, {len(names)}), got {m.shape}")
    col = {name: i for i, name in enumerate(names)}
    out = np.ones((m.shape[0], book.n_underlyings))
    for j, name in enumerate(book.underlyings):
        if name in col:
            out[:, j] = m[:, col[name]]
        elif not book.stable[j]:
            raise KeyError(f"the scenario set has no multiplier for {name}")
    if not np.all(np.isfinite(out) & (out >= 0)):
        raise ValueError("price multipliers must be finite and >= 0")
    return out


def _weights(scenarios: ScenarioLike, s: int) -> F64:
    w = np.asarray(scenarios.weights, dtype=np.float64).reshape(-1)
    if w.shape != (s,):
        raise ValueError(f"weights must have shape ({s},)")
    return w


def _starts(keys: I64, n: int) -> tuple[I64, I64]:
    """Segment starts of a sorted key array, and which of ``n`` keys each segment is."""
    if keys.size == 0:
        return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp)
    brk = np.flatnonzero(np.diff(keys)) + 1
    starts = np.concatenate([[0], brk]).astype(np.intp)
    return starts, keys[starts]


# --- scenario revaluation -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ScenarioResult:
    """Liquidation-aware revaluation of a book under a scenario set (``W`` wallets, ``S`` scenarios, USD).

    Attributes
    ----------
    scenario_names : tuple of str, (S,)
    weights : ndarray of shape (S,)
    pnl_linear_usd : ndarray of shape (W, S)
        P&L with no liquidation (every position revalued).
    liquidation_loss_usd : ndarray of shape (W, S)
        Σ penalties of the accounts that the venues liquidate (≥ 0).
    pnl_usd : ndarray of shape (W, S)
        Liquidation-aware P&L: ``pnl_linear − liquidation_loss``.
    n_liquidated : ndarray of shape (W, S), int
        Accounts liquidated.
    liq_account, liq_scenario : ndarray of shape (K,), int
        Every (account, scenario) pair that liquidates (in no particular order).
    liq_loss_usd : ndarray of shape (K,)
        Its penalty.
    worst_weighted_loss_usd : ndarray of shape (W,)
        ``max_s w_s × (−pnl)`` (may be negative when every scenario gains).
    worst_scenario : ndarray of shape (W,), int
    group_wallet, group_venue : ndarray of shape (G,), int
        The (wallet, venue) groups of the book, sorted.
    group_worst_weighted_loss_usd : ndarray of shape (G,)
        Each (wallet, venue)'s worst weighted liquidation-aware loss alone.
    """

    scenario_names: tuple[str, ...]
    weights: F64
    pnl_linear_usd: F64
    liquidation_loss_usd: F64
    pnl_usd: F64
    n_liquidated: npt.NDArray[np.int32]
    liq_account: I64
    liq_scenario: I64
    liq_loss_usd: F64
    worst_weighted_loss_usd: F64
    worst_scenario: I64
    group_wallet: I64
    group_venue: I64
    group_worst_weighted_loss_usd: F64

    def account_liquidated(self, n_accounts: int) -> npt.NDArray[np.bool_]:
        """Dense (A, S) mask of the accounts that liquidate in each scenario."""
        out = np.zeros((n_accounts, len(self.scenario_names)), dtype=bool)
        out[self.liq_account, self.liq_scenario] = True
        return out

    def account_loss_usd(self, n_accounts: int) -> F64:
        """Dense (A, S) liquidation penalties."""
        out = np.zeros((n_accounts, len(self.scenario_names)))
        out[self.liq_account, self.liq_scenario] = self.liq_loss_usd
        return out


def _segment_sums(values: F64, keys: I64) -> tuple[F64, I64]:
    """Sums of the rows of ``values`` (n, S) over runs of equal sorted ``keys`` (n,): (n_runs, S) and each run's key.

    Runs are padded to the longest one and summed with one gather, which avoids ``reduceat``'s per-run overhead
    on many short runs.
    """
    starts, ids = _starts(keys, 0)
    if starts.size == 0:
        return np.zeros((0, values.shape[1])), ids
    lengths = np.diff(np.append(starts, keys.shape[0]))
    width = int(lengths.max())
    offs = np.arange(width)[None, :]
    rows = np.where(offs < lengths[:, None], starts[:, None] + offs, keys.shape[0])
    padded = np.concatenate([values, np.zeros((1, values.shape[1]))], axis=0)
    return np.asarray(padded[rows].sum(axis=1), dtype=np.float64), ids


def _lending_losses(book: Book, acc: I64, c: F64, w: F64, d: F64) -> F64:
    """Penalties of lending accounts ``acc`` (k,) at collateral ``c``, weighted collateral ``w``, debt ``d``."""
    loss = np.zeros(acc.shape[0])
    lending = book.acc_rule[acc] == Rule.LENDING
    ia = np.nonzero(lending)[0]
    im = np.nonzero(~lending)[0]
    if ia.size:
        aa = acc[ia]
        out = lending_liquidation(
            c[ia], w[ia], d[ia], book.acc_bonus[aa], book.acc_close_factor[aa], book.acc_full_close_hf[aa]
        )
        loss[ia] = out.loss_usd
    if im.size:
        loss[im] = isolated_liquidation(c[im], w[im], d[im], book.acc_lif[acc[im]]).loss_usd
    return loss


@dataclass(frozen=True, slots=True)
class PreparedBook:
    """A book reduced once to what :func:`revalue` multiplies by the scenarios (reuse it across scenario sets).

    ``rows`` (R, U) stacks, in this order: seizable collateral, weighted collateral and debt of the lending
    accounts ``lend``; value and maintenance requirement of the open perp accounts ``perp``; the linear value of
    each (wallet, venue) group and of each wallet. LP and option positions are kept apart (non-linear).
    """

    book: Book
    exposures: Exposures
    rows: F64
    lend: I64
    perp: I64
    perp_cash: F64
    group_wallet: I64
    group_venue: I64
    acc_group: I64
    group0: F64
    wallet0: F64
    lp_u0: I64
    lp_u1: I64
    lp_q: F64
    lp_lo: F64
    lp_hi: F64
    lp_p0: F64
    lp_p1: F64
    lp_value0: F64
    lp_group: I64
    lp_wallet: I64
    opt_pos: I64
    opt_u: I64
    opt_q: F64
    opt_p: F64
    opt_strike: F64
    opt_expiry: F64
    opt_vol: F64
    opt_call: npt.NDArray[np.bool_]
    opt_value0: F64
    opt_group: I64
    opt_wallet: I64

    @property
    def n_groups(self) -> int:
        return int(self.group_wallet.shape[0])


def prepare(book: Book) -> PreparedBook:
    """Reduce ``book`` to per-account exposure rows (see :class:`PreparedBook`); O(P + A × U)."""
    n_w, n_a, n_u = book.n_wallets, book.n_accounts, book.n_underlyings
    x = exposures(book)
    # (wallet, venue) groups: accounts are sorted by (wallet, venue)
    gkey = book.acc_wallet * max(len(book.venues), 1) + book.acc_venue
    g_starts, _ = _starts(gkey, n_a)
    n_g = g_starts.shape[0]
    group_wallet = book.acc_wallet[g_starts] if n_a else np.zeros(0, dtype=np.intp)
    group_venue = book.acc_venue[g_starts] if n_a else np.zeros(0, dtype=np.intp)
    acc_group = np.repeat(np.arange(n_g), np.diff(np.append(g_starts, n_a))).astype(np.intp)
    x_group = np.add.reduceat(x.value, g_starts, axis=0) if n_a else np.zeros((0, n_u))
    x_wallet = np.zeros((n_w, n_u))
    if n_g:
        w_starts, w_present = _starts(group_wallet, n_w)
        x_wallet[w_present] = np.add.reduceat(x_group, w_starts, axis=0)
    # accounts a venue can liquidate; every feature a rule reads is one row of the product with the multipliers
    lend = np.nonzero((book.acc_rule == Rule.LENDING) | (book.acc_rule == Rule.ISOLATED))[0].astype(np.intp)
    perp = np.nonzero((book.acc_rule == Rule.PERP) & np.isfinite(x.health_const))[0].astype(np.intp)
    rows = np.concatenate(
        [x.collateral[lend], x.weighted[lend], x.requirement[lend], x.value[perp], x.requirement[perp], x_group,
         x_wallet],
        axis=0,
    )
    lp = np.nonzero(book.pos_kind == Kind.LP)[0]
    lp_u0, lp_u1 = book.pos_underlying[lp], book.pos_underlying2[lp]
    lp_q, lp_lo, lp_hi = (book.pos_quantity[lp][:, None], book.pos_sqrt_lower[lp][:, None],
                          book.pos_sqrt_upper[lp][:, None])
    lp_p0, lp_p1 = book.price_usd[lp_u0][:, None], book.price_usd[lp_u1][:, None]
    opt = np.nonzero(book.pos_kind == Kind.OPTION)[0].astype(np.intp)
    opt_args = (book.pos_quantity[opt], book.price_usd[book.pos_underlying[opt]], book.pos_strike[opt],
                book.pos_expiry[opt], book.pos_vol[opt], book.pos_is_call[opt])
    return PreparedBook(
        book=book,
        exposures=x,
        rows=np.ascontiguousarray(rows),
        lend=lend,
        perp=perp,
        perp_cash=book.acc_cash_usd[perp][:, None],
        group_wallet=group_wallet,
        group_venue=group_venue,
        acc_group=acc_group,
        group0=x_group.sum(axis=1)[:, None],
        wallet0=x_wallet.sum(axis=1)[:, None],
        lp_u0=lp_u0,
        lp_u1=lp_u1,
        lp_q=lp_q,
        lp_lo=lp_lo,
        lp_hi=lp_hi,
        lp_p0=lp_p0,
        lp_p1=lp_p1,
        lp_value0=lp_value_usd(lp_q, lp_lo, lp_hi, lp_p0, lp_p1),
        lp_group=acc_group[book.pos_account[lp]],
        lp_wallet=book.pos_wallet[lp],
        opt_pos=opt,
        opt_u=book.pos_underlying[opt],
        opt_q=opt_args[0][:, None],
        opt_p=opt_args[1][:, None],
        opt_strike=opt_args[2][:, None],
        opt_expiry=opt_args[3][:, None],
        opt_vol=opt_args[4],
        opt_call=opt_args[5][:, None],
        opt_value0=option_value_usd(*opt_args)[:, None],
        opt_group=acc_group[book.pos_account[opt]],
        opt_wallet=book.pos_wallet[opt],
    )


def option_scenario_inputs(book: Book, scenarios: ScenarioLike) -> tuple[F64, float]:
    """Shocked volatility of each option position of ``book`` in each scenario, shape (S, O) (options in position
    order), and the horizon in years (see "Options" in the module notes for the rule)."""
    opt = np.nonzero(book.pos_kind == Kind.OPTION)[0]
    names = tuple(scenarios.underlyings)
    s = np.asarray(scenarios.price_multipliers).shape[0]
    vol = book.pos_vol[opt]
    out = np.broadcast_to(vol, (s, opt.size)).copy()
    col = {name: i for i, name in enumerate(names)}
    und = book.pos_underlying[opt]
    named = np.array([book.underlyings[j] in col for j in und.tolist()], dtype=bool)
    horizon = float(getattr(scenarios, "horizon_days", 0.0))
    t = book.pos_expiry[opt]
    if named.any():
        idx = np.array([col[book.underlyings[j]] for j in und[named].tolist()], dtype=np.intp)
        shocked_vols = getattr(scenarios, "shocked_vols", None)
        if callable(shocked_vols):
            out[:, named] = np.asarray(shocked_vols(vol[named], idx, days_to_expiry=t[named] * DAYS_PER_YEAR))
        else:
            raw = getattr(scenarios, "vol_shift", None)
            if raw is not None:
                shift = np.asarray(raw, dtype=np.float64)
                shift = np.broadcast_to(shift[:, None] if shift.ndim == 1 else shift, (s, len(names)))
                out[:, named] = np.maximum(vol[named] + shift[:, idx], 0.0)
    if not np.all(np.isfinite(out) & (out >= 0)):
        raise ValueError("shocked volatilities must be finite and >= 0")
    if not (np.isfinite(horizon) and horizon >= 0):
        raise ValueError("horizon_days must be finite and >= 0")
    return np.asarray(out, dtype=np.float64), horizon / DAYS_PER_YEAR


def _option_pnl(pb: PreparedBook, mt: F64, vols: F64, horizon_years: float) -> F64:
    """Option P&L (O, Sc) at multipliers ``mt`` (U, Sc) and shocked volatilities ``vols`` (O, Sc)."""
    t_after = np.maximum(pb.opt_expiry - horizon_years, 0.0)
    price = black76_price(pb.opt_p * mt[pb.opt_u], pb.opt_strike, t_after, vols, pb.opt_call)
    return np.asarray(pb.opt_q * price - pb.opt_value0, dtype=np.float64)


def _lp_pnl(pb: PreparedBook, mt: F64) -> F64:
    """LP P&L (L, Sc) at multipliers ``mt`` (U, Sc): :func:`riskcore.book.lp_value_usd`, computed in place."""
    p0 = pb.lp_p0 * mt[pb.lp_u0]
    p1 = pb.lp_p1 * mt[pb.lp_u1]
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.divide(p0, p1)
    np.sqrt(s, out=s)
    s[np.isnan(s)] = 0.0  # both prices 0: any point of the range values to 0
    np.clip(s, pb.lp_lo, pb.lp_hi, out=s)
    x = np.divide(1.0, s)
    x -= 1.0 / pb.lp_hi
    x *= pb.lp_q
    x *= p0
    s -= pb.lp_lo
    s *= pb.lp_q
    s *= p1
    x += s
    x -= pb.lp_value0
    return x


def revalue(
    book: Book | PreparedBook, scenarios: ScenarioLike, *, chunk_elements: int = DEFAULT_CHUNK_ELEMENTS
) -> ScenarioResult:
    """Revalue every wallet of ``book`` in every scenario, applying each venue's liquidation rule.

    Parameters
    ----------
    book : Book or PreparedBook
        ``W`` wallets, ``A`` accounts, ``P`` positions, ``U`` underlyings (prepare once with :func:`prepare` to
        revalue under several scenario sets).
    scenarios : ScenarioLike
        ``S`` scenarios (multipliers matched to the book's underlyings by name; see :func:`scenario_multipliers`).
    chunk_elements : int
        Scenarios are processed in chunks so that the per-chunk feature matrix holds about this many values.

    Returns
    -------
    ScenarioResult
        Per (wallet, scenario) and per liquidating (account, scenario); USD.
    """
    pb = book if isinstance(book, PreparedBook) else prepare(book)
    bk = pb.book
    mult = scenario_multipliers(bk, scenarios)
    s_total = mult.shape[0]
    weights = _weights(scenarios, s_total)
    n_w = bk.n_wallets
    n_g = pb.n_groups
    lend, perp, rows, acc_group = pb.lend, pb.perp, pb.rows, pb.acc_group
    n_l, n_p = lend.shape[0], perp.shape[0]
    o_v = 3 * n_l
    o_g = o_v + 2 * n_p
    o_w = o_g + n_g
    has_lp = pb.lp_u0.shape[0] > 0
    n_o = pb.opt_pos.shape[0]
    if n_o:
        opt_vols, horizon_years = option_scenario_inputs(bk, scenarios)
        opt_vols_t = np.ascontiguousarray(opt_vols.T)  # (O, S)

    pnl_lin = np.zeros((n_w, s_total))
    liq_w = np.zeros((n_w, s_total))
    n_liq = np.zeros((n_w, s_total), dtype=np.int32)
    worst = np.full(n_w, -np.inf)
    worst_s = np.zeros(n_w, dtype=np.intp)
    g_worst = np.full(n_g, -np.inf)
    liq_acc: list[I64] = []
    liq_scn: list[I64] = []
    liq_loss: list[F64] = []

    chunk = max(1, min(s_total, chunk_elements // max(rows.shape[0] + pb.lp_u0.shape[0] + n_o, 1)))
    buf = np.empty((rows.shape[0], chunk))  # reused: fresh large arrays per chunk cost page faults
    for s0 in range(0, s_total, chunk):
        s1 = min(s_total, s0 + chunk)
        sc = s1 - s0
        mc = mult[s0:s1]
        wc = weights[s0:s1]
        feats = np.matmul(rows, mc.T, out=buf) if sc == chunk else rows @ mc.T  # (rows, Sc)
        grp = feats[o_g:o_w]
        grp -= pb.group0
        wal = feats[o_w:]
        wal -= pb.wallet0
        if has_lp:
            v = _lp_pnl(pb, np.ascontiguousarray(mc.T))
            sums, ids = _segment_sums(v, pb.lp_group)
            grp[ids] += sums
            sums, ids = _segment_sums(v, pb.lp_wallet)
            wal[ids] += sums
        if n_o:
            v = _option_pnl(pb, np.ascontiguousarray(mc.T), opt_vols_t[:, s0:s1], horizon_years)
            sums, ids = _segment_sums(v, pb.opt_group)
            grp[ids] += sums
            sums, ids = _segment_sums(v, pb.opt_wallet)
            wal[ids] += sums
        pnl_lin[:, s0:s1] = wal

        # lending: W < D; perps: cash + value < maintenance
        c, wt, d = feats[:n_l], feats[n_l : 2 * n_l], feats[2 * n_l : o_v]
        il, isl = np.nonzero(wt < d)
        v_p, m_p = feats[o_v : o_v + n_p], feats[o_v + n_p : o_g]
        eq = v_p + pb.perp_cash
        ip, isp = np.nonzero(eq < m_p)
        acc = np.concatenate([lend[il], perp[ip]])
        scn = np.concatenate([isl, isp])
        loss = np.concatenate([
            _lending_losses(bk, lend[il], c[il, isl], wt[il, isl], d[il, isl]),
            perp_liquidation_loss(eq[ip, isp], m_p[ip, isp]),
        ])
        if acc.size:
            wkey = bk.acc_wallet[acc] * sc + scn
            liq_w[:, s0:s1] = np.bincount(wkey, weights=loss, minlength=n_w * sc).reshape(n_w, sc)
            n_liq[:, s0:s1] = np.bincount(wkey, minlength=n_w * sc).reshape(n_w, sc)
            grp -= np.bincount(acc_group[acc] * sc + scn, weights=loss, minlength=n_g * sc).reshape(n_g, sc)
            liq_acc.append(acc)
            liq_scn.append(scn + s0)
            liq_loss.append(loss)
        if n_g:
            np.maximum(g_worst, np.max(-grp * wc[None, :], axis=1), out=g_worst)
        wl = -(wal - liq_w[:, s0:s1]) * wc[None, :]
        arg = np.argmax(wl, axis=1)
        best = wl[np.arange(n_w), arg]
        better = best > worst
        worst = np.where(better, best, worst)
        worst_s = np.where(better, arg + s0, worst_s)

    if s_total == 0:
        worst = np.zeros(n_w)
        g_worst = np.zeros(n_g)
    cat_a = np.concatenate(liq_acc) if liq_acc else np.zeros(0, dtype=np.intp)
    cat_s = np.concatenate(liq_scn) if liq_scn else np.zeros(0, dtype=np.intp)
    cat_l = np.concatenate(liq_loss) if liq_loss else np.zeros(0)
    return ScenarioResult(
        scenario_names=tuple(scenarios.names),
        weights=weights.copy(),
        pnl_linear_usd=pnl_lin,
        liquidation_loss_usd=liq_w,
        pnl_usd=pnl_lin - liq_w,
        n_liquidated=n_liq,
        liq_account=cat_a.astype(np.intp),
        liq_scenario=cat_s.astype(np.intp),
        liq_loss_usd=cat_l,
        worst_weighted_loss_usd=worst,
        worst_scenario=worst_s.astype(np.intp),
        group_wallet=pb.group_wallet,
        group_venue=pb.group_venue,
        group_worst_weighted_loss_usd=g_worst,
    )


# --- unified health -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class UnifiedHealth:
    """Per wallet (W,), USD unless stated.

    ``health = equity / margin`` (``inf`` with zero margin); ``margin = maintenance_factor × max(0, worst
    weighted liquidation-aware loss)``; ``venue_margin_usd`` (G,) per (wallet, venue) group (see
    :attr:`ScenarioResult.group_wallet`); ``netting_benefit = Σ venue margins − margin``.
    """

    equity_usd: F64
    margin_usd: F64
    health: F64
    worst_scenario: I64
    venue_margin_usd: F64
    venue_margin_sum_usd: F64
    netting_benefit_usd: F64
    maintenance_factor: float


def unified_health(
    book: Book, result: ScenarioResult, maintenance_factor: float = MAINTENANCE_FACTOR
) -> UnifiedHealth:
    """Unified health, portfolio margin, per-venue margins and the netting benefit from a :func:`revalue` result."""
    equity = book.wallet_equity_usd()
    margin = maintenance_factor * np.maximum(result.worst_weighted_loss_usd, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        health = np.where(margin > 0, equity / np.where(margin > 0, margin, 1.0), np.inf)
    venue = maintenance_factor * np.maximum(result.group_worst_weighted_loss_usd, 0.0)
    venue_sum = np.asarray(np.bincount(result.group_wallet, weights=venue, minlength=book.n_wallets), np.float64)
    return UnifiedHealth(
        equity_usd=equity,
        margin_usd=margin,
        health=np.asarray(health, dtype=np.float64),
        worst_scenario=result.worst_scenario,
        venue_margin_usd=venue,
        venue_margin_sum_usd=venue_sum,
        netting_benefit_usd=venue_sum - margin,
        maintenance_factor=maintenance_factor,
    )


# --- smallest uniform move ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class UniformMove:
    """Smallest common move of the non-stable underlyings that makes an account liquidatable.

    Moves are fractions of today's prices: ``down`` 0.25 means every risky price × 0.75, ``up`` 0.25 means × 1.25;
    0 when already liquidatable; ``nan`` when no move in range does it (down: to a price of 0; up: ``max_up``).
    ``*_account`` is the first account to liquidate (−1 when none), per wallet (W,); ``account_*`` are (A,).
    """

    down: F64
    down_account: I64
    up: F64
    up_account: I64
    account_down: F64
    account_up: F64


def _fails_at(x_risky: F64, x_stable: F64, const: F64, k: F64) -> npt.NDArray[np.bool_]:
    return np.asarray(x_stable + k * x_risky + const < 0)


def uniform_move(book: Book, *, max_up: float = 10.0, iterations: int = 64) -> UniformMove:
    """Bisection, per account, on the common multiplier ``k`` applied to every non-stable underlying.

    The venue rule is evaluated at ``k`` (the same exposures as :func:`revalue`); down searches ``k`` in
    ``[0, 1]``, up in ``[1, 1 + max_up]``; each is ``iterations`` halvings (64 reach float precision).
    """
    x = exposures(book)
    risky = ~book.stable
    xr = x.health[:, risky].sum(axis=1)
    xs = x.health[:, ~risky].sum(axis=1)
    const = x.health_const

    def search(sign: float, span: float) -> F64:
        now = _fails_at(xr, xs, const, np.ones_like(xr))
        far = _fails_at(xr, xs, const, 1.0 + sign * span * np.ones_like(xr))
        lo = np.zeros_like(xr)
        hi = np.full_like(xr, span)
        for _ in range(iterations):
            mid = 0.5 * (lo + hi)
            f = _fails_at(xr, xs, const, 1.0 + sign * mid)
            hi = np.where(f, mid, hi)
            lo = np.where(f, lo, mid)
        return np.asarray(np.where(now, 0.0, np.where(far, hi, np.nan)), dtype=np.float64)

    acc_down = search(-1.0, 1.0)
    acc_up = search(1.0, max_up)

    def first(moves: F64) -> tuple[F64, I64]:
        n_w = book.n_wallets
        best = np.full(n_w, np.nan)
        who = np.full(n_w, -1, dtype=np.intp)
        ok = np.nonzero(np.isfinite(moves))[0]
        if ok.size:
            order = ok[np.lexsort((ok, moves[ok], book.acc_wallet[ok]))]
            wallets, idx = np.unique(book.acc_wallet[order], return_index=True)
            best[wallets] = moves[order[idx]]
            who[wallets] = order[idx]
        return best, who

    d, da = first(acc_down)
    u, ua = first(acc_up)
    return UniformMove(d, da, u, ua, acc_down, acc_up)


# --- liquidation prices ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class LiquidationPrices:
    """Per (account, underlying) pair of a liquidatable account: the USD price at which the account's rule trips
    with every other price at today's; arrays of shape (K,).

    ``side`` is −1 when the account is liquidated below the price (a long exposure), +1 above it (short),
    0 where no positive price does it (``price_usd`` is then ``nan``).
    """

    account: I64
    underlying: I64
    price_usd: F64
    current_price_usd: F64
    side: npt.NDArray[np.int8]


def liquidation_prices(book: Book) -> LiquidationPrices:
    """Solve ``g(m_u) = g_0 + X_g[a, u] (m_u − 1) = 0`` per account ``a`` and underlying ``u`` it holds."""
    x = exposures(book)
    u = book.n_underlyings
    held = book.acc_rule[book.pos_account] != Rule.NONE
    keys = np.unique(book.pos_account[held] * u + book.pos_underlying[held])
    acc, und = keys // u, keys % u
    g0 = x.health.sum(axis=1)[acc] + x.health_const[acc]
    b = x.health[acc, und]
    with np.errstate(divide="ignore", invalid="ignore"):
        m_star = 1.0 - g0 / b
    ok = (b != 0) & np.isfinite(m_star) & (m_star > 0)
    price = np.where(ok, book.price_usd[und] * m_star, np.nan)
    side = np.where(ok, np.where(b > 0, -1, 1), 0).astype(np.int8)
    return LiquidationPrices(acc.astype(np.intp), und.astype(np.intp), price, book.price_usd[und].copy(), side)


# --- single-factor liquidation moves --------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class FactorLiquidations:
    """Per (account, factor) pair of a liquidatable account and a factor it is exposed to: the move of that factor
    alone (every other factor at today's) at which the account's rule trips; arrays of shape (K,).

    ``move`` is the signed fraction (−0.0863: the factor 8.63 % lower), 0 for an account that is liquidatable
    already, ``nan`` where no positive price does it; ``side`` is −1 when the account is liquidated as the factor
    *falls* (a long exposure), +1 as it *rises* (short), 0 with ``nan``.
    """

    account: I64
    factor: I64
    move: F64
    side: npt.NDArray[np.int8]


def factor_liquidation_moves(book: Book, loadings: npt.ArrayLike) -> FactorLiquidations:
    """Solve ``g(m) = g_0 + b (m − 1) = 0`` per account and factor, where a factor's multiplier ``m`` multiplies
    the price of every underlying that loads on it.

    The rule's margin ``g`` (``W − D`` lending, ``E − M`` perps; see :class:`Exposures`) is linear in each factor's
    multiplier with slope ``b = Σ_u health[a, u] × loadings[u, f]`` (a factor enters each underlying's price once,
    :mod:`riskcore.factors`), so ``move = m* − 1 = −g_0 / b``. With the identity as ``loadings`` this is
    :func:`liquidation_prices` expressed as moves.

    Parameters
    ----------
    book : Book
    loadings : array_like of shape (U, F)
        1 where the underlying's price moves with the factor (:attr:`riskcore.factors.FactorModel.loadings`).

    Returns
    -------
    FactorLiquidations
        One entry per (account, factor) with a position of the account on an underlying that loads on the factor,
        for the accounts a venue can liquidate (lending accounts; perp accounts with open positions).
    """
    load = np.asarray(loadings, dtype=np.float64)
    if load.ndim != 2 or load.shape[0] != book.n_underlyings:
        raise ValueError(f"loadings must have shape ({book.n_underlyings}, F), got {load.shape}")
    x = exposures(book)
    held = np.zeros((book.n_accounts, book.n_underlyings), dtype=bool)
    lin = book.acc_rule[book.pos_account] != Rule.NONE
    held[book.pos_account[lin], book.pos_underlying[lin]] = True
    liquidatable = (book.acc_rule != Rule.NONE) & np.isfinite(x.health_const)
    pairs = (held.astype(np.float64) @ (load > 0).astype(np.float64) > 0) & liquidatable[:, None]
    acc, fac = np.nonzero(pairs)
    g0 = (x.health.sum(axis=1) + np.where(np.isfinite(x.health_const), x.health_const, 0.0))[acc]
    b = (x.health @ load)[acc, fac]
    with np.errstate(divide="ignore", invalid="ignore"):
        move = np.where(g0 < 0, 0.0, -g0 / b)
    ok = np.where(g0 < 0, True, (b != 0) & np.isfinite(move) & (move > -1.0))
    side = np.where(ok, np.where(b > 0, -1, np.where(b < 0, 1, -1)), 0).astype(np.int8)
    return FactorLiquidations(acc.astype(np.intp), fac.astype(np.intp), np.where(ok, move, np.nan), side)


@dataclass(frozen=True, slots=True)
class NearestLiquidation:
    """Each wallet's single-factor liquidation nearest to today's prices, arrays of shape (W,).

    ``account`` and ``factor`` are −1 and ``move`` ``nan`` where no single-factor move liquidates any account of
    the wallet; ``side`` as in :class:`FactorLiquidations`.
    """

    account: I64
    factor: I64
    move: F64
    side: npt.NDArray[np.int8]


def nearest_liquidation(book: Book, loadings: npt.ArrayLike) -> NearestLiquidation:
    """The smallest ``|move|`` of :func:`factor_liquidation_moves` per wallet (ties: lowest account, then factor)."""
    out = factor_liquidation_moves(book, loadings)
    n_w = book.n_wallets
    account = np.full(n_w, -1, dtype=np.intp)
    factor = np.full(n_w, -1, dtype=np.intp)
    move = np.full(n_w, np.nan)
    side = np.zeros(n_w, dtype=np.int8)
    ok = np.flatnonzero(np.isfinite(out.move))
    if ok.size:
        wal = book.acc_wallet[out.account[ok]]
        order = ok[np.lexsort((out.factor[ok], out.account[ok], np.abs(out.move[ok]), wal))]
        wallets, first = np.unique(book.acc_wallet[out.account[order]], return_index=True)
        pick = order[first]
        account[wallets] = out.account[pick]
        factor[wallets] = out.factor[pick]
        move[wallets] = out.move[pick]
        side[wallets] = out.side[pick]
    return NearestLiquidation(account, factor, move, side)


# --- everything at once -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Assessment:
    """:func:`revalue`, :func:`unified_health`, :func:`uniform_move` and :func:`liquidation_prices` of one book."""

    scenarios: ScenarioResult
    health: UnifiedHealth
    moves: UniformMove
    liquidation_prices: LiquidationPrices


def assess(book: Book, scenarios: ScenarioLike, maintenance_factor: float = MAINTENANCE_FACTOR) -> Assessment:
    """Everything the unified view needs for ``book`` under ``scenarios``."""
    result = revalue(book, scenarios)
    return Assessment(result, unified_health(book, result, maintenance_factor), uniform_move(book),
                      liquidation_prices(book))
