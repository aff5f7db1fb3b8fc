"""``xmargin backtest`` (:mod:`aggregator.backtest_cli`) on an app built here with ``register(app)``.

Small seeded price files in a temporary market-data folder check the plumbing against the risk core directly
(sample split, every statistic, JSON and table) and the usage errors (exit code 2); on the real market data, the
``hedged`` book reproduces the headline of ``docs/backtest.md``.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from aggregator.backtest_cli import UsageError, parse_exposures, register
from aggregator.backtest_report import BOOKS, IN_SAMPLE_END, OUT_OF_SAMPLE, SYMBOLS
from aggregator.marketdata import ENV_VAR, MarketDataNotFoundError, load_prices
from db import (
    AssetRow,
    HealthRow,
    PositionRow,
    PositionSide,
    SnapshotRow,
    Store,
    SyncBatch,
    SyncStatus,
    VenueKind,
    VenueRow,
)
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


# ------------------------------------------------------------------------------------------ a tracked wallet
WALLET = "0x52908400098527886E0F7030069857D2E4169EE7"
CHAIN = 31337
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def _asset(symbol: str, decimals: int) -> AssetRow:
    return AssetRow(CHAIN, "0x" + symbol.encode().hex().ljust(40, "0"), symbol, decimals)


def _position(symbol: str, side: PositionSide, amount: float, price: float, **extra: object) -> PositionRow:
    asset = _asset(symbol, 18)
    return PositionRow(asset=asset, side=side, amount_raw=int(amount * 10**18), amount=amount, price_usd=price,
                       value_usd=amount * price, is_collateral=side is PositionSide.COLLATERAL,
                       market_key="ETH" if side is PositionSide.PERP else asset.address, extra=dict(extra))


def _snapshot(venue: str, block: int, positions: tuple[PositionRow, ...], **extra: object) -> SnapshotRow:
    at = T0 + timedelta(seconds=12 * block)
    health = HealthRow(computed_at=at, collateral_usd=0.0, debt_usd=0.0, health_factor=2.0, health_factor_raw=None,
                       onchain_health_factor_raw=None, liquidation_threshold=None, matches_onchain=None,
                       extra=dict(extra))
    return SnapshotRow(wallet=WALLET, venue=venue, chain_id=CHAIN, block_number=block, block_hash=f"0x{block:064x}",
                       block_timestamp=at, taken_at=at, positions=positions, health=health)


def _sync(store: Store, block: int, snapshots: tuple[SnapshotRow, ...]) -> None:
    at = T0 + timedelta(seconds=12 * block)
    store.write_sync(SyncBatch(chain_id=CHAIN, started_at=at, finished_at=at, status=SyncStatus.OK,
                               block_number=block, block_hash=f"0x{block:064x}", block_timestamp=at,
                               snapshots=snapshots))


@pytest.fixture
def eth_usdc_market(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """ETH (fat-tailed, 4 % a day) and USDC (within a few bp of $1) daily closes 2021-06-01 .. 2024-12-31."""
    rng = np.random.default_rng(7)
    dates = np.arange(np.datetime64("2021-06-01"), np.datetime64("2025-01-01"))
    _write(tmp_path / "market", "ETH", dates, 3000.0 * np.exp(np.cumsum(rng.standard_t(3, dates.size) * 0.023)))
    _write(tmp_path / "market", "USDC", dates, 1.0 + rng.normal(0.0, 0.0004, dates.size))
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "market"))
    return tmp_path / "market"


@pytest.fixture
def store_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An empty store the command finds through the configuration (XMARGIN_DB_URL), with two venues."""
    url = f"sqlite:///{tmp_path / 'xmargin.db'}"
    monkeypatch.setenv("XMARGIN_DB_URL", url)
    monkeypatch.delenv("XMARGIN_CONFIG", raising=False)
    with Store.open(url) as store:
        store.upsert_venues([VenueRow("aave_v3", VenueKind.LENDING, CHAIN, {"type": "aave_v3"}),
                             VenueRow("hyperliquid", VenueKind.PERP, None, {"type": "hyperliquid"})])
    return url


@pytest.fixture
def tracked(store_url: str) -> str:
    """WALLET, tracked, with an older and a newer snapshot: the newer one is its current book.

    Aave: 10 WETH ($3,000) and 20 AAVE ($300) collateral, 15,000 USDC and 2,000 DAI debt; Hyperliquid: short 1 ETH.
    USD deltas: ETH 30,000 − 3,000 = 27,000, AAVE 6,000 (no daily prices: ETH's stand in), USDC −15,000, DAI −2,000
    (no daily prices: USDC's stand in) → backtested as ETH 33,000, USDC −17,000.
    """
    lend = {"liquidation_threshold_bps": 8300, "liquidation_bonus_bps": 10500}
    with Store.open(store_url) as store:
        store.add_wallets([(WALLET, "alice")])
        _sync(store, 100, (_snapshot("aave_v3", 100, (_position("WETH", PositionSide.COLLATERAL, 1.0, 3000.0, **lend),
                                                       )),))
        aave = (_position("WETH", PositionSide.COLLATERAL, 10.0, 3000.0, **lend),
                _position("AAVE", PositionSide.COLLATERAL, 20.0, 300.0, **lend),
                _position("USDC", PositionSide.DEBT, 15_000.0, 1.0),
                _position("DAI", PositionSide.DEBT, 2_000.0, 1.0))
        perp = (_position("ETH", PositionSide.PERP, -1.0, 3000.0),)
        _sync(store, 101, (_snapshot("aave_v3", 101, aave),
                           _snapshot("hyperliquid", 101, perp, maintenance_margin_usd=30.0, equity_usd=5_000.0)))
    return WALLET


def test_a_tracked_wallets_book_is_its_usd_deltas_backtested(eth_usdc_market: Path, tracked: str) -> None:
    code, out, err = run(tracked.lower(), "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["book"] == "wallet alice 0x5290…9EE7"
    assert doc["wallet"]["address"] == tracked
    assert doc["wallet"]["block"] == 101  # the newest snapshots, not block 100's
    factors = doc["wallet"]["factor_exposures_usd"]
    assert factors == pytest.approx({"ETH": 27_000.0, "AAVE": 6_000.0, "USDC": -15_000.0, "DAI": -2_000.0})
    assert doc["exposures_usd"] == pytest.approx({"ETH": 33_000.0, "USDC": -17_000.0})
    assert any(n.startswith("AAVE has no daily prices here; ETH's stand in") for n in doc["notes"])
    assert any(n.startswith("DAI has no daily prices here; USDC's stand in") for n in doc["notes"])
    # The same backtest as the custom book of those deltas: the wallet path only chooses the exposures.
    code, custom_out, _ = run("-e", "ETH=33000", "-e", "USDC=-17000", "--json")
    assert code == 0
    custom = json.loads(custom_out)
    assert doc["data"] == custom["data"]
    assert doc["samples"] == custom["samples"]
    assert doc["results"] == custom["results"]
    assert any(r["exceedances"] > 0 for r in doc["results"])


def test_a_tracked_wallets_table_names_the_wallet_and_block(eth_usdc_market: Path, tracked: str) -> None:
    code, out, _ = run(tracked)
    assert code == 0
    flat = " ".join(out.split())
    assert "wallet alice 0x5290…9EE7 at block 101 (ETH 33,000, USDC -17,000)" in flat
    assert "AAVE has no daily prices here; ETH's stand in" in flat
    assert "exceedances" in flat


@pytest.mark.parametrize(("args", "code", "message"), [
    ([WALLET], 1, "is not tracked: `xmargin wallet add"),
    (["0x1234"], 2, "address"),
    ([WALLET, "--book", "hedged"], 2, "leave out --book and --exposure"),
    ([WALLET, "-e", "ETH=1"], 2, "leave out --book and --exposure"),
])
def test_wallet_errors_are_one_clear_line(eth_usdc_market: Path, store_url: str, args: list[str], code: int,
                                          message: str) -> None:
    got, out, err = run(*args, "--json")
    assert got == code
    assert out == ""
    assert err.startswith("error: ")
    assert message in err


def test_a_wallet_without_snapshots_says_so(eth_usdc_market: Path, store_url: str) -> None:
    with Store.open(store_url) as store:
        store.add_wallets([(WALLET, None)])
    code, out, err = run(WALLET)
    assert code == 1
    assert out == ""
    assert "has no snapshot yet: run `xmargin sync --once`" in err


def test_a_wallet_without_exposure_says_there_is_nothing_to_backtest(eth_usdc_market: Path, store_url: str) -> None:
    with Store.open(store_url) as store:
        store.add_wallets([(WALLET, None)])
        _sync(store, 7, (_snapshot("aave_v3", 7, ()),))
    code, out, _ = run(WALLET, "--json")
    assert code == 0
    doc = json.loads(out)
    assert (doc["results"], doc["exposures_usd"]) == ([], {})
    assert doc["summary"] == ["nothing to backtest: the book of wallet 0x5290…9EE7 has no price exposure at block 7 "
                              "(no open position with a USD delta)"]
    code, out, _ = run(WALLET)
    assert code == 0
    assert " ".join(out.split()) == doc["summary"][0]  # the sentence, not an empty table


def test_no_exceedance_is_said_in_words(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stablecoin that never moves: no day loses more than its VaR, in either sample or method."""
    dates = np.arange(np.datetime64("2021-06-01"), np.datetime64("2025-01-01"))
    _write(tmp_path, "USDC", dates, np.ones(dates.size))
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    code, out, _ = run("-e", "USDC=1000", "--json")
    assert code == 0
    doc = json.loads(out)
    assert all(r["exceedances"] == 0 for r in doc["results"])
    assert len(doc["summary"]) == 4
    assert ("no VaR exceedance in 2023-01-01 .. 2024-12-31 (out-of-sample, EWMA 99% VaR, 731 days; 7.3 expected)"
            in doc["summary"])
    code, out, _ = run("-e", "USDC=1000")
    assert "no VaR exceedance in 2023-01-01 .. 2024-12-31 (out-of-sample, historical 250d" in " ".join(out.split())
