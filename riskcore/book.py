"""A vectorized book of many wallets' positions across venues, flattened for scenario revaluation.

The book is the one input of :mod:`riskcore.margin` and :mod:`riskcore.cascade`. It holds ``W`` wallets,
``A`` margin accounts and ``P`` positions over ``U`` underlyings, all as flat numpy arrays.

Margin accounts
---------------
An *account* is one venue's liquidation unit: the set of positions that the venue's health rule looks at
together and liquidates together.

============  ======================================  =========================================================
rule          account                                 positions (kinds)
============  ======================================  =========================================================
``LENDING``   wallet × pooled lending market          ``COLLATERAL`` (LT in ``threshold``), ``DEBT``
``ISOLATED``  wallet × isolated lending market        ``COLLATERAL`` (LLTV in ``threshold``), ``DEBT``
``PERP``      wallet × perp venue (cross account)     ``PERP`` (maintenance rate in ``mmr``); ``cash_usd``
``NONE``      wallet × venue, never liquidated        ``LP`` (concentrated range), ``SPOT`` (tokens held),
                                                      ``OPTION`` (European option, Black-76)
============  ======================================  =========================================================

Options are held in a ``NONE`` account (venue ``"options"`` by default): no options venue's margin rule is
modelled, so an option position is never liquidated; it only adds its (non-linear) value and P&L to the wallet.
A venue that margins options together with perps (Deribit portfolio margin) would need a rule of its own.

Units and signs
---------------
* ``quantity`` is in whole units of the position's underlying, signed: collateral and spot held > 0, debt < 0
  (its value ``quantity × price`` is the liability, negative), perp size signed (< 0 short). For ``LP`` it is the
  *human* liquidity ``L_h`` (``L / 10**((decimals0 + decimals1) / 2)``), so that with ``s = sqrt(P)``, ``P``
  the pool price in token1 per token0, the amounts are ``x = L_h (1/s − 1/s_b)``, ``y = L_h (s − s_a)`` (clipped
  to the range ``[s_a, s_b]`` = ``sqrt_lower``, ``sqrt_upper``); token0 is ``underlying``, token1 ``underlying2``.
  The pool is taken as arbitraged to the oracle ratio ``P = price0 / price1``. For ``OPTION`` it is the signed
  number of contracts on one unit of ``underlying`` each (long > 0, written < 0).
* An option's USD value is ``quantity × black76_price(F = price_usd[underlying], strike, expiry, vol, is_call)``
  (the forward is taken at the spot/oracle price, no discounting: ``r = 0``); its USD delta is
  ``quantity × Black-76 delta × price``. ``strike`` is USD per unit, ``expiry`` years (ACT/365), ``vol``
  annualized.
* A position's USD value is ``quantity × price_usd[underlying]`` (LP: ``x × price0 + y × price1``); a perp
  account's equity is ``cash_usd + Σ size × price``; a wallet's equity is the sum of its positions' values and
  its perp accounts' cash.
* ``threshold`` is a fraction (0.825 for 8,250 bps); a collateral position with threshold 0 (a supply not used
  as collateral on a lending market) counts in the wallet's value but is neither counted by the health rule nor
  seizable.
* A ``LENDING`` account carries its venue's liquidation terms: ``bonus``, the liquidation bonus net of 1 (0.05 for
  10,500 bps), ``close_factor``, the share of the debt one liquidation call may repay, and ``full_close_hf``, the
  health at or below which a call may repay all of it. An ``ISOLATED`` account carries ``lif``, its liquidation
  incentive factor (collateral seized per unit of debt repaid). The venue's own module (``riskcore.venues``) gives
  these figures; the engines apply them as they are.

Which venue an account belongs to, and so which rule it gets, is the venue's own module's business
(``aggregator/venues/<venue>/risk.py`` builds the specs); the rules here are generic.

Ordering
--------
Accounts are sorted by (wallet, venue) and positions by account, so that per-account, per-venue and per-wallet
sums are contiguous segments (``np.add.reduceat``). The constructors sort; :meth:`Book.from_arrays` returns the
permutation it applied to accounts and positions in :attr:`Book.account_order` / :attr:`Book.position_order`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np
import numpy.typing as npt

from riskcore.clmm import amounts_float
from riskcore.options import black76_greeks, black76_price

__all__ = [
    "Book",
    "IsolatedMarketSpec",
    "Kind",
    "LendingAccountSpec",
    "LpSpec",
    "OptionSpec",
    "PerpAccountSpec",
    "Rule",
    "SpotSpec",
    "WalletSpec",
    "lp_value_usd",
    "option_value_usd",
]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.intp]

class Kind(IntEnum):
    """What a position is."""

    COLLATERAL = 0
    DEBT = 1
    PERP = 2
    LP = 3
    SPOT = 4
    OPTION = 5


class Rule(IntEnum):
    """Which venue rule decides when an account is liquidated, and how."""

    NONE = 0
    LENDING = 1
    ISOLATED = 2
    PERP = 3


_ALLOWED_KINDS: dict[Rule, frozenset[Kind]] = {
    Rule.NONE: frozenset({Kind.LP, Kind.SPOT, Kind.OPTION}),
    Rule.LENDING: frozenset({Kind.COLLATERAL, Kind.DEBT}),
    Rule.ISOLATED: frozenset({Kind.COLLATERAL, Kind.DEBT}),
    Rule.PERP: frozenset({Kind.PERP}),
}


# --- per-wallet specifications (tests, small books) ----------------------------------------------------
@dataclass(frozen=True, slots=True)
class LendingAccountSpec:
    """One wallet's pooled lending account: collateral ``asset → (amount, LT)``, debt ``asset → amount``, and the
    venue's liquidation terms (``bonus`` net of 1, ``close_factor``, ``full_close_hf``: see the module notes).

    A venue module builds it with its own terms (e.g. ``riskcore.venues.<venue>.account_spec``).
    """

    collateral: Mapping[str, tuple[float, float]]
    debt: Mapping[str, float]
    bonus: float
    close_factor: float
    full_close_hf: float
    venue: str = "lending"


@dataclass(frozen=True, slots=True)
class IsolatedMarketSpec:
    """One wallet's position in one isolated lending market (amounts in whole tokens; LLTV a fraction) and the
    market's liquidation incentive factor ``lif`` (≥ 1), as its venue's rule gives it."""

    collateral_asset: str
    collateral: float
    loan_asset: str
    debt: float
    lltv: float
    lif: float
    venue: str = "isolated"


@dataclass(frozen=True, slots=True)
class PerpAccountSpec:
    """One wallet's cross-margin perp account: ``cash_usd`` and ``asset → (signed size, maintenance rate)``."""

    cash_usd: float
    positions: Mapping[str, tuple[float, float]]
    venue: str = "perp"


@dataclass(frozen=True, slots=True)
class LpSpec:
    """A concentrated-liquidity range: human liquidity ``L_h`` and the range in token1 per token0 (never liquidated)."""

    token0: str
    token1: str
    liquidity: float
    price_lower: float
    price_upper: float
    venue: str = "lp"


@dataclass(frozen=True, slots=True)
class SpotSpec:
    """Tokens held outside any venue (never liquidated)."""

    asset: str
    amount: float
    venue: str = "wallet"


@dataclass(frozen=True, slots=True)
class OptionSpec:
    """A European option on ``underlying`` (Black-76 on the USD price; never liquidated).

    ``quantity`` is signed contracts on one unit each (long > 0, written < 0); ``strike_usd`` USD per unit;
    ``expiry_years`` time to expiry (ACT/365); ``vol`` annualized implied volatility (0.6 = 60%).
    """

    underlying: str
    quantity: float
    strike_usd: float
    expiry_years: float
    vol: float
    is_call: bool
    venue: str = "options"


AccountSpec = LendingAccountSpec | IsolatedMarketSpec | PerpAccountSpec | LpSpec | SpotSpec | OptionSpec


@dataclass(frozen=True, slots=True)
class WalletSpec:
    """A wallet and what it holds; each entry becomes one account (LP, spot and option entries of one venue share
    one)."""

    name: str
    accounts: Sequence[AccountSpec] = ()


# --- the book -----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Book:
    """Positions of many wallets (see the module docstring for the model, units and ordering).

    Attributes
    ----------
    wallets : tuple of str, (W,)
    underlyings : tuple of str, (U,)
    venues : tuple of str, (V,)
    price_usd : ndarray of shape (U,)
        Current USD price of each underlying.
    stable : ndarray of shape (U,), bool
        Underlyings held still by the uniform-move analysis (stablecoins); scenario sets may omit them.
    pos_account, pos_wallet, pos_underlying, pos_underlying2 : ndarray of shape (P,), int
        ``pos_underlying2`` is token1 of an LP position, −1 otherwise.
    pos_kind : ndarray of shape (P,), int8 (:class:`Kind`)
    pos_quantity : ndarray of shape (P,)
        Signed whole units (LP: human liquidity).
    pos_threshold : ndarray of shape (P,)
        Collateral: the liquidation threshold or LLTV (fraction); 0 elsewhere.
    pos_mmr : ndarray of shape (P,)
        Perp maintenance margin rate (fraction); 0 elsewhere.
    pos_sqrt_lower, pos_sqrt_upper : ndarray of shape (P,)
        LP range in ``sqrt(token1 per token0)``; ``nan`` elsewhere.
    pos_strike, pos_expiry, pos_vol : ndarray of shape (P,)
        Option strike (USD), time to expiry (years) and volatility; ``nan``, 0 and 0 elsewhere.
    pos_is_call : ndarray of shape (P,), bool
        Option is a call (False elsewhere).
    acc_wallet, acc_venue : ndarray of shape (A,), int
    acc_rule : ndarray of shape (A,), int8 (:class:`Rule`)
    acc_bonus : ndarray of shape (A,)
        Pooled lending liquidation bonus (0.05); 0 elsewhere.
    acc_close_factor, acc_full_close_hf : ndarray of shape (A,)
        Pooled lending close factor and the HF at or below which it is 100%; 1 elsewhere.
    acc_lif : ndarray of shape (A,)
        Isolated-market liquidation incentive factor; 1 elsewhere.
    acc_cash_usd : ndarray of shape (A,)
        Perp account cash (equity = cash + Σ size × price); 0 elsewhere.
    account_order, position_order : ndarray, int
        The permutation the constructor applied to the accounts / positions it was given.
    """

    wallets: tuple[str, ...]
    underlyings: tuple[str, ...]
    venues: tuple[str, ...]
    price_usd: F64
    stable: npt.NDArray[np.bool_]
    pos_account: I64
    pos_wallet: I64
    pos_underlying: I64
    pos_underlying2: I64
    pos_kind: npt.NDArray[np.int8]
    pos_quantity: F64
    pos_threshold: F64
    pos_mmr: F64
    pos_sqrt_lower: F64
    pos_sqrt_upper: F64
    pos_strike: F64
    pos_expiry: F64
    pos_vol: F64
    pos_is_call: npt.NDArray[np.bool_]
    acc_wallet: I64
    acc_venue: I64
    acc_rule: npt.NDArray[np.int8]
    acc_bonus: F64
    acc_close_factor: F64
    acc_full_close_hf: F64
    acc_lif: F64
    acc_cash_usd: F64
    account_order: I64 = field(repr=False)
    position_order: I64 = field(repr=False)

    @property
    def n_wallets(self) -> int:
        return len(self.wallets)

    @property
    def n_accounts(self) -> int:
        return int(self.acc_wallet.shape[0])

    @property
    def n_positions(self) -> int:
        return int(self.pos_account.shape[0])

    @property
    def n_underlyings(self) -> int:
        return len(self.underlyings)

    def position_value_usd(self, price_usd: npt.ArrayLike | None = None) -> F64:
        """USD value of each position at ``price_usd`` (shape (U,); default the book's prices), shape (P,)."""
        px = self.price_usd if price_usd is None else np.asarray(price_usd, dtype=np.float64)
        value = self.pos_quantity * px[self.pos_underlying]
        lp = np.nonzero(self.pos_kind == Kind.LP)[0]
        if lp.size:
            p0 = px[self.pos_underlying[lp]]
            p1 = px[self.pos_underlying2[lp]]
            value[lp] = lp_value_usd(
                self.pos_quantity[lp], self.pos_sqrt_lower[lp], self.pos_sqrt_upper[lp], p0, p1
            )
        opt = np.nonzero(self.pos_kind == Kind.OPTION)[0]
        if opt.size:
            value[opt] = option_value_usd(self.pos_quantity[opt], px[self.pos_underlying[opt]], self.pos_strike[opt],
                                          self.pos_expiry[opt], self.pos_vol[opt], self.pos_is_call[opt])
        return np.asarray(value, dtype=np.float64)

    def factor_exposure_usd(self) -> F64:
        """USD delta of each wallet to each underlying, shape (W, U): ``Σ quantity × price`` per factor, with a
        A concentrated range split into its two legs (``x × price0`` to token0's factor, ``y × price1`` to token1's)
        and an option counted at its Black-76 delta (``quantity × delta × price``)."""
        value = self.pos_quantity * self.price_usd[self.pos_underlying]
        out = np.zeros((self.n_wallets, self.n_underlyings))
        opt = np.nonzero(self.pos_kind == Kind.OPTION)[0]
        if opt.size:
            delta = black76_greeks(self.price_usd[self.pos_underlying[opt]], self.pos_strike[opt],
                                   self.pos_expiry[opt], self.pos_vol[opt], self.pos_is_call[opt]).delta
            value[opt] *= delta
        lp = self.pos_kind == Kind.LP
        np.add.at(out, (self.pos_wallet[~lp], self.pos_underlying[~lp]), value[~lp])
        idx = np.nonzero(lp)[0]
        if idx.size:
            p0 = self.price_usd[self.pos_underlying[idx]]
            p1 = self.price_usd[self.pos_underlying2[idx]]
            x, y = amounts_float(self.pos_quantity[idx], np.sqrt(p0 / p1), self.pos_sqrt_lower[idx],
                                 self.pos_sqrt_upper[idx])
            np.add.at(out, (self.pos_wallet[idx], self.pos_underlying[idx]), x * p0)
            np.add.at(out, (self.pos_wallet[idx], self.pos_underlying2[idx]), y * p1)
        return out

    def wallet_equity_usd(self, price_usd: npt.ArrayLike | None = None) -> F64:
        """Each wallet's equity: its positions' values plus its perp accounts' cash, USD, shape (W,)."""
        v = np.bincount(self.pos_wallet, weights=self.position_value_usd(price_usd), minlength=self.n_wallets)
        c = np.bincount(self.acc_wallet, weights=self.acc_cash_usd, minlength=self.n_wallets)
        return np.asarray(v + c, dtype=np.float64)

    # --- constructors ---------------------------------------------------------------------------------
    @classmethod
    def from_arrays(
        cls,
        *,
        wallets: Sequence[str],
        underlyings: Sequence[str],
        venues: Sequence[str],
        price_usd: npt.ArrayLike,
        pos_account: npt.ArrayLike,
        pos_underlying: npt.ArrayLike,
        pos_kind: npt.ArrayLike,
        pos_quantity: npt.ArrayLike,
        acc_wallet: npt.ArrayLike,
        acc_venue: npt.ArrayLike,
        acc_rule: npt.ArrayLike,
        stable: npt.ArrayLike | None = None,
        pos_underlying2: npt.ArrayLike | None = None,
        pos_threshold: npt.ArrayLike | None = None,
        pos_mmr: npt.ArrayLike | None = None,
        pos_sqrt_lower: npt.ArrayLike | None = None,
        pos_sqrt_upper: npt.ArrayLike | None = None,
        pos_strike: npt.ArrayLike | None = None,
        pos_expiry: npt.ArrayLike | None = None,
        pos_vol: npt.ArrayLike | None = None,
        pos_is_call: npt.ArrayLike | None = None,
        acc_bonus: npt.ArrayLike | None = None,
        acc_close_factor: npt.ArrayLike | None = None,
        acc_full_close_hf: npt.ArrayLike | None = None,
        acc_lif: npt.ArrayLike | None = None,
        acc_cash_usd: npt.ArrayLike | None = None,
    ) -> Book:
        """Build a book from flat arrays (any order); validates, then sorts accounts by (wallet, venue) and
        positions by account. The liquidation terms are read for the accounts whose rule uses them:
        ``acc_bonus`` (default 0), ``acc_close_factor`` and ``acc_full_close_hf`` (default 1: one call repays the
        whole debt) for ``LENDING``, ``acc_lif`` (default 1: no incentive) for ``ISOLATED``; ``pos_strike`` (> 0),
        ``pos_expiry`` (≥ 0), ``pos_vol`` (≥ 0) and ``pos_is_call`` for ``OPTION`` positions only.
        """
        u = len(underlyings)
        px = np.asarray(price_usd, dtype=np.float64).reshape(-1)
        if px.shape != (u,):
            raise ValueError(f"price_usd must have shape ({u},)")
        if not np.all(np.isfinite(px) & (px > 0)):
            raise ValueError("prices must be positive and finite")
        st = np.zeros(u, dtype=bool) if stable is None else np.asarray(stable, dtype=bool).reshape(-1)
        if st.shape != (u,):
            raise ValueError(f"stable must have shape ({u},)")

        acc_w = np.asarray(acc_wallet, dtype=np.intp).reshape(-1)
        a = acc_w.shape[0]
        acc_v = np.asarray(acc_venue, dtype=np.intp).reshape(-1)
        rule = np.asarray(acc_rule, dtype=np.int8).reshape(-1)

        def acc_arr(x: npt.ArrayLike | None, default: float) -> F64:
            out = np.full(a, default) if x is None else np.asarray(x, dtype=np.float64).reshape(-1)
            if out.shape != (a,):
                raise ValueError(f"account arrays must have shape ({a},)")
            return np.asarray(out, dtype=np.float64)

        p_acc = np.asarray(pos_account, dtype=np.intp).reshape(-1)
        p = p_acc.shape[0]

        def pos_arr(x: npt.ArrayLike | None, default: float) -> F64:
            out = np.full(p, default) if x is None else np.asarray(x, dtype=np.float64).reshape(-1)
            if out.shape != (p,):
                raise ValueError(f"position arrays must have shape ({p},)")
            return np.asarray(out, dtype=np.float64)

        p_und = np.asarray(pos_underlying, dtype=np.intp).reshape(-1)
        p_und2 = (
            np.full(p, -1, dtype=np.intp)
            if pos_underlying2 is None
            else np.asarray(pos_underlying2, dtype=np.intp).reshape(-1)
        )
        kind = np.asarray(pos_kind, dtype=np.int8).reshape(-1)
        qty = pos_arr(pos_quantity, 0.0)
        thr = pos_arr(pos_threshold, 0.0)
        mmr = pos_arr(pos_mmr, 0.0)
        s_lo = pos_arr(pos_sqrt_lower, math.nan)
        s_hi = pos_arr(pos_sqrt_upper, math.nan)
        strike = pos_arr(pos_strike, math.nan)
        expiry = pos_arr(pos_expiry, 0.0)
        vol = pos_arr(pos_vol, 0.0)
        is_call = np.zeros(p, dtype=bool) if pos_is_call is None else np.asarray(pos_is_call, dtype=bool).reshape(-1)
        if is_call.shape != (p,):
            raise ValueError(f"position arrays must have shape ({p},)")
        bonus = acc_arr(acc_bonus, 0.0)
        cf = acc_arr(acc_close_factor, 1.0)
        full_hf = acc_arr(acc_full_close_hf, 1.0)
        cash = acc_arr(acc_cash_usd, 0.0)

        for name, arr in (("acc_venue", acc_v), ("acc_rule", rule)):
            if arr.shape != (a,):
                raise ValueError(f"{name} must have shape ({a},)")
        for name, arr2 in (("pos_underlying", p_und), ("pos_underlying2", p_und2), ("pos_kind", kind)):
            if arr2.shape != (p,):
                raise ValueError(f"{name} must have shape ({p},)")
        if a and (acc_w.min() < 0 or acc_w.max() >= len(wallets)):
            raise ValueError("acc_wallet out of range")
        if a and (acc_v.min() < 0 or acc_v.max() >= len(venues)):
            raise ValueError("acc_venue out of range")
        if p and (p_acc.min() < 0 or p_acc.max() >= a):
            raise ValueError("pos_account out of range")
        if p and (p_und.min() < 0 or p_und.max() >= u):
            raise ValueError("pos_underlying out of range")
        if not np.isin(rule, [int(r) for r in Rule]).all():
            raise ValueError("unknown account rule")
        if not np.isin(kind, [int(k) for k in Kind]).all():
            raise ValueError("unknown position kind")
        if not np.all(np.isfinite(qty)):
            raise ValueError("quantities must be finite")

        # kinds must fit their account's rule; signs and parameters must make sense
        p_rule = rule[p_acc] if p else np.zeros(0, dtype=np.int8)
        for r, kinds in _ALLOWED_KINDS.items():
            bad = (p_rule == r) & ~np.isin(kind, [int(k) for k in kinds])
            if bad.any():
                raise ValueError(f"positions of kinds {sorted(set(kind[bad].tolist()))} in a {r.name} account")
        if np.any((kind == Kind.COLLATERAL) & (qty < 0)) or np.any((kind == Kind.DEBT) & (qty > 0)):
            raise ValueError("collateral quantities must be >= 0 and debt quantities <= 0")
        if np.any((kind == Kind.COLLATERAL) & ((thr < 0) | (thr >= 1))):
            raise ValueError("collateral thresholds must be in [0, 1)")
        if np.any((kind == Kind.PERP) & ((mmr < 0) | (mmr >= 1))):
            raise ValueError("maintenance rates must be in [0, 1)")
        lp = kind == Kind.LP
        if lp.any():
            if (p_und2[lp] < 0).any() or (p_und2[lp] >= u).any():
                raise ValueError("LP positions need a token1 underlying")
            if not np.all((s_lo[lp] > 0) & (s_hi[lp] > s_lo[lp]) & (qty[lp] >= 0)):
                raise ValueError("LP positions need 0 < sqrt_lower < sqrt_upper and liquidity >= 0")
        opt = kind == Kind.OPTION
        if opt.any() and not np.all(
            np.isfinite(strike[opt]) & (strike[opt] > 0) & np.isfinite(expiry[opt]) & (expiry[opt] >= 0)
            & np.isfinite(vol[opt]) & (vol[opt] >= 0)
        ):
            raise ValueError("option positions need strike > 0, expiry >= 0 and vol >= 0 (finite)")
        strike = np.where(opt, strike, math.nan)
        expiry = np.where(opt, expiry, 0.0)
        vol = np.where(opt, vol, 0.0)
        is_call = opt & is_call
        thr = np.where(kind == Kind.COLLATERAL, thr, 0.0)
        mmr = np.where(kind == Kind.PERP, mmr, 0.0)

        isolated = rule == Rule.ISOLATED
        lif = np.where(isolated, acc_arr(acc_lif, 1.0), 1.0)
        if np.any(isolated & ~(lif >= 1)):
            raise ValueError("ISOLATED accounts need an incentive factor >= 1")
        bonus = np.where(rule == Rule.LENDING, bonus, 0.0)
        cash = np.where(rule == Rule.PERP, cash, 0.0)
        if np.any((rule == Rule.LENDING) & ((bonus < 0) | (cf <= 0) | (cf > 1))):
            raise ValueError("LENDING accounts need bonus >= 0 and 0 < close factor <= 1")

        # sort accounts by (wallet, venue), positions by account
        a_order = np.lexsort((np.arange(a), acc_v, acc_w)).astype(np.intp)
        a_rank = np.empty(a, dtype=np.intp)
        a_rank[a_order] = np.arange(a, dtype=np.intp)
        new_acc = a_rank[p_acc]
        p_order = np.lexsort((np.arange(p), new_acc)).astype(np.intp)
        acc_w_s = acc_w[a_order]
        pos_acc_s = new_acc[p_order]
        return cls(
            wallets=tuple(wallets),
            underlyings=tuple(underlyings),
            venues=tuple(venues),
            price_usd=px.copy(),
            stable=st.copy(),
            pos_account=pos_acc_s,
            pos_wallet=acc_w_s[pos_acc_s] if p else np.zeros(0, dtype=np.intp),
            pos_underlying=p_und[p_order],
            pos_underlying2=p_und2[p_order],
            pos_kind=kind[p_order],
            pos_quantity=qty[p_order],
            pos_threshold=thr[p_order],
            pos_mmr=mmr[p_order],
            pos_sqrt_lower=s_lo[p_order],
            pos_sqrt_upper=s_hi[p_order],
            pos_strike=np.asarray(strike, dtype=np.float64)[p_order],
            pos_expiry=np.asarray(expiry, dtype=np.float64)[p_order],
            pos_vol=np.asarray(vol, dtype=np.float64)[p_order],
            pos_is_call=is_call[p_order],
            acc_wallet=acc_w_s,
            acc_venue=acc_v[a_order],
            acc_rule=rule[a_order],
            acc_bonus=bonus[a_order],
            acc_close_factor=cf[a_order],
            acc_full_close_hf=full_hf[a_order],
            acc_lif=np.asarray(lif, dtype=np.float64)[a_order],
            acc_cash_usd=cash[a_order],
            account_order=a_order,
            position_order=p_order,
        )

    @classmethod
    def from_wallets(
        cls,
        wallets: Sequence[WalletSpec],
        price_usd: Mapping[str, float],
        stable: Iterable[str] = ("USDC", "USDT", "DAI", "USDS", "USDe"),
    ) -> Book:
        """Build a book from per-wallet specifications (one account per spec; LP, spot and option specs of one
        wallet and venue share an account). ``price_usd`` must price every asset named; ``stable`` marks stablecoins.
        """
        underlyings = tuple(price_usd)
        u_index = {name: i for i, name in enumerate(underlyings)}
        venues: dict[str, int] = {}
        acc_w: list[int] = []
        acc_v: list[int] = []
        acc_rule: list[int] = []
        acc_bonus: list[float] = []
        acc_cf: list[float] = []
        acc_hf: list[float] = []
        acc_lif: list[float] = []
        acc_cash: list[float] = []
        p_acc: list[int] = []
        p_und: list[int] = []
        p_und2: list[int] = []
        p_kind: list[int] = []
        p_qty: list[float] = []
        p_thr: list[float] = []
        p_mmr: list[float] = []
        p_lo: list[float] = []
        p_hi: list[float] = []
        p_strike: list[float] = []
        p_expiry: list[float] = []
        p_vol: list[float] = []
        p_call: list[bool] = []

        def und(name: str) -> int:
            if name not in u_index:
                raise KeyError(f"no price for {name}")
            return u_index[name]

        def new_account(w: int, venue: str, rule: Rule, *, bonus: float = 0.0, cf: float = 1.0,
                        hf: float = 1.0, lif: float = 1.0, cash: float = 0.0) -> int:
            acc_w.append(w)
            acc_v.append(venues.setdefault(venue, len(venues)))
            acc_rule.append(int(rule))
            acc_bonus.append(bonus)
            acc_cf.append(cf)
            acc_hf.append(hf)
            acc_lif.append(lif)
            acc_cash.append(cash)
            return len(acc_w) - 1

        def add(acc: int, u: int, kind: Kind, qty: float, *, thr: float = 0.0, mmr: float = 0.0, u2: int = -1,
                lo: float = math.nan, hi: float = math.nan, strike: float = math.nan, expiry: float = 0.0,
                vol: float = 0.0, call: bool = False) -> None:
            p_acc.append(acc)
            p_und.append(u)
            p_und2.append(u2)
            p_kind.append(int(kind))
            p_qty.append(qty)
            p_thr.append(thr)
            p_mmr.append(mmr)
            p_lo.append(lo)
            p_hi.append(hi)
            p_strike.append(strike)
            p_expiry.append(expiry)
            p_vol.append(vol)
            p_call.append(call)

        for w, wallet in enumerate(wallets):
            standalone: dict[str, int] = {}
            for spec in wallet.accounts:
                if isinstance(spec, LendingAccountSpec):
                    a = new_account(w, spec.venue, Rule.LENDING, bonus=spec.bonus, cf=spec.close_factor,
                                    hf=spec.full_close_hf)
                    for asset, (amount, lt) in spec.collateral.items():
                        add(a, und(asset), Kind.COLLATERAL, float(amount), thr=float(lt))
                    for asset, amount in spec.debt.items():
                        add(a, und(asset), Kind.DEBT, -abs(float(amount)))
                elif isinstance(spec, IsolatedMarketSpec):
                    a = new_account(w, spec.venue, Rule.ISOLATED, lif=spec.lif)
                    add(a, und(spec.collateral_asset), Kind.COLLATERAL, float(spec.collateral), thr=spec.lltv)
                    add(a, und(spec.loan_asset), Kind.DEBT, -abs(float(spec.debt)))
                elif isinstance(spec, PerpAccountSpec):
                    a = new_account(w, spec.venue, Rule.PERP, cash=spec.cash_usd)
                    for asset, (size, rate) in spec.positions.items():
                        add(a, und(asset), Kind.PERP, float(size), mmr=float(rate))
                elif isinstance(spec, LpSpec):
                    if spec.venue not in standalone:
                        standalone[spec.venue] = new_account(w, spec.venue, Rule.NONE)
                    add(standalone[spec.venue], und(spec.token0), Kind.LP, float(spec.liquidity),
                        u2=und(spec.token1), lo=math.sqrt(spec.price_lower), hi=math.sqrt(spec.price_upper))
                elif isinstance(spec, OptionSpec):
                    if spec.venue not in standalone:
                        standalone[spec.venue] = new_account(w, spec.venue, Rule.NONE)
                    add(standalone[spec.venue], und(spec.underlying), Kind.OPTION, float(spec.quantity),
                        strike=float(spec.strike_usd), expiry=float(spec.expiry_years), vol=float(spec.vol),
                        call=bool(spec.is_call))
                else:
                    if spec.venue not in standalone:
                        standalone[spec.venue] = new_account(w, spec.venue, Rule.NONE)
                    add(standalone[spec.venue], und(spec.asset), Kind.SPOT, float(spec.amount))
        stable_set = set(stable)
        return cls.from_arrays(
            wallets=[w.name for w in wallets],
            underlyings=underlyings,
            venues=tuple(venues),
            price_usd=[price_usd[name] for name in underlyings],
            stable=[name in stable_set for name in underlyings],
            pos_account=np.asarray(p_acc, dtype=np.intp),
            pos_underlying=np.asarray(p_und, dtype=np.intp),
            pos_underlying2=np.asarray(p_und2, dtype=np.intp),
            pos_kind=np.asarray(p_kind, dtype=np.int8),
            pos_quantity=p_qty,
            pos_threshold=p_thr,
            pos_mmr=p_mmr,
            pos_sqrt_lower=p_lo,
            pos_sqrt_upper=p_hi,
            pos_strike=p_strike,
            pos_expiry=p_expiry,
            pos_vol=p_vol,
            pos_is_call=p_call,
            acc_wallet=np.asarray(acc_w, dtype=np.intp),
            acc_venue=np.asarray(acc_v, dtype=np.intp),
            acc_rule=np.asarray(acc_rule, dtype=np.int8),
            acc_bonus=acc_bonus,
            acc_close_factor=acc_cf,
            acc_full_close_hf=acc_hf,
            acc_lif=acc_lif,
            acc_cash_usd=acc_cash,
        )

    def wallet_slice(self, start: int, stop: int) -> Book:
        """The wallets ``start:stop`` as a book of their own (contiguous, since accounts and positions are sorted
        by wallet), e.g. to spread a large book over workers. Indexes are renumbered from 0."""
        start, stop = max(0, start), min(self.n_wallets, stop)
        a0, a1 = (int(i) for i in np.searchsorted(self.acc_wallet, [start, stop]))
        p0, p1 = (int(i) for i in np.searchsorted(self.pos_account, [a0, a1]))
        fields: dict[str, object] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if name.startswith("acc_"):
                value = value[a0:a1].copy()
            elif name.startswith("pos_"):
                value = value[p0:p1].copy()
            fields[name] = value
        fields["wallets"] = self.wallets[start:stop]
        fields["acc_wallet"] = self.acc_wallet[a0:a1] - start
        fields["pos_wallet"] = self.pos_wallet[p0:p1] - start
        fields["pos_account"] = self.pos_account[p0:p1] - a0
        fields["account_order"] = np.arange(a1 - a0, dtype=np.intp)
        fields["position_order"] = np.arange(p1 - p0, dtype=np.intp)
        return Book(**fields)  # type: ignore[arg-type]

    def with_state(self, pos_quantity: npt.ArrayLike, acc_cash_usd: npt.ArrayLike) -> Book:
        """The same book with other quantities (shape (P,)) and perp cash (shape (A,)), e.g. after liquidations."""
        q = np.asarray(pos_quantity, dtype=np.float64).reshape(-1)
        c = np.asarray(acc_cash_usd, dtype=np.float64).reshape(-1)
        if q.shape != self.pos_quantity.shape or c.shape != self.acc_cash_usd.shape:
            raise ValueError("state arrays must match the book's positions and accounts")
        fields = {name: getattr(self, name) for name in self.__dataclass_fields__}
        fields["pos_quantity"] = q.copy()
        fields["acc_cash_usd"] = c.copy()
        return Book(**fields)


def lp_value_usd(
    liquidity: npt.ArrayLike,
    sqrt_lower: npt.ArrayLike,
    sqrt_upper: npt.ArrayLike,
    price0_usd: npt.ArrayLike,
    price1_usd: npt.ArrayLike,
) -> F64:
    """USD value of concentrated-liquidity ranges with the pool arbitraged to ``P = price0 / price1``.

    ``x = L_h (1/s − 1/s_b)``, ``y = L_h (s − s_a)``, ``s = sqrt(P)`` clipped to ``[s_a, s_b]``; value
    ``x × price0 + y × price1``. All arguments broadcast (human liquidity; sqrt of token1 per token0; USD).
    """
    p0 = np.asarray(price0_usd, dtype=np.float64)
    p1 = np.asarray(price1_usd, dtype=np.float64)
    lo = np.asarray(sqrt_lower, dtype=np.float64)
    hi = np.asarray(sqrt_upper, dtype=np.float64)
    x, y = amounts_float(liquidity, np.sqrt(p0 / p1), lo, hi)
    return np.asarray(x * p0 + y * p1, dtype=np.float64)


def option_value_usd(
    quantity: npt.ArrayLike,
    price_usd: npt.ArrayLike,
    strike_usd: npt.ArrayLike,
    expiry_years: npt.ArrayLike,
    vol: npt.ArrayLike,
    is_call: npt.ArrayLike,
) -> F64:
    """USD value of option positions: ``quantity × black76_price(price_usd, strike, expiry, vol, is_call)``
    (forward at the USD price, ``r = 0``). All arguments broadcast."""
    px = black76_price(price_usd, strike_usd, expiry_years, vol, is_call)
    return np.asarray(np.asarray(quantity, dtype=np.float64) * px, dtype=np.float64)
