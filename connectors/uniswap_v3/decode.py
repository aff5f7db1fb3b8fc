"""Pure decoding of Uniswap v3 answers, and the addresses and keys the contracts derive off-chain.

Layouts follow ``@uniswap/v3-core`` 1.0.x (``UniswapV3Pool``: ``slot0``, ``ticks``, ``positions``) and
``@uniswap/v3-periphery`` 1.x (``NonfungiblePositionManager.positions``). Addresses come back checksummed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_hash.auto import keccak

from connectors.errors import DecodeError, InvalidInputError
from connectors.evm.abi import SYMBOL, Fn, decode_symbol
from connectors.types import checksum

__all__ = [
    "BALANCE_OF",
    "DECIMALS",
    "FACTORY",
    "FEE_GROWTH_GLOBAL0",
    "FEE_GROWTH_GLOBAL1",
    "GET_POOL",
    "LIQUIDITY",
    "MAX_TICK",
    "MIN_TICK",
    "POOL_POSITIONS",
    "POSITIONS",
    "SLOT0",
    "SYMBOL",
    "TICKS",
    "TOKEN_OF_OWNER_BY_INDEX",
    "PositionData",
    "Slot0",
    "compute_pool_address",
    "decode_pool_position",
    "decode_position",
    "decode_slot0",
    "decode_symbol",
    "decode_tick",
    "position_key",
]

MIN_TICK = -887272
MAX_TICK = 887272

# NonfungiblePositionManager
BALANCE_OF = Fn("balanceOf(address)(uint256)")
TOKEN_OF_OWNER_BY_INDEX = Fn("tokenOfOwnerByIndex(address,uint256)(uint256)")
POSITIONS = Fn(
    "positions(uint256)(uint96,address,address,address,uint24,int24,int24,uint128,uint256,uint256,uint128,uint128)"
)
FACTORY = Fn("factory()(address)")
# UniswapV3Factory
GET_POOL = Fn("getPool(address,address,uint24)(address)")
# UniswapV3Pool
SLOT0 = Fn("slot0()(uint160,int24,uint16,uint16,uint16,uint8,bool)")
LIQUIDITY = Fn("liquidity()(uint128)")
FEE_GROWTH_GLOBAL0 = Fn("feeGrowthGlobal0X128()(uint256)")
FEE_GROWTH_GLOBAL1 = Fn("feeGrowthGlobal1X128()(uint256)")
TICKS = Fn("ticks(int24)(uint128,int128,uint256,uint256,int56,uint160,uint32,bool)")
POOL_POSITIONS = Fn("positions(bytes32)(uint128,uint256,uint256,uint128,uint128)")
# ERC-20
DECIMALS = Fn("decimals()(uint8)")


@dataclass(frozen=True, slots=True)
class PositionData:
    """``NonfungiblePositionManager.positions(tokenId)``, checked (addresses checksummed)."""

    nonce: int
    operator: str
    token0: str
    token1: str
    fee: int
    tick_lower: int
    tick_upper: int
    liquidity: int
    fee_growth_inside0_last_x128: int
    fee_growth_inside1_last_x128: int
    tokens_owed0: int
    tokens_owed1: int


def decode_position(value: Sequence[Any]) -> PositionData:
    """From ``POSITIONS.decode(raw)`` (12 fields); :class:`DecodeError` on an inconsistent position."""
    if len(value) != 12:
        raise DecodeError(f"positions() has 12 fields, got {len(value)}")
    data = PositionData(
        int(value[0]), checksum(value[1]), checksum(value[2]), checksum(value[3]), *(int(v) for v in value[4:])
    )
    if int(data.token0, 16) >= int(data.token1, 16):
        raise DecodeError(f"position tokens are not sorted: token0 {data.token0} >= token1 {data.token1}")
    if not MIN_TICK <= data.tick_lower < data.tick_upper <= MAX_TICK:
        raise DecodeError(f"position range [{data.tick_lower}, {data.tick_upper}) is not a valid tick range")
    return data


@dataclass(frozen=True, slots=True)
class Slot0:
    sqrt_price_x96: int
    tick: int
    observation_index: int
    observation_cardinality: int
    observation_cardinality_next: int
    fee_protocol: int
    unlocked: bool


def decode_slot0(value: Sequence[Any]) -> Slot0:
    """From ``SLOT0.decode(raw)``; a zero sqrt price (an uninitialized pool) is a :class:`DecodeError`."""
    if len(value) != 7:
        raise DecodeError(f"slot0() has 7 fields, got {len(value)}")
    out = Slot0(*value)
    if out.sqrt_price_x96 == 0:
        raise DecodeError("slot0().sqrtPriceX96 is 0: the pool is not initialized")
    return out


def decode_tick(value: Sequence[Any]) -> tuple[int, int, int, int, bool]:
    """``(liquidityGross, liquidityNet, feeGrowthOutside0X128, feeGrowthOutside1X128, initialized)``."""
    if len(value) != 8:
        raise DecodeError(f"ticks() has 8 fields, got {len(value)}")
    return int(value[0]), int(value[1]), int(value[2]), int(value[3]), bool(value[7])


def decode_pool_position(value: Sequence[Any]) -> tuple[int, int, int, int, int]:
    """``(liquidity, feeGrowthInside0LastX128, feeGrowthInside1LastX128, tokensOwed0, tokensOwed1)``."""
    if len(value) != 5:
        raise DecodeError(f"pool positions() has 5 fields, got {len(value)}")
    return tuple(int(v) for v in value)  # type: ignore[return-value]


def _address_bytes(address: str) -> bytes:
    return bytes.fromhex(checksum(address)[2:])


def compute_pool_address(factory: str, token0: str, token1: str, fee: int, init_code_hash: str) -> str:
    """``PoolAddress.computeAddress``: the pool's CREATE2 address from the factory, the sorted tokens and the fee.

    ``keccak256(0xff ++ factory ++ keccak256(abi.encode(token0, token1, fee)) ++ init_code_hash)[12:]``
    """
    t0, t1 = _address_bytes(token0), _address_bytes(token1)
    if t0 >= t1:
        raise InvalidInputError(f"pool tokens must be sorted and distinct: {token0}, {token1}")
    if not 0 <= fee < 1 << 24:
        raise InvalidInputError(f"fee {fee} is not a uint24")
    code_hash = bytes.fromhex(init_code_hash.removeprefix("0x"))
    if len(code_hash) != 32:
        raise InvalidInputError("init code hash must be 32 bytes")
    salt = keccak(bytes(12) + t0 + bytes(12) + t1 + fee.to_bytes(32, "big"))
    digest = keccak(b"\xff" + _address_bytes(factory) + salt + code_hash)
    return checksum("0x" + digest[12:].hex())


def position_key(owner: str, tick_lower: int, tick_upper: int) -> bytes:
    """``PositionKey.compute``: ``keccak256(abi.encodePacked(owner, int24 tickLower, int24 tickUpper))``."""
    return keccak(
        _address_bytes(owner)
        + tick_lower.to_bytes(3, "big", signed=True)
        + tick_upper.to_bytes(3, "big", signed=True)
    )
