"""Morpho Blue decoding, market ids, deployments; the connector's copy of the protocol's math pinned to riskcore's."""

from __future__ import annotations

import pytest
from eth_abi.abi import encode
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from connectors.errors import DecodeError, InvalidInputError
from connectors.morpho_blue import decode as d
from connectors.morpho_blue.connector import ID_TO_MARKET_PARAMS, MARKET, POSITION
from connectors.morpho_blue.deployments import (
    DEPLOYMENTS,
    MORPHO_BLUE_ADDRESS,
    MORPHO_BLUE_ETHEREUM,
    WSTETH_WETH_945,
    MorphoDeployment,
    get_deployment,
)
from riskcore.venues.morpho_blue import health as rk

U128 = 2**128 - 1


def test_market_id_is_keccak_of_the_abi_encoded_params() -> None:
    # Ethereum wstETH/WETH 94.5% and Base WETH/USDC 86%, ids as published.
    assert (
        d.market_id(
            "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2",
            "0x7f39C581F595B53c5cb19bD0b3f8dA6c935E2Ca0",
            "0x2a01EB9496094dA03c4E364Def50f5aD1280AD72",
            "0x870aC11D48B15DB9a138Cf899d20F13F79Ba00BC",
            945 * 10**15,
        )
        == WSTETH_WETH_945
    )
    assert (
        d.market_id(
            "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913",
            "0x4200000000000000000000000000000000000006",
            "0xFEa2D58cEfCb9fcb597723c6bAE66fFE4193aFE4",
            "0x46415998764C29aB2a25CbeA6254146D50D22687",
            86 * 10**16,
        )
        == "0x8793cf302b8ffd655ab97bd1c695dbd967807e8367a65cb2f4edaf1380ba1bda"
    )


def test_getters_decode_into_their_structs() -> None:
    raw = encode(["uint128"] * 6, [1, 2, 3, 4, 5, 6])
    assert d.decode_market(MARKET.decode(raw)) == d.MarketTotals(1, 2, 3, 4, 5, 6)
    addrs = ["0x" + f"{i:02x}" * 20 for i in range(1, 5)]
    raw = encode(["address"] * 4 + ["uint256"], [*addrs, 86 * 10**16])
    params = d.decode_market_params(ID_TO_MARKET_PARAMS.decode(raw))
    assert params.loan_token.lower() == addrs[0]
    assert params.irm.lower() == addrs[3]
    assert params.lltv_wad == 86 * 10**16
    assert params.id == d.market_id(addrs[0], addrs[1], addrs[2], addrs[3], 86 * 10**16)
    raw = encode(["uint256", "uint128", "uint128"], [2**200, U128, 7])
    assert d.decode_position(POSITION.decode(raw)) == d.PositionRaw(2**200, U128, 7)


@pytest.mark.parametrize(
    ("fn", "raw"),
    [
        (MARKET, encode(["uint128"] * 5, [1, 2, 3, 4, 5])),  # truncated
        (MARKET, encode(["uint256"] * 6, [2**128, 0, 0, 0, 0, 0])),  # not a uint128
        (POSITION, b""),
        (ID_TO_MARKET_PARAMS, encode(["uint256"] * 5, [2**160, 0, 0, 0, 0])),  # not an address
    ],
)
def test_malformed_answers_are_decode_errors(fn: object, raw: bytes) -> None:
    with pytest.raises(DecodeError):
        fn.decode(raw)  # type: ignore[attr-defined]


def test_malformed_values_are_decode_errors() -> None:
    with pytest.raises(DecodeError):
        d.decode_market((1, 2, 3))
    with pytest.raises(DecodeError):
        d.decode_market((1, 2, 3, 4, 5, -6))
    with pytest.raises(DecodeError):
        d.decode_position((1, 2**128, 0))
    with pytest.raises(DecodeError):
        d.decode_market_params(("0x1234", "0x" + "00" * 20, "0x" + "00" * 20, "0x" + "00" * 20, 1))


def test_share_math_edge_cases_by_hand() -> None:
    # Empty market: 1 virtual asset against 1e6 virtual shares.
    assert d.to_shares_down(1, 0, 0) == 10**6
    assert d.to_assets_down(1, 0, 0) == 0  # 1 / 1e6 → 0
    assert d.to_assets_up(1, 0, 0) == 1  # 1 / 1e6 → 1
    assert d.to_assets_down(10**6, 0, 0) == 1
    assert d.to_assets_up(10**6 + 1, 0, 0) == 2
    # 100 assets for 1e8 shares (plus virtual): 1e8 shares → 1e8 × 101 / (1e8 + 1e6) = 100.0
    assert d.to_assets_down(10**8, 100, 10**8) == 100
    assert d.to_assets_up(10**8, 100, 10**8) == 100
    assert d.to_assets_up(10**8 + 1, 100, 10**8) == 101  # any remainder rounds up
    assert d.to_assets_down(10**8 - 1, 100, 10**8) == 99
    assert d.to_assets_up(0, 123, 456) == 0
    # After interest: 3 assets for 1e6 shares → 1e6 shares are worth (3 + 1) / 2 = 2 assets exactly
    assert d.to_assets_down(10**6, 3, 10**6) == 2
    assert d.to_assets_up(10**6 + 1, 3, 10**6) == 3


@settings(max_examples=300, deadline=None)
@given(
    shares=st.integers(0, U128),
    assets_total=st.integers(0, U128),
    shares_total=st.integers(0, U128),
)
def test_connector_share_math_equals_riskcore(shares: int, assets_total: int, shares_total: int) -> None:
    assert d.to_assets_down(shares, assets_total, shares_total) == rk.to_assets_down(shares, assets_total, shares_total)
    assert d.to_assets_up(shares, assets_total, shares_total) == rk.to_assets_up(shares, assets_total, shares_total)
    assert d.to_shares_down(shares, assets_total, shares_total) == rk.to_shares_down(shares, assets_total, shares_total)


@settings(max_examples=300, deadline=None)
@given(
    supply=st.integers(0, 10**30),
    borrow_frac=st.integers(0, 100),
    shares_per_asset=st.integers(1, 10**7),
    fee=st.integers(0, rk.MAX_FEE),
    rate=st.one_of(st.none(), st.integers(0, 10**11)),
    elapsed=st.integers(0, 5 * 365 * 86_400),
)
def test_connector_accrual_equals_riskcore(
    supply: int, borrow_frac: int, shares_per_asset: int, fee: int, rate: int | None, elapsed: int
) -> None:
    borrow = supply * borrow_frac // 100
    totals = d.MarketTotals(supply, supply * shares_per_asset, borrow, borrow * shares_per_asset, 1_000, fee)
    state = rk.MorphoMarketState(*totals.as_tuple())
    try:
        ours = d.accrue(totals, rate, 1_000 + elapsed)
    except DecodeError:
        with pytest.raises(OverflowError):
            rk.accrue_interest(state, rate, 1_000 + elapsed)
        return
    theirs = rk.accrue_interest(state, rate, 1_000 + elapsed)
    m = theirs.market
    assert (ours.total_supply_assets, ours.total_supply_shares, ours.total_borrow_assets, ours.total_borrow_shares) == (
        m.total_supply_assets,
        m.total_supply_shares,
        m.total_borrow_assets,
        m.total_borrow_shares,
    )
    assert (ours.interest, ours.fee_shares) == (theirs.interest, theirs.fee_shares)


def test_accrual_before_last_update_is_refused() -> None:
    with pytest.raises(DecodeError):
        d.accrue(d.MarketTotals(1, 1, 1, 1, 100, 0), 10**9, 99)


def test_market_ids_and_deployments() -> None:
    assert d.normalize_market_id("0x" + "AB" * 32) == "0x" + "ab" * 32
    assert d.normalize_market_id(bytes(32)) == "0x" + "00" * 32
    for bad in ("0x1234", "ab" * 32, "0x" + "zz" * 32):
        with pytest.raises(InvalidInputError):
            d.normalize_market_id(bad)
    with pytest.raises(InvalidInputError):
        d.normalize_market_id(bytes(31))
    assert MORPHO_BLUE_ETHEREUM.morpho == MORPHO_BLUE_ADDRESS
    assert MORPHO_BLUE_ETHEREUM.chain_id == 1
    assert get_deployment("morpho_blue_ethereum") is DEPLOYMENTS["morpho_blue_ethereum"]
    with pytest.raises(InvalidInputError, match="known"):
        get_deployment("nope")
    dep = MorphoDeployment(name="x", chain_id=1, morpho=MORPHO_BLUE_ADDRESS, markets=("0x" + "CD" * 32,))
    assert dep.markets == ("0x" + "cd" * 32,)
    with pytest.raises(ValidationError):
        MorphoDeployment(name="x", chain_id=1, morpho=MORPHO_BLUE_ADDRESS, markets=("0x12",))
    with pytest.raises(ValidationError):
        MorphoDeployment(name="x", chain_id=1, morpho=MORPHO_BLUE_ADDRESS, markets=("0x" + "cd" * 32,) * 2)
