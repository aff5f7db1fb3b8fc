"""dYdX chain accounts: bech32 addresses ``dydx1…`` (BIP-173; a 20-byte account is ``dydx1`` + 38 characters).

A venue account is an address and a subaccount number; it is written ``dydx1…`` (subaccount 0, or the
connector's default) or ``dydx1…/N``.
"""

from __future__ import annotations

import re
from functools import lru_cache

from connectors.errors import InvalidAddressError

__all__ = ["BECH32_CHARSET", "DYDX_HRP", "bech32_encode", "parse_account", "validate_address"]

BECH32_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
DYDX_HRP = "dydx"
MAX_SUBACCOUNT_NUMBER = 128_000
"""Subaccount numbers are below 128,000 (128 parents × 1,000 children)."""

_ADDRESS = re.compile(rf"^{DYDX_HRP}1[{BECH32_CHARSET}]{{38}}$")
_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


def _polymod(values: list[int]) -> int:
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i, g in enumerate(_GENERATOR):
            if (top >> i) & 1:
                chk ^= g
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _convert_bits(data: bytes, from_bits: int, to_bits: int) -> list[int]:
    acc = bits = 0
    out: list[int] = []
    maxv = (1 << to_bits) - 1
    for b in data:
        acc = (acc << from_bits) | b
        bits += from_bits
        while bits >= to_bits:
            bits -= to_bits
            out.append((acc >> bits) & maxv)
    if bits:
        out.append((acc << (to_bits - bits)) & maxv)
    return out


def bech32_encode(data: bytes, hrp: str = DYDX_HRP) -> str:
    """The bech32 address of ``data`` (20 bytes for an account) under ``hrp``."""
    words = _convert_bits(data, 8, 5)
    polymod = _polymod([*_hrp_expand(hrp), *words, 0, 0, 0, 0, 0, 0]) ^ 1
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(BECH32_CHARSET[w] for w in [*words, *checksum])


def validate_address(value: str) -> str:
    """``value`` if it is a dYdX account address (``dydx1`` + 38 bech32 characters, valid checksum).

    Raises :class:`InvalidAddressError` naming what is wrong (an EVM address, a typo, a bad checksum).
    """
    if not isinstance(value, str):
        raise InvalidAddressError(f"not a dYdX address: {value!r}")
    return _validated(value)


@lru_cache(maxsize=1 << 16)
def _validated(value: str) -> str:
    """:func:`validate_address` of a string, remembered: every account read and model validates its address again
    (the bech32 checksum took 0.4 s of six 1,000-wallet blocks); an invalid one raises, and is not remembered."""
    if value.startswith("0x"):
        raise InvalidAddressError(f"{value!r} is an EVM address; dYdX accounts are bech32 'dydx1…' addresses")
    if value != value.lower():
        raise InvalidAddressError(f"dYdX addresses are lower-case bech32: {value!r}")
    if not _ADDRESS.fullmatch(value):
        raise InvalidAddressError(f"not a dYdX address (want 'dydx1' + 38 characters of the bech32 charset): {value!r}")
    words = [BECH32_CHARSET.index(c) for c in value[len(DYDX_HRP) + 1 :]]
    if _polymod([*_hrp_expand(DYDX_HRP), *words]) != 1:
        raise InvalidAddressError(f"dYdX address has a bad bech32 checksum: {value!r}")
    return value


def parse_account(value: str, default_subaccount: int = 0) -> tuple[str, int]:
    """``"dydx1…"`` or ``"dydx1…/N"`` → (address, subaccount number), validated."""
    if not isinstance(value, str):
        raise InvalidAddressError(f"not a dYdX account: {value!r}")
    address, sep, number = value.partition("/")
    n = default_subaccount
    if sep:
        if not number.isdigit():
            raise InvalidAddressError(f"bad subaccount number in {value!r}")
        n = int(number)
    if not 0 <= n < MAX_SUBACCOUNT_NUMBER:
        raise InvalidAddressError(f"subaccount number must be in [0, {MAX_SUBACCOUNT_NUMBER}): {value!r}")
    return validate_address(address), n
