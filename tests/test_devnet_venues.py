"""The devnet's other venues: Morpho Blue and Uniswap v3 on the Aave test market's tokens, prices moved
consistently on every venue by ``set_price``, and the ``hedged`` seed wallet holding all three."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from eth_utils.address import is_checksum_address

import devnet
from devnet import DevnetInfo, RevertedError, morpho, uniswap

pytestmark = pytest.mark.chain

WAD = 10**18
USDC = 10**6
WETH = 10**18


@pytest.fixture
def chain(fresh_devnet: DevnetInfo) -> Iterator[DevnetInfo]:
    """The shared devnet as launched (tests/conftest.py), reverted to its state before the test afterwards."""
    snap = devnet.snapshot(fresh_devnet)
    yield fresh_devnet
    devnet.revert(fresh_devnet, snap)


def _expected_morpho_price(info: DevnetInfo, collateral: str, loan: str) -> int:
    """Independent of devnet.morpho: 1e36 * usd_coll / usd_loan * 10**(loan_dec - coll_dec)."""
    coll = devnet.latest_round(info, collateral).answer_raw
    loan_answer = devnet.latest_round(info, loan).answer_raw
    return int(coll * 10 ** (36 + devnet.decimals(info, loan) - devnet.decimals(info, collateral)) // loan_answer)


def _expected_tick(info: DevnetInfo, pool_name: str) -> float:
    """log_1.0001 of the token1/token0 raw price implied by the two Chainlink feeds."""
    tokens = uniswap.pool_tokens(info, pool_name)
    usd0 = Decimal(devnet.latest_round(info, tokens.symbol0).answer_raw)
    usd1 = Decimal(devnet.latest_round(info, tokens.symbol1).answer_raw)
    price = usd0 / usd1 * Decimal(10) ** (tokens.decimals1 - tokens.decimals0)
    return float(price.ln() / Decimal("1.0001").ln())


def test_info_names_the_new_venues(chain: DevnetInfo) -> None:
    for name in (
        "morpho_blue.morpho",
        "morpho_blue.irm",
        "morpho_blue.oracle.WETH_USDC",
        "morpho_blue.oracle.WETH_DAI",
        "uniswap_v3.factory",
        "uniswap_v3.position_manager",
        "uniswap_v3.swap_router",
        "uniswap_v3.pool.WETH_USDC_500",
        "uniswap_v3.pool.WETH_DAI_3000",
    ):
        assert is_checksum_address(chain.contract(name)), name
        assert len(devnet.rpc(chain, "eth_getCode", [chain.contract(name), "latest"])) > 2, name
    assert set(chain.markets) == {"morpho_blue.WETH_USDC", "morpho_blue.WETH_DAI"}
    assert all(len(market_id) == 66 for market_id in chain.markets.values())
    data = chain.as_json(with_markets=True)
    assert {"rpc_url", "chain_id", "contracts", "tokens"} <= set(data)
    assert DevnetInfo.from_json(data) == chain
    four_keys = chain.as_json()
    assert set(four_keys) == {"rpc_url", "chain_id", "contracts", "tokens"}
    without_ids = DevnetInfo.from_json(four_keys)  # the ids are recomputed from the market params
    assert morpho.market_id(without_ids, "WETH_USDC") == chain.market("morpho_blue.WETH_USDC")


def test_morpho_markets_use_the_aave_tokens(chain: DevnetInfo) -> None:
    for name, (collateral, loan, lltv) in {
        "WETH_USDC": ("WETH", "USDC", 86 * 10**16),
        "WETH_DAI": ("WETH", "DAI", 915 * 10**15),
    }.items():
        params = morpho.market_params(chain, name)
        assert params.collateral_token == chain.token(collateral)
        assert params.loan_token == chain.token(loan)
        assert params.lltv == lltv
        assert params.irm == chain.contract("morpho_blue.irm")
        assert params.oracle == chain.contract(f"morpho_blue.oracle.{name}")
        assert params.id == chain.market(f"morpho_blue.{name}")
        state = morpho.market_state(chain, name)
        assert state.total_supply_assets >= 1_000_000 * 10 ** devnet.decimals(chain, loan)
        assert state.total_borrow_assets == 0  # nothing borrowed before seeding
        assert morpho.oracle_price(chain, name) == _expected_morpho_price(chain, collateral, loan)


def test_morpho_supply_borrow_repay_withdraw(chain: DevnetInfo) -> None:
    wallet = devnet.wallet_address("test.morpho")
    devnet.fund(chain, wallet, "WETH", 2 * WETH)
    morpho.supply_collateral(chain, wallet, "WETH_USDC", 2 * WETH)
    # 2 WETH at $4,000, LLTV 86 %: at most 6,880 USDC
    with pytest.raises(RevertedError) as excinfo:
        morpho.borrow(chain, wallet, "WETH_USDC", 6_900 * USDC)
    assert excinfo.value.reason == "insufficient collateral"
    morpho.borrow(chain, wallet, "WETH_USDC", 6_000 * USDC)
    assert devnet.balance_of(chain, "USDC", wallet) == 6_000 * USDC
    pos = morpho.position(chain, "WETH_USDC", wallet)
    assert pos.collateral == 2 * WETH
    assert pos.borrow_shares > 0
    assert morpho.borrow_assets(chain, "WETH_USDC", wallet) == 6_000 * USDC
    assert morpho.health_factor_wad(chain, "WETH_USDC", wallet) == 2 * 4000 * 86 // 100 * WAD // 6000
    with pytest.raises(RevertedError) as excinfo:
        morpho.withdraw_collateral(chain, wallet, "WETH_USDC", WETH)
    assert excinfo.value.reason == "insufficient collateral"
    devnet.increase_time(chain, 30 * 86_400)
    devnet.fund(chain, wallet, "USDC", 100 * USDC)  # interest
    morpho.repay(chain, wallet, "WETH_USDC", 0, shares=pos.borrow_shares)
    assert morpho.position(chain, "WETH_USDC", wallet).borrow_shares == 0
    morpho.withdraw_collateral(chain, wallet, "WETH_USDC", 2 * WETH)
    assert devnet.balance_of(chain, "WETH", wallet) == 2 * WETH
    assert devnet.balance_of(chain, "USDC", wallet) < 100 * USDC  # paid interest


def test_morpho_lender_supply_and_withdraw(chain: DevnetInfo) -> None:
    wallet = devnet.wallet_address("test.morpho_lender")
    devnet.fund(chain, wallet, "DAI", 1_000 * WAD)
    morpho.supply(chain, wallet, "WETH_DAI", 1_000 * WAD)
    assert morpho.position(chain, "WETH_DAI", wallet).supply_shares > 0
    morpho.withdraw(chain, wallet, "WETH_DAI", 500 * WAD)
    assert devnet.balance_of(chain, "DAI", wallet) == 500 * WAD


def test_set_price_moves_morpho_oracles_and_liquidation(chain: DevnetInfo) -> None:
    wallets = {w.label: w.address for w in devnet.seed(chain)}
    hedged = wallets["hedged"]
    liquidator = devnet.wallet_address("test.morpho_liquidator")
    devnet.fund(chain, liquidator, "USDC", 10_000 * USDC)
    with pytest.raises(RevertedError) as excinfo:
        morpho.liquidate(chain, liquidator, hedged, "WETH_USDC", seized_assets=WETH)
    assert excinfo.value.reason == "position is healthy"
    devnet.set_price(chain, "WETH", 2222.22)
    for name, (collateral, loan) in {"WETH_USDC": ("WETH", "USDC"), "WETH_DAI": ("WETH", "DAI")}.items():
        assert morpho.oracle_price(chain, name) == _expected_morpho_price(chain, collateral, loan)
    assert morpho.oracle_price(chain, "WETH_USDC") == 2222_22 * 10**22  # 2222.22 * 1e36 * 1e6 / 1e18
    devnet.set_price(chain, "USDC", 1.01)  # the loan side moves the oracle too
    assert morpho.oracle_price(chain, "WETH_USDC") == _expected_morpho_price(chain, "WETH", "USDC")
    assert morpho.health_factor_wad(chain, "WETH_USDC", hedged) < WAD
    before = morpho.position(chain, "WETH_USDC", hedged)
    morpho.liquidate(chain, liquidator, hedged, "WETH_USDC", seized_assets=WETH)
    after = morpho.position(chain, "WETH_USDC", hedged)
    assert after.collateral == before.collateral - WETH
    assert after.borrow_shares < before.borrow_shares
    assert devnet.balance_of(chain, "WETH", liquidator) == WETH


def test_set_oracle_price_directly(chain: DevnetInfo) -> None:
    morpho.set_oracle_price(chain, "WETH_DAI", 1234 * 10**36)
    assert morpho.oracle_price(chain, "WETH_DAI") == 1234 * 10**36
    assert devnet.latest_round(chain, "WETH").price_usd == 4000  # the feed is left alone


def test_uniswap_pools_start_at_the_feed_prices_with_liquidity(chain: DevnetInfo) -> None:
    pools = {"WETH_USDC_500": ("WETH", "USDC", 500), "WETH_DAI_3000": ("WETH", "DAI", 3000)}
    for name, (base, quote, fee) in pools.items():
        tokens = uniswap.pool_tokens(chain, name)
        assert {tokens.symbol0, tokens.symbol1} == {base, quote}
        assert int(tokens.token0, 16) < int(tokens.token1, 16)
        assert tokens.fee == fee
        state = uniswap.pool_state(chain, name)
        assert abs(state.tick - _expected_tick(chain, name)) <= 1
        assert state.liquidity > 0
        assert abs(uniswap.pool_price(chain, name) - 4000) < Decimal("0.01")
        (factory_pool,) = devnet.eth_call(
            chain, chain.contract("uniswap_v3.factory"), "getPool(address,address,uint24)",
            [tokens.token0, tokens.token1, fee], ["address"],
        )
        assert factory_pool == tokens.pool.lower()
    assert len(uniswap.positions_of(chain, devnet.LIQUIDITY)) == 6


def test_set_price_moves_uniswap_pools_within_a_tick(chain: DevnetInfo) -> None:
    for usd in (3100.5, 4321.0, 3999.99):
        devnet.set_price(chain, "WETH", usd)
        for name in ("WETH_USDC_500", "WETH_DAI_3000"):
            state = uniswap.pool_state(chain, name)
            assert abs(state.tick - _expected_tick(chain, name)) <= 1, (usd, name)
            assert abs(float(uniswap.pool_price(chain, name)) - usd) / usd < 1e-4
    devnet.set_price(chain, "DAI", 0.98)  # only the DAI pool moves
    assert abs(float(uniswap.pool_price(chain, "WETH_DAI_3000")) - 3999.99 / 0.98) < 0.5
    assert abs(float(uniswap.pool_price(chain, "WETH_USDC_500")) - 3999.99) < 0.5


def test_uniswap_mint_and_swap(chain: DevnetInfo) -> None:
    wallet = devnet.wallet_address("test.uniswap")
    name = "WETH_USDC_500"
    tokens = uniswap.pool_tokens(chain, name)
    devnet.fund(chain, wallet, "WETH", 3 * WETH)
    devnet.fund(chain, wallet, "USDC", 12_000 * USDC)
    lower, upper = uniswap.ticks_for_usd_range(chain, name, 3600, 4400)
    assert lower % 10 == 0
    assert upper % 10 == 0
    amounts = (2 * WETH, 8_000 * USDC) if tokens.base_is_token0 else (8_000 * USDC, 2 * WETH)
    token_id = uniswap.mint_position(chain, wallet, name, lower, upper, *amounts)
    assert uniswap.positions_of(chain, wallet) == [token_id]
    lp = uniswap.lp_position(chain, token_id)
    assert (lp.token0, lp.token1, lp.fee, lp.tick_lower, lp.tick_upper) == (
        tokens.token0, tokens.token1, 500, lower, upper,
    )
    assert lp.liquidity > 0
    before = uniswap.pool_state(chain, name)
    weth_is_0 = tokens.base_is_token0
    result = uniswap.swap(chain, wallet, name, zero_for_one=weth_is_0, amount_in_raw=WETH)  # sell 1 WETH
    weth_delta, usdc_delta = (result.amount0, result.amount1) if weth_is_0 else (result.amount1, result.amount0)
    assert weth_delta == WETH
    assert 3_990 * USDC < -usdc_delta < 4_000 * USDC  # 0.05 % fee, a little slippage
    after = uniswap.pool_state(chain, name)
    assert (after.sqrt_price_x96 < before.sqrt_price_x96) == weth_is_0
    growth = after.fee_growth_global0_x128 if weth_is_0 else after.fee_growth_global1_x128
    assert growth > (before.fee_growth_global0_x128 if weth_is_0 else before.fee_growth_global1_x128)


def test_swap_to_price_stops_exactly_at_the_target(chain: DevnetInfo) -> None:
    target = uniswap.sqrt_price_x96_at(Decimal(uniswap.pool_state(chain, "WETH_USDC_500").sqrt_price_x96) ** 2
                                       / Decimal(2) ** 192 * Decimal("1.1"))
    uniswap.swap_to_sqrt_price(chain, "WETH_USDC_500", target)
    assert uniswap.pool_state(chain, "WETH_USDC_500").sqrt_price_x96 == target
    uniswap.swap_to_price(chain, "WETH_USDC_500", 3500)
    assert abs(float(uniswap.pool_price(chain, "WETH_USDC_500")) - 3500) < 0.01
    assert devnet.latest_round(chain, "WETH").price_usd == 4000  # the feed is left alone


def test_hedged_wallet_has_positions_on_every_onchain_venue(chain: DevnetInfo) -> None:
    wallets = {w.label: w.address for w in devnet.seed(chain)}
    hedged = wallets["hedged"]
    assert hedged == devnet.wallet_address("hedged")
    aave = devnet.account_data(chain, hedged)
    assert aave.total_collateral_base == 20 * 4000 * 10**8
    # 40k USDC borrowed, plus the interest accrued over the seconds since (a few base units).
    assert 40_000 * 10**8 <= aave.total_debt_base < 40_000 * 10**8 * (1 + 1e-6)
    pos = morpho.position(chain, "WETH_USDC", hedged)
    assert pos.collateral == 10 * WETH
    assert morpho.borrow_assets(chain, "WETH_USDC", hedged) == 20_000 * USDC
    assert 17 * WAD // 10 < morpho.health_factor_wad(chain, "WETH_USDC", hedged) < 18 * WAD // 10
    (token_id,) = uniswap.positions_of(chain, hedged)
    lp = uniswap.lp_position(chain, token_id)
    assert lp.liquidity > 0
    tick = uniswap.pool_state(chain, "WETH_USDC_500").tick
    assert lp.tick_lower < tick < lp.tick_upper
    width = (lp.tick_upper - lp.tick_lower) * Decimal("1.0001").ln()  # ln(1.15 / 0.85) ~ 0.302
    assert abs(width - Decimal("1.15").ln() + Decimal("0.85").ln()) < Decimal("0.01")
    assert [w.label for w in devnet.seed(chain)] == list(devnet.SEED_LABELS)  # idempotent
    assert uniswap.positions_of(chain, hedged) == [token_id]


def test_seed_keeps_the_other_wallets_health(chain: DevnetInfo) -> None:
    wallets = {w.label: w.address for w in devnet.seed(chain)}
    assert devnet.SEED_LABELS[-1] == "hedged"
    near = devnet.account_data(chain, wallets["near_liquidation"]).health_factor_wad
    assert WAD < near < 11 * WAD // 10


def test_set_price_calls_the_perp_hook_when_present(chain: DevnetInfo, monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    calls: list[tuple[str, float]] = []
    fake = types.ModuleType("devnet.perp_api")
    fake.set_mark = lambda info, symbol, usd: calls.append((symbol, usd))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "devnet.perp_api", fake)
    monkeypatch.setattr(devnet, "perp_api", fake, raising=False)  # shadow the real one if imported already
    devnet.set_price(chain, "LINK", 31.5)
    assert calls == [("LINK", 31.5)]


def test_info_json_shape_of_the_cli(fresh_devnet: DevnetInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``xmargin devnet info --json``: the four keys of the foundation issue, plus the market ids and the
    services (the local perp API) that the run file records."""
    run = tmp_path / "run.json"
    monkeypatch.setenv("XMARGIN_DEVNET_RUN", str(run))
    devnet.up()
    try:
        exe = str(Path(sys.executable).with_name("xmargin"))
        out = subprocess.run([exe, "devnet", "info", "--json"], capture_output=True, text=True, check=True, timeout=120)
        data = json.loads(out.stdout)
        assert set(data) == {"rpc_url", "chain_id", "contracts", "tokens", "markets", "services"}
        assert data["markets"] == fresh_devnet.markets
        assert data["services"]["perp_api"].startswith("http://127.0.0.1:")
        assert "morpho_blue.morpho" in data["contracts"]
        assert "uniswap_v3.pool.WETH_USDC_500" in data["contracts"]
        record = json.loads(run.read_text())
        assert {"rpc_url", "chain_id", "contracts", "tokens", "markets"} <= set(record)
        assert devnet.info().markets == fresh_devnet.markets
    finally:
        devnet.down()
