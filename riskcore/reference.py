"""The same liquidation-aware scenario math as :mod:`riskcore.margin`, in plain Python loops; and synthetic books.

:func:`revalue_reference` walks wallet → scenario → account → position with Python floats and ``math`` only
(numpy arrays are turned into lists before the loops). It is the check on the vectorized engine in the tests and
its baseline in ``benchmarks/bench_risk.py``: the results agree to float rounding (summation order differs).
Options are priced with a scalar Black-76 of its own (``math.erfc``), with the scenario's absolute volatility shift
and the horizon (the simple rule :mod:`riskcore.margin` applies to a scenario set without ``shocked_vols``).

:func:`synthetic_book` and :func:`synthetic_scenarios` build reproducible random books (lending accounts near
their thresholds, leveraged perp accounts, LP ranges, tokens, optionally options) and scenario sets, from a
``numpy.random.Generator``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from riskcore.book import Book, Kind, Rule, lp_value_usd
from riskcore.margin import MAX_LIQUIDATION_CALLS

__all__ = [
    "SYNTHETIC_CLOSE_FACTOR",
    "SYNTHETIC_FULL_CLOSE_HF",
    "SYNTHETIC_INCENTIVE_CURSOR",
    "SYNTHETIC_MAX_INCENTIVE",
    "ReferenceResult",
    "SyntheticScenarios",
    "black76_price_scalar",
    "isolated_liquidation_loss",
    "lending_liquidation_loss",
    "perp_liquidation_loss",
    "revalue_reference",
    "synthetic_book",
    "synthetic_scenarios",
]

F64 = npt.NDArray[np.float64]

_COLL, _DEBT, _PERP, _LP = int(Kind.COLLATERAL), int(Kind.DEBT), int(Kind.PERP), int(Kind.LP)
_OPT = int(Kind.OPTION)
_LENDING, _ISOLATED, _RPERP = int(Rule.LENDING), int(Rule.ISOLATED), int(Rule.PERP)


def lending_liquidation_loss(
    c: float, w: float, d: float, bonus: float, close_factor: float, full_close_hf: float,
    max_calls: int = MAX_LIQUIDATION_CALLS,
) -> float:
    """Pooled lending penalty at fixed prices, call after call while ``HF < 1`` (scalar; see :mod:`riskcore.margin`)."""
    loss = 0.0
    calls = 0
    while d > 0 and w < d and c > 0 and calls < max_calls:
        factor = 1.0 if w / d <= full_close_hf else close_factor
        rep = factor * d
        sei = rep * (1.0 + bonus)
        if sei >= c:
            rep = c / (1.0 + bonus)
            c_new = 0.0
            w_new = 0.0
        else:
            c_new = c - sei
            w_new = w * (c_new / c)
        loss += rep * bonus
        d = d - rep
        c, w = c_new, w_new
        calls += 1
    return loss


def isolated_liquidation_loss(c: float, w: float, d: float, lif: float) -> float:
    """Isolated-market penalty: ``min(D, C / LIF) × (LIF − 1)`` where ``W = C × LLTV < D`` (scalar)."""
    if d > 0 and w < d and c > 0:
        return min(d, c / lif) * (lif - 1.0)
    return 0.0


def black76_price_scalar(forward: float, strike: float, time_years: float, vol: float, is_call: bool) -> float:
    """Black-76 price with ``r = 0`` (scalar, ``math`` only); intrinsic value where ``σ√T = 0`` or ``F = 0``."""
    s = vol * math.sqrt(time_years)
    if s > 0 and forward > 0:
        d1 = math.log(forward / strike) / s + 0.5 * s
        d2 = d1 - s

        def n(x: float) -> float:
            return 0.5 * math.erfc(-x / math.sqrt(2.0))

        if is_call:
            return forward * n(d1) - strike * n(d2)
        return strike * n(-d2) - forward * n(-d1)
    return max(forward - strike, 0.0) if is_call else max(strike - forward, 0.0)


def perp_liquidation_loss(equity: float, maintenance: float) -> float:
    """Perp penalty: ``max(E, 0)`` where ``0 < M`` and ``E < M`` (scalar)."""
    if maintenance > 0 and equity < maintenance:
        return max(equity, 0.0)
    return 0.0


@dataclass(frozen=True, slots=True)
class ReferenceResult:
    """What :func:`revalue_reference` gives for the wallets it was asked about (``n`` of them), USD."""

    wallets: tuple[int, ...]
    pnl_linear_usd: F64
    """(n, S)"""
    liquidation_loss_usd: F64
    """(n, S)"""
    pnl_usd: F64
    """(n, S)"""
    n_liquidated: npt.NDArray[np.int64]
    """(n, S)"""
    worst_weighted_loss_usd: F64
    """(n,)"""
    worst_scenario: npt.NDArray[np.int64]
    """(n,)"""
    venue_worst_weighted_loss_usd: dict[tuple[int, int], float]
    """(wallet, venue) → worst weighted loss of that venue alone."""


_Position = tuple[int, int, int, float, float, float, float, float, float, float, float, bool]


def revalue_reference(
    book: Book,
    multipliers: npt.ArrayLike,
    weights: npt.ArrayLike,
    wallets: Sequence[int] | None = None,
    vol_shift: npt.ArrayLike | None = None,
    horizon_days: float = 0.0,
) -> ReferenceResult:
    """Plain-Python liquidation-aware revaluation of ``wallets`` (default all) under ``multipliers`` (S, U) in the
    book's underlying order (see :func:`riskcore.margin.scenario_multipliers`) with ``weights`` (S,).

    Options are repriced at ``max(σ + vol_shift[s, u], 0)`` (``vol_shift`` (S, U) in the book's order, or (S,);
    default 0) and time to expiry ``max(T − horizon_days / 365, 0)``."""
    mult: list[list[float]] = np.asarray(multipliers, dtype=np.float64).tolist()
    n_u = book.n_underlyings
    if vol_shift is None:
        dvol: list[list[float]] = [[0.0] * n_u for _ in mult]
    else:
        vs = np.asarray(vol_shift, dtype=np.float64)
        dvol = np.broadcast_to(vs[:, None] if vs.ndim == 1 else vs, (len(mult), n_u)).tolist()
    tau = float(horizon_days) / 365.0
    wts: list[float] = np.asarray(weights, dtype=np.float64).reshape(-1).tolist()
    chosen = list(range(book.n_wallets)) if wallets is None else [int(w) for w in wallets]
    price: list[float] = book.price_usd.tolist()

    # accounts of the chosen wallets, positions of each account, as Python lists (numpy only selects them)
    pos_sel = np.nonzero(np.isin(book.pos_wallet, chosen))[0]
    acc_sel = np.nonzero(np.isin(book.acc_wallet, chosen))[0]
    pos_acc: list[int] = book.pos_account[pos_sel].tolist()
    cols = zip(
        book.pos_kind[pos_sel].tolist(), book.pos_underlying[pos_sel].tolist(),
        book.pos_underlying2[pos_sel].tolist(), book.pos_quantity[pos_sel].tolist(),
        book.pos_threshold[pos_sel].tolist(), book.pos_mmr[pos_sel].tolist(),
        book.pos_sqrt_lower[pos_sel].tolist(), book.pos_sqrt_upper[pos_sel].tolist(),
        book.pos_strike[pos_sel].tolist(), book.pos_expiry[pos_sel].tolist(), book.pos_vol[pos_sel].tolist(),
        book.pos_is_call[pos_sel].tolist(), strict=True,
    )
    positions_of: dict[int, list[_Position]] = {}
    for a, row in zip(pos_acc, cols, strict=True):
        positions_of.setdefault(a, []).append(row)
    accounts_of: dict[int, list[int]] = {}
    for a, w in zip(acc_sel.tolist(), book.acc_wallet[acc_sel].tolist(), strict=True):
        accounts_of.setdefault(w, []).append(a)
    venue: list[int] = book.acc_venue.tolist()
    rule: list[int] = book.acc_rule.tolist()
    bonus: list[float] = book.acc_bonus.tolist()
    cfac: list[float] = book.acc_close_factor.tolist()
    full_hf: list[float] = book.acc_full_close_hf.tolist()
    lif: list[float] = book.acc_lif.tolist()
    cash: list[float] = book.acc_cash_usd.tolist()

    n_s = len(mult)
    out_lin: list[list[float]] = []
    out_loss: list[list[float]] = []
    out_n: list[list[int]] = []
    worst: list[float] = []
    worst_s: list[int] = []
    venue_worst: dict[tuple[int, int], float] = {}
    ones = [1.0] * len(price)
    zeros = [0.0] * len(price)

    def account_value(
        positions: list[_Position], m: list[float], dv: list[float], dt: float
    ) -> tuple[float, float, float, float, bool]:
        value = coll = cap = req = 0.0
        is_open = False
        for kind, u, u2, q, thr, mmr, lo, hi, strike, expiry, vol, call in positions:
            if kind == _OPT:
                v = max(vol + dv[u], 0.0)
                value += q * black76_price_scalar(price[u] * m[u], strike, max(expiry - dt, 0.0), v, call)
                continue
            if kind == _LP:
                p0 = price[u] * m[u]
                p1 = price[u2] * m[u2]
                if p1 > 0:
                    s = math.sqrt(p0 / p1)
                else:
                    s = math.inf if p0 > 0 else 0.0
                s = lo if s < lo else (hi if s > hi else s)
                value += q * (1.0 / s - 1.0 / hi) * p0 + q * (s - lo) * p1
                continue
            pv = q * price[u] * m[u]
            value += pv
            if kind == _COLL:
                if thr > 0:
                    coll += pv
                    cap += pv * thr
            elif kind == _DEBT:
                req -= pv
            elif kind == _PERP:
                req += abs(pv) * mmr
                if q != 0:
                    is_open = True
        return value, coll, cap, req, is_open

    for w in chosen:
        accs = accounts_of.get(w, [])
        base = {a: account_value(positions_of.get(a, []), ones, zeros, 0.0)[0] for a in accs}
        lin_row: list[float] = []
        loss_row: list[float] = []
        n_row: list[int] = []
        best = -math.inf
        best_s = 0
        for s in range(n_s):
            m = mult[s]
            dv = dvol[s]
            lin = 0.0
            lost = 0.0
            count = 0
            per_venue: dict[int, float] = {}
            for a in accs:
                value, coll, cap, req, is_open = account_value(positions_of.get(a, []), m, dv, tau)
                pnl = value - base[a]
                loss = 0.0
                r = rule[a]
                if r == _LENDING and cap < req:
                    loss = lending_liquidation_loss(coll, cap, req, bonus[a], cfac[a], full_hf[a])
                    count += 1
                elif r == _ISOLATED and cap < req:
                    loss = isolated_liquidation_loss(coll, cap, req, lif[a])
                    count += 1
                elif r == _RPERP and is_open and cash[a] + value < req:
                    loss = perp_liquidation_loss(cash[a] + value, req)
                    count += 1
                lin += pnl
                lost += loss
                per_venue[venue[a]] = per_venue.get(venue[a], 0.0) + pnl - loss
            lin_row.append(lin)
            loss_row.append(lost)
            n_row.append(count)
            weighted = -(lin - lost) * wts[s]
            if weighted > best:
                best, best_s = weighted, s
            for v, pnl_v in per_venue.items():
                key = (w, v)
                venue_worst[key] = max(venue_worst.get(key, -math.inf), -pnl_v * wts[s])
        out_lin.append(lin_row)
        out_loss.append(loss_row)
        out_n.append(n_row)
        worst.append(best if n_s else 0.0)
        worst_s.append(best_s)

    lin_arr = np.asarray(out_lin, dtype=np.float64).reshape(len(chosen), n_s)
    loss_arr = np.asarray(out_loss, dtype=np.float64).reshape(len(chosen), n_s)
    return ReferenceResult(
        wallets=tuple(chosen),
        pnl_linear_usd=lin_arr,
        liquidation_loss_usd=loss_arr,
        pnl_usd=lin_arr - loss_arr,
        n_liquidated=np.asarray(out_n, dtype=np.int64).reshape(len(chosen), n_s),
        worst_weighted_loss_usd=np.asarray(worst, dtype=np.float64),
        worst_scenario=np.asarray(worst_s, dtype=np.int64),
        venue_worst_weighted_loss_usd=venue_worst,
    )


# --- synthetic books and scenarios ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SyntheticScenarios:
    """A scenario set with the attributes of ``riskcore.scenarios.ScenarioSet``."""

    names: tuple[str, ...]
    underlyings: tuple[str, ...]
    price_multipliers: F64
    vol_shift: F64
    horizon_days: float
    weights: F64


def synthetic_scenarios(
    rng: np.random.Generator, underlyings: Sequence[str], n_scenarios: int, stable: Sequence[str] = ("USDC",),
    vol: float = 0.12,
) -> SyntheticScenarios:
    """``n_scenarios`` lognormal price shocks with a common market factor (stablecoins held at 1); the first two
    are extreme moves (−3× / +3× the market vol, weight 0.35), the rest weight 1."""
    u = len(underlyings)
    market = rng.standard_normal(n_scenarios)
    if n_scenarios >= 2:
        market[0], market[1] = -3.0 * 1.6, 3.0 * 1.6
    beta = rng.uniform(0.6, 1.4, size=u)
    idio = rng.standard_normal((n_scenarios, u)) * 0.5
    mult = np.exp(vol * (market[:, None] * beta[None, :] + idio))
    is_stable = np.array([name in set(stable) for name in underlyings])
    mult[:, is_stable] = 1.0
    weights = np.ones(n_scenarios)
    weights[: min(2, n_scenarios)] = 0.35
    return SyntheticScenarios(
        names=tuple(f"s{i}" for i in range(n_scenarios)),
        underlyings=tuple(underlyings),
        price_multipliers=mult,
        vol_shift=np.zeros(n_scenarios),
        horizon_days=1.0,
        weights=weights,
    )


_VENUES = ("lending", "isolated", "perp_a", "perp_b", "lp", "wallet")
SYNTHETIC_CLOSE_FACTOR = 0.5
"""The synthetic lending accounts' close factor (half the debt per call)…"""
SYNTHETIC_FULL_CLOSE_HF = 0.95
"""…and the health at or below which a call repays all of it."""
SYNTHETIC_MAX_INCENTIVE = 1.15
SYNTHETIC_INCENTIVE_CURSOR = 0.3
"""The synthetic isolated markets' incentive factor: ``min(1.15, 1 / (1 − 0.3 (1 − LLTV)))``, higher for riskier
(lower-LLTV) markets."""


def synthetic_book(
    rng: np.random.Generator, n_wallets: int, positions_per_wallet: int = 50, n_underlyings: int = 20,
    n_options: int = 0,
) -> Book:
    """A random book: per wallet one pooled lending account, isolated markets, two perp accounts, LP ranges and tokens.

    Underlying 0 is ``USDC`` (stable, $1); the others ``T1``… have lognormal prices. Lending accounts start with
    health in [1.02, 2], perp accounts at 2.5–25× leverage, so that the scenarios liquidate some of them.
    For 50 positions a wallet has 8 lending collateral + 2 debt, 3 isolated markets (2 each), 14 + 10 perps, 2 LP
    ranges, 8 tokens; other sizes scale these counts. ``n_options`` > 0 adds that many options per wallet (long
    and written calls and puts, strikes 0.6–1.4× the price, 1–180 days, vols 0.3–1.2) in an ``"options"``
    account, drawn after everything else (the rest of the book is the same as without them). The liquidation
    terms are synthetic: a close factor of :data:`SYNTHETIC_CLOSE_FACTOR` (all of the debt at or below
    :data:`SYNTHETIC_FULL_CLOSE_HF`), bonuses of 4.5–10 %, isolated incentives from the LLTV.
    """
    if positions_per_wallet < 12:
        raise ValueError("need at least 12 positions per wallet")
    if n_underlyings < 3:
        raise ValueError("need at least 3 underlyings")
    scale = positions_per_wallet / 50
    n_ac = max(1, round(8 * scale))
    n_ad = 2
    n_mo = max(1, round(3 * scale))
    n_hl = max(1, round(14 * scale))
    n_dy = max(1, round(10 * scale))
    n_lp = max(1, round(2 * scale))
    n_sp = positions_per_wallet - (n_ac + n_ad + 2 * n_mo + n_hl + n_dy + n_lp)
    if n_sp < 0:
        n_hl += n_sp
        n_sp = 0
    n_w, u = n_wallets, n_underlyings
    underlyings = ("USDC", *(f"T{i}" for i in range(1, u)))
    price = np.concatenate([[1.0], np.exp(rng.uniform(np.log(0.05), np.log(60_000.0), size=u - 1))])

    def risky(*shape: int) -> npt.NDArray[np.intp]:
        return rng.integers(1, u, size=shape).astype(np.intp)

    def usd(mean: float, *shape: int) -> F64:
        return np.asarray(np.exp(rng.normal(math.log(mean), 0.8, size=shape)), dtype=np.float64)

    acc_per_w = 1 + n_mo + 2 + 1 + (1 if n_sp else 0) + (1 if n_options else 0)
    wal = np.arange(n_w)
    acc_base = wal * acc_per_w
    blocks: list[dict[str, npt.NDArray[np.generic]]] = []

    def block(
        acc: npt.NDArray[np.intp], und: npt.NDArray[np.intp], kind: Kind, qty: F64, **extra: npt.NDArray[np.generic]
    ) -> None:
        n = acc.size
        b: dict[str, npt.NDArray[np.generic]] = {
            "acc": acc.reshape(-1), "und": und.reshape(-1), "kind": np.full(n, int(kind), np.int8),
            "qty": qty.reshape(-1), "und2": np.full(n, -1, np.intp), "thr": np.zeros(n), "mmr": np.zeros(n),
            "lo": np.full(n, np.nan), "hi": np.full(n, np.nan), "strike": np.full(n, np.nan),
            "expiry": np.zeros(n), "vol": np.zeros(n), "call": np.zeros(n, dtype=bool),
        }
        for k, v in extra.items():
            b[k] = np.asarray(v).reshape(-1)
        blocks.append(b)

    # pooled lending: collateral, then debt sized for HF in [1.02, 2]
    c_und = risky(n_w, n_ac)
    c_val = usd(20_000.0, n_w, n_ac)
    lt = rng.uniform(0.65, 0.86, size=(n_w, n_ac))
    lending_acc = np.repeat(acc_base, n_ac).reshape(n_w, n_ac)
    block(lending_acc, c_und, Kind.COLLATERAL, c_val / price[c_und], thr=lt)
    debt = (c_val * lt).sum(axis=1) / rng.uniform(1.02, 2.0, size=n_w)
    frac = rng.uniform(0.3, 1.0, size=n_w)
    d_und = np.stack([np.zeros(n_w, np.intp), risky(n_w)], axis=1)
    d_val = np.stack([debt * frac, debt * (1 - frac)], axis=1)
    block(np.repeat(acc_base, n_ad).reshape(n_w, n_ad), d_und, Kind.DEBT, -d_val / price[d_und])
    lending_bonus = rng.choice([0.045, 0.05, 0.075, 0.1], size=n_w)

    # isolated markets
    m_acc = acc_base[:, None] + 1 + np.arange(n_mo)[None, :]
    lltv = rng.choice([0.625, 0.77, 0.86, 0.915, 0.945], size=(n_w, n_mo))
    mc_und = risky(n_w, n_mo)
    mc_val = usd(15_000.0, n_w, n_mo)
    block(m_acc, mc_und, Kind.COLLATERAL, mc_val / price[mc_und], thr=lltv)
    ml_und = np.where(rng.random((n_w, n_mo)) < 0.8, 0, risky(n_w, n_mo)).astype(np.intp)
    ml_val = mc_val * lltv / rng.uniform(1.02, 1.8, size=(n_w, n_mo))
    block(m_acc, ml_und, Kind.DEBT, -ml_val / price[ml_und])

    # perps: two cross accounts
    perp_cash = np.zeros((n_w, 2))
    for j, n_p in enumerate((n_hl, n_dy)):
        p_acc = np.repeat(acc_base + 1 + n_mo + j, n_p).reshape(n_w, n_p)
        p_und = risky(n_w, n_p)
        notional = usd(8_000.0, n_w, n_p)
        side = np.where(rng.random((n_w, n_p)) < 0.5, -1.0, 1.0)
        mmr = rng.choice([0.0125, 0.02, 0.025, 0.05], size=(n_w, n_p))
        block(p_acc, p_und, Kind.PERP, side * notional / price[p_und], mmr=mmr)
        equity = notional.sum(axis=1) * rng.uniform(0.04, 0.4, size=n_w)
        perp_cash[:, j] = equity - (side * notional).sum(axis=1)

    # LP ranges (token1 USDC or another risky token)
    lp_acc = np.repeat(acc_base + 3 + n_mo, n_lp).reshape(n_w, n_lp)
    t0 = risky(n_w, n_lp)
    t1 = np.where(rng.random((n_w, n_lp)) < 0.7, 0, risky(n_w, n_lp)).astype(np.intp)
    t1 = np.where(t1 == t0, 0, t1).astype(np.intp)
    pool = price[t0] / price[t1]
    lo = np.sqrt(pool * rng.uniform(0.5, 0.95, size=(n_w, n_lp)))
    hi = np.sqrt(pool * rng.uniform(1.05, 2.0, size=(n_w, n_lp)))
    unit = lp_value_usd(1.0, lo, hi, price[t0], price[t1])
    liq = usd(20_000.0, n_w, n_lp) / unit
    block(lp_acc, t0, Kind.LP, liq, und2=t1, lo=lo, hi=hi)

    if n_sp:
        sp_und = risky(n_w, n_sp)
        block(np.repeat(acc_base + 4 + n_mo, n_sp).reshape(n_w, n_sp), sp_und, Kind.SPOT,
              usd(5_000.0, n_w, n_sp) / price[sp_und])

    if n_options:
        o_acc = np.repeat(acc_base + acc_per_w - 1, n_options).reshape(n_w, n_options)
        o_und = risky(n_w, n_options)
        o_qty = np.where(rng.random((n_w, n_options)) < 0.6, 1.0, -1.0) * usd(10_000.0, n_w, n_options) / price[o_und]
        o_strike = price[o_und] * rng.uniform(0.6, 1.4, size=(n_w, n_options))
        o_expiry = rng.uniform(1.0, 180.0, size=(n_w, n_options)) / 365.0
        o_vol = rng.uniform(0.3, 1.2, size=(n_w, n_options))
        o_call = rng.random((n_w, n_options)) < 0.5
        block(o_acc, o_und, Kind.OPTION, o_qty, strike=o_strike, expiry=o_expiry, vol=o_vol, call=o_call)

    def cat(key: str) -> npt.NDArray[np.generic]:
        return np.concatenate([b[key] for b in blocks])

    slot_venue = [0] + [1] * n_mo + [2, 3, 4] + ([5] if n_sp else []) + ([6] if n_options else [])
    slot_rule = [int(Rule.LENDING)] + [int(Rule.ISOLATED)] * n_mo + [int(Rule.PERP)] * 2 + [int(Rule.NONE)] * (
        1 + (1 if n_sp else 0) + (1 if n_options else 0)
    )
    acc_venue = np.tile(np.asarray(slot_venue, np.intp), n_w)
    acc_rule = np.tile(np.asarray(slot_rule, np.int8), n_w)
    acc_bonus = np.zeros((n_w, acc_per_w))
    acc_bonus[:, 0] = lending_bonus
    acc_lif = np.ones((n_w, acc_per_w))
    acc_lif[:, 1 : 1 + n_mo] = np.minimum(
        SYNTHETIC_MAX_INCENTIVE, 1.0 / (1.0 - SYNTHETIC_INCENTIVE_CURSOR * (1.0 - lltv))
    )
    acc_cash = np.zeros((n_w, acc_per_w))
    acc_cash[:, 1 + n_mo : 3 + n_mo] = perp_cash
    return Book.from_arrays(
        wallets=[f"w{i}" for i in range(n_w)],
        underlyings=underlyings,
        venues=_VENUES + (("options",) if n_options else ()),
        price_usd=price,
        stable=[True] + [False] * (u - 1),
        pos_account=cat("acc"),
        pos_underlying=cat("und"),
        pos_underlying2=cat("und2"),
        pos_kind=cat("kind"),
        pos_quantity=cat("qty"),
        pos_threshold=cat("thr"),
        pos_mmr=cat("mmr"),
        pos_sqrt_lower=cat("lo"),
        pos_sqrt_upper=cat("hi"),
        pos_strike=cat("strike"),
        pos_expiry=cat("expiry"),
        pos_vol=cat("vol"),
        pos_is_call=cat("call"),
        acc_wallet=np.repeat(wal, acc_per_w),
        acc_venue=acc_venue,
        acc_rule=acc_rule,
        acc_bonus=acc_bonus.reshape(-1),
        acc_close_factor=np.full(n_w * acc_per_w, SYNTHETIC_CLOSE_FACTOR),
        acc_full_close_hf=np.full(n_w * acc_per_w, SYNTHETIC_FULL_CLOSE_HF),
        acc_lif=acc_lif.reshape(-1),
        acc_cash_usd=acc_cash.reshape(-1),
    )
