"""The Pool calls the keeper makes on Aave v3: ``repay`` / ``supply`` / ``withdraw`` calldata, and the
account's health read back with ``getUserAccountData``.

    repay(asset, amount, interestRateMode, onBehalfOf)       interestRateMode: 2 variable, 1 stable
    supply(asset, amount, onBehalfOf, referralCode)          referralCode 0
    withdraw(asset, amount, to)

Amounts are raw token integers; ``2**256 - 1`` is passed through as is (the Pool reads it as "all of it").
Builders take addresses as ``0x`` + 40 hex digits (any case) and return calldata bytes; an argument that does
not encode is an :class:`~connectors.errors.InvalidInputError`. Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from connectors.aave_v3.connector import GET_USER_ACCOUNT_DATA
from connectors.evm.abi import Fn

__all__ = [
    "NO_REFERRAL",
    "RATE_MODES",
    "REPAY",
    "STABLE",
    "SUPPLY",
    "VARIABLE",
    "WITHDRAW",
    "AccountData",
    "account_data_answer",
    "account_data_call",
    "repay_call",
    "supply_call",
    "withdraw_call",
]

REPAY = Fn("repay(address,uint256,uint256,address)(uint256)")
SUPPLY = Fn("supply(address,uint256,address,uint16)")
WITHDRAW = Fn("withdraw(address,uint256,address)(uint256)")

STABLE = 1
VARIABLE = 2
RATE_MODES = {STABLE: "stable", VARIABLE: "variable"}
"""``interestRateMode`` → the debt it repays."""
NO_REFERRAL = 0

_NO_DEBT = 2**255
"""``getUserAccountData`` answers ``type(uint256).max`` for an account without debt: any health factor at or
above this is "no debt"."""
_WAD = 10**18


def repay_call(asset: str, amount: int, interest_rate_mode: int, on_behalf_of: str) -> bytes:
    """Calldata of ``Pool.repay(asset, amount, interestRateMode, onBehalfOf)``."""
    return REPAY.encode(asset, amount, interest_rate_mode, on_behalf_of)


def supply_call(asset: str, amount: int, on_behalf_of: str, referral_code: int = NO_REFERRAL) -> bytes:
    """Calldata of ``Pool.supply(asset, amount, onBehalfOf, referralCode)``."""
    return SUPPLY.encode(asset, amount, on_behalf_of, referral_code)


def withdraw_call(asset: str, amount: int, to: str) -> bytes:
    """Calldata of ``Pool.withdraw(asset, amount, to)``."""
    return WITHDRAW.encode(asset, amount, to)


@dataclass(frozen=True, slots=True)
class AccountData:
    """``Pool.getUserAccountData(user)``: totals in the oracle's base currency, threshold and LTV in bps,
    the health factor in WAD."""

    total_collateral_base: int
    total_debt_base: int
    available_borrows_base: int
    current_liquidation_threshold: int
    ltv: int
    health_factor_wad: int

    @property
    def health_factor(self) -> float | None:
        """The health factor as a float; ``None`` for an account without debt."""
        hf = self.health_factor_wad
        return None if hf >= _NO_DEBT else hf / _WAD


def account_data_call(user: str) -> bytes:
    """Calldata of ``Pool.getUserAccountData(user)``; decode the answer with :func:`account_data_answer`."""
    return GET_USER_ACCOUNT_DATA.encode(user)


def account_data_answer(data: bytes) -> AccountData:
    """The decoded answer of ``getUserAccountData``."""
    return AccountData(*(int(v) for v in GET_USER_ACCOUNT_DATA.decode(data)))
