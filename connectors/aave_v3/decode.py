"""Pure decoding of Aave v3 (3.0.x) packed state: reserve configuration, user configuration, ReserveData.

Bit layouts follow ``ReserveConfiguration.sol`` and ``UserConfiguration.sol`` of ``@aave/core-v3`` 1.19.x
(protocol v3.0.2); every integer stays an ``int`` in the protocol's own unit (bps = 1e4, ray = 1e27,
caps in whole tokens, debt ceiling with 2 decimals).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from connectors.errors import DecodeError

__all__ = [
    "RESERVE_DATA_TYPE",
    "ReserveConfig",
    "ReserveData",
    "UserReserveFlags",
    "decode_reserve_configuration",
    "decode_reserve_data",
    "is_borrowing",
    "is_using_as_collateral",
    "user_reserve_flags",
]


def _bits(raw: int, start: int, width: int) -> int:
    return (raw >> start) & ((1 << width) - 1)


@dataclass(frozen=True, slots=True)
class ReserveConfig:
    """``ReserveConfigurationMap`` unpacked. Widths: ltv/lt/bonus/reserve factor/protocol fee 16 bits (bps),
    decimals 8, borrow/supply/unbacked caps 36 (whole tokens, 0 = none), e-mode 8, debt ceiling 40 (2 decimals)."""

    ltv_bps: int
    liquidation_threshold_bps: int
    liquidation_bonus_bps: int
    decimals: int
    active: bool
    frozen: bool
    borrowing_enabled: bool
    stable_borrowing_enabled: bool
    paused: bool
    borrowable_in_isolation: bool
    siloed_borrowing: bool
    flashloan_enabled: bool
    reserve_factor_bps: int
    borrow_cap: int
    supply_cap: int
    liquidation_protocol_fee_bps: int
    emode_category: int
    unbacked_mint_cap: int
    debt_ceiling: int


def decode_reserve_configuration(raw: int) -> ReserveConfig:
    """Unpack ``ReserveConfigurationMap.data`` (a uint256)."""
    if not 0 <= raw < 1 << 256:
        raise DecodeError(f"reserve configuration out of uint256 range: {raw}")
    return ReserveConfig(
        ltv_bps=_bits(raw, 0, 16),
        liquidation_threshold_bps=_bits(raw, 16, 16),
        liquidation_bonus_bps=_bits(raw, 32, 16),
        decimals=_bits(raw, 48, 8),
        active=bool(_bits(raw, 56, 1)),
        frozen=bool(_bits(raw, 57, 1)),
        borrowing_enabled=bool(_bits(raw, 58, 1)),
        stable_borrowing_enabled=bool(_bits(raw, 59, 1)),
        paused=bool(_bits(raw, 60, 1)),
        borrowable_in_isolation=bool(_bits(raw, 61, 1)),
        siloed_borrowing=bool(_bits(raw, 62, 1)),
        flashloan_enabled=bool(_bits(raw, 63, 1)),
        reserve_factor_bps=_bits(raw, 64, 16),
        borrow_cap=_bits(raw, 80, 36),
        supply_cap=_bits(raw, 116, 36),
        liquidation_protocol_fee_bps=_bits(raw, 152, 16),
        emode_category=_bits(raw, 168, 8),
        unbacked_mint_cap=_bits(raw, 176, 36),
        debt_ceiling=_bits(raw, 212, 40),
    )


def is_borrowing(user_config: int, reserve_id: int) -> bool:
    """Bit ``2*id`` of ``UserConfigurationMap.data``."""
    return bool((user_config >> (reserve_id << 1)) & 1)


def is_using_as_collateral(user_config: int, reserve_id: int) -> bool:
    """Bit ``2*id + 1`` of ``UserConfigurationMap.data``."""
    return bool((user_config >> ((reserve_id << 1) + 1)) & 1)


@dataclass(frozen=True, slots=True)
class UserReserveFlags:
    reserve_id: int
    borrowing: bool
    collateral: bool


def user_reserve_flags(user_config: int) -> Iterator[UserReserveFlags]:
    """Every reserve id with at least one bit set in a user configuration, ascending."""
    if user_config < 0:
        raise DecodeError(f"negative user configuration: {user_config}")
    rid = 0
    while user_config:
        pair = user_config & 3
        if pair:
            yield UserReserveFlags(rid, bool(pair & 1), bool(pair & 2))
        user_config >>= 2
        rid += 1


RESERVE_DATA_TYPE = (
    "((uint256),uint128,uint128,uint128,uint128,uint128,uint40,uint16,address,address,address,address,"
    "uint128,uint128,uint128)"
)
"""ABI of ``DataTypes.ReserveData`` (v3.0.x) as returned by ``Pool.getReserveData``: 15 static words."""


@dataclass(frozen=True, slots=True)
class ReserveData:
    """``Pool.getReserveData`` of v3.0.x; addresses lower-case hex as decoded."""

    configuration: int
    liquidity_index_ray: int
    current_liquidity_rate_ray: int
    variable_borrow_index_ray: int
    current_variable_borrow_rate_ray: int
    current_stable_borrow_rate_ray: int
    last_update_timestamp: int
    id: int
    a_token: str
    stable_debt_token: str
    variable_debt_token: str
    interest_rate_strategy: str
    accrued_to_treasury_raw: int
    unbacked_raw: int
    isolation_mode_total_debt_raw: int


def decode_reserve_data(value: Sequence[Any]) -> ReserveData:
    """From the decoded ``RESERVE_DATA_TYPE`` tuple (``Fn.decode(...)[0]``)."""
    if len(value) != 15:
        raise DecodeError(f"ReserveData has 15 fields, got {len(value)}")
    cfg = value[0]
    if not isinstance(cfg, tuple | list) or len(cfg) != 1:
        raise DecodeError(f"ReserveData.configuration is not a one-field struct: {cfg!r}")
    return ReserveData(cfg[0], *value[1:])
