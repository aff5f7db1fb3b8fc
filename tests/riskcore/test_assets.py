"""The asset map: lookups, ratios, and netting a hand-worked multi-venue book per underlying and per basis."""

from __future__ import annotations

import numpy as np
import pytest

from riskcore.assets import (
    DEFAULT_ASSET_MAP,
    AssetKind,
    AssetMap,
    AssetSpec,
    FactorKind,
    basis_exposure,
    net_exposure,
    net_quantity,
)

# One column per position of a two-wallet, multi-venue book (ETH $3,000, BTC $60,000):
#   Aave:        WETH collateral, wstETH collateral (1.2 ETH per wstETH), USDC debt
#   Hyperliquid: ETH perp (USD delta = size × price)
#   Morpho:      WBTC collateral, USDT debt
#   Deribit:     ETH option (USD delta = Black-76 delta × forward × size)
#   Aave again:  USDC collateral
SYMBOLS = ["WETH", "wstETH", "USDC", "ETH", "WBTC", "USDT", "ETH", "USDC"]
USD_DELTAS = np.array(
    [
        # 10 WETH, 5 wstETH, -20k USDC, short 25k perp, 1 WBTC, -30k USDT, +2k option delta, 0
        [30_000.0, 18_000.0, -20_000.0, -25_000.0, 60_000.0, -30_000.0, 2_000.0, 0.0],
        # 0, 0, -10k USDC debt, long 3k perp, 0, -5k USDT debt, -1.5k option delta, 15k USDC collateral
        [0.0, 0.0, -10_000.0, 3_000.0, 0.0, -5_000.0, -1_500.0, 15_000.0],
    ]
)


def test_net_exposure_hand_worked_book() -> None:
    unds, net = net_exposure(SYMBOLS, USD_DELTAS)
    assert unds == ("ETH", "USD", "BTC")  # first appearance
    np.testing.assert_allclose(
        net,
        [
            [30_000 + 18_000 - 25_000 + 2_000, -20_000 - 30_000, 60_000],
            [3_000 - 1_500, -10_000 - 5_000 + 15_000, 0],
        ],
    )
    unds2, net2 = net_exposure(SYMBOLS, USD_DELTAS, underlyings=("BTC", "ETH", "USD", "SOL"))
    np.testing.assert_allclose(net2, np.column_stack([net[:, [2, 0, 1]], [0.0, 0.0]]))
    assert unds2 == ("BTC", "ETH", "USD", "SOL")
    _, one = net_exposure(SYMBOLS, USD_DELTAS[0])  # (P,) → (U,)
    np.testing.assert_allclose(one, net[0])


def test_basis_exposure_hand_worked_book() -> None:
    factors, net = basis_exposure(SYMBOLS, USD_DELTAS)
    assert factors == ("stETH/ETH", "USDC/USD", "WBTC/BTC", "USDT/USD")
    np.testing.assert_allclose(net, [[18_000, -20_000, 60_000, -30_000], [0, 5_000, 0, -5_000]])
    # Loss of wallet 0 if stETH trades 5% below ETH: 18,000 × 5% = 900.
    assert net[0, 0] * DEFAULT_ASSET_MAP["wstETH"].basis_risk == pytest.approx(900.0)


def test_net_quantity_uses_ratios_and_requires_exchange_rates() -> None:
    symbols = ["WETH", "wstETH", "stETH", "ETH", "WBTC", "USDC"]
    amounts = np.array([10.0, 5.0, 2.0, -8.0, 0.5, -1_000.0])
    with pytest.raises(ValueError, match=r"wstETH .*exchange_rates"):
        net_quantity(symbols, amounts)
    unds, net = net_quantity(symbols, amounts, exchange_rates={"wstETH": 1.2})
    assert unds == ("ETH", "BTC", "USD")
    np.testing.assert_allclose(net, [10 + 6 + 2 - 8, 0.5, -1_000])
    rated = DEFAULT_ASSET_MAP.with_ratios({"WSTETH": 1.2})
    assert rated["wstETH"].ratio == 1.2
    assert DEFAULT_ASSET_MAP["wstETH"].ratio is None
    np.testing.assert_allclose(net_quantity(symbols, amounts, rated)[1], net)


def test_mapping_matrix_is_one_nonzero_per_row() -> None:
    unds, m = DEFAULT_ASSET_MAP.underlying_matrix(SYMBOLS)
    assert m.shape == (len(SYMBOLS), len(unds))
    np.testing.assert_array_equal(m.sum(axis=1), 1.0)
    with pytest.raises(ValueError, match="not among the given columns"):
        DEFAULT_ASSET_MAP.underlying_matrix(SYMBOLS, ("ETH", "USD"))
    with pytest.raises(ValueError, match="last axis"):
        net_exposure(SYMBOLS, np.zeros((2, 3)))


def test_lookup_by_symbol_case_and_address() -> None:
    amap = DEFAULT_ASSET_MAP
    assert amap["WETH"].underlying == "ETH"
    assert amap["WETH"].basis_factor is None
    assert amap["weth"] is amap["WETH"]
    assert amap["0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"] is amap["WETH"]
    assert amap["0x7f39C581F595B53c5cb19bD0b3f8dA6c935E2Ca0"].symbol == "wstETH"
    assert amap["USDe"].kind is AssetKind.STABLE
    assert amap["USDe"].underlying == "USD"
    assert "PEPE" not in amap
    assert "usdc" in amap
    assert 3 not in amap
    with pytest.raises(KeyError, match="PEPE"):
        _ = amap["PEPE"]
    with pytest.raises(KeyError):
        net_exposure(["PEPE"], [1.0])
    # wstETH shares stETH's basis factor; rate-bearing tokens have no fixed ratio.
    assert amap["wstETH"].basis_factor == amap["stETH"].basis_factor == "stETH/ETH"
    assert amap["rETH"].ratio is None
    assert amap["rETH"].basis_factor == "rETH/ETH"
    assert amap["WBTC"].underlying == "BTC"


def test_ambiguous_case_folding_requires_exact_symbol() -> None:
    amap = AssetMap((AssetSpec("ABC", "ABC"), AssetSpec("abc", "ABC")))
    assert amap["ABC"].symbol == "ABC"
    assert amap["abc"].symbol == "abc"
    with pytest.raises(KeyError):
        _ = amap["Abc"]


def test_factor_kinds() -> None:
    amap = DEFAULT_ASSET_MAP
    assert amap.factor_kind("USD") is FactorKind.NUMERAIRE
    assert amap.factor_kind("USDC/USD") is FactorKind.PEG
    assert amap.factor_kind("stETH/ETH") is FactorKind.BASIS
    assert amap.factor_kind("WBTC/BTC") is FactorKind.BASIS
    assert amap.factor_kind("ETH") is FactorKind.RISKY
    assert amap.factor_kind("SOMETHING") is FactorKind.RISKY
    assert amap.basis_risk_of("stETH/ETH") == 0.05
    assert amap.basis_risk_of("ETH") == 0.0


def test_extending_and_validating_the_map() -> None:
    amap = DEFAULT_ASSET_MAP.with_assets(AssetSpec("ezETH", "ETH", AssetKind.STAKED, None, 0.1))
    assert amap["ezETH"].basis_factor == "ezETH/ETH"
    assert len(amap) == len(DEFAULT_ASSET_MAP) + 1
    with pytest.raises(ValueError, match="duplicate"):
        AssetMap((AssetSpec("X", "X"), AssetSpec("X", "Y")))
    with pytest.raises(ValueError, match="unknown symbol"):
        AssetMap((AssetSpec("X", "X"),), {"0xabc": "Y"})
    with pytest.raises(ValueError, match="ratio"):
        AssetSpec("X", "X", ratio=0.0)
    with pytest.raises(ValueError, match="basis_risk"):
        AssetSpec("X", "X", basis_risk=1.0)
    with pytest.raises(ValueError, match="stablecoin"):
        AssetSpec("EURC", "EUR", AssetKind.STABLE, 1.0, 0.1)
