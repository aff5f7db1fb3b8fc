"""Morpho Blue's typed details: what the sync stores with each position (its market's figures for the wallet),
with each health (every market the wallet holds a position in: its figures, and for the what-if's replay the
market's totals and the wallet's shares) and with each watched market (its parameters and totals)."""

from __future__ import annotations

from pydantic import Field

from aggregator.venues.detail import BigInt, Detail, Number, RawInt, StoredDetails

__all__ = [
    "STORED",
    "MorphoHealthDetail",
    "MorphoMarketDetail",
    "MorphoMarketParamsDetail",
    "MorphoMarketPositionDetail",
    "MorphoMarketStateDetail",
    "MorphoPositionDetail",
    "MorphoReplayDetail",
]


class MorphoMarketDetail(Detail):
    """One market of the wallet, as the risk and keeper parts read it: its id and LLTV (a fraction)."""

    market_id: str
    """The market's id (``bytes32``, hex)."""
    lltv: float
    """The market's liquidation LTV, a fraction."""


class MorphoHealthDetail(Detail):
    """The wallet's health on the venue, as the risk and keeper parts read it: every market it holds a position
    in."""

    markets: list[MorphoMarketDetail] = Field(default_factory=list)
    """The wallet's markets."""

    def by_market(self) -> dict[str, MorphoMarketDetail]:
        """The markets by id."""
        return {m.market_id: m for m in self.markets}


class _MorphoMarketState(Detail):
    """A market's parameters and totals at the snapshot's block (accrued to ``accrued_to``), stamped with the
    block; a token's decimals are ``None`` where the token did not say."""

    market_id: str
    """The market's id (``bytes32``, hex)."""
    loan_token: str
    """The loan token's address."""
    loan_symbol: str
    """The loan token's symbol."""
    loan_decimals: RawInt | None
    """The loan token's decimals."""
    collateral_token: str
    """The collateral token's address."""
    collateral_symbol: str
    """The collateral token's symbol."""
    collateral_decimals: RawInt | None
    """The collateral token's decimals."""
    lltv_wad: BigInt
    """The liquidation LTV, WAD (1e18)."""
    fee_wad: BigInt
    """The market's fee on interest, WAD."""
    price_raw: BigInt
    """The oracle's price: loan raw units per collateral raw unit × 1e36."""
    total_supply_assets_raw: BigInt
    """Total supplied, accrued to the block, in the loan token's units."""
    total_supply_shares: BigInt
    """Total supply shares, accrued to the block."""
    total_borrow_assets_raw: BigInt
    """Total borrowed, accrued to the block, in the loan token's units."""
    total_borrow_shares: BigInt
    """Total borrow shares."""
    accrued_to: RawInt
    """The timestamp the totals are accrued to (the block's), s."""
    block: int | None = None
    """The block the state was read at."""
    block_hash: str | None = None
    """That block's hash."""


class MorphoMarketStateDetail(_MorphoMarketState):
    """A market's parameters and totals at the snapshot's block, as a what-if replays them (both tokens'
    decimals known)."""

    loan_decimals: RawInt
    """The loan token's decimals."""
    collateral_decimals: RawInt
    """The collateral token's decimals."""


class _MorphoMarketHead(Detail):
    """What a stored watched market begins with: its pair and its contracts."""

    symbol: str | None = None
    """The market's pair, ``collateral/loan`` symbols."""
    oracle: str | None = None
    """The market's oracle's address."""
    irm: str | None = None
    """The market's interest rate model's address."""


class MorphoMarketParamsDetail(_MorphoMarketState, _MorphoMarketHead):
    """A watched market as the venue stores it in its market state: its pair and contracts, parameters and totals
    at the block."""


class _MorphoMarketHealth(Detail):
    """What the wallet's health stores of one of its markets before the market's state: the market's health for
    the wallet and the wallet's position."""

    market_id: str
    """The market's id (``bytes32``, hex)."""
    pair: str | None = None
    """The market's pair, ``collateral/loan`` symbols."""
    lltv: float | None = None
    """The market's liquidation LTV, a fraction."""
    health_factor: float | None = None
    """The position's health factor (``None``: no debt)."""
    health_factor_raw: BigInt | None = None
    """The same, WAD (``None``: no debt)."""
    max_borrow_usd: float | None = None
    """The most the collateral allows borrowing in all, USD."""
    max_borrow_increase_raw: BigInt | None = None
    """What the collateral still allows borrowing, in the loan token's units (the market's liquidity aside)."""
    liquidation_price: float | None = None
    """The collateral's USD price at which the position becomes liquidatable (``None``: no debt)."""
    liquidation_incentive_factor: float | None = None
    """The market's liquidation incentive factor (1.05: the liquidator gets 5 % more collateral)."""
    loan_usd: float
    """The loan token's USD price at the block."""
    collateral_raw: BigInt
    """The wallet's collateral, in the collateral token's units."""
    borrow_shares: BigInt
    """The wallet's borrow shares."""
    supply_shares: BigInt
    """The wallet's supply shares."""


class MorphoMarketPositionDetail(MorphoMarketStateDetail, _MorphoMarketHealth):
    """A market of the wallet as its health stores it: the market's health for the wallet, the wallet's position
    (shares and collateral) and the loan token's USD price, then the market's state."""


class MorphoReplayDetail(Detail):
    """The wallet's health on the venue as the sync stores it (and a what-if replays it): every market it holds a
    position in, and its net worth."""

    markets: list[MorphoMarketPositionDetail] = Field(default_factory=list)
    """The wallet's markets."""
    net_worth_usd: Number | None = None
    """Collateral and supply minus debt, USD."""


class MorphoPositionDetail(Detail):
    """A collateral, debt or supply position: its market's figures for the wallet and, for collateral and supply,
    the largest withdrawal Morpho accepts now."""

    market_id: str
    """The market's id (``bytes32``, hex)."""
    pair: str
    """The market's pair, ``collateral/loan`` symbols."""
    lltv: float
    """The market's liquidation LTV, a fraction."""
    health_factor: float | None
    """The wallet's health factor on the market (``None``: no debt)."""
    available_borrow_raw: BigInt
    """What the wallet may still borrow (its collateral and the market's liquidity allowing), loan token units."""
    available_borrow: float
    """The same, in whole loan tokens."""
    available_borrow_usd: float
    """The same, USD."""
    market_liquidity_raw: BigInt
    """The market's supply not borrowed, in the loan token's units."""
    max_withdraw_raw: BigInt | None = None
    """Collateral and supply only: the largest withdrawal Morpho accepts now, in the token's units."""
    max_withdraw: float | None = None
    """The same, in whole tokens."""
    max_withdraw_usd: float | None = None
    """The same, USD."""


STORED = StoredDetails(
    positions={"collateral": MorphoPositionDetail, "debt": MorphoPositionDetail, "supply": MorphoPositionDetail},
    health=MorphoReplayDetail,
    markets=MorphoMarketParamsDetail,
)
"""The models of what the sync stores."""
