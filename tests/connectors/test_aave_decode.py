"""The bit layouts against values built by hand from ``ReserveConfiguration.sol`` / ``UserConfiguration.sol``
(``@aave/core-v3`` 1.19.3, protocol v3.0.2)."""

from __future__ import annotations

import pytest
from eth_abi import encode
from hypothesis import given
from hypothesis import strategies as st

from connectors.aave_v3.decode import (
    RESERVE_DATA_TYPE,
    decode_reserve_configuration,
    decode_reserve_data,
    is_borrowing,
    is_using_as_collateral,
    user_reserve_flags,
)
from connectors.errors import DecodeError
from connectors.evm.abi import Fn

# (start bit, width) from ReserveConfiguration.sol's *_START_BIT_POSITION constants and masks.
LAYOUT = {
    "ltv_bps": (0, 16),
    "liquidation_threshold_bps": (16, 16),
    "liquidation_bonus_bps": (32, 16),
    "decimals": (48, 8),
    "active": (56, 1),
    "frozen": (57, 1),
    "borrowing_enabled": (58, 1),
    "stable_borrowing_enabled": (59, 1),
    "paused": (60, 1),
    "borrowable_in_isolation": (61, 1),
    "siloed_borrowing": (62, 1),
    "flashloan_enabled": (63, 1),
    "reserve_factor_bps": (64, 16),
    "borrow_cap": (80, 36),
    "supply_cap": (116, 36),
    "liquidation_protocol_fee_bps": (152, 16),
    "emode_category": (168, 8),
    "unbacked_mint_cap": (176, 36),
    "debt_ceiling": (212, 40),
}


def test_weth_like_configuration() -> None:
    # LTV 80.5%, LT 83%, bonus 105%, 18 decimals, active, borrowing, flashloans, RF 15%,
    # borrow cap 1.4M, supply cap 1.8M, protocol fee 10%, e-mode 1, debt ceiling 0.
    raw = (
        8050
        | 8300 << 16
        | 10500 << 32
        | 18 << 48
        | 1 << 56
        | 1 << 58
        | 1 << 63
        | 1500 << 64
        | 1_400_000 << 80
        | 1_800_000 << 116
        | 1000 << 152
        | 1 << 168
    )
    cfg = decode_reserve_configuration(raw)
    assert (cfg.ltv_bps, cfg.liquidation_threshold_bps, cfg.liquidation_bonus_bps) == (8050, 8300, 10500)
    assert cfg.decimals == 18
    assert (cfg.active, cfg.frozen, cfg.borrowing_enabled, cfg.stable_borrowing_enabled) == (True, False, True, False)
    assert (cfg.paused, cfg.borrowable_in_isolation, cfg.siloed_borrowing, cfg.flashloan_enabled) == (
        False,
        False,
        False,
        True,
    )
    assert cfg.reserve_factor_bps == 1500
    assert (cfg.borrow_cap, cfg.supply_cap) == (1_400_000, 1_800_000)
    assert cfg.liquidation_protocol_fee_bps == 1000
    assert cfg.emode_category == 1
    assert (cfg.unbacked_mint_cap, cfg.debt_ceiling) == (0, 0)


def test_aave_masks_match_the_layout() -> None:
    """Each solidity mask clears exactly the field's bits: ~mask == ((1 << width) - 1) << start."""
    masks = {
        "ltv_bps": 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF0000,
        "decimals": 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00FFFFFFFFFFFF,
        "flashloan_enabled": 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF7FFFFFFFFFFFFFFF,
        "borrow_cap": 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF000000000FFFFFFFFFFFFFFFFFFFF,
        "supply_cap": 0xFFFFFFFFFFFFFFFFFFFFFFFFFF000000000FFFFFFFFFFFFFFFFFFFFFFFFFFFFF,
        "liquidation_protocol_fee_bps": 0xFFFFFFFFFFFFFFFFFFFFFF0000FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF,
        "emode_category": 0xFFFFFFFFFFFFFFFFFFFF00FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF,
        "unbacked_mint_cap": 0xFFFFFFFFFFF000000000FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF,
        "debt_ceiling": 0xF0000000000FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF,
    }
    full = (1 << 256) - 1
    for name, mask in masks.items():
        start, width = LAYOUT[name]
        assert full ^ mask == ((1 << width) - 1) << start, name
        # the decoder reads back exactly that field, all ones
        assert getattr(decode_reserve_configuration(full ^ mask), name) in (True, (1 << width) - 1), name


@given(st.fixed_dictionaries({k: st.integers(0, (1 << w) - 1) for k, (_, w) in LAYOUT.items()}))
def test_every_field_round_trips(fields: dict[str, int]) -> None:
    raw = 0
    for k, v in fields.items():
        raw |= v << LAYOUT[k][0]
    cfg = decode_reserve_configuration(raw)
    for k, v in fields.items():
        got = getattr(cfg, k)
        assert (int(got) if isinstance(got, bool) else got) == v, k


def test_out_of_range_configuration() -> None:
    with pytest.raises(DecodeError):
        decode_reserve_configuration(1 << 256)
    with pytest.raises(DecodeError):
        decode_reserve_configuration(-1)


def test_user_configuration_bits() -> None:
    # reserve 0: collateral only (bit 1); reserve 2: borrowing only (bit 4); reserve 5: both (bits 10, 11)
    raw = 1 << 1 | 1 << 4 | 1 << 10 | 1 << 11
    assert [is_borrowing(raw, i) for i in range(6)] == [False, False, True, False, False, True]
    assert [is_using_as_collateral(raw, i) for i in range(6)] == [True, False, False, False, False, True]
    flags = [(f.reserve_id, f.borrowing, f.collateral) for f in user_reserve_flags(raw)]
    assert flags == [(0, False, True), (2, True, False), (5, True, True)]
    assert list(user_reserve_flags(0)) == []
    top = 1 << 255  # reserve 127 used as collateral
    assert [(f.reserve_id, f.collateral) for f in user_reserve_flags(top)] == [(127, True)]
    with pytest.raises(DecodeError):
        list(user_reserve_flags(-1))


def test_reserve_data_decode_through_fn() -> None:
    fn = Fn(f"getReserveData(address)({RESERVE_DATA_TYPE})")
    assert fn.static_return
    a, s, v, irs = ("0x" + c * 40 for c in "1234")
    values = ((123,), 10**27, 5, 10**27 + 7, 6, 8, 1_700_000_000, 3, a, s, v, irs, 11, 12, 13)
    raw = encode([RESERVE_DATA_TYPE], [values])
    rd = decode_reserve_data(fn.decode(raw)[0])
    assert rd.configuration == 123
    assert rd.liquidity_index_ray == 10**27
    assert rd.variable_borrow_index_ray == 10**27 + 7
    assert rd.last_update_timestamp == 1_700_000_000
    assert rd.id == 3
    assert (rd.a_token, rd.stable_debt_token, rd.variable_debt_token, rd.interest_rate_strategy) == (a, s, v, irs)
    assert (rd.accrued_to_treasury_raw, rd.unbacked_raw, rd.isolation_mode_total_debt_raw) == (11, 12, 13)
    with pytest.raises(DecodeError):
        decode_reserve_data(values[:-1])
