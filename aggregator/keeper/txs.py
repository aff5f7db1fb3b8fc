"""Calldata for rebalance actions: a plan's calls in order, with the ERC-20 approvals it needs.

An :class:`ActionSpec` is one rebalance action in on-chain terms (token address, raw amount, target contract,
the venue's market); :func:`action_call` turns it into a :class:`Call` (``to``, calldata, a readable
description) through the keeper part of the action's venue (``aggregator/venues/<venue>/keeper.py``, which
builds the venue's own call), and :func:`build_calls` turns a whole plan into the calls to send, in order,
with the ERC-20 approvals the plan needs inserted before the first action that pulls each token.

An action is checked before any call is built: its amount (a positive ``uint256``; ``2**256 - 1`` is passed
through as is), its kind, that its venue declares it (:attr:`connectors.base.Capabilities.actions`), the venue's
own rules (its keeper part's ``validate``) and its addresses.

Nothing here does I/O: reading allowances is the caller's (:func:`allowance_call_data` gives the calldata).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from aggregator.keeper.plugin import (
    MAX_UINT256,
    ActionSpec,
    VenueKeeper,
    checked_address,
    format_amount,
    venue_actions,
    venue_keeper,
)
from connectors.errors import InvalidInputError
from connectors.evm.erc20 import ALLOWANCE, APPROVE, allowance_call, approve_call
from connectors.registry import UnknownVenueError

__all__ = [
    "ALLOWANCE",
    "APPROVE",
    "MAX_UINT256",
    "ActionSpec",
    "Call",
    "action_call",
    "allowance_call_data",
    "approval_call",
    "build_calls",
    "format_amount",
]

_KINDS = ("repay", "supply", "withdraw")
_PULLS = frozenset({"repay", "supply"})  # kinds that transferFrom the wallet into the target


@dataclass(frozen=True)
class Call:
    """One transaction to send: ``to`` (checksummed), ``data`` (``0x`` hex calldata), a readable description."""

    to: str
    data: str
    description: str
    value: int = 0


def approval_call(token: str, symbol: str, decimals: int, spender: str, amount_raw: int, spender_name: str) -> Call:
    """ERC-20 ``approve(spender, amount_raw)`` on ``token``."""
    _check_amount(amount_raw, f"approval of {symbol}")
    token_cs, spender_cs = checked_address(token, "token"), checked_address(spender, "spender")
    data = approve_call(spender_cs, amount_raw)
    return Call(
        token_cs, "0x" + data.hex(), f"approve {format_amount(amount_raw, decimals)} {symbol} to {spender_name}"
    )


def allowance_call_data(owner: str, spender: str) -> bytes:
    """Calldata of ERC-20 ``allowance(owner, spender)``; decode the answer with ``ALLOWANCE.decode_one``."""
    return allowance_call(checked_address(owner, "owner"), checked_address(spender, "spender"))


def action_call(action: ActionSpec) -> Call:
    """The call that performs ``action`` (no approval; see :func:`build_calls`)."""
    keeper = _validate(action)
    checked = replace(action, wallet=checked_address(action.wallet, "wallet"),
                      token=checked_address(action.token, "token"), target=checked_address(action.target, "target"))
    call = keeper.call(checked)
    return Call(checked.target, "0x" + call.data.hex(), call.description)


def build_calls(actions: Sequence[ActionSpec], allowances: Mapping[tuple[str, str], int]) -> list[Call]:
    """The calls of a plan, in order, with approvals.

    Before the first action that pulls a token from the wallet (``repay``, ``supply``) into a spender (its
    ``target``), an ``approve`` of the total that spender pulls of that token over the whole plan (capped at
    :data:`MAX_UINT256`), unless ``allowances[(token, spender)]`` (the current allowance; keys in any address
    case, missing means 0) already covers it. ``withdraw`` needs no approval.
    """
    current = {
        (checked_address(t, "allowance token"), checked_address(s, "allowance spender")): a
        for (t, s), a in allowances.items()
    }
    totals: dict[tuple[str, str], int] = {}
    for action in actions:
        _validate(action)
        if action.kind in _PULLS:
            key = (checked_address(action.token, "token"), checked_address(action.target, "target"))
            totals[key] = min(totals.get(key, 0) + action.amount_raw, MAX_UINT256)
    calls: list[Call] = []
    approved: set[tuple[str, str]] = set()
    for action in actions:
        if action.kind in _PULLS:
            key = (checked_address(action.token, "token"), checked_address(action.target, "target"))
            if key not in approved:
                approved.add(key)
                total = totals[key]
                if current.get(key, 0) < total:
                    name = venue_keeper(action.protocol).spender_name(action)
                    calls.append(approval_call(key[0], action.symbol, action.decimals, key[1], total, name))
        calls.append(action_call(action))
    return calls


# --------------------------------------------------------------------------------------------- helpers
def _check_amount(amount_raw: int, what: str) -> None:
    if not isinstance(amount_raw, int) or isinstance(amount_raw, bool):
        raise InvalidInputError(f"{what}: amount must be an int, got {type(amount_raw).__name__}")
    if amount_raw <= 0:
        raise InvalidInputError(f"{what}: amount must be positive, got {amount_raw}")
    if amount_raw > MAX_UINT256:
        raise InvalidInputError(f"{what}: amount does not fit in uint256")


def _validate(action: ActionSpec) -> VenueKeeper:
    """Check ``action`` (module docstring) and return its venue's keeper part."""
    what = f"{action.kind} {action.symbol} on {action.venue}"
    _check_amount(action.amount_raw, what)
    if action.kind not in _KINDS:
        raise InvalidInputError(f"{what}: unknown action kind {action.kind!r}")
    try:
        declared = venue_actions(action.protocol)
        keeper = venue_keeper(action.protocol)
    except UnknownVenueError as exc:
        raise InvalidInputError(f"{what}: unknown protocol {action.protocol!r}") from exc
    if action.kind not in declared:
        raise InvalidInputError(f"{what}: {action.protocol} declares no {action.kind} action")
    keeper.validate(action)
    return keeper
