"""Typed boundary models of the Morpho Blue connector.

Every on-chain integer stays an ``int`` named for its scale (``*_raw`` token units, ``*_wad`` 1e18 fixed point,
``price_raw`` the oracle's 1e36-scaled price); shares are plain integers (``*_shares``). Nothing is converted to
floats here (``riskcore.units`` does that).

Two views of a market's totals are kept side by side:

* ``total_*`` — ``Morpho.market(id)`` as stored, i.e. as of ``last_update``;
* ``accrued_*`` — after ``Morpho._accrueInterest`` at the snapshot block's timestamp, with the IRM's
  ``borrowRateView`` read at that block. These are the totals every on-chain health check (``borrow``,
  ``withdrawCollateral``, ``liquidate``) in that block would use, and what positions' assets are derived from.
"""

from __future__ import annotations

from connectors.types import Address, BlockRef, Frozen

__all__ = ["MorphoAccount", "MorphoMarket", "MorphoPosition", "MorphoSnapshot"]


class MorphoMarket(Frozen):
    """One watched market at the snapshot's block."""

    market_id: str
    """``keccak256(abi.encode(marketParams))``, ``0x`` + 64 lower-case hex digits."""
    loan_token: Address
    loan_symbol: str
    """Empty when the token has no ``symbol()``."""
    loan_decimals: int | None
    """None when the token has no ``decimals()`` (Morpho itself never asks)."""
    collateral_token: Address
    collateral_symbol: str
    collateral_decimals: int | None
    oracle: Address
    irm: Address
    """The zero address for a market without interest."""
    lltv_wad: int
    total_supply_assets_raw: int
    total_supply_shares: int
    total_borrow_assets_raw: int
    total_borrow_shares: int
    last_update: int
    """Unix seconds of the market's last accrual (``Market.lastUpdate``)."""
    fee_wad: int
    price_raw: int
    """``IOracle.price()``: loan raw units per collateral raw unit × 1e36 (36 + loan − collateral decimals)."""
    borrow_rate_wad: int | None
    """``IIrm.borrowRateView(marketParams, market)`` per second (WAD) at the block; None without an IRM."""
    accrued_to: int
    """The timestamp the ``accrued_*`` totals are accrued to: the block's."""
    accrued_total_supply_assets_raw: int
    accrued_total_supply_shares: int
    """Grows by the fee shares minted to the fee recipient."""
    accrued_total_borrow_assets_raw: int
    accrued_total_borrow_shares: int
    """Accrual does not mint borrow shares: equal to ``total_borrow_shares``."""
    pending_interest_raw: int
    """Interest ``_accrueInterest`` would add at ``accrued_to``."""

    @property
    def price(self) -> float | None:
        """Loan tokens per collateral token, when both decimals are known."""
        if self.loan_decimals is None or self.collateral_decimals is None:
            return None
        scale: int = 10 ** (36 + self.loan_decimals - self.collateral_decimals)
        return self.price_raw / scale

    @property
    def utilization_wad(self) -> int:
        """``accrued borrow × 1e18 / accrued supply`` (rounded down), 0 for an empty market."""
        supply = self.accrued_total_supply_assets_raw
        return self.accrued_total_borrow_assets_raw * 10**18 // supply if supply else 0


class MorphoPosition(Frozen):
    """A wallet's position in one market; every watched market appears, zeros for an untouched one."""

    market_id: str
    supply_shares: int
    borrow_shares: int
    collateral_raw: int
    """Collateral tokens, raw units (not interest-bearing)."""
    supply_assets_raw: int
    """``toAssetsDown(supplyShares)`` on the accrued totals: what ``withdraw`` of every share would pay."""
    borrow_assets_raw: int
    """``toAssetsUp(borrowShares)`` on the accrued totals: the debt ``_isHealthy`` counts."""

    @property
    def is_empty(self) -> bool:
        return not (self.supply_shares or self.borrow_shares or self.collateral_raw)


class MorphoAccount(Frozen):
    """One wallet's positions, one per watched market in the deployment's order."""

    wallet: Address
    positions: tuple[MorphoPosition, ...]

    @property
    def open_positions(self) -> tuple[MorphoPosition, ...]:
        """The positions holding anything (supply, debt or collateral)."""
        return tuple(p for p in self.positions if not p.is_empty)


class MorphoSnapshot(Frozen):
    """Everything read for a batch of wallets in one block."""

    block: BlockRef
    morpho: Address
    markets: tuple[MorphoMarket, ...]
    accounts: tuple[MorphoAccount, ...]

    def market(self, market_id: str) -> MorphoMarket:
        """The market with ``market_id`` (any hex case); KeyError if not watched."""
        key = market_id.lower()
        for m in self.markets:
            if m.market_id == key:
                return m
        raise KeyError(f"market {market_id} is not in the snapshot")

    def account(self, wallet: str) -> MorphoAccount:
        """The account of ``wallet`` (any hex case); KeyError if not read."""
        key = wallet.lower()
        for a in self.accounts:
            if a.wallet.lower() == key:
                return a
        raise KeyError(f"wallet {wallet} is not in the snapshot")
