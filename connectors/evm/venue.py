"""What the on-chain venues' connectors share before a read: their chain's client and Multicall3, the block
they read at (on their deployment's chain), and the wallets, validated before any I/O.

:class:`EvmVenueConnector` is the base of every on-chain venue's connector. Their
``read_accounts`` take a :class:`~connectors.types.BlockRef`, a block number or None (the latest block: one
``eth_getBlockByNumber``); their ``program`` a :class:`~connectors.types.BlockRef` only. Either way a block
of another chain than the deployment's is refused with :class:`~connectors.errors.InvalidInputError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, Protocol, TypeVar

from connectors.errors import InvalidInputError
from connectors.evm.multicall import Multicall
from connectors.evm.rpc import RpcClient
from connectors.types import Address, BlockRef, checksum

__all__ = ["ChainDeployment", "EvmVenueConnector", "wallet_addresses"]


class ChainDeployment(Protocol):
    """A venue's deployment on one chain: its name and chain id."""

    @property
    def name(self) -> str: ...

    @property
    def chain_id(self) -> int: ...


D = TypeVar("D", bound=ChainDeployment)


def wallet_addresses(wallets: Sequence[str]) -> list[Address]:
    """Checksummed, de-duplicated wallets (order kept); :class:`InvalidAddressError` on the first bad one."""
    return list(dict.fromkeys(checksum(w) for w in wallets))


def _not_one_string(wallets: Sequence[str]) -> None:
    if isinstance(wallets, str):
        raise InvalidInputError("wallets must be a sequence of addresses, not one string")


class EvmVenueConnector(Generic[D]):
    """A venue read through ``rpc`` (its ``stats`` count the HTTP requests and calls) and ``multicall``
    (Multicall3 at its canonical address over ``rpc`` by default), as deployed at ``deployment``."""

    def __init__(self, rpc: RpcClient, deployment: D, multicall: Multicall | None = None) -> None:
        self.rpc = rpc
        self.deployment = deployment
        self.multicall = multicall or Multicall(rpc)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.deployment.name!r}, {self.rpc!r})"

    def _check_chain(self, block: BlockRef) -> None:
        if block.chain_id != self.deployment.chain_id:
            raise InvalidInputError(
                f"{self.deployment.name} is on chain {self.deployment.chain_id}, the block is on chain {block.chain_id}"
            )

    def _resolve_block(self, block: BlockRef | int | None) -> BlockRef:
        """``block`` itself, or the block of that number (the latest when None), checked to be on the chain."""
        ref = block if isinstance(block, BlockRef) else self.rpc.get_block("latest" if block is None else block)
        self._check_chain(ref)
        return ref

    def _program_wallets(self, wallets: Sequence[str], block: BlockRef) -> list[Address]:
        """A program's inputs, checked before any I/O: ``block`` on the chain, then the wallets."""
        _not_one_string(wallets)
        self._check_chain(block)
        return wallet_addresses(wallets)

    def _read_inputs(self, wallets: Sequence[str], block: BlockRef | int | None) -> tuple[list[Address], BlockRef]:
        """``read_accounts``'s inputs: the wallets, validated before any I/O, then the block, resolved."""
        _not_one_string(wallets)
        checked = wallet_addresses(wallets)
        return checked, self._resolve_block(block)
