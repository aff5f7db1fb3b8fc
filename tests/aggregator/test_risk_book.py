"""The store's snapshots as a risk book: every holding counts, across venues and factors."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from aggregator.risk import build_book
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
