"""Pure decoding of Hyperliquid info-API answers into the connector's models.

Shapes (Hyperliquid docs, *Info endpoint → Perpetuals*)::

    {"type": "metaAndAssetCtxs"} → [ {"universe": [{name, szDecimals, maxLeverage, marginTableId?,
                                                    onlyIsolated?, isDelisted?, marginMode?}, …],
                                      "marginTables": [[id, {"description", "marginTiers":
                                                        [{"lowerBound", "maxLeverage"}, …]}], …]},
                                     [{markPx, oraclePx, midPx, funding, openInterest, …}, …] ]   (index-aligned)
    {"type": "clearinghouseState", "user": ADDR}
        → {marginSummary, crossMarginSummary: {accountValue, totalNtlPos, totalRawUsd, totalMarginUsed},
           crossMaintenanceMarginUsed, withdrawable, time,
           assetPositions: [{"type": "oneWay", "position": {coin, szi, entryPx, positionValue,
              unrealizedPnl, returnOnEquity, leverage: {type, value, rawUsd?}, liquidationPx (nullable),
              marginUsed, maxLeverage, cumFunding: {allTime, sinceOpen, sinceChange}}}]}

Margin tables: "For IDs less than 50, there is a single tier with max leverage equal to the ID" (docs,
*Margin tiers*). A wallet the venue has never seen comes back as zeros and no positions.
"""

from __future__ import annotations

from decimal import Decimal
from itertools import pairwise
from typing import Any

from connectors.errors import DecodeError
from connectors.http import json_decimal, json_dict, json_int, json_list, json_str
from connectors.hyperliquid.models import (
    HyperliquidAccount,
    HyperliquidAsset,
    HyperliquidCumFunding,
    HyperliquidLeverage,
    HyperliquidMarginSummary,
    HyperliquidMarginTier,
    HyperliquidMarket,
    HyperliquidPosition,
    TimeSource,
)
from connectors.types import checksum

__all__ = [
    "EMPTY_CLEARINGHOUSE_STATE",
    "decode_clearinghouse_state",
    "decode_margin_tables",
    "decode_meta_and_asset_ctxs",
]

_ZERO_SUMMARY = {"accountValue": "0.0", "totalNtlPos": "0.0", "totalRawUsd": "0.0", "totalMarginUsed": "0.0"}

EMPTY_CLEARINGHOUSE_STATE: dict[str, Any] = {
    "marginSummary": dict(_ZERO_SUMMARY),
    "crossMarginSummary": dict(_ZERO_SUMMARY),
    "crossMaintenanceMarginUsed": "0.0",
    "withdrawable": "0.0",
    "assetPositions": [],
}
"""What the venue answers for a wallet it has never seen (plus its ``time``)."""


def decode_margin_tables(raw: Any) -> dict[int, tuple[HyperliquidMarginTier, ...]]:
    """``meta.marginTables`` (a list of ``[id, {"marginTiers": [...]}]`` pairs) by id, tiers ascending."""
    if not isinstance(raw, list):
        raise DecodeError(f"marginTables: expected an array, got {type(raw).__name__}")
    out: dict[int, tuple[HyperliquidMarginTier, ...]] = {}
    for k, item in enumerate(raw):
        what = f"marginTables[{k}]"
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[1], dict)):
            raise DecodeError(f"{what}: expected [id, table]")
        table_id = json_int({"id": item[0]}, "id", what)
        tiers_raw = json_list(item[1], "marginTiers", what)
        tiers = tuple(
            HyperliquidMarginTier(
                lower_bound_usd=json_decimal(t, "lowerBound", f"{what}.marginTiers[{j}]"),
                max_leverage=json_int(t, "maxLeverage", f"{what}.marginTiers[{j}]"),
            )
            for j, t in enumerate(tiers_raw)
        )
        if not tiers:
            raise DecodeError(f"{what}: a margin table without tiers")
        if any(a.lower_bound_usd >= b.lower_bound_usd for a, b in pairwise(tiers)):
            raise DecodeError(f"{what}: tier lower bounds are not ascending")
        if any(t.max_leverage <= 0 for t in tiers):
            raise DecodeError(f"{what}: a tier with max leverage <= 0")
        out[table_id] = tiers
    return out


def _tiers_for(
    entry: dict[str, Any], what: str, tables: dict[int, tuple[HyperliquidMarginTier, ...]]
) -> tuple[int | None, tuple[HyperliquidMarginTier, ...]]:
    max_leverage = json_int(entry, "maxLeverage", what)
    table_id = json_int(entry, "marginTableId", what, None)
    if table_id is not None and table_id in tables:
        return table_id, tables[table_id]
    if table_id is not None and 0 < table_id < 50:
        return table_id, (HyperliquidMarginTier(lower_bound_usd=Decimal(0), max_leverage=table_id),)
    return table_id, (HyperliquidMarginTier(lower_bound_usd=Decimal(0), max_leverage=max_leverage),)


def decode_meta_and_asset_ctxs(raw: Any, observed_at_ms: int, source: TimeSource) -> HyperliquidMarket:
    """``metaAndAssetCtxs`` → :class:`HyperliquidMarket` (universe and contexts must be index-aligned)."""
    if not (isinstance(raw, list) and len(raw) == 2 and isinstance(raw[0], dict) and isinstance(raw[1], list)):
        raise DecodeError("metaAndAssetCtxs: expected [meta, assetCtxs]")
    meta, ctxs = raw
    universe = json_list(meta, "universe", "meta")
    tables = decode_margin_tables(json_list(meta, "marginTables", "meta", []))
    if len(universe) != len(ctxs):
        raise DecodeError(f"metaAndAssetCtxs: {len(universe)} assets in the universe but {len(ctxs)} contexts")
    assets = []
    for i, (entry, ctx) in enumerate(zip(universe, ctxs, strict=True)):
        what = f"meta.universe[{i}]"
        if not isinstance(entry, dict) or not isinstance(ctx, dict):
            raise DecodeError(f"{what}: expected objects for the asset and its context")
        table_id, tiers = _tiers_for(entry, what, tables)
        cwhat = f"assetCtxs[{i}]"
        assets.append(
            HyperliquidAsset(
                index=i,
                name=json_str(entry, "name", what),
                sz_decimals=json_int(entry, "szDecimals", what),
                max_leverage=json_int(entry, "maxLeverage", what),
                margin_table_id=table_id,
                only_isolated=bool(entry.get("onlyIsolated", False)),
                is_delisted=bool(entry.get("isDelisted", False)),
                margin_tiers=tiers,
                mark_px=json_decimal(ctx, "markPx", cwhat, None),
                oracle_px=json_decimal(ctx, "oraclePx", cwhat, None),
                mid_px=json_decimal(ctx, "midPx", cwhat, None),
                funding=json_decimal(ctx, "funding", cwhat, None),
                open_interest=json_decimal(ctx, "openInterest", cwhat, None),
                raw_meta=entry,
                raw_ctx=ctx,
            )
        )
    return HyperliquidMarket(assets=tuple(assets), observed_at_ms=observed_at_ms, observed_at_source=source)


def _summary(obj: dict[str, Any], key: str) -> HyperliquidMarginSummary:
    s = json_dict(obj, key, "clearinghouseState")
    return HyperliquidMarginSummary(
        account_value_usd=json_decimal(s, "accountValue", key),
        total_ntl_pos_usd=json_decimal(s, "totalNtlPos", key),
        total_raw_usd=json_decimal(s, "totalRawUsd", key),
        total_margin_used_usd=json_decimal(s, "totalMarginUsed", key),
    )


def _position(item: Any, k: int) -> HyperliquidPosition | None:
    what = f"assetPositions[{k}]"
    p = json_dict(item, "position", what) if isinstance(item, dict) else None
    if p is None:
        raise DecodeError(f"{what}: expected an object with a position")
    pwhat = f"{what}.position"
    lev = json_dict(p, "leverage", pwhat)
    lev_type = json_str(lev, "type", f"{pwhat}.leverage")
    if lev_type not in ("cross", "isolated"):
        raise DecodeError(f"{pwhat}.leverage.type: unknown margin mode {lev_type!r}")
    raw_usd = json_decimal(lev, "rawUsd", f"{pwhat}.leverage", None)
    if lev_type == "isolated" and raw_usd is None:
        raise DecodeError(f"{pwhat}.leverage: an isolated position without rawUsd")
    cf = json_dict(p, "cumFunding", pwhat, None)
    szi = json_decimal(p, "szi", pwhat)
    if szi == 0:
        return None  # a closed position some answers still list
    return HyperliquidPosition(
        coin=json_str(p, "coin", pwhat),
        szi=szi,
        entry_px=json_decimal(p, "entryPx", pwhat),
        position_value_usd=json_decimal(p, "positionValue", pwhat),
        unrealized_pnl_usd=json_decimal(p, "unrealizedPnl", pwhat),
        return_on_equity=json_decimal(p, "returnOnEquity", pwhat, None),
        leverage=HyperliquidLeverage(type=lev_type, value=json_int(lev, "value", f"{pwhat}.leverage"), raw_usd=raw_usd),
        liquidation_px=json_decimal(p, "liquidationPx", pwhat, None),
        margin_used_usd=json_decimal(p, "marginUsed", pwhat),
        max_leverage=json_int(p, "maxLeverage", pwhat),
        cum_funding=None
        if cf is None
        else HyperliquidCumFunding(
            all_time_usd=json_decimal(cf, "allTime", f"{pwhat}.cumFunding"),
            since_open_usd=json_decimal(cf, "sinceOpen", f"{pwhat}.cumFunding"),
            since_change_usd=json_decimal(cf, "sinceChange", f"{pwhat}.cumFunding"),
        ),
        raw=p,
    )


def decode_clearinghouse_state(
    raw: Any, wallet: str, *, http_date_ms: int | None = None, local_ms: int | None = None
) -> HyperliquidAccount:
    """``clearinghouseState`` of ``wallet`` → :class:`HyperliquidAccount`.

    The account's time is the payload's ``time`` (ms) when present, else ``http_date_ms``, else ``local_ms``
    (one of them must be given). ``null`` (no state) decodes as an empty account.
    """
    if raw is None:
        raw = dict(EMPTY_CLEARINGHOUSE_STATE)
    if not isinstance(raw, dict):
        raise DecodeError(f"clearinghouseState: expected an object, got {type(raw).__name__}")
    time_ms = json_int(raw, "time", "clearinghouseState", None)
    source: TimeSource
    if time_ms is not None:
        observed, source = time_ms, "venue"
    elif http_date_ms is not None:
        observed, source = http_date_ms, "http_date"
    elif local_ms is not None:
        observed, source = local_ms, "local_clock"
    else:
        raise DecodeError("clearinghouseState: no time in the payload and none given")
    items = json_list(raw, "assetPositions", "clearinghouseState")
    positions = tuple(p for p in (_position(item, k) for k, item in enumerate(items)) if p is not None)
    return HyperliquidAccount(
        wallet=checksum(wallet),
        margin_summary=_summary(raw, "marginSummary"),
        cross_margin_summary=_summary(raw, "crossMarginSummary"),
        cross_maintenance_margin_used_usd=json_decimal(raw, "crossMaintenanceMarginUsed", "clearinghouseState"),
        withdrawable_usd=json_decimal(raw, "withdrawable", "clearinghouseState"),
        positions=positions,
        time_ms=time_ms,
        observed_at_ms=observed,
        observed_at_source=source,
        raw=raw,
    )
