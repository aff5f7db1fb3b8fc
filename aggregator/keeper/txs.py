"""Calldata for rebalance actions: Aave v3 and Morpho Blue repay / supply / withdraw, and ERC-20 approvals.

An :class:`ActionSpec` is one rebalance action in on-chain terms (token address, raw amount, target contract);
:func:`action_call` turns it into a :class:`Call` (``to``, calldata, a readable description), and
:func:`build_calls` turns a whole plan into the calls to send, in order, with the ERC-20 approvals the plan
needs inserted before the first action that pulls each token::

    Aave v3 Pool     repay(asset, amount, interestRateMode, onBehalfOf)
                     supply(asset, amount, onBehalfOf, referralCode=0)
                     withdraw(asset, amount, to=wallet)
    Morpho Blue      repay(marketParams, assets, shares=0, onBehalf, data="")
                     supplyCollateral(marketParams, assets, onBehalf, data="")
                     withdrawCollateral(marketParams, assets, onBehalf, receiver=wallet)

For Morpho, ``supply`` and ``withdraw`` act on the market's collateral (``supplyCollateral`` /
``withdrawCollateral``) and ``repay`` on its loan token; the action's ``token`` must be that token.
Amounts are raw token integers; ``2**256 - 1`` is passed through as is (Aave: "all of it").

Nothing here does I/O: reading allowances is the caller's (:func:`allowance_call_data` gives the calldata).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from connectors.errors import InvalidInputError
from connectors.evm.abi import Fn
from connectors.types import checksum

__all__ = [
    "AAVE_REPAY",
    "AAVE_SUPPLY",
    "AAVE_WITHDRAW",
    "ALLOWANCE",
    "APPROVE",
    "MAX_UINT256",
    "MORPHO_REPAY",
    "MORPHO_SUPPLY_COLLATERAL",
    "MORPHO_WITHDRAW_COLLATERAL",
    "ActionSpec",
    "Call",
    "MarketParams",
    "action_call",
    "allowance_call_data",
    "approval_call",
    "build_calls",
    "format_amount",
]

MAX_UINT256 = 2**256 - 1

_MARKET = "(address,address,address,address,uint256)"  # (loanToken, collateralToken, oracle, irm, lltv)

APPROVE = Fn("approve(address,uint256)(bool)")
ALLOWANCE = Fn("allowance(address,address)(uint256)")
AAVE_REPAY = Fn("repay(address,uint256,uint256,address)(uint256)")
AAVE_SUPPLY = Fn("supply(address,uint256,address,uint16)")
AAVE_WITHDRAW = Fn("withdraw(address,uint256,address)(uint256)")
MORPHO_REPAY = Fn(f"repay({_MARKET},uint256,uint256,address,bytes)(uint256,uint256)")
MORPHO_SUPPLY_COLLATERAL = Fn(f"supplyCollateral({_MARKET},uint256,address,bytes)")
MORPHO_WITHDRAW_COLLATERAL = Fn(f"withdrawCollateral({_MARKET},uint256,address,address)")

_NO_REFERRAL = 0
_PULLS = frozenset({"repay", "supply"})  # kinds that transferFrom the wallet into the target


@dataclass(frozen=True)
class Call:
    """One transaction to send: ``to`` (checksummed), ``data`` (``0x`` hex calldata), a readable description."""

    to: str
    data: str
    description: str
    value: int = 0


@dataclass(frozen=True)
class MarketParams:
    """Morpho Blue's ``MarketParams`` struct (``lltv`` in WAD)."""

    loan_token: str
    collateral_token: str
    oracle: str
    irm: str
    lltv: int

    def as_tuple(self) -> tuple[str, str, str, str, int]:
        """The ABI tuple ``(loanToken, collateralToken, oracle, irm, lltv)``, addresses checksummed."""
        return (
            _address(self.loan_token, "market loan_token"),
            _address(self.collateral_token, "market collateral_token"),
            _address(self.oracle, "market oracle"),
            _address(self.irm, "market irm"),
            self.lltv,
        )


@dataclass(frozen=True)
class ActionSpec:
    """One rebalance action in on-chain terms.

    ``wallet`` owns the position (``onBehalfOf`` / ``onBehalf``, and the receiver of withdrawals); ``token`` is
    the ERC-20 repaid, supplied or withdrawn; ``target`` the Aave Pool or the Morpho contract; ``market`` the
    Morpho market (required for Morpho); ``interest_rate_mode`` the Aave debt repaid (2 variable, 1 stable).
    """

    kind: Literal["repay", "supply", "withdraw"]
    protocol: Literal["aave_v3", "morpho_blue"]
    venue: str
    wallet: str
    token: str
    symbol: str
    decimals: int
    amount_raw: int
    target: str
    market: MarketParams | None = None
    interest_rate_mode: int = 2


def format_amount(amount_raw: int, decimals: int) -> str:
    """``1234500000`` with 6 decimals → ``"1,234.5"``; :data:`MAX_UINT256` → ``"all"``."""
    if amount_raw == MAX_UINT256:
        return "all"
    value = (Decimal(amount_raw).scaleb(-decimals)).normalize()
    return f"{value:,f}"


def approval_call(token: str, symbol: str, decimals: int, spender: str, amount_raw: int, spender_name: str) -> Call:
    """ERC-20 ``approve(spender, amount_raw)`` on ``token``."""
    _check_amount(amount_raw, f"approval of {symbol}")
    token_cs, spender_cs = _address(token, "token"), _address(spender, "spender")
    data = APPROVE.encode(spender_cs, amount_raw)
    return Call(
        token_cs, "0x" + data.hex(), f"approve {format_amount(amount_raw, decimals)} {symbol} to {spender_name}"
    )


def allowance_call_data(owner: str, spender: str) -> bytes:
    """Calldata of ERC-20 ``allowance(owner, spender)``; decode the answer with ``ALLOWANCE.decode_one``."""
    return ALLOWANCE.encode(_address(owner, "owner"), _address(spender, "spender"))


def action_call(action: ActionSpec) -> Call:
    """The call that performs ``action`` (no approval; see :func:`build_calls`)."""
    _validate(action)
    wallet, token, target = (
        _address(action.wallet, "wallet"),
        _address(action.token, "token"),
        _address(action.target, "target"),
    )
    amount = action.amount_raw
    what = f"{format_amount(amount, action.decimals)} {action.symbol}"
    if action.protocol == "aave_v3":
        if action.kind == "repay":
            mode = "variable" if action.interest_rate_mode == 2 else "stable"
            data = AAVE_REPAY.encode(token, amount, action.interest_rate_mode, wallet)
            text = f"repay {what} {mode} debt on {action.venue} for {wallet}"
        elif action.kind == "supply":
            data = AAVE_SUPPLY.encode(token, amount, wallet, _NO_REFERRAL)
            text = f"supply {what} to {action.venue} for {wallet}"
        else:
            data = AAVE_WITHDRAW.encode(token, amount, wallet)
            text = f"withdraw {what} from {action.venue} to {wallet}"
    else:
        assert action.market is not None  # checked by _validate
        market = action.market.as_tuple()
        if action.kind == "repay":
            data = MORPHO_REPAY.encode(market, amount, 0, wallet, b"")
            text = f"repay {what} debt on {action.venue} for {wallet}"
        elif action.kind == "supply":
            data = MORPHO_SUPPLY_COLLATERAL.encode(market, amount, wallet, b"")
            text = f"supply {what} collateral to {action.venue} for {wallet}"
        else:
            data = MORPHO_WITHDRAW_COLLATERAL.encode(market, amount, wallet, wallet)
            text = f"withdraw {what} collateral from {action.venue} to {wallet}"
    return Call(target, "0x" + data.hex(), text)


def build_calls(actions: Sequence[ActionSpec], allowances: Mapping[tuple[str, str], int]) -> list[Call]:
    """The calls of a plan, in order, with approvals.

    Before the first action that pulls a token from the wallet (``repay``, ``supply``) into a spender (its
    ``target``), an ``approve`` of the total that spender pulls of that token over the whole plan (capped at
    :data:`MAX_UINT256`), unless ``allowances[(token, spender)]`` (the current allowance; keys in any address
    case, missing means 0) already covers it. ``withdraw`` needs no approval.
    """
    current = {
        (_address(t, "allowance token"), _address(s, "allowance spender")): a for (t, s), a in allowances.items()
    }
    totals: dict[tuple[str, str], int] = {}
    for action in actions:
        _validate(action)
        if action.kind in _PULLS:
            key = (_address(action.token, "token"), _address(action.target, "target"))
            totals[key] = min(totals.get(key, 0) + action.amount_raw, MAX_UINT256)
    calls: list[Call] = []
    approved: set[tuple[str, str]] = set()
    for action in actions:
        if action.kind in _PULLS:
            key = (_address(action.token, "token"), _address(action.target, "target"))
            if key not in approved:
                approved.add(key)
                total = totals[key]
                if current.get(key, 0) < total:
                    name = _spender_name(action)
                    calls.append(approval_call(key[0], action.symbol, action.decimals, key[1], total, name))
        calls.append(action_call(action))
    return calls


# --------------------------------------------------------------------------------------------- helpers
def _spender_name(action: ActionSpec) -> str:
    return f"{action.venue} Pool" if action.protocol == "aave_v3" else action.venue


def _check_amount(amount_raw: int, what: str) -> None:
    if not isinstance(amount_raw, int) or isinstance(amount_raw, bool):
        raise InvalidInputError(f"{what}: amount must be an int, got {type(amount_raw).__name__}")
    if amount_raw <= 0:
        raise InvalidInputError(f"{what}: amount must be positive, got {amount_raw}")
    if amount_raw > MAX_UINT256:
        raise InvalidInputError(f"{what}: amount does not fit in uint256")


def _validate(action: ActionSpec) -> None:
    what = f"{action.kind} {action.symbol} on {action.venue}"
    _check_amount(action.amount_raw, what)
    if action.kind not in ("repay", "supply", "withdraw"):
        raise InvalidInputError(f"{what}: unknown action kind {action.kind!r}")
    if action.protocol == "aave_v3":
        if action.kind == "repay" and action.interest_rate_mode not in (1, 2):
            raise InvalidInputError(f"{what}: interest_rate_mode must be 1 (stable) or 2 (variable)")
    elif action.protocol == "morpho_blue":
        if action.market is None:
            raise InvalidInputError(f"{what}: a Morpho Blue action needs its market params")
        expected = action.market.loan_token if action.kind == "repay" else action.market.collateral_token
        role = "loan" if action.kind == "repay" else "collateral"
        if _address(expected, f"market {role} token") != _address(action.token, "token"):
            raise InvalidInputError(f"{what}: token {action.token} is not the market's {role} token {expected}")
    else:
        raise InvalidInputError(f"{what}: unknown protocol {action.protocol!r}")


def _address(value: str, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidInputError(f"{what}: not an address: {value!r}")
    try:
        return checksum(value)
    except InvalidInputError as exc:
        raise InvalidInputError(f"{what}: {exc}") from exc
