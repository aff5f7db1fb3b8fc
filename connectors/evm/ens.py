"""ENS names → addresses, resolved at a pinned block with web3.py.

The name is normalised (ENSIP-15) and hashed by web3.py's ``ens`` package; the registry and the resolver are read
with web3.py contract calls at one block, so a name resolves to what it meant at that block. The resolver is the
name's own, or — ENSIP-10 wildcard resolution — the nearest parent's when that resolver implements the
extended ``resolve(bytes,bytes)`` interface.

Errors: :class:`EnsNameError` (not a valid name), :class:`EnsNotFoundError` (no resolver, or no address set),
both :class:`~connectors.errors.InvalidInputError`; RPC faults are the client's (:mod:`connectors.errors`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ens.exceptions import InvalidName  # type: ignore[import-untyped]
from ens.utils import dns_encode_name, normal_name_to_hash, normalize_name  # type: ignore[import-untyped]
from eth_abi.abi import decode, encode
from web3 import Web3

from connectors.errors import InvalidInputError
from connectors.evm.rpc import BlockId, RpcClient
from connectors.evm.web3_bridge import web3_for
from connectors.types import BlockRef, checksum, is_ens_name

__all__ = ["ENS_REGISTRY", "EnsError", "EnsNameError", "EnsNotFoundError", "EnsResolution", "is_ens_name",
           "resolve_name"]

ENS_REGISTRY = "0x00000000000C2E074eC69A0dFb2997BA6C7d2e1e"
"""The ENS registry's address (the same on Ethereum mainnet and its testnets)."""

EXTENDED_RESOLVER = bytes.fromhex("9061b923")
"""ENSIP-10's ``resolve(bytes,bytes)`` interface id."""

_ZERO = "0x" + "00" * 20
_REGISTRY_ABI: list[dict[str, Any]] = [
    {"name": "resolver", "type": "function", "stateMutability": "view",
     "inputs": [{"name": "node", "type": "bytes32"}], "outputs": [{"name": "", "type": "address"}]},
]
_RESOLVER_ABI: list[dict[str, Any]] = [
    {"name": "addr", "type": "function", "stateMutability": "view",
     "inputs": [{"name": "node", "type": "bytes32"}], "outputs": [{"name": "", "type": "address"}]},
    {"name": "supportsInterface", "type": "function", "stateMutability": "view",
     "inputs": [{"name": "interfaceID", "type": "bytes4"}], "outputs": [{"name": "", "type": "bool"}]},
    {"name": "resolve", "type": "function", "stateMutability": "view",
     "inputs": [{"name": "name", "type": "bytes"}, {"name": "data", "type": "bytes"}],
     "outputs": [{"name": "", "type": "bytes"}]},
]


class EnsError(InvalidInputError):
    """An ENS name could not be resolved."""


class EnsNameError(EnsError):
    """Not a valid ENS name (ENSIP-15)."""


class EnsNotFoundError(EnsError):
    """The name has no resolver or no address at the block."""


@dataclass(frozen=True)
class EnsResolution:
    """``name`` (normalised) resolved to ``address`` (EIP-55) by ``resolver`` at ``block``."""

    name: str
    address: str
    resolver: str
    block: BlockRef


def resolve_name(rpc: RpcClient, name: str, block: BlockId = "latest", *,
                 registry: str = ENS_REGISTRY) -> EnsResolution:
    """The address ``name`` resolves to at ``block`` (every read pinned to that block's number)."""
    try:
        normal = normalize_name(name.strip())
    except (InvalidName, ValueError, TypeError) as exc:
        raise EnsNameError(f"{name!r} is not a valid ENS name: {exc}") from None
    if not normal or "." not in normal:
        raise EnsNameError(f"{name!r} is not a valid ENS name (want e.g. name.eth)")
    ref = block if isinstance(block, BlockRef) else rpc.get_block(block)
    w3 = web3_for(rpc)
    at = ref.number
    reg = w3.eth.contract(address=Web3.to_checksum_address(registry), abi=_REGISTRY_ABI)
    labels = normal.split(".")
    node = normal_name_to_hash(normal)
    for i in range(len(labels) - 1):  # the name itself, then each parent (ENSIP-10), never the bare TLD
        candidate = ".".join(labels[i:])
        resolver = str(reg.functions.resolver(normal_name_to_hash(candidate)).call(block_identifier=at))
        if resolver.lower() != _ZERO:
            break
    else:
        raise EnsNotFoundError(f"{normal} has no resolver at block {at}")
    res = w3.eth.contract(address=Web3.to_checksum_address(resolver), abi=_RESOLVER_ABI)
    if i == 0:
        address = str(res.functions.addr(node).call(block_identifier=at))
    else:
        extended = bool(res.functions.supportsInterface(EXTENDED_RESOLVER).call(block_identifier=at))
        if not extended:
            raise EnsNotFoundError(f"{normal} has no resolver at block {at} (its parent's is not a wildcard one)")
        inner = bytes.fromhex("3b3b57de") + encode(["bytes32"], [node])  # addr(bytes32)
        answer = res.functions.resolve(dns_encode_name(normal), inner).call(block_identifier=at)
        (address,) = decode(["address"], bytes(answer))
    if str(address).lower() == _ZERO:
        raise EnsNotFoundError(f"{normal} has no address at block {at}")
    return EnsResolution(normal, checksum(str(address)), checksum(resolver), ref)
