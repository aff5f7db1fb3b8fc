"""The shared devnet (tests/shared_devnet.py): every module gets the chain a private launch would have given it,
whatever the modules before it did."""

from __future__ import annotations

import time

import httpx
import pytest

import devnet
from tests.shared_devnet import SharedDevnet

pytestmark = pytest.mark.chain

HEDGED = devnet.wallet_address("hedged")


def _head(info: devnet.DevnetInfo) -> int:
    return int(devnet.rpc(info, "eth_blockNumber"), 16)


def _perp_eth_mark(info: devnet.DevnetInfo) -> float:
    meta, ctxs = httpx.post(f"{info.services['perp_api']}/info", json={"type": "metaAndAssetCtxs"}, timeout=10).json()
    eth = next(i for i, asset in enumerate(meta["universe"]) if asset["name"] == "ETH")
    return float(ctxs[eth]["markPx"])


def _account_data_at(info: devnet.DevnetInfo, block: int) -> tuple[object, ...]:
    return devnet.eth_call(info, info.contract("aave_v3.pool"), "getUserAccountData(address)", (HEDGED,),
                           ["uint256"] * 6, block=hex(block))


def test_seeded_undoes_what_a_module_did_on_and_off_the_chain(shared_devnet: SharedDevnet) -> None:
    info = shared_devnet.seeded()
    head, health = _head(info), devnet.account_data(info, HEDGED).health_factor_wad
    mark = _perp_eth_mark(info)
    devnet.set_price(info, "WETH", 3_000)  # the chain and the perp API's mark
    devnet.mine(info, 5)
    devnet.rpc(info, "anvil_setBlockTimestampInterval", [0])
    devnet.rpc(info, "evm_setAutomine", [False])
    assert _perp_eth_mark(info) == 3_000

    again = shared_devnet.seeded()
    assert again == info
    assert _head(again) == head
    assert devnet.account_data(again, HEDGED).health_factor_wad == health
    assert _perp_eth_mark(again) == mark == 4_000
    assert devnet.rpc(again, "anvil_getAutomine") is True
    devnet.mine(again)
    before = devnet.block_timestamp(again)
    time.sleep(1.1)
    devnet.mine(again)
    assert devnet.block_timestamp(again) > before  # the clock runs again: no fixed timestamp interval


def test_fresh_is_unseeded_and_seeded_seeds_again(shared_devnet: SharedDevnet) -> None:
    seeded = shared_devnet.seeded()
    seeded_head = _head(seeded)
    fresh = shared_devnet.fresh()
    assert not devnet.is_seeded(fresh)
    assert _head(fresh) < seeded_head
    fresh_head = _head(fresh)
    devnet.mine(fresh, 3)
    assert _head(shared_devnet.fresh()) == fresh_head
    assert devnet.is_seeded(shared_devnet.seeded())



@pytest.mark.parametrize("reset", ["seeded", "fresh"])
def test_a_module_reads_pinned_to_the_block_it_started_at_however_many_modules_started_there(reset: str) -> None:
    """anvil stores a block's state when a block is mined on top of it, keyed by hash, and forgets the oldest
    stored states first: a hash stored again is queued again, and when its older entry comes out the state goes
    with it. Every module that started at the same reverted-to head and mined stored that head once more, so a
    few hundred blocks later a module reading pinned to the block it started at, after mining, could find its
    state gone (``BlockOutOfRangeError``, seen in CI). Each module now starts at a block of its own. A history of
    50 states makes a few rounds enough."""
    shared = SharedDevnet(history_states=50)
    try:
        starts = set()
        for _ in range(25):
            info = getattr(shared, reset)()
            start = _head(info)
            starts.add(devnet.rpc(info, "eth_getBlockByNumber", [hex(start), False])["hash"])
            for _ in range(7):
                devnet.rpc(info, "evm_mine")
            devnet.rpc(info, "eth_getBalance", [HEDGED, hex(start)])  # raised BlockOutOfRangeError
        assert len(starts) == 25
        assert shared.launches == 1
    finally:
        shared.close()


def test_every_start_reads_the_same_chain_even_when_the_first_began_a_second_after_seeding(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A module's own start block carries the snapshot's timestamp. The first ``seeded()`` mined it at the wall
    clock, while a revert sets the node's clock back to the snapshot's block: when a second ticked over between
    the seeding and that block, the first module read a second more of Aave interest than every later one (a
    health factor off in the tenth digit, seen in CI)."""
    seed = devnet.seed

    def seed_then_a_second_ticks(info: devnet.DevnetInfo) -> None:
        seed(info)
        time.sleep(1.05)

    monkeypatch.setattr(devnet, "seed", seed_then_a_second_ticks)
    shared = SharedDevnet()
    try:
        reads = []
        for _ in range(2):
            info = shared.seeded()
            reads.append((_head(info), devnet.block_timestamp(info),
                          devnet.account_data(info, HEDGED).health_factor_wad))
            devnet.mine(info, 2)
        assert reads[0] == reads[1]
    finally:
        shared.close()
