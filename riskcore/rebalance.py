"""The keeper's rebalance planner: the fewest actions that bring every venue of a wallet to its target health.

Model (DeFi Saver's automation)
-------------------------------
Every venue carries a ``target`` health and an ``offset``. A venue *triggers* when its health is below
``target − offset`` (the "repay trigger"); a plan then brings venues up to their target ("repay to target")
without overshooting above ``target + offset``. Health is

* lending venue (a pooled lending account, one isolated market): ``H = W / D`` with ``W = Σ amount · price · threshold``
  over the collateral lines and ``D = Σ amount · price`` over the debt lines (``None``, i.e. infinite, without
  debt);
* perp venue: ``H = equity / M`` with ``M = Σ maintenance_rate · |size| · mark`` (``None`` without maintenance).

Prices are the ``price_usd`` of the :class:`TokenBalance` entries (every token that a lending venue names must have
one; its ``idle`` may be 0); perp positions are valued at their own ``mark_usd``. Token amounts are token units
(not raw integers), perp sizes base units, everything else USD.

Who does what
-------------
If no venue triggers, the plan is ``"noop"`` and nothing is solved. Otherwise

* *receivers* are the venues with ``H < target`` (every one of them is raised, not only those that triggered);
* *donors* are the lending venues with ``H ≥ target`` or without debt; a receiver is never a donor, and a perp
  venue is never a donor.

Candidate actions (one per venue and token line):

* ``repay`` — a receiver lending venue repays one of its debt tokens (at most the debt);
* ``supply`` — a receiver lending venue supplies more of a ``suppliable`` collateral token;
* ``withdraw`` — a donor takes out some of a ``withdrawable`` collateral line (at most the amount supplied), only
  of a token some receiver can repay or supply, and only as far as the donor's own health allows (below);
* ``reduce`` — a receiver perp venue reduces the ``|size|`` of one position (at most ``|size|``), only with
  ``allow_reduce``. Reducing lowers the maintenance by ``rate · mark · q`` and leaves the equity unchanged (no
  fees, no price impact).

There are no swaps: for every token, ``idle + Σ withdraw − Σ supply − Σ repay ≥ 0``.

Health constraints (linear; ``b`` is ``buffer``, ``L = target · (1 + b)``, ``U = max(target + offset, L)``)
-----------------------------------------------------------------------------------------------------------
* every receiver lending venue: ``W' − L · D' ≥ 0`` and ``W' − U · D' ≤ 0`` (the second one means that a
  receiver with collateral never repays all of its debt);
* every receiver perp venue: ``E − L · M' ≥ 0`` and ``E − U · M' ≤ 0``;
* every donor with debt that may withdraw: ``W' − L · D' ≥ 0``: a donor lends collateral down to its target (with
  the buffer), not below. A donor already below ``L`` (``target ≤ H < L``) gets no withdraw candidates;
* a venue that is neither receiver nor donor (a healthy perp venue) is left alone.

``U`` is ``target + offset`` unless ``offset < target · buffer``, where the band would be empty; it is then the
single point ``L``.

Objective (lexicographic, two MILPs solved with HiGHS through :func:`scipy.optimize.milp`)
---------------------------------------------------------------------------------------------
Each candidate ``k`` has an amount ``x_k`` in USD (divided by the largest candidate bound for conditioning) and a
binary ``z_k`` with ``ε · z_k ≤ x_k ≤ U_k · z_k`` (``ε`` = :data:`MIN_ACTION_REL` of the largest bound, so that
an action that is selected is never numerically zero):

1. minimize ``Σ z_k`` (the number of actions), giving ``k*``;
2. with ``Σ z_k ≤ k*``, maximize the wallet's unified margin surplus
   ``Σ_lending (W − D) + Σ_perp (equity − M)`` (idle tokens count 0), minus :data:`TIE_BREAK_PER_USD` per USD
   moved (so that among plans of equal surplus the smallest amounts win).

Since idle tokens count 0 in the surplus, step 2 moves as much as the bands allow: with idle funds to spare a
receiver ends at the top of its band (``target + offset``), not at ``target``; with scarce funds it uses all of
them; donors give only what receivers use, as withdrawing lowers the surplus (unless the receiver's threshold is
higher than the donor's). Finally the continuous amounts are re-solved as an LP with the chosen actions fixed
(a clean vertex: the selected amounts are ``≥ ε``, the others exactly 0), so the plan has exactly ``k*`` actions.

If step 1 is infeasible the plan is ``"infeasible"`` with no actions; its message names the receivers that
cannot reach target even alone (each one's best threshold-weighted margin is found by an LP with the other
receivers idle) and why, or says that they can each be raised alone but compete for the same funds.

``health_after`` and ``surplus_after_usd`` are evaluated with :func:`venue_health` on the venues as the returned
actions leave them (the same linear model), not read from the solver. Actions are in execution order: every
withdraw, then repays and supplies, then reduces.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "MIN_ACTION_REL",
    "TIE_BREAK_PER_USD",
    "Action",
    "ActionKind",
    "CollateralLine",
    "DebtLine",
    "LendingVenue",
    "PerpLine",
    "PerpVenue",
    "Plan",
    "TokenBalance",
    "plan_rebalance",
    "surplus_usd",
    "venue_health",
]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.intp]

MIN_ACTION_REL = 1e-6
"""Smallest amount of a selected action, relative to the largest candidate bound (USD)."""
TIE_BREAK_PER_USD = 1e-7
"""Surplus (USD) traded for each USD moved in the second MILP: prefers small amounts among equal surpluses."""

ActionKind = Literal["withdraw", "repay", "supply", "reduce"]

_WITHDRAW, _REPAY, _SUPPLY, _REDUCE = 0, 1, 2, 3
_KIND_NAMES: tuple[ActionKind, ...] = ("withdraw", "repay", "supply", "reduce")
_ORDER = (0, 1, 1, 2)  # execution stage of each kind: withdraws, then repays and supplies, then reduces


# --- inputs -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TokenBalance:
    """A token the wallet holds idle in its wallet: its price (USD per token, > 0) and idle amount (tokens)."""

    token: str
    price_usd: float
    idle: float


@dataclass(frozen=True, slots=True)
class CollateralLine:
    """Collateral of a lending venue: token units supplied, liquidation threshold (LLTV) as a fraction."""

    token: str
    amount: float
    threshold: float
    withdrawable: bool = True
    suppliable: bool = True


@dataclass(frozen=True, slots=True)
class DebtLine:
    """Debt of a lending venue, token units owed."""

    token: str
    amount: float


@dataclass(frozen=True, slots=True)
class LendingVenue:
    """Pooled lending account (an isolated market is one venue with one collateral and one debt line).

    Health ``Σ amount · price · threshold / Σ debt · price``; ``target`` and ``offset`` are health ratios.
    """

    name: str
    collateral: tuple[CollateralLine, ...]
    debt: tuple[DebtLine, ...]
    target: float
    offset: float


@dataclass(frozen=True, slots=True)
class PerpLine:
    """A perp position: signed size (base units, short < 0), mark price (USD), maintenance margin rate."""

    market: str
    size: float
    mark_usd: float
    maintenance_rate: float


@dataclass(frozen=True, slots=True)
class PerpVenue:
    """A perp account: health ``equity_usd / Σ maintenance_rate · |size| · mark``."""

    name: str
    equity_usd: float
    positions: tuple[PerpLine, ...]
    target: float
    offset: float


Venue = LendingVenue | PerpVenue


# --- outputs ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Action:
    """One step of a plan: ``amount`` in token units (``reduce``: base units of ``|size|`` reduction), ``usd`` its
    value (``amount · price``; ``reduce``: ``amount · mark``). ``token`` is the perp market for ``reduce``."""

    kind: ActionKind
    venue: str
    token: str
    amount: float
    usd: float


@dataclass(frozen=True, slots=True)
class Plan:
    """Result of :func:`plan_rebalance`.

    ``health_before`` / ``health_after`` per venue name (``None``: no debt / no maintenance, infinite health),
    ``health_after`` evaluated on the venues as the actions leave them; surpluses in USD (see
    :func:`surplus_usd`); ``actions`` in execution order.
    """

    status: Literal["noop", "ok", "infeasible"]
    actions: tuple[Action, ...]
    health_before: dict[str, float | None]
    health_after: dict[str, float | None]
    surplus_before_usd: float
    surplus_after_usd: float
    message: str


# --- health and surplus ---------------------------------------------------------------------------------------
def _price(prices: Mapping[str, float], token: str, venue: str) -> float:
    if token not in prices:
        raise ValueError(f"venue {venue!r}: no price for token {token!r} (add a TokenBalance for it)")
    p = float(prices[token])
    if not (math.isfinite(p) and p > 0):
        raise ValueError(f"token {token!r}: price must be finite and > 0, got {p!r}")
    return p


def _lending_sums(venue: LendingVenue, prices: Mapping[str, float]) -> tuple[float, float]:
    """``(W, D)`` of a lending venue, USD."""
    w = math.fsum(c.amount * _price(prices, c.token, venue.name) * c.threshold for c in venue.collateral)
    d = math.fsum(x.amount * _price(prices, x.token, venue.name) for x in venue.debt)
    return w, d


def _maintenance(venue: PerpVenue) -> float:
    return math.fsum(p.maintenance_rate * abs(p.size) * p.mark_usd for p in venue.positions)


def venue_health(venue: LendingVenue | PerpVenue, prices: Mapping[str, float]) -> float | None:
    """Health of one venue (see the module notes); ``None`` when it has no debt / no maintenance (infinite).

    Parameters
    ----------
    venue : LendingVenue or PerpVenue
    prices : Mapping[str, float]
        USD per token unit for every token of a lending venue (perps use their own marks).

    Raises
    ------
    ValueError
        A token without a price, or a non-positive price.
    """
    if isinstance(venue, LendingVenue):
        w, d = _lending_sums(venue, prices)
        return None if d <= 0 else w / d
    m = _maintenance(venue)
    return None if m <= 0 else venue.equity_usd / m


def surplus_usd(venues: Sequence[LendingVenue | PerpVenue], prices: Mapping[str, float]) -> float:
    """Unified margin surplus: ``Σ_lending (Σ threshold · collateral value − debt value) + Σ_perp (equity − M)``,
    USD (idle tokens count 0)."""
    total = []
    for v in venues:
        if isinstance(v, LendingVenue):
            w, d = _lending_sums(v, prices)
            total.append(w - d)
        else:
            total.append(v.equity_usd - _maintenance(v))
    return math.fsum(total)


# --- validation -----------------------------------------------------------------------------------------------
def _finite(x: float, what: str, *, min_value: float | None = None, positive: bool = False) -> None:
    if not math.isfinite(x):
        raise ValueError(f"{what} must be finite, got {x!r}")
    if positive and not x > 0:
        raise ValueError(f"{what} must be > 0, got {x!r}")
    if min_value is not None and x < min_value:
        raise ValueError(f"{what} must be >= {min_value}, got {x!r}")


def _validate(
    venues: Sequence[Venue], tokens: Sequence[TokenBalance], buffer: float
) -> tuple[dict[str, float], dict[str, float]]:
    """Check the inputs; return ``(prices, idle)`` keyed by token."""
    _finite(buffer, "buffer", min_value=0.0)
    prices: dict[str, float] = {}
    idle: dict[str, float] = {}
    for t in tokens:
        if t.token in prices:
            raise ValueError(f"token {t.token!r} listed twice")
        _finite(t.price_usd, f"token {t.token!r}: price_usd", positive=True)
        _finite(t.idle, f"token {t.token!r}: idle", min_value=0.0)
        prices[t.token] = float(t.price_usd)
        idle[t.token] = float(t.idle)
    names: set[str] = set()
    for v in venues:
        if v.name in names:
            raise ValueError(f"venue name {v.name!r} used twice")
        names.add(v.name)
        _finite(v.target, f"venue {v.name!r}: target", positive=True)
        _finite(v.offset, f"venue {v.name!r}: offset", min_value=0.0)
        if not v.target - v.offset > 0:
            raise ValueError(f"venue {v.name!r}: target − offset must be > 0, got {v.target} − {v.offset}")
        if isinstance(v, LendingVenue):
            seen: set[tuple[str, str]] = set()
            for c in v.collateral:
                if c.token not in prices:
                    raise ValueError(f"venue {v.name!r}: unknown collateral token {c.token!r} (no TokenBalance)")
                if ("c", c.token) in seen:
                    raise ValueError(f"venue {v.name!r}: collateral token {c.token!r} listed twice")
                seen.add(("c", c.token))
                _finite(c.amount, f"venue {v.name!r}: collateral {c.token!r} amount", min_value=0.0)
                _finite(c.threshold, f"venue {v.name!r}: collateral {c.token!r} threshold", min_value=0.0)
                if c.threshold > 1:
                    raise ValueError(f"venue {v.name!r}: collateral {c.token!r} threshold must be <= 1")
            for d in v.debt:
                if d.token not in prices:
                    raise ValueError(f"venue {v.name!r}: unknown debt token {d.token!r} (no TokenBalance)")
                if ("d", d.token) in seen:
                    raise ValueError(f"venue {v.name!r}: debt token {d.token!r} listed twice")
                seen.add(("d", d.token))
                _finite(d.amount, f"venue {v.name!r}: debt {d.token!r} amount", min_value=0.0)
        elif isinstance(v, PerpVenue):
            _finite(v.equity_usd, f"venue {v.name!r}: equity_usd")
            markets: set[str] = set()
            for p in v.positions:
                if p.market in markets:
                    raise ValueError(f"venue {v.name!r}: market {p.market!r} listed twice")
                markets.add(p.market)
                _finite(p.size, f"venue {v.name!r}: {p.market} size")
                _finite(p.mark_usd, f"venue {v.name!r}: {p.market} mark_usd", positive=True)
                _finite(p.maintenance_rate, f"venue {v.name!r}: {p.market} maintenance_rate", min_value=0.0)
        else:
            raise TypeError(f"not a LendingVenue or PerpVenue: {v!r}")
    return prices, idle


# --- the program ------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Candidates:
    """Candidate actions, arrays of shape (n,); USD unless stated."""

    kind: npt.NDArray[np.intp]
    venue: npt.NDArray[np.intp]
    token: tuple[str, ...]
    """Token (repay/supply/withdraw) or perp market (reduce)."""
    unit_price: F64
    """USD per token unit (reduce: the mark)."""
    bound: F64
    thr: F64
    """Threshold of the collateral line (withdraw/supply), else 0."""
    rate: F64
    """Maintenance rate (reduce), else 0."""
    line_amount: F64
    """Token units the line holds (debt, collateral, ``|size|``): the amount is clipped to it."""


@dataclass(frozen=True, slots=True)
class _Program:
    """The linear part of the model over ``x`` (n,) scaled by ``scale`` USD."""

    scale: float
    bound: F64
    a: F64
    lo: F64
    hi: F64
    surplus: F64
    """Surplus change per unit of ``x`` (scaled USD)."""
    low_rows: dict[int, int]
    """venue index -> row of its lower health constraint in ``a``."""


def _candidates(
    venues: Sequence[Venue],
    prices: Mapping[str, float],
    idle: Mapping[str, float],
    receivers: set[int],
    donors: set[int],
    g_low: F64,
    allow_reduce: bool,
) -> _Candidates:
    kind: list[int] = []
    vidx: list[int] = []
    tok: list[str] = []
    price: list[float] = []
    bound: list[float] = []
    thr: list[float] = []
    rate: list[float] = []
    amt: list[float] = []

    def add(k: int, v: int, t: str, p: float, b: float, th: float, r: float, a: float) -> None:
        kind.append(k)
        vidx.append(v)
        tok.append(t)
        price.append(p)
        bound.append(b)
        thr.append(th)
        rate.append(r)
        amt.append(a)

    # donors: what each withdrawable line can give before the donor reaches L (USD)
    give: list[tuple[int, CollateralLine, float]] = []
    for i in sorted(donors):
        v = venues[i]
        assert isinstance(v, LendingVenue)
        has_debt = _lending_sums(v, prices)[1] > 0
        if has_debt and not g_low[i] > 0:
            continue
        for c in v.collateral:
            if not (c.withdrawable and c.amount > 0):
                continue
            usd = c.amount * prices[c.token]
            if has_debt and c.threshold > 0:
                usd = min(usd, g_low[i] / c.threshold)
            give.append((i, c, usd))
    available: dict[str, float] = {t: idle[t] * prices[t] for t in idle}
    for _, c, usd in give:
        available[c.token] += usd

    used: set[str] = set()
    for i in sorted(receivers):
        v = venues[i]
        if isinstance(v, LendingVenue):
            for d in v.debt:
                b = min(d.amount * prices[d.token], available[d.token])
                if b > 0:
                    add(_REPAY, i, d.token, prices[d.token], b, 0.0, 0.0, d.amount)
                    used.add(d.token)
            for c in v.collateral:
                b = available[c.token]
                if c.suppliable and b > 0:
                    add(_SUPPLY, i, c.token, prices[c.token], b, c.threshold, 0.0, math.inf)
                    used.add(c.token)
        elif allow_reduce:
            for p in v.positions:
                b = abs(p.size) * p.mark_usd
                if p.maintenance_rate > 0 and b > 0:
                    add(_REDUCE, i, p.market, p.mark_usd, b, 0.0, p.maintenance_rate, abs(p.size))
    for i, c, usd in give:
        if c.token in used and usd > 0:
            add(_WITHDRAW, i, c.token, prices[c.token], usd, c.threshold, 0.0, c.amount)
    bnd = np.asarray(bound, dtype=np.float64)
    keep = bnd >= MIN_ACTION_REL * (bnd.max() if bnd.size else 0.0)  # too small to ever be selected
    return _Candidates(
        kind=np.asarray(kind, dtype=np.intp)[keep],
        venue=np.asarray(vidx, dtype=np.intp)[keep],
        token=tuple(t for t, k in zip(tok, keep.tolist(), strict=True) if k),
        unit_price=np.asarray(price, dtype=np.float64)[keep],
        bound=bnd[keep],
        thr=np.asarray(thr, dtype=np.float64)[keep],
        rate=np.asarray(rate, dtype=np.float64)[keep],
        line_amount=np.asarray(amt, dtype=np.float64)[keep],
    )


def _program(
    cand: _Candidates,
    idle_usd: Mapping[str, float],
    receivers: set[int],
    low_level: F64,
    up_level: F64,
    g_low: F64,
    g_up: F64,
) -> _Program:
    """Token conservation, lower health rows (receivers and donors that withdraw), upper rows (receivers)."""
    n = cand.kind.shape[0]
    n_v = g_low.shape[0]
    scale = float(cand.bound.max())
    cols = np.arange(n)
    k, v = cand.kind, cand.venue
    is_w, is_r, is_s, is_p = (k == _WITHDRAW), (k == _REPAY), (k == _SUPPLY), (k == _REDUCE)
    # per USD moved: change of the venue's W − L·D (or E − L·M), of W − U·D (E − U·M), and of the surplus
    d_low = np.select([is_w, is_s, is_r, is_p], [-cand.thr, cand.thr, low_level[v], low_level[v] * cand.rate])
    d_up = np.select([is_s, is_r, is_p], [cand.thr, up_level[v], up_level[v] * cand.rate], 0.0)
    d_surplus = np.select([is_w, is_s, is_r, is_p], [-cand.thr, cand.thr, np.ones(n), cand.rate])

    tokens = sorted({t for t, kk in zip(cand.token, k.tolist(), strict=True) if kk != _REDUCE})
    t_index = {t: j for j, t in enumerate(tokens)}
    a_tok = np.zeros((len(tokens), n))
    lend = ~is_p
    t_idx = np.array([t_index.get(t, -1) for t in cand.token], dtype=np.intp)
    a_tok[t_idx[lend], cols[lend]] = np.where(is_w, 1.0, -1.0)[lend]
    lo_tok = -np.array([idle_usd[t] for t in tokens], dtype=np.float64)

    low_venues = np.array(sorted(receivers | set(v[is_w].tolist())), dtype=np.intp)
    a_low_all = np.zeros((n_v, n))
    a_low_all[v, cols] = d_low
    a_up_all = np.zeros((n_v, n))
    a_up_all[v, cols] = d_up
    up_venues = np.array(sorted(receivers), dtype=np.intp)

    a = np.vstack([a_tok, a_low_all[low_venues], a_up_all[up_venues]])
    lo = np.concatenate([lo_tok, -g_low[low_venues], np.full(up_venues.size, -np.inf)])
    hi = np.concatenate([np.full(len(tokens), np.inf), np.full(low_venues.size, np.inf), -g_up[up_venues]])
    low_rows = {int(j): len(tokens) + r for r, j in enumerate(low_venues.tolist())}
    return _Program(
        scale=scale,
        bound=cand.bound / scale,
        a=a,
        lo=lo / scale,
        hi=hi / scale,
        surplus=np.asarray(d_surplus, dtype=np.float64),
        low_rows=low_rows,
    )


def _solve(
    c: F64, integrality: I64, lb: F64, ub: F64, a: F64, lo: F64, hi: F64, *, gap: float | None = None
) -> tuple[int, F64 | None]:
    """One HiGHS solve; ``(2, None)`` when infeasible, ``(0, x)`` when optimal, RuntimeError otherwise."""
    # Imported here: scipy.optimize costs ~0.27 s to import, paid by every ``xmargin run`` start otherwise, and
    # only a wallet that needs a rebalance reaches a solve.
    from scipy.optimize import Bounds, LinearConstraint, milp

    res = milp(
        c,
        integrality=integrality,
        bounds=Bounds(lb, ub),
        constraints=LinearConstraint(a, lo, hi),
        options=None if gap is None else {"mip_rel_gap": gap},
    )
    if res.status == 2:
        return 2, None
    if res.status != 0 or res.x is None:
        raise RuntimeError(f"rebalance solver failed: {res.message}")
    return 0, np.asarray(res.x, dtype=np.float64)


def _mixed(prog: _Program) -> tuple[F64, F64, F64]:
    """The MILP's linking rows ``x − U z ≤ 0``, ``x − ε z ≥ 0`` appended to the program: ``(a, lo, hi)``."""
    n = prog.bound.shape[0]
    eye = np.eye(n)
    a = np.vstack([
        np.hstack([prog.a, np.zeros_like(prog.a)]),
        np.hstack([eye, -np.diag(prog.bound)]),
        np.hstack([eye, -MIN_ACTION_REL * eye]),
    ])
    lo = np.concatenate([prog.lo, np.full(n, -np.inf), np.zeros(n)])
    hi = np.concatenate([prog.hi, np.zeros(n), np.full(n, np.inf)])
    return a, lo, hi


def _diagnose(
    venues: Sequence[Venue],
    cand: _Candidates,
    prog: _Program,
    receivers: set[int],
    allow_reduce: bool,
    idle: Mapping[str, float],
) -> str:
    """Why no plan exists: each receiver alone (other receivers idle), its best lower-health margin by LP."""
    n = cand.kind.shape[0]
    reasons: list[str] = []
    for r in sorted(receivers):
        v = venues[r]
        mine = cand.venue == r
        if not mine.any():
            if isinstance(v, PerpVenue):
                why = (
                    "reducing perp positions is not allowed (allow_reduce=False)"
                    if not allow_reduce
                    else "it has no position with a maintenance margin to reduce"
                )
            else:
                debt = ", ".join(d.token for d in v.debt if d.amount > 0) or "none"
                coll = ", ".join(c.token for c in v.collateral if c.suppliable) or "none"
                why = (
                    f"there are no idle or withdrawable tokens to repay its debt ({debt}) or to supply as its "
                    f"collateral ({coll})"
                )
            reasons.append(f"{v.name}: {why}")
            continue
        if isinstance(v, PerpVenue) and v.equity_usd <= 0:
            reasons.append(f"{v.name}: its equity is {v.equity_usd:.2f} USD <= 0, no reduction can reach target")
            continue
        # maximize the receiver's lower margin with only its own actions and the donors' withdrawals
        keep = mine | (cand.kind == _WITHDRAW)
        row = prog.low_rows[r]
        lo = prog.lo.copy()
        lo[[prog.low_rows[j] for j in receivers]] = -np.inf  # receivers need not reach target here
        hi = prog.hi.copy()
        hi[len(prog.hi) - len(receivers) :] = np.inf  # no overshoot bound while measuring the best reachable
        ub = np.where(keep, prog.bound, 0.0)
        status, x = _solve(-prog.a[row], np.zeros(n, dtype=np.intp), np.zeros(n), ub, prog.a, lo, hi)
        if status != 0 or x is None:
            reasons.append(f"{v.name}: no combination of the available actions is feasible")
            continue
        best = float(prog.a[row] @ x) - float(prog.lo[row])  # g_low0 + Δg, scaled
        if best < -1e-9:
            short = -best * prog.scale
            if isinstance(v, LendingVenue):
                reasons.append(
                    f"{v.name}: even with every available repay, supply and donor withdrawal it stays below "
                    f"target {v.target:g}: {short:.2f} USD short of threshold-weighted collateral "
                    f"(idle: {', '.join(f'{t}={a:g}' for t, a in sorted(idle.items()))})"
                )
            else:
                reasons.append(f"{v.name}: even fully reduced it stays {short:.2f} USD of equity short of target")
    if reasons:
        return "infeasible: cannot reach target — " + "; ".join(reasons)
    names = ", ".join(venues[r].name for r in sorted(receivers))
    return (
        f"infeasible: {names} can each reach target alone but not all together — they compete for the same idle "
        "tokens and donor collateral"
    )


def _apply(venues: Sequence[Venue], actions: Sequence[Action]) -> list[Venue]:
    out = list(venues)
    index = {v.name: i for i, v in enumerate(venues)}
    for act in actions:
        i = index[act.venue]
        v = out[i]
        if isinstance(v, LendingVenue):
            if act.kind == "repay":
                debt = tuple(
                    replace(d, amount=max(d.amount - act.amount, 0.0)) if d.token == act.token else d for d in v.debt
                )
                out[i] = replace(v, debt=debt)
            else:
                sign = 1.0 if act.kind == "supply" else -1.0
                coll = tuple(
                    replace(c, amount=max(c.amount + sign * act.amount, 0.0)) if c.token == act.token else c
                    for c in v.collateral
                )
                out[i] = replace(v, collateral=coll)
        else:
            pos = tuple(
                replace(p, size=math.copysign(max(abs(p.size) - act.amount, 0.0), p.size))
                if p.market == act.token
                else p
                for p in v.positions
            )
            out[i] = replace(v, positions=pos)
    return out


def plan_rebalance(
    venues: Sequence[LendingVenue | PerpVenue],
    tokens: Sequence[TokenBalance],
    *,
    buffer: float = 1e-3,
    allow_reduce: bool = True,
) -> Plan:
    """Plan the fewest actions that bring every venue below target up to it, then maximize the surplus.

    Parameters
    ----------
    venues : sequence of LendingVenue or PerpVenue
        The wallet's venues (unique names).
    tokens : sequence of TokenBalance
        Prices (USD per token unit) of every token a lending venue names, and the wallet's idle amounts.
    buffer : float
        Relative safety margin: venues are raised to (and donors kept at) ``target · (1 + buffer)``.
    allow_reduce : bool
        Whether perp positions may be reduced.

    Returns
    -------
    Plan
        ``"noop"`` when no venue is below ``target − offset``; ``"ok"`` with the actions; ``"infeasible"`` with a
        message naming the receivers that cannot reach target.

    Raises
    ------
    ValueError
        Unknown tokens, non-positive prices, negative amounts, ``target <= 0``, ``offset < 0``,
        ``target − offset <= 0``, duplicate names, ``buffer < 0``.
    RuntimeError
        The solver failed for a reason other than infeasibility.
    """
    prices, idle = _validate(venues, tokens, buffer)
    before = {v.name: venue_health(v, prices) for v in venues}
    surplus0 = surplus_usd(venues, prices)
    health = [before[v.name] for v in venues]
    triggered = [v.name for v, h in zip(venues, health, strict=True) if h is not None and h < v.target - v.offset]
    if not triggered:
        return Plan("noop", (), before, dict(before), surplus0, surplus0, "no venue is below its repay trigger")

    n_v = len(venues)
    receivers = {i for i, h in enumerate(health) if h is not None and h < venues[i].target}
    donors = {
        i for i, v in enumerate(venues) if isinstance(v, LendingVenue) and i not in receivers
    }  # lending venues with health >= target or without debt
    target = np.array([v.target for v in venues], dtype=np.float64)
    offset = np.array([v.offset for v in venues], dtype=np.float64)
    low_level = target * (1.0 + buffer)
    up_level = np.maximum(target + offset, low_level)
    # (W, D) or (E, M) per venue, USD
    have = np.empty(n_v)
    need = np.empty(n_v)
    for i, v in enumerate(venues):
        have[i], need[i] = _lending_sums(v, prices) if isinstance(v, LendingVenue) else (v.equity_usd, _maintenance(v))
    g_low = have - low_level * need
    g_up = have - up_level * need

    cand = _candidates(venues, prices, idle, receivers, donors, g_low, allow_reduce)
    n = cand.kind.shape[0]
    names = ", ".join(venues[r].name for r in sorted(receivers))

    def infeasible(message: str) -> Plan:
        return Plan("infeasible", (), before, dict(before), surplus0, surplus0, message)

    if n == 0:
        empty = _Program(1.0, np.zeros(0), np.zeros((0, 0)), np.zeros(0), np.zeros(0), np.zeros(0), {})
        return infeasible(_diagnose(venues, cand, empty, receivers, allow_reduce, idle))

    prog = _program(cand, {t: idle[t] * prices[t] for t in idle}, receivers, low_level, up_level, g_low, g_up)
    a, lo, hi = _mixed(prog)
    integrality = np.concatenate([np.zeros(n, dtype=np.intp), np.ones(n, dtype=np.intp)])
    lb = np.zeros(2 * n)
    ub = np.concatenate([prog.bound, np.ones(n)])

    # 1. fewest actions
    status, sol = _solve(np.concatenate([np.zeros(n), np.ones(n)]), integrality, lb, ub, a, lo, hi)
    if status != 0 or sol is None:
        return infeasible(_diagnose(venues, cand, prog, receivers, allow_reduce, idle))
    k_star = round(float(sol[n:].sum()))

    # 2. most surplus with at most k* actions (and a tie-break on the USD moved)
    c_x = -prog.surplus + TIE_BREAK_PER_USD
    a2 = np.vstack([a, np.concatenate([np.zeros(n), np.ones(n)])])
    status, sol2 = _solve(
        np.concatenate([c_x, np.zeros(n)]),
        integrality,
        lb,
        ub,
        a2,
        np.append(lo, -np.inf),
        np.append(hi, k_star),
        gap=1e-9,
    )
    if status != 0 or sol2 is None:  # the first solution is feasible for the second problem
        sol2 = sol
    chosen = sol2[n:] > 0.5
    # 3. polish the amounts with the choice fixed: a clean vertex, selected amounts >= ε, the others exactly 0
    status, x = _solve(
        c_x,
        np.zeros(n, dtype=np.intp),
        np.where(chosen, MIN_ACTION_REL, 0.0),
        np.where(chosen, prog.bound, 0.0),
        prog.a,
        prog.lo,
        prog.hi,
    )
    if status != 0 or x is None:
        x = np.where(chosen, sol2[:n], 0.0)
    usd = np.clip(x, 0.0, prog.bound) * prog.scale
    keep = usd > 1e-9 * prog.scale  # numerically zero amounts are dropped
    if int(keep.sum()) != k_star:
        raise RuntimeError(f"rebalance solver returned {int(keep.sum())} actions, expected {k_star}")

    order = sorted(np.nonzero(keep)[0].tolist(), key=lambda j: (_ORDER[int(cand.kind[j])], j))
    actions = []
    for j in order:
        amount = min(float(usd[j] / cand.unit_price[j]), float(cand.line_amount[j]))
        actions.append(
            Action(
                kind=_KIND_NAMES[int(cand.kind[j])],
                venue=venues[int(cand.venue[j])].name,
                token=cand.token[j],
                amount=amount,
                usd=amount * float(cand.unit_price[j]),
            )
        )
    after_venues = _apply(venues, actions)
    after = {v.name: venue_health(v, prices) for v in after_venues}
    surplus1 = surplus_usd(after_venues, prices)
    message = (
        f"{k_star} action{'s' if k_star != 1 else ''} to raise {names} to target "
        f"(triggered: {', '.join(triggered)}); surplus {surplus0:,.2f} -> {surplus1:,.2f} USD"
    )
    return Plan("ok", tuple(actions), before, after, surplus0, surplus1, message)
