"""Aave v3's typed details: what the sync stores with each position (the reserve's rule in force for it, and for
the what-if's replay the reserve's state and the wallet's balance), with each health (the wallet's account) and
with each reserve of the market (its state and flags)."""

from __future__ import annotations

from pydantic import StrictInt

from aggregator.venues.detail import BigInt, Detail, Number, RawInt, StoredDetails

__all__ = [
    "STORED",
    "AaveBalanceDetail",
    "AaveEModeDetail",
    "AaveHealthDetail",
    "AaveMarketReserveDetail",
    "AavePositionDetail",
    "AaveReserveDetail",
]


class AavePositionDetail(Detail):
    """A collateral or debt position as the risk and keeper parts read it: the liquidation threshold and bonus in
    force for it (e-mode's where the wallet's category applies), in bps; ``None`` when the venue stored none."""

    liquidation_threshold_bps: StrictInt | None = None
    """The liquidation threshold in force for the position, bps."""
    liquidation_bonus_bps: StrictInt | None = None
    """The liquidation bonus in force for the position, bps (10_500: 5 % bonus)."""


class AaveEModeDetail(Detail):
    """The wallet's e-mode category: its LTV, liquidation threshold and bonus (bps), and its own oracle price
    (0: none)."""

    ltv_bps: RawInt
    """The category's LTV, bps."""
    liquidation_threshold_bps: RawInt
    """The category's liquidation threshold, bps."""
    liquidation_bonus_bps: RawInt = 0
    """The category's liquidation bonus, bps."""
    price_raw: BigInt = 0
    """The category's own oracle price at the oracle's base decimals (0: none, the reserves' own prices apply)."""


class AaveHealthDetail(Detail):
    """The wallet's account on the pool, beside its health: the oracle's base currency decimals, its configuration
    bits, its e-mode category, its borrowing room, LTV and net worth."""

    base_decimals: RawInt
    """The decimals of the oracle's base currency (8: USD prices with 8 decimals)."""
    user_configuration: BigInt
    """The wallet's configuration bitmap (two bits per reserve id: borrowing, used as collateral)."""
    emode_category: RawInt
    """The wallet's e-mode category id (0: none)."""
    emode: AaveEModeDetail | None = None
    """The e-mode category's parameters (``None``: the wallet is in none)."""
    available_borrows_usd: float | None = None
    """What the wallet may still borrow, USD (the protocol's ``availableBorrowsBase``)."""
    ltv: float | None = None
    """The wallet's weighted LTV, a fraction (``None``: no collateral)."""
    net_worth_usd: Number | None = None
    """Collateral minus debt at the oracle's prices, USD."""
    source: str | None = None
    """``recomputed``: from the cached account with the block's indexes and prices, checked by a later reconcile."""
    verified_at_block: RawInt | None = None
    """The last block at which the wallet's figures were compared with the protocol's own (None: never)."""


class AaveReserveDetail(Detail):
    """A reserve's state at the snapshot's block, as ``calculateUserAccountData`` reads it (the reserve's own
    parameters, not e-mode's)."""

    reserve_id: RawInt
    """The reserve's id (its bit pair in a wallet's configuration)."""
    decimals: RawInt
    """The reserve token's decimals."""
    reserve_ltv_bps: RawInt
    """The reserve's own LTV, bps."""
    reserve_liquidation_threshold_bps: RawInt
    """The reserve's own liquidation threshold, bps."""
    reserve_emode_category: RawInt
    """The e-mode category the reserve belongs to (0: none)."""
    debt_ceiling: RawInt = 0
    """The reserve's isolation-mode debt ceiling, in the configuration's units (0: not an isolated asset)."""
    price_raw: BigInt
    """The oracle's price at the base currency's decimals."""
    normalized_income_ray: BigInt
    """The reserve's liquidity index at the block, ray (1e27)."""
    normalized_variable_debt_ray: BigInt
    """The reserve's variable borrow index at the block, ray (1e27)."""


class _AaveTerms(Detail):
    """What a position stores before its reserve's state: the terms in force for it and, for collateral, the
    largest withdrawal the pool accepts."""

    liquidation_threshold_bps: RawInt
    """The liquidation threshold in force for the position (e-mode's where it applies), bps."""
    liquidation_bonus_bps: RawInt
    """The liquidation bonus in force for the position, bps."""
    ltv_bps: RawInt | None = None
    """The LTV in force for the position (0 for a zero-LTV reserve), bps."""
    available_borrows_usd: float | None = None
    """What the wallet may still borrow, USD (the same on every position of the wallet)."""
    max_withdraw_raw: BigInt | None = None
    """Collateral only: the largest ``withdraw`` the pool accepts now, in the token's units."""
    max_withdraw: float | None = None
    """Collateral only: the same, in whole tokens."""
    max_withdraw_usd: float | None = None
    """Collateral only: the same, USD."""


class _AaveBalance(Detail):
    """What a position stores after its reserve's state: the wallet's own balance and configuration bits."""

    scaled_raw: BigInt
    """The scaled balance: aTokens (collateral) or variable debt tokens (debt), before the index."""
    stable_debt_raw: BigInt = 0
    """Debt only: the stable-rate debt, in the token's units."""
    usage_as_collateral: bool
    """The wallet's collateral bit for the reserve."""
    borrowing: bool
    """The wallet's borrowing bit for the reserve."""


class AaveBalanceDetail(_AaveBalance, AaveReserveDetail, _AaveTerms):
    """A collateral or debt position as the sync stores it, with everything a replay of the wallet's actions needs:
    the terms in force for it, the reserve's state, the wallet's scaled balance and configuration bits."""


class _AaveMarketHead(Detail):
    """What a stored reserve of the market begins with: its symbol and its own parameters."""

    symbol: str | None = None
    """The reserve token's symbol."""
    ltv_bps: RawInt | None = None
    """The reserve's LTV, bps."""
    liquidation_threshold_bps: RawInt | None = None
    """The reserve's liquidation threshold, bps."""
    liquidation_bonus_bps: RawInt = 0
    """The reserve's liquidation bonus, bps."""
    emode_category: RawInt | None = None
    """The e-mode category the reserve belongs to (0: none)."""
    decimals: RawInt
    """The reserve token's decimals."""
    base_decimals: RawInt | None = None
    """The decimals of the oracle's base currency."""


class _AaveMarketFlags(Detail):
    """What a stored reserve of the market ends with: its flags and the block it was read at."""

    active: bool = True
    """The reserve is active."""
    frozen: bool = False
    """The reserve is frozen (no new supply or borrow)."""
    paused: bool = False
    """The reserve is paused (no action at all)."""
    borrowing_enabled: bool = True
    """Borrowing the reserve is enabled."""
    block: int | None = None
    """The block the state was read at."""
    block_hash: str | None = None
    """That block's hash."""


class AaveMarketReserveDetail(_AaveMarketFlags, AaveReserveDetail, _AaveMarketHead):
    """A reserve of the venue's stored market state: its parameters, its state, its flags and the block it was read
    at."""


STORED = StoredDetails(
    positions={"collateral": AaveBalanceDetail, "debt": AaveBalanceDetail},
    health=AaveHealthDetail,
    markets=AaveMarketReserveDetail,
)
"""The models of what the sync stores."""
