"""The Morpho Blue calls the keeper makes: ``repay`` / ``supplyCollateral`` / ``withdrawCollateral`` calldata
with the market's ``MarketParams``, and the reads its health is judged with (``idToMarketParams``,
``position``, ``market``, the oracle's ``price``).

    repay(marketParams, assets, shares=0, onBehalf, data="")
    supplyCollateral(marketParams, assets, onBehalf, data="")
    withdrawCollateral(marketParams, assets, onBehalf, receiver)

Amounts are raw token integers of the market's loan token (``repay``) or collateral token (the others).
Builders take addresses as ``0x`` + 40 hex digits (any case) and market ids as ``0x`` + 64 hex digits, and
return calldata bytes; an argument that does not encode is an :class:`~connectors.errors.InvalidInputError`.
Nothing here does I/O.
"""

from __future__ import annotations

from connectors.evm.abi import Fn
from connectors.morpho_blue.connector import ID_TO_MARKET_PARAMS, MARKET, POSITION, PRICE
from connectors.morpho_blue.decode import (
    MARKET_PARAMS_TYPE,
    MarketParams,
    MarketTotals,
    PositionRaw,
    decode_market,
    decode_market_params,
    decode_position,
    normalize_market_id,
)

__all__ = [
    "REPAY",
    "SUPPLY_COLLATERAL",
    "WITHDRAW_COLLATERAL",
    "MarketParams",
    "MarketTotals",
    "PositionRaw",
    "market_answer",
    "market_call",
    "market_params_answer",
    "market_params_call",
    "position_answer",
    "position_call",
    "price_answer",
    "price_call",
    "repay_call",
    "supply_collateral_call",
    "withdraw_collateral_call",
]

REPAY = Fn(f"repay({MARKET_PARAMS_TYPE},uint256,uint256,address,bytes)(uint256,uint256)")
SUPPLY_COLLATERAL = Fn(f"supplyCollateral({MARKET_PARAMS_TYPE},uint256,address,bytes)")
WITHDRAW_COLLATERAL = Fn(f"withdrawCollateral({MARKET_PARAMS_TYPE},uint256,address,address)")


def repay_call(market: MarketParams, assets: int, on_behalf: str) -> bytes:
    """Calldata of ``Morpho.repay(marketParams, assets, 0, onBehalf, "")``: repay ``assets`` of the loan token."""
    return REPAY.encode(market.as_tuple(), assets, 0, on_behalf, b"")


def supply_collateral_call(market: MarketParams, assets: int, on_behalf: str) -> bytes:
    """Calldata of ``Morpho.supplyCollateral(marketParams, assets, onBehalf, "")``."""
    return SUPPLY_COLLATERAL.encode(market.as_tuple(), assets, on_behalf, b"")


def withdraw_collateral_call(market: MarketParams, assets: int, on_behalf: str, receiver: str) -> bytes:
    """Calldata of ``Morpho.withdrawCollateral(marketParams, assets, onBehalf, receiver)``."""
    return WITHDRAW_COLLATERAL.encode(market.as_tuple(), assets, on_behalf, receiver)


def _id(market_id: str) -> bytes:
    return bytes.fromhex(normalize_market_id(market_id)[2:])


def market_params_call(market_id: str) -> bytes:
    """Calldata of ``Morpho.idToMarketParams(id)``; decode the answer with :func:`market_params_answer`."""
    return ID_TO_MARKET_PARAMS.encode(_id(market_id))


def market_params_answer(data: bytes) -> MarketParams:
    """The market's ``MarketParams`` (addresses checksummed)."""
    return decode_market_params(ID_TO_MARKET_PARAMS.decode(data))


def position_call(market_id: str, user: str) -> bytes:
    """Calldata of ``Morpho.position(id, user)``; decode the answer with :func:`position_answer`."""
    return POSITION.encode(_id(market_id), user)


def position_answer(data: bytes) -> PositionRaw:
    """The user's supply shares, borrow shares and collateral (raw) in the market."""
    return decode_position(POSITION.decode(data))


def market_call(market_id: str) -> bytes:
    """Calldata of ``Morpho.market(id)``; decode the answer with :func:`market_answer`."""
    return MARKET.encode(_id(market_id))


def market_answer(data: bytes) -> MarketTotals:
    """The market's stored totals (as of its last update) and fee."""
    return decode_market(MARKET.decode(data))


def price_call() -> bytes:
    """Calldata of the market oracle's ``price()``; decode the answer with :func:`price_answer`."""
    return PRICE.encode()


def price_answer(data: bytes) -> int:
    """The oracle's price of one collateral unit in loan units, scaled by 1e36."""
    return int(PRICE.decode_one(data))
