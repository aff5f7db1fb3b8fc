"""Typed boundary models of the dYdX v4 connector (indexer REST API).

The indexer prints amounts as decimal strings; each one is an exact :class:`~decimal.Decimal` here
(``*_usd`` USD/USDC, prices USD, sizes base units, margin fractions as fractions). Floats appear only in
:meth:`DydxSnapshot.health_inputs`. Raw payloads are kept beside the parsed ones (``raw``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

import numpy as np

from connectors.dydx_v4.address import parse_account
from connectors.errors import InvalidInputError
from connectors.types import Frozen

__all__ = [
    "DydxAssetPosition",
    "DydxMarket",
    "DydxMarkets",
    "DydxPerpPosition",
    "DydxSnapshot",
    "DydxSubaccount",
    "TimeSource",
]

TimeSource = Literal["venue", "http_date", "local_clock"]


class DydxMarket(Frozen):
    """One ``/v4/perpetualMarkets`` entry."""

    ticker: str
    clob_pair_id: str | None
    status: str | None
    oracle_price_usd: Decimal | None
    """``oraclePrice`` (newer indexers: ``pnlPrice``)."""
    initial_margin_fraction: Decimal
    """Base IMF of the market's liquidity tier."""
    maintenance_margin_fraction: Decimal
    """Maintenance margin fraction (= base IMF × the tier's maintenance fraction)."""
    open_interest: Decimal | None
    """Open interest, base units."""
    open_interest_lower_cap_usd: Decimal | None
    open_interest_upper_cap_usd: Decimal | None
    """The liquidity tier's open-interest caps (0/None: no scaling of the IMF)."""
    market_type: str | None
    step_size: Decimal | None
    tick_size: Decimal | None
    raw: dict[str, Any]


class DydxMarkets(Frozen):
    """Every perpetual market, read at ``observed_at_ms``."""

    markets: tuple[DydxMarket, ...]
    observed_at_ms: int
    observed_at_source: TimeSource

    def market(self, ticker: str) -> DydxMarket | None:
        for m in self.markets:
            if m.ticker == ticker:
                return m
        return None


class DydxPerpPosition(Frozen):
    """One ``openPerpetualPositions`` entry."""

    market: str
    status: str
    side: Literal["LONG", "SHORT"]
    size: Decimal
    """Signed size, base units (< 0 short)."""
    max_size: Decimal | None
    entry_price_usd: Decimal
    exit_price_usd: Decimal | None
    realized_pnl_usd: Decimal | None
    unrealized_pnl_usd: Decimal | None
    net_funding_usd: Decimal | None
    sum_open: Decimal | None
    sum_close: Decimal | None
    created_at: str | None
    created_at_height: int | None
    raw: dict[str, Any]

    @property
    def implied_oracle_usd(self) -> Decimal | None:
        """The oracle price the indexer valued the position at: ``entry + unrealizedPnl / size``."""
        if self.unrealized_pnl_usd is None or not self.size:
            return None
        return self.entry_price_usd + self.unrealized_pnl_usd / self.size


class DydxAssetPosition(Frozen):
    """One ``assetPositions`` entry (USDC: the subaccount's cash)."""

    symbol: str
    side: Literal["LONG", "SHORT"]
    size: Decimal
    """As reported: non-negative, the sign is in ``side``."""
    asset_id: str | None

    @property
    def signed_size(self) -> Decimal:
        return self.size if self.side == "LONG" else -self.size


class DydxSubaccount(Frozen):
    """One subaccount (``/v4/addresses/{address}/subaccountNumber/{n}``); ``exists`` is False for one the
    indexer does not know (HTTP 404), which reads as empty."""

    address: str
    subaccount_number: int
    exists: bool
    equity_usd: Decimal
    free_collateral_usd: Decimal
    positions: tuple[DydxPerpPosition, ...]
    asset_positions: tuple[DydxAssetPosition, ...]
    margin_enabled: bool | None
    updated_at_height: int | None
    latest_processed_block_height: int | None
    observed_at_ms: int
    observed_at_source: TimeSource
    raw: dict[str, Any]

    @property
    def account_id(self) -> str:
        return f"{self.address}/{self.subaccount_number}"

    @property
    def usdc_usd(self) -> Decimal:
        """Signed USDC balance (the indexer's, after unsettled funding)."""
        return sum((a.signed_size for a in self.asset_positions if a.symbol == "USDC"), Decimal(0))


class DydxSnapshot(Frozen):
    """Markets and many subaccounts, read together; ``observed_at_ms`` is the oldest of their times."""

    venue: Literal["dydx_v4"] = "dydx_v4"
    markets: DydxMarkets
    accounts: tuple[DydxSubaccount, ...]
    observed_at_ms: int
    observed_at_source: TimeSource

    def account(self, account: str, default_subaccount: int = 0) -> DydxSubaccount:
        address, n = parse_account(account, default_subaccount)
        for acct in self.accounts:
            if acct.address == address and acct.subaccount_number == n:
                return acct
        raise InvalidInputError(f"subaccount {address}/{n} is not in this snapshot")

    def health_inputs(self, account: str | DydxSubaccount, *,
                      price: Literal["implied", "market"] = "implied") -> dict[str, Any]:
        """The keyword arguments of ``riskcore.venues.dydx_v4.health.DydxFigures`` for ``account`` (its id, or one
        of the snapshot's subaccounts: no search, for a loop over every subaccount).

        ``price="implied"`` values each position at the oracle price the indexer used for this very answer
        (recovered from its ``unrealizedPnl``), so the check against the indexer's equity is exact;
        ``"market"`` uses ``/perpetualMarkets``' ``oraclePrice`` (read in another request, maybe later).
        Decimals become floats here (and only here).
        """
        acct = account if isinstance(account, DydxSubaccount) else self.account(account)
        prices: list[float] = []
        imf: list[float] = []
        mmf: list[float] = []
        oi_notional: list[float] = []
        lo: list[float] = []
        hi: list[float] = []
        for p in acct.positions:
            m = self.markets.market(p.market)
            if m is None:
                raise InvalidInputError(f"{acct.account_id}: position in {p.market}, which is not among the markets")
            px = p.implied_oracle_usd if price == "implied" else None
            if px is None:
                px = m.oracle_price_usd
            if px is None:
                raise InvalidInputError(f"{p.market}: no oracle price")
            prices.append(float(px))
            imf.append(float(m.initial_margin_fraction))
            mmf.append(float(m.maintenance_margin_fraction))
            oi_notional.append(float((m.open_interest or 0) * (m.oracle_price_usd or px)))
            lo.append(float(m.open_interest_lower_cap_usd or 0))
            hi.append(float(m.open_interest_upper_cap_usd or 0))
        return {
            "account": acct.account_id,
            "market": tuple(p.market for p in acct.positions),
            "size": np.array([float(p.size) for p in acct.positions], dtype=np.float64),
            "oracle_usd": np.array(prices, dtype=np.float64),
            "initial_margin_fraction": np.array(imf, dtype=np.float64),
            "maintenance_margin_fraction": np.array(mmf, dtype=np.float64),
            "usdc_usd": float(acct.usdc_usd),
            "reported_equity_usd": float(acct.equity_usd),
            "reported_free_collateral_usd": float(acct.free_collateral_usd),
            "open_notional_usd": np.array(oi_notional, dtype=np.float64),
            "oi_lower_cap_usd": np.array(lo, dtype=np.float64),
            "oi_upper_cap_usd": np.array(hi, dtype=np.float64),
        }
