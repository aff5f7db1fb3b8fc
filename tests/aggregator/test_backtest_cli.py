"""``xmargin backtest`` (:mod:`aggregator.backtest_cli`) on an app built here with ``register(app)``.

Small seeded price files in a temporary market-data folder check the plumbing against the risk core directly
(sample split, every statistic, JSON and table) and the usage errors (exit code 2); on the real market data, the
``hedged`` book reproduces the headline of ``docs/backtest.md``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from aggregator.backtest_cli import UsageError, parse_exposures, register
from aggregator.backtest_report import BOOKS, IN_SAMPLE_END, OUT_OF_SAMPLE, SYMBOLS
from aggregator.marketdata import ENV_VAR, MarketDataNotFoundError, load_prices
from riskcore.backtest import coverage_test, rolling_var
from riskcore.ewma import RISKMETRICS_LAMBDA

REPO = Path(__file__).resolve().parents[2]
HEADER = "Date,Close,High,Low,Open,Volume\n"


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """A stand-in for the xmargin app (keeps `backtest` a sub-command)."""

    register(app)
    return app


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(_app(), ["backtest", *args], catch_exceptions=False)
    return result.exit_code, result.stdout, " ".join(result.stderr.split())


def _write(root: Path, sym: str, dates: np.ndarray, closes: np.ndarray) -> None:
    folder = root / "daily"
    folder.mkdir(parents=True, exist_ok=True)
    body = "".join(
        f"{d},{c!r},{c * 1.01!r},{c * 0.99!r},{c!r},1000\n" for d, c in zip(dates, closes.tolist(), strict=True)
    )
    (folder / f"{sym}-USD_1d.csv").write_text(HEADER + body)


@pytest.fixture
def market(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """AAA (fat-tailed) and BBB (calmer) daily closes 2021-06-01 .. 2024-12-31, from a fixed seed."""
    rng = np.random.default_rng(11)
    dates = np.arange(np.datetime64("2021-06-01"), np.datetime64("2025-01-01"))
    for sym, vol in (("AAA", 0.04), ("BBB", 0.01)):
        steps = rng.standard_t(3, size=dates.size) * vol / np.sqrt(3.0)
        _write(tmp_path, sym, dates, 100.0 * np.exp(np.cumsum(steps)))
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    return tmp_path


def _expected(root: Path, exposures: dict[str, float], alpha: float, window: int) -> dict[tuple[str, str], Any]:
    """The statistics computed straight from the risk core, keyed by (sample, method)."""
    prices = load_prices(tuple(exposures), "1d", root=root)
    rv = rolling_var(
        prices.simple_returns(), np.array(list(exposures.values())), alpha=alpha, window=window, lam=RISKMETRICS_LAMBDA
    )
    days = prices.dates[1:][rv.index]
    masks = {
        "in-sample": days <= IN_SAMPLE_END,
        "out-of-sample": (days >= OUT_OF_SAMPLE[0]) & (days <= OUT_OF_SAMPLE[1]),
    }
    return {
        (sample, method): coverage_test(exceed, alpha, mask)
        for sample, mask in masks.items()
        for method, exceed in (("historical", rv.exceed_historical), ("ewma", rv.exceed_ewma))
    }


# ------------------------------------------------------------------------------------------------ parsing
def test_parse_exposures() -> None:
    assert parse_exposures(["eth=400000", "BTC=2.5e5", "ETH=-1_000", " usdc = -300000 "]) == {
        "ETH": 399_000.0,
        "BTC": 250_000.0,
        "USDC": -300_000.0,
    }
    assert parse_exposures([]) == {}


@pytest.mark.parametrize(
    "bad", ["ETH", "ETH=", "=100", "ETH=abc", "ETH=1=2", "ETH=nan", "ETH=inf", "E-TH=1", "ETH=1,000"]
)
def test_parse_exposures_refuses_malformed_items(bad: str) -> None:
    with pytest.raises(UsageError, match="malformed exposure"):
        parse_exposures([bad])


# ------------------------------------------------------------------------------------- small seeded data
def test_custom_book_json_is_the_risk_core_result(market: Path) -> None:
    code, out, _ = run(
        "--exposure",
        "AAA=1000000",
        "-e",
        "bbb=-250000",
        "-e",
        "AAA=-200000",
        "--alpha",
        "0.95",
        "--window",
        "120",
        "--json",
    )
    assert code == 0
    doc = json.loads(out)
    assert doc["book"] == "custom"
    assert doc["exposures_usd"] == {"AAA": 800_000.0, "BBB": -250_000.0}
    assert (doc["alpha"], doc["window"], doc["ewma_lambda"]) == (0.95, 120, RISKMETRICS_LAMBDA)
    assert doc["data"] == {
        "symbols": ["AAA", "BBB"],
        "first": "2021-06-01",
        "last": "2024-12-31",
        "days": 1310,
        "gaps": 0,
    }
    # returns start 2021-06-02; the first evaluated day is return 120
    first = str(np.datetime64("2021-06-02") + 120)
    assert doc["samples"] == {
        "in-sample": {
            "first": first,
            "last": "2022-12-31",
            "days": int((np.datetime64("2023-01-01") - np.datetime64(first)) / np.timedelta64(1, "D")),
        },
        "out-of-sample": {"first": "2023-01-01", "last": "2024-12-31", "days": 731},
    }
    expected = _expected(market, {"AAA": 800_000.0, "BBB": -250_000.0}, 0.95, 120)
    assert [(r["sample"], r["method"]) for r in doc["results"]] == list(expected)
    for r in doc["results"]:
        t = expected[(r["sample"], r["method"])]
        assert r["days"] == int(t.n_obs[0]) == doc["samples"][r["sample"]]["days"]
        assert r["exceedances"] == int(t.n_exceed[0])
        assert r["expected"] == pytest.approx(0.05 * r["days"], rel=1e-12)
        assert r["rate"] == pytest.approx(r["exceedances"] / r["days"], rel=1e-15)
        for key in ("lr_pof", "p_pof", "lr_ind", "p_ind", "lr_cc", "p_cc"):
            assert r[key] == float(getattr(t, key)[0]), key
        assert list(r["transitions"].values()) == [int(c) for c in t.transitions[0]]
        assert sum(r["transitions"].values()) == r["days"] - 1
        flags = [n for n, p in (("POF", t.p_pof[0]), ("IND", t.p_ind[0]), ("CC", t.p_cc[0])) if p < 0.05]
        assert r["rejected"] == flags
    assert any(r["exceedances"] > 0 for r in doc["results"])


def test_table_shows_every_statistic(market: Path) -> None:
    code, out, _ = run("-e", "AAA=1e6", "--window", "60")
    assert code == 0
    for text in (
        "99% one-day VaR backtest",
        "custom (AAA 1,000,000)",
        "in-sample",
        "out-of-sample",
        "hist. 60d",
        "EWMA λ=0.94",
        "exceedances",
        "expected",
        "Kupiec LR",
        "Christoffersen LR",
        "cond. coverage LR",
        "p-value",
        "rejected (5%)",
    ):
        assert text in out, text
    expected = _expected(market, {"AAA": 1e6}, 0.99, 60)
    exceed_row = next(line for line in out.splitlines() if line.strip().startswith("exceedances"))
    assert exceed_row.split()[1:] == [str(int(t.n_exceed[0])) for t in expected.values()]
    expected_row = next(line for line in out.splitlines() if line.strip().startswith("expected"))
    assert expected_row.split()[1:] == [f"{float(t.expected[0]):.1f}" for t in expected.values()]


def test_a_sample_without_days_is_reported_as_such(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dates = np.arange(np.datetime64("2022-10-01"), np.datetime64("2024-01-01"))
    _write(tmp_path, "AAA", dates, 100.0 * np.exp(np.cumsum(np.random.default_rng(3).normal(0, 0.02, dates.size))))
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    code, out, _ = run("-e", "AAA=1e6", "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["samples"]["in-sample"] == {"first": None, "last": None, "days": 0}
    empty = [r for r in doc["results"] if r["sample"] == "in-sample"]
    assert [(r["days"], r["lr_pof"], r["p_cc"], r["transitions"]) for r in empty] == [(0, None, None, None)] * 2
    assert all(r["days"] > 0 and r["p_pof"] is not None for r in doc["results"] if r["sample"] == "out-of-sample")
    code, out, _ = run("-e", "AAA=1e6")
    assert code == 0
    assert "—" in out


# ------------------------------------------------------------------------------------------------ errors
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-e", "FOO=1000"], "unknown symbol FOO (daily prices exist for: AAA, BBB)"),
        (["-e", "AAA=1", "-e", "ZZZ=1", "-e", "QQQ=2"], "unknown symbols ZZZ, QQQ"),
        (["--book", "custom", "-e", "FOO=1"], "unknown symbol FOO"),
        (["-e", "AAA"], "malformed exposure 'AAA': expected SYMBOL=USD"),
        (["-e", "AAA=lots"], "malformed exposure 'AAA=lots': 'lots' is not a USD amount"),
        (["-e", "AAA=1=2"], "malformed exposure"),
        (["-e", "AAA=nan"], "must be finite"),
        (["--book", "custom"], "--book custom needs at least one --exposure"),
        (["--book", "hedged", "-e", "AAA=1"], "use it with --book custom"),
        (["-e", "AAA=1", "--alpha", "1.0"], "--alpha must be in (0, 1), got 1.0"),
        (["-e", "AAA=1", "--alpha", "0"], "--alpha must be in (0, 1)"),
        (["-e", "AAA=1", "--window", "1309"], "--window must be in [30, 1308]"),
        (["-e", "AAA=1", "--window", "10"], "--window must be in [30, 1308]"),
    ],
)
def test_usage_errors_exit_2_with_a_clear_message(market: Path, args: list[str], message: str) -> None:
    code, out, err = run(*args, "--json")
    assert code == 2
    assert out == ""
    assert err.startswith("error: ")
    assert message in err


def test_preset_books_need_the_report_symbols(market: Path) -> None:
    code, _, err = run("--book", "hedged")
    assert code == 2
    assert "unknown symbols ETH, BTC, USDC" in err


@pytest.mark.parametrize("args", [["--book", "bogus"], ["--alpha", "high"], ["--window", "2.5"]])
def test_bad_option_values_are_refused_by_the_parser(market: Path, args: list[str]) -> None:
    result = CliRunner().invoke(_app(), ["backtest", *args])
    assert result.exit_code == 2


def test_missing_market_data_exits_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "nowhere"))
    code, _, err = run("-e", "ETH=1")
    assert code == 1
    assert "market data not found" in err


# --------------------------------------------------------------------------------------------- real data
def _real_or_skip() -> None:
    try:
        load_prices(SYMBOLS, "1d")
    except MarketDataNotFoundError as exc:
        pytest.skip(f"real market data not available: {exc}")


def _headline(alpha: float) -> dict[tuple[str, str], list[str]]:
    """docs/backtest.md's headline rows for ``alpha``: (sample, method) → [exceedances, expected, p POF, IND, CC]."""
    rows = {}
    for line in (REPO / "docs" / "backtest.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 8 and cells[0] == f"{100 * alpha:g}%":
            method = "historical" if cells[2].startswith("historical") else "ewma"
            rows[(cells[1], method)] = cells[3:]
    return rows


@pytest.mark.parametrize("alpha", [0.99, 0.95])
def test_hedged_book_reproduces_the_report_headline(monkeypatch: pytest.MonkeyPatch, alpha: float) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    _real_or_skip()
    code, out, _ = run("--book", "hedged", "--alpha", str(alpha), "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["book"] == BOOKS[0].name
    assert doc["data"]["symbols"] == list(SYMBOLS)
    headline = _headline(alpha)
    assert len(headline) == 4

    def p(x: float) -> str:
        return f"{x:.3f}" if x >= 0.001 else f"{x:.1e}"

    got = {
        (r["sample"], r["method"]): [
            str(r["exceedances"]),
            f"{r['expected']:.1f}",
            p(r["p_pof"]),
            p(r["p_ind"]),
            p(r["p_cc"]),
        ]
        for r in doc["results"]
    }
    assert got == headline


def test_eth_book_table_on_real_data(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    _real_or_skip()
    code, out, _ = run("--book", "eth", "--alpha", "0.95")
    assert code == 0
    assert "unhedged ETH (ETH 1,000,000)" in re.sub(r"\s+", " ", out)
    assert "2023-01-01 .. 2025-02-11" in out


def test_a_malformed_price_file_exits_1(market: Path) -> None:
    (market / "daily" / "BBB-USD_1d.csv").write_text(HEADER + "2024-01-01,-5,1,1,1,1\n")
    code, _, err = run("-e", "BBB=1")
    assert code == 1
    assert "non-positive or missing prices" in err
