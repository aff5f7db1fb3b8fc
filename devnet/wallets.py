"""Deterministic devnet wallets derived from labels, with their keys.

A wallet's private key is ``keccak("xmargin.devnet.<label>")`` and its address the key's: anyone can derive
them, which is the point on a local chain (tests sign real transactions as the seeded wallets, e.g. the keeper's
end-to-end run) and why these keys must never hold anything outside the devnet. anvil also runs with
``--auto-impersonate``, so the devnet's own helpers send as any address without signing.
"""

from __future__ import annotations

from functools import cache

from eth_hash.auto import keccak
from eth_keys.datatypes import PrivateKey

__all__ = ["wallet_address", "wallet_key"]


def wallet_key(label: str) -> str:
    """The devnet-only private key (``0x`` + 64 hex digits) of wallet ``label``."""
    return "0x" + keccak(f"xmargin.devnet.{label}".encode()).hex()


@cache
def wallet_address(label: str) -> str:
    """The checksummed address of wallet ``label`` (the address of :func:`wallet_key`)."""
    # eth_keys, not eth_account: the same address, and eth_account's import (0.70 s against 0.21 s: its keyfile
    # module builds py_ecc's BLS tables) was paid by every `xmargin devnet …` command (`devnet down` with no devnet
    # took 1.84 s, now 1.15 s).
    return str(PrivateKey(bytes.fromhex(wallet_key(label)[2:])).public_key.to_checksum_address())
