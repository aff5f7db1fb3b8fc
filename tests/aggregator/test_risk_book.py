"""The store's snapshots as a risk book: every holding counts, across venues and factors."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from aggregator.risk import GRID_PRICE_MOVES, build_book, pnl_grids
from db.rows import AssetRow, HealthRow, PositionRow, PositionSide, SnapshotRow

T = datetime(2026, 1, 1, tzinfo=UTC)
WETH = AssetRow(1, "0x" + "11" * 20, "WETH", 18)
USDC = AssetRow(1, "0x" + "22" * 20, "USDC", 6)
WALLET = "0x" + "33" * 20


def _snap(venue: str, positions: tuple[PositionRow, ...], extra: dict[str, object]) -> SnapshotRow:
    health = HealthRow(computed_at=T, collateral_usd=0.0, debt_usd=0.0, extra=extra)
    return SnapshotRow(wallet=WALLET, venue=venue, chain_id=1, block_number=7, block_hash="0x" + "00" * 32,
                       block_timestamp=T, taken_at=T, positions=positions, health=health)


def test_morpho_collateral_without_debt_and_lender_supply_are_counted() -> None:
    market = "0x" + "aa" * 32
    morpho = _snap("morpho_blue", (
        PositionRow(WETH, PositionSide.COLLATERAL, 2 * 10**18, 2.0, 3_000.0, 6_000.0, True, market),
        PositionRow(USDC, PositionSide.SUPPLY, 5_000 * 10**6, 5_000.0, 1.0, 5_000.0, False, market),
    ), {"markets": [{"market_id": market, "pair": "WETH/USDC", "lltv": 0.86}]})
    inputs = build_book({WALLET: [morpho]}, {"morpho_blue": "morpho_blue"})
    exposure = dict(zip(inputs.book.underlyings, inputs.book.factor_exposure_usd()[0], strict=True))
    assert exposure["ETH"] == pytest.approx(6_000.0)
    assert exposure["USDC"] == pytest.approx(5_000.0)
    assert float(inputs.book.wallet_equity_usd()[0]) == pytest.approx(11_000.0)
    assert inputs.block == 7


def test_pnl_grid_liquidates_the_morpho_market_past_its_lltv() -> None:
    """2 WETH at $3,000 against 4,000 USDC at an LLTV of 0.86: liquidatable once WETH falls below
    4,000 / (2 × 0.86) = $2,325.58, a 22.5 % fall; the grid's cells from −25 % down list the market's venue."""
    market = "0x" + "aa" * 32
    morpho = _snap("morpho_blue", (
        PositionRow(WETH, PositionSide.COLLATERAL, 2 * 10**18, 2.0, 3_000.0, 6_000.0, True, market),
        PositionRow(USDC, PositionSide.DEBT, 4_000 * 10**6, 4_000.0, 1.0, 4_000.0, False, market),
    ), {"markets": [{"market_id": market, "pair": "WETH/USDC", "lltv": 0.86}]})
    inputs = build_book({WALLET: [morpho]}, {"morpho_blue": "morpho_blue"})
    (grid,) = pnl_grids(inputs.book, ["ETH"], tokens=inputs.tokens)
    assert grid is not None
    moves, vols = grid["price_moves"], grid["vol_shifts"]
    assert moves == list(GRID_PRICE_MOVES)
    assert vols == [0.0]  # no option in the book: volatility moves nothing, one row
    assert grid["underlyings"] == ["ETH"]
    assert grid["moved"] == "ETH (WETH) moves by each column's move; USDC stays at today's price"
    assert len(grid["pnl_usd"]) == len(vols)
    assert all(len(row) == len(moves) for row in grid["pnl_usd"])
    for v in range(len(vols)):
        for p, move in enumerate(moves):
            liquidated = move < -0.225
            assert grid["liquidated"][v][p] == (["morpho_blue"] if liquidated else []), move
            loss = grid["liquidation_loss_usd"][v][p]
            assert (loss > 0) == liquidated, move
            # Unliquidated, the P&L is the collateral's move; liquidated, the liquidation penalty comes off too.
            assert grid["pnl_usd"][v][p] == pytest.approx(6_000.0 * move - loss, abs=1e-6)
            assert grid["pnl_usd"][v][p] == pytest.approx(grid["pnl_usd"][0][p])  # no vol-sensitive position


def test_pnl_grid_is_absent_without_a_risky_underlying() -> None:
    aave = _snap("aave_v3", (PositionRow(USDC, PositionSide.SUPPLY, 10**6, 1.0, 1.0, 1.0, True),), {})
    inputs = build_book({WALLET: [aave]}, {"aave_v3": "aave_v3"})
    assert pnl_grids(inputs.book, []) == [None]
