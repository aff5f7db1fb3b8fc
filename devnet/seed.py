"""Demo positions on a fresh devnet, at deterministic addresses.

At the deploy prices (WETH $4,000, AAVE $300, LINK $30, DAI/USDC $1):

============== ================================================ ============================== =========
label          supplies                                         borrows                        HF
============== ================================================ ============================== =========
lender         200k DAI, 200k USDC, 20k LINK (the liquidity)    --                             no debt
safe           10 WETH                                          5,000 DAI (variable)           6.6
near_liq.      10 WETH                                          31,400 DAI (variable)          1.051
multi          5 WETH, 1,000 LINK, 50 AAVE                      10k DAI + 200 LINK (variable), 2.03
                                                                8k USDC (stable)
emode          10,000 USDC, in e-mode 1 (stablecoins)           9,000 DAI (variable)           1.094
============== ================================================ ============================== =========

``near_liquidation`` becomes liquidatable when WETH falls ~5 % (to ~$3,806). Seeding is meant for a freshly
started devnet (each start loads the unseeded state); on a devnet where the lender already has a position
it does nothing and returns the same wallets.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_hash.auto import keccak
from eth_utils.address import to_checksum_address

from devnet.aave import RateMode, account_data, borrow, decimals, fund, set_emode, supply
from devnet.models import DevnetInfo

__all__ = ["SEED_LABELS", "SeedWallet", "seed", "wallet_address"]

_STABLE_EMODE = 1
# label -> (supplies, borrows); amounts in whole tokens, borrows as (symbol, tokens, rate mode)
_PLAN: dict[str, tuple[list[tuple[str, int]], list[tuple[str, int, RateMode]]]] = {
    "lender": ([("DAI", 200_000), ("USDC", 200_000), ("LINK", 20_000)], []),
    "safe": ([("WETH", 10)], [("DAI", 5_000, RateMode.VARIABLE)]),
    "near_liquidation": ([("WETH", 10)], [("DAI", 31_400, RateMode.VARIABLE)]),
    "multi": (
        [("WETH", 5), ("LINK", 1_000), ("AAVE", 50)],
        [("DAI", 10_000, RateMode.VARIABLE), ("USDC", 8_000, RateMode.STABLE), ("LINK", 200, RateMode.VARIABLE)],
    ),
    "emode": ([("USDC", 10_000)], [("DAI", 9_000, RateMode.VARIABLE)]),
}
SEED_LABELS = tuple(_PLAN)


@dataclass(frozen=True)
class SeedWallet:
    """A seeded wallet: its label (see the module table) and checksummed address."""

    label: str
    address: str


def wallet_address(label: str) -> str:
    """The deterministic address of seed wallet ``label``: the last 20 bytes of
    ``keccak("xmargin.devnet.<label>")``."""
    return to_checksum_address(keccak(f"xmargin.devnet.{label}".encode())[-20:])


def seed(info: DevnetInfo) -> list[SeedWallet]:
    """Open the demo positions (see the module docstring); return the wallets in table order."""
    wallets = [SeedWallet(label, wallet_address(label)) for label in SEED_LABELS]
    if account_data(info, wallets[0].address).total_collateral_base > 0:
        return wallets
    for wallet in wallets:
        _open(info, wallet)
    return wallets


def _open(info: DevnetInfo, wallet: SeedWallet) -> None:
    supplies, borrows = _PLAN[wallet.label]
    if wallet.label == "emode":
        set_emode(info, wallet.address, _STABLE_EMODE)
    for symbol, tokens in supplies:
        amount_raw = tokens * 10 ** decimals(info, symbol)
        fund(info, wallet.address, symbol, amount_raw)
        supply(info, wallet.address, symbol, amount_raw)
    for symbol, tokens, mode in borrows:
        borrow(info, wallet.address, symbol, tokens * 10 ** decimals(info, symbol), mode)
