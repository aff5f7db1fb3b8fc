"""Uniswap v3 connector: many wallets' liquidity positions (position-manager NFTs) and their pools, at one block.

Every read goes through Multicall3; the read plan, by round trip (each one JSON-RPC batch)::

    0  eth_getBlockByNumber("latest")                 only when no block is given (+ eth_chainId once)
    1  positionManager.factory(); per wallet: positionManager.balanceOf(wallet)
    2  per (wallet, i < balance): positionManager.tokenOfOwnerByIndex(wallet, i)       (only if any NFT)
    3  per token id: positionManager.positions(tokenId)
    4  per pool: slot0, liquidity, feeGrowthGlobal0X128, feeGrowthGlobal1X128;
       per (pool, bound tick): ticks(tick); per (pool, range): positions(key(positionManager, range));
       per token: decimals, symbol

Pool addresses are computed off-chain with CREATE2 (``PoolAddress.computeAddress``), so the pools are read
in the same round as the tokens. A deployment without an init code hash asks ``factory.getPool`` in round 4
(with the tokens) and reads the pools in a fifth round. A position whose pool does not exist — no code at
the computed address, or ``getPool`` answering the zero address — fails the read with a
:class:`~connectors.errors.DecodeError` naming the token id, its tokens and fee.

The snapshot keeps the raw integers; ``riskcore.venues.uniswap_v3.position.position_amounts`` computes from them what
``decreaseLiquidity`` (full liquidity) and ``collect`` would return at the block.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from connectors.base import Capabilities
from connectors.errors import DecodeError
from connectors.evm.multicall import Call, CallResult, Plan
from connectors.evm.program import ReadProgram, run_program
from connectors.evm.venue import EvmVenueConnector, wallet_addresses
from connectors.types import Address, BlockRef, checksum
from connectors.uniswap_v3.decode import (
    BALANCE_OF,
    DECIMALS,
    FACTORY,
    FEE_GROWTH_GLOBAL0,
    FEE_GROWTH_GLOBAL1,
    GET_POOL,
    LIQUIDITY,
    POOL_POSITIONS,
    POSITIONS,
    SLOT0,
    SYMBOL,
    TICKS,
    TOKEN_OF_OWNER_BY_INDEX,
    PositionData,
    compute_pool_address,
    decode_pool_position,
    decode_position,
    decode_slot0,
    decode_symbol,
    decode_tick,
    position_key,
)
from connectors.uniswap_v3.deployments import UniswapV3Deployment
from connectors.uniswap_v3.models import (
    LpPosition,
    PoolPositionState,
    PoolState,
    TickState,
    UniswapAccount,
    UniswapSnapshot,
    UniswapToken,
)

__all__ = ["MAX_POSITIONS_PER_WALLET", "KnownPoolParts", "UniswapV3Connector", "wallet_addresses"]

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
MAX_POSITIONS_PER_WALLET = 10_000
"""A wallet announcing more NFTs than this is refused (a wrong contract, or a spam holder)."""

PoolKey = tuple[str, str, int]
"""(token0, token1, fee), checksummed and sorted."""


@dataclass(frozen=True, slots=True)
class _Owned:
    wallet: str
    token_id: int
    data: PositionData

    @property
    def key(self) -> PoolKey:
        return self.data.token0, self.data.token1, self.data.fee


@dataclass(frozen=True, slots=True)
class KnownPoolParts:
    """A pool's ticks and manager range positions whose state at the block being read is known already."""

    ticks: Mapping[int, TickState] = field(default_factory=dict)
    positions: Mapping[tuple[int, int], PoolPositionState] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _PoolRead:
    slot0_tick: int
    sqrt_price_x96: int
    liquidity: int
    fee_growth_global0_x128: int
    fee_growth_global1_x128: int
    ticks: dict[int, TickState]
    positions: dict[tuple[int, int], PoolPositionState]


def _describe(owned: _Owned) -> str:
    d = owned.data
    return f"position {owned.token_id} of {owned.wallet} ({d.token0}/{d.token1}, fee {d.fee})"


class UniswapV3Connector(EvmVenueConnector[UniswapV3Deployment]):
    """Reads the Uniswap v3 positions (NFTs of ``deployment.position_manager``) of many wallets, with the
    state of their pools, at one block.

    Parameters
    ----------
    rpc:
        The chain's client (its ``stats`` count the HTTP requests and calls).
    deployment:
        The position manager and factory (see :mod:`connectors.uniswap_v3.deployments`).
    multicall:
        Defaults to Multicall3 at its canonical address over ``rpc``.
    """

    capabilities: ClassVar[Capabilities] = Capabilities(
        venue_type="uniswap_v3", kind="lp", transport="evm", block_pinned=True, batch_wallets=True,
        reports_own_health=False, positions=("lp",),
    )

    # --- rounds --------------------------------------------------------------------------------------
    def _balances_plan(self, wallets: Sequence[str]) -> Plan[tuple[str, list[int]]]:
        """Round 1: the manager's factory, and every wallet's NFT count."""
        npm = self.deployment.position_manager
        calls = [Call(npm, FACTORY, allow_failure=False)]
        calls += [Call(npm, BALANCE_OF, (w,), allow_failure=False) for w in wallets]

        def decode(res: Sequence[CallResult]) -> tuple[str, list[int]]:
            factory = checksum(res[0].value[0])
            if factory != self.deployment.factory:
                raise DecodeError(
                    f"{self.deployment.name}: position manager {npm} reports factory {factory}, "
                    f"the deployment says {self.deployment.factory}"
                )
            counts = [int(r.value[0]) for r in res[1:]]
            for w, n in zip(wallets, counts, strict=True):
                if n > MAX_POSITIONS_PER_WALLET:
                    raise DecodeError(f"{w} holds {n} position NFTs, more than {MAX_POSITIONS_PER_WALLET}")
            return factory, counts

        return Plan(calls, decode)

    def _token_ids_plan(self, wallets: Sequence[str], counts: Sequence[int]) -> Plan[list[tuple[str, int]]]:
        """Round 2: ``tokenOfOwnerByIndex`` for every NFT of every wallet."""
        npm = self.deployment.position_manager
        pairs = [(w, i) for w, n in zip(wallets, counts, strict=True) for i in range(n)]
        calls = [Call(npm, TOKEN_OF_OWNER_BY_INDEX, (w, i), allow_failure=False) for w, i in pairs]

        def decode(res: Sequence[CallResult]) -> list[tuple[str, int]]:
            return [(w, int(r.value[0])) for (w, _), r in zip(pairs, res, strict=True)]

        return Plan(calls, decode)

    def _positions_plan(self, owned: Sequence[tuple[str, int]]) -> Plan[list[_Owned]]:
        """Round 3: ``positions(tokenId)`` of every NFT."""
        npm = self.deployment.position_manager
        calls = [Call(npm, POSITIONS, (tid,), allow_failure=False) for _, tid in owned]

        def decode(res: Sequence[CallResult]) -> list[_Owned]:
            out = []
            for (w, tid), r in zip(owned, res, strict=True):
                try:
                    out.append(_Owned(w, tid, decode_position(r.value)))
                except DecodeError as exc:
                    raise DecodeError(f"position {tid} of {w}: {exc}") from exc
            return out

        return Plan(calls, decode)

    def _get_pool_plan(self, factory: str, keys: Sequence[PoolKey], by_key: dict[PoolKey, _Owned]) -> Plan[list[str]]:
        """Round 4 without an init code hash: ``factory.getPool`` of every pool key."""
        calls = [Call(factory, GET_POOL, key, allow_failure=False) for key in keys]

        def decode(res: Sequence[CallResult]) -> list[str]:
            out = []
            for key, r in zip(keys, res, strict=True):
                addr = checksum(r.value[0])
                if addr == ZERO_ADDRESS:
                    raise DecodeError(
                        f"{_describe(by_key[key])}: factory {factory}.getPool returned the zero address "
                        "(no such pool)"
                    )
                out.append(addr)
            return out

        return Plan(calls, decode)

    @staticmethod
    def _tokens_plan(tokens: Sequence[str]) -> Plan[list[UniswapToken]]:
        """Round 4: ``decimals`` and ``symbol`` of every token."""
        calls: list[Call] = []
        for t in tokens:
            calls += [Call(t, DECIMALS, allow_failure=False), Call(t, SYMBOL, decoder=decode_symbol)]

        def decode(res: Sequence[CallResult]) -> list[UniswapToken]:
            out = []
            for k, t in enumerate(tokens):
                dec, sym = res[2 * k], res[2 * k + 1]
                out.append(UniswapToken(address=t, symbol=sym.value if sym.ok else "", decimals=int(dec.value[0])))
            return out

        return Plan(calls, decode)

    def _pools_plan(
        self,
        pools: Sequence[str],
        ranges: Sequence[Sequence[tuple[int, int]]],
        first: Sequence[_Owned],
        known: Sequence[KnownPoolParts | None] | None = None,
    ) -> Plan[list[_PoolRead]]:
        """Round 4 (5 without CREATE2): every pool's state, its bound ticks and the manager's pool positions.

        ``known`` (per pool, optional): ticks and range positions whose state at this block is already known
        (carried from the block before, nothing having touched them): they are not read again."""
        npm = self.deployment.position_manager
        calls: list[Call] = []
        layout: list[tuple[list[int], list[tuple[int, int]], KnownPoolParts]] = []
        for k, (pool, rngs) in enumerate(zip(pools, ranges, strict=True)):
            have = (known[k] if known is not None else None) or KnownPoolParts()
            ticks = sorted({t for r in rngs for t in r} - have.ticks.keys())
            unread = [r for r in rngs if r not in have.positions]
            calls += [
                Call(pool, SLOT0),  # allowed to fail: a missing pool is reported with the position below
                Call(pool, LIQUIDITY),
                Call(pool, FEE_GROWTH_GLOBAL0),
                Call(pool, FEE_GROWTH_GLOBAL1),
            ]
            calls += [Call(pool, TICKS, (t,)) for t in ticks]
            calls += [Call(pool, POOL_POSITIONS, (position_key(npm, lo, hi),)) for lo, hi in unread]
            layout.append((ticks, unread, have))

        def decode(res: Sequence[CallResult]) -> list[_PoolRead]:
            out = []
            pos = 0
            for pool, (ticks, rngs, have), owned, wanted in zip(pools, layout, first, ranges, strict=True):
                n = 4 + len(ticks) + len(rngs)
                chunk = res[pos : pos + n]
                pos += n
                if not chunk[0].ok or not chunk[0].raw:
                    why = "no contract at the address" if not chunk[0].raw else chunk[0].error
                    raise DecodeError(f"{_describe(owned)}: no Uniswap v3 pool at {pool} ({why})")
                bad = next((r for r in chunk if not r.ok), None)
                if bad is not None:
                    raise DecodeError(f"{_describe(owned)}: pool {pool}: {bad.call.describe()} failed: {bad.error}")
                slot0 = decode_slot0(chunk[0].value)
                tick_states = {}
                for t, r in zip(ticks, chunk[4 : 4 + len(ticks)], strict=True):
                    gross, net, out0, out1, init = decode_tick(r.value)
                    tick_states[t] = TickState(
                        tick=t, liquidity_gross=gross, liquidity_net=net,
                        fee_growth_outside0_x128=out0, fee_growth_outside1_x128=out1, initialized=init,
                    )
                read_positions = {}
                for (lo, hi), r in zip(rngs, chunk[4 + len(ticks) :], strict=True):
                    liq, g0, g1, o0, o1 = decode_pool_position(r.value)
                    read_positions[(lo, hi)] = PoolPositionState(
                        tick_lower=lo, tick_upper=hi, liquidity=liq, fee_growth_inside0_last_x128=g0,
                        fee_growth_inside1_last_x128=g1, tokens_owed0=o0, tokens_owed1=o1,
                    )
                if have.ticks:  # the known ticks with the read ones, ascending as a full read gives them
                    needed = {t for rg in wanted for t in rg}
                    tick_states = {t: tick_states[t] if t in tick_states else have.ticks[t]
                                   for t in sorted(needed)}
                pool_positions = {rg: read_positions[rg] if rg in read_positions else have.positions[rg]
                                  for rg in wanted}
                out.append(
                    _PoolRead(
                        slot0_tick=slot0.tick,
                        sqrt_price_x96=slot0.sqrt_price_x96,
                        liquidity=int(chunk[1].value[0]),
                        fee_growth_global0_x128=int(chunk[2].value[0]),
                        fee_growth_global1_x128=int(chunk[3].value[0]),
                        ticks=tick_states,
                        positions=pool_positions,
                    )
                )
            return out

        return Plan(calls, decode)

    # --- program -------------------------------------------------------------------------------------
    def program(self, wallets: Sequence[str], block: BlockRef) -> ReadProgram[UniswapSnapshot]:
        """The read program of :meth:`read_accounts` (see :mod:`connectors.evm.program`), for running
        together with other venues' programs in shared round trips. Wallets are validated here, before
        any I/O."""
        return self._accounts(self._program_wallets(wallets, block), block)

    def _accounts(self, wallets: Sequence[Address], block: BlockRef) -> ReadProgram[UniswapSnapshot]:
        ((factory, counts),) = yield [self._balances_plan(wallets)]
        owned: list[_Owned] = []
        if any(counts):
            (ids,) = yield [self._token_ids_plan(wallets, counts)]
            (owned,) = yield [self._positions_plan(ids)]

        by_key: dict[PoolKey, _Owned] = {}
        ranges: dict[PoolKey, dict[tuple[int, int], None]] = {}
        for o in owned:
            by_key.setdefault(o.key, o)
            ranges.setdefault(o.key, {})[(o.data.tick_lower, o.data.tick_upper)] = None
        keys = list(by_key)
        tokens = list(dict.fromkeys(t for k in keys for t in k[:2]))
        range_lists = [sorted(ranges[k]) for k in keys]
        first = [by_key[k] for k in keys]

        token_models: list[UniswapToken] = []
        pool_reads: list[_PoolRead] = []
        code_hash = self.deployment.pool_init_code_hash
        if keys and code_hash is not None:
            addresses = [compute_pool_address(factory, *k, code_hash) for k in keys]
            token_models, pool_reads = yield [
                self._tokens_plan(tokens),
                self._pools_plan(addresses, range_lists, first),
            ]
        elif keys:
            token_models, addresses = yield [self._tokens_plan(tokens), self._get_pool_plan(factory, keys, by_key)]
            (pool_reads,) = yield [self._pools_plan(addresses, range_lists, first)]
        else:
            addresses = []

        token_by_addr = {t.address: t for t in token_models}
        pool_by_key = dict(zip(keys, addresses, strict=True))
        pools = tuple(
            PoolState(
                address=addr,
                token0=k[0],
                token1=k[1],
                fee=k[2],
                sqrt_price_x96=r.sqrt_price_x96,
                tick=r.slot0_tick,
                liquidity=r.liquidity,
                fee_growth_global0_x128=r.fee_growth_global0_x128,
                fee_growth_global1_x128=r.fee_growth_global1_x128,
                ticks=tuple(r.ticks[t] for t in sorted(r.ticks)),
                positions=tuple(r.positions[rg] for rg in sorted(r.positions)),
            )
            for k, addr, r in zip(keys, addresses, pool_reads, strict=True)
        )
        per_wallet: dict[str, list[LpPosition]] = {w: [] for w in wallets}
        for o in owned:
            d = o.data
            t0, t1 = token_by_addr[d.token0], token_by_addr[d.token1]
            per_wallet[o.wallet].append(
                LpPosition(
                    token_id=o.token_id,
                    owner=o.wallet,
                    pool=pool_by_key[o.key],
                    token0=d.token0,
                    token1=d.token1,
                    token0_symbol=t0.symbol,
                    token1_symbol=t1.symbol,
                    token0_decimals=t0.decimals,
                    token1_decimals=t1.decimals,
                    fee=d.fee,
                    tick_lower=d.tick_lower,
                    tick_upper=d.tick_upper,
                    liquidity=d.liquidity,
                    fee_growth_inside0_last_x128=d.fee_growth_inside0_last_x128,
                    fee_growth_inside1_last_x128=d.fee_growth_inside1_last_x128,
                    tokens_owed0=d.tokens_owed0,
                    tokens_owed1=d.tokens_owed1,
                    nonce=d.nonce,
                    operator=d.operator,
                )
            )
        return UniswapSnapshot(
            block=block,
            deployment=self.deployment.name,
            position_manager=self.deployment.position_manager,
            factory=factory,
            pools=pools,
            tokens=tuple(token_models),
            accounts=tuple(UniswapAccount(wallet=w, positions=tuple(ps)) for w, ps in per_wallet.items()),
        )

    def read_accounts(self, wallets: Sequence[str], block: BlockRef | int | None = None) -> UniswapSnapshot:
        """Every wallet's position NFTs and their pools, all read at one block (the latest when None).

        Wallets are validated (EIP-55) before any I/O and de-duplicated, order kept. A wallet without
        NFTs comes back as an account with no positions (one round trip when no wallet has any).
        """
        checked, ref = self._read_inputs(wallets, block)
        return run_program(self.multicall, self._accounts(checked, ref), ref)


CONNECTOR = UniswapV3Connector
"""This venue's connector class, found by :mod:`connectors.registry`."""
