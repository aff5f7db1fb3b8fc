"""The Aave v3 connector end to end against a scripted node (no chain): plan, pinning, decoding, filtering."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.aave_v3 import connector as c
from connectors.aave_v3.connector import AaveV3Connector
from connectors.aave_v3.deployments import (
    AAVE_V3_ETHEREUM,
    DEPLOYMENTS,
    SPARK_ETHEREUM,
    AaveDeployment,
    get_deployment,
)
from connectors.chainlink.reader import DECIMALS, LATEST_ROUND_DATA
from connectors.errors import InvalidAddressError, InvalidInputError
from connectors.evm.rpc import RpcClient
from connectors.types import checksum

CHAIN_ID = 31337  # the fake node's (conftest.FakeNode)
HEAD = 1000
HEAD_TIMESTAMP = 1_700_000_000

ZERO = "0x" + "00" * 20
UINT_MAX = 2**256 - 1
RAY = 10**27


def addr(tag: int) -> str:
    return checksum("0x" + f"{tag:040x}")


PROVIDER, POOL, ORACLE, DATA_PROVIDER, EMODE_SOURCE = (addr(0xA0 + i) for i in range(5))
W1, W2, W3, W4 = (addr(0x1000 + i) for i in range(4))


def config(ltv: int, lt: int, bonus: int, decimals: int, emode: int = 0) -> int:
    return ltv | lt << 16 | bonus << 32 | decimals << 48 | 1 << 56 | 1 << 58 | 1500 << 64 | emode << 168


RESERVES: list[dict[str, Any]] = [
    {"sym": "WETH", "id": 0, "cfg": config(8000, 8250, 10500, 18, emode=1), "price": 2000 * 10**8, "stable": True},
    {"sym": "USDC", "id": 1, "cfg": config(7700, 8000, 10450, 6), "price": 10**8, "stable": True},
    {"sym": "MKR", "id": 2, "cfg": config(0, 0, 0, 18), "price": 1500 * 10**8, "stable": False},
]
for k, r in enumerate(RESERVES):
    base = 0x100 * (k + 1)
    r.update(
        asset=addr(base),
        a=addr(base + 1),
        v=addr(base + 2),
        s=addr(base + 3) if r["stable"] else ZERO,
        feed=addr(base + 4),
        income=RAY + 10**25 * (k + 1),
        vdebt=RAY + 2 * 10**25 * (k + 1),
    )

# wallet -> (user config, emode, {sym: (scaled a, scaled variable debt, stable debt)})
WALLETS: dict[str, tuple[int, int, dict[str, tuple[int, int, int]]]] = {
    W1: (1 << 1 | 1 << 2, 1, {"WETH": (10 * 10**18, 0, 0), "USDC": (0, 5_000 * 10**6, 7)}),
    W2: (0, 0, {"USDC": (123 * 10**6, 0, 0)}),  # supplied, not collateral: no bit, still reported
    W3: (0, 0, {}),  # never used Aave
    W4: (1 << 4 | 1 << 5, 0, {"MKR": (5 * 10**18, 10**18, 0)}),
}


def install_market(node: Any) -> None:
    node.constant(PROVIDER, c.GET_POOL, POOL)
    node.constant(PROVIDER, c.GET_PRICE_ORACLE, ORACLE)
    node.constant(PROVIDER, c.GET_POOL_DATA_PROVIDER, DATA_PROVIDER)
    node.constant(POOL, c.GET_RESERVES_LIST, [r["asset"] for r in RESERVES])
    node.constant(ORACLE, c.BASE_CURRENCY_UNIT, 10**8)
    by_asset = {r["asset"].lower(): r for r in RESERVES}
    prices = {r["asset"].lower(): r["price"] for r in RESERVES} | {EMODE_SOURCE.lower(): 1999 * 10**8}
    node.on(
        POOL,
        c.GET_RESERVE_DATA,
        lambda a: (
            (
                (by_asset[a]["cfg"],),
                by_asset[a]["income"],
                1,
                by_asset[a]["vdebt"],
                2,
                3,
                HEAD_TIMESTAMP - 100,
                by_asset[a]["id"],
                by_asset[a]["a"],
                by_asset[a]["s"],
                by_asset[a]["v"],
                ZERO,
                0,
                0,
                0,
            ),
        ),
    )
    node.on(POOL, c.GET_RESERVE_NORMALIZED_INCOME, lambda a: (by_asset[a]["income"],))
    node.on(POOL, c.GET_RESERVE_NORMALIZED_VARIABLE_DEBT, lambda a: (by_asset[a]["vdebt"],))
    node.on(ORACLE, c.GET_ASSET_PRICE, lambda a: (prices[a],))
    node.on(ORACLE, c.GET_SOURCE_OF_ASSET, lambda a: (by_asset[a]["feed"],))
    node.constant(POOL, c.GET_EMODE_CATEGORY_DATA, (9000, 9300, 10100, EMODE_SOURCE, "ETH correlated"))
    for r in RESERVES:
        if r["sym"] == "MKR":
            node.constant(r["asset"], c.SYMBOL_BYTES32, b"MKR".ljust(32, b"\0"))
        else:
            node.constant(r["asset"], c.SYMBOL, r["sym"])
        if r["sym"] != "USDC":  # the USDC source is not Chainlink-shaped
            node.constant(r["feed"], LATEST_ROUND_DATA, 5, r["price"], HEAD_TIMESTAMP - 10, HEAD_TIMESTAMP - 10, 5)
            node.constant(r["feed"], DECIMALS, 8)
        else:
            node.constant(r["feed"], c.SYMBOL, "not a feed")

        def bal(which: int, sym: str = r["sym"]) -> Any:
            return lambda w: (WALLETS.get(checksum(w), (0, 0, {}))[2].get(sym, (0, 0, 0))[which],)

        node.on(r["a"], c.SCALED_BALANCE_OF, bal(0))
        node.on(r["v"], c.SCALED_BALANCE_OF, bal(1))
        if r["stable"]:
            node.on(r["s"], c.BALANCE_OF, bal(2))
    node.on(POOL, c.GET_USER_CONFIGURATION, lambda w: ((WALLETS.get(checksum(w), (0, 0, {}))[0],),))
    node.on(POOL, c.GET_USER_EMODE, lambda w: (WALLETS.get(checksum(w), (0, 0, {}))[1],))
    node.on(
        POOL,
        c.GET_USER_ACCOUNT_DATA,
        lambda w: (0, 0, 0, 0, 0, UINT_MAX) if w.lower() == W3.lower() else (int(w, 16), 2, 3, 8250, 8000, 10**18 + 1),
    )


DEVNET = AaveDeployment(name="fake", chain_id=CHAIN_ID, pool_addresses_provider=PROVIDER)


@pytest.fixture
def market(node: Any) -> Any:
    install_market(node)
    return node


def test_read_accounts_full_snapshot(rpc: RpcClient, market: Any) -> None:
    conn = AaveV3Connector(rpc, DEVNET)
    snap = conn.read_accounts([W1, W2.lower(), W3, W4, W1])
    # block: latest, pinned everywhere
    assert snap.block.number == HEAD
    assert snap.block.chain_id == CHAIN_ID
    assert set(market.call_blocks) == {hex(HEAD)}
    assert market.pinned_by_hash == len(market.call_blocks)  # every read names the block's hash (EIP-1898)
    # market
    m = snap.market
    assert (m.pool, m.oracle, m.base_currency_unit, m.name) == (POOL, ORACLE, 10**8, "fake")
    weth, usdc, mkr = m.reserves
    assert (weth.symbol, usdc.symbol, mkr.symbol) == ("WETH", "USDC", "MKR")
    assert (weth.ltv_bps, weth.liquidation_threshold_bps, weth.liquidation_bonus_bps) == (8000, 8250, 10500)
    assert (weth.decimals, usdc.decimals, weth.reserve_factor_bps) == (18, 6, 1500)
    assert (weth.emode_category, weth.reserve_id, mkr.reserve_id) == (1, 0, 2)
    assert weth.normalized_income_ray == RESERVES[0]["income"]
    assert weth.normalized_variable_debt_ray == RESERVES[0]["vdebt"]
    assert weth.price_raw == 2000 * 10**8
    assert weth.price_source == RESERVES[0]["feed"]
    assert weth.feed is not None
    assert weth.feed.answer_raw == 2000 * 10**8
    assert weth.feed.age_s == 10
    assert usdc.feed is None
    assert mkr.stable_debt_token == ZERO
    (cat,) = m.emode_categories
    assert (cat.category_id, cat.ltv_bps, cat.liquidation_threshold_bps, cat.label) == (1, 9000, 9300, "ETH correlated")
    assert cat.price_source == EMODE_SOURCE
    assert cat.price_raw == 1999 * 10**8
    # accounts: de-duplicated, order kept
    assert [a.wallet for a in snap.accounts] == [W1, W2, W3, W4]
    a1, a2, a3, a4 = snap.accounts
    assert a1.emode_category == 1
    assert [(r.asset, r.usage_as_collateral, r.borrowing) for r in a1.reserves] == [
        (weth.asset, True, False),
        (usdc.asset, False, True),
    ]
    assert a1.reserves[0].scaled_a_token_balance_raw == 10 * 10**18
    assert (a1.reserves[1].scaled_variable_debt_raw, a1.reserves[1].stable_debt_raw) == (5_000 * 10**6, 7)
    assert a1.onchain.total_collateral_base_raw == int(W1, 16)
    assert a1.onchain.health_factor_wad == 10**18 + 1
    assert [(r.asset, r.scaled_a_token_balance_raw, r.usage_as_collateral) for r in a2.reserves] == [
        (usdc.asset, 123 * 10**6, False)
    ]
    assert a3.reserves == ()
    assert a3.onchain.health_factor_wad == UINT_MAX
    assert [(r.scaled_variable_debt_raw, r.stable_debt_raw) for r in a4.reserves] == [(10**18, 0)]


def test_read_plan_costs(rpc: RpcClient, market: Any) -> None:
    conn = AaveV3Connector(rpc, DEVNET)
    conn.read_accounts([W1, W2, W3, W4])
    # chainId, getBlock, A (discovery), B, C, D, E
    assert market.http_requests == 7
    assert rpc.stats.calls_by_method == {"eth_chainId": 1, "eth_getBlockByNumber": 1, "eth_call": 5}
    before = market.http_requests
    conn.read_accounts([W1, W2, W3, W4], block=HEAD - 1)
    # chain id and discovery cached: getBlock, B, C, D, E
    assert market.http_requests - before == 5
    assert market.call_blocks[-1] == hex(HEAD - 1)


def test_debt_reads_all_gives_the_same_snapshot_with_one_round_trip_fewer(rpc: RpcClient, market: Any) -> None:
    flagged = AaveV3Connector(rpc, DEVNET).read_accounts([W1, W2, W3, W4])
    n = market.http_requests
    everything = AaveV3Connector(rpc, DEVNET, debt_reads="all").read_accounts([W1, W2, W3, W4])
    assert everything == flagged
    assert market.http_requests - n == n - 1


def test_read_market_alone(rpc: RpcClient, market: Any) -> None:
    m = AaveV3Connector(rpc, DEVNET).read_market()
    assert [r.symbol for r in m.reserves] == ["WETH", "USDC", "MKR"]
    assert m.emode_categories[0].price_raw == 1999 * 10**8


def test_invalid_wallet_fails_before_any_io(rpc: RpcClient, market: Any) -> None:
    conn = AaveV3Connector(rpc, DEVNET)
    good = checksum("0x" + "ab" * 20)
    i = next(k for k in range(2, 42) if good[k].isalpha())
    bad_checksum = good[:i] + good[i].swapcase() + good[i + 1 :]  # mixed case, one letter flipped
    for wallets in ([W1, "0x1234"], [W1, bad_checksum], [W1, "0x" + "g" * 40], [W1, None]):
        with pytest.raises(InvalidAddressError):
            conn.read_accounts(wallets)
    with pytest.raises(InvalidInputError):
        conn.read_accounts(W1)  # type: ignore[arg-type]
    assert market.http_requests == 0


def test_wrong_chain_is_refused(rpc: RpcClient, market: Any) -> None:
    with pytest.raises(InvalidInputError, match="chain"):
        AaveV3Connector(rpc, AAVE_V3_ETHEREUM).read_market()


def test_deployments_registry() -> None:
    assert get_deployment("aave_v3_ethereum") is AAVE_V3_ETHEREUM
    assert DEPLOYMENTS["spark_ethereum"] is SPARK_ETHEREUM
    assert AAVE_V3_ETHEREUM.pool_addresses_provider == "0x2f39d218133AFaB8F2B819B1066c7E434Ad94E9e"
    assert SPARK_ETHEREUM.pool_addresses_provider == "0x02C3eA4e34C0cBd694D2adFa2c690EECbC1793eE"
    with pytest.raises(InvalidInputError, match="known"):
        get_deployment("compound")
    with pytest.raises(ValueError, match="address"):
        AaveDeployment(name="x", chain_id=1, pool_addresses_provider="0x12")
