"""Factor exposures of a book: a Uniswap range splits into its two legs; debts and shorts are negative."""

from __future__ import annotations

import numpy as np
import pytest

from riskcore.book import Book, LpSpec, PerpAccountSpec, WalletSpec
from riskcore.clmm import amounts_float
from riskcore.venues.aave_v3 import account_spec as aave_account


def test_lp_legs_go_to_their_own_factors_and_everything_sums_to_the_position_values() -> None:
    prices = {"ETH": 2_000.0, "USDC": 1.0}
    lp = LpSpec("ETH", "USDC", liquidity=5_000.0, price_lower=1_500.0, price_upper=2_500.0)
    wallet = WalletSpec("w", (
        aave_account({"ETH": (10.0, 0.8)}, {"USDC": 8_000.0}),
        PerpAccountSpec(1_000.0, {"ETH": (-4.0, 0.01)}),
        lp,
    ))
    book = Book.from_wallets([wallet], prices, stable=("USDC",))
    exposure = book.factor_exposure_usd()
    x, y = amounts_float(5_000.0, np.sqrt(2_000.0), np.sqrt(1_500.0), np.sqrt(2_500.0))
    eth, usdc = book.underlyings.index("ETH"), book.underlyings.index("USDC")
    assert exposure.shape == (1, 2)
    assert exposure[0, eth] == pytest.approx(10 * 2_000.0 - 4 * 2_000.0 + float(x) * 2_000.0, rel=1e-12)
    assert exposure[0, usdc] == pytest.approx(-8_000.0 + float(y), rel=1e-12)
    assert float(exposure.sum()) == pytest.approx(float(book.position_value_usd().sum()), rel=1e-12)
