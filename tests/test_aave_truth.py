"""Truth: xmargin's Aave health equals the protocol's own ``getUserAccountData``, exactly.

Hundreds of randomized positions are opened on the devnet (Aave v3 deployed by Aave's own package):
random collateral assets and amounts, collateral switched off at random, e-mode, borrow ratios up to
the limit, variable and stable debt. Between rounds every price moves at random and time jumps
forward so interest accrues. After each round, every wallet is read through the connector at one
pinned block, its health computed by ``riskcore`` from the decoded balances, prices and thresholds —
and compared with ``Pool.getUserAccountData`` called directly (one plain ``eth_call`` per wallet, at
the same block): health factor, collateral, debt and threshold must be equal as integers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import devnet
from aggregator.venues.aave_v3.sync import market_params
from connectors.aave_v3.connector import AaveV3Connector
from connectors.aave_v3.deployments import AaveDeployment
from connectors.evm.abi import Fn
from connectors.evm.multicall import Multicall
from connectors.evm.rpc import RpcClient
from riskcore.units import UINT256_MAX
from riskcore.venues.aave_v3.health import AaveUserBalance, account_data

pytestmark = [pytest.mark.chain, pytest.mark.slow]

GET_USER_ACCOUNT_DATA = Fn("getUserAccountData(address)(uint256,uint256,uint256,uint256,uint256,uint256)")
COLLATERAL = ("WETH", "AAVE", "LINK", "DAI", "USDC")
BORROWABLE = ("DAI", "USDC", "LINK")
STABLE_EMODE = ("DAI", "USDC")
ROUNDS = 5
WALLETS_PER_ROUND = 45  # 225 distinct positions, each re-checked after every later move
SEED = 20261121


@pytest.fixture(scope="module")
def chain(seeded_devnet: devnet.DevnetInfo) -> devnet.DevnetInfo:
    return seeded_devnet  # the seed's lender provides liquidity


def _prices(info: devnet.DevnetInfo) -> dict[str, float]:
    return {s: float(devnet.latest_round(info, s).price_usd) for s in info.tokens}


def _raw(usd: float, price: float, decimals: int) -> int:
    return int(usd / price * 10**decimals)


def _open_random_position(info: devnet.DevnetInfo, wallet: str, rng: np.random.Generator,
                          prices: dict[str, float], decimals: dict[str, int]) -> dict[str, Any]:
    """Open one random position; returns what was done (for failure messages)."""
    done: dict[str, Any] = {"wallet": wallet, "supplied": [], "borrowed": [], "emode": 0}
    emode = rng.random() < 0.2
    pool = STABLE_EMODE if emode else COLLATERAL
    n_coll = int(rng.integers(1, min(3, len(pool)) + 1))
    for symbol in rng.choice(pool, size=n_coll, replace=False):
        sym = str(symbol)
        amount = _raw(float(rng.uniform(200, 40_000)), prices[sym], decimals[sym])
        devnet.fund(info, wallet, sym, amount)
        devnet.supply(info, wallet, sym, amount)
        done["supplied"].append((sym, amount))
    if n_coll > 1 and rng.random() < 0.15:
        sym = done["supplied"][0][0]
        devnet.set_use_as_collateral(info, wallet, sym, False)
        done["collateral_off"] = sym
    if emode:
        devnet.set_emode(info, wallet, 1)
        done["emode"] = 1
    if rng.random() < 0.1:
        return done  # no debt: health factor is uint256 max on both sides
    available_usd = devnet.account_data(info, wallet).available_borrows_base / 1e8
    ratio = float(rng.uniform(0.05, 0.995))
    targets = rng.choice(STABLE_EMODE if emode else BORROWABLE, size=int(rng.integers(1, 3)), replace=False)
    for sym_ in targets:
        sym = str(sym_)
        usd = available_usd * ratio / len(targets)
        amount = _raw(usd, prices[sym], decimals[sym])
        mode = devnet.RateMode.STABLE if rng.random() < 0.3 else devnet.RateMode.VARIABLE
        try:
            devnet.borrow(info, wallet, sym, amount, mode)
        except devnet.RevertedError:
            # e.g. stable borrowing of an asset also supplied as collateral (Aave error 32): try variable.
            devnet.borrow(info, wallet, sym, amount, devnet.RateMode.VARIABLE)
            mode = devnet.RateMode.VARIABLE
        done["borrowed"].append((sym, amount, int(mode)))
    return done


def _move_market(info: devnet.DevnetInfo, rng: np.random.Generator, prices: dict[str, float]) -> None:
    for sym in info.tokens:
        move = float(rng.uniform(0.75, 1.25)) if sym not in STABLE_EMODE else float(rng.uniform(0.97, 1.03))
        devnet.set_price(info, sym, round(prices[sym] * move, 8))
    devnet.increase_time(info, int(rng.integers(0, 400 * 86_400)))
    devnet.mine(info)


def _check_all(info: devnet.DevnetInfo, rpc: RpcClient, connector: AaveV3Connector,
               wallets: list[str]) -> tuple[int, int]:
    """Compare every wallet at one block; returns (wallets compared, of which with debt)."""
    block = rpc.get_block("latest")
    snap = connector.read_accounts(wallets, block)
    reserves, emodes = market_params(snap.market)
    by_asset = {r.asset: r.reserve_id for r in snap.market.reserves}
    with_debt = 0
    mismatches = []
    for account in snap.accounts:
        balances = [AaveUserBalance(by_asset[u.asset], u.scaled_a_token_balance_raw, u.scaled_variable_debt_raw,
                                    u.stable_debt_raw, u.usage_as_collateral, u.borrowing) for u in account.reserves]
        ours = account_data(reserves, balances, account.emode_category, emodes)
        raw = rpc.eth_call(info.contract("aave_v3.pool"), GET_USER_ACCOUNT_DATA.encode(account.wallet), block.number)
        coll, debt, avail, lt, ltv, hf = GET_USER_ACCOUNT_DATA.decode(raw)
        theirs = (coll, debt, avail, lt, ltv, hf)
        mine = (ours.total_collateral_base_raw, ours.total_debt_base_raw, ours.available_borrows_base_raw,
                ours.current_liquidation_threshold_bps, ours.ltv_bps, ours.health_factor_wad)
        if mine != theirs:
            mismatches.append((account.wallet, mine, theirs))
        with_debt += hf != UINT256_MAX
    assert not mismatches, f"{len(mismatches)} of {len(wallets)} differ at block {block.number}: {mismatches[:3]}"
    return len(snap.accounts), with_debt


def test_health_factor_equals_get_user_account_data_on_random_positions(chain: devnet.DevnetInfo) -> None:
    rng = np.random.default_rng(SEED)
    decimals = {s: devnet.decimals(chain, s) for s in chain.tokens}
    opened: list[str] = []
    compared = with_debt = 0
    hfs: list[float] = []
    with RpcClient(chain.rpc_url) as rpc:
        deployment = AaveDeployment(name="aave_v3", chain_id=chain.chain_id,
                                    pool_addresses_provider=chain.contract("aave_v3.pool_addresses_provider"))
        connector = AaveV3Connector(rpc, deployment, Multicall(rpc))
        for round_ in range(ROUNDS):
            prices = _prices(chain)
            for i in range(WALLETS_PER_ROUND):
                wallet = devnet.wallet_address(f"truth-{SEED}-{round_}-{i}")
                _open_random_position(chain, wallet, rng, prices, decimals)
                opened.append(wallet)
            n, d = _check_all(chain, rpc, connector, opened)
            compared += n
            with_debt += d
            _move_market(chain, rng, prices)
            n, d = _check_all(chain, rpc, connector, opened)
            compared += n
            with_debt += d
        final = connector.read_accounts(opened)
        hfs = [a.onchain.health_factor_wad / 1e18 for a in final.accounts if a.onchain.health_factor_wad != UINT256_MAX]
    assert len(set(opened)) >= 200
    assert with_debt >= 200
    # The random book really spans the interesting region: some liquidatable, some near 1, some safe.
    assert min(hfs) < 1.0 < max(hfs)
    assert any(1.0 <= h < 1.1 for h in hfs)
    assert compared >= 2 * len(opened)
