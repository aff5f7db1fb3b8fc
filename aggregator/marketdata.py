"""Historical market prices from the shared CSV files, aligned into arrays for the risk core.

Layout (see ``README.md`` beside the data): ``daily/<SYM>-USD_1d.csv`` with dates ``YYYY-MM-DD`` and
``hourly/<SYM>-USD_1h.csv`` with ``YYYY-MM-DD HH:MM:SS+00:00``; columns ``Date,Close,High,Low,Open,Volume``;
prices in USD. The data is read where it lies, never copied into the project.

Where the data is: the ``root`` argument, else ``$XMARGIN_MARKET_DATA``, else ``<repo>/../shared/data/market``.

Alignment is an inner join on timestamps: a bar is kept only when every requested symbol has it. A gap in one
symbol therefore removes that bar for all, and the return across it spans more than one bar:
:meth:`PriceHistory.gaps` lists them.
"""

from __future__ import annotations

import csv
import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "ENV_VAR",
    "FIELDS",
    "MarketDataNotFoundError",
    "PriceHistory",
    "default_root",
    "load_prices",
    "log_returns",
    "simple_returns",
]

ENV_VAR = "XMARGIN_MARKET_DATA"
FIELDS = ("Close", "High", "Low", "Open", "Volume")
Freq = Literal["1d", "1h"]
_SUBDIR: dict[str, tuple[str, str]] = {"1d": ("daily", "datetime64[D]"), "1h": ("hourly", "datetime64[s]")}
_STEP = {"1d": np.timedelta64(1, "D"), "1h": np.timedelta64(3600, "s")}

FloatArray = npt.NDArray[np.float64]


class MarketDataNotFoundError(FileNotFoundError):
    """The market-data directory or a symbol's file is missing."""


def default_root() -> Path:
    """``$XMARGIN_MARKET_DATA`` if set, else ``<repo>/../shared/data/market``."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[1].parent / "shared" / "data" / "market"


@dataclass(frozen=True, slots=True)
class PriceHistory:
    """Aligned prices of several symbols.

    Attributes
    ----------
    dates : ndarray of datetime64 of shape (n_bars,)
        ``datetime64[D]`` for daily bars, ``datetime64[s]`` (UTC) for hourly bars; strictly increasing.
    symbols : tuple of str, length n_assets
    prices : ndarray of shape (n_bars, n_assets)
        USD per unit (the ``field`` column, by default the close).
    freq : {"1d", "1h"}
    """

    dates: npt.NDArray[np.datetime64]
    symbols: tuple[str, ...]
    prices: FloatArray
    freq: str

    @property
    def bar_days(self) -> float:
        """Length of one bar in days (1 or 1/24)."""
        return 1.0 if self.freq == "1d" else 1.0 / 24.0

    def log_returns(self) -> FloatArray:
        """(n_bars - 1, n_assets): ``log(p[t] / p[t-1])``, dated by ``dates[1:]``."""
        return log_returns(self.prices)

    def simple_returns(self) -> FloatArray:
        """(n_bars - 1, n_assets): ``p[t] / p[t-1] - 1``, dated by ``dates[1:]``."""
        return simple_returns(self.prices)

    def gaps(self) -> npt.NDArray[np.int64]:
        """Indices ``t`` (into ``dates``) where ``dates[t] - dates[t-1]`` is longer than one bar."""
        return np.flatnonzero(np.diff(self.dates) != _STEP[self.freq]).astype(np.int64) + 1

    def column(self, symbol: str) -> FloatArray:
        """(n_bars,) prices of one symbol."""
        return np.asarray(self.prices[:, self.symbols.index(symbol)], dtype=np.float64)


def log_returns(prices: npt.ArrayLike) -> FloatArray:
    """Log returns along axis 0.

    Parameters
    ----------
    prices : array_like of shape (n_bars, ...)
        Positive prices.

    Returns
    -------
    ndarray of shape (n_bars - 1, ...)
    """
    p = np.asarray(prices, dtype=np.float64)
    return np.asarray(np.diff(np.log(p), axis=0), dtype=np.float64)


def simple_returns(prices: npt.ArrayLike) -> FloatArray:
    """Simple (arithmetic) returns along axis 0: (n_bars - 1, ...) from (n_bars, ...) positive prices."""
    p = np.asarray(prices, dtype=np.float64)
    return np.asarray(p[1:] / p[:-1] - 1.0, dtype=np.float64)


def _parse_dates(raw: list[str], freq: str) -> npt.NDArray[np.datetime64]:
    if freq == "1d":
        return np.array(raw, dtype="datetime64[D]")
    bad = [d for d in raw if not d.endswith("+00:00")]
    if bad:
        raise ValueError(f"hourly timestamps must be UTC ('+00:00'), got {bad[0]!r}")
    return np.array([d[:-6].replace(" ", "T") for d in raw], dtype="datetime64[s]")


def _read(path: Path, freq: str, field: str) -> tuple[npt.NDArray[np.datetime64], FloatArray]:
    """One file's dates and ``field`` values, read-only; parsed once per version of the file (path, size and
    modification time), so the risk engine's repeated loads on every sync read the CSV again only when it
    changed."""
    st = path.stat()
    return _read_cached(str(path), st.st_mtime_ns, st.st_size, freq, field)


@functools.lru_cache(maxsize=256)
def _read_cached(
    name: str, mtime_ns: int, size: int, freq: str, field: str
) -> tuple[npt.NDArray[np.datetime64], FloatArray]:
    dates, values = _parse(Path(name), freq, field)
    dates.flags.writeable = False
    values.flags.writeable = False
    return dates, values


def _parse(path: Path, freq: str, field: str) -> tuple[npt.NDArray[np.datetime64], FloatArray]:
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or header[0] != "Date" or field not in header:
            raise ValueError(f"{path}: expected a 'Date' column and {field!r}, got header {header}")
        col = header.index(field)
        rows = [row for row in reader if row]
    dates = _parse_dates([row[0] for row in rows], freq)
    values = np.array([float(row[col]) for row in rows], dtype=np.float64)
    if dates.size and np.any(np.diff(dates) <= np.timedelta64(0, "s")):
        raise ValueError(f"{path}: dates are not strictly increasing")
    if field != "Volume" and not np.all(np.isfinite(values) & (values > 0)):
        raise ValueError(f"{path}: {field} has non-positive or missing prices")
    return dates, values


def load_prices(
    symbols: Sequence[str],
    freq: Freq = "1d",
    start: str | np.datetime64 | None = None,
    end: str | np.datetime64 | None = None,
    root: str | Path | None = None,
    field: str = "Close",
) -> PriceHistory:
    """Load and align the price histories of ``symbols``.

    Parameters
    ----------
    symbols : sequence of str
        E.g. ``["ETH", "BTC", "USDC"]`` (files ``<SYM>-USD_<freq>.csv``).
    freq : {"1d", "1h"}
    start, end : str or datetime64, optional
        Inclusive bounds (``"2023-01-01"``; a date bound on hourly data means midnight UTC of that day).
    root : path, optional
        The market-data directory; default :func:`default_root`.
    field : str, default "Close"
        Which column to load.

    Returns
    -------
    PriceHistory
        Bars present for every symbol (inner join), within ``[start, end]``.

    Raises
    ------
    MarketDataNotFoundError
        When the directory or a symbol's file does not exist (the message says where it looked).
    ValueError
        On an empty symbol list, an unknown frequency or field, or malformed files.
    """
    if freq not in _SUBDIR:
        raise ValueError(f"freq must be one of {sorted(_SUBDIR)}, got {freq!r}")
    if field not in FIELDS:
        raise ValueError(f"field must be one of {FIELDS}, got {field!r}")
    if not symbols:
        raise ValueError("no symbols requested")
    if len(set(symbols)) != len(symbols):
        raise ValueError(f"duplicate symbols in {list(symbols)}")
    base = Path(root).expanduser() if root is not None else default_root()
    subdir, unit = _SUBDIR[freq]
    folder = base / subdir
    if not folder.is_dir():
        raise MarketDataNotFoundError(
            f"market data not found: {folder} is not a directory (pass root=, or set ${ENV_VAR} to the folder "
            "holding daily/ and hourly/)"
        )
    series = []
    for sym in symbols:
        path = folder / f"{sym}-USD_{freq}.csv"
        if not path.is_file():
            have = sorted(p.name.split("-USD_")[0] for p in folder.glob(f"*-USD_{freq}.csv"))
            raise MarketDataNotFoundError(f"no {freq} prices for {sym!r}: {path} does not exist (have: {have})")
        series.append(_read(path, freq, field))
    common = series[0][0]
    for dates, _ in series[1:]:
        common = np.intersect1d(common, dates, assume_unique=True)
    keep = np.ones(common.shape, dtype=bool)
    if start is not None:
        keep &= common >= np.datetime64(start).astype(unit)
    if end is not None:
        keep &= common <= np.datetime64(end).astype(unit)
    common = common[keep]
    prices = np.empty((common.size, len(symbols)), dtype=np.float64)
    for j, (dates, values) in enumerate(series):
        prices[:, j] = values[np.searchsorted(dates, common)]
    return PriceHistory(dates=common, symbols=tuple(symbols), prices=prices, freq=freq)
