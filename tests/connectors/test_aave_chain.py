"""The Aave v3 connector against the devnet (anvil + Aave's own bytecode + MockV3Aggregator feeds + Multicall3).

Checks: every read pinned to the requested block, sane reserve configurations that agree with the tokens
and the deployment, the protocol's ``getUserAccountData`` kept verbatim, balances that reproduce the
tokens' own ``balanceOf`` exactly, and what the read plan costs in HTTP requests and ``eth_call``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest

from connectors.aave_v3.connector import GET_USER_ACCOUNT_DATA, AaveV3Connector
from connectors.aave_v3.deployments import AaveDeployment
from connectors.aave_v3.models import AaveSnapshot
from connectors.chainlink.reader import read_feeds
from connectors.evm.abi import Fn
from connectors.evm.multicall import Multicall
from connectors.evm.rpc import RpcClient, RpcStats

devnet = pytest.importorskip("devnet")

pytestmark = pytest.mark.chain

RAY = 10**27
UINT_MAX = 2**256 - 1
DECIMALS = Fn("decimals()(uint8)")
BALANCE_OF = Fn("balanceOf(address)(uint256)")


def ray_mul(a: int, b: int) -> int:
    """Aave's ``WadRayMath.rayMul``: half-up rounding."""
    return (a * b + RAY // 2) // RAY


@pytest.fixture
def chain(seeded_devnet: Any) -> Iterator[Any]:
    """The shared seeded devnet (seeded once: seeding after another test's time travel is fragile), reverted to
    its seeded state after the test."""
    snap = devnet.snapshot(seeded_devnet)
    yield seeded_devnet
    devnet.revert(seeded_devnet, snap)


@pytest.fixture
def wallets(chain: Any) -> list[str]:
    return [devnet.wallet_address(label) for label in devnet.SEED_LABELS]


@pytest.fixture
def rpc(chain: Any) -> Iterator[RpcClient]:
    with RpcClient(chain.rpc_url) as client:
        yield client


@pytest.fixture
def connector(chain: Any, rpc: RpcClient) -> AaveV3Connector:
    deployment = AaveDeployment(
        name="devnet",
        chain_id=chain.chain_id,
        pool_addresses_provider=chain.contract("aave_v3.pool_addresses_provider"),
    )
    return AaveV3Connector(rpc, deployment, Multicall(rpc, chain.contract("multicall3")))


def test_discovery_finds_the_deployed_contracts(chain: Any, connector: AaveV3Connector, rpc: RpcClient) -> None:
    addrs = connector.addresses(rpc.get_block("latest"))
    assert addrs.pool == chain.contract("aave_v3.pool")
    assert addrs.oracle == chain.contract("aave_v3.oracle")
    assert addrs.data_provider == chain.contract("aave_v3.pool_data_provider")


def test_block_pinning(chain: Any, connector: AaveV3Connector, wallets: list[str], rpc: RpcClient) -> None:
    stranger = "0x" + "5a" * 20
    before = connector.read_accounts([*wallets, stranger])
    n = before.block.number
    # mutate: prices, a new borrow, a new supplier, time (accrues interest)
    devnet.set_price(chain, "WETH", 3000)
    devnet.borrow(chain, devnet.wallet_address("safe"), "DAI", 1_000 * 10**18)
    devnet.fund(chain, stranger, "LINK", 10**18)
    devnet.supply(chain, stranger, "LINK", 10**18)
    devnet.increase_time(chain, 86_400)
    again = connector.read_accounts([*wallets, stranger], block=n)
    assert again == before
    now = connector.read_accounts([*wallets, stranger])
    assert now.block.number > n
    assert now.market != before.market
    assert now.accounts != before.accounts
    assert now.accounts[-1].reserves != ()
    assert before.accounts[-1].reserves == ()


def test_reserve_configurations_are_sane(chain: Any, connector: AaveV3Connector, rpc: RpcClient) -> None:
    block = rpc.get_block("latest")
    market = connector.read_market(block)
    assert market.base_currency_unit == 10**8
    by_symbol = {r.symbol: r for r in market.reserves}
    assert set(by_symbol) == set(chain.tokens)
    assert sorted(r.reserve_id for r in market.reserves) == list(range(len(market.reserves)))
    for r in market.reserves:
        assert r.asset == chain.token(r.symbol)
        assert r.liquidation_threshold_bps >= r.ltv_bps
        if r.liquidation_threshold_bps:
            assert r.liquidation_bonus_bps > 10_000
        assert r.decimals == rpc.eth_call(r.asset, DECIMALS.encode(), block)[-1]
        assert r.active
        assert not r.paused
        assert r.a_token == chain.contract(f"aave_v3.a_token.{r.symbol}")
        assert r.variable_debt_token == chain.contract(f"aave_v3.variable_debt_token.{r.symbol}")
        assert r.stable_debt_token == chain.contract(f"aave_v3.stable_debt_token.{r.symbol}")
        assert r.price_source == chain.contract(devnet.feed_name(r.symbol))
        assert r.feed is not None
        assert r.feed.answer_raw == r.price_raw
        assert r.feed.is_valid
        assert r.normalized_income_ray >= RAY
        assert r.normalized_variable_debt_ray >= RAY
    for cat in market.emode_categories:
        assert cat.liquidation_threshold_bps >= cat.ltv_bps
        assert any(r.emode_category == cat.category_id for r in market.reserves)
        assert cat.price_raw is None if int(cat.price_source, 16) == 0 else cat.price_raw is not None


def test_feeds_agree_with_the_aave_oracle(chain: Any, connector: AaveV3Connector, rpc: RpcClient) -> None:
    block = rpc.get_block("latest")
    market = connector.read_market(block)
    feeds = read_feeds(connector.multicall, [r.price_source for r in market.reserves], block)
    for r in market.reserves:
        assert feeds[r.price_source] == r.feed
        assert feeds[r.price_source].decimals == 8


def test_onchain_account_data_equals_a_direct_call(
    chain: Any, connector: AaveV3Connector, wallets: list[str], rpc: RpcClient
) -> None:
    devnet.increase_time(chain, 30 * 86_400)  # let interest accrue so nothing is a round number
    devnet.refresh_feeds(chain)
    snap = connector.read_accounts(wallets)
    pool = snap.market.pool
    for acc in snap.accounts:
        direct = GET_USER_ACCOUNT_DATA.decode(rpc.eth_call(pool, GET_USER_ACCOUNT_DATA.encode(acc.wallet), snap.block))
        o = acc.onchain
        assert (
            o.total_collateral_base_raw,
            o.total_debt_base_raw,
            o.available_borrows_base_raw,
            o.current_liquidation_threshold_bps,
            o.ltv_bps,
            o.health_factor_wad,
        ) == direct
    labels = dict(zip(devnet.SEED_LABELS, snap.accounts, strict=True))
    assert labels["lender"].onchain.health_factor_wad == UINT_MAX
    assert 10**18 < labels["near_liquidation"].onchain.health_factor_wad < 11 * 10**17
    assert labels["emode"].emode_category == 1


def test_balances_reproduce_the_tokens_balance_of(
    chain: Any, connector: AaveV3Connector, wallets: list[str], rpc: RpcClient
) -> None:
    devnet.increase_time(chain, 45 * 86_400)
    devnet.refresh_feeds(chain)
    snap = connector.read_accounts(wallets)
    reserves = {r.asset: r for r in snap.market.reserves}
    checked = 0
    for acc in snap.accounts:
        for ur in acc.reserves:
            r = reserves[ur.asset]

            def balance(token: str, who: str = acc.wallet) -> int:
                return int(BALANCE_OF.decode_one(rpc.eth_call(token, BALANCE_OF.encode(who), snap.block)))

            assert ray_mul(ur.scaled_a_token_balance_raw, r.normalized_income_ray) == balance(r.a_token)
            assert ray_mul(ur.scaled_variable_debt_raw, r.normalized_variable_debt_ray) == balance(
                r.variable_debt_token
            )
            assert ur.stable_debt_raw == balance(r.stable_debt_token)
            checked += 1
    assert checked >= 12
    multi = snap.accounts[devnet.SEED_LABELS.index("multi")]
    usdc = next(u for u in multi.reserves if u.asset == chain.token("USDC"))
    assert usdc.borrowing
    assert usdc.stable_debt_raw > 8_000 * 10**6  # accrued since the borrow
    assert all(u.borrowing or u.usage_as_collateral or u.scaled_a_token_balance_raw for u in multi.reserves)


def test_a_wallet_that_never_used_aave_is_an_empty_account(connector: AaveV3Connector) -> None:
    (acc,) = connector.read_accounts(["0x" + "77" * 20]).accounts
    assert acc.reserves == ()
    assert acc.user_configuration_raw == 0
    assert acc.onchain.health_factor_wad == UINT_MAX
    assert acc.onchain.total_collateral_base_raw == 0


def _cost(connector: AaveV3Connector, rpc: RpcClient, wallets: list[str]) -> tuple[RpcStats, AaveSnapshot]:
    before = rpc.stats.copy()
    snap = connector.read_accounts(wallets)
    return rpc.stats - before, snap


@pytest.mark.parametrize("debt_reads", ["flagged", "all"])
def test_read_plan_cost(chain: Any, rpc: RpcClient, wallets: list[str], debt_reads: str) -> None:
    deployment = AaveDeployment(
        name="devnet",
        chain_id=chain.chain_id,
        pool_addresses_provider=chain.contract("aave_v3.pool_addresses_provider"),
    )
    multicall = Multicall(rpc, chain.contract("multicall3"))
    connector = AaveV3Connector(rpc, deployment, multicall, debt_reads=debt_reads)  # type: ignore[arg-type]
    connector.read_market()  # warm: chain id and discovery are cached after the first read
    rng = random.Random(7)
    strangers = ["0x" + rng.randbytes(20).hex() for _ in range(2000)]
    cost_small, small = _cost(connector, rpc, wallets)
    cost_big, big = _cost(connector, rpc, [*wallets, *strangers])
    # latest block, B, C, D (+ E when flagged); one HTTP request each while bodies stay under the cap
    assert cost_small.http_requests == (5 if debt_reads == "flagged" else 4)
    assert cost_small.calls_by_method["eth_getBlockByNumber"] == 1
    # 2005 wallets × (3 + 5 reserves [× 3 with "all"]) sub-calls need several aggregate3 / HTTP requests
    assert cost_big.calls_by_method["eth_call"] > cost_small.calls_by_method["eth_call"]
    assert big.block == small.block  # nothing mined in between
    assert big.accounts[: len(wallets)] == small.accounts
    assert all(a.reserves == () for a in big.accounts[len(wallets) :])
    print(f"\n[{debt_reads}] 5 wallets: {cost_small}\n[{debt_reads}] 2005 wallets: {cost_big}")
