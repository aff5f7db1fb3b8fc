"""Morpho Blue's part of the sync benchmark: ~55 % of the wallets post WETH collateral in WETH_USDC and/or WETH_DAI,
~2/3 of those positions borrow (20-85 % of the position's borrowing power)."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import devnet
from benchmarks.venues import MAX_UINT256, Setup, Tx, calldata
from connectors.morpho_blue.models import MorphoSnapshot

MORPHO_GAS = 500_000
# Share of wallets with collateral, of those with two markets, of positions that borrow; WETH per market; debt as a
# fraction of the position's borrowing power (LLTV).
SHARE, TWO_MARKETS, BORROWS = 0.55, 0.3, 0.65
WETH = (0.2, 3.0)
DEBT = (0.2, 0.85)
MARKET_PARAMS = "(address,address,address,address,uint256)"  # Morpho's MarketParams
SUPPLY_COLLATERAL = f"supplyCollateral({MARKET_PARAMS},uint256,address,bytes)"
BORROW = f"borrow({MARKET_PARAMS},uint256,uint256,address,address)"


@dataclass
class Leg:
    market: str  # "WETH_USDC", "WETH_DAI"
    collateral_raw: int  # WETH
    borrow_raw: int  # loan token; 0: no debt


class MorphoBench:
    rounds = "1 markets + positions, 2 oracle prices + IRM rates (+ tokens, cold)"

    def __init__(self) -> None:
        self.legs: dict[str, list[Leg]] = {}

    def prepare(self, setup: Setup) -> None:
        info = setup.info
        self.setup = setup
        self.morpho = info.contract("morpho_blue.morpho")
        self.markets: dict[str, tuple[tuple[Any, ...], str, int]] = {}  # name -> (MarketParams, loan, LLTV WAD)
        for name in devnet.morpho.market_names(info):
            _, loan, lltv, _ = devnet.morpho.MARKETS[name]
            self.markets[name] = (devnet.morpho.market_params(info, name).as_tuple(), loan, lltv)

    def plan(self, wallet: str, rng: random.Random) -> None:
        prices, decimals = self.setup.prices, self.setup.decimals
        weth_usd = prices["WETH"] / 1e8
        if rng.random() < SHARE:
            for name in rng.sample(sorted(self.markets), 2 if rng.random() < TWO_MARKETS else 1):
                _, loan, lltv = self.markets[name]
                weth = rng.uniform(*WETH)
                debt = 0
                if rng.random() < BORROWS:
                    usd = weth * weth_usd * lltv / 1e18 * rng.uniform(*DEBT)
                    debt = int(usd * 1e8 / prices[loan] * 10 ** decimals[loan])
                self.legs.setdefault(wallet, []).append(Leg(name, int(weth * 10**18), debt))

    def helpers(self) -> list[str]:
        return []

    def transactions(self, sender: str) -> tuple[list[Tx], list[Tx]]:
        legs = self.legs.get(sender, [])
        if not legs:
            return [], []
        total = sum(leg.collateral_raw for leg in legs)
        first = self.setup.fund(sender, "WETH", total, " (Morpho)")
        first.append(Tx(sender, self.setup.info.token("WETH"),
                        calldata("approve(address,uint256)", self.morpho, MAX_UINT256), "approve WETH (Morpho)"))
        first += [
            Tx(sender, self.morpho, calldata(SUPPLY_COLLATERAL, self.markets[leg.market][0], leg.collateral_raw,
                                             sender, b""), f"Morpho supplyCollateral {leg.market}", gas=MORPHO_GAS)
            for leg in legs
        ]
        borrows = [
            Tx(sender, self.morpho, calldata(BORROW, self.markets[leg.market][0], leg.borrow_raw, 0, sender, sender),
               f"Morpho borrow {leg.market}", gas=MORPHO_GAS)
            for leg in legs
            if leg.borrow_raw
        ]
        return first, borrows

    def _positions(self) -> tuple[Counter[str], Counter[str]]:
        legs = [leg for wallet_legs in self.legs.values() for leg in wallet_legs]
        return Counter(leg.market for leg in legs), Counter(leg.market for leg in legs if leg.borrow_raw)

    def summary(self) -> str:
        positions, borrows = self._positions()
        borrowers = sum(any(leg.borrow_raw for leg in legs) for legs in self.legs.values())
        mp = ", ".join(f"{m} {c} ({borrows[m]} borrowing)" for m, c in sorted(positions.items()))
        return f"{len(self.legs)} wallets with WETH collateral ({borrowers} borrowing): {mp}"

    def figures(self) -> dict[str, Any]:
        positions, borrows = self._positions()
        return {"wallets": len(self.legs),
                "borrowers": sum(any(leg.borrow_raw for leg in legs) for legs in self.legs.values()),
                "positions": dict(positions), "borrows": dict(borrows)}

    def check(self, snapshot: Any, wallets: Sequence[str]) -> tuple[str, set[str]]:
        assert isinstance(snapshot, MorphoSnapshot)
        assert len(snapshot.accounts) == len(wallets)
        positions, borrows = self._positions()
        coll = [(a.wallet, p.market_id) for a in snapshot.accounts for p in a.positions if p.collateral_raw > 0]
        debt = [(a.wallet, p.market_id) for a in snapshot.accounts for p in a.positions if p.borrow_shares > 0]
        assert len(coll) == sum(positions.values()), (len(coll), positions)
        assert len(debt) == sum(borrows.values()), (len(debt), borrows)
        return f"{len(coll)} positions with collateral, {len(debt)} with debt", {w for w, _ in coll}


PART = MorphoBench
"""This venue's part of the sync benchmark, found by :func:`benchmarks.venues.bench_part`."""
