"""Each on-chain venue's part of the sync benchmark (``benchmarks/bench_sync.py``): which positions it opens on
the benchmark's wallets, the transactions that open them, what it reports of them, and what it checks in the
venue's snapshot read back at the pinned block.

A venue's part is ``benchmarks/venues/<venue>.py`` (its configuration ``type``, as in every layer) ending with
``PART = <BenchPart>``; the benchmark finds it by the venue names of :mod:`connectors.registry`. An on-chain venue
without one is still read and measured, with no positions opened for it. The shared pieces are here: the
transaction the setup sends (:class:`Tx`), and what every part may use of the devnet (:class:`Setup`: the tokens'
USD prices and decimals, funding a wallet with a token, the benchmark's addresses).
"""

from __future__ import annotations

import importlib
import importlib.util
import random
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from eth_hash.auto import keccak
from eth_utils.address import to_checksum_address

import devnet
from connectors.registry import VENUES

__all__ = [
    "MAX_UINT256", "SMALL_GAS", "BenchPart", "PerpAccount", "PerpBook", "Setup", "Tx", "bench_part", "calldata",
    "label_address", "perp_part",
]

SMALL_GAS = 300_000
MAX_UINT256 = 2**256 - 1
WRAPPED_NATIVE = "WETH"
"""The token wrapped from ETH (``deposit()``) rather than minted."""


def label_address(label: str) -> str:
    """A deterministic address (same derivation as devnet.wallet_address)."""
    return str(to_checksum_address(keccak(f"xmargin.bench.{label}".encode())[-20:]))


def calldata(signature: str, *args: Any) -> str:
    return devnet.encode_call(signature, *args)


@dataclass
class Tx:
    sender: str
    to: str
    data: str
    what: str
    value: int = 0
    gas: int = SMALL_GAS


Mint = Callable[[str, str, int, str], list[Tx]]
"""``(sender, symbol, raw, what)``: the transactions that give ``sender`` ``raw`` of a minted test token."""


@dataclass
class Setup:
    """What every part may use of the devnet: its tokens' USD prices (8 decimals, the Chainlink feeds' answers)
    and decimals, and :meth:`fund` (wrapping the native token, or the minting that a venue part offers)."""

    info: devnet.DevnetInfo
    prices: dict[str, int]
    decimals: dict[str, int]
    mint: Mint | None = None
    before: dict[str, int] = field(default_factory=dict)
    """The prices before the block's price move (the block benchmark's activity: :meth:`moved`)."""

    @classmethod
    def read(cls, info: devnet.DevnetInfo) -> Setup:
        prices = {sym: devnet.latest_round(info, sym).answer_raw for sym in info.tokens}
        decimals = {sym: int(devnet.eth_call(info, token, "decimals()", (), ["uint8"])[0])
                    for sym, token in info.tokens.items()}
        return cls(info, prices, decimals)

    def usd(self, symbol: str) -> float:
        return self.prices[symbol] / 1e8

    def moved(self, answers: Mapping[str, int]) -> None:
        """The feeds move to ``answers`` in the next block: :attr:`prices` are the new ones, :attr:`before` the
        old ones (a part's action must be valid at both, in whichever order the block holds them)."""
        self.before = dict(self.prices)
        self.prices.update(answers)

    def worst_usd(self, symbol: str, collateral: bool) -> float:
        """``symbol``'s USD price at its worst for the borrower, before or after the block's move: the lower for
        a collateral, the higher for a debt."""
        now, then = self.prices[symbol], self.before.get(symbol, self.prices[symbol])
        return (min(now, then) if collateral else max(now, then)) / 1e8

    def fund(self, sender: str, symbol: str, raw: int, what: str) -> list[Tx]:
        """Transactions that give ``sender`` ``raw`` more of ``symbol`` (``what`` names them in errors)."""
        if symbol == WRAPPED_NATIVE:
            return [Tx(sender, self.info.token(symbol), calldata("deposit()"), f"{symbol} deposit{what}", value=raw)]
        if self.mint is None:
            raise RuntimeError(f"no venue part of the benchmark mints {symbol}")
        return self.mint(sender, symbol, raw, what)


class BenchPart(Protocol):
    """One on-chain venue's part of the sync benchmark."""

    rounds: str
    """What the venue's read program asks for in each of its rounds (for the rounds table)."""

    share: float
    """The share of the planned wallets that open positions on the venue (the block benchmark sets 1.0: every
    wallet on every venue)."""

    def prepare(self, setup: Setup) -> None:
        """Read what planning the venue's positions needs from the devnet (once, before any plan)."""
        ...

    def plan(self, wallet: str, rng: random.Random) -> None:
        """Decide ``wallet``'s positions on the venue (drawn from ``rng``: the same seed opens the same book)."""
        ...

    def helpers(self) -> list[str]:
        """After every wallet is planned: other senders the venue needs (a lender of what is borrowed); they send
        first."""
        ...

    def transactions(self, sender: str) -> tuple[list[Tx], list[Tx]]:
        """``sender``'s transactions on the venue: those that open its positions, and those that need every first
        transaction of every venue mined (debts)."""
        ...

    def settled(self) -> None:
        """After the setup is mined, before any activity: read what the actions need of the chain (NFT ids) and
        prepare their helpers (an arbitrageur funded)."""
        ...

    def act(self, wallet: str, rng: random.Random) -> list[Tx]:
        """One random action of ``wallet`` on the venue during the block benchmark's activity (a position it holds
        grows or shrinks), as transactions that revert in no order of the block: sized against the part's own
        record of the wallet's positions and of the venue's liquidity, at the worst of the prices before and after
        the block's price move (:meth:`Setup.moved`); [] when the wallet holds nothing there. The record is
        updated as if the transactions were mined."""
        ...

    def price_txs(self, answers: Mapping[str, int]) -> list[Tx]:
        """The transactions that bring the venue's own prices to the feeds' new ``answers`` (8-decimal USD, only
        the symbols that move): oracles set, pools arbitraged; [] when the venue reads the feeds directly."""
        ...

    def summary(self) -> str:
        """One line of what the setup opened (after the venue's name)."""
        ...

    def figures(self) -> dict[str, Any]:
        """What the setup opened, for ``--json``."""
        ...

    def check(self, snapshot: Any, wallets: Sequence[str]) -> tuple[str, set[str]]:
        """The venue's snapshot of ``wallets`` read back at the pinned block, asserted against the plan: a phrase
        of what it found, and the wallets with a position on the venue."""
        ...


def bench_part(venue: str) -> BenchPart | None:
    """``venue``'s part (``benchmarks.venues.<venue>.PART``, a fresh one), or None when it has none."""
    if venue not in VENUES:
        raise LookupError(f"unknown venue type {venue!r}")
    name = f"{__name__}.{venue}"
    if importlib.util.find_spec(name) is None:
        return None
    module = importlib.import_module(name)
    part: BenchPart = module.PART()
    return part


def minting(parts: Sequence[BenchPart]) -> Mint | None:
    """The first part that mints test tokens (its ``mint``), if any."""
    for part in parts:
        mint: Mint | None = getattr(part, "mint", None)
        if mint is not None:
            return mint
    return None


# --- the off-chain (perp) venues: accounts in the devnet's local venue API ---------------------------------------

PERP_DEPOSIT_USD = (1_000, 50_000)
PERP_LEVERAGE = (0.3, 3.0)
"""A planned account's positions' notional over its deposit (drawn)."""
PERP_MAX_LEVERAGE = Decimal(4)
"""A trade leaves the account's notional under this many times its equity (the venues allow 20x and more)."""


@dataclass
class PerpAccount:
    """One benchmark account on a perp venue: the USDC deposited (realized P&L included), and per coin the signed
    size and entry price of its position."""

    deposit_usd: Decimal
    positions: dict[str, tuple[Decimal, Decimal]]

    def equity_usd(self, marks: Mapping[str, Decimal]) -> Decimal:
        return self.deposit_usd + sum((s * (marks[c] - e) for c, (s, e) in self.positions.items()), Decimal(0))

    def notional_usd(self, marks: Mapping[str, Decimal]) -> Decimal:
        return sum((abs(s) * marks[c] for c, (s, _) in self.positions.items()), Decimal(0))


class PerpBook:
    """An off-chain venue's part of the block benchmark: the wallets' accounts in the devnet's local venue API
    (``devnet.perp_api``), planned, seeded in bulk through its control route, and traded.

    Parameters
    ----------
    api_venue:
        The venue's name in the local venue API (``PerpApi.add_account``'s ``venue``).
    coins:
        The coins the venue lists, with the decimals of a position's size.
    account_of:
        A wallet's account id on the venue (an address, a subaccount).
    leverage:
        The (cross) leverage the account's positions are opened with, where the venue has one.
    """

    def __init__(self, api_venue: str, coins: Mapping[str, int], account_of: Callable[[str], str],
                 leverage: int = 10) -> None:
        self.api_venue = api_venue
        self.coins = dict(coins)
        self.account_of = account_of
        self.leverage = leverage
        self.share = 1.0
        self.accounts: dict[str, PerpAccount] = {}
        self.marks: dict[str, Decimal] = {}
        """Each coin's mark now (shared by every perp part: the block benchmark moves them)."""

    def prepare(self, marks: dict[str, Decimal]) -> None:
        """The marks (the block benchmark's dict, moved in place)."""
        self.marks = marks

    def _size(self, coin: str, usd: Decimal) -> Decimal:
        return (usd / self.marks[coin]).quantize(Decimal(1).scaleb(-self.coins[coin]))

    def plan(self, wallet: str, rng: random.Random) -> None:
        """A deposit of $1k-50k and 1-2 positions, long or short, of 0.3-3x the deposit in all, opened within 3 %
        of today's mark."""
        if rng.random() >= self.share:
            return
        deposit = Decimal(rng.randint(*PERP_DEPOSIT_USD))
        coins = rng.sample(sorted(self.coins), min(len(self.coins), rng.choice((1, 2))))
        notional = deposit * Decimal(str(round(rng.uniform(*PERP_LEVERAGE), 3))) / len(coins)
        positions = {}
        for coin in coins:
            size = self._size(coin, notional) * rng.choice((-1, 1))
            entry = (self.marks[coin] * Decimal(str(round(rng.uniform(0.97, 1.03), 4)))).quantize(Decimal("0.01"))
            if size:
                positions[coin] = (size, entry)
        self.accounts[wallet] = PerpAccount(deposit, positions)

    def document(self, wallet: str) -> Any:
        """``wallet``'s account as the local venue API's control route takes it."""
        from devnet.perp_api import PerpPosition, account_document

        a = self.accounts[wallet]
        return account_document(self.account_of(wallet), a.deposit_usd,
                                [PerpPosition(c, s, e, leverage=self.leverage) for c, (s, e) in a.positions.items()])

    def act(self, wallet: str, rng: random.Random) -> list[Any]:
        """One trade at the mark: reduce a position by 10-50 % (its P&L realized into the deposit), grow one by
        10-30 % (at the size-weighted entry), or open another coin; a trade that grows the account only while its
        notional stays under :data:`PERP_MAX_LEVERAGE` times its equity. The account's new document (the
        venue's state after the trade), or [] when the wallet has no account."""
        a = self.accounts.get(wallet)
        if a is None:
            return []
        marks = self.marks
        held = sorted(a.positions)
        kinds = ["reduce", "grow", "open"] if held else ["open"]
        rng.shuffle(kinds)
        for kind in kinds:
            if kind == "reduce" and held:
                coin = rng.choice(held)
                size, entry = a.positions[coin]
                closed = (size * Decimal(str(round(rng.uniform(0.1, 0.5), 2)))).quantize(
                    Decimal(1).scaleb(-self.coins[coin]))
                if not closed:
                    continue
                a.deposit_usd += closed * (marks[coin] - entry)
                a.positions[coin] = (size - closed, entry)
                if not a.positions[coin][0]:
                    del a.positions[coin]
                return [self.document(wallet)]
            free = sorted(set(self.coins) - set(held))
            if kind == "open" and not free:
                continue
            coin = rng.choice(held if kind == "grow" else free)
            size, entry = a.positions.get(coin, (Decimal(0), marks[coin]))
            if kind == "grow":
                extra = (size * Decimal(str(round(rng.uniform(0.1, 0.3), 2)))).quantize(
                    Decimal(1).scaleb(-self.coins[coin]))
            else:
                extra = self._size(coin, a.equity_usd(marks) * Decimal("0.5")) * rng.choice((-1, 1))
            after = PerpAccount(a.deposit_usd, {**a.positions, coin: (size + extra, entry)})
            if not extra or after.notional_usd(marks) > PERP_MAX_LEVERAGE * after.equity_usd(marks):
                continue
            new_entry = ((size * entry + extra * marks[coin]) / (size + extra)).quantize(Decimal("0.000001"))
            # (the entry rounded: the deposit takes up the difference, so the equity is the trade's exactly)
            a.deposit_usd += (size + extra) * (new_entry - entry) - extra * (marks[coin] - entry)
            a.positions[coin] = (size + extra, new_entry)
            return [self.document(wallet)]
        return []

    def configure(self, cfg: Any) -> Any:
        """The venue's configuration for reading these accounts (unchanged where the venue reads a wallet's own
        address)."""
        return cfg

    def summary(self) -> str:
        per = Counter(len(a.positions) for a in self.accounts.values())
        coins = Counter(c for a in self.accounts.values() for c in a.positions)
        return (f"{len(self.accounts)} accounts: " + ", ".join(f"{k} position(s): {v}" for k, v in sorted(per.items()))
                + "; " + ", ".join(f"{c} {n}" for c, n in sorted(coins.items())))


def perp_part(venue: str) -> PerpBook | None:
    """``venue``'s part when it is an off-chain venue's (a :class:`PerpBook`), or None."""
    if venue not in VENUES:
        raise LookupError(f"unknown venue type {venue!r}")
    name = f"{__name__}.{venue}"
    if importlib.util.find_spec(name) is None:
        return None
    part = importlib.import_module(name).PART()
    return part if isinstance(part, PerpBook) else None
