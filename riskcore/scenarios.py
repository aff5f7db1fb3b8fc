"""Scenarios as values: perturbations of today's market that a book is revalued under.

A :class:`ScenarioSet` holds S scenarios over U risk factors (underlyings such as ``"ETH"``, and optionally basis
or peg factors such as ``"stETH/ETH"``, ``"USDC/USD"``; see :mod:`riskcore.assets`). Each scenario is

* a vector of price multipliers, one per factor (1.0 = unchanged, 0.8 = −20%);
* a volatility shock per factor: an absolute shift (+0.10 = +10 vol points) and a relative one
  (+0.5 = vol × 1.5), the relative one optionally scaled by the option's time to expiry (:class:`VolTermScaling`);
* a weight: the fraction of the scenario's loss that counts (1.0; 0.35 for SPAN's extreme moves; a partial weight
  for Deribit's extended table).

All scenarios of a set share one horizon (days): options lose that much time to expiry. Sets with different
horizons are kept apart (a margin is then the worst over the sets).

Generators
----------
:func:`span_scenarios`
    CME SPAN's 16 scenarios per underlying, scaled by each underlying's price scan range. For several underlyings:
    16 per underlying with the others unchanged (group = the underlying), plus 16 joint scenarios in which every
    listed underlying moves in the same direction by the same fraction of its own scan range (group ``"joint"``).
    SPAN sums worst losses per underlying group; the worst over the whole set (max over all groups) is the
    stricter reading — the choice belongs to the margin rule, and ``groups`` keeps both available.
:func:`deribit_grid`
    Deribit portfolio margin: 9 price points over ±16% × 3 volatility states (relative up 0.5 / same / down 0.25,
    term-scaled by (30/DTE)^0.3 below 30 days and ^0.13 above, up-shocked vol floored at 0.5), plus the extended
    table (−66% … +500%, vol up only) at a partial weight. Several underlyings combine as in SPAN.
:func:`historical_scenarios`
    Every (overlapping) k-day joint move of the history, each daily log return rescaled by today's EWMA
    volatility over the EWMA volatility of its own day (filtered historical simulation).
:func:`correlation_breakdown`
    Risky assets fall together, basis widens, stablecoins depeg (one at a time, with and without the crash).
:func:`spread_scenarios`
    Stablecoin pegs and staking / wrapping bases alone, up and down, and against each other (one falls while
    another rises); sizes from the real depegs via :func:`peg_stress_sizes`.
:func:`user_scenarios`
    Named scenarios given as price moves per factor.

Dynamic margin: :func:`scan_ranges` turns EWMA volatility into price scan ranges ``max(floor, k·σ_daily·√h)``,
so the ranges widen — and margin tightens — as volatility rises; :func:`fhs_volatility` computes σ (EWMA) for both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from riskcore.assets import DEFAULT_ASSET_MAP, NUMERAIRE, AssetMap, FactorKind

__all__ = [
    "DEFAULT_PREMIUM",
    "DERIBIT_EXTENDED_MOVES",
    "DERIBIT_VOL_TERM",
    "SPAN_EXTREME_WEIGHT",
    "ScenarioSet",
    "VolTermScaling",
    "correlation_breakdown",
    "deribit_grid",
    "fhs_volatility",
    "historical_scenarios",
    "peg_stress_sizes",
    "price_vol_grid",
    "scan_ranges",
    "span_scenarios",
    "spread_scenarios",
    "user_scenarios",
]

Float = npt.NDArray[np.float64]

SPAN_EXTREME_WEIGHT = 0.35
"""Fraction of the loss counted in SPAN's two extreme-move scenarios (15 and 16)."""

DERIBIT_EXTENDED_MOVES: tuple[float, ...] = (-0.66, -0.33, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0)
"""Price moves of Deribit's extended table (evaluated on volatility up only)."""


@dataclass(frozen=True, slots=True)
class VolTermScaling:
    """How a relative volatility shock depends on an option's days to expiry (Deribit's vega power).

    A relative shift ``x`` becomes ``x · (pivot_days / DTE)^p`` with ``p = short_power`` when DTE < pivot_days and
    ``long_power`` otherwise (DTE floored at ``min_days``). Where the shift is upward, the shocked volatility is at
    least ``min_vol_up``.
    """

    pivot_days: float = 30.0
    short_power: float = 0.30
    long_power: float = 0.13
    min_vol_up: float = 0.5
    min_days: float = 1.0 / 24.0

    def __post_init__(self) -> None:
        if not (self.pivot_days > 0 and self.min_days > 0 and self.min_vol_up >= 0):
            raise ValueError("pivot_days and min_days must be positive, min_vol_up non-negative")

    def factor(self, days_to_expiry: npt.ArrayLike) -> Float:
        """Scale of a relative shock, array of the shape of ``days_to_expiry``."""
        d = np.maximum(np.asarray(days_to_expiry, dtype=np.float64), self.min_days)
        p = np.where(d < self.pivot_days, self.short_power, self.long_power)
        return np.asarray((self.pivot_days / d) ** p, dtype=np.float64)


DERIBIT_VOL_TERM = VolTermScaling()
"""Deribit BTC portfolio-margin parameters: pivot 30 days, powers 0.3 / 0.13, up-shocked vol at least 0.5."""


def _frozen(a: npt.ArrayLike, shape: tuple[int, ...], name: str) -> Float:
    arr = np.array(np.broadcast_to(np.asarray(a, dtype=np.float64), shape), dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite")
    arr.flags.writeable = False
    return arr


@dataclass(frozen=True, slots=True, eq=False)
class ScenarioSet:
    """S named scenarios over U risk factors, sharing one horizon.

    Attributes
    ----------
    names : tuple of str, length S
        Unique scenario names.
    underlyings : tuple of str, length U
        Risk factors the multipliers apply to (underlyings, basis / peg factors).
    price_multipliers : ndarray of shape (S, U)
        Price after the scenario over price today (≥ 0).
    vol_shift : ndarray of shape (S, U)
        Absolute volatility shift per factor (+0.10 = +10 vol points). An (S,) input applies to every factor.
    horizon_days : float
        Days the scenario spans (> 0); option time to expiry shortens by it.
    weights : ndarray of shape (S,)
        Fraction of each scenario's loss that counts, in [0, 1] (default 1).
    vol_shift_relative : ndarray of shape (S, U)
        Relative volatility shift (+0.5 = ×1.5), scaled by ``vol_term`` when given (default 0).
    vol_term : VolTermScaling or None
        Term scaling and up-shock floor for relative shifts; ``None`` = unscaled, no floor.
    groups : tuple of str, length S
        Label of each scenario's family (SPAN: the moved underlying or ``"joint"``); default ``"all"``.

    Arrays are read-only copies. A set is a value: :meth:`concat` and :meth:`subset` return new sets.
    """

    names: tuple[str, ...]
    underlyings: tuple[str, ...]
    price_multipliers: Float
    vol_shift: Float
    horizon_days: float
    weights: Float = field(default_factory=lambda: np.ones(0))
    vol_shift_relative: Float = field(default_factory=lambda: np.zeros(0))
    vol_term: VolTermScaling | None = None
    groups: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        names, unds = tuple(self.names), tuple(self.underlyings)
        s, u = len(names), len(unds)
        if len(set(names)) != s:
            dup = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"scenario names must be unique; repeated: {dup[:5]}")
        if len(set(unds)) != u:
            raise ValueError(f"underlyings must be unique: {unds}")
        mult = np.asarray(self.price_multipliers, dtype=np.float64)
        if mult.shape != (s, u):
            raise ValueError(f"price_multipliers has shape {mult.shape}, expected (S, U) = {(s, u)}")
        mult = _frozen(mult, (s, u), "price_multipliers")
        if np.any(mult < 0):
            raise ValueError("price multipliers must be >= 0")
        vs = np.asarray(self.vol_shift, dtype=np.float64)
        vs = _frozen(vs[:, None] if vs.shape == (s,) else vs, (s, u), "vol_shift")
        rel_in = np.asarray(self.vol_shift_relative, dtype=np.float64)
        if rel_in.size == 0:
            rel_in = np.zeros((s, u))
        rel = _frozen(rel_in[:, None] if rel_in.shape == (s,) else rel_in, (s, u), "vol_shift_relative")
        if np.any(rel <= -1):
            raise ValueError("vol_shift_relative must be > -1")
        w_in = np.asarray(self.weights, dtype=np.float64)
        w = _frozen(np.ones(s) if w_in.size == 0 and s > 0 else w_in, (s,), "weights")
        if np.any((w < 0) | (w > 1)):
            raise ValueError("weights must lie in [0, 1]")
        horizon = float(self.horizon_days)
        if not (np.isfinite(horizon) and horizon > 0):
            raise ValueError(f"horizon_days must be positive, got {self.horizon_days!r}")
        groups = tuple(self.groups) if self.groups else ("all",) * s
        if len(groups) != s:
            raise ValueError(f"groups has length {len(groups)}, expected {s}")
        for name, value in (
            ("names", names),
            ("underlyings", unds),
            ("price_multipliers", mult),
            ("vol_shift", vs),
            ("horizon_days", horizon),
            ("weights", w),
            ("vol_shift_relative", rel),
            ("groups", groups),
        ):
            object.__setattr__(self, name, value)

    # -- shape -------------------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.names)

    @property
    def n_scenarios(self) -> int:
        """S, the explicit scenario count."""
        return len(self.names)

    @property
    def n_underlyings(self) -> int:
        return len(self.underlyings)

    def index_of(self, underlying: str) -> int:
        """Column of ``underlying`` (``KeyError`` if absent)."""
        try:
            return self.underlyings.index(underlying)
        except ValueError:
            raise KeyError(f"{underlying!r} is not among the scenario factors {self.underlyings}") from None

    # -- algebra -----------------------------------------------------------------------------------------------

    def subset(self, which: Sequence[str] | Sequence[int] | npt.NDArray[np.generic] | slice) -> ScenarioSet:
        """Scenarios selected by names, integer indices, a boolean mask of length S, or a slice (order kept)."""
        idx = self._indices(which)
        return ScenarioSet(
            names=tuple(self.names[i] for i in idx),
            underlyings=self.underlyings,
            price_multipliers=self.price_multipliers[idx],
            vol_shift=self.vol_shift[idx],
            horizon_days=self.horizon_days,
            weights=self.weights[idx],
            vol_shift_relative=self.vol_shift_relative[idx],
            vol_term=self.vol_term,
            groups=tuple(self.groups[i] for i in idx),
        )

    def _indices(self, which: Sequence[str] | Sequence[int] | npt.NDArray[np.generic] | slice) -> npt.NDArray[np.intp]:
        if isinstance(which, slice):
            return np.arange(len(self))[which]
        if not isinstance(which, np.ndarray) and len(which) and all(isinstance(x, str) for x in which):
            pos = {n: i for i, n in enumerate(self.names)}
            missing = [x for x in which if x not in pos]
            if missing:
                raise KeyError(f"unknown scenario names {missing[:5]}")
            return np.array([pos[str(x)] for x in which], dtype=np.intp)
        arr = np.asarray(which)
        if arr.dtype == bool:
            if arr.shape != (len(self),):
                raise ValueError(f"mask has shape {arr.shape}, expected ({len(self)},)")
            return np.flatnonzero(arr)
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"cannot select scenarios with an array of {arr.dtype}")
        return arr.astype(np.intp).reshape(-1)

    @staticmethod
    def concat(*sets: ScenarioSet) -> ScenarioSet:
        """Stack sets that share a horizon. Factors are the union (first-appearance order); a factor a set does not
        mention is unchanged in its scenarios (multiplier 1, no vol shift). Names must stay unique.

        Raises ``ValueError`` on different horizons, or on different ``vol_term`` rules among sets that use
        relative volatility shifts.
        """
        if not sets:
            raise ValueError("concat needs at least one ScenarioSet")
        horizons = {s.horizon_days for s in sets}
        if len(horizons) != 1:
            raise ValueError(f"cannot concatenate scenario sets with different horizons {sorted(horizons)} days")
        terms = {s.vol_term for s in sets if np.any(s.vol_shift_relative != 0)}
        if len(terms) > 1:
            raise ValueError("cannot concatenate sets whose relative vol shocks follow different VolTermScaling")
        term = next(iter(terms)) if terms else next((s.vol_term for s in sets if s.vol_term is not None), None)
        unds = tuple(dict.fromkeys(u for s in sets for u in s.underlyings))
        col = {u: i for i, u in enumerate(unds)}
        blocks_m, blocks_v, blocks_r = [], [], []
        for s in sets:
            cols = [col[u] for u in s.underlyings]
            m = np.ones((len(s), len(unds)))
            v = np.zeros((len(s), len(unds)))
            r = np.zeros((len(s), len(unds)))
            m[:, cols], v[:, cols], r[:, cols] = s.price_multipliers, s.vol_shift, s.vol_shift_relative
            blocks_m.append(m)
            blocks_v.append(v)
            blocks_r.append(r)
        return ScenarioSet(
            names=tuple(n for s in sets for n in s.names),
            underlyings=unds,
            price_multipliers=np.concatenate(blocks_m),
            vol_shift=np.concatenate(blocks_v),
            horizon_days=sets[0].horizon_days,
            weights=np.concatenate([s.weights for s in sets]),
            vol_shift_relative=np.concatenate(blocks_r),
            vol_term=term,
            groups=tuple(g for s in sets for g in s.groups),
        )

    # -- applying a scenario to market data ---------------------------------------------------------------------

    def shocked_prices(self, prices: npt.ArrayLike, underlying_index: npt.ArrayLike | None = None) -> Float:
        """Prices after each scenario.

        Parameters
        ----------
        prices : array_like of shape (U,), or (N,) with ``underlying_index``
            Today's prices (any currency).
        underlying_index : array_like of int, shape (N,), optional
            Factor column of each price; default: ``prices`` are the U factors in order.

        Returns
        -------
        ndarray of shape (S, U) or (S, N)
        """
        p = np.asarray(prices, dtype=np.float64)
        if underlying_index is None:
            if p.shape != (self.n_underlyings,):
                raise ValueError(f"prices have shape {p.shape}, expected ({self.n_underlyings},)")
            return np.asarray(self.price_multipliers * p, dtype=np.float64)
        idx = np.asarray(underlying_index, dtype=np.intp)
        return np.asarray(self.price_multipliers[:, idx] * p, dtype=np.float64)

    def shocked_vols(
        self,
        vols: npt.ArrayLike,
        underlying_index: npt.ArrayLike,
        days_to_expiry: npt.ArrayLike | None = None,
    ) -> Float:
        """Volatilities after each scenario: ``σ·(1 + rel·g(DTE)) + abs``, floored at ``min_vol_up`` where the
        relative shift is upward (when ``vol_term`` is set) and at 0 everywhere.

        Parameters
        ----------
        vols : array_like of shape (N,)
            Today's annualized volatilities.
        underlying_index : array_like of int, shape (N,)
            Factor column each volatility belongs to.
        days_to_expiry : array_like of shape (N,), optional
            Needed when ``vol_term`` is set and some relative shift is non-zero.

        Returns
        -------
        ndarray of shape (S, N)
        """
        v = np.asarray(vols, dtype=np.float64)
        idx = np.asarray(underlying_index, dtype=np.intp)
        rel = self.vol_shift_relative[:, idx]
        out = v * (1.0 + rel * self._term(days_to_expiry, rel)) + self.vol_shift[:, idx]
        if self.vol_term is not None and self.vol_term.min_vol_up > 0:
            out = np.where(rel > 0, np.maximum(out, self.vol_term.min_vol_up), out)
        return np.asarray(np.maximum(out, 0.0), dtype=np.float64)

    def _term(self, days_to_expiry: npt.ArrayLike | None, rel: Float) -> Float | float:
        if self.vol_term is None or not np.any(rel != 0):
            return 1.0
        if days_to_expiry is None:
            raise ValueError("this scenario set scales relative vol shocks by expiry: pass days_to_expiry")
        return self.vol_term.factor(days_to_expiry)

    def token_multipliers(self, symbols: Sequence[str], asset_map: AssetMap | None = None) -> Float:
        """Price multipliers of tokens: underlying's multiplier × basis factor's multiplier.

        ``"USD"`` is 1 unless the set lists it; a basis factor the set does not list is unchanged (1); an
        underlying the set does not list raises ``KeyError``.

        Parameters
        ----------
        symbols : sequence of str, length P

        Returns
        -------
        ndarray of shape (S, P)
        """
        amap = DEFAULT_ASSET_MAP if asset_map is None else asset_map
        ones = np.ones((len(self), 1))
        table = np.concatenate([self.price_multipliers, ones], axis=1)  # column U = "unchanged"
        col = {u: i for i, u in enumerate(self.underlyings)}
        und_idx = np.empty(len(symbols), dtype=np.intp)
        basis_idx = np.full(len(symbols), self.n_underlyings, dtype=np.intp)
        for i, sym in enumerate(symbols):
            spec = amap[sym]
            if spec.underlying in col:
                und_idx[i] = col[spec.underlying]
            elif spec.underlying == NUMERAIRE:
                und_idx[i] = self.n_underlyings
            else:
                raise KeyError(f"{sym}: underlying {spec.underlying!r} is not among the factors {self.underlyings}")
            if spec.basis_factor is not None and spec.basis_factor in col:
                basis_idx[i] = col[spec.basis_factor]
        return np.asarray(table[:, und_idx] * table[:, basis_idx], dtype=np.float64)


# ---------------------------------------------------------------------------------------------------------------
# Grids (SPAN, Deribit)
# ---------------------------------------------------------------------------------------------------------------


def _per_underlying(values: npt.ArrayLike, underlyings: tuple[str, ...], name: str) -> Float:
    arr = np.asarray(values, dtype=np.float64)
    out = np.array(np.broadcast_to(arr, (len(underlyings),)), dtype=np.float64) if arr.ndim <= 1 else arr
    if out.shape != (len(underlyings),):
        raise ValueError(f"{name} has shape {arr.shape}, expected a scalar or ({len(underlyings)},)")
    if not np.all(np.isfinite(out)) or np.any(out < 0):
        raise ValueError(f"{name} must be finite and >= 0")
    return out


def _grid(
    prefix: str,
    underlyings: tuple[str, ...],
    labels: Sequence[str],
    moves: Float,
    vol_abs: Float,
    vol_rel: Float,
    weights: Float,
    joint: bool,
    horizon_days: float,
    vol_term: VolTermScaling | None,
) -> ScenarioSet:
    """K template scenarios applied to each underlying alone (others unchanged), then to all jointly.

    ``moves`` and ``vol_abs`` are (K, U): the price move (fraction) and absolute vol shift of underlying u in
    template k; ``vol_rel`` and ``weights`` are (K,).
    """
    u, k = len(underlyings), len(labels)
    if u == 0 or len(set(underlyings)) != u:
        raise ValueError(f"underlyings must be non-empty and unique: {underlyings}")
    if np.any(1.0 + moves < 0):
        raise ValueError(f"{prefix}: a move below -100% (scan range too wide for the extreme scenarios)")
    names: list[str] = []
    groups: list[str] = []
    blocks_m, blocks_v, blocks_r, blocks_w = [], [], [], []
    eye = np.eye(u, dtype=bool)
    for j, und in enumerate(underlyings):
        on = eye[j]  # (U,): only underlying j moves
        blocks_m.append(np.where(on, 1.0 + moves, 1.0))
        blocks_v.append(np.where(on, vol_abs, 0.0))
        blocks_r.append(np.where(on, vol_rel[:, None], 0.0))
        blocks_w.append(weights)
        names += [f"{prefix} {und} {lab}" for lab in labels]
        groups += [und] * k
    if joint and u > 1:
        blocks_m.append(1.0 + moves)
        blocks_v.append(vol_abs)
        blocks_r.append(np.broadcast_to(vol_rel[:, None], (k, u)))
        blocks_w.append(weights)
        names += [f"{prefix} joint {lab}" for lab in labels]
        groups += ["joint"] * k
    return ScenarioSet(
        names=tuple(names),
        underlyings=underlyings,
        price_multipliers=np.concatenate(blocks_m),
        vol_shift=np.concatenate(blocks_v),
        horizon_days=horizon_days,
        weights=np.concatenate(blocks_w),
        vol_shift_relative=np.concatenate(blocks_r),
        vol_term=vol_term,
        groups=tuple(groups),
    )


_SPAN_TABLE: tuple[tuple[float, float], ...] = (
    (0.0, 1.0),
    (0.0, -1.0),
    (1 / 3, 1.0),
    (1 / 3, -1.0),
    (-1 / 3, 1.0),
    (-1 / 3, -1.0),
    (2 / 3, 1.0),
    (2 / 3, -1.0),
    (-2 / 3, 1.0),
    (-2 / 3, -1.0),
    (1.0, 1.0),
    (1.0, -1.0),
    (-1.0, 1.0),
    (-1.0, -1.0),
)
"""SPAN scenarios 1-14: (price move in scan ranges, vol move in vol scan ranges), CME's order."""


def span_scenarios(
    underlyings: Sequence[str],
    scan_ranges: npt.ArrayLike,
    vol_scan: npt.ArrayLike = 0.10,
    *,
    extreme_multiple: float = 2.0,
    extreme_weight: float = SPAN_EXTREME_WEIGHT,
    horizon_days: float = 1.0,
    joint: bool = True,
) -> ScenarioSet:
    """CME SPAN's 16 risk scenarios, per underlying and (for several underlyings) jointly.

    Scenario ``NN`` of an underlying, in CME's order (price move in scan ranges, vol move in vol scan ranges,
    weight)::

        01  0     +1  1      02  0     -1  1
        03 +1/3   +1  1      04 +1/3   -1  1      05 -1/3  +1  1      06 -1/3  -1  1
        07 +2/3   +1  1      08 +2/3   -1  1      09 -2/3  +1  1      10 -2/3  -1  1
        11 +1     +1  1      12 +1     -1  1      13 -1    +1  1      14 -1    -1  1
        15 +X      0  0.35   16 -X      0  0.35

    The extreme move X is ``extreme_multiple`` (default 2, as in the published SPAN scenario table; the project
    note marks it "(?)" and some CME products use 3) times the scan range, counted at ``extreme_weight`` (35%)
    with volatility unchanged.

    Parameters
    ----------
    underlyings : sequence of str, length U
    scan_ranges : array_like, scalar or shape (U,)
        Price scan range of each underlying as a fraction of price (0.10 = ±10%); see :func:`scan_ranges`.
        ``extreme_multiple × scan_range`` must not exceed 1.
    vol_scan : array_like, scalar or shape (U,), default 0.10
        Volatility scan range, absolute (0.10 = ±10 vol points). The default is a placeholder to calibrate.
    extreme_multiple, extreme_weight : float
    horizon_days : float, default 1
    joint : bool, default True
        For U > 1, add 16 scenarios in which all underlyings move together (same fraction of their own scan
        range, same vol direction). Per-underlying scenarios leave the other underlyings unchanged.

    Returns
    -------
    ScenarioSet
        ``16·U`` scenarios (``16·(U+1)`` with the joint block when U > 1) named ``"SPAN <und> NN"`` and
        ``"SPAN joint NN"``, grouped by underlying / ``"joint"``; no relative vol shifts.
    """
    unds = tuple(underlyings)
    scan = _per_underlying(scan_ranges, unds, "scan_ranges")
    vscan = _per_underlying(vol_scan, unds, "vol_scan")
    if not (0 <= extreme_weight <= 1 and extreme_multiple > 0):
        raise ValueError("extreme_weight must lie in [0, 1] and extreme_multiple be positive")
    table = np.array([*_SPAN_TABLE, (extreme_multiple, 0.0), (-extreme_multiple, 0.0)])
    weights = np.array([1.0] * 14 + [extreme_weight] * 2)
    labels = [f"{i + 1:02d}" for i in range(16)]
    moves = table[:, :1] * scan[None, :]
    vol_abs = table[:, 1:] * vscan[None, :]
    return _grid("SPAN", unds, labels, moves, vol_abs, np.zeros(16), weights, joint, horizon_days, None)


def deribit_grid(
    underlyings: Sequence[str],
    range_: npt.ArrayLike = 0.16,
    points_per_side: int = 4,
    vol_states: Sequence[float] = (0.5, 0.0, -0.25),
    *,
    extended_moves: Sequence[float] = DERIBIT_EXTENDED_MOVES,
    extended_weight: float = 0.5,
    vol_term: VolTermScaling | None = DERIBIT_VOL_TERM,
    horizon_days: float = 1.0,
    joint: bool = True,
) -> ScenarioSet:
    """Deribit-style portfolio-margin grid: price points × volatility states, plus an extended tail.

    Core grid: ``2·points_per_side + 1`` evenly spaced price moves over ``[−range, +range]`` (9 points over ±16% by
    default: −16, −12, −8, −4, 0, +4, +8, +12, +16%), each under every volatility state; price-major order (moves
    ascending, states in the given order). Labels ``"<k>/<n>R vol <state>"``.

    Volatility states are *relative* shifts: +0.5 → vol × (1 + 0.5·g), −0.25 → vol × (1 − 0.25·g), with g the
    ``vol_term`` factor (Deribit: (30/DTE)^0.3 below 30 days, ^0.13 above; up-shocked vol at least 0.5).

    Extended table: ``extended_moves`` (−66%, −33%, +50%, +100% … +500%, the same for every underlying) under
    the highest volatility state only, each counted at ``extended_weight``. Deribit says only "a fraction of
    simulated P&L" counts there (plus a per-position dampener, which belongs to the margin rule, not to the
    scenario) without publishing the fraction: 0.5 is a placeholder to calibrate (?).

    Parameters
    ----------
    underlyings : sequence of str, length U
    range_ : array_like, scalar or shape (U,), default 0.16
        Half-width of the core price range per underlying (fraction); may come from :func:`scan_ranges`.
    points_per_side : int, default 4
    vol_states : sequence of float, default (0.5, 0.0, -0.25)
    extended_moves : sequence of float, default :data:`DERIBIT_EXTENDED_MOVES`
    extended_weight : float, default 0.5
    vol_term : VolTermScaling or None, default :data:`DERIBIT_VOL_TERM`
    horizon_days : float, default 1
    joint : bool, default True
        As in :func:`span_scenarios`: for U > 1 add the grid with every underlying moving together.

    Returns
    -------
    ScenarioSet
        Per underlying (and for the joint block) ``(2·points_per_side + 1)·len(vol_states) + len(extended_moves)``
        scenarios — 35 by default — named ``"DRB <und> <label>"`` / ``"DRB joint <label>"``.
    """
    unds = tuple(underlyings)
    rng = _per_underlying(range_, unds, "range_")
    if points_per_side < 1:
        raise ValueError("points_per_side must be >= 1")
    states = [float(x) for x in vol_states]
    if not states or len(set(states)) != len(states) or min(states) <= -1:
        raise ValueError("vol_states must be non-empty, distinct and > -1")
    if not 0 <= extended_weight <= 1:
        raise ValueError("extended_weight must lie in [0, 1]")
    n = points_per_side
    core = [(i, st) for i in range(-n, n + 1) for st in states]
    up = max(states)
    ext = [float(m) for m in extended_moves]
    labels = [f"{i:+d}/{n}R vol {st:+g}" for i, st in core] + [f"ext {m:+g} vol {up:+g}" for m in ext]
    steps = np.array([i / n for i, _ in core])
    moves = np.concatenate([steps[:, None] * rng[None, :], np.repeat(np.array(ext)[:, None], len(unds), axis=1)])
    vol_rel = np.array([st for _, st in core] + [up] * len(ext))
    weights = np.array([1.0] * len(core) + [extended_weight] * len(ext))
    vol_abs = np.zeros((len(labels), len(unds)))
    return _grid("DRB", unds, labels, moves, vol_abs, vol_rel, weights, joint, horizon_days, vol_term)


def price_vol_grid(
    underlyings: Sequence[str],
    price_moves: npt.ArrayLike,
    vol_shifts: npt.ArrayLike,
    *,
    horizon_days: float = 1.0,
) -> ScenarioSet:
    """A price × volatility grid in which every underlying moves together, for P&L heatmaps.

    Scenario ``(v, p)`` multiplies every underlying's price by ``1 + price_moves[p]`` and its volatility by
    ``1 + vol_shifts[v]`` (relative shift, no term scaling); volatility-major order, so scenario ``v·P + p`` is row
    ``v``, column ``p`` of a (V, P) heatmap. Every scenario counts in full (weight 1).

    Parameters
    ----------
    underlyings : sequence of str, length U ≥ 1
        Risk factors that move (stablecoins are left out: they stay at 1 in a revaluation).
    price_moves : array_like, shape (P,)
        Joint fractional price moves (−0.3 = every underlying 30 % lower), each ≥ −1.
    vol_shifts : array_like, shape (V,)
        Relative volatility shifts (+0.5 = ×1.5), each > −1.
    horizon_days : float, default 1

    Returns
    -------
    ScenarioSet
        ``V·P`` scenarios named ``"grid vol <v> move <p>"``, group ``"grid"``.
    """
    unds = tuple(underlyings)
    moves = np.asarray(price_moves, dtype=np.float64).reshape(-1)
    vols = np.asarray(vol_shifts, dtype=np.float64).reshape(-1)
    if not unds or moves.size == 0 or vols.size == 0:
        raise ValueError("price_vol_grid needs at least one underlying, price move and volatility shift")
    if not (np.all(np.isfinite(moves)) and np.all(moves >= -1)):
        raise ValueError("price moves must be finite and >= -1")
    if not (np.all(np.isfinite(vols)) and np.all(vols > -1)):
        raise ValueError("volatility shifts must be finite and > -1")
    n_v, n_p, n_u = vols.size, moves.size, len(unds)
    mult = np.repeat(np.tile(1.0 + moves, n_v)[:, None], n_u, axis=1)  # (V·P, U)
    rel = np.repeat(np.repeat(vols, n_p)[:, None], n_u, axis=1)
    names = tuple(f"grid vol {v:+g} move {m:+g}" for v in vols for m in moves)
    return ScenarioSet(names=names, underlyings=unds, price_multipliers=mult, vol_shift=np.zeros((n_v * n_p, n_u)),
                       horizon_days=horizon_days, vol_shift_relative=rel, groups=("grid",) * (n_v * n_p))


# ---------------------------------------------------------------------------------------------------------------
# Volatility, scan ranges, history
# ---------------------------------------------------------------------------------------------------------------


def fhs_volatility(
    log_returns: npt.ArrayLike,
    lam: float = 0.94,
    *,
    initial_vol: npt.ArrayLike | None = None,
    seed_days: int = 30,
) -> tuple[Float, Float]:
    """EWMA volatilities for filtered historical simulation: each day's forecast *before* its return, and today's.

    The recursion and seed are :func:`riskcore.ewma.ewma_volatility`'s (RiskMetrics, zero mean), shifted by one
    bar so that ``vol_then[t]`` does not see ``r[t]``, and tolerant of NaN (assets listed later):
    ``σ²[t+1] = λ·σ²[t] + (1 − λ)·r[t]²``, starting from ``initial_vol²`` or, by default, the mean square of each
    column's first ``seed_days`` finite returns (a small look-ahead over the seed window). A NaN return (asset not
    yet listed, missing day) leaves the variance unchanged.

    Parameters
    ----------
    log_returns : array_like of shape (T, U)
        Daily log returns, oldest first.
    lam : float, default 0.94
        Decay factor in (0, 1).
    initial_vol : array_like, scalar or shape (U,), optional
        σ before the first return (daily, fraction).
    seed_days : int, default 30

    Returns
    -------
    vol_then : ndarray of shape (T, U)
        σ[t], the daily volatility forecast for day t made before its return was known.
    vol_now : ndarray of shape (U,)
        σ[T], the forecast for the next (unseen) day — "today's" volatility.
    """
    r = np.asarray(log_returns, dtype=np.float64)
    if r.ndim != 2:
        raise ValueError(f"log_returns must have shape (T, U), got {r.shape}")
    if not 0 < lam < 1:
        raise ValueError("lam must lie in (0, 1)")
    t_len, u = r.shape
    ok = np.isfinite(r)
    if initial_vol is None:
        if seed_days < 1:
            raise ValueError("seed_days must be >= 1")
        var = np.empty(u)
        for j in range(u):
            first = r[ok[:, j], j][:seed_days]
            if first.size == 0:
                raise ValueError(f"column {j} has no finite return to seed the EWMA")
            var[j] = float(np.mean(first * first))
    else:
        var = np.array(np.broadcast_to(np.asarray(initial_vol, dtype=np.float64), (u,)), dtype=np.float64) ** 2
    r2 = np.where(ok, r, 0.0) ** 2
    out = np.empty((t_len, u))
    for t in range(t_len):  # a recursive filter: loop over time, vectorized over assets
        out[t] = var
        var = np.where(ok[t], lam * var + (1.0 - lam) * r2[t], var)
    return np.sqrt(out), np.sqrt(var)


def scan_ranges(
    vol_daily: npt.ArrayLike,
    horizon_days: float = 1.0,
    *,
    k: float = 3.0,
    floors: npt.ArrayLike = 0.0,
    caps: npt.ArrayLike | None = None,
) -> Float:
    """Dynamic price scan ranges: ``max(floor, k · σ_daily · √horizon)``, optionally capped.

    Ranges never fall below the floors and grow linearly with volatility above them, so margin tightens as
    volatility rises (and relaxes only down to the floor).

    Parameters
    ----------
    vol_daily : array_like of shape (U,)
        Daily volatility of each underlying (fraction, e.g. EWMA ``vol_now``).
    horizon_days : float, default 1
        Scenario horizon; volatility scales with its square root.
    k : float, default 3.0
        Multiple of the horizon standard deviation (a placeholder to calibrate against history).
    floors : array_like, scalar or shape (U,), default 0
        Minimum scan range per underlying (fraction).
    caps : array_like, scalar or shape (U,), optional
        Maximum scan range (keeps SPAN's ±2× extreme moves above −100% when set ≤ 0.5).

    Returns
    -------
    ndarray of shape (U,)
        Scan range per underlying as a fraction of price.
    """
    vol = np.asarray(vol_daily, dtype=np.float64)
    if vol.ndim != 1 or not np.all(np.isfinite(vol)) or np.any(vol < 0):
        raise ValueError("vol_daily must be a finite, non-negative (U,) array")
    if not (horizon_days > 0 and k > 0):
        raise ValueError("horizon_days and k must be positive")
    floor = np.broadcast_to(np.asarray(floors, dtype=np.float64), vol.shape)
    out = np.maximum(floor, k * vol * np.sqrt(horizon_days))
    if caps is not None:
        cap = np.broadcast_to(np.asarray(caps, dtype=np.float64), vol.shape)
        if np.any(cap < floor):
            raise ValueError("caps must not be below floors")
        out = np.minimum(out, cap)
    return np.asarray(out, dtype=np.float64)


def historical_scenarios(
    underlyings: Sequence[str],
    log_returns: npt.ArrayLike,
    dates: npt.ArrayLike,
    horizon_days: int = 1,
    *,
    vol_now: npt.ArrayLike | None = None,
    vol_then: npt.ArrayLike | None = None,
    vol_shift: float = 0.0,
    missing: Literal["drop", "unchanged"] = "drop",
) -> ScenarioSet:
    """Every overlapping ``horizon_days``-day joint move of a history, applied to today's prices.

    With ``vol_now`` and ``vol_then`` (filtered historical simulation), each daily log return is rescaled by
    today's volatility over the volatility of its own day, ``r[t] · σ_now / σ[t]``, before the window's returns are
    summed; the multiplier is ``exp(Σ)``. Without them the moves are the raw history.

    Parameters
    ----------
    underlyings : sequence of str, length U
    log_returns : array_like of shape (T, U)
        Daily log returns, oldest first; NaN where an asset has no price.
    dates : array_like of shape (T,)
        Date of each return (its closing day), strictly increasing; anything ``numpy.datetime64`` accepts.
    horizon_days : int, default 1
        Window length k (1 and 3 in the margin model); T − k + 1 windows.
    vol_now : array_like of shape (U,), optional
        Today's daily volatility (e.g. :func:`fhs_volatility`'s ``vol_now``).
    vol_then : array_like of shape (T, U), optional
        Volatility forecast for each day (``vol_then`` of :func:`fhs_volatility`).
    vol_shift : float, default 0
        Absolute volatility shift applied in every scenario (history of implied vol is not an input here).
    missing : {"drop", "unchanged"}
        Windows in which some asset has a NaN return: dropped (default), or that asset is left unchanged.

    Returns
    -------
    ScenarioSet
        Named ``"HIST <k>d <end date>"``, weights 1, group ``"historical"``, horizon k days.
    """
    unds = tuple(underlyings)
    r = np.asarray(log_returns, dtype=np.float64)
    d = np.asarray(dates, dtype="datetime64[D]")
    k = int(horizon_days)
    if k != horizon_days or k < 1:
        raise ValueError("horizon_days must be a positive whole number of days")
    if r.ndim != 2 or r.shape[1] != len(unds):
        raise ValueError(f"log_returns has shape {r.shape}, expected (T, {len(unds)})")
    if d.shape != (r.shape[0],):
        raise ValueError(f"dates has shape {d.shape}, expected ({r.shape[0]},)")
    if d.size > 1 and np.any(np.diff(d) <= np.timedelta64(0, "D")):
        raise ValueError("dates must be strictly increasing")
    if missing not in ("drop", "unchanged"):
        raise ValueError("missing must be 'drop' or 'unchanged'")
    if (vol_now is None) != (vol_then is None):
        raise ValueError("pass both vol_now and vol_then (volatility scaling) or neither")
    if vol_now is not None and vol_then is not None:
        now = np.asarray(vol_now, dtype=np.float64)
        then = np.asarray(vol_then, dtype=np.float64)
        if now.shape != (len(unds),) or then.shape != r.shape:
            raise ValueError(f"vol_now must be ({len(unds)},) and vol_then {r.shape}")
        used = np.isfinite(r)
        if np.any(~np.isfinite(now)) or np.any(now <= 0) or np.any(~(then[used] > 0)):
            raise ValueError("volatilities must be positive and finite wherever a return is used")
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.where(used, r * (now / np.where(used, then, 1.0)), np.nan)
    t_len = r.shape[0]
    if t_len < k:
        raise ValueError(f"{t_len} returns cannot make a {k}-day window")
    nan = ~np.isfinite(r)
    csum = np.concatenate([np.zeros((1, len(unds))), np.cumsum(np.where(nan, 0.0, r), axis=0)])
    window = csum[k:] - csum[:-k]  # (T-k+1, U): sum of returns t-k+1..t
    ncnt = np.concatenate([np.zeros((1, len(unds)), dtype=np.int64), np.cumsum(nan, axis=0)])
    has_nan = (ncnt[k:] - ncnt[:-k]) > 0
    keep = ~has_nan.any(axis=1) if missing == "drop" else np.ones(len(window), dtype=bool)
    ends = d[k - 1 :][keep]
    mult = np.exp(window[keep])  # NaN-containing cells summed as 0 → multiplier 1 ("unchanged")
    names = tuple(f"HIST {k}d {e}" for e in np.datetime_as_string(ends, unit="D"))
    return ScenarioSet(
        names=names,
        underlyings=unds,
        price_multipliers=mult,
        vol_shift=np.full(len(names), float(vol_shift)),
        horizon_days=float(k),
        groups=("historical",) * len(names),
    )


# ---------------------------------------------------------------------------------------------------------------
# Stress and user scenarios
# ---------------------------------------------------------------------------------------------------------------


def _sizes(
    names: Sequence[str], given: float | Mapping[str, float] | None, default: Mapping[str, float], what: str
) -> dict[str, float]:
    out: dict[str, float] = {}
    for n in names:
        if given is None:
            val = default[n]
        elif isinstance(given, Mapping):
            val = float(given[n]) if n in given else default[n]
        else:
            val = float(given)
        if not 0 <= val < 1:
            raise ValueError(f"{what} for {n!r} must lie in [0, 1), got {val}")
        out[n] = val
    return out


_DEFAULT_RISKY_DROP = 0.30


def correlation_breakdown(
    underlyings: Sequence[str],
    *,
    risky_drop: float | Mapping[str, float] = _DEFAULT_RISKY_DROP,
    stable_depeg: float | Mapping[str, float] | None = None,
    basis_drop: float | Mapping[str, float] | None = None,
    stable_premium: float | Mapping[str, float] | None = None,
    vol_shift: float = 0.0,
    horizon_days: float = 1.0,
    asset_map: AssetMap | None = None,
) -> ScenarioSet:
    """Correlation breakdown: diversification fails exactly when it is needed.

    Factors are classified by :meth:`AssetMap.factor_kind`: ``"USD"`` stays at 1; peg factors (``"USDC/USD"``)
    are stablecoin pegs; basis factors (``"stETH/ETH"``) are staking / wrapping bases; every other factor is
    risky. Scenarios:

    * ``"BREAK crash"`` — every risky factor falls by its ``risky_drop`` at once and every basis widens by its
      ``basis_drop``; pegs hold;
    * ``"BREAK crash + <peg> depeg"`` — the same, with one stablecoin depegging by its ``stable_depeg``
      (one at a time: a depeg of the stablecoin a wallet owes is a gain, so a joint depeg would hide losses);
    * ``"BREAK <peg> depeg"`` — one stablecoin depegs, nothing else moves (a short-risky, stablecoin-collateral
      book gains from the crash and must still be tested);
    * ``"BREAK crash + <peg> premium"`` — only when ``stable_premium`` is given: the crash with one stablecoin
      trading *above* $1 by its premium (a stablecoin owed gets dearer as the collateral falls).

    Parameters
    ----------
    underlyings : sequence of str, length U
        Factors of the set (underlyings, basis and peg factors).
    risky_drop : float or mapping, default 0.30
        Fall of risky factors (fraction), one number or per factor (factors a mapping omits fall 0.30).
    stable_depeg, basis_drop : float or mapping, optional
        Fall of peg / basis factors; default: the largest ``basis_risk`` of the asset map's tokens on that factor.
    stable_premium : float or mapping, optional
        Rise of peg factors in the ``"crash + premium"`` scenarios (pegs a mapping omits rise by
        :data:`DEFAULT_PREMIUM`); no such scenario by default.
    vol_shift : float, default 0
        Absolute volatility shift in the crash scenarios (0 in the depeg-only ones).
    horizon_days : float, default 1
    asset_map : AssetMap, optional
        Default :data:`~riskcore.assets.DEFAULT_ASSET_MAP`.

    Returns
    -------
    ScenarioSet
        ``1 + 2·(number of peg factors)`` scenarios (``1 + 3·(number of peg factors)`` with ``stable_premium``),
        weight 1, group ``"breakdown"``.
    """
    amap = DEFAULT_ASSET_MAP if asset_map is None else asset_map
    unds = tuple(underlyings)
    kinds = {u: amap.factor_kind(u) for u in unds}
    risky = [u for u in unds if kinds[u] is FactorKind.RISKY]
    pegs = [u for u in unds if kinds[u] is FactorKind.PEG]
    bases = [u for u in unds if kinds[u] is FactorKind.BASIS]
    drop = _sizes(risky, risky_drop, dict.fromkeys(risky, _DEFAULT_RISKY_DROP), "risky_drop")
    depeg = _sizes(pegs, stable_depeg, {p: amap.basis_risk_of(p) for p in pegs}, "stable_depeg")
    bdrop = _sizes(bases, basis_drop, {b: amap.basis_risk_of(b) for b in bases}, "basis_drop")
    col = {u: i for i, u in enumerate(unds)}
    crash = np.ones(len(unds))
    for name, size in {**drop, **bdrop}.items():
        crash[col[name]] = 1.0 - size
    rows = [crash]
    names = ["BREAK crash"]
    vols = [vol_shift]
    for p in pegs:
        row = crash.copy()
        row[col[p]] = 1.0 - depeg[p]
        rows.append(row)
        names.append(f"BREAK crash + {p} depeg")
        vols.append(vol_shift)
    for p in pegs:
        row = np.ones(len(unds))
        row[col[p]] = 1.0 - depeg[p]
        rows.append(row)
        names.append(f"BREAK {p} depeg")
        vols.append(0.0)
    if stable_premium is not None:
        premium = _rises(pegs, stable_premium, "stable_premium")
        for p in pegs:
            row = crash.copy()
            row[col[p]] = 1.0 + premium[p]
            rows.append(row)
            names.append(f"BREAK crash + {p} premium")
            vols.append(vol_shift)
    return ScenarioSet(
        names=tuple(names),
        underlyings=unds,
        price_multipliers=np.array(rows).reshape(len(rows), len(unds)),
        vol_shift=np.array(vols),
        horizon_days=horizon_days,
        groups=("breakdown",) * len(rows),
    )


def _rises(names: Sequence[str], given: float | Mapping[str, float], what: str) -> dict[str, float]:
    """Rise of each name: one number, or a mapping (names it omits rise by :data:`DEFAULT_PREMIUM`)."""
    out: dict[str, float] = {}
    for n in names:
        if isinstance(given, Mapping):
            val = float(given.get(n, DEFAULT_PREMIUM))
        else:
            val = float(given)
        if not (np.isfinite(val) and val >= 0):
            raise ValueError(f"{what} for {n!r} must be finite and >= 0, got {val}")
        out[n] = val
    return out


DEFAULT_PREMIUM = 0.02
"""Rise of a peg or basis factor when no size is given: a stablecoin or a staked token trades above par only as far
as minting at par lets it (2 %)."""


def spread_scenarios(
    underlyings: Sequence[str],
    *,
    down: float | Mapping[str, float] | None = None,
    up: float | Mapping[str, float] | None = None,
    horizon_days: float = 1.0,
    asset_map: AssetMap | None = None,
) -> ScenarioSet:
    """Stablecoin pegs and staking / wrapping bases, one at a time and against each other.

    A book whose only risk is a peg (USDC collateral against DAI debt) or a basis (wstETH against WETH) moves
    with none of the risky-asset scenarios; these do move it. The *spread factors* are the peg and basis factors
    among ``underlyings`` (classified by :meth:`AssetMap.factor_kind`); risky factors and ``"USD"`` stay
    unchanged. With ``n`` spread factors, in this order:

    * ``"SPREAD <f> down"`` — ``f`` alone falls by ``down[f]`` (USDC at $0.877), n scenarios;
    * ``"SPREAD <f> up"`` — ``f`` alone rises by ``up[f]`` (DAI at $1.04: a stablecoin owed gets dearer), n;
    * ``"SPREAD <a> down <b> up"`` — every ordered pair ``a ≠ b``: ``a`` falls while ``b`` rises (USDC collateral
      falls while the DAI owed rises), n·(n − 1);
    * ``"SPREAD pegs down"`` — every peg falls at once (on 2023-03-11 DAI, mostly USDC-backed, followed USDC),
      1 when there are two pegs or more.

    Parameters
    ----------
    underlyings : sequence of str, length U
        Factors of the set (any mix of risky, peg and basis factors).
    down : float or mapping, optional
        Fall of each spread factor (fraction in [0, 1)); default the asset map's ``basis_risk`` of the factor.
    up : float or mapping, optional
        Rise of each spread factor (fraction ≥ 0); default (and for factors a mapping omits)
        :data:`DEFAULT_PREMIUM`.
    horizon_days : float, default 1
    asset_map : AssetMap, optional
        Default :data:`~riskcore.assets.DEFAULT_ASSET_MAP`.

    Returns
    -------
    ScenarioSet
        ``2n + n(n − 1) (+ 1)`` scenarios (none without a spread factor), weight 1, group ``"spread"``, no
        volatility shift.
    """
    amap = DEFAULT_ASSET_MAP if asset_map is None else asset_map
    unds = tuple(underlyings)
    kinds = {u: amap.factor_kind(u) for u in unds}
    spreads = [u for u in unds if kinds[u] in (FactorKind.PEG, FactorKind.BASIS)]
    pegs = [u for u in spreads if kinds[u] is FactorKind.PEG]
    fall = _sizes(spreads, down, {f: amap.basis_risk_of(f) for f in spreads}, "down")
    rise = _rises(spreads, DEFAULT_PREMIUM if up is None else up, "up")
    col = {u: i for i, u in enumerate(unds)}
    rows: list[Float] = []
    names: list[str] = []

    def add(name: str, moves: Mapping[str, float]) -> None:
        row = np.ones(len(unds))
        for f, mv in moves.items():
            row[col[f]] = 1.0 + mv
        rows.append(row)
        names.append(name)

    for f in spreads:
        add(f"SPREAD {f} down", {f: -fall[f]})
    for f in spreads:
        add(f"SPREAD {f} up", {f: rise[f]})
    for a in spreads:
        for b in spreads:
            if a != b:
                add(f"SPREAD {a} down {b} up", {a: -fall[a], b: rise[b]})
    if len(pegs) > 1:
        add("SPREAD pegs down", {p: -fall[p] for p in pegs})
    return ScenarioSet(
        names=tuple(names),
        underlyings=unds,
        price_multipliers=np.array(rows).reshape(len(rows), len(unds)),
        vol_shift=np.zeros(len(rows)),
        horizon_days=horizon_days,
        groups=("spread",) * len(rows),
    )


def peg_stress_sizes(
    lows: npt.ArrayLike, closes: npt.ArrayLike, *, floor_down: float = 0.0, floor_up: float = 0.0
) -> tuple[float, float]:
    """A stablecoin's peg stress from its own daily USD history: how far below and above $1 it has traded.

    ``down = max(floor_down, 1 − min(low))`` — the worst intraday low (USDC: 0.8774 on 2023-03-11, so 12.26 %);
    ``up = max(floor_up, max(close) − 1)`` — the highest daily *close*: intraday highs of thinly traded stablecoin
    pairs carry single-print spikes (USDC's daily high reads 2.35 on 2021-11-16) that no one could trade at, while a
    close above $1 held for the day.

    Parameters
    ----------
    lows, closes : array_like of shape (T,)
        Daily lows and closes, USD per token (positive).
    floor_down, floor_up : float
        Smallest sizes returned (fractions), for a coin whose history never strayed far.

    Returns
    -------
    (down, up) : tuple of float
        Fractions; ``down`` at most 0.99 (a coin that went to zero still leaves a positive price, which the
        linear venue rules need), ``up`` ≥ 0.
    """
    lo = np.asarray(lows, dtype=np.float64).reshape(-1)
    cl = np.asarray(closes, dtype=np.float64).reshape(-1)
    if lo.size == 0 or cl.size == 0:
        raise ValueError("a peg stress needs at least one day of history")
    if not (np.all(np.isfinite(lo) & (lo > 0)) and np.all(np.isfinite(cl) & (cl > 0))):
        raise ValueError("prices must be finite and positive")
    if not (0 <= floor_down < 1 and floor_up >= 0):
        raise ValueError("floor_down must lie in [0, 1) and floor_up be >= 0")
    down = max(floor_down, 1.0 - float(lo.min()))
    up = max(floor_up, float(cl.max()) - 1.0)
    return min(down, 0.99), up


def user_scenarios(
    underlyings: Sequence[str],
    price_moves: Mapping[str, Mapping[str, float]],
    *,
    vol_shifts: Mapping[str, float | Mapping[str, float]] | None = None,
    weights: Mapping[str, float] | None = None,
    horizon_days: float = 1.0,
    group: str = "user",
) -> ScenarioSet:
    """User-defined scenarios, given as price moves.

    Parameters
    ----------
    underlyings : sequence of str, length U
    price_moves : mapping of scenario name → mapping of factor → move
        Moves are fractions (−0.4 = −40%, multiplier 0.6); factors not mentioned are unchanged. Scenario order
        is the mapping's order.
    vol_shifts : mapping of scenario name → float or mapping of factor → float, optional
        Absolute volatility shifts (one for all factors, or per factor); default 0.
    weights : mapping of scenario name → float, optional
        Default 1.
    horizon_days : float, default 1
    group : str, default "user"

    Returns
    -------
    ScenarioSet
    """
    unds = tuple(underlyings)
    col = {u: i for i, u in enumerate(unds)}
    names = tuple(price_moves)
    mult = np.ones((len(names), len(unds)))
    vol = np.zeros((len(names), len(unds)))
    for i, n in enumerate(names):
        for u, mv in price_moves[n].items():
            if u not in col:
                raise KeyError(f"scenario {n!r} moves {u!r}, which is not among {unds}")
            mult[i, col[u]] = 1.0 + float(mv)
        shift = (vol_shifts or {}).get(n, 0.0)
        if isinstance(shift, Mapping):
            for u, vs in shift.items():
                if u not in col:
                    raise KeyError(f"scenario {n!r} shifts the vol of {u!r}, which is not among {unds}")
                vol[i, col[u]] = float(vs)
        else:
            vol[i, :] = float(shift)
    extra = set(vol_shifts or {}) | set(weights or {})
    if extra - set(names):
        raise KeyError(f"vol_shifts / weights name unknown scenarios {sorted(extra - set(names))}")
    w = np.array([float((weights or {}).get(n, 1.0)) for n in names])
    return ScenarioSet(
        names=names,
        underlyings=unds,
        price_multipliers=mult,
        vol_shift=vol,
        horizon_days=horizon_days,
        weights=w,
        groups=(group,) * len(names),
    )
