"""The store's one address form: EIP-55 checksummed, whatever case it was given in.

Its own module so that every store module (the sync store, the automation store) uses the same rule without
importing each other.
"""

from __future__ import annotations

import re
from functools import lru_cache

from eth_utils.address import to_checksum_address

from db.errors import InvalidAddressError

__all__ = ["HEX40", "canonical_address"]

HEX40 = re.compile(r"^0x[0-9a-fA-F]{40}$")
"""``0x`` and 40 hex digits, nothing else."""


@lru_cache(maxsize=65_536)
def canonical_address(address: str) -> str:
    """The EIP-55 checksummed form of ``address`` (any case accepted).

    Raises :class:`~db.errors.InvalidAddressError` unless it is ``0x`` + 40 hex digits.
    """
    if not isinstance(address, str) or not HEX40.match(address):
        raise InvalidAddressError(f"not an address (want 0x + 40 hex digits): {address!r}")
    out: str = to_checksum_address(address)
    return out
