"""The factor model behind the scenario sets: each price of a book is a product of risk factors.

A :class:`~riskcore.book.Book` values its positions at the USD prices of its *underlyings*: ``ETH`` (WETH, ETH
perps), ``stETH``, ``wstETH``, ``WBTC``, ``USDC``, ``DAI``… Scenario generators move *risk factors*
(:mod:`riskcore.assets`): risky underlyings (``ETH``, ``BTC``), stablecoin pegs (``USDC/USD``) and staking /
wrapping bases (``stETH/ETH``). A book underlying's price multiplier is the product of its factors' multipliers:

==============  =====================  ==========================================================
underlying      factors                 example: ETH −30 %, stETH/ETH −5 %, USDC/USD −12 %
==============  =====================  ==========================================================
``ETH``         ``ETH``                 × 0.70
``stETH``       ``ETH``, ``stETH/ETH``  × 0.70 × 0.95 (``wstETH`` too: the wrapper shares the basis)
``WBTC``        ``BTC``, ``WBTC/BTC``
``USDC``        ``USDC/USD``            × 0.88
``USD``         (none: the numeraire)   × 1
``LINK``        ``LINK``                (a name the asset map does not know is its own risky factor)
==============  =====================  ==========================================================

So a scenario set over the factors (:meth:`FactorModel.compose`) moves a stETH holding with ETH *and* its basis, a
USDC holding with USDC's peg, and leaves a factor a scenario does not name unchanged. An underlying without a risky
factor (a stablecoin, ``USD``) is *stable*: the uniform-move analysis holds it still.

Every price of every position is linear in each single factor's multiplier (the multiplier enters each
underlying's price at most once), which is what :func:`riskcore.margin.factor_liquidation_moves` relies on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from riskcore.assets import DEFAULT_ASSET_MAP, NUMERAIRE, AssetMap, FactorKind
from riskcore.scenarios import ScenarioSet

__all__ = ["MOVE_TOLERANCE", "FactorModel", "factor_model"]

F64 = npt.NDArray[np.float64]

MOVE_TOLERANCE = 1e-12
"""A multiplier within this of 1 counts as "unchanged" when scenarios are classified by the factors they move."""


@dataclass(frozen=True, slots=True, eq=False)
class FactorModel:
    """How a book's underlyings load on risk factors.

    Attributes
    ----------
    underlyings : tuple of str, length U
        The book's underlyings, in book order.
    factors : tuple of str, length F
        Risk factors, in order of first appearance (an underlying's risky factor before its basis).
    kinds : tuple of FactorKind, length F
        ``RISKY``, ``PEG`` or ``BASIS`` (never ``NUMERAIRE``: ``USD`` is not a factor).
    loadings : ndarray of shape (U, F)
        1.0 where the underlying's price moves with the factor, else 0. At most one risky factor per row.
    """

    underlyings: tuple[str, ...]
    factors: tuple[str, ...]
    kinds: tuple[FactorKind, ...]
    loadings: F64

    @property
    def risky(self) -> tuple[str, ...]:
        """Risky factors (``ETH``, ``BTC``…), in model order."""
        return tuple(f for f, k in zip(self.factors, self.kinds, strict=True) if k is FactorKind.RISKY)

    @property
    def pegs(self) -> tuple[str, ...]:
        """Stablecoin peg factors (``USDC/USD``…)."""
        return tuple(f for f, k in zip(self.factors, self.kinds, strict=True) if k is FactorKind.PEG)

    @property
    def bases(self) -> tuple[str, ...]:
        """Staking / wrapping basis factors (``stETH/ETH``…)."""
        return tuple(f for f, k in zip(self.factors, self.kinds, strict=True) if k is FactorKind.BASIS)

    @property
    def stable(self) -> npt.NDArray[np.bool_]:
        """(U,) underlyings with no risky factor (stablecoins, ``USD``): held still by the uniform move."""
        risky = np.array([k is FactorKind.RISKY for k in self.kinds], dtype=bool)
        return np.asarray(~(self.loadings[:, risky] > 0).any(axis=1), dtype=bool)

    def token(self, factor: str) -> str:
        """The token a trader reads a factor as: ``USDC/USD`` → ``USDC``, ``stETH/ETH`` → ``stETH``, ``ETH`` →
        ``ETH``."""
        return factor.split("/", 1)[0]

    def risky_factor_of(self, underlying: int) -> int:
        """Index of the risky factor of underlying ``underlying`` (book index), −1 for a stable one."""
        for f in np.flatnonzero(self.loadings[underlying] > 0):
            if self.kinds[int(f)] is FactorKind.RISKY:
                return int(f)
        return -1

    def compose(self, scenarios: ScenarioSet) -> ScenarioSet:
        """The scenario set over the factors as a set over the book's underlyings.

        Each underlying's multiplier is the product of its factors' multipliers (a factor the set does not name
        is unchanged); its volatility shocks are its risky factor's (none for a stable underlying). Names,
        weights, groups, horizon and volatility rule are kept, scenario for scenario.

        Parameters
        ----------
        scenarios : ScenarioSet
            S scenarios over any of :attr:`factors` (other names are ignored).

        Returns
        -------
        ScenarioSet
            S scenarios over :attr:`underlyings`.
        """
        col = {name: i for i, name in enumerate(scenarios.underlyings)}
        s, u = len(scenarios), len(self.underlyings)
        mult = np.ones((s, u))
        vol = np.zeros((s, u))
        rel = np.zeros((s, u))
        for j in range(u):
            for f in np.flatnonzero(self.loadings[j] > 0):
                name = self.factors[int(f)]
                if name not in col:
                    continue
                mult[:, j] *= scenarios.price_multipliers[:, col[name]]
                if self.kinds[int(f)] is FactorKind.RISKY:
                    vol[:, j] = scenarios.vol_shift[:, col[name]]
                    rel[:, j] = scenarios.vol_shift_relative[:, col[name]]
        return ScenarioSet(
            names=scenarios.names,
            underlyings=self.underlyings,
            price_multipliers=mult,
            vol_shift=vol,
            horizon_days=scenarios.horizon_days,
            weights=scenarios.weights,
            vol_shift_relative=rel,
            vol_term=scenarios.vol_term,
            groups=scenarios.groups,
        )

    def single_factor_moves(self, scenarios: ScenarioSet) -> tuple[F64, F64]:
        """How far the set moves each factor *alone* (every other factor unchanged), down and up.

        Parameters
        ----------
        scenarios : ScenarioSet
            Over any of :attr:`factors`.

        Returns
        -------
        down, up : ndarray of shape (F,)
            The largest fall (0.123 = −12.3 %) and rise (fractions, ≥ 0) of each factor over the scenarios in
            which it is the only factor that moves; 0 where no such scenario moves it that way.
        """
        down = np.zeros(len(self.factors))
        up = np.zeros(len(self.factors))
        cols = [scenarios.underlyings.index(f) if f in scenarios.underlyings else -1 for f in self.factors]
        present = [c for c in cols if c >= 0]
        if not present or len(scenarios) == 0:
            return down, up
        m = scenarios.price_multipliers[:, present]
        moved = np.abs(m - 1.0) > MOVE_TOLERANCE
        alone = moved.sum(axis=1) == 1
        k = 0
        for f, c in enumerate(cols):
            if c < 0:
                continue
            sel = m[alone & moved[:, k], k]
            k += 1
            if sel.size:
                down[f] = max(0.0, float(1.0 - sel.min()))
                up[f] = max(0.0, float(sel.max() - 1.0))
        return down, up


def factor_model(underlyings: Sequence[str], asset_map: AssetMap | None = None) -> FactorModel:
    """The factor model of a book's underlyings.

    An underlying the asset map knows loads on its spec's ``underlying`` (a risky factor, unless it is the
    numeraire ``USD``) and on its ``basis_factor`` when it has one (a peg for a stablecoin, a basis for a staked or
    wrapped token); an underlying the map does not know is its own risky factor.

    Parameters
    ----------
    underlyings : sequence of str, length U
        Unique names (a book's :attr:`~riskcore.book.Book.underlyings`).
    asset_map : AssetMap, optional
        Default :data:`~riskcore.assets.DEFAULT_ASSET_MAP`.

    Returns
    -------
    FactorModel
    """
    amap = DEFAULT_ASSET_MAP if asset_map is None else asset_map
    names = tuple(underlyings)
    if len(set(names)) != len(names):
        raise ValueError(f"underlyings must be unique: {names}")
    factors: dict[str, FactorKind] = {}
    rows: list[list[str]] = []
    for name in names:
        comps: list[tuple[str, FactorKind]] = []
        if name in amap:
            spec = amap[name]
            if spec.underlying != NUMERAIRE:
                comps.append((spec.underlying, FactorKind.RISKY))
            if spec.basis_factor is not None:
                comps.append((spec.basis_factor, amap.factor_kind(spec.basis_factor)))
        elif name != NUMERAIRE:
            comps.append((name, FactorKind.RISKY))
        for f, kind in comps:
            factors.setdefault(f, kind)
        rows.append([f for f, _ in comps])
    order = tuple(factors)
    col = {f: i for i, f in enumerate(order)}
    loadings = np.zeros((len(names), len(order)))
    for j, comps_j in enumerate(rows):
        for f in comps_j:
            loadings[j, col[f]] = 1.0
    return FactorModel(names, order, tuple(factors[f] for f in order), loadings)
