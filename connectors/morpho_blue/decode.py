"""Pure decoding of Morpho Blue (v1.0.0) answers, market ids, and the protocol's own share and interest math.

``Morpho.market(id)``, ``idToMarketParams(id)`` and ``position(id, user)`` are public getters of structs:
they return the struct's members as separate outputs (6, 5 and 3 words). A market id is
``keccak256(abi.encode(marketParams))`` (``MarketParamsLib.id``).

The share conversions (``SharesMathLib``) and the accrual (``Morpho._accrueInterest`` with
``MathLib.wTaylorCompounded``) are repeated here so the connector can report a position's assets as the
protocol counts them at the snapshot's block. ``riskcore.venues.morpho_blue.health`` holds the same math for the risk
engine; connectors may not import riskcore, so the two are pinned equal by a test
(``tests/connectors/test_morpho_decode.py``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_hash.auto import keccak

from connectors.errors import DecodeError, InvalidInputError
from connectors.types import checksum

__all__ = [
    "MARKET_PARAMS_TYPE",
    "MARKET_TYPE",
    "MAX_FEE",
    "UINT128_MAX",
    "VIRTUAL_ASSETS",
    "VIRTUAL_SHARES",
    "WAD",
    "Accrued",
    "MarketParams",
    "MarketTotals",
    "PositionRaw",
    "accrue",
    "decode_market",
    "decode_market_params",
    "decode_position",
    "market_id",
    "normalize_market_id",
    "to_assets_down",
    "to_assets_up",
    "to_shares_down",
]

MARKET_PARAMS_TYPE = "(address,address,address,address,uint256)"
"""``MarketParams``: loanToken, collateralToken, oracle, irm, lltv."""
MARKET_TYPE = "(uint128,uint128,uint128,uint128,uint128,uint128)"
"""``Market``: totalSupplyAssets, totalSupplyShares, totalBorrowAssets, totalBorrowShares, lastUpdate, fee."""

WAD = 10**18
VIRTUAL_SHARES = 10**6
VIRTUAL_ASSETS = 1
UINT128_MAX = 2**128 - 1
MAX_FEE = 25 * 10**16
"""``ConstantsLib.MAX_FEE`` (25%): ``setFee`` refuses more, so no market holds more."""
_UINT256_MAX = 2**256 - 1
_ID = re.compile(r"^0x[0-9a-fA-F]{64}$")


def normalize_market_id(value: str | bytes) -> str:
    """A market id as ``0x`` + 64 lower-case hex digits; :class:`InvalidInputError` otherwise."""
    if isinstance(value, bytes | bytearray):
        if len(value) != 32:
            raise InvalidInputError(f"a market id is 32 bytes, got {len(value)}")
        return "0x" + bytes(value).hex()
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise InvalidInputError(f"not a market id (want 0x + 64 hex digits): {value!r}")
    return value.lower()


@dataclass(frozen=True, slots=True)
class MarketParams:
    """``MarketParams`` (addresses checksummed)."""

    loan_token: str
    collateral_token: str
    oracle: str
    irm: str
    lltv_wad: int

    def as_tuple(self) -> tuple[str, str, str, str, int]:
        return (self.loan_token, self.collateral_token, self.oracle, self.irm, self.lltv_wad)

    @property
    def id(self) -> str:
        return market_id(*self.as_tuple())


def market_id(loan_token: str, collateral_token: str, oracle: str, irm: str, lltv_wad: int) -> str:
    """``MarketParamsLib.id``: ``keccak256(abi.encode(loanToken, collateralToken, oracle, irm, lltv))``."""
    if not 0 <= lltv_wad <= _UINT256_MAX:
        raise InvalidInputError(f"lltv out of uint256 range: {lltv_wad}")
    words = b"".join(bytes(12) + bytes.fromhex(checksum(a)[2:]) for a in (loan_token, collateral_token, oracle, irm))
    return "0x" + keccak(words + lltv_wad.to_bytes(32, "big")).hex()


@dataclass(frozen=True, slots=True)
class MarketTotals:
    """``Market``: totals as of ``last_update`` (unix seconds), fee in WAD."""

    total_supply_assets: int
    total_supply_shares: int
    total_borrow_assets: int
    total_borrow_shares: int
    last_update: int
    fee_wad: int

    def as_tuple(self) -> tuple[int, int, int, int, int, int]:
        return (
            self.total_supply_assets,
            self.total_supply_shares,
            self.total_borrow_assets,
            self.total_borrow_shares,
            self.last_update,
            self.fee_wad,
        )


@dataclass(frozen=True, slots=True)
class PositionRaw:
    supply_shares: int
    borrow_shares: int
    collateral: int


def _ints(value: Sequence[Any], n: int, what: str) -> list[int]:
    if not isinstance(value, tuple | list) or len(value) != n:
        raise DecodeError(f"{what} has {n} fields, got {value!r}")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value):
        raise DecodeError(f"{what} fields must be non-negative integers, got {value!r}")
    return [int(v) for v in value]


def decode_market(value: Sequence[Any]) -> MarketTotals:
    """From the 6 decoded outputs of ``market(bytes32)``; a fee above :data:`MAX_FEE` is a :class:`DecodeError`
    (the protocol cannot hold one, and :func:`accrue` would divide by zero or mint negative shares with it)."""
    v = _ints(value, 6, "Market")
    if any(x > UINT128_MAX for x in v):
        raise DecodeError(f"Market fields are uint128, got {v}")
    if v[5] > MAX_FEE:
        raise DecodeError(f"Market.fee {v[5]} is above the protocol's maximum {MAX_FEE}")
    return MarketTotals(*v)


def decode_market_params(value: Sequence[Any]) -> MarketParams:
    """From the 5 decoded outputs of ``idToMarketParams(bytes32)``."""
    if not isinstance(value, tuple | list) or len(value) != 5:
        raise DecodeError(f"MarketParams has 5 fields, got {value!r}")
    *addrs, lltv = value
    try:
        loan, coll, oracle, irm = (checksum(a) for a in addrs)
    except InvalidInputError as exc:
        raise DecodeError(f"MarketParams holds a non-address: {exc}") from exc
    if not isinstance(lltv, int) or isinstance(lltv, bool) or lltv < 0:
        raise DecodeError(f"MarketParams.lltv is not a uint256: {lltv!r}")
    return MarketParams(loan, coll, oracle, irm, lltv)


def decode_position(value: Sequence[Any]) -> PositionRaw:
    """From the 3 decoded outputs of ``position(bytes32,address)``."""
    supply, borrow, coll = _ints(value, 3, "Position")
    if borrow > UINT128_MAX or coll > UINT128_MAX:
        raise DecodeError(f"Position.borrowShares and .collateral are uint128, got {value!r}")
    return PositionRaw(supply, borrow, coll)


# --- the protocol's math (same as riskcore.venues.morpho_blue.health; pinned equal by a test) ---------------------
def to_shares_down(assets: int, total_assets: int, total_shares: int) -> int:
    return assets * (total_shares + VIRTUAL_SHARES) // (total_assets + VIRTUAL_ASSETS)


def to_assets_down(shares: int, total_assets: int, total_shares: int) -> int:
    return shares * (total_assets + VIRTUAL_ASSETS) // (total_shares + VIRTUAL_SHARES)


def to_assets_up(shares: int, total_assets: int, total_shares: int) -> int:
    d = total_shares + VIRTUAL_SHARES
    return (shares * (total_assets + VIRTUAL_ASSETS) + d - 1) // d


@dataclass(frozen=True, slots=True)
class Accrued:
    """The market totals after ``_accrueInterest`` at ``timestamp``."""

    total_supply_assets: int
    total_supply_shares: int
    total_borrow_assets: int
    total_borrow_shares: int
    interest: int
    fee_shares: int
    timestamp: int


def accrue(totals: MarketTotals, borrow_rate_wad: int | None, timestamp: int) -> Accrued:
    """``Morpho._accrueInterest`` at ``timestamp`` with the IRM's per-second rate (None: no IRM).

    A timestamp before ``last_update`` (a block older than the market's last touch cannot happen on-chain)
    raises :class:`DecodeError`; totals past uint128 (``MAX_UINT128_EXCEEDED`` on-chain) too.
    """
    t = totals
    elapsed = timestamp - t.last_update
    if elapsed < 0:
        raise DecodeError(f"block timestamp {timestamp} is before the market's lastUpdate {t.last_update}")
    if elapsed == 0 or borrow_rate_wad is None:
        return Accrued(
            t.total_supply_assets, t.total_supply_shares, t.total_borrow_assets, t.total_borrow_shares, 0, 0, timestamp
        )
    first = borrow_rate_wad * elapsed
    second = first * first // (2 * WAD)
    third = second * first // (3 * WAD)
    interest = t.total_borrow_assets * (first + second + third) // WAD
    borrow = t.total_borrow_assets + interest
    supply = t.total_supply_assets + interest
    fee_shares = 0
    if t.fee_wad:
        fee_amount = interest * t.fee_wad // WAD
        fee_shares = to_shares_down(fee_amount, supply - fee_amount, t.total_supply_shares)
    shares = t.total_supply_shares + fee_shares
    if max(borrow, supply, shares) > UINT128_MAX:
        raise DecodeError(f"accrued totals pass uint128 (rate {borrow_rate_wad}, {elapsed} s): Morpho would revert")
    return Accrued(supply, shares, borrow, t.total_borrow_shares, interest, fee_shares, timestamp)
