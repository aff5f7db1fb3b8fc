"""ERC-20 calls the keeper makes: ``approve``, ``allowance`` and ``balanceOf`` — calldata and decoded answers.

Builders take addresses as ``0x`` + 40 hex digits (any case) and return calldata bytes; an argument that does
not encode is an :class:`~connectors.errors.InvalidInputError`. Answers are the raw ``eth_call`` return bytes.
"""

from __future__ import annotations

from connectors.evm.abi import BALANCE_OF, Fn

__all__ = [
    "ALLOWANCE",
    "APPROVE",
    "BALANCE_OF",
    "allowance_answer",
    "allowance_call",
    "approve_call",
    "balance_of_answer",
    "balance_of_call",
]

APPROVE = Fn("approve(address,uint256)(bool)")
"""``approve(spender, amount)``."""
ALLOWANCE = Fn("allowance(address,address)(uint256)")
"""``allowance(owner, spender)``."""


def approve_call(spender: str, amount: int) -> bytes:
    """Calldata of ``approve(spender, amount)``."""
    return APPROVE.encode(spender, amount)


def allowance_call(owner: str, spender: str) -> bytes:
    """Calldata of ``allowance(owner, spender)``; decode the answer with :func:`allowance_answer`."""
    return ALLOWANCE.encode(owner, spender)


def allowance_answer(data: bytes) -> int:
    """The raw amount ``allowance`` answered."""
    return int(ALLOWANCE.decode_one(data))


def balance_of_call(owner: str) -> bytes:
    """Calldata of ``balanceOf(owner)``; decode the answer with :func:`balance_of_answer`."""
    return BALANCE_OF.encode(owner)


def balance_of_answer(data: bytes) -> int:
    """The raw balance ``balanceOf`` answered."""
    return int(BALANCE_OF.decode_one(data))
