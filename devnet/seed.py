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
hedged         20 WETH                                          40,000 USDC (variable)         1.65
============== ================================================ ============================== =========

``hedged`` (last, so the others' positions are opened exactly as before) also holds, where the devnet has
those venues (:data:`HEDGED_VENUES`):

- Morpho Blue ``WETH_USDC`` (LLTV 86 %): 10 WETH collateral, 20,000 USDC borrowed (health 1.72);
- Uniswap v3 ``WETH_USDC_500``: one LP position of up to 5 WETH + 20,000 USDC (paid from its borrows)
  over WETH ±15 % around the feed price;
- a short ETH perp, opened off-chain by the local perp API (not here).

``near_liquidation`` becomes liquidatable when WETH falls ~5 % (to ~$3,806). Seeding is meant for a freshly
started devnet (each start loads the unseeded state); on a devnet where the lender already has a position
it does nothing and returns the same wallets. The Morpho markets' and Uniswap pools' own liquidity is in
the cached deployment already (:data:`devnet.venues.LIQUIDITY`), not opened here.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from devnet import morpho, uniswap
from devnet.aave import RateMode, account_data, borrow, decimals, fund, set_emode, supply
from devnet.feeds import latest_round
from devnet.models import DevnetInfo
from devnet.progress import Progress, stage
from devnet.wallets import wallet_address

__all__ = ["HEDGED_VENUES", "SEED_LABELS", "HedgedVenues", "SeedWallet", "is_seeded", "seed", "wallet_address"]

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
    "hedged": ([("WETH", 20)], [("USDC", 40_000, RateMode.VARIABLE)]),
}
SEED_LABELS = tuple(_PLAN)


@dataclass(frozen=True)
class HedgedVenues:
    """The ``hedged`` wallet's positions beyond Aave (whole tokens)."""

    morpho_market: str = "WETH_USDC"
    morpho_collateral_weth: int = 10
    morpho_borrow_usdc: int = 20_000
    uniswap_pool: str = "WETH_USDC_500"
    uniswap_weth: int = 5
    uniswap_usdc: int = 20_000
    uniswap_band: Decimal = Decimal("0.15")
    """The LP range: the WETH feed price ×(1 ± band)."""


HEDGED_VENUES = HedgedVenues()
"""The ``hedged`` wallet's positions beyond Aave (see the module docstring)."""


@dataclass(frozen=True)
class SeedWallet:
    """A seeded wallet: its label (see the module table) and checksummed address."""

    label: str
    address: str


def is_seeded(info: DevnetInfo) -> bool:
    """Whether the demo positions are open already (the lender, seeded first, has collateral)."""
    return account_data(info, wallet_address(SEED_LABELS[0])).total_collateral_base > 0


def seed(info: DevnetInfo, progress: Progress | None = None) -> list[SeedWallet]:
    """Open the demo positions (see the module docstring); return the wallets in table order.

    Reports stage ``seed`` to ``progress``, with an update per wallet (nothing when already seeded).
    """
    wallets = [SeedWallet(label, wallet_address(label)) for label in SEED_LABELS]
    if is_seeded(info):
        return wallets
    with stage(progress, "seed", f"seeding {len(wallets)} wallets (Aave, Morpho, Uniswap positions)") as update:
        for n, wallet in enumerate(wallets, 1):
            update(f"{wallet.label} ({n}/{len(wallets)})")
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
    if wallet.label == "hedged":
        _open_hedged_venues(info, wallet.address)


def _open_hedged_venues(info: DevnetInfo, wallet: str) -> None:
    plan = HEDGED_VENUES
    weth_unit, usdc_unit = 10 ** decimals(info, "WETH"), 10 ** decimals(info, "USDC")
    if "morpho_blue.morpho" in info.contracts:
        collateral = plan.morpho_collateral_weth * weth_unit
        fund(info, wallet, "WETH", collateral)
        morpho.supply_collateral(info, wallet, plan.morpho_market, collateral)
        morpho.borrow(info, wallet, plan.morpho_market, plan.morpho_borrow_usdc * usdc_unit)
    if "uniswap_v3.factory" in info.contracts:
        pool = plan.uniswap_pool
        weth, usdc = plan.uniswap_weth * weth_unit, plan.uniswap_usdc * usdc_unit
        fund(info, wallet, "WETH", weth)
        usd = latest_round(info, "WETH").price_usd
        band = plan.uniswap_band
        lower, upper = uniswap.ticks_for_usd_range(info, pool, usd * (1 - band), usd * (1 + band))
        amounts = (weth, usdc) if uniswap.pool_tokens(info, pool).base_is_token0 else (usdc, weth)
        uniswap.mint_position(info, wallet, pool, lower, upper, *amounts)
