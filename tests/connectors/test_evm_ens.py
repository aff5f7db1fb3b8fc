"""connectors.evm.ens against stub ENS contracts on the shared devnet (ENS is not deployed there): a registry at
the mainnet registry's address and a resolver, each a tiny contract answering any call with the storage slot
named by its first argument (registry: resolver(node) → slot[node]; resolver: addr(node) → slot[node],
supportsInterface(id) → slot[id], false). Resolution is pinned: the address changes between two blocks and each
block answers its own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from ens.utils import normal_name_to_hash  # type: ignore[import-untyped]

import devnet
from connectors.evm.ens import ENS_REGISTRY, EnsNameError, EnsNotFoundError, is_ens_name, resolve_name
from connectors.evm.rpc import RpcClient
from connectors.types import checksum

STUB = "0x600435546000526020" + "6000f3"  # PUSH1 4 CALLDATALOAD SLOAD PUSH1 0 MSTORE PUSH1 32 PUSH1 0 RETURN
RESOLVER = checksum("0x" + "e5" * 20)
ALICE_1 = checksum("0x" + "a1" * 20)
ALICE_2 = checksum("0x" + "a2" * 20)


def test_is_ens_name() -> None:
    assert is_ens_name("alice.eth")
    assert is_ens_name(" pay.alice.eth ")
    assert not is_ens_name(ALICE_1)
    assert not is_ens_name("alice")


@pytest.fixture
def rpc(fresh_devnet: devnet.DevnetInfo) -> Iterator[RpcClient]:
    snap = devnet.snapshot(fresh_devnet)
    with RpcClient(fresh_devnet.rpc_url) as client:
        for address in (ENS_REGISTRY, RESOLVER):
            client.request("anvil_setCode", [address, STUB])
        yield client
    devnet.revert(fresh_devnet, snap)


def set_slot(rpc: RpcClient, contract: str, node: bytes, value: str) -> None:
    rpc.request("anvil_setStorageAt", [contract, "0x" + node.hex(), "0x" + value[2:].lower().rjust(64, "0")])


@pytest.mark.chain
def test_resolution_is_pinned_to_its_block(rpc: RpcClient) -> None:
    node = normal_name_to_hash("alice.eth")
    with pytest.raises(EnsNotFoundError, match="no resolver"):
        resolve_name(rpc, "alice.eth")
    set_slot(rpc, ENS_REGISTRY, node, RESOLVER)
    rpc.request("anvil_mine", ["0x1"])
    with pytest.raises(EnsNotFoundError, match="no address"):
        resolve_name(rpc, "alice.eth")
    set_slot(rpc, RESOLVER, node, ALICE_1)
    rpc.request("anvil_mine", ["0x1"])
    first = rpc.get_block("latest")
    rpc.request("anvil_mine", ["0x1"])  # anvil_setStorageAt writes the newest block's live state: move past it
    set_slot(rpc, RESOLVER, node, ALICE_2)
    rpc.request("anvil_mine", ["0x1"])
    second = rpc.block_number()

    at_first = resolve_name(rpc, "Alice.ETH", first)
    assert (at_first.name, at_first.address, at_first.resolver, at_first.block) == (
        "alice.eth", ALICE_1, RESOLVER, first)
    assert resolve_name(rpc, "alice.eth", first.number).address == ALICE_1
    assert resolve_name(rpc, "alice.eth", second).address == ALICE_2
    assert resolve_name(rpc, "alice.eth").address == ALICE_2
    # a subname without a resolver of its own: the parent's is not a wildcard (ENSIP-10) resolver
    with pytest.raises(EnsNotFoundError, match="wildcard"):
        resolve_name(rpc, "pay.alice.eth")
    with pytest.raises(EnsNotFoundError, match="no resolver"):
        resolve_name(rpc, "bob.eth")


@pytest.mark.chain
@pytest.mark.parametrize("name", ["ali ce.eth", "eth", "", "a..eth"])
def test_invalid_names(rpc: RpcClient, name: str) -> None:
    with pytest.raises(EnsNameError):
        resolve_name(rpc, name)
