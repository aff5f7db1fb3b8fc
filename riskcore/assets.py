"""The asset map: which underlying each token is exposure to, at what ratio, and with what basis risk.

Netting across venues needs one answer to "what is this token, really?". The map is data, not code:

* ``WETH`` → ``ETH`` 1:1, no basis (redeemable 1:1 in its own contract);
* staked and wrapped ether (``stETH``, ``wstETH``, ``cbETH``, ``rETH``, ``weETH``) → ``ETH`` with a *basis*: the
  token can trade below its redemption value (stETH traded near 0.94 ETH in June 2022). Rate-bearing wrappers
  have a ratio (ETH per token) that grows over time; it is an input (``exchange_rates``), never a constant here;
* ``WBTC`` / ``cbBTC`` → ``BTC`` with a (custodial) basis;
* stablecoins (``USDC``, ``USDT``, ``DAI``, ``USDS``, ``USDe``, ``GHO``, ``LUSD``) → ``USD`` with a *depeg* risk
  (USDC traded at 0.877 on 2023-03-11).

Risk factors
------------
A token's USD price is modelled as ``price(underlying) × ratio × peg``, where ``peg`` is a *basis factor* named
``"<token>/<underlying>"`` (``"stETH/ETH"``, ``"USDC/USD"``) and equal to 1 today. Tokens that wrap one another
share a factor (``wstETH`` uses ``"stETH/ETH"``). A scenario may move underlyings and basis factors; ``"USD"`` is
the numeraire and stays at 1. :func:`factor_kind` classifies factor names for scenario generators.

Sign and units: USD deltas are the change in USD value per 1 (i.e. 100%) move of the factor, signed
(long collateral > 0, debt < 0), so for a spot holding the USD delta is its USD value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

import numpy as np
import numpy.typing as npt

__all__ = [
    "DEFAULT_ASSET_MAP",
    "NUMERAIRE",
    "AssetKind",
    "AssetMap",
    "AssetSpec",
    "FactorKind",
    "basis_exposure",
    "net_exposure",
    "net_quantity",
]

NUMERAIRE = "USD"
"""The unit of account; its price is 1 in every scenario."""


class AssetKind(StrEnum):
    """What a token is, as far as risk is concerned."""

    NATIVE = "native"
    """The underlying itself (ETH, BTC, SOL) or a 1:1 wrapper without basis (WETH)."""
    WRAPPED = "wrapped"
    """A custodial or bridged wrapper (WBTC, cbBTC): 1:1 ratio, basis risk."""
    STAKED = "staked"
    """A liquid staking / restaking token (stETH, wstETH, rETH): ratio may be an exchange rate, basis risk."""
    STABLE = "stable"
    """A USD stablecoin: underlying ``USD``, depeg risk."""


class FactorKind(StrEnum):
    """How a scenario generator treats a risk factor name."""

    NUMERAIRE = "numeraire"
    RISKY = "risky"
    BASIS = "basis"
    """Basis of a staked or wrapped token against its underlying (``stETH/ETH``)."""
    PEG = "peg"
    """Peg of a stablecoin against USD (``USDC/USD``)."""


@dataclass(frozen=True, slots=True)
class AssetSpec:
    """One token's entry in the map.

    Attributes
    ----------
    symbol : str
        Token symbol as the venue reports it (``"wstETH"``).
    underlying : str
        The risk factor the token is exposure to (``"ETH"``, ``"BTC"``, ``"USD"``).
    kind : AssetKind
    ratio : float or None
        Units of underlying per token (1.0 for WETH, stETH, WBTC, USDC). ``None`` for rate-bearing tokens
        (wstETH, cbETH, rETH, weETH): the exchange rate must be passed in where quantities are converted.
    basis_risk : float
        Plausible adverse move of the token against its underlying, as a fraction (0.05 = the token trades
        5% below redemption). 0 for tokens without basis. Used as the default shock size by scenario generators.
    basis_factor : str or None
        Name of the basis / peg factor; defaults to ``"<symbol>/<underlying>"`` when ``basis_risk > 0``.
    """

    symbol: str
    underlying: str
    kind: AssetKind = AssetKind.NATIVE
    ratio: float | None = 1.0
    basis_risk: float = 0.0
    basis_factor: str | None = None

    def __post_init__(self) -> None:
        if not self.symbol or not self.underlying:
            raise ValueError("symbol and underlying must be non-empty")
        if self.ratio is not None and not (np.isfinite(self.ratio) and self.ratio > 0):
            raise ValueError(f"{self.symbol}: ratio must be a positive finite number or None, got {self.ratio!r}")
        if not (0.0 <= self.basis_risk < 1.0):
            raise ValueError(f"{self.symbol}: basis_risk must lie in [0, 1), got {self.basis_risk!r}")
        if self.basis_factor is None and self.basis_risk > 0:
            object.__setattr__(self, "basis_factor", f"{self.symbol}/{self.underlying}")
        if self.kind is AssetKind.STABLE and self.underlying != NUMERAIRE:
            raise ValueError(f"{self.symbol}: a stablecoin's underlying must be {NUMERAIRE!r}")


def _norm_key(key: str) -> str:
    key = key.strip()
    return key.lower() if key[:2].lower() == "0x" else key


@dataclass(frozen=True, slots=True)
class AssetMap:
    """Token symbols (and address aliases) → :class:`AssetSpec`.

    Lookups are exact on the symbol first, then case-insensitive when that is unambiguous; keys starting with
    ``0x`` are addresses, matched lower-cased against ``aliases``. Unknown tokens raise ``KeyError``: a token
    the map does not know is never silently netted.

    Attributes
    ----------
    specs : tuple of AssetSpec
    aliases : mapping of str to str
        Extra keys (token addresses, other spellings) → symbol in ``specs``. Addresses are lower-cased.
    """

    specs: tuple[AssetSpec, ...]
    aliases: Mapping[str, str] = field(default_factory=dict)
    _by_symbol: dict[str, AssetSpec] = field(init=False, repr=False, compare=False)
    _by_folded: dict[str, AssetSpec | None] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_symbol: dict[str, AssetSpec] = {}
        folded: dict[str, AssetSpec | None] = {}
        for spec in self.specs:
            if spec.symbol in by_symbol:
                raise ValueError(f"duplicate symbol {spec.symbol!r} in asset map")
            by_symbol[spec.symbol] = spec
            low = spec.symbol.casefold()
            folded[low] = None if low in folded else spec  # None marks an ambiguous case-folded key
        aliases = {_norm_key(k): v for k, v in self.aliases.items()}
        for key, sym in aliases.items():
            if sym not in by_symbol:
                raise ValueError(f"alias {key!r} points to unknown symbol {sym!r}")
        object.__setattr__(self, "aliases", aliases)
        object.__setattr__(self, "_by_symbol", by_symbol)
        object.__setattr__(self, "_by_folded", folded)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        try:
            self[key]
        except KeyError:
            return False
        return True

    def __getitem__(self, key: str) -> AssetSpec:
        k = _norm_key(key)
        if k in self._by_symbol:
            return self._by_symbol[k]
        if k in self.aliases:
            return self._by_symbol[self.aliases[k]]
        spec = self._by_folded.get(k.casefold())
        if spec is None:
            raise KeyError(f"token {key!r} is not in the asset map")
        return spec

    def __len__(self) -> int:
        return len(self.specs)

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(s.symbol for s in self.specs)

    def with_assets(self, *specs: AssetSpec) -> AssetMap:
        """A new map with ``specs`` added (a spec whose symbol exists replaces the old one)."""
        new = {s.symbol: s for s in self.specs}
        for s in specs:
            new[s.symbol] = s
        return AssetMap(tuple(new.values()), dict(self.aliases))

    def with_ratios(self, exchange_rates: Mapping[str, float]) -> AssetMap:
        """A new map with the ratios of the given tokens set (e.g. ``{"wstETH": 1.19}`` ETH per wstETH)."""
        new = {s.symbol: s for s in self.specs}
        for key, rate in exchange_rates.items():
            spec = self[key]
            new[spec.symbol] = replace(spec, ratio=float(rate))
        return AssetMap(tuple(new.values()), dict(self.aliases))

    def factor_kind(self, name: str) -> FactorKind:
        """Classify a risk-factor name: the numeraire, a stablecoin peg, a token basis, or a risky underlying.

        Names that are neither ``"USD"`` nor a basis factor of some spec are risky (the conservative default).
        """
        if name == NUMERAIRE:
            return FactorKind.NUMERAIRE
        for spec in self.specs:
            if spec.basis_factor == name:
                return FactorKind.PEG if spec.kind is AssetKind.STABLE else FactorKind.BASIS
        return FactorKind.RISKY

    def basis_risk_of(self, factor: str) -> float:
        """Largest ``basis_risk`` among tokens sharing the basis factor ``factor`` (0 when none)."""
        return max((s.basis_risk for s in self.specs if s.basis_factor == factor), default=0.0)

    def underlying_matrix(
        self,
        symbols: Sequence[str],
        underlyings: Sequence[str] | None = None,
        *,
        exchange_rates: Mapping[str, float] | None = None,
        quantity: bool = False,
    ) -> tuple[tuple[str, ...], npt.NDArray[np.float64]]:
        """The mapping matrix from positions to underlyings.

        Parameters
        ----------
        symbols : sequence of str, length P
            Token of each position (repeats allowed: the same token on several venues).
        underlyings : sequence of str, length U, optional
            Column order. Default: underlyings in order of first appearance. Must cover every position.
        exchange_rates : mapping of str to float, optional
            Ratios (underlying per token) for rate-bearing tokens; override the map's ratio.
        quantity : bool
            ``False`` (default): entries are 1 — a position's USD delta is already its exposure to the underlying
            (the ratio is inside the token's price). ``True``: entries are the ratio, so token amounts become
            amounts of underlying; every rate-bearing token then needs an exchange rate.

        Returns
        -------
        underlyings : tuple of str, length U
        matrix : ndarray of shape (P, U)
            One non-zero per row.
        """
        specs = [self[s] for s in symbols]
        names = _columns([s.underlying for s in specs], underlyings)
        col = {u: i for i, u in enumerate(names)}
        rates = {self[k].symbol: float(v) for k, v in (exchange_rates or {}).items()}
        m = np.zeros((len(specs), len(names)), dtype=np.float64)
        for i, spec in enumerate(specs):
            if quantity:
                ratio = rates.get(spec.symbol, spec.ratio)
                if ratio is None:
                    raise ValueError(f"{spec.symbol} has no fixed ratio to {spec.underlying}: pass exchange_rates")
                m[i, col[spec.underlying]] = ratio
            else:
                m[i, col[spec.underlying]] = 1.0
        return names, m

    def basis_matrix(
        self, symbols: Sequence[str], factors: Sequence[str] | None = None
    ) -> tuple[tuple[str, ...], npt.NDArray[np.float64]]:
        """The mapping matrix from positions to basis / peg factors.

        Returns
        -------
        factors : tuple of str, length B
            Basis factors in order of first appearance (positions without basis map to none).
        matrix : ndarray of shape (P, B)
            1 where the position's token carries that basis factor, else 0.
        """
        specs = [self[s] for s in symbols]
        present = [s.basis_factor for s in specs if s.basis_factor is not None]
        names = _columns(present, factors)
        col = {u: i for i, u in enumerate(names)}
        m = np.zeros((len(specs), len(names)), dtype=np.float64)
        for i, spec in enumerate(specs):
            if spec.basis_factor is not None:
                m[i, col[spec.basis_factor]] = 1.0
        return names, m


def _columns(present: Iterable[str], fixed: Sequence[str] | None) -> tuple[str, ...]:
    present = list(present)
    if fixed is None:
        return tuple(dict.fromkeys(present))
    names = tuple(fixed)
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate column names: {names}")
    missing = sorted(set(present) - set(names))
    if missing:
        raise ValueError(f"positions map to {missing}, which are not among the given columns {names}")
    return names


def _netted(
    names: tuple[str, ...], m: npt.NDArray[np.float64], values: npt.ArrayLike
) -> tuple[tuple[str, ...], npt.NDArray[np.float64]]:
    x = np.asarray(values, dtype=np.float64)
    if x.shape[-1:] != (m.shape[0],):
        raise ValueError(f"values have shape {x.shape}; the last axis must be the {m.shape[0]} positions")
    return names, np.asarray(x @ m, dtype=np.float64)


def net_exposure(
    symbols: Sequence[str],
    usd_deltas: npt.ArrayLike,
    asset_map: AssetMap | None = None,
    underlyings: Sequence[str] | None = None,
) -> tuple[tuple[str, ...], npt.NDArray[np.float64]]:
    """Net USD deltas per underlying across tokens and venues.

    Parameters
    ----------
    symbols : sequence of str, length P
        Token of each position column.
    usd_deltas : array_like of shape (..., P) — typically (W, P) for W wallets
        Signed USD delta of each position (spot: its USD value; debt: minus its USD value; a perp: size × price;
        an option: Black-76 delta × forward × size), USD per 100% move of the underlying.
    asset_map : AssetMap, optional
        Default :data:`DEFAULT_ASSET_MAP`.
    underlyings : sequence of str, optional
        Fixed column order of the result (default: order of first appearance).

    Returns
    -------
    underlyings : tuple of str, length U
    net : ndarray of shape (..., U)
        Net USD delta per underlying (``usd_deltas @ M`` with M the (P, U) 0/1 mapping matrix). Stablecoins
        net into ``"USD"``; their depeg risk is in :func:`basis_exposure`.
    """
    amap = DEFAULT_ASSET_MAP if asset_map is None else asset_map
    names, m = amap.underlying_matrix(symbols, underlyings)
    return _netted(names, m, usd_deltas)


def net_quantity(
    symbols: Sequence[str],
    amounts: npt.ArrayLike,
    asset_map: AssetMap | None = None,
    underlyings: Sequence[str] | None = None,
    exchange_rates: Mapping[str, float] | None = None,
) -> tuple[tuple[str, ...], npt.NDArray[np.float64]]:
    """Net token amounts into amounts of underlying (ETH, BTC, USD) using each token's ratio.

    Parameters
    ----------
    symbols : sequence of str, length P
    amounts : array_like of shape (..., P)
        Signed token amounts (whole tokens, not raw integers).
    exchange_rates : mapping of str to float, optional
        Underlying per token for rate-bearing tokens (``{"wstETH": 1.19}``); required for those present.

    Returns
    -------
    underlyings : tuple of str, length U
    net : ndarray of shape (..., U)
        Net amount of each underlying, in its own units.
    """
    amap = DEFAULT_ASSET_MAP if asset_map is None else asset_map
    names, m = amap.underlying_matrix(symbols, underlyings, exchange_rates=exchange_rates, quantity=True)
    return _netted(names, m, amounts)


def basis_exposure(
    symbols: Sequence[str],
    usd_deltas: npt.ArrayLike,
    asset_map: AssetMap | None = None,
    factors: Sequence[str] | None = None,
) -> tuple[tuple[str, ...], npt.NDArray[np.float64]]:
    """Net USD exposure per basis / peg factor (``"stETH/ETH"``, ``"USDC/USD"``).

    USDC collateral against USDC debt nets to zero; USDC collateral against USDT debt is exposed to both pegs.

    Returns
    -------
    factors : tuple of str, length B
    net : ndarray of shape (..., B)
        USD lost per 100% fall of each factor (multiply by the depeg fraction for the loss).
    """
    amap = DEFAULT_ASSET_MAP if asset_map is None else asset_map
    names, m = amap.basis_matrix(symbols, factors)
    return _netted(names, m, usd_deltas)


def _default_map() -> AssetMap:
    native = [
        AssetSpec(sym, sym)
        for sym in ("ETH", "BTC", "SOL", "LINK", "LTC", "XRP", "ADA", "BNB", "DOGE", "MATIC", "POL", "AVAX", "DOT")
    ]
    eth_family = [
        AssetSpec("WETH", "ETH"),
        AssetSpec("stETH", "ETH", AssetKind.STAKED, 1.0, 0.05),
        AssetSpec("wstETH", "ETH", AssetKind.STAKED, None, 0.05, "stETH/ETH"),
        AssetSpec("cbETH", "ETH", AssetKind.STAKED, None, 0.05),
        AssetSpec("rETH", "ETH", AssetKind.STAKED, None, 0.05),
        AssetSpec("weETH", "ETH", AssetKind.STAKED, None, 0.08),
    ]
    btc_family = [
        AssetSpec("WBTC", "BTC", AssetKind.WRAPPED, 1.0, 0.03),
        AssetSpec("cbBTC", "BTC", AssetKind.WRAPPED, 1.0, 0.03),
    ]
    # Depeg defaults: USDC's 2023-03-11 low was 0.877 (−12.3%); DAI was then mostly USDC-backed.
    stables = [
        AssetSpec("USD", NUMERAIRE),
        AssetSpec("USDC", NUMERAIRE, AssetKind.STABLE, 1.0, 0.13),
        AssetSpec("USDT", NUMERAIRE, AssetKind.STABLE, 1.0, 0.10),
        AssetSpec("DAI", NUMERAIRE, AssetKind.STABLE, 1.0, 0.13),
        AssetSpec("USDS", NUMERAIRE, AssetKind.STABLE, 1.0, 0.13),
        AssetSpec("USDe", NUMERAIRE, AssetKind.STABLE, 1.0, 0.20),
        AssetSpec("GHO", NUMERAIRE, AssetKind.STABLE, 1.0, 0.10),
        AssetSpec("LUSD", NUMERAIRE, AssetKind.STABLE, 1.0, 0.10),
    ]
    # Ethereum mainnet (chain 1) token addresses.
    aliases = {
        "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2": "WETH",
        "0xae7ab96520DE3A18E5e111B5EaAb095312D7fE84": "stETH",
        "0x7f39C581F595B53c5cb19bD0b3f8dA6c935E2Ca0": "wstETH",
        "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48": "USDC",
        "0xdAC17F958D2ee523a2206206994597C13D831ec7": "USDT",
        "0x6B175474E89094C44Da98b954EedeAC495271d0F": "DAI",
        "0x2260FAC5E5542a773Aa44fBCfeDf7C193bc2C599": "WBTC",
    }
    return AssetMap(tuple(native + eth_family + btc_family + stables), aliases)


DEFAULT_ASSET_MAP: AssetMap = _default_map()
"""The default map (symbols of the market data set, ETH and BTC families, USD stablecoins, mainnet aliases).
Basis and depeg sizes are starting points to calibrate, not venue parameters."""
