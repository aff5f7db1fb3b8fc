"""The devnet: launch, info shape, Multicall3, moving a feed, seeded positions, cache reuse, run file."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_abi.abi import decode
from eth_utils.address import is_checksum_address

from devnet import (
    MAX_UINT256,
    MULTICALL3,
    Devnet,
    DevnetInfo,
    DevnetNotRunningError,
    RevertedError,
    account_data,
    balance_of,
    block_timestamp,
    borrow,
    create_emode_category,
    down,
    emode_category,
    encode_call,
    eth_call,
    feed_name,
    fund,
    increase_time,
    info,
    liquidate,
    repay,
    revert,
    rpc,
    seed,
    set_emode,
    set_price,
    set_use_as_collateral,
    snapshot,
    supply,
    up,
    user_emode,
    wallet_address,
    withdraw,
)
from tests.timing import scaled

pytestmark = pytest.mark.chain

WAD = 10**18
ROUND = ["uint80", "int256", "uint256", "uint256", "uint80"]  # latestRoundData()
CORE_CONTRACTS = (
    "aave_v3.pool",
    "aave_v3.oracle",
    "aave_v3.pool_addresses_provider",
    "aave_v3.pool_data_provider",
    "aave_v3.pool_configurator",
    "aave_v3.acl_manager",
    "aave_v3.faucet",
    "multicall3",
)


@pytest.fixture(scope="module")
def devnet() -> Iterator[Devnet]:
    with Devnet.launch() as dn:
        yield dn


@pytest.fixture
def chain(devnet: Devnet) -> Iterator[DevnetInfo]:
    """The module's devnet, reverted to its state before the test afterwards."""
    snap = snapshot(devnet.info)
    yield devnet.info
    revert(devnet.info, snap)


def test_info_shape(chain: DevnetInfo) -> None:
    data = chain.as_json()
    assert set(data) == {"rpc_url", "chain_id", "contracts", "tokens"}
    assert data["chain_id"] == int(rpc(chain, "eth_chainId"), 16) == 31337
    assert {"DAI", "USDC", "WETH", "LINK", "AAVE"} <= set(data["tokens"])
    for name in CORE_CONTRACTS:
        assert name in data["contracts"]
    for symbol in data["tokens"]:
        for prefix in ("chainlink", "aave_v3.a_token", "aave_v3.variable_debt_token"):
            key = feed_name(symbol) if prefix == "chainlink" else f"{prefix}.{symbol}"
            assert key in data["contracts"]
    addresses = [*data["contracts"].values(), *data["tokens"].values()]
    assert all(is_checksum_address(a) for a in addresses)
    assert DevnetInfo.from_json(chain.as_json(with_markets=True)) == chain
    assert DevnetInfo.from_json(data).markets == {}  # the four-key view leaves the market ids out


def test_multicall3_has_code_at_canonical_address(chain: DevnetInfo) -> None:
    assert chain.contracts["multicall3"] == MULTICALL3
    assert len(rpc(chain, "eth_getCode", [MULTICALL3, "latest"])) > 2
    (number,) = eth_call(chain, MULTICALL3, "getBlockNumber()", (), ["uint256"])
    assert number == int(rpc(chain, "eth_blockNumber"), 16)


def test_clock_and_feeds_are_fresh_after_start(chain: DevnetInfo) -> None:
    now = block_timestamp(chain)
    assert abs(now - time.time()) < 120
    for symbol in chain.tokens:
        (_, _, _, updated_at, _) = _raw_call(chain, chain.contracts[feed_name(symbol)], "latestRoundData()", ROUND)
        assert 0 <= now - updated_at < 60


def test_set_price_moves_the_feed_and_the_aave_oracle(chain: DevnetInfo) -> None:
    feed = chain.contracts[feed_name("WETH")]
    before = _raw_call(chain, feed, "latestRoundData()", ROUND)
    set_price(chain, "WETH", 3456.78)
    round_id, answer, _, updated_at, _ = _raw_call(chain, feed, "latestRoundData()", ROUND)
    assert answer == 345_678_000_000
    assert round_id == before[0] + 1
    assert updated_at == block_timestamp(chain)
    assert _raw_call(chain, feed, "decimals()", ["uint8"]) == (8,)
    oracle_price = eth_call(
        chain, chain.contracts["aave_v3.oracle"], "getAssetPrice(address)", [chain.tokens["WETH"]], ["uint256"]
    )
    assert oracle_price == (345_678_000_000,)


def test_seeded_near_liquidation_wallet_is_just_above_one(chain: DevnetInfo) -> None:
    wallets = {w.label: w.address for w in seed(chain)}
    assert {"safe", "near_liquidation", "multi"} <= set(wallets)
    health = account_data(chain, wallets["near_liquidation"]).health_factor_wad
    assert WAD < health < 12 * WAD // 10
    set_price(chain, "WETH", 3700)
    assert account_data(chain, wallets["near_liquidation"]).health_factor_wad < WAD


def test_near_liquidation_wallet_can_be_liquidated(chain: DevnetInfo) -> None:
    wallets = {w.label: w.address for w in seed(chain)}
    set_price(chain, "WETH", 3700)
    liquidator = wallet_address("test.liquidator")
    fund(chain, liquidator, "DAI", 20_000 * 10**18)
    liquidate(chain, liquidator, wallets["near_liquidation"], "WETH", "DAI", MAX_UINT256)
    assert balance_of(chain, "WETH", liquidator) > 0
    assert account_data(chain, wallets["near_liquidation"]).health_factor_wad > WAD


def test_custom_emode_and_action_round_trip(chain: DevnetInfo) -> None:
    seed(chain)  # liquidity
    create_emode_category(chain, 2, 9000, 9300, 10200, "LINK-EMode", ["LINK"])
    assert emode_category(chain, 2).liquidation_threshold_bps == 9300
    wallet = wallet_address("test.round_trip")
    link = 1_000 * 10**18
    fund(chain, wallet, "LINK", link)
    supply(chain, wallet, "LINK", link)
    set_emode(chain, wallet, 2)
    assert user_emode(chain, wallet) == 2
    borrow(chain, wallet, "LINK", 800 * 10**18)
    assert account_data(chain, wallet).current_liquidation_threshold_bps == 9300
    debt_before = account_data(chain, wallet).total_debt_base
    increase_time(chain, 30 * 86_400)
    assert account_data(chain, wallet).total_debt_base > debt_before  # interest accrued
    fund(chain, wallet, "LINK", 10 * 10**18)  # enough for the interest
    repay(chain, wallet, "LINK", MAX_UINT256)
    set_use_as_collateral(chain, wallet, "LINK", False)
    withdraw(chain, wallet, "LINK", MAX_UINT256)
    assert account_data(chain, wallet).total_collateral_base == 0
    assert balance_of(chain, "LINK", wallet) > 0


def test_revert_reason_is_reported(chain: DevnetInfo) -> None:
    with pytest.raises(RevertedError) as excinfo:
        borrow(chain, "0x000000000000000000000000000000000000dEaD", "DAI", 10**18)
    assert excinfo.value.reason == "34"  # Aave: COLLATERAL_BALANCE_IS_ZERO


def test_second_launch_loads_the_cached_state(devnet: Devnet) -> None:
    with Devnet.launch() as second:
        assert not second.deployed
        assert second.startup_s < scaled(2.0)
        assert second.info.contracts == devnet.info.contracts
        assert second.info.rpc_url != devnet.info.rpc_url


def test_run_file_lifecycle(devnet: Devnet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XMARGIN_DEVNET_RUN", str(tmp_path / "run.json"))
    started = up()
    try:
        assert info() == started
        assert up() == started  # already running: reused
        assert started.contracts == devnet.info.contracts
    finally:
        assert down()
    assert not (tmp_path / "run.json").exists()
    with pytest.raises(DevnetNotRunningError):
        info()
    assert not down()


def _raw_call(chain: DevnetInfo, to: str, signature: str, returns: list[str]) -> tuple[int, ...]:
    """A raw ``eth_call`` (no helper decoding), as a connector would make it."""
    raw = rpc(chain, "eth_call", [{"to": to, "data": encode_call(signature)}, "latest"])
    return tuple(decode(returns, bytes.fromhex(raw[2:])))


def test_an_exited_unreaped_node_is_not_taken_for_running() -> None:
    """A stopped node that nobody has reaped yet (a zombie: a container's init never reaps) is dead to
    ``devnet down``, which otherwise waits out its grace period for it."""
    import subprocess

    from devnet.node import _alive, _zombie

    child = subprocess.Popen(["true"])
    try:
        deadline = time.monotonic() + 10
        while not _zombie(child.pid):  # exited, not reaped: still listed, state Z
            assert time.monotonic() < deadline, "the child never exited"
            time.sleep(0.01)
        assert os.path.exists(f"/proc/{child.pid}")
        assert not _zombie(os.getpid())
    finally:
        child.wait()
    assert not _alive(child.pid)
