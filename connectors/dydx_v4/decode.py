"""Pure decoding of dYdX v4 indexer answers into the connector's models.

Shapes (indexer ``comlink``: ``perpetualMarketToResponseObject``, ``subaccountToResponseObject``,
``perpetualPositionToResponseObject``; docs *Indexer API*)::

    GET /v4/perpetualMarkets
        → {"markets": {TICKER: {ticker, clobPairId, status, oraclePrice, initialMarginFraction,
                                maintenanceMarginFraction, openInterest, openInterestLowerCap?,
                                openInterestUpperCap?, marketType, stepSize, tickSize, …}}}
    GET /v4/addresses/{address}/subaccountNumber/{n}
        → {"subaccount": {address, subaccountNumber, equity, freeCollateral, marginEnabled,
                          updatedAtHeight, latestProcessedBlockHeight,
                          openPerpetualPositions: {MARKET: {market, status, side, size, maxSize, entryPrice,
                                 exitPrice, realizedPnl, unrealizedPnl, netFunding, sumOpen, sumClose,
                                 createdAt, createdAtHeight, closedAt}},
                          assetPositions: {SYMBOL: {symbol, side, size, assetId}}}}
        → HTTP 404 {"errors": [{"msg": "No subaccount found …"}]} for a subaccount it does not know

Position ``size`` is signed (``"-0.407"`` for a SHORT); an unsigned size with ``side: SHORT`` is negated.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from connectors.dydx_v4.models import (
    DydxAssetPosition,
    DydxMarket,
    DydxMarkets,
    DydxPerpPosition,
    DydxSubaccount,
    TimeSource,
)
from connectors.errors import DecodeError
from connectors.http import json_decimal, json_dict, json_int, json_str

__all__ = ["apply_subaccount_update", "decode_perpetual_markets", "decode_subaccount", "empty_subaccount"]


def _side(obj: dict[str, Any], what: str) -> Literal["LONG", "SHORT"]:
    side = json_str(obj, "side", what)
    if side == "LONG":
        return "LONG"
    if side == "SHORT":
        return "SHORT"
    raise DecodeError(f"{what}.side: expected LONG or SHORT, got {side!r}")


def decode_perpetual_markets(raw: Any, observed_at_ms: int, source: TimeSource) -> DydxMarkets:
    """``/v4/perpetualMarkets`` → :class:`DydxMarkets`."""
    if not isinstance(raw, dict):
        raise DecodeError(f"perpetualMarkets: expected an object, got {type(raw).__name__}")
    markets_raw = json_dict(raw, "markets", "perpetualMarkets")
    out = []
    for key, m in markets_raw.items():
        what = f"markets[{key!r}]"
        if not isinstance(m, dict):
            raise DecodeError(f"{what}: expected an object")
        oracle = json_decimal(m, "oraclePrice", what, None)
        if oracle is None:
            oracle = json_decimal(m, "pnlPrice", what, None)
        imf = json_decimal(m, "initialMarginFraction", what)
        mmf = json_decimal(m, "maintenanceMarginFraction", what)
        if not (0 <= mmf <= imf <= 1):
            raise DecodeError(f"{what}: margin fractions out of order (IMF {imf}, MMF {mmf})")
        ticker = json_str(m, "ticker", what, key)
        if ticker != key:
            raise DecodeError(f"{what}: keyed {key!r} but its ticker is {ticker!r}")
        out.append(
            DydxMarket(
                ticker=ticker,
                clob_pair_id=json_str(m, "clobPairId", what, None),
                status=json_str(m, "status", what, None),
                oracle_price_usd=oracle,
                initial_margin_fraction=imf,
                maintenance_margin_fraction=mmf,
                open_interest=json_decimal(m, "openInterest", what, None),
                open_interest_lower_cap_usd=json_decimal(m, "openInterestLowerCap", what, None),
                open_interest_upper_cap_usd=json_decimal(m, "openInterestUpperCap", what, None),
                market_type=json_str(m, "marketType", what, None),
                step_size=json_decimal(m, "stepSize", what, None),
                tick_size=json_decimal(m, "tickSize", what, None),
                raw=m,
            )
        )
    return DydxMarkets(markets=tuple(out), observed_at_ms=observed_at_ms, observed_at_source=source)


def _position(key: str, p: Any) -> DydxPerpPosition:
    what = f"openPerpetualPositions[{key!r}]"
    if not isinstance(p, dict):
        raise DecodeError(f"{what}: expected an object")
    side = _side(p, what)
    size = json_decimal(p, "size", what)
    if side == "SHORT" and size > 0:
        size = size.copy_negate()  # exact: ``-size`` would round to the context's 28 digits (or overflow)
    elif side == "LONG" and size < 0:
        raise DecodeError(f"{what}: a LONG position of negative size {size}")
    return DydxPerpPosition(
        market=json_str(p, "market", what, key),
        status=json_str(p, "status", what, "OPEN"),
        side=side,
        size=size,
        max_size=json_decimal(p, "maxSize", what, None),
        entry_price_usd=json_decimal(p, "entryPrice", what),
        exit_price_usd=json_decimal(p, "exitPrice", what, None),
        realized_pnl_usd=json_decimal(p, "realizedPnl", what, None),
        unrealized_pnl_usd=json_decimal(p, "unrealizedPnl", what, None),
        net_funding_usd=json_decimal(p, "netFunding", what, None),
        sum_open=json_decimal(p, "sumOpen", what, None),
        sum_close=json_decimal(p, "sumClose", what, None),
        created_at=json_str(p, "createdAt", what, None),
        created_at_height=json_int(p, "createdAtHeight", what, None),
        raw=p,
    )


def _asset(key: str, a: Any) -> DydxAssetPosition:
    what = f"assetPositions[{key!r}]"
    if not isinstance(a, dict):
        raise DecodeError(f"{what}: expected an object")
    size = json_decimal(a, "size", what)
    side = _side(a, what)
    if size < 0:  # tolerate a signed size: the sign must agree with the side
        if side == "LONG":
            raise DecodeError(f"{what}: a LONG asset position of negative size")
        size = size.copy_negate()
    return DydxAssetPosition(
        symbol=json_str(a, "symbol", what, key), side=side, size=size, asset_id=json_str(a, "assetId", what, None)
    )


def decode_subaccount(
    raw: Any, address: str, subaccount_number: int, observed_at_ms: int, source: TimeSource
) -> DydxSubaccount:
    """``{"subaccount": {...}}`` → :class:`DydxSubaccount` (it must be the subaccount asked for)."""
    if not isinstance(raw, dict):
        raise DecodeError(f"subaccount: expected an object, got {type(raw).__name__}")
    s = json_dict(raw, "subaccount", "response")
    what = "subaccount"
    got_address = json_str(s, "address", what)
    got_number = json_int(s, "subaccountNumber", what)
    if (got_address, got_number) != (address, subaccount_number):
        raise DecodeError(f"asked for {address}/{subaccount_number}, the indexer answered {got_address}/{got_number}")
    positions_raw = json_dict(s, "openPerpetualPositions", what, {})
    positions = tuple(
        _position(k, p) for k, p in positions_raw.items() if not (isinstance(p, dict) and p.get("status") == "CLOSED")
    )
    assets = tuple(_asset(k, a) for k, a in json_dict(s, "assetPositions", what, {}).items())
    margin = s.get("marginEnabled")
    return DydxSubaccount(
        address=address,
        subaccount_number=subaccount_number,
        exists=True,
        equity_usd=json_decimal(s, "equity", what),
        free_collateral_usd=json_decimal(s, "freeCollateral", what),
        positions=positions,
        asset_positions=assets,
        margin_enabled=margin if isinstance(margin, bool) else None,
        updated_at_height=json_int(s, "updatedAtHeight", what, None),
        latest_processed_block_height=json_int(s, "latestProcessedBlockHeight", what, None),
        observed_at_ms=observed_at_ms,
        observed_at_source=source,
        raw=raw,
    )


def empty_subaccount(
    address: str, subaccount_number: int, observed_at_ms: int, source: TimeSource, raw: Any = None
) -> DydxSubaccount:
    """A subaccount the indexer does not know: no positions, no collateral."""
    return DydxSubaccount(
        address=address,
        subaccount_number=subaccount_number,
        exists=False,
        equity_usd=Decimal(0),
        free_collateral_usd=Decimal(0),
        positions=(),
        asset_positions=(),
        margin_enabled=None,
        updated_at_height=None,
        latest_processed_block_height=None,
        observed_at_ms=observed_at_ms,
        observed_at_source=source,
        raw=raw if isinstance(raw, dict) else {},
    )


def apply_subaccount_update(
    sub: DydxSubaccount, contents: Any, observed_at_ms: int, source: TimeSource
) -> DydxSubaccount:
    """A ``v4_subaccounts`` ``channel_data`` message's ``contents`` applied to the subaccount as last known.

    ``perpetualPositions``: each entry replaces the position in its market (``status`` ``CLOSED`` / ``LIQUIDATED`` or
    size 0 removes it); ``assetPositions``: each entry replaces the asset position of its symbol (size 0 removes it).
    Other keys (orders, fills, transfers) do not change positions. ``equity`` and ``freeCollateral`` are not in the
    message: they are kept as last read (the recompute revalues them at the block's prices).
    """
    if not isinstance(contents, dict):
        raise DecodeError(f"v4_subaccounts channel_data: expected an object, got {type(contents).__name__}")
    positions = {p.market: p for p in sub.positions}
    for k, entry in enumerate(contents.get("perpetualPositions") or []):
        what = f"perpetualPositions[{k}]"
        if not isinstance(entry, dict):
            raise DecodeError(f"{what}: expected an object")
        market = json_str(entry, "market", what)
        if entry.get("status") in ("CLOSED", "LIQUIDATED") or json_decimal(entry, "size", what) == 0:
            positions.pop(market, None)
            continue
        positions[market] = _position(market, entry)
    assets = {a.symbol: a for a in sub.asset_positions}
    for k, entry in enumerate(contents.get("assetPositions") or []):
        what = f"assetPositions[{k}]"
        if not isinstance(entry, dict):
            raise DecodeError(f"{what}: expected an object")
        symbol = json_str(entry, "symbol", what)
        if json_decimal(entry, "size", what) == 0:
            assets.pop(symbol, None)
            continue
        assets[symbol] = _asset(symbol, entry)
    return sub.model_copy(update={
        "exists": True, "positions": tuple(positions.values()), "asset_positions": tuple(assets.values()),
        "observed_at_ms": observed_at_ms, "observed_at_source": source,
    })
