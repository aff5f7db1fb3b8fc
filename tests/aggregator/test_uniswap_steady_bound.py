"""The Uniswap steady rule's bound (``aggregator.venues.uniswap_v3.incremental._within``) against the protocol's exact
integer amounts: an NFT the bound calls steady across a pool's swaps has moved, in each token's total (principal and
uncollected fees, as ``decreaseLiquidity`` + ``collect`` would pay), by at most the drift — over many random ranges,
liquidities, prices, moves and fee growths, in range and out of it."""

from __future__ import annotations

import numpy as np

from aggregator.venues.uniswap_v3.incremental import _Moved, _within
from riskcore.venues.uniswap_v3.position import (
    Q96,
    TickFeeGrowth,
    UniswapV3PoolParams,
    UniswapV3PositionParams,
    fee_growth_inside,
    get_sqrt_ratio_at_tick,
    get_tick_at_sqrt_ratio,
    position_amounts,
)

DRIFT = 1e-4 / 8  # BlockSync's default tolerance / 8
SAMPLES = 3_000
M256 = (1 << 256) - 1


def _u256(rng: np.random.Generator) -> int:
    return int.from_bytes(rng.bytes(32), "big")


def test_an_nft_the_bound_calls_steady_moved_at_most_the_drift_in_exact_integers() -> None:
    rng = np.random.default_rng(20261208)
    steady = moved_inside = not_steady = 0
    worst = 0.0
    for _ in range(SAMPLES):
        spacing = 60
        lower = int(rng.integers(-50_000, 50_000)) // spacing * spacing
        upper = lower + spacing * int(rng.integers(1, 400))
        where = rng.choice(["inside", "below", "above"], p=[0.6, 0.2, 0.2])
        tick = {"inside": int(rng.integers(lower, upper)), "below": lower - int(rng.integers(1, 5_000)),
                "above": upper + int(rng.integers(0, 5_000))}[str(where)]
        lo_s, hi_s = get_sqrt_ratio_at_tick(tick), get_sqrt_ratio_at_tick(tick + 1)
        s_then = lo_s + int((hi_s - lo_s) * float(rng.random()))
        eps = float(rng.choice([-1, 1])) * float(rng.random()) * 10 ** -float(rng.uniform(2, 8))
        s_now = int(s_then * (1 + eps))
        t_then, t_now = get_tick_at_sqrt_ratio(s_then), get_tick_at_sqrt_ratio(s_now)
        inside = lower <= t_then < upper
        if inside != (lower <= t_now < upper) or (t_then < lower) != (t_now < lower):
            continue  # a range tick crossed: its fee growth outside flips, which the rule sees (not a steady case)
        liquidity = int(10 ** float(rng.uniform(4, 24)))
        out_lo = TickFeeGrowth(_u256(rng), _u256(rng))
        out_hi = TickFeeGrowth(_u256(rng), _u256(rng))
        g_then = (_u256(rng), _u256(rng))
        grow = [0 if rng.random() < 0.3 else int((1 << 128) * 10 ** -float(rng.uniform(3, 14))) for _ in range(2)]
        g_now = ((g_then[0] + grow[0]) & M256, (g_then[1] + grow[1]) & M256)
        # the NFT was last poked a while ago: it is owed fees already
        inside_then = [fee_growth_inside(lower, upper, t_then, g_then[i], (out_lo.fee_growth_outside0_x128,
                                                                            out_lo.fee_growth_outside1_x128)[i],
                                         (out_hi.fee_growth_outside0_x128, out_hi.fee_growth_outside1_x128)[i])
                       for i in range(2)]
        last = [(inside_then[i] - int((1 << 128) * 10 ** -float(rng.uniform(2, 12)))) & M256 for i in range(2)]
        owed = [int(10 ** float(rng.uniform(0, 12))) for _ in range(2)]
        nft = UniswapV3PositionParams(lower, upper, liquidity, last[0], last[1], owed[0], owed[1])
        then = position_amounts(nft, UniswapV3PoolParams(s_then, t_then, *g_then), out_lo, out_hi)
        now = position_amounts(nft, UniswapV3PoolParams(s_now, t_now, *g_now), out_lo, out_hi)
        moved = _Moved(s_then / Q96, s_now / Q96, get_sqrt_ratio_at_tick(lower) / Q96,
                       get_sqrt_ratio_at_tick(upper) / Q96, inside, float(grow[0]), float(grow[1]))
        if not _within(liquidity, moved, DRIFT):
            not_steady += 1
            continue
        steady += 1
        moved_inside += inside and (then.total0_raw != now.total0_raw or then.total1_raw != now.total1_raw)
        for a, b in ((then.total0_raw, now.total0_raw), (then.total1_raw, now.total1_raw)):
            if a == 0:
                assert b == 0, (lower, upper, t_then, t_now, liquidity, a, b)
                continue
            rel = abs(b - a) / a
            worst = max(worst, rel)
            assert rel <= DRIFT, (lower, upper, t_then, t_now, liquidity, a, b, rel)
    print(f"\nsteady {steady} (in range and moved {moved_inside}), not steady {not_steady}; worst relative move "
          f"of a steady NFT {worst:.3g} against the drift {DRIFT:.3g}")
    # both outcomes occur, and steady in-range NFTs whose exact totals did move (the swaps were not no-ops)
    assert steady >= SAMPLES // 10
    assert not_steady >= SAMPLES // 10
    assert moved_inside >= SAMPLES // 20
