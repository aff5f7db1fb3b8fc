"""The store's one address form: EIP-55 checksummed, whatever case it was given in.

Its own module so that every store module (the sync store, the automation store) uses the same rule without
importing each other. The rule is the connectors' (:func:`connectors.types.checksum`, a pure function): ``0x`` +
40 hex digits in one case, or mixed case with a valid EIP-55 checksum (a typo is refused, not silently
"corrected"); only the error is the store's own.
"""

from __future__ import annotations

from connectors.types import HEX40, checksum
from db.errors import InvalidAddressError

__all__ = ["HEX40", "canonical_address"]


def canonical_address(address: str) -> str:
    """The EIP-55 checksummed form of ``address`` (lower or upper case accepted; mixed case must be a valid
    checksum).

    Raises :class:`~db.errors.InvalidAddressError` unless it is ``0x`` + 40 hex digits with a valid checksum.
    """
    try:
        return checksum(address)
    except ValueError as exc:  # connectors.errors.InvalidAddressError, said again as the store's error
        raise InvalidAddressError(str(exc)) from None
