"""Uniswap v3's incremental read: the pools' state at the block apart from the NFTs' own state.

Account program, up to three rounds (as the full read's first three): per wallet the position manager's
``balanceOf``, per NFT ``tokenOfOwnerByIndex`` and ``positions(tokenId)`` — range, liquidity, fee growth inside
as of the NFT's last action, tokens owed.

Market program, one round (two without a CREATE2 init code hash): per pool of the cached NFTs ``slot0``,
``liquidity``, both global fee growths; per (pool, bound tick) ``ticks(tick)``; per (pool, range) the manager's
pool position; per token ``decimals`` and ``symbol``. Its calls grow with the distinct pools and ranges
(:func:`riskcore.venues.uniswap_v3.recompute.market_ranges`), never with the wallets holding them. From one block
to the next (``market_update``) only the pools' own state is read again, with the ticks and range positions the
block's pool events may have changed (:func:`carried_parts`) and the ranges not held before: the rest, and every
token, carries over. With 1,000 wallets holding ranges that is 55–78 calls a block instead of 1,782.

:func:`combine` gives the :class:`~connectors.uniswap_v3.models.UniswapSnapshot` the full read gives: the
cached NFTs with the block's pools, whose exact amounts and fees ``evaluate`` computes
(:func:`riskcore.venues.uniswap_v3.recompute.recompute_amounts`). An NFT of a pool or range the market state did
not read is refused with :class:`~connectors.errors.InvalidInputError` (read the market with that account among
the cached ones).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

from aggregator.venues.plugin import Incremental, MarketUpdate
from aggregator.venues.uniswap_v3.sync import PoolIndex
from connectors.errors import InvalidInputError
from connectors.evm.program import ReadProgram
from connectors.types import Address, BlockRef
from connectors.uniswap_v3.connector import KnownPoolParts, UniswapV3Connector, _Owned, _PoolRead
from connectors.uniswap_v3.decode import PositionData, compute_pool_address
from connectors.uniswap_v3.events import PoolTouch
from connectors.uniswap_v3.models import (
    LpPosition,
    PoolState,
    UniswapAccount,
    UniswapSnapshot,
    UniswapToken,
)
from riskcore.venues.uniswap_v3.position import Q96, get_sqrt_ratio_at_tick
from riskcore.venues.uniswap_v3.recompute import market_ranges

__all__ = [
    "UniswapAccountState",
    "UniswapMarketState",
    "UniswapNft",
    "account_program",
    "carried_parts",
    "combine",
    "incremental",
    "market_program",
    "steady",
]

PoolKey = tuple[str, str, int]


@dataclass(frozen=True, slots=True)
class UniswapNft:
    """One position-manager NFT as read (``positions(tokenId)``)."""

    token_id: int
    data: PositionData

    @property
    def key(self) -> PoolKey:
        return self.data.token0, self.data.token1, self.data.fee


@dataclass(frozen=True, slots=True)
class UniswapAccountState:
    """One wallet's NFTs as read at ``block``."""

    wallet: Address
    block: BlockRef
    nfts: tuple[UniswapNft, ...]
    pools: tuple[PoolState, ...] = ()
    """The NFTs' pools as read at ``block`` (used only to value the account at that same block, when the
    block's market state does not hold a range of it yet)."""
    tokens: tuple[UniswapToken, ...] = ()
    """The tokens of those pools."""


@dataclass(frozen=True, slots=True)
class UniswapMarketState:
    """The pools of the cached NFTs at one block, with their bound ticks, the manager's range positions and the
    tokens."""

    block: BlockRef
    deployment: str
    position_manager: Address
    factory: Address
    pools: dict[PoolKey, PoolState]
    tokens: dict[str, UniswapToken]


def account_program(
    connector: UniswapV3Connector, wallets: Sequence[str], block: BlockRef, market: UniswapMarketState | None
) -> ReadProgram[Sequence[UniswapAccountState]]:
    """Every wallet's NFTs at ``block`` (one round when none holds any), with the state of their pools at
    ``block`` (the full read's program: a wallet re-read because it opened a range the market state does not hold
    is valued at this block without another round). Wallets are validated before any I/O."""
    checked = connector._program_wallets(wallets, block)
    if not checked:
        return []
    snap = yield from connector.program(checked, block)
    pools = {(p.token0, p.token1, p.fee): p for p in snap.pools}
    out = []
    for account in snap.accounts:
        nfts = tuple(
            UniswapNft(p.token_id, PositionData(
                nonce=p.nonce, operator=p.operator, token0=p.token0, token1=p.token1, fee=p.fee,
                tick_lower=p.tick_lower, tick_upper=p.tick_upper, liquidity=p.liquidity,
                fee_growth_inside0_last_x128=p.fee_growth_inside0_last_x128,
                fee_growth_inside1_last_x128=p.fee_growth_inside1_last_x128,
                tokens_owed0=p.tokens_owed0, tokens_owed1=p.tokens_owed1))
            for p in account.positions
        )
        keys = dict.fromkeys(n.key for n in nfts)
        out.append(UniswapAccountState(account.wallet, block, nfts, tuple(pools[k] for k in keys),
                                       tuple(t for t in snap.tokens if any(t.address in k[:2] for k in keys))))
    return out


def market_program(
    connector: UniswapV3Connector, block: BlockRef, cached: Sequence[UniswapAccountState],
    update: MarketUpdate | None = None,
) -> ReadProgram[UniswapMarketState]:
    """The pools, bound ticks, range positions and tokens of the ``cached`` accounts' NFTs at ``block``.

    With ``update`` (the market state of the block just before, and what this block's logs touched), a tick or
    range position that no log of the block may have changed (:func:`carried_parts`) and every token already known
    are carried over instead of read: the pools' own state (price, tick, liquidity, fee growth) is read every
    block, so the calls grow with what the block touched, not with the ranges held."""
    connector._check_chain(block)
    dep = connector.deployment
    factory = dep.factory
    first: dict[PoolKey, _Owned] = {}
    for state in cached:
        for nft in state.nfts:
            first.setdefault(nft.key, _Owned(state.wallet, nft.token_id, nft.data))
    keys = list(first)
    if not keys:
        return UniswapMarketState(block, dep.name, dep.position_manager, factory, {}, {})
    ranges = market_ranges((_key_name(k), n.data.tick_lower, n.data.tick_upper)
                           for s in cached for n in s.nfts for k in (n.key,))
    range_lists = [ranges[_key_name(k)] for k in keys]
    tokens = list(dict.fromkeys(t for k in keys for t in k[:2]))
    owners = [first[k] for k in keys]
    code_hash = connector.deployment.pool_init_code_hash
    reads: list[_PoolRead]
    previous = update.previous if update is not None else None
    carried: dict[str, KnownPoolParts] = {}
    known_tokens: dict[str, UniswapToken] = {}
    if (update is not None and isinstance(previous, UniswapMarketState) and previous.block.chain_id == block.chain_id
            and previous.block.number == block.number - 1 and previous.position_manager == dep.position_manager):
        carried = carried_parts(previous, update.touched, update.watched)
        known_tokens = previous.tokens
    unread = connector._tokens_plan([t for t in tokens if t not in known_tokens])
    read_tokens: list[UniswapToken]
    if code_hash is not None:
        addresses = [compute_pool_address(factory, *k, code_hash) for k in keys]
        read_tokens, reads = yield [unread, connector._pools_plan(addresses, range_lists, owners,
                                                                  [carried.get(a.lower()) for a in addresses])]
    else:
        read_tokens, addresses = yield [unread, connector._get_pool_plan(factory, keys, dict(first))]
        (reads,) = yield [connector._pools_plan(addresses, range_lists, owners,
                                                [carried.get(a.lower()) for a in addresses])]
    fresh = {t.address: t for t in read_tokens}
    token_models = [known_tokens[t] if t in known_tokens else fresh[t] for t in tokens]
    pools = {
        k: PoolState(
            address=addr, token0=k[0], token1=k[1], fee=k[2], sqrt_price_x96=r.sqrt_price_x96, tick=r.slot0_tick,
            liquidity=r.liquidity, fee_growth_global0_x128=r.fee_growth_global0_x128,
            fee_growth_global1_x128=r.fee_growth_global1_x128,
            ticks=tuple(r.ticks[t] for t in sorted(r.ticks)),
            positions=tuple(r.positions[rg] for rg in sorted(r.positions)),
        )
        for k, addr, r in zip(keys, addresses, reads, strict=True)
    }
    return UniswapMarketState(block, dep.name, dep.position_manager, factory, pools,
                              {t.address: t for t in token_models})


def carried_parts(previous: UniswapMarketState, touched: Sequence[object],
                  watched: Collection[str]) -> dict[str, KnownPoolParts]:
    """By pool address (lower case): the ticks and manager range positions of ``previous`` (the market state of
    the block before) that the block's pool events (``touched``, :class:`~connectors.uniswap_v3.events.PoolTouch`,
    in log order) cannot have changed, for the pools of ``watched`` (the contracts whose logs were read).

    A tick changes only when a swap crosses it (its fee growth outside flips) or a mint or burn has it as a bound;
    a range position of the manager only by a mint, burn or collect of the manager over that range. A swap moves
    the price from the tick before it (the previous swap's, or the block before's) to its own ``tick``: every tick
    from the lower to one above the higher of the two counts as crossed (a superset: a swap down that stops on a
    tick's price leaves the tick one below it). Anything else in a pool (an unknown kind) carries nothing of it."""
    by_pool: dict[str, list[PoolTouch]] = {}
    for t in touched:
        if isinstance(t, PoolTouch):
            by_pool.setdefault(t.pool.lower(), []).append(t)
    manager = previous.position_manager.lower()
    watching = {a.lower() for a in watched}
    out: dict[str, KnownPoolParts] = {}
    for pool in previous.pools.values():
        address = pool.address.lower()
        if address not in watching:
            continue
        spans: list[tuple[int, int]] = []
        bounds: set[int] = set()
        ranges: set[tuple[int, ...]] = set()
        tick = pool.tick
        unknown = False
        for t in by_pool.get(address, ()):
            if t.kind == "swap" and len(t.ticks) == 1:
                after = t.ticks[0]
                spans.append((min(tick, after), max(tick, after) + 1))
                tick = after
            elif t.kind in ("liquidity", "collect") and len(t.ticks) == 2:
                if t.kind == "liquidity":
                    bounds.update(t.ticks)
                if (t.owner or "").lower() == manager:
                    ranges.add(t.ticks)
            else:
                unknown = True
        if unknown:
            continue
        out[address] = KnownPoolParts(
            ticks={s.tick: s for s in pool.ticks
                   if s.tick not in bounds and not any(lo <= s.tick <= hi for lo, hi in spans)},
            positions={(p.tick_lower, p.tick_upper): p for p in pool.positions
                       if (p.tick_lower, p.tick_upper) not in ranges},
        )
    return out


def _key_name(key: PoolKey) -> str:
    return f"{key[0]}/{key[1]}/{key[2]}"


def _restricted(pool: PoolState, ranges: set[tuple[int, int]]) -> PoolState:
    """``pool`` with only the ticks and range positions of ``ranges`` (what a full read of the same NFTs holds)."""
    ticks = {t for r in ranges for t in r}
    return pool.model_copy(update={
        "ticks": tuple(t for t in pool.ticks if t.tick in ticks),
        "positions": tuple(p for p in pool.positions if (p.tick_lower, p.tick_upper) in ranges),
    })


def combine(market: UniswapMarketState, accounts: Sequence[UniswapAccountState]) -> UniswapSnapshot:
    """The snapshot of ``accounts`` at the market's block (pure): their NFTs with the block's pools, each pool
    holding the ticks and range positions of these NFTs alone, as a full read of them would."""
    block = market.block
    used: dict[PoolKey, set[tuple[int, int]]] = {}
    pools_in = dict(market.pools)
    tokens_in = dict(market.tokens)
    read_now: dict[PoolKey, list[PoolState]] = {}
    for state in accounts:  # a range read with the account at this block, absent from the market state
        if state.block.number == block.number and state.block.hash == block.hash:
            for pool in state.pools:
                read_now.setdefault((pool.token0, pool.token1, pool.fee), []).append(pool)
            tokens_in.update({t.address: t for t in state.tokens})
    for key, read in read_now.items():  # merged once per pool (not once per account: a pool holds every range)
        have = pools_in.get(key)
        if have is None:
            have, read = read[0], read[1:]
        ticks = {t.tick: t for t in have.ticks}
        ranges = {(p.tick_lower, p.tick_upper): p for p in have.positions}
        for pool in read:
            for t in pool.ticks:
                ticks.setdefault(t.tick, t)
            for p in pool.positions:
                ranges.setdefault((p.tick_lower, p.tick_upper), p)
        pools_in[key] = have if not read else have.model_copy(update={
            "ticks": tuple(ticks[t] for t in sorted(ticks)),
            "positions": tuple(ranges[r] for r in sorted(ranges)),
        })
    accounts_out = []
    ranges_of: dict[PoolKey, set[tuple[int, int]]] = {}  # each pool's ranges, gathered once (not per NFT: O(n²))
    for state in accounts:
        if state.block.number > block.number or state.block.chain_id != block.chain_id:
            raise InvalidInputError(f"{state.wallet}: account state of block {state.block.number} "
                                    f"(chain {state.block.chain_id}) cannot be valued at block {block.number}")
        positions = []
        for nft in state.nfts:
            d = nft.data
            found = pools_in.get(nft.key)
            rng = (d.tick_lower, d.tick_upper)
            if found is not None and nft.key not in ranges_of:
                ranges_of[nft.key] = {(p.tick_lower, p.tick_upper) for p in found.positions}
            if found is None or rng not in ranges_of[nft.key]:
                raise InvalidInputError(f"position {nft.token_id} of {state.wallet}: pool {nft.key} range {rng} "
                                        f"was not read at block {block.number}")
            pool = found
            used.setdefault(nft.key, set()).add(rng)
            t0, t1 = tokens_in[d.token0], tokens_in[d.token1]
            positions.append(LpPosition(
                token_id=nft.token_id, owner=state.wallet, pool=pool.address, token0=d.token0, token1=d.token1,
                token0_symbol=t0.symbol, token1_symbol=t1.symbol, token0_decimals=t0.decimals,
                token1_decimals=t1.decimals, fee=d.fee, tick_lower=d.tick_lower, tick_upper=d.tick_upper,
                liquidity=d.liquidity, fee_growth_inside0_last_x128=d.fee_growth_inside0_last_x128,
                fee_growth_inside1_last_x128=d.fee_growth_inside1_last_x128, tokens_owed0=d.tokens_owed0,
                tokens_owed1=d.tokens_owed1, nonce=d.nonce, operator=d.operator,
            ))
        accounts_out.append(UniswapAccount(wallet=state.wallet, positions=tuple(positions)))
    keys = [k for k in pools_in if k in used]
    tokens = list(dict.fromkeys(t for k in keys for t in k[:2]))
    return UniswapSnapshot(
        block=block,
        deployment=market.deployment,
        position_manager=market.position_manager,
        factory=market.factory,
        pools=tuple(_restricted(pools_in[k], used[k]) for k in keys),
        tokens=tuple(tokens_in[t] for t in tokens),
        accounts=tuple(accounts_out),
    )


def wallet_of(state: UniswapAccountState) -> str:
    return state.wallet


def _inputs(pool: PoolState, index: PoolIndex, lower: int, upper: int) -> tuple[object, ...] | None:
    """What the exact amounts of a range are computed from (:func:`~aggregator.venues.uniswap_v3.sync.
    exact_amounts`): the pool's price, tick and global fee growth, the range's two ticks and the manager's position
    over the range (None when one was not read), looked up in the pool's ``index`` (``PoolState.tick_state`` scans
    the ticks of every cached range)."""
    try:
        return (pool.sqrt_price_x96, pool.tick, pool.fee_growth_global0_x128, pool.fee_growth_global1_x128,
                index.ticks[lower], index.ticks[upper], index.ranges[(lower, upper)])
    except KeyError:
        return None


_Q128 = float(1 << 128)
_SLACK_RAW = 64.0
"""Raw units the exact integer amounts may stand from the real-valued ones: each rounds down once or twice, and the
fees paid are capped by the pool's own position, a few wei short of what its NFTs are owed."""


@dataclass(frozen=True, slots=True)
class _Moved:
    """A range whose ticks and manager position are as they were while its pool swapped: the pool's √price (a
    float, ``sqrtPriceX96 / 2**96``) then and now, the range's √prices, whether the price is inside it, and the
    global fee growth of each token since (raw units per unit of liquidity)."""

    s_then: float
    s_now: float
    s_lower: float
    s_upper: float
    inside: bool
    fees0: float
    fees1: float


def _amounts(liquidity: float, s: float, lower: float, upper: float) -> tuple[float, float]:
    """The real-valued principal of ``liquidity`` over [lower, upper] (√prices) at √price ``s``."""
    c = min(max(s, lower), upper)
    return liquidity * (1.0 / c - 1.0 / upper), liquidity * (c - lower)


def _within(liquidity: int, moved: _Moved, drift: float) -> bool:
    """Whether each token's total (principal and fees) of an NFT of ``liquidity`` over a range that ``moved`` has
    moved by at most ``drift`` relative.

    The principal is L·(1/c − 1/√upper) of token0 and L·(c − √lower) of token1 at the clamped √price c, each
    computed at both blocks (the exact integer amounts stand within a few raw units of these); the uncollected fees
    grew by L × the global fee growth while the price stayed inside the range (its ticks were not crossed: they are
    unchanged), and not at all outside it. A token whose total may be zero is steady only if nothing of it moved."""
    if liquidity == 0:
        return True
    lq = float(liquidity)
    t0, t1 = _amounts(lq, moved.s_then, moved.s_lower, moved.s_upper)
    n0, n1 = _amounts(lq, moved.s_now, moved.s_lower, moved.s_upper)
    f0, f1 = (lq * moved.fees0 / _Q128, lq * moved.fees1 / _Q128) if moved.inside else (0.0, 0.0)
    for then, now, fees in ((t0, n0, f0), (t1, n1, f1)):
        slack = _SLACK_RAW + 1e-9 * then
        floor = then - slack  # the least the stored total can be (fees owed only add to it)
        if floor <= 0:
            if now != then or fees > 0:
                return False
        elif abs(now - then) + fees + 2 * slack > drift * floor:
            return False
    return True


def steady(then: UniswapMarketState, now: UniswapMarketState, prices_then: Mapping[str, float],
           prices_now: Mapping[str, float], drift: float) -> Callable[[UniswapAccountState], bool]:
    """The plugin's ``Incremental.steady``: an account is steady from ``then`` to ``now`` when both tokens of every
    range it holds kept their metadata and their USD price, the range's ticks and the manager's position over it are
    as they were (no tick of the range crossed), and either its pool did not swap (price, tick and global fee growth
    unchanged: its figures are exactly those of ``then``; a mint or burn elsewhere in the pool, which changes its
    liquidity and ticks, changes none of them) or each token's total of each NFT moved by at most ``drift`` with the
    swaps (:func:`_within`: a bound, not the exact amounts, so that the swaps of a busy pool need no recomputation
    of its quiet ranges).

    A range read with its account at ``then`` (a full sweep, a new NFT) is not in ``then``'s market state: its pool
    and tokens at ``then`` are the ones the account state carries, read at that block (what ``combine`` valued it
    with)."""
    same: dict[tuple[PoolKey, int, int, int], bool | _Moved] = {}
    indexed: dict[int, PoolIndex] = {}
    sqrt_at: dict[int, float] = {}

    def inputs(pool: PoolState, lower: int, upper: int) -> tuple[object, ...] | None:
        index = indexed.get(id(pool))
        if index is None:
            index = indexed[id(pool)] = PoolIndex.of(pool)
        return _inputs(pool, index, lower, upper)

    def read_then(state: UniswapAccountState) -> bool:
        return state.block.number == then.block.number and state.block.hash == then.block.hash

    def then_pool(key: PoolKey, state: UniswapAccountState) -> PoolState | None:
        pool = then.pools.get(key)
        if pool is None and read_then(state):
            pool = next((p for p in state.pools if (p.token0, p.token1, p.fee) == key), None)
        return pool

    def then_token(address: str, state: UniswapAccountState) -> UniswapToken | None:
        token = then.tokens.get(address)
        if token is None and read_then(state):
            token = next((t for t in state.tokens if t.address == address), None)
        return token

    def sqrt_of(tick: int) -> float:
        s = sqrt_at.get(tick)
        if s is None:
            s = sqrt_at[tick] = get_sqrt_ratio_at_tick(tick) / Q96
        return s

    def range_kept(key: PoolKey, lower: int, upper: int, state: UniswapAccountState) -> bool | _Moved:
        a, b = then_pool(key, state), now.pools.get(key)
        kept = same.get((key, lower, upper, id(a)))
        if kept is None:
            kept = same[(key, lower, upper, id(a))] = False if a is None or b is None else compared(a, b, lower, upper)
        return kept

    def compared(a: PoolState, b: PoolState, lower: int, upper: int) -> bool | _Moved:
        before = inputs(a, lower, upper)
        after = before if b is a else inputs(b, lower, upper)
        if before is None or after is None:
            return False
        if before == after:
            return True
        if before[4:] != after[4:]:  # the range's ticks or the manager's position changed
            return False
        inside = lower <= a.tick < upper
        if inside != (lower <= b.tick < upper):
            return False
        d0 = (b.fee_growth_global0_x128 - a.fee_growth_global0_x128) % (1 << 256)
        d1 = (b.fee_growth_global1_x128 - a.fee_growth_global1_x128) % (1 << 256)
        return _Moved(a.sqrt_price_x96 / Q96, b.sqrt_price_x96 / Q96, sqrt_of(lower), sqrt_of(upper), inside,
                      float(d0), float(d1))

    def token_kept(token: str, state: UniswapAccountState) -> bool:
        return (token in prices_now and prices_then.get(token) == prices_now[token]
                and then_token(token, state) == now.tokens.get(token))

    def nft_kept(n: UniswapNft, state: UniswapAccountState) -> bool:
        kept = range_kept(n.key, n.data.tick_lower, n.data.tick_upper, state)
        if kept is False or not (token_kept(n.data.token0, state) and token_kept(n.data.token1, state)):
            return False
        return kept is True or _within(n.data.liquidity, kept, drift)

    def test(state: UniswapAccountState) -> bool:
        return all(nft_kept(n, state) for n in state.nfts)

    return test


def incremental(connector: UniswapV3Connector) -> Incremental:
    """The plugin's :class:`~aggregator.venues.plugin.Incremental` over ``connector``."""
    return Incremental(
        market_program=lambda block, cached: market_program(connector, block, cached),
        market_update=lambda block, cached, update: market_program(connector, block, cached, update),
        account_program=lambda wallets, block, market: account_program(connector, wallets, block, market),
        combine=combine,
        wallet_of=wallet_of,
        steady=steady,
    )
