"""Primitive boundary types shared by every connector: addresses, block references."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Annotated

from eth_hash.auto import keccak
from pydantic import AfterValidator, BaseModel, ConfigDict

from connectors.errors import InvalidAddressError

__all__ = ["HEX40", "Address", "BlockRef", "Frozen", "checksum", "is_ens_name"]

HEX40 = re.compile(r"^0x[0-9a-fA-F]{40}$")
"""``0x`` and 40 hex digits, nothing else."""


def is_ens_name(text: str) -> bool:
    """Whether ``text`` looks like an ENS name rather than an address (it has a dot and is not ``0x`` + 40 hex).
    Here, not in :mod:`connectors.evm.ens`, so that telling the two apart loads no web3.py (0.9 s)."""
    text = text.strip()
    return "." in text and not HEX40.match(text)


@lru_cache(maxsize=1 << 16)
def _eip55(body_lower: str) -> str:
    """EIP-55 of 40 lower-case hex digits (same result as ``eth_utils.to_checksum_address``, ~20× faster)."""
    digest: str = keccak(body_lower.encode("ascii")).hex()
    return "0x" + "".join(c.upper() if c > "9" and digest[i] > "7" else c for i, c in enumerate(body_lower))


def checksum(value: str) -> str:
    """Return the EIP-55 form of ``value`` — the product's one address rule (the store's too, see
    :mod:`db.addresses`).

    Raises :class:`InvalidAddressError` when ``value`` is not 20 hex bytes, or when it is mixed-case
    and its checksum is wrong (a typo, not a style).
    """
    if not isinstance(value, str):
        raise InvalidAddressError(f"not an address (want 0x + 40 hex digits): {value!r}")
    return _checksum(value)


@lru_cache(maxsize=1 << 17)
def _checksum(value: str) -> str:
    """:func:`checksum` of a string, memoized whole (every model holding an address checks it: 273,076 calls in a
    2,000-wallet block benchmark's six blocks, 2.4 µs each through the pattern and the EIP-55 cache; a refused
    value raises again each time)."""
    if not HEX40.fullmatch(value):
        raise InvalidAddressError(f"not an address (want 0x + 40 hex digits): {value!r}")
    body = value[2:]
    out = _eip55(body.lower())
    if body != body.lower() and body != body.upper() and out != value:
        raise InvalidAddressError(f"address has a bad EIP-55 checksum: {value!r}")
    return out


Address = Annotated[str, AfterValidator(checksum)]
"""A checksummed 20-byte address; validated on construction."""


class Frozen(BaseModel):
    """Base of the boundary models: immutable, strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class BlockRef(Frozen):
    """The block every read of one snapshot is pinned to."""

    chain_id: int
    number: int
    hash: str
    timestamp: int
