"""Morpho Blue's part of the sync benchmark: ~55 % of the wallets post WETH collateral in WETH_USDC and/or WETH_DAI,
~2/3 of those positions borrow (20-85 % of the position's borrowing power). A lender of its own supplies each market
1.25x of what the plan borrows from it, on top of the devnet seed's liquidity (a few $M per market, which 10,000
wallets' borrows alone exceed)."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import devnet
from benchmarks.venues import MAX_UINT256, Setup, Tx, calldata, label_address
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
REPAY = f"repay({MARKET_PARAMS},uint256,uint256,address,bytes)"
SUPPLY = f"supply({MARKET_PARAMS},uint256,uint256,address,bytes)"
WITHDRAW_COLLATERAL = f"withdrawCollateral({MARKET_PARAMS},uint256,address,address)"
ACT_POWER = 0.8
"""An action's borrow or withdrawal leaves the debt under this share of the position's borrowing power (LLTV)."""
INTEREST_SLACK = 1.02
"""The debt taken as this much of its principal (the interest accrued since, over a benchmark's blocks)."""


@dataclass
class Leg:
    market: str  # "WETH_USDC", "WETH_DAI"
    collateral_raw: int  # WETH
    borrow_raw: int  # loan token; 0: no debt


class MorphoBench:
    rounds = "1 markets + positions, 2 oracle prices + IRM rates (+ tokens, cold)"

    def __init__(self) -> None:
        self.legs: dict[str, list[Leg]] = {}
        self.lender_address = label_address("morpho.lender")
        self.lending: dict[str, int] = {}
        """Market name → loan token the lender supplies (raw)."""
        self.available: Counter[str] = Counter()
        """Market name → the lender's loan tokens the plan and the actions leave to borrow (raw; the devnet's own
        liquidity not counted)."""
        self.approved: dict[str, set[str]] = {}
        """Wallet → loan tokens Morpho may take from it (for repayments)."""
        self.share = SHARE

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
        if rng.random() < self.share:
            for name in rng.sample(sorted(self.markets), 2 if rng.random() < TWO_MARKETS else 1):
                _, loan, lltv = self.markets[name]
                weth = rng.uniform(*WETH)
                debt = 0
                if rng.random() < BORROWS:
                    usd = weth * weth_usd * lltv / 1e18 * rng.uniform(*DEBT)
                    debt = int(usd * 1e8 / prices[loan] * 10 ** decimals[loan])
                self.legs.setdefault(wallet, []).append(Leg(name, int(weth * 10**18), debt))

    def helpers(self) -> list[str]:
        """The lender: 1.25x of each market's planned borrows."""
        need: Counter[str] = Counter()
        for legs in self.legs.values():
            for leg in legs:
                need[leg.market] += leg.borrow_raw
        self.lending = {m: raw * 5 // 4 for m, raw in need.items() if raw}
        self.available = Counter({m: raw - need[m] for m, raw in self.lending.items()})
        return [self.lender_address] if self.lending else []

    def _lender_transactions(self) -> list[Tx]:
        sender, txs = self.lender_address, []
        for market, raw in sorted(self.lending.items()):
            params, loan, _ = self.markets[market]
            txs += self.setup.fund(sender, loan, raw, f" (Morpho lender, {market})")
            txs.append(Tx(sender, self.setup.info.token(loan),
                          calldata("approve(address,uint256)", self.morpho, MAX_UINT256), f"approve {loan} (Morpho)"))
            txs.append(Tx(sender, self.morpho, calldata(SUPPLY, params, raw, 0, sender, b""),
                          f"Morpho supply {market}", gas=MORPHO_GAS))
        return txs

    def transactions(self, sender: str) -> tuple[list[Tx], list[Tx]]:
        if sender == self.lender_address:
            return self._lender_transactions(), []
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

    def settled(self) -> None:
        """Nothing: the actions need only the plan."""

    def act(self, wallet: str, rng: random.Random) -> list[Tx]:
        """In one of the wallet's markets: post 5-20 % more WETH collateral, withdraw 5-30 % of it, borrow 5-20 %
        more (a first debt: 5-20 % of the position's borrowing power) or repay 10-50 % of the debt. A borrow or
        withdrawal only while the debt stays under :data:`ACT_POWER` of the borrowing power (LLTV) at the worst of
        the block's prices, and within half the market's liquidity; a repayment never more than the principal left
        (Morpho reverts on repaying more than owed; interest only adds)."""
        legs = self.legs.get(wallet, [])
        if not legs:
            return []
        leg = rng.choice(legs)
        kinds = ["supply", "withdraw", "borrow", "repay"] if leg.borrow_raw else ["supply", "withdraw", "borrow"]
        rng.shuffle(kinds)
        for kind in kinds:
            txs: list[Tx] = getattr(self, f"_act_{kind}")(wallet, leg, rng)
            if txs:
                return txs
        return []

    def _power_raw(self, leg: Leg, collateral_raw: int) -> float:
        """The loan token (raw) ``collateral_raw`` WETH may borrow in ``leg``'s market, at the worst of the block's
        prices (the market's oracle follows the feeds: :meth:`price_txs`)."""
        _, loan, lltv = self.markets[leg.market]
        setup, d = self.setup, self.setup.decimals
        usd = collateral_raw / 10 ** d["WETH"] * setup.worst_usd("WETH", True) * lltv / 1e18
        return float(usd / setup.worst_usd(loan, False) * 10 ** d[loan])

    def _healthy(self, leg: Leg, collateral_raw: int, borrow_raw: int) -> bool:
        return borrow_raw * INTEREST_SLACK <= ACT_POWER * self._power_raw(leg, collateral_raw)

    def _act_supply(self, wallet: str, leg: Leg, rng: random.Random) -> list[Tx]:
        params, _, _ = self.markets[leg.market]
        extra = max(1, int(leg.collateral_raw * rng.uniform(0.05, 0.2)))
        leg.collateral_raw += extra
        return [*self.setup.fund(wallet, "WETH", extra, " (Morpho act)"),
                Tx(wallet, self.morpho, calldata(SUPPLY_COLLATERAL, params, extra, wallet, b""),
                   f"Morpho supplyCollateral {leg.market} (act)", gas=MORPHO_GAS)]

    def _act_withdraw(self, wallet: str, leg: Leg, rng: random.Random) -> list[Tx]:
        params, _, _ = self.markets[leg.market]
        part = int(leg.collateral_raw * rng.uniform(0.05, 0.3))
        if part < 1 or not self._healthy(leg, leg.collateral_raw - part, leg.borrow_raw):
            return []
        leg.collateral_raw -= part
        return [Tx(wallet, self.morpho, calldata(WITHDRAW_COLLATERAL, params, part, wallet, wallet),
                   f"Morpho withdrawCollateral {leg.market} (act)", gas=MORPHO_GAS)]

    def _act_borrow(self, wallet: str, leg: Leg, rng: random.Random) -> list[Tx]:
        params, _, _ = self.markets[leg.market]
        if leg.borrow_raw:
            extra = int(leg.borrow_raw * rng.uniform(0.05, 0.2))
        else:
            extra = int(self._power_raw(leg, leg.collateral_raw) * rng.uniform(0.05, 0.2))
        if (extra < 1 or extra > self.available[leg.market] // 2
                or not self._healthy(leg, leg.collateral_raw, leg.borrow_raw + extra)):
            return []
        leg.borrow_raw += extra
        self.available[leg.market] -= extra
        return [Tx(wallet, self.morpho, calldata(BORROW, params, extra, 0, wallet, wallet),
                   f"Morpho borrow {leg.market} (act)", gas=MORPHO_GAS)]

    def _act_repay(self, wallet: str, leg: Leg, rng: random.Random) -> list[Tx]:
        params, loan, _ = self.markets[leg.market]
        part = int(leg.borrow_raw * rng.uniform(0.1, 0.5))
        if part < 1:
            return []
        leg.borrow_raw -= part
        self.available[leg.market] += part
        txs = []
        if loan not in self.approved.setdefault(wallet, set()):
            self.approved[wallet].add(loan)
            txs.append(Tx(wallet, self.setup.info.token(loan), calldata("approve(address,uint256)", self.morpho,
                                                                       MAX_UINT256), f"approve {loan} (Morpho)"))
        # (the borrowed tokens are in the wallet: it repays less than it borrowed here)
        txs.append(Tx(wallet, self.morpho, calldata(REPAY, params, part, 0, wallet, b""),
                      f"Morpho repay {leg.market} (act)", gas=MORPHO_GAS))
        return txs

    def price_txs(self, answers: Mapping[str, int]) -> list[Tx]:
        """Each market's oracle (an ``OracleMock``, set by its owner) to the price of the feeds' answers, as
        Morpho's Chainlink oracle computes it: ``coll / loan * 10**(36 + dec_loan - dec_coll)``."""
        txs = []
        prices, d = self.setup.prices, self.setup.decimals
        for name, (params, loan, _) in sorted(self.markets.items()):
            if "WETH" in answers or loan in answers:
                price = prices["WETH"] * 10 ** (36 + d[loan] - d["WETH"]) // prices[loan]
                txs.append(Tx(devnet.ADMIN, params[2], calldata("setPrice(uint256)", price),
                              f"Morpho oracle {name}"))
        return txs

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
        return {"wallets": len(self.legs), "lender_supplied_raw": dict(self.lending),
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
