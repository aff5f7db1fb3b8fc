"""Uniswap v3's part of the sync benchmark: ~40 % of the wallets mint 1-2 LP NFTs in WETH_USDC_500 / WETH_DAI_3000,
in range or out of it (below or above the pool's tick)."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import devnet
from benchmarks.venues import MAX_UINT256, Setup, Tx, calldata
from connectors.uniswap_v3.models import UniswapSnapshot

LP_GAS = 1_000_000
# Share of wallets with LP NFTs, of those with two; range placement weights; WETH per position (the quote token of
# equal USD value is offered too); half-widths / offsets / widths in tick spacings.
LP_SHARE, LP_TWO = 0.4, 0.35
LP_PLACES = {"in": 60, "below": 20, "above": 20}
LP_WETH = (0.05, 1.5)
NPM_MINT = "mint((address,address,uint24,int24,int24,uint256,uint256,uint256,uint256,address,uint256))"


@dataclass
class LpLeg:
    pool: str  # "WETH_USDC_500", "WETH_DAI_3000"
    tick_lower: int
    tick_upper: int
    amount0_raw: int  # desired (on-chain token order); the position manager takes what the range needs
    amount1_raw: int
    place: str  # "in" range at setup, or "below" / "above" the pool's tick


class UniswapBench:
    rounds = "1 NFT counts, 2 token ids, 3 positions, 4 tokens + pool state (CREATE2 addresses)"

    def __init__(self) -> None:
        self.lps: dict[str, list[LpLeg]] = {}

    def prepare(self, setup: Setup) -> None:
        info = setup.info
        self.setup = setup
        self.manager = info.contract("uniswap_v3.position_manager")
        self.pools = {name: (devnet.uniswap.pool_tokens(info, name), devnet.uniswap.pool_state(info, name).tick)
                      for name in devnet.uniswap.pool_names(info)}

    def plan(self, wallet: str, rng: random.Random) -> None:
        prices, decimals = self.setup.prices, self.setup.decimals
        weth_usd = prices["WETH"] / 1e8
        if rng.random() < LP_SHARE:
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
