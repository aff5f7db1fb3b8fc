"""``xmargin backtest``: the rolling one-day VaR backtest of a book on the market data, from the command line.

The lead's CLI (:mod:`aggregator.cli`) adds the command with :func:`register`::

    from aggregator import backtest_cli
    backtest_cli.register(app)

What it runs is what ``docs/backtest.md`` reports (:mod:`aggregator.backtest_report`): a constant-USD-delta book,
rebalanced daily, on daily simple close-to-close returns; at every day from ``window`` on, the historical VaR over
the ``window`` days before and the EWMA delta-normal VaR (RiskMetrics λ = 0.94, seeded with the first 30 days)
are compared with the realized P&L; Kupiec POF, Christoffersen independence and conditional coverage are given
separately for the in-sample days (≤ 2022-12-31) and the out-of-sample days (2023-01-01 .. 2025-02-11).

Books: ``xmargin backtest ADDRESS`` backtests a tracked wallet's current book — its newest snapshot on every venue
(what ``xmargin risk`` reads), turned into a book by :func:`aggregator.risk.wallet_book`, as USD deltas per risk
factor (:meth:`riskcore.book.Book.factor_exposure_usd`: collateral and spot positive, debt negative, perps by size,
concentrated-liquidity ranges by their two legs). A factor without daily prices borrows a stand-in's (a stablecoin
USDC's, any other ETH's), said in ``notes``. ``--book hedged`` and ``--book eth`` are the report's canned books, on
the report's
price set (ETH, BTC, USDC aligned on their common dates), so their figures are those of ``docs/backtest.md``;
``--book custom`` takes ``--exposure SYM=USD`` (repeatable; USD deltas of one symbol add up) and aligns only the
symbols it names. Results are also given in words (``summary``), e.g. "no VaR exceedance in 2023-01-01 ..
2025-02-11". Usage errors — an unknown symbol, a malformed exposure, a confidence level outside (0, 1), a window
that does not fit the data, an address with ``--book`` — exit with code 2; missing market data, an untracked
wallet or one without snapshots exit with code 1.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console

if TYPE_CHECKING:
    from collections.abc import Callable

    from aggregator.config import Settings
    from db.store import Store
    from riskcore.backtest import CoverageTest

__all__ = [
    "BookChoice",
    "MarketDataError",
    "UsageError",
    "WalletBook",
    "WalletError",
    "parse_exposures",
    "register",
    "run_backtest",
    "wallet_book_exposures",
]

console = Console()
err = Console(stderr=True)

ALPHA_DEFAULT = 0.99
WINDOW_DEFAULT = 250


class BookChoice(StrEnum):
    """The books ``--book`` accepts."""

    hedged = "hedged"
    eth = "eth"
    custom = "custom"


class UsageError(ValueError):
    """Bad command-line input (exit code 2)."""


class MarketDataError(RuntimeError):
    """The market data cannot be read (exit code 1)."""


class WalletError(RuntimeError):
    """The wallet asked for is not tracked or has no snapshot yet (exit code 1)."""


STABLE_STAND_IN = "USDC"
"""Whose daily prices a stablecoin without its own stands in for."""
RISKY_STAND_IN = "ETH"
"""Whose daily prices any other factor without its own stands in for (as in :mod:`aggregator.risk`)."""


@dataclass(frozen=True)
class WalletBook:
    """A tracked wallet's current book as USD deltas per risk factor (before mapping to the price files)."""

    address: str
    label: str | None
    block: int | None
    factor_exposures_usd: dict[str, float]
    """USD delta per risk factor of the book (ETH, USDC, ...), from the newest snapshots."""
    stable: frozenset[str]
    """The factors that are stablecoins."""

    @property
    def name(self) -> str:
        from aggregator.render import short_hex

        short = short_hex(self.address)
        return f"wallet {self.label} {short}" if self.label else f"wallet {short}"


def wallet_book_exposures(store: Store, address: str) -> WalletBook:
    """``address``'s current book from ``store`` (its newest snapshot on every venue, as ``xmargin risk`` reads it).

    Raises
    ------
    WalletError
        The wallet is not tracked, or has no snapshot yet.
    """
    from aggregator.risk import wallet_book

    wallet = store.get_wallet(address)
    if wallet is None:
        raise WalletError(f"{address} is not tracked: `xmargin wallet add {address}` then `xmargin sync --once`")
    latest = store.latest_health(address)
    if not latest:
        raise WalletError(f"{address} has no snapshot yet: run `xmargin sync --once` (or `xmargin run`) first")
    types = {v.name: str(v.config.get("type", "")) for v in store.list_venues()}
    inputs = wallet_book(address, latest, types)
    deltas = inputs.book.factor_exposure_usd()[0] if inputs.book.n_wallets else []
    exposures = {f: float(d) for f, d in zip(inputs.factors, deltas, strict=True)}
    return WalletBook(address, wallet.label, inputs.block, exposures, inputs.stable)


def _fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def parse_exposures(items: list[str]) -> dict[str, float]:
    """``["ETH=400000", "BTC=2.5e5", "ETH=-1_000"]`` → ``{"ETH": 399000.0, "BTC": 250000.0}`` (symbols upper-cased).

    Raises
    ------
    UsageError
        On an item without exactly one ``=``, an empty symbol, or an amount that is not a finite number.
    """
    out: dict[str, float] = {}
    for item in items:
        sym, sep, amount = item.partition("=")
        sym = sym.strip().upper()
        if not sep or "=" in amount or not sym or not amount.strip():
            raise UsageError(f"malformed exposure {item!r}: expected SYMBOL=USD, e.g. ETH=400000")
        if not sym.isalnum():
            raise UsageError(f"malformed exposure {item!r}: the symbol must be letters and digits")
        try:
            usd = float(amount.strip())
        except ValueError:
            raise UsageError(f"malformed exposure {item!r}: {amount.strip()!r} is not a USD amount") from None
        if not math.isfinite(usd):
            raise UsageError(f"malformed exposure {item!r}: the USD amount must be finite")
        out[sym] = out.get(sym, 0.0) + usd
    return out


def _available_symbols(root: Path) -> list[str]:
    from aggregator.marketdata import ENV_VAR, MarketDataNotFoundError

    folder = root / "daily"
    if not folder.is_dir():
        raise MarketDataNotFoundError(
            f"market data not found: {folder} is not a directory (set ${ENV_VAR} to the folder holding daily/)"
        )
    return sorted(p.name.split("-USD_")[0] for p in folder.glob("*-USD_1d.csv"))


def _wallet_symbols(wallet: WalletBook, have: list[str]) -> tuple[tuple[str, ...], dict[str, float], list[str]]:
    """The wallet's factor deltas on the symbols that have daily prices (stand-ins for the others): (symbols,
    USD delta per symbol, notes in words). Factors with no delta are left out."""
    exposures: dict[str, float] = {}
    notes: list[str] = []
    for factor, usd in wallet.factor_exposures_usd.items():
        if usd == 0.0:
            continue
        symbol = factor
        if factor not in have:
            symbol = STABLE_STAND_IN if factor in wallet.stable else RISKY_STAND_IN
            if symbol not in have:
                raise MarketDataError(f"no daily prices for {factor} nor for its stand-in {symbol}")
            signed = f"{'-' if usd < 0 else ''}${abs(usd):,.0f}"
            notes.append(f"{factor} has no daily prices here; {symbol}'s stand in for its {signed} delta")
        exposures[symbol] = exposures.get(symbol, 0.0) + usd
    return tuple(exposures), exposures, notes


def _book(book: BookChoice | None, exposure: list[str]) -> tuple[str, tuple[str, ...], dict[str, float]]:
    """(name, symbols to load, USD delta per symbol)."""
    from aggregator.backtest_report import BOOKS, SYMBOLS

    if book is None:
        book = BookChoice.custom if exposure else BookChoice.hedged
    if book is not BookChoice.custom:
        if exposure:
            raise UsageError("--exposure describes a custom book: use it with --book custom (or without --book)")
        preset = BOOKS[0] if book is BookChoice.hedged else BOOKS[1]
        exposures = dict(zip(SYMBOLS, (float(v) for v in preset.exposures(SYMBOLS)), strict=True))
        return preset.name, SYMBOLS, exposures
    if not exposure:
        raise UsageError("--book custom needs at least one --exposure SYMBOL=USD")
    exposures = parse_exposures(exposure)
    return "custom", tuple(exposures), exposures


def _p(p: float) -> str:
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def _rejected(t: CoverageTest, level: float = 0.05) -> list[str]:
    return [name for name, p in (("POF", t.p_pof[0]), ("IND", t.p_ind[0]), ("CC", t.p_cc[0])) if p < level]


def _result(sample: str, method: str, t: CoverageTest | None, n_days: int) -> dict[str, Any]:
    if t is None:
        return {
            "sample": sample,
            "method": method,
            "days": n_days,
            "exceedances": 0,
            "expected": 0.0,
            "rate": None,
            "lr_pof": None,
            "p_pof": None,
            "lr_ind": None,
            "p_ind": None,
            "lr_cc": None,
            "p_cc": None,
            "transitions": None,
            "rejected": [],
        }
    n00, n01, n10, n11 = (int(c) for c in t.transitions[0])
    return {
        "sample": sample,
        "method": method,
        "days": int(t.n_obs[0]),
        "exceedances": int(t.n_exceed[0]),
        "expected": float(t.expected[0]),
        "rate": int(t.n_exceed[0]) / int(t.n_obs[0]),
        "lr_pof": float(t.lr_pof[0]),
        "p_pof": float(t.p_pof[0]),
        "lr_ind": float(t.lr_ind[0]),
        "p_ind": float(t.p_ind[0]),
        "lr_cc": float(t.lr_cc[0]),
        "p_cc": float(t.p_cc[0]),
        "transitions": {"n00": n00, "n01": n01, "n10": n10, "n11": n11},
        "rejected": _rejected(t),
    }


def run_backtest(
    book: BookChoice | None = None,
    exposure: list[str] | None = None,
    alpha: float = ALPHA_DEFAULT,
    window: int = WINDOW_DEFAULT,
    root: str | Path | None = None,
    wallet: WalletBook | None = None,
) -> dict[str, Any]:
    """The backtest as a JSON-ready document (what ``--json`` prints): of ``wallet``'s book when given (see
    :func:`wallet_book_exposures`; then ``book`` and ``exposure`` must be None), else of ``book``.

    Raises
    ------
    UsageError
        Bad input (unknown symbol, malformed exposure, alpha or window out of range).
    aggregator.marketdata.MarketDataNotFoundError
        No market-data directory.
    MarketDataError
        A malformed price file.
    """
    import numpy as np

    from aggregator.backtest_report import IN_SAMPLE_END, OUT_OF_SAMPLE
    from aggregator.marketdata import MarketDataNotFoundError, default_root, load_prices
    from riskcore.backtest import coverage_test, rolling_var
    from riskcore.ewma import DEFAULT_N_SEED, RISKMETRICS_LAMBDA

    if not 0.0 < alpha < 1.0:
        raise UsageError(f"--alpha must be in (0, 1), got {alpha}")
    if wallet is not None and (book is not None or exposure):
        raise UsageError("ADDRESS backtests that wallet's book: leave out --book and --exposure")
    base = Path(root).expanduser() if root is not None else default_root()
    notes: list[str] = []
    if wallet is not None:
        have = _available_symbols(base)
        symbols, exposures, notes = _wallet_symbols(wallet, have)
        name = wallet.name
        if not symbols:
            return _flat_wallet_document(wallet, alpha, window)
    else:
        name, symbols, exposures = _book(book, exposure or [])
        have = _available_symbols(base)
    unknown = [s for s in symbols if s not in have]
    if unknown:
        raise UsageError(
            f"unknown symbol{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
            f"(daily prices exist for: {', '.join(have)})"
        )
    try:
        prices = load_prices(symbols, "1d", root=base)
    except MarketDataNotFoundError:
        raise
    except ValueError as exc:  # a malformed price file: the data's fault, not the user's
        raise MarketDataError(str(exc)) from exc
    returns = prices.simple_returns()
    dates = prices.dates[1:]
    if not DEFAULT_N_SEED <= window < returns.shape[0]:
        raise UsageError(
            f"--window must be in [{DEFAULT_N_SEED}, {returns.shape[0] - 1}] for the "
            f"{returns.shape[0]} daily returns of {', '.join(symbols)}, got {window}"
        )
    e = np.array([exposures[s] for s in symbols], dtype=np.float64)
    rv = rolling_var(returns, e, alpha=alpha, window=window, lam=RISKMETRICS_LAMBDA)
    eval_dates = dates[rv.index]
    samples = {
        "in-sample": eval_dates <= IN_SAMPLE_END,
        "out-of-sample": (eval_dates >= OUT_OF_SAMPLE[0]) & (eval_dates <= OUT_OF_SAMPLE[1]),
    }
    methods = {"historical": rv.exceed_historical, "ewma": rv.exceed_ewma}
    results = []
    sample_info = {}
    for sample, mask in samples.items():
        n_days = int(mask.sum())
        days = eval_dates[mask]
        sample_info[sample] = {
            "first": str(days[0]) if n_days else None,
            "last": str(days[-1]) if n_days else None,
            "days": n_days,
        }
        for method, exceed in methods.items():
            test = coverage_test(exceed, alpha, mask) if n_days else None
            results.append(_result(sample, method, test, n_days))
    doc: dict[str, Any] = {
        "book": name,
        "exposures_usd": {s: exposures[s] for s in symbols},
        "alpha": alpha,
        "window": window,
        "ewma_lambda": RISKMETRICS_LAMBDA,
        "data": {
            "symbols": list(symbols),
            "first": str(prices.dates[0]),
            "last": str(prices.dates[-1]),
            "days": int(prices.dates.size),
            "gaps": int(prices.gaps().size),
        },
        "samples": sample_info,
        "results": results,
    }
    if wallet is not None:
        doc["wallet"] = _wallet_fields(wallet)
        doc["notes"] = notes
    doc["summary"] = _summary(doc)
    return doc


def _wallet_fields(wallet: WalletBook) -> dict[str, Any]:
    return {"address": wallet.address, "label": wallet.label, "block": wallet.block,
            "factor_exposures_usd": dict(wallet.factor_exposures_usd)}


def _flat_wallet_document(wallet: WalletBook, alpha: float, window: int) -> dict[str, Any]:
    """A wallet whose book has no price exposure: nothing to backtest, said in words."""
    from riskcore.ewma import RISKMETRICS_LAMBDA

    sentence = (f"nothing to backtest: the book of {wallet.name} has no price exposure at block {wallet.block} "
                "(no open position with a USD delta)")
    return {"book": wallet.name, "exposures_usd": {}, "alpha": alpha, "window": window,
            "ewma_lambda": RISKMETRICS_LAMBDA, "data": None, "samples": {}, "results": [],
            "wallet": _wallet_fields(wallet), "notes": [], "summary": [sentence]}


def _summary(doc: dict[str, Any]) -> list[str]:
    """The results in words: a sample without days, and every (sample, method) without a VaR exceedance."""
    lines: list[str] = []
    for sample, info in doc["samples"].items():
        if not info["days"]:
            lines.append(f"no {sample} days: the {doc['window']}-day window ends after the {sample} period "
                         f"(daily data {doc['data']['first']} .. {doc['data']['last']})")
    for r in doc["results"]:
        info = doc["samples"][r["sample"]]
        if info["days"] and r["exceedances"] == 0:
            method = f"historical {doc['window']}d" if r["method"] == "historical" else "EWMA"
            lines.append(f"no VaR exceedance in {info['first']} .. {info['last']} ({r['sample']}, {method} "
                         f"{100 * doc['alpha']:g}% VaR, {info['days']} days; {r['expected']:.1f} expected)")
    return lines


def _print_table(doc: dict[str, Any]) -> None:
    from rich import box
    from rich.table import Table

    if not doc["results"]:  # nothing was backtested: say why, no empty table
        for line in doc["summary"]:
            console.print(line, highlight=False)
        return
    net = ", ".join(f"{s} {v:,.0f}" for s, v in doc["exposures_usd"].items() if v)
    data = doc["data"]
    at_block = f" at block {doc['wallet']['block']}" if doc.get("wallet") else ""
    title = (
        f"{100 * doc['alpha']:g}% one-day VaR backtest: {doc['book']}{at_block} ({net or 'flat'}); "
        f"daily {', '.join(data['symbols'])} {data['first']} .. {data['last']}"
    )
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("", no_wrap=True)
    for r in doc["results"]:
        method = f"hist. {doc['window']}d" if r["method"] == "historical" else f"EWMA λ={doc['ewma_lambda']:g}"
        table.add_column(f"{r['sample']}\n{method}", justify="right")

    def cell(r: dict[str, Any], key: str) -> str:
        if r["lr_pof"] is None:
            return str(r["days"]) if key == "days" else "—"
        if key == "clustered":
            t = r["transitions"]
            return f"{t['n11']}/{t['n10'] + t['n11']}"
        value = r[key]
        if key in ("days", "exceedances"):
            return str(value)
        if key == "expected":
            return f"{value:.1f}"
        if key == "rate":
            return f"{100 * value:.2f}%"
        if key == "rejected":
            return ", ".join(value) or "—"
        return _p(value) if key.startswith("p_") else f"{value:.2f}"

    rows = (
        ("days", "days"),
        ("exceedances", "exceedances"),
        ("expected", "expected"),
        ("rate", "rate"),
        ("Kupiec LR", "lr_pof"),
        ("  p-value", "p_pof"),
        ("clustered", "clustered"),
        ("Christoffersen LR", "lr_ind"),
        ("  p-value", "p_ind"),
        ("cond. coverage LR", "lr_cc"),
        ("  p-value", "p_cc"),
        ("rejected (5%)", "rejected"),
    )
    for label, key in rows:
        table.add_row(label, *(cell(r, key) for r in doc["results"]))
    console.print(table)
    for line in (*doc.get("notes", ()), *doc["summary"]):
        console.print(line, highlight=False)
    periods = "; ".join(
        f"{name} {info['first']} .. {info['last']}" for name, info in doc["samples"].items() if info["days"]
    )
    console.print(
        f"{periods}. Exceedance: loss > VaR. LR_pof (Kupiec) and LR_ind (Christoffersen) ~ χ²(1), "
        "LR_cc = LR_pof + LR_ind ~ χ²(2); clustered: n11/(n10 + n11), exceedances followed by another.",
        highlight=False,
    )


class _Ctx:
    """How the command reaches the configuration and the store (set by :func:`register`)."""

    settings: Callable[[], Settings] | None = None
    store: Callable[[Settings], Store] | None = None
    address: Callable[[str], str] | None = None


def _wallet(address: str) -> WalletBook:
    """The tracked wallet's book, through the callbacks :func:`register` was given (defaults: the config file
    and its store)."""
    from aggregator.config import ConfigError, load_settings
    from connectors.errors import InvalidAddressError
    from connectors.types import checksum
    from db.store import Store

    if _Ctx.address is not None:
        addr = _Ctx.address(address)  # the CLI's own check: exits 2 with its message
    else:
        try:
            addr = checksum(address)
        except InvalidAddressError as exc:
            raise UsageError(str(exc)) from None
    if _Ctx.settings is not None:
        settings = _Ctx.settings()
    else:
        try:
            settings = load_settings()
        except ConfigError as exc:
            raise UsageError(str(exc)) from None
    opened = _Ctx.store(settings) if _Ctx.store is not None else Store.open(settings.db_url)
    with opened as store:
        return wallet_book_exposures(store, addr)


def backtest(
    address: Annotated[
        str | None,
        typer.Argument(help="A tracked wallet: backtest its current book (its newest snapshots; see `xmargin risk`)."),
    ] = None,
    book: Annotated[
        BookChoice | None,
        typer.Option("--book", help="hedged or eth (the books of docs/backtest.md), or custom (with --exposure)."),
    ] = None,
    exposure: Annotated[
        list[str] | None,
        typer.Option(
            "--exposure",
            "-e",
            metavar="SYM=USD",
            help="USD delta of a custom book, e.g. ETH=400000 (repeatable; implies --book custom).",
        ),
    ] = None,
    alpha: Annotated[float, typer.Option("--alpha", help="VaR confidence level, in (0, 1).")] = ALPHA_DEFAULT,
    window: Annotated[int, typer.Option("--window", help="Historical look-back in days.")] = WINDOW_DEFAULT,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Backtest one-day VaR (historical and EWMA) of a tracked wallet's book (ADDRESS) or a canned one (--book)
    against realized P&L: in- and out-of-sample coverage."""
    from aggregator.marketdata import MarketDataNotFoundError

    try:
        if address is not None and (book is not None or exposure):
            raise UsageError("ADDRESS backtests that wallet's book: leave out --book and --exposure")
        wallet = _wallet(address) if address is not None else None
        doc = run_backtest(book, exposure, alpha, window, wallet=wallet)
    except UsageError as exc:
        _fail(str(exc))
    except (MarketDataNotFoundError, MarketDataError, WalletError) as exc:
        _fail(str(exc), code=1)
    if as_json:
        print(json.dumps(doc))
    else:
        _print_table(doc)


def register(
    app: typer.Typer,
    settings: Callable[[], Settings] | None = None,
    store: Callable[[Settings], Store] | None = None,
    address: Callable[[str], str] | None = None,
) -> None:
    """Add the ``backtest`` command to ``app``; ``settings``, ``store`` and ``address`` are the CLI's own ways to
    read the configuration, open the store and check an address (defaults: the config file, its store, EIP-55)."""
    _Ctx.settings, _Ctx.store, _Ctx.address = settings, store, address
    app.command("backtest")(backtest)
