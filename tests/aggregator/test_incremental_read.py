"""The incremental read's composition (``aggregator.venues.incremental``) without a chain: the cache merge, one
venue's failure isolated from the others, a combine that refuses an account read after the market's block, and
which of Uniswap's ticks and range positions a block's pool events leave carried over (``carried_parts``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import pytest

from aggregator.venues.incremental import VenueBlock, read_block, refreshed
from aggregator.venues.morpho_blue.incremental import MorphoAccountState, MorphoMarketState, combine
from aggregator.venues.plugin import Incremental
from aggregator.venues.uniswap_v3.incremental import UniswapMarketState, carried_parts
from connectors.errors import ConnectorError, InvalidInputError
from connectors.evm.multicall import Multicall
from connectors.evm.program import ReadProgram
from connectors.types import BlockRef
from connectors.uniswap_v3.events import PoolTouch
from connectors.uniswap_v3.models import PoolPositionState, PoolState, TickState
from riskcore.venues.morpho_blue.recompute import MorphoCachedPosition

A, B, C = ("0x" + c * 40 for c in "abc")
MORPHO = "0x" + "d" * 40


def _block(number: int) -> BlockRef:
    return BlockRef(chain_id=31337, number=number, hash="0x" + f"{number:064x}", timestamp=1_700_000_000 + number)


def test_refreshed_replaces_by_wallet_and_appends_new_ones() -> None:
    cached = [(A, 1), (B, 1)]
    out = refreshed(cached, [(B.upper().replace("0X", "0x"), 2), (C, 2)], lambda s: s[0])
    assert out == [(A, 1), (B.upper().replace("0X", "0x"), 2), (C, 2)]


def _market(block: BlockRef, cached: Sequence[Any]) -> ReadProgram[Any]:
    return ("market", block.number, len(cached))
    yield []  # a generator that needs no round


def _accounts(wallets: Sequence[str], block: BlockRef, market: Any) -> ReadProgram[Sequence[Any]]:
    if "bad" in wallets:
        raise InvalidInputError("bad wallet")
    return [(w, block.number) for w in wallets]
    yield []


def test_one_venues_failure_leaves_the_others() -> None:
    inc = Incremental(market_program=_market, account_program=_accounts, combine=lambda m, a: (m, a),
                      wallet_of=lambda s: s[0])
    out = read_block(cast(Multicall, None), {
        "one": VenueBlock(inc, [(A, 1)], ["bad"]),
        "two": VenueBlock(inc, [(A, 1), (B, 1)], [C]),
    }, _block(5))
    assert not out["one"].ok
    assert isinstance(out["one"].accounts, ConnectorError)
    assert out["one"].market == ("market", 5, 1)
    assert out["two"].ok
    assert out["two"].market == ("market", 5, 2)
    assert out["two"].accounts == [(C, 5)]


def test_combine_refuses_an_account_read_after_the_market_block() -> None:
    market = MorphoMarketState(_block(10), MORPHO, ())
    empty = MorphoAccountState(A, _block(9), ())
    assert combine(market, [empty]).accounts[0].positions == ()
    later = MorphoAccountState(A, _block(11), ())
    with pytest.raises(InvalidInputError, match="cannot be valued at block 10"):
        combine(market, [later])
    unknown = MorphoAccountState(A, _block(9), (("0x" + "1" * 64, MorphoCachedPosition(1, 0, 0)),))
    with pytest.raises(InvalidInputError, match="not watched"):
        combine(market, [unknown])


# --- Uniswap's market state carried from block to block -----------------------------------------------------------
POOL = "0x" + "5a" * 20
OTHER_POOL = "0x" + "6b" * 20
MANAGER = "0x" + "7c" * 20
TOKEN0, TOKEN1 = "0x" + "8" * 40, "0x" + "9" * 40


def _tick(t: int) -> TickState:
    return TickState(tick=t, liquidity_gross=1, liquidity_net=1, fee_growth_outside0_x128=t * 7,
                     fee_growth_outside1_x128=t * 11, initialized=True)


def _range(lo: int, hi: int) -> PoolPositionState:
    return PoolPositionState(tick_lower=lo, tick_upper=hi, liquidity=5, fee_growth_inside0_last_x128=1,
                             fee_growth_inside1_last_x128=2, tokens_owed0=0, tokens_owed1=0)


def _pool(address: str, tick: int, bounds: Sequence[int], ranges: Sequence[tuple[int, int]]) -> PoolState:
    return PoolState(address=address, token0=TOKEN0, token1=TOKEN1, fee=3000, sqrt_price_x96=2**96, tick=tick,
                     liquidity=10, fee_growth_global0_x128=0, fee_growth_global1_x128=0,
                     ticks=tuple(_tick(t) for t in bounds), positions=tuple(_range(lo, hi) for lo, hi in ranges))


def _previous(*pools: PoolState) -> UniswapMarketState:
    return UniswapMarketState(_block(9), "uniswap_v3", MANAGER, "0x" + "f" * 40,
                              {(TOKEN0, TOKEN1, 3000 + i): p for i, p in enumerate(pools)}, {})


BOUNDS = (-600, -120, 0, 60, 120, 600)
RANGES = ((-600, 600), (-120, 120), (0, 60))


def test_nothing_touched_carries_every_tick_and_range_of_the_watched_pools() -> None:
    previous = _previous(_pool(POOL, 30, BOUNDS, RANGES), _pool(OTHER_POOL, 30, BOUNDS, RANGES))
    carried = carried_parts(previous, (), {POOL.upper().replace("0X", "0x")})
    assert set(carried) == {POOL}  # the other pool's logs were not read: nothing of it carries
    assert sorted(carried[POOL].ticks) == list(BOUNDS)
    assert sorted(carried[POOL].positions) == sorted(RANGES)


def test_swaps_uncarry_every_tick_they_may_have_crossed_there_and_back() -> None:
    previous = _previous(_pool(POOL, 30, BOUNDS, RANGES))
    # Up from 30 to 130 (crosses 60 and 120), then down to -5 (crosses 120, 60 and 0): 60 and 120 flipped
    # twice, yet changed (fee growth accrued between the crossings).
    touched = (PoolTouch(POOL, "swap", (130,)), PoolTouch(POOL, "swap", (-5,)))
    carried = carried_parts(previous, touched, {POOL})
    assert sorted(carried[POOL].ticks) == [-600, -120, 600]
    assert sorted(carried[POOL].positions) == sorted(RANGES)  # a swap moves no range position
    # A swap down that stops on a bound's price leaves the tick one below it: the bound counts as crossed.
    carried = carried_parts(previous, (PoolTouch(POOL, "swap", (-1,)),), {POOL})
    assert 0 not in carried[POOL].ticks
    assert 60 in carried[POOL].ticks


def test_mints_burns_and_collects_uncarry_their_bounds_and_the_managers_range() -> None:
    previous = _previous(_pool(POOL, 30, BOUNDS, RANGES))
    touched = (
        PoolTouch(POOL, "liquidity", (-120, 120), MANAGER.upper().replace("0X", "0x")),  # the manager's mint
        PoolTouch(POOL, "liquidity", (0, 60), "0x" + "1" * 40),  # someone else's burn: the ticks, not our range
        PoolTouch(POOL, "collect", (-600, 600), MANAGER),
    )
    carried = carried_parts(previous, touched, {POOL})
    assert sorted(carried[POOL].ticks) == [-600, 600]
    assert sorted(carried[POOL].positions) == [(0, 60)]


def test_an_unknown_touch_carries_nothing_of_its_pool() -> None:
    previous = _previous(_pool(POOL, 30, BOUNDS, RANGES), _pool(OTHER_POOL, 30, BOUNDS, RANGES))
    carried = carried_parts(previous, (PoolTouch(POOL, "sweep", ()),), {POOL, OTHER_POOL})
    assert set(carried) == {OTHER_POOL}
