"""Market-data loading: alignment, bounds and errors on small files; facts of the real files; the backtest report
in ``docs/`` is what the generator produces from them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aggregator.backtest_report import render_report
from aggregator.marketdata import (
    ENV_VAR,
    MarketDataNotFoundError,
    PriceHistory,
    default_root,
    load_prices,
    log_returns,
    simple_returns,
)

REPO = Path(__file__).resolve().parents[2]
HEADER = "Date,Close,High,Low,Open,Volume\n"


def _write(root: Path, sym: str, freq: str, rows: list[tuple[str, float]]) -> None:
    folder = root / ("daily" if freq == "1d" else "hourly")
    folder.mkdir(parents=True, exist_ok=True)
    body = "".join(f"{d},{c},{c * 1.01},{c * 0.99},{c},1000\n" for d, c in rows)
    (folder / f"{sym}-USD_{freq}.csv").write_text(HEADER + body)


@pytest.fixture
def small(tmp_path: Path) -> Path:
    _write(
        tmp_path, "AAA", "1d", [("2024-01-01", 10.0), ("2024-01-02", 11.0), ("2024-01-03", 12.0), ("2024-01-05", 13.0)]
    )
    _write(tmp_path, "BBB", "1d", [("2024-01-02", 2.0), ("2024-01-03", 2.5), ("2024-01-04", 3.0), ("2024-01-05", 2.0)])
    _write(
        tmp_path,
        "AAA",
        "1h",
        [("2024-01-01 00:00:00+00:00", 1.0), ("2024-01-01 01:00:00+00:00", 2.0), ("2024-01-01 03:00:00+00:00", 4.0)],
    )
    return tmp_path


def test_inner_join_alignment(small: Path) -> None:
    ph = load_prices(["AAA", "BBB"], root=small)
    assert [str(d) for d in ph.dates] == ["2024-01-02", "2024-01-03", "2024-01-05"]
    assert ph.symbols == ("AAA", "BBB")
    np.testing.assert_array_equal(ph.prices, [[11.0, 2.0], [12.0, 2.5], [13.0, 2.0]])
    assert ph.dates.dtype == np.dtype("datetime64[D]")
    assert ph.gaps().tolist() == [2]  # 01-03 → 01-05 spans two days
    np.testing.assert_array_equal(ph.column("BBB"), [2.0, 2.5, 2.0])
    swapped = load_prices(["BBB", "AAA"], root=small)
    np.testing.assert_array_equal(swapped.prices, ph.prices[:, ::-1])


def test_bounds_and_fields(small: Path) -> None:
    ph = load_prices(["AAA", "BBB"], start="2024-01-03", end="2024-01-05", root=small)
    assert [str(d) for d in ph.dates] == ["2024-01-03", "2024-01-05"]
    ph = load_prices(["AAA"], end=np.datetime64("2024-01-02"), root=small, field="High")
    np.testing.assert_allclose(ph.prices[:, 0], [10.1, 11.11])


def test_hourly_timestamps_are_utc_seconds(small: Path) -> None:
    ph = load_prices(["AAA"], freq="1h", root=small)
    assert ph.dates.dtype == np.dtype("datetime64[s]")
    assert str(ph.dates[-1]) == "2024-01-01T03:00:00"
    assert ph.bar_days == 1 / 24
    assert ph.gaps().tolist() == [2]
    _write(small, "CCC", "1h", [("2024-01-01 00:00:00+02:00", 1.0)])
    with pytest.raises(ValueError, match="UTC"):
        load_prices(["CCC"], freq="1h", root=small)


def test_returns_helpers(small: Path) -> None:
    ph = load_prices(["AAA", "BBB"], root=small)
    np.testing.assert_allclose(ph.log_returns(), np.log(ph.prices[1:] / ph.prices[:-1]), rtol=1e-15)
    np.testing.assert_allclose(ph.simple_returns(), ph.prices[1:] / ph.prices[:-1] - 1, rtol=1e-15)
    np.testing.assert_allclose(log_returns([1.0, np.e, 1.0]), [1.0, -1.0], rtol=1e-15)
    np.testing.assert_allclose(simple_returns([[2.0], [3.0]]), [[0.5]])


def test_missing_data_says_where_it_looked(tmp_path: Path, small: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(MarketDataNotFoundError, match=ENV_VAR) as info:
        load_prices(["ETH"], root=tmp_path / "nowhere")
    assert isinstance(info.value, FileNotFoundError)
    assert "nowhere" in str(info.value)
    with pytest.raises(MarketDataNotFoundError, match=r"ZZZ.*have: \['AAA', 'BBB'\]"):
        load_prices(["AAA", "ZZZ"], root=small)
    monkeypatch.setenv(ENV_VAR, str(small))
    assert default_root() == small
    assert load_prices(["BBB"]).prices.shape == (4, 1)


def test_bad_requests_are_refused(small: Path) -> None:
    with pytest.raises(ValueError, match="freq"):
        load_prices(["AAA"], freq="1m", root=small)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no symbols"):
        load_prices([], root=small)
    with pytest.raises(ValueError, match="duplicate"):
        load_prices(["AAA", "AAA"], root=small)
    with pytest.raises(ValueError, match="field"):
        load_prices(["AAA"], root=small, field="Adj Close")
    _write(small, "NEG", "1d", [("2024-01-01", 1.0), ("2024-01-02", -1.0)])
    with pytest.raises(ValueError, match="non-positive"):
        load_prices(["NEG"], root=small)
    _write(small, "BACK", "1d", [("2024-01-02", 1.0), ("2024-01-01", 1.0)])
    with pytest.raises(ValueError, match="increasing"):
        load_prices(["BACK"], root=small)


# --- the real files ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_root() -> Path:
    root = default_root()
    if not (root / "daily").is_dir():
        pytest.skip(f"real market data not available at {root}")
    return root


def test_default_root_is_beside_the_repository(real_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert default_root() == REPO.parent / "shared" / "data" / "market"


def test_real_daily_and_hourly_facts(real_root: Path) -> None:
    eth = load_prices(["ETH"], root=real_root)
    assert str(eth.dates[0]) == "2017-11-09"
    assert str(eth.dates[-1]) == "2025-02-11"
    assert eth.prices[0, 0] == 320.8840026855469
    assert eth.prices[-1, 0] == 2589.8212890625
    assert eth.gaps().size == 0
    both = load_prices(["BTC", "USDC"], root=real_root)
    assert str(both.dates[0]) == "2018-10-08"  # USDC starts later: the join starts with it
    usdc_2023 = load_prices(["USDC"], start="2023-03-01", end="2023-03-31", root=real_root).prices[:, 0]
    assert 0.95 < usdc_2023.min() < 0.99  # the March 2023 depeg, in daily closes
    hourly = load_prices(["ETH", "BTC"], freq="1h", root=real_root)
    assert str(hourly.dates[0]) == "2024-11-14T00:00:00"
    assert [str(hourly.dates[i]) for i in hourly.gaps()] == ["2025-01-02T15:00:00"]  # one missing hour
    assert isinstance(hourly, PriceHistory)


def test_the_backtest_report_in_docs_is_current(real_root: Path) -> None:
    committed = (REPO / "docs" / "backtest.md").read_text()
    assert render_report(root=real_root) == committed, (
        "docs/backtest.md is stale: run `.venv/bin/python -m aggregator.backtest_report > docs/backtest.md`"
    )
