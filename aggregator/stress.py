"""Cascade replay of a real price path from the market data on a wallet's current book.

Today's prices are moved along the path's *relative* moves: the price of underlying ``u`` on day ``t`` is
``price_now[u] × close[u, t] / close[u, start]``. Stablecoins follow their own history (USDC's 2023-03-11
depeg is in the data) and stay at today's price without one; a staked or wrapped token without its own history
follows its risky factor's (stETH → ETH, WBTC → BTC: the basis holds); anything else without history follows
ETH's (listed under ``proxies``).
"""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np

from aggregator.marketdata import MarketDataNotFoundError, load_prices
from aggregator.risk import PROXY, RiskInputs
from riskcore.cascade import replay

__all__ = ["parse_window", "replay_path"]


def parse_window(text: str) -> tuple[str, str]:
    """``YYYY-MM-DD[:YYYY-MM-DD]`` → (start, end); a single day replays the day before it through it."""
    parts = text.split(":")
    if len(parts) not in (1, 2):
        raise ValueError(f"--replay takes YYYY-MM-DD or YYYY-MM-DD:YYYY-MM-DD, got {text!r}")
    try:
        days = [date.fromisoformat(p) for p in parts]
    except ValueError as exc:
        raise ValueError(f"--replay: not a date in {text!r} ({exc})") from None
    if len(days) == 1:
        end = days[0]
        start = date.fromordinal(end.toordinal() - 1)
    else:
        start, end = days
    if end <= start:
        raise ValueError(f"--replay: the end {end} must be after the start {start}")
    return start.isoformat(), end.isoformat()


def replay_path(inputs: RiskInputs, window: str) -> dict[str, Any]:
    """Replay the daily path of ``window`` on the wallet's book; returns the events, the equity path and the lowest
    venue health met on the path (``lowest_health``: venue, health, date; ``None`` when nothing is owed)."""
    start, end = parse_window(window)
    book = inputs.book
    model = inputs.factor_model

    def has_history(symbol: str) -> bool:
        try:
            load_prices([symbol], start=start, end=end)
        except (MarketDataNotFoundError, KeyError, ValueError):
            return False
        return True

    source: dict[str, str] = {}
    for i, f in enumerate(book.underlyings):
        r = model.risky_factor_of(i)
        fallback = model.factors[r] if r >= 0 and model.factors[r] != f else None
        if has_history(f):
            source[f] = f
        elif fallback is not None and has_history(fallback):
            source[f] = fallback
        else:
            source[f] = PROXY
    names = sorted(set(source.values()))
    history = load_prices(names, start=start, end=end)
    if len(history.dates) < 2:
        raise ValueError(f"--replay: the market data has fewer than two days in {start}..{end}")
    col = {s: i for i, s in enumerate(history.symbols)}
    rel = history.prices / history.prices[0]
    path = np.stack([book.price_usd[i] * rel[:, col[source[f]]] for i, f in enumerate(book.underlyings)], axis=1)
    held: set[str] = set()
    if book.stable.any():  # stablecoins without their own history stay at today's price
        for i, f in enumerate(book.underlyings):
            if book.stable[i] and source[f] != f:
                path[:, i] = book.price_usd[i]
                held.add(f)
    result = replay(book, path)
    dates = [str(d)[:10] for d in history.dates]
    lowest = None
    if result.account_health.size and np.isfinite(result.account_health).any():
        t, a = np.unravel_index(int(np.argmin(result.account_health)), result.account_health.shape)
        lowest = {"venue": book.venues[int(book.acc_venue[a])], "health": float(result.account_health[t, a]),
                  "date": dates[int(t)]}
    return {
        "lowest_health": lowest,
        "wallet": inputs.wallets[0],
        "start": dates[0],
        "end": dates[-1],
        "steps": len(dates),
        "proxies": {f: "held at today's price" if f in held else s for f, s in source.items() if s != f},
        "equity_start_usd": float(result.equity_usd[0, 0]),
        "equity_end_usd": float(result.equity_usd[-1, 0]),
        "equity_path_usd": [float(x) for x in result.equity_usd[:, 0]],
        "liquidation_loss_usd": float(result.liquidation_loss_usd[-1, 0]),
        "events": [
            {"date": dates[e.step], "step": e.step, "venue": e.venue, "rule": inputs.rule_labels.get(e.venue, e.rule),
             "loss_usd": e.loss_usd, "repaid_usd": e.repaid_usd, "seized_usd": e.seized_usd, "closed": e.closed}
            for e in result.events
        ],
    }
