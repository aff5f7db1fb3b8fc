"""Uniswap v3's part of the sync benchmark: ~40 % of the wallets mint 1-2 LP NFTs in WETH_USDC_500 / WETH_DAI_3000,
in range or out of it (below or above the pool's tick)."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from math import isqrt
from typing import Any

from eth_hash.auto import keccak
from eth_utils.address import to_checksum_address

import devnet
from benchmarks.venues import MAX_UINT256, Setup, Tx, calldata, label_address
from connectors.uniswap_v3.models import UniswapSnapshot

LP_GAS = 1_000_000
# Share of wallets with LP NFTs, of those with two; range placement weights; WETH per position (the quote token of
# equal USD value is offered too); half-widths / offsets / widths in tick spacings.
LP_SHARE, LP_TWO = 0.4, 0.35
LP_PLACES = {"in": 60, "below": 20, "above": 20}
LP_WETH = (0.05, 1.5)
NPM_MINT = "mint((address,address,uint24,int24,int24,uint256,uint256,uint256,uint256,address,uint256))"
NPM_INCREASE = "increaseLiquidity((uint256,uint256,uint256,uint256,uint256,uint256))"
NPM_DECREASE = "decreaseLiquidity((uint256,uint128,uint256,uint256,uint256))"
NPM_COLLECT = "collect((uint256,address,uint128,uint128))"
EXACT_INPUT_SINGLE = "exactInputSingle((address,address,uint24,address,uint256,uint256,uint256,uint160))"
MAX_UINT128 = 2**128 - 1
TRANSFER_TOPIC = "0x" + keccak(b"Transfer(address,address,uint256)").hex()
INCREASE_TOPIC = "0x" + keccak(b"IncreaseLiquidity(uint256,uint128,uint256,uint256)").hex()
ZERO_TOPIC = "0x" + "00" * 32
LOG_BLOCKS = 2_000
"""Blocks per eth_getLogs of the setup's mints."""
ARB_TOKENS = 10**8
"""Whole tokens of each pool token the arbitrageur holds (a price move swaps far less)."""
ARB_AMOUNT_IN = 10**30
"""The arbitrage swap's input cap (it stops at its price limit long before)."""
SWAP_GAS = 3_000_000


@dataclass
class LpLeg:
    pool: str  # "WETH_USDC_500", "WETH_DAI_3000"
    tick_lower: int
    tick_upper: int
    amount0_raw: int  # desired (on-chain token order); the position manager takes what the range needs
    amount1_raw: int
    place: str  # "in" range at setup, or "below" / "above" the pool's tick
    token_id: int = 0  # known once the setup is mined (UniswapBench.settled)
    liquidity: int = 0  # at least this much (the mint's, less what the actions removed)


class UniswapBench:
    rounds = "1 NFT counts, 2 token ids, 3 positions, 4 tokens + pool state (CREATE2 addresses)"

    def __init__(self) -> None:
        self.lps: dict[str, list[LpLeg]] = {}
        self.share = LP_SHARE
        self.arbitrageur = label_address("arbitrageur")

    def prepare(self, setup: Setup) -> None:
        info = setup.info
        self.setup = setup
        self.manager = info.contract("uniswap_v3.position_manager")
        self.router = info.contract("uniswap_v3.swap_router")
        self.first_block = int(devnet.rpc(info, "eth_blockNumber"), 16) + 1
        self.sqrt_price = {name: devnet.uniswap.pool_state(info, name).sqrt_price_x96
                           for name in devnet.uniswap.pool_names(info)}
        self.pools = {name: (devnet.uniswap.pool_tokens(info, name), devnet.uniswap.pool_state(info, name).tick)
                      for name in devnet.uniswap.pool_names(info)}

    def plan(self, wallet: str, rng: random.Random) -> None:
        prices, decimals = self.setup.prices, self.setup.decimals
        weth_usd = prices["WETH"] / 1e8
        if rng.random() < self.share:
            for _ in range(2 if rng.random() < LP_TWO else 1):
                name = rng.choice(sorted(self.pools))
                tokens, tick = self.pools[name]
                sp = tokens.tick_spacing
                base = tick // sp * sp  # base <= tick < base + sp
                place = rng.choices(list(LP_PLACES), weights=list(LP_PLACES.values()))[0]
                if place == "in":
                    lower, upper = base - rng.randint(1, 60) * sp, base + rng.randint(1, 60) * sp
                elif place == "above":
                    lower = base + rng.randint(1, 100) * sp
                    upper = lower + rng.randint(1, 50) * sp
                else:
                    upper = base - rng.randint(0, 100) * sp
                    lower = upper - rng.randint(1, 50) * sp
                quote = tokens.symbol1 if tokens.base_is_token0 else tokens.symbol0
                weth = rng.uniform(*LP_WETH)
                weth_raw = int(weth * 10**18)
                quote_raw = int(weth * weth_usd * 1e8 / prices[quote] * 10 ** decimals[quote])
                a0, a1 = (weth_raw, quote_raw) if tokens.base_is_token0 else (quote_raw, weth_raw)
                self.lps.setdefault(wallet, []).append(LpLeg(name, lower, upper, a0, a1, place))

    def helpers(self) -> list[str]:
        return []

    def transactions(self, sender: str) -> tuple[list[Tx], list[Tx]]:
        legs = self.lps.get(sender, [])
        first: list[Tx] = []
        if not legs:
            return first, []
        need: Counter[str] = Counter()
        for leg in legs:
            tokens, _ = self.pools[leg.pool]
            need[tokens.symbol0] += leg.amount0_raw
            need[tokens.symbol1] += leg.amount1_raw
        for sym, raw in need.items():
            first += self.setup.fund(sender, sym, raw, " (LP)")
            first.append(Tx(sender, self.setup.info.token(sym),
                            calldata("approve(address,uint256)", self.manager, MAX_UINT256), f"approve {sym} (LP)"))
        for leg in legs:
            tokens, _ = self.pools[leg.pool]
            params = (tokens.token0, tokens.token1, tokens.fee, leg.tick_lower, leg.tick_upper, leg.amount0_raw,
                      leg.amount1_raw, 0, 0, sender, MAX_UINT256)
            first.append(Tx(sender, self.manager, calldata(NPM_MINT, params),
                            f"LP mint {leg.pool} [{leg.tick_lower}, {leg.tick_upper})", gas=LP_GAS))
        return first, []

    def settled(self) -> None:
        """After the setup is mined: each planned LP NFT's token id and liquidity (the position manager's mint
        events of the setup's blocks, in mint order per wallet, which is the plan's order), and the
        arbitrageur that moves the pools with the feeds (:meth:`price_txs`) funded and approved."""
        info = self.setup.info
        head = int(devnet.rpc(info, "eth_blockNumber"), 16)
        minted: dict[str, list[int]] = {}
        liquidity: dict[int, int] = {}
        for start in range(self.first_block, head + 1, LOG_BLOCKS):
            span = {"fromBlock": hex(start), "toBlock": hex(min(head, start + LOG_BLOCKS - 1)), "address": self.manager}
            for log in devnet.rpc(info, "eth_getLogs", [{**span, "topics": [TRANSFER_TOPIC, ZERO_TOPIC]}]):
                owner = to_checksum_address("0x" + log["topics"][2][-40:])
                minted.setdefault(owner, []).append(int(log["topics"][3], 16))
            for log in devnet.rpc(info, "eth_getLogs", [{**span, "topics": [INCREASE_TOPIC]}]):
                token_id = int(log["topics"][1], 16)
                liquidity.setdefault(token_id, int(log["data"][2:66], 16))  # the mint's (the first increase)
        for wallet, legs in self.lps.items():
            ids = sorted(minted.get(wallet, []))
            assert len(ids) == len(legs), f"{wallet}: {len(ids)} LP NFTs minted, {len(legs)} planned"
            for leg, token_id in zip(legs, ids, strict=True):
                leg.token_id, leg.liquidity = token_id, liquidity[token_id]
        for sym in sorted({s for tokens, _ in self.pools.values() for s in (tokens.symbol0, tokens.symbol1)}):
            devnet.mint_tokens(info, self.arbitrageur, sym, ARB_TOKENS * 10 ** self.setup.decimals[sym])
            devnet.transact(info, self.arbitrageur, info.token(sym), "approve(address,uint256)", self.router,
                            MAX_UINT256)

    def act(self, wallet: str, rng: random.Random) -> list[Tx]:
        """In one of the wallet's LP NFTs: add liquidity (a tenth of the position's planned amounts, funded; the
        position manager takes what the range needs), or remove 10-50 % of the liquidity it is known to hold and
        collect what that freed (no minimum amounts: valid at any price the block moves the pool to)."""
        legs = [leg for leg in self.lps.get(wallet, []) if leg.token_id]
        if not legs:
            return []
        leg = rng.choice(legs)
        tokens, _ = self.pools[leg.pool]
        if rng.random() < 0.5:
            a0, a1 = max(1, leg.amount0_raw // 10), max(1, leg.amount1_raw // 10)
            return [*self.setup.fund(wallet, tokens.symbol0, a0, " (LP act)"),
                    *self.setup.fund(wallet, tokens.symbol1, a1, " (LP act)"),
                    Tx(wallet, self.manager, calldata(NPM_INCREASE, (leg.token_id, a0, a1, 0, 0, MAX_UINT256)),
                       f"LP increase {leg.pool} #{leg.token_id} (act)", gas=LP_GAS)]
        part = int(leg.liquidity * rng.uniform(0.1, 0.5))
        if part < 1:
            return []
        leg.liquidity -= part  # (a lower bound: what is added since is not counted)
        return [Tx(wallet, self.manager, calldata(NPM_DECREASE, (leg.token_id, part, 0, 0, MAX_UINT256)),
                   f"LP decrease {leg.pool} #{leg.token_id} (act)", gas=LP_GAS),
                Tx(wallet, self.manager, calldata(NPM_COLLECT, (leg.token_id, wallet, MAX_UINT128, MAX_UINT128)),
                   f"LP collect {leg.pool} #{leg.token_id} (act)", gas=LP_GAS)]

    def price_txs(self, answers: Mapping[str, int]) -> list[Tx]:
        """Each pool holding a moved token swapped by the arbitrageur to the ratio of the feeds' answers
        (``exactInputSingle`` with that ``sqrtPriceLimitX96``: the pool stops exactly there), as
        ``devnet.set_price`` does."""
        txs = []
        prices = self.setup.prices
        for name, (tokens, _) in sorted(self.pools.items()):
            if tokens.symbol0 not in answers and tokens.symbol1 not in answers:
                continue
            target = isqrt((prices[tokens.symbol0] * 10**tokens.decimals1 << 192)
                           // (prices[tokens.symbol1] * 10**tokens.decimals0))
            current = self.sqrt_price[name]
            if target == current:
                continue
            zero_for_one = target < current
            token_in, token_out = (tokens.token0, tokens.token1) if zero_for_one else (tokens.token1, tokens.token0)
            params = (token_in, token_out, tokens.fee, self.arbitrageur, MAX_UINT256, ARB_AMOUNT_IN, 0, target)
            txs.append(Tx(self.arbitrageur, self.router, calldata(EXACT_INPUT_SINGLE, params), f"arbitrage {name}",
                          gas=SWAP_GAS))
            self.sqrt_price[name] = target
        return txs

    def _counts(self) -> tuple[Counter[int], Counter[str]]:
        per_wallet = Counter(len(legs) for legs in self.lps.values())
        places = Counter(f"{leg.pool} {leg.place}" for legs in self.lps.values() for leg in legs)
        return per_wallet, places

    def summary(self) -> str:
        per_wallet, places = self._counts()
        per = ", ".join(f"{k} NFT(s): {v}" for k, v in sorted(per_wallet.items()))
        where = ", ".join(f"{k} {v}" for k, v in sorted(places.items()))
        return f"{len(self.lps)} wallets with {sum(places.values())} LP NFTs ({per}): {where}"

    def figures(self) -> dict[str, Any]:
        per_wallet, places = self._counts()
        return {"wallets": len(self.lps), "nfts": sum(places.values()), "per_wallet": dict(per_wallet),
                "places": dict(places)}

    def check(self, snapshot: Any, wallets: Sequence[str]) -> tuple[str, set[str]]:
        assert isinstance(snapshot, UniswapSnapshot)
        assert len(snapshot.accounts) == len(wallets)
        planned = sum(len(legs) for legs in self.lps.values())
        ticks = {p.address: p.tick for p in snapshot.pools}
        nfts = [p for a in snapshot.accounts for p in a.positions]
        assert len(nfts) == planned, (len(nfts), planned)
        in_range = sum(p.tick_lower <= ticks[p.pool] < p.tick_upper for p in nfts)
        return f"{len(nfts)} NFTs, {in_range} in range", {a.wallet for a in snapshot.accounts if a.positions}


PART = UniswapBench
"""This venue's part of the sync benchmark, found by :func:`benchmarks.venues.bench_part`."""
