"""Cascade replay: a price path applied to a book step by step, venues liquidating as their rules trip.

At each step ``t`` of a path of USD prices (T, U):

1. every account's health is re-evaluated by its venue's rule at the step's prices (the same rules as
   :mod:`riskcore.margin`: pooled lending ``HF < 1``, isolated markets ``C × LLTV < D``, perps
   ``equity < maintenance``);
2. every failing account is liquidated with its venue's mechanics at those prices
   (:func:`riskcore.margin.lending_liquidation` call after call, :func:`riskcore.margin.isolated_liquidation`,
   :func:`riskcore.margin.perp_liquidation_loss`), and the book is changed accordingly: lending collateral is
   seized and debt repaid pro rata across the account's reserves (quantities scaled), a liquidated perp account's
   positions are closed (sizes 0) and its cash becomes ``equity − penalty``;
3. the wallets' equity is recorded after the liquidations.

The next step starts from the changed book: closed positions no longer move, so a hedge that one venue carried
is gone for the others — a short perp liquidated on a spike no longer offsets the lending collateral that falls
afterwards. Within one step the venues act independently (each rule reads only its own account); events of a
step are listed in account order. Nothing accrues between steps (no funding, interest or fees).

Options (never liquidated) are revalued with Black-76 at each step's prices with today's volatility and time to
expiry: a path has no clock, so there is no time decay and no volatility shock along it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from riskcore.book import Book, Kind, Rule, lp_value_usd, option_value_usd
from riskcore.margin import isolated_liquidation, lending_liquidation, perp_liquidation_loss

__all__ = ["CascadeEvent", "CascadeResult", "replay"]

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class CascadeEvent:
    """One account liquidated at one step; USD."""

    step: int
    wallet: str
    account: int
    venue: str
    rule: str
    """``LENDING``, ``ISOLATED`` or ``PERP`` (:class:`riskcore.book.Rule`)."""
    loss_usd: float
    """The penalty (liquidation bonus or incentive, perp margin lost)."""
    repaid_usd: float
    """Debt repaid by liquidators (lending); the notional closed (perps)."""
    seized_usd: float
    """Collateral seized (lending); 0 for perps."""
    closed: bool
    """The account has nothing left at risk (debt or collateral gone; perps: always)."""


@dataclass(frozen=True, slots=True)
class CascadeResult:
    """What a replay did.

    Attributes
    ----------
    events : tuple of CascadeEvent
        In step order, then account order.
    equity_usd : ndarray of shape (T, W)
        Each wallet's equity after the step's liquidations.
    liquidation_loss_usd : ndarray of shape (T, W)
        Cumulative penalties.
    book : Book
        The book after the last step (quantities and perp cash changed).
    account_health : ndarray of shape (T, A)
        Each account's health at the step's prices, before the step's liquidations: threshold-weighted
        collateral over debt (lending), equity over maintenance margin (perps); ``inf`` with nothing owed.
    """

    events: tuple[CascadeEvent, ...]
    equity_usd: F64
    liquidation_loss_usd: F64
    book: Book
    account_health: F64


def _equity(book: Book, q: F64, cash: F64, px: F64) -> F64:
    value = q * px[book.pos_underlying]
    lp = np.nonzero(book.pos_kind == Kind.LP)[0]
    if lp.size:
        value[lp] = lp_value_usd(q[lp], book.pos_sqrt_lower[lp], book.pos_sqrt_upper[lp],
                                 px[book.pos_underlying[lp]], px[book.pos_underlying2[lp]])
    opt = np.nonzero(book.pos_kind == Kind.OPTION)[0]
    if opt.size:
        value[opt] = option_value_usd(q[opt], px[book.pos_underlying[opt]], book.pos_strike[opt],
                                      book.pos_expiry[opt], book.pos_vol[opt], book.pos_is_call[opt])
    return np.asarray(
        np.bincount(book.pos_wallet, weights=value, minlength=book.n_wallets)
        + np.bincount(book.acc_wallet, weights=cash, minlength=book.n_wallets),
        dtype=np.float64,
    )


def replay(book: Book, price_path_usd: npt.ArrayLike) -> CascadeResult:
    """Replay ``price_path_usd`` (T, U), USD prices of the book's underlyings in its order, on ``book``.

    Returns
    -------
    CascadeResult
        The liquidations in order, the equity path and the book at the end.
    """
    path = np.asarray(price_path_usd, dtype=np.float64)
    if path.ndim != 2 or path.shape[1] != book.n_underlyings:
        raise ValueError(f"price_path_usd must have shape (T, {book.n_underlyings})")
    if not np.all(np.isfinite(path) & (path > 0)):
        raise ValueError("prices must be positive and finite")
    n_t, n_a = path.shape[0], book.n_accounts
    q = book.pos_quantity.copy()
    cash = book.acc_cash_usd.copy()
    acc = book.pos_account
    kind = book.pos_kind
    seizable = (kind == Kind.COLLATERAL) & (book.pos_threshold > 0)
    debt = kind == Kind.DEBT
    perp = kind == Kind.PERP
    rule = book.acc_rule
    lending_acc = (rule == Rule.LENDING) | (rule == Rule.ISOLATED)
    equity = np.zeros((n_t, book.n_wallets))
    lost = np.zeros((n_t, book.n_wallets))
    health = np.full((n_t, n_a), np.inf)
    events: list[CascadeEvent] = []
    cum = np.zeros(book.n_wallets)

    def per_account(mask: npt.NDArray[np.bool_], values: F64) -> F64:
        return np.asarray(np.bincount(acc[mask], weights=values[mask], minlength=n_a), dtype=np.float64)

    for t in range(n_t):
        px = path[t]
        pv = q * px[book.pos_underlying]
        c = per_account(seizable, pv)
        w = per_account(seizable, pv * book.pos_threshold)
        d = per_account(debt, -pv)
        v = per_account(perp, pv)
        m = per_account(perp, np.abs(pv) * book.pos_mmr)
        open_perp = per_account(perp, (q != 0).astype(np.float64)) > 0
        e = cash + v
        with np.errstate(divide="ignore", invalid="ignore"):
            health[t] = np.where(lending_acc & (d > 0), w / np.where(d > 0, d, 1.0),
                                 np.where((rule == Rule.PERP) & open_perp & (m > 0), e / np.where(m > 0, m, 1.0),
                                          np.inf))
        fail_l = lending_acc & (w < d)
        fail_p = (rule == Rule.PERP) & open_perp & (e < m)
        fac_c = np.ones(n_a)
        fac_d = np.ones(n_a)
        step_loss = np.zeros(n_a)
        repaid = np.zeros(n_a)
        seized = np.zeros(n_a)
        closed = np.zeros(n_a, dtype=bool)
        acted = fail_p.copy()
        for r in (Rule.LENDING, Rule.ISOLATED):
            f = np.nonzero(fail_l & (rule == r))[0]
            if not f.size:
                continue
            if r == Rule.LENDING:
                out = lending_liquidation(c[f], w[f], d[f], book.acc_bonus[f], book.acc_close_factor[f],
                                       book.acc_full_close_hf[f])
            else:
                out = isolated_liquidation(c[f], w[f], d[f], book.acc_lif[f])
            fac_c[f] = np.where(c[f] > 0, out.collateral_left_usd / np.where(c[f] > 0, c[f], 1.0), 1.0)
            fac_d[f] = np.where(d[f] > 0, out.debt_left_usd / np.where(d[f] > 0, d[f], 1.0), 1.0)
            step_loss[f] = out.loss_usd
            repaid[f] = out.repaid_usd
            seized[f] = out.seized_usd
            closed[f] = (out.debt_left_usd <= 0) | (out.collateral_left_usd <= 0)
            acted[f] = out.calls > 0  # an account with nothing left to seize trips the rule but sees no liquidation
        fp = np.nonzero(fail_p)[0]
        if fp.size:
            step_loss[fp] = perp_liquidation_loss(e[fp], m[fp])
            repaid[fp] = per_account(perp, np.abs(pv))[fp]
            cash[fp] = e[fp] - step_loss[fp]
            closed[fp] = True
        q = np.where(seizable, q * fac_c[acc], q)
        q = np.where(debt, q * fac_d[acc], q)
        q = np.where(perp & fail_p[acc], 0.0, q)
        for a in np.nonzero(acted)[0].tolist():
            events.append(CascadeEvent(
                step=t,
                wallet=book.wallets[int(book.acc_wallet[a])],
                account=a,
                venue=book.venues[int(book.acc_venue[a])],
                rule=Rule(int(rule[a])).name,
                loss_usd=float(step_loss[a]),
                repaid_usd=float(repaid[a]),
                seized_usd=float(seized[a]),
                closed=bool(closed[a]),
            ))
        cum += np.bincount(book.acc_wallet, weights=step_loss, minlength=book.n_wallets)
        lost[t] = cum
        equity[t] = _equity(book, q, cash, px)
    return CascadeResult(tuple(events), equity, lost, book.with_state(q, cash), health)
