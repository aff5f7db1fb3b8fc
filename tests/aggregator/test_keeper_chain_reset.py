"""The keeper after the chain behind a name changed: a plan executed on the replaced chain (at a higher block than
the new chain has reached) must not hold the keeper "waiting for the next sync" forever."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from aggregator.config import KeeperConfig, Settings
from aggregator.keeper.runner import Keeper
from db import NewTx, Store

WALLET = "0x00000000000000000000000000000000000000A1"


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    with Store.open(db_url) as s:
        s.add_wallets([(WALLET, "w")])
        yield s


def test_a_plan_executed_on_a_replaced_chain_does_not_block_the_new_one(store: Store) -> None:
    old = store.begin_chain(31337, "devnet", "0x" + "11" * 32)
    now = datetime.now(UTC)
    plan = store.insert_plan(plan_key="k" * 64, wallet=WALLET, chain_id=31337, block_number=300, status="simulated",
                             execute=True, signer=WALLET, usd_total=1.0, plan={}, now=now)
    assert plan is not None
    assert store.begin_execution(plan.id, [NewTx(0, "repay", WALLET, 0, "0x" + "ab" * 32, "0x00")], now=now)
    [tx] = store.plan_txs(plan.id)
    store.update_tx(tx.id, "confirmed", now=now, block_number=300)
    assert store.update_plan(plan.id, "executed", now=now)
    keeper = Keeper(Settings(keeper=KeeperConfig(enabled=True, wallets=(WALLET,))), store, dry_run=True)
    try:
        assert keeper._last_execution_block(WALLET, 31337) == 300  # on the same chain it holds back older syncs
        time.sleep(0.01)
        store.begin_chain(31337, "devnet", "0x" + "22" * 32, retire=old.id, reason="reset")
        assert keeper._last_execution_block(WALLET, 31337) is None  # the new chain's block 260 is not "older"
    finally:
        keeper.close()
