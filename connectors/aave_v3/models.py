"""Typed boundary models of the Aave v3 connector.

Every on-chain integer stays an ``int`` with a ``_raw``/``_ray``/``_bps`` suffix naming its scale;
nothing here is converted to floats (``riskcore.units`` does that, in one place).
"""

from __future__ import annotations

from typing import Literal

from connectors.chainlink.models import FeedRound
from connectors.types import Address, BlockRef, Frozen

__all__ = [
    "AaveAccount",
    "AaveEModeCategory",
    "AaveMarket",
    "AaveReserve",
    "AaveSnapshot",
    "AaveUserReserve",
    "OnchainAccountData",
]


class AaveReserve(Frozen):
    """One reserve of the market and its configuration, read at the snapshot's block."""

    asset: Address
    symbol: str
    decimals: int
    reserve_id: int
    """Index of the reserve's bits in a user's configuration bitmap."""
    configuration_raw: int
    ltv_bps: int
    liquidation_threshold_bps: int
    liquidation_bonus_bps: int
    """Bonus in Aave's form: 10_500 means the liquidator gets 5% extra."""
    reserve_factor_bps: int
    active: bool
    frozen: bool
    paused: bool
    borrowing_enabled: bool
    stable_borrowing_enabled: bool
    emode_category: int
    a_token: Address
    stable_debt_token: Address
    variable_debt_token: Address
    normalized_income_ray: int
    """``Pool.getReserveNormalizedIncome`` at the block (liquidity index accrued to the block's time)."""
    normalized_variable_debt_ray: int
    """``Pool.getReserveNormalizedVariableDebt`` at the block."""
    price_raw: int
    """``AaveOracle.getAssetPrice``, in base-currency units (``AaveMarket.base_currency_unit``)."""
    price_source: Address
    """The aggregator ``AaveOracle`` reads for this asset."""
    feed: FeedRound | None = None
    """The price source's own latest round, when it is Chainlink-shaped."""


class AaveEModeCategory(Frozen):
    """An efficiency-mode category (``Pool.getEModeCategoryData``)."""

    category_id: int
    ltv_bps: int
    liquidation_threshold_bps: int
    liquidation_bonus_bps: int
    price_source: Address
    """Zero address when the category has no price source of its own."""
    price_raw: int | None
    """The category's own price in base-currency units, when it has a price source."""
    label: str


class AaveMarket(Frozen):
    """Market-wide state at one block: reserves, e-mode categories, the oracle's base unit."""

    name: str
    """Deployment name, e.g. ``aave_v3`` or ``spark``."""
    pool: Address
    oracle: Address
    base_currency_unit: int
    """``AaveOracle.BASE_CURRENCY_UNIT`` (1e8 for USD markets)."""
    reserves: tuple[AaveReserve, ...]
    emode_categories: tuple[AaveEModeCategory, ...]


class AaveUserReserve(Frozen):
    """A wallet's balances in one reserve (only reserves with a balance or a flag appear)."""

    asset: Address
    scaled_a_token_balance_raw: int
    """``AToken.scaledBalanceOf``: multiply by the normalized income (rayMul) for the balance.

    Read for every reserve: a supplied asset not used as collateral has no bit in the user's configuration."""
    scaled_variable_debt_raw: int
    """``VariableDebtToken.scaledBalanceOf``: multiply by the normalized variable debt (rayMul)."""
    stable_debt_raw: int
    """``StableDebtToken.balanceOf``, already accrued to the block."""
    usage_as_collateral: bool
    """The collateral bit of the user's configuration."""
    borrowing: bool
    """The borrowing bit of the user's configuration."""


class OnchainAccountData(Frozen):
    """``Pool.getUserAccountData`` as the protocol reports it (base currency, WAD health factor)."""

    total_collateral_base_raw: int
    total_debt_base_raw: int
    available_borrows_base_raw: int
    current_liquidation_threshold_bps: int
    ltv_bps: int
    health_factor_wad: int


class AaveAccount(Frozen):
    """One wallet's Aave state at the snapshot's block."""

    wallet: Address
    user_configuration_raw: int
    emode_category: int
    reserves: tuple[AaveUserReserve, ...]
    onchain: OnchainAccountData | None
    """The protocol's own figures, read in the same block (kept beside ours as the check); ``None`` when the
    protocol's own ``getUserAccountData`` reverted (an asset of the wallet has no valid oracle price), and when
    the account was recomputed from a state read at an earlier block (``source = "recomputed"``)."""
    source: Literal["read", "recomputed"] = "read"
    """``read``: read at the snapshot's block; ``recomputed``: its raw state was read at ``read_block`` and its
    balances are recomputed with the snapshot block's indexes and prices (the protocol's own figures are not
    available then: neither a fault nor "onchain unavailable")."""
    read_block: int | None = None
    """The block the account's raw state was read at (None: the snapshot's block)."""
    verified_at_block: int | None = None
    """The last block at which xmargin's figures were compared with ``getUserAccountData`` for this account's
    state (the read block when it was read with the protocol's figures; None: never)."""


class AaveSnapshot(Frozen):
    """Everything read for a batch of wallets in one block."""

    block: BlockRef
    market: AaveMarket
    accounts: tuple[AaveAccount, ...]
