"""Deterministic devnet wallets derived from labels, with their keys.

A wallet's private key is ``keccak("xmargin.devnet.<label>")`` and its address the key's: anyone can derive
them, which is the point on a local chain (tests sign real transactions as the seeded wallets, e.g. the keeper's
end-to-end run) and why these keys must never hold anything outside the devnet. anvil also runs with
``--auto-impersonate``, so the devnet's own helpers send as any address without signing.
"""

from __future__ import annotations

from functools import cache

from eth_account import Account
from eth_hash.auto import keccak

__all__ = ["wallet_address", "wallet_key"]


def wallet_key(label: str) -> str:
    """The devnet-only private key (``0x`` + 64 hex digits) of wallet ``label``."""
    return "0x" + keccak(f"xmargin.devnet.{label}".encode()).hex()


@cache
def wallet_address(label: str) -> str:
    """The checksummed address of wallet ``label`` (the address of :func:`wallet_key`)."""
    return str(Account.from_key(wallet_key(label)).address)
