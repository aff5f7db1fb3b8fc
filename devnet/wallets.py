"""Deterministic devnet wallet addresses derived from labels (no keys: anvil runs with ``--auto-impersonate``)."""

from __future__ import annotations

from eth_hash.auto import keccak
from eth_utils.address import to_checksum_address

__all__ = ["wallet_address"]


def wallet_address(label: str) -> str:
    """The deterministic address of wallet ``label``: the last 20 bytes of ``keccak("xmargin.devnet.<label>")``."""
    return to_checksum_address(keccak(f"xmargin.devnet.{label}".encode())[-20:])
