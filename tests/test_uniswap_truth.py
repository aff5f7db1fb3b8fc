"""Truth: xmargin's Uniswap v3 amounts and fees equal what the position manager itself would pay, exactly.

Well over a hundred positions are minted on the devnet's two pools (``WETH_USDC_500``, ``WETH_DAI_3000``;
Uniswap's own npm bytecode) with random ranges respecting the tick spacing: in range, entirely below and
entirely above the price, narrow to full range, some sharing a range with another NFT. Between rounds the
pools are swapped in both directions (exact-input trades of random size, and moves to random prices,
some landing exactly on a position's bound), so fees accrue and ranges cross in and out; some positions
are partly decreased, some collected, some emptied (liquidity 0 with tokens owed).

After each round every position is read through the connector at one pinned block, and
``riskcore.venues.uniswap_v3.position.position_amounts`` computed from the decoded snapshot is compared, as integers,
with two separate ``eth_call`` s from the owner at the same block: ``decreaseLiquidity`` of the full
liquidity (the principal) and ``collect(2**128-1, 2**128-1)`` (the fees and tokens owed).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from eth_abi import decode

import devnet
from aggregator.venues.uniswap_v3.sync import PoolIndex, exact_amounts
from connectors.evm.multicall import Multicall
from connectors.evm.rpc import RpcClient
from connectors.uniswap_v3.connector import UniswapV3Connector
from connectors.uniswap_v3.deployments import UniswapV3Deployment
from connectors.uniswap_v3.models import LpPosition, UniswapSnapshot
from devnet import uniswap
from riskcore.clmm import lp_greeks, sqrt_price_float
from riskcore.venues.uniswap_v3.position import UINT128_MAX, PositionAmounts, get_sqrt_ratio_at_tick

pytestmark = [pytest.mark.chain, pytest.mark.slow]

SEED = 20261122
POOL_NAMES = ("WETH_USDC_500", "WETH_DAI_3000")
LPS = 6
POSITIONS_PER_POOL = 66  # 132 NFTs minted here, plus the devnet's own 6 deep positions
ROUNDS = 6
DEADLINE = 2**256 - 1
DECREASE = "decreaseLiquidity((uint256,uint128,uint256,uint256,uint256))"
COLLECT = "collect((uint256,address,uint128,uint128))"


@pytest.fixture(scope="module")
def chain(fresh_devnet: devnet.DevnetInfo) -> devnet.DevnetInfo:
    return fresh_devnet


def _random_range(rng: np.random.Generator, tick: int, spacing: int, fee: int) -> tuple[int, int, str]:
    """A range aligned to ``spacing``: in range, below or above the current tick, narrow to full range."""
    full_lo, full_hi = uniswap.full_range_ticks(fee)
    if rng.random() < 0.05:
        return full_lo, full_hi, "full"
    width = spacing * int(rng.choice([rng.integers(1, 8), rng.integers(8, 120), rng.integers(120, 1500)]))
    base = (tick // spacing) * spacing
    kind = str(rng.choice(["in", "in", "below", "above"]))
    if kind == "in":
        lower = base - spacing * int(rng.integers(0, width // spacing))
    elif kind == "below":
        lower = base - width - spacing * int(rng.integers(0, 300))
    else:
        lower = base + spacing * int(rng.integers(1, 300))
    lower = max(lower, full_lo)
    return lower, min(lower + width, full_hi), kind


def _mint_positions(info: devnet.DevnetInfo, rng: np.random.Generator, lps: list[str]) -> list[tuple[str, str]]:
    """Mint the random book; returns (pool name, range kind) per NFT minted."""
    kinds: list[tuple[str, str]] = []
    for name in POOL_NAMES:
        tokens = uniswap.pool_tokens(info, name)
        ranges: list[tuple[int, int]] = []
        for _ in range(POSITIONS_PER_POOL):
            tick = uniswap.pool_state(info, name).tick
            if ranges and rng.random() < 0.12:
                lower, upper = ranges[int(rng.integers(0, len(ranges)))]
                kind = "shared"
            else:
                lower, upper, kind = _random_range(rng, tick, tokens.tick_spacing, tokens.fee)
            ranges.append((lower, upper))
            weth = int(rng.uniform(0.05, 40.0) * 10**18)
            price = float(uniswap.pool_price(info, name))  # quote per WETH
            quote = int(weth / 10**18 * price * float(rng.uniform(0.3, 3.0)) * 10 ** (tokens.decimals1))
            amount0, amount1 = (weth, quote) if tokens.base_is_token0 else (quote, weth)
            wallet = lps[int(rng.integers(0, len(lps)))]
            devnet.mint_tokens(info, wallet, tokens.symbol0, amount0)
            devnet.mint_tokens(info, wallet, tokens.symbol1, amount1)
            uniswap.mint_position(info, wallet, name, lower, upper, amount0, amount1)
            kinds.append((name, kind))
    return kinds


def _trade(info: devnet.DevnetInfo, rng: np.random.Generator, trader: str, bounds: dict[str, list[int]]) -> None:
    """Random swaps on every pool, in both directions, some ending exactly on a position's bound."""
    for name in POOL_NAMES:
        tokens = uniswap.pool_tokens(info, name)
        for _ in range(int(rng.integers(2, 6))):
            state = uniswap.pool_state(info, name)
            r = rng.random()
            if r < 0.45:
                zero_for_one = bool(rng.random() < 0.5)
                symbol = tokens.symbol0 if zero_for_one else tokens.symbol1
                decimals = tokens.decimals0 if zero_for_one else tokens.decimals1
                price = float(uniswap.pool_price(info, name))
                weth = float(rng.uniform(0.5, 400.0))
                is_weth = symbol == tokens.base
                amount = int((weth if is_weth else weth * price) * 10**decimals)
                devnet.mint_tokens(info, trader, symbol, amount)
                uniswap.swap(info, trader, name, zero_for_one, amount)
            elif r < 0.65 and bounds[name]:
                tick = int(rng.choice(bounds[name]))
                if abs(tick - state.tick) < 20_000:  # stay within the deep liquidity
                    uniswap.swap_to_sqrt_price(info, name, get_sqrt_ratio_at_tick(tick))
            else:
                move = float(rng.uniform(0.85, 1.15))
                target = int(state.sqrt_price_x96 * move**0.5)
                uniswap.swap_to_sqrt_price(info, name, target)


def _onchain(rpc: RpcClient, manager: str, positions: list[LpPosition], block: int) -> list[tuple[Any, Any]]:
    """Per position: (decreaseLiquidity(full) result or None when it has no liquidity, collect(max) result)."""
    requests: list[tuple[str, list[Any]]] = []
    for p in positions:
        if p.liquidity > 0:
            data = devnet.encode_call(DECREASE, (p.token_id, p.liquidity, 0, 0, DEADLINE))
            requests.append(("eth_call", [{"from": p.owner, "to": manager, "data": data}, hex(block)]))
        data = devnet.encode_call(COLLECT, (p.token_id, p.owner, UINT128_MAX, UINT128_MAX))
        requests.append(("eth_call", [{"from": p.owner, "to": manager, "data": data}, hex(block)]))
    answers: list[Any] = []
    for start in range(0, len(requests), 200):
        answers += rpc.batch(requests[start : start + 200])
    out: list[tuple[Any, Any]] = []
    it = iter(answers)
    for p in positions:
        dec = decode(["uint256", "uint256"], bytes.fromhex(next(it)[2:])) if p.liquidity > 0 else None
        col = decode(["uint256", "uint256"], bytes.fromhex(next(it)[2:]))
        out.append((dec, col))
    return out


def _check(info: devnet.DevnetInfo, rpc: RpcClient, connector: UniswapV3Connector,
           wallets: list[str], stats: dict[str, int]) -> UniswapSnapshot:
    block = rpc.get_block("latest")
    snap = connector.read_accounts(wallets, block)
    for name in POOL_NAMES:  # the CREATE2 pool address and the pool state agree with the devnet's own reads
        pool = snap.pool(info.contract(f"uniswap_v3.pool.{name}"))
        state = uniswap.pool_state(info, name)
        assert (pool.sqrt_price_x96, pool.tick, pool.liquidity) == (state.sqrt_price_x96, state.tick, state.liquidity)
    positions = [p for a in snap.accounts for p in a.positions]
    onchain = _onchain(rpc, snap.position_manager, positions, block.number)
    mismatches = []
    indexes = {q.address: PoolIndex.of(q) for q in snap.pools}
    for p, (dec, col) in zip(positions, onchain, strict=True):
        pool = snap.pool(p.pool)
        ours: PositionAmounts = exact_amounts(p, pool, indexes[pool.address])  # as evaluate values a book
        assert ours == exact_amounts(p, pool)
        if dec is not None:
            stats["decrease"] += 1
            if (ours.amount0_raw, ours.amount1_raw) != tuple(dec):
                mismatches.append(("decrease", p.token_id, (ours.amount0_raw, ours.amount1_raw), dec))
            region = "below" if pool.tick < p.tick_lower else "above" if pool.tick >= p.tick_upper else "in"
            stats[f"region_{region}"] += 1
            stats["on_bound"] += pool.sqrt_price_x96 in (get_sqrt_ratio_at_tick(p.tick_lower),
                                                       get_sqrt_ratio_at_tick(p.tick_upper))
        stats["collect"] += 1
        stats["fees_nonzero"] += (ours.fees0_raw > 0 or ours.fees1_raw > 0)
        stats["pool_capped"] += (ours.fees0_raw, ours.fees1_raw) != (ours.owed0_raw, ours.owed1_raw)
        if (ours.fees0_raw, ours.fees1_raw) != tuple(col):
            mismatches.append(("collect", p.token_id, (ours.fees0_raw, ours.fees1_raw), col))
    assert not mismatches, f"{len(mismatches)} mismatches at block {block.number}: {mismatches[:5]}"
    return snap


def _lifecycle(info: devnet.DevnetInfo, rng: np.random.Generator, snap: UniswapSnapshot) -> None:
    """Partly decrease, collect, or empty some positions (tokens owed, zero-liquidity NFTs)."""
    manager = snap.position_manager
    for p in (p for a in snap.accounts for p in a.positions if a.wallet != devnet.LIQUIDITY):
        r = rng.random()
        if r < 0.08 and p.liquidity > 0:
            part = max(1, int(p.liquidity * float(rng.uniform(0.05, 0.9))))
            devnet.transact(info, p.owner, manager, DECREASE, (p.token_id, part, 0, 0, DEADLINE))
        elif r < 0.12:
            devnet.transact(info, p.owner, manager, COLLECT, (p.token_id, p.owner, UINT128_MAX, UINT128_MAX))
        elif r < 0.14 and p.liquidity > 0:
            devnet.transact(info, p.owner, manager, DECREASE, (p.token_id, p.liquidity, 0, 0, DEADLINE))


def test_amounts_and_fees_equal_decrease_liquidity_and_collect(chain: devnet.DevnetInfo) -> None:
    rng = np.random.default_rng(SEED)
    lps = [devnet.wallet_address(f"uni-truth-{SEED}-{i}") for i in range(LPS)]
    trader = devnet.wallet_address(f"uni-truth-{SEED}-trader")
    kinds = _mint_positions(chain, rng, lps)
    wallets = [*lps, devnet.LIQUIDITY, trader]
    stats: dict[str, int] = dict.fromkeys(
        ("decrease", "collect", "fees_nonzero", "pool_capped", "region_in", "region_below", "region_above",
         "on_bound"), 0)
    with RpcClient(chain.rpc_url) as rpc:
        deployment = UniswapV3Deployment(
            name="uniswap_v3", chain_id=chain.chain_id,
            position_manager=chain.contract("uniswap_v3.position_manager"),
            factory=chain.contract("uniswap_v3.factory"),
        )
        connector = UniswapV3Connector(rpc, deployment, Multicall(rpc))
        snap = _check(chain, rpc, connector, wallets, stats)
        for _ in range(ROUNDS):
            bounds: dict[str, list[int]] = {n: [] for n in POOL_NAMES}
            names = {chain.contract(f"uniswap_v3.pool.{n}").lower(): n for n in POOL_NAMES}
            for p in (p for a in snap.accounts for p in a.positions):
                bounds[names[p.pool.lower()]] += [p.tick_lower, p.tick_upper]
            _trade(chain, rng, trader, bounds)
            snap = _check(chain, rpc, connector, wallets, stats)
            _lifecycle(chain, rng, snap)
            snap = _check(chain, rpc, connector, wallets, stats)
        positions = [p for a in snap.accounts for p in a.positions]
        # The float path agrees with the exact one on the final book (delta = token0 held).
        for p in positions[:40]:
            pool = snap.pool(p.pool)
            ours = exact_amounts(p, pool)
            g = lp_greeks(p.liquidity, sqrt_price_float(pool.sqrt_price_x96),
                          sqrt_price_float(get_sqrt_ratio_at_tick(p.tick_lower)),
                          sqrt_price_float(get_sqrt_ratio_at_tick(p.tick_upper)), p.token0_decimals,
                          p.token1_decimals)
            assert float(g.delta) == pytest.approx(ours.amount0_raw / 10**p.token0_decimals, rel=1e-9, abs=1e-12)
    minted = kinds
    assert len(minted) >= 100
    assert {k for _, k in minted} >= {"in", "below", "above", "shared"}
    assert stats["decrease"] >= 100 * (2 * ROUNDS + 1)
    assert min(stats["region_in"], stats["region_below"], stats["region_above"]) >= 50
    assert stats["fees_nonzero"] >= 100
    print(f"\nUniswap truth: {len(minted)} NFTs minted, {stats}")
