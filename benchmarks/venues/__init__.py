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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from eth_hash.auto import keccak
from eth_utils.address import to_checksum_address

import devnet
from connectors.registry import VENUES

__all__ = ["MAX_UINT256", "SMALL_GAS", "BenchPart", "Setup", "Tx", "bench_part", "calldata", "label_address"]

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

    @classmethod
    def read(cls, info: devnet.DevnetInfo) -> Setup:
        prices = {sym: devnet.latest_round(info, sym).answer_raw for sym in info.tokens}
        decimals = {sym: int(devnet.eth_call(info, token, "decimals()", (), ["uint8"])[0])
                    for sym, token in info.tokens.items()}
        return cls(info, prices, decimals)

    def usd(self, symbol: str) -> float:
        return self.prices[symbol] / 1e8

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
