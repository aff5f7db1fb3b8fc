"""Aave v3's part of the sync benchmark: 1-3 collateral positions per wallet among WETH/AAVE/LINK/DAI/USDC, most
borrowing DAI/USDC/LINK (variable or stable; some in e-mode 1) at 20-90 % of their borrowing power (health factors
~1.1 to ~5), and a lender that supplies 1.25x of everything borrowed. Its faucet mints the test tokens every part
funds its wallets with."""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import devnet
from benchmarks.venues import MAX_UINT256, Setup, Tx, calldata, label_address
from connectors.aave_v3.models import AaveSnapshot

COLLATERALS = ("WETH", "AAVE", "LINK", "DAI", "USDC")
BORROWABLE = ("DAI", "USDC", "LINK")
STABLES = ("DAI", "USDC")
STABLE_EMODE = 1
# Whole-token ranges of one supply (each within one faucet mint of 10,000 tokens).
SUPPLY_RANGE = {"WETH": (0.25, 2.5), "AAVE": (5, 30), "LINK": (50, 300), "DAI": (500, 10_000), "USDC": (500, 10_000)}
POOL_GAS = 1_500_000


ACT_POWER = 0.8
"""An action's borrow or withdrawal leaves the debt under this share of the borrowing power (LTV-weighted)."""
INTEREST_SLACK = 1.02
"""The debt taken as this much of its principal (the interest accrued since, over a benchmark's blocks)."""


@dataclass
class Holding:
    """What the block benchmark's actions have left of a wallet's plan: supplied and borrowed principal (raw)."""

    supplied: dict[str, int]
    debt: dict[tuple[str, int], int]  # (symbol, rate mode) -> raw
    approved: set[str]  # assets the pool may take from the wallet


@dataclass
class WalletPlan:
    emode: bool
    supplies: list[tuple[str, int]]  # (symbol, raw)
    borrows: list[tuple[str, int, int]]  # (symbol, raw, rate mode 1 stable / 2 variable)


class AaveBench:
    rounds = "A pool discovery (cold), B reserve list, C reserves, D feeds + e-modes + wallets, E debts"

    def __init__(self) -> None:
        self.plans: dict[str, WalletPlan] = {}
        self.lender: WalletPlan | None = None
        self.lender_address = label_address("lender")
        self.share = 1.0  # every wallet supplies here
        self.holdings: dict[str, Holding] = {}
        self.available: Counter[str] = Counter()
        """Each reserve's liquidity the plan and the actions leave (raw; the seed's own lender not counted)."""

    def prepare(self, setup: Setup) -> None:
        info = self.info = setup.info
        self.setup = setup
        self.pool, self.faucet = info.contract("aave_v3.pool"), info.contract("aave_v3.faucet")
        dp = info.contract("aave_v3.pool_data_provider")
        self.ltv_bps = {}
        for sym, token in info.tokens.items():
            cfg = devnet.eth_call(info, dp, "getReserveConfigurationData(address)", [token], ["uint256"] * 6)
            self.ltv_bps[sym] = int(cfg[1])
        (cap_tokens,) = devnet.eth_call(info, self.faucet, "getMaximumMintAmount()", (), ["uint256"])
        self.cap_raw = {sym: int(cap_tokens) * 10**d for sym, d in setup.decimals.items()}

    def plan(self, wallet: str, rng: random.Random) -> None:
        decimals, prices = self.setup.decimals, self.setup.prices
        emode = rng.random() < 0.08
        if emode:
            collateral = rng.sample(STABLES, rng.choice((1, 2)))
        else:
            collateral = rng.sample(COLLATERALS, rng.choices((1, 2, 3), weights=(40, 35, 25))[0])
        supplies = []
        power_usd = 0.0
        for sym in collateral:
            lo, hi = SUPPLY_RANGE[sym]
            tokens = rng.uniform(lo, hi)
            raw = int(tokens * 10 ** decimals[sym])
            supplies.append((sym, raw))
            power_usd += tokens * prices[sym] / 1e8 * self.ltv_bps[sym] / 10_000
        borrows: list[tuple[str, int, int]] = []
        if rng.random() < 0.8 and power_usd > 0:
            debt_usd = power_usd * rng.uniform(0.2, 0.9)
            choices = STABLES if emode else BORROWABLE
            assets = rng.sample(choices, rng.choice((1, 2)))
            weights = [rng.uniform(0.2, 1.0) for _ in assets]
            for sym, w in zip(assets, weights, strict=True):
                usd = debt_usd * w / sum(weights)
                raw = int(usd * 1e8 / prices[sym] * 10 ** decimals[sym])
                # Stable rate only where the wallet does not use the asset as collateral (an Aave rule).
                mode = 1 if (not emode and sym not in collateral and rng.random() < 0.25) else 2
                borrows.append((sym, raw, mode))
        self.plans[wallet] = WalletPlan(emode, supplies, borrows)

    def helpers(self) -> list[str]:
        """The lender: it supplies 1.25x of everything borrowed, on top of the seed lender's."""
        need: Counter[str] = Counter()
        for p in self.plans.values():
            for sym, raw, _ in p.borrows:
                need[sym] += raw
        self.lender = WalletPlan(False, [(s, raw * 5 // 4) for s, raw in need.items()], [])
        self.available = Counter({s: raw * 5 // 4 - raw for s, raw in need.items()})
        for p in self.plans.values():
            for sym, raw in p.supplies:
                self.available[sym] += raw
        return [self.lender_address]

    def mint(self, sender: str, symbol: str, raw: int, what: str) -> list[Tx]:
        """The faucet's mints of ``raw`` ``symbol`` to ``sender`` (at most its cap each)."""
        token, cap = self.info.token(symbol), self.cap_raw[symbol]
        return [Tx(sender, self.faucet, calldata("mint(address,address,uint256)", token, sender,
                                                 min(cap, raw - k * cap)), f"mint {symbol}{what}")
                for k in range(math.ceil(raw / cap))]

    def transactions(self, sender: str) -> tuple[list[Tx], list[Tx]]:
        p = self.lender if sender == self.lender_address else self.plans.get(sender)
        if p is None:
            return [], []
        first: list[Tx] = []
        if p.emode:
            first.append(Tx(sender, self.pool, calldata("setUserEMode(uint8)", STABLE_EMODE), "setUserEMode",
                            gas=POOL_GAS))
        for sym, raw in p.supplies:
            token = self.info.token(sym)
            first += self.setup.fund(sender, sym, raw, "")
            first.append(Tx(sender, token, calldata("approve(address,uint256)", self.pool, MAX_UINT256),
                            f"approve {sym}"))
            first.append(Tx(sender, self.pool, calldata("supply(address,uint256,address,uint16)", token, raw,
                                                        sender, 0), f"supply {sym}", gas=POOL_GAS))
        borrows = [
            Tx(sender, self.pool, calldata("borrow(address,uint256,uint256,uint16,address)", self.info.token(sym), raw,
                                           mode, 0, sender), f"borrow {sym} mode {mode}", gas=POOL_GAS)
            for sym, raw, mode in p.borrows
        ]
        return first, borrows

    def settled(self) -> None:
        """Nothing: the actions need only the plan."""

    def act(self, wallet: str, rng: random.Random) -> list[Tx]:
        """Supply 5-20 % more of one collateral, withdraw 5-30 % of one, borrow 5-20 % more of one debt (variable
        rate) or repay 10-50 % of one: a borrow or withdrawal only while the wallet's debt stays under
        :data:`ACT_POWER` of its borrowing power (LTV) at the worst of the block's prices and within half the
        reserve's liquidity; a repayment never more than the principal left (interest only adds to the debt)."""
        h = self._holding(wallet)
        if h is None:
            return []
        kinds = ["supply", "withdraw", "borrow", "repay"] if h.debt else ["supply", "withdraw", "borrow"]
        rng.shuffle(kinds)
        for kind in kinds:
            txs = getattr(self, f"_act_{kind}")(wallet, h, rng)
            if txs:
                return list(txs)
        return []

    def _holding(self, wallet: str) -> Holding | None:
        h = self.holdings.get(wallet)
        if h is None:
            p = self.plans.get(wallet)
            if p is None or not p.supplies:
                return None
            h = Holding(dict(p.supplies), {(sym, mode): raw for sym, raw, mode in p.borrows},
                        {sym for sym, _ in p.supplies})
            self.holdings[wallet] = h
        return h

    def _power_usd(self, supplied: dict[str, int]) -> float:
        """Borrowing power (LTV) of ``supplied`` at the worst of the block's prices."""
        d, setup = self.setup.decimals, self.setup
        return float(sum(raw / 10 ** d[s] * setup.worst_usd(s, True) * self.ltv_bps[s] / 10_000
                         for s, raw in supplied.items()))

    def _debt_usd(self, debt: dict[tuple[str, int], int]) -> float:
        d, setup = self.setup.decimals, self.setup
        return float(sum(raw / 10 ** d[s] * setup.worst_usd(s, False) for (s, _), raw in debt.items())) * INTEREST_SLACK

    def _act_supply(self, wallet: str, h: Holding, rng: random.Random) -> list[Tx]:
        sym = rng.choice(sorted(h.supplied))
        extra = max(1, int(h.supplied[sym] * rng.uniform(0.05, 0.2)))
        h.supplied[sym] += extra
        self.available[sym] += extra
        token = self.info.token(sym)
        return [*self.setup.fund(wallet, sym, extra, " (act)"),
                Tx(wallet, self.pool, calldata("supply(address,uint256,address,uint16)", token, extra, wallet, 0),
                   f"supply {sym} (act)", gas=POOL_GAS)]

    def _act_withdraw(self, wallet: str, h: Holding, rng: random.Random) -> list[Tx]:
        sym = rng.choice(sorted(h.supplied))
        part = int(h.supplied[sym] * rng.uniform(0.05, 0.3))
        after = {**h.supplied, sym: h.supplied[sym] - part}
        if part < 1 or part > self.available[sym] // 2 or self._debt_usd(h.debt) > ACT_POWER * self._power_usd(after):
            return []
        h.supplied[sym] -= part
        self.available[sym] -= part
        return [Tx(wallet, self.pool, calldata("withdraw(address,uint256,address)", self.info.token(sym), part, wallet),
                   f"withdraw {sym} (act)", gas=POOL_GAS)]

    def _act_borrow(self, wallet: str, h: Holding, rng: random.Random) -> list[Tx]:
        p = self.plans[wallet]
        choices = sorted({s for s, _ in h.debt}) or sorted(STABLES if p.emode else BORROWABLE)
        sym = rng.choice(choices)
        d = self.setup.decimals[sym]
        current = sum(raw for (s, _), raw in h.debt.items() if s == sym)
        if current:
            extra = int(current * rng.uniform(0.05, 0.2))
        else:  # a first debt: 5-20 % of the borrowing power
            extra = int(self._power_usd(h.supplied) * rng.uniform(0.05, 0.2) / self.setup.worst_usd(sym, False)
                        * 10**d)
        after = {**h.debt, (sym, 2): h.debt.get((sym, 2), 0) + extra}
        if extra < 1 or extra > self.available[sym] // 2 or self._debt_usd(after) > ACT_POWER * self._power_usd(
                h.supplied):
            return []
        h.debt = after
        self.available[sym] -= extra
        return [Tx(wallet, self.pool, calldata("borrow(address,uint256,uint256,uint16,address)", self.info.token(sym),
                                               extra, 2, 0, wallet), f"borrow {sym} (act)", gas=POOL_GAS)]

    def _act_repay(self, wallet: str, h: Holding, rng: random.Random) -> list[Tx]:
        (sym, mode) = rng.choice(sorted(h.debt))
        part = int(h.debt[(sym, mode)] * rng.uniform(0.1, 0.5))
        if part < 1:
            return []
        h.debt[(sym, mode)] -= part
        self.available[sym] += part
        token = self.info.token(sym)
        txs = []
        if sym not in h.approved:  # (the pool was approved at setup for every supplied asset, not for debts)
            h.approved.add(sym)
            txs.append(Tx(wallet, token, calldata("approve(address,uint256)", self.pool, MAX_UINT256),
                          f"approve {sym}"))
        # (the borrowed tokens are in the wallet: it repays less than it borrowed)
        txs.append(Tx(wallet, self.pool, calldata("repay(address,uint256,uint256,address)", token, part, mode, wallet),
                      f"repay {sym} (act)", gas=POOL_GAS))
        return txs

    def price_txs(self, answers: Mapping[str, int]) -> list[Tx]:
        """None: the pool's oracle reads the feeds."""
        return []

    def summary(self) -> str:
        plans = self.plans.values()
        mix = ", ".join(f"{k} asset(s): {v}" for k, v in sorted(Counter(len(p.supplies) for p in plans).items()))
        borrowers = sum(bool(p.borrows) for p in plans)
        stable = sum(any(m == 1 for _, _, m in p.borrows) for p in plans)
        return (f"{len(self.plans)} wallets: collateral {mix}; {borrowers} borrow ({stable} with a stable-rate "
                f"debt), {sum(p.emode for p in plans)} in e-mode")

    def figures(self) -> dict[str, Any]:
        plans = self.plans.values()
        decimals = self.setup.decimals
        return {
            "borrowers": sum(bool(p.borrows) for p in plans),
            "emode": sum(p.emode for p in plans),
            "stable_borrowers": sum(any(m == 1 for _, _, m in p.borrows) for p in plans),
            "collateral_assets": dict(Counter(len(p.supplies) for p in plans)),
            "lender_supplied": {s: raw / 10 ** decimals[s] for s, raw in (self.lender.supplies if self.lender else [])},
        }

    def check(self, snapshot: Any, wallets: Sequence[str]) -> tuple[str, set[str]]:
        assert isinstance(snapshot, AaveSnapshot)
        assert len(snapshot.accounts) == len(wallets)
        onchain = [a.onchain for a in snapshot.accounts]
        assert all(o is not None for o in onchain), "a wallet's getUserAccountData reverted"
        holders = {a.wallet for a in snapshot.accounts if a.onchain is not None and a.onchain.total_collateral_base_raw}
        assert len(holders) == len(wallets), f"only {len(holders)} of {len(wallets)} wallets have Aave collateral"
        debt = sum(o.total_debt_base_raw > 0 for o in onchain if o is not None)
        return f"{len(holders)} with collateral, {debt} with debt", holders


PART = AaveBench
"""This venue's part of the sync benchmark, found by :func:`benchmarks.venues.bench_part`."""
