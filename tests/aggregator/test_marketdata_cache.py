"""The market-data reader parses a file once per version: a changed file is read again, and a caller changing the
arrays it got back never changes what the next caller gets."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from aggregator.marketdata import load_prices

HEADER = "Date,Close,High,Low,Open,Volume\n"


def _write(path: Path, closes: list[float], mtime_ns: int) -> None:
    body = "".join(f"2024-01-0{i + 1},{c},{c},{c},{c},1\n" for i, c in enumerate(closes))
    path.write_text(HEADER + body)
    os.utime(path, ns=(mtime_ns, mtime_ns))


def test_a_changed_file_is_read_again(tmp_path: Path) -> None:
    (tmp_path / "daily").mkdir()
    path = tmp_path / "daily" / "AAA-USD_1d.csv"
    _write(path, [1.0, 2.0, 3.0], 1_700_000_000_000_000_000)
    first = load_prices(["AAA"], root=tmp_path)
    np.testing.assert_array_equal(first.column("AAA"), [1.0, 2.0, 3.0])
    _write(path, [1.0, 2.0, 4.0], 1_700_000_001_000_000_000)  # same size, a later modification time
    np.testing.assert_array_equal(load_prices(["AAA"], root=tmp_path).column("AAA"), [1.0, 2.0, 4.0])
    _write(path, [1.0, 2.0, 40.0], 1_700_000_001_000_000_000)  # same time, another size
    np.testing.assert_array_equal(load_prices(["AAA"], root=tmp_path).column("AAA"), [1.0, 2.0, 40.0])


def test_what_a_caller_gets_is_its_own(tmp_path: Path) -> None:
    (tmp_path / "daily").mkdir()
    _write(tmp_path / "daily" / "AAA-USD_1d.csv", [1.0, 2.0, 3.0], 1_700_000_000_000_000_000)
    got = load_prices(["AAA"], root=tmp_path)
    got.prices[:] = 0.0
    got.dates[0] = np.datetime64("2000-01-01")
    again = load_prices(["AAA"], root=tmp_path)
    np.testing.assert_array_equal(again.column("AAA"), [1.0, 2.0, 3.0])
    assert str(again.dates[0]) == "2024-01-01"
