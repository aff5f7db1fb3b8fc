"""Demo positions on a fresh devnet, at deterministic addresses.

Six wallets, seeded in this order (:data:`SEED_LABELS`); each on-chain venue part opens its own positions of each
wallet (:attr:`devnet.parts.DevnetPart.seed`, registry order), where the devnet has that venue. The token market's
part gives every wallet its lending account (``lender`` supplies the liquidity; ``safe``, ``near_liquidation``,
``multi``, ``emode`` and ``hedged`` borrow against collateral; see its ``SEED_PLAN`` for the table).

``hedged`` (last, so the others' positions are opened exactly as before) also holds a position on every other
venue: a collateralised borrow on an isolated lending market, an LP range around the WETH price (paid from its
borrows), and short ETH perps, opened off-chain by the local venue API (not here; see each venue's part).

``near_liquidation`` becomes liquidatable when WETH falls ~5 % (to ~$3,806). Seeding is meant for a freshly
started devnet (each start loads the unseeded state); on a devnet whose token market says it is seeded already
(the lender has a position) it does nothing and returns the same wallets. The venues' own liquidity is in the
cached deployment already (:data:`devnet.tokens.LIQUIDITY`), not opened here.
"""

from __future__ import annotations

from dataclasses import dataclass

from devnet.models import DevnetInfo
from devnet.progress import Progress, stage
from devnet.venues import chain_parts, token_market
from devnet.wallets import wallet_address

__all__ = ["SEED_LABELS", "SeedWallet", "is_seeded", "seed", "wallet_address"]

SEED_LABELS = ("lender", "safe", "near_liquidation", "multi", "emode", "hedged")
"""The demo wallets, in the order they are seeded."""


@dataclass(frozen=True)
class SeedWallet:
    """A seeded wallet: its label (see the module table) and checksummed address."""

    label: str
    address: str


def is_seeded(info: DevnetInfo) -> bool:
    """Whether the demo positions are open already (the token market's part tells)."""
    market = token_market().market
    assert market is not None  # token_market() has one
    return market.seeded(info)


def seed(info: DevnetInfo, progress: Progress | None = None) -> list[SeedWallet]:
    """Open the demo positions (see the module docstring); return the wallets in table order.

    Reports stage ``seed`` to ``progress``, with an update per wallet (nothing when already seeded).
    """
    wallets = [SeedWallet(label, wallet_address(label)) for label in SEED_LABELS]
    if is_seeded(info):
        return wallets
    parts = [part for part in chain_parts() if part.seed is not None and part.present(info)]
    venues = ", ".join(part.short for part in parts)
    with stage(progress, "seed", f"seeding {len(wallets)} wallets ({venues} positions)") as update:
        for n, wallet in enumerate(wallets, 1):
            update(f"{wallet.label} ({n}/{len(wallets)})")
            for part in parts:
                assert part.seed is not None  # filtered above
                part.seed(info, wallet.label, wallet.address)
    return wallets
