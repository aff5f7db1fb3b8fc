"""Hyperliquid on the devnet: its part of the local venue API (:data:`PART`), the info endpoint for the accounts
seeded into it::

    POST /info  {"type": "metaAndAssetCtxs"}                       markets and margin tables
    POST /info  {"type": "clearinghouseState", "user": "0x…"}      an account (unknown: zeros)
    POST /info  {"type": "allMids"}                                 mid prices by coin

and its WebSocket (``/ws``, docs *WebSocket → Subscriptions*): ``{"method": "subscribe", "subscription": {"type":
"clearinghouseState" | "webData2", "user": "0x…"}}`` answered ``{"channel": "subscriptionResponse", "data": …}``, then
``{"channel": "clearinghouseState", "data": {"dex": "", "user", "clearinghouseState": {…}}}`` (``webData2``:
``{"channel": "webData2", "data": {"clearinghouseState": {…}, "user", "serverTime", …}}``) whenever the account's state
changes; at most 10 distinct users across user subscriptions (docs *Rate limits*: per IP), beyond which
``{"channel": "error"}``.

Every reported figure is computed here from the positions and the current marks with the venue's documented rules
(docs *Margining*, *Margin tiers*, *Liquidations*), written independently of ``riskcore`` (this module must not
import it): maintenance = notional × mmr − deduction of the notional's tier, mmr = 1 / (2 × tier max leverage);
cross ``marginUsed`` = notional / leverage, isolated ``marginUsed`` = rawUsd + szi × mark; ``liquidationPx = mark −
side × margin_available / |szi| / (1 − mmr × side)`` with ``margin_available`` = account value − maintenance (the
cross account's, or the isolated position's); null when not positive. USD amounts are printed with 6 decimals,
prices with 8.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from devnet.models import DevnetInfo
from devnet.parts import ApiPart, PerpPosition, VenueApi, dec
from devnet.wallets import wallet_address

__all__ = ["PART", "HyperliquidApi"]

_USD = Decimal("0.000001")
_PX = Decimal("0.00000001")
_HEX_USER = re.compile(r"^0x[0-9a-fA-F]{40}$")
_UNPARSABLE = "Failed to deserialize the JSON body into the target type"

# Margin tables as Hyperliquid's meta publishes them (docs, Margin tiers: mainnet BTC 40× to 150M, 20× above).
_MARGIN_TABLES: dict[int, list[tuple[Decimal, int]]] = {
    50: [(Decimal(0), 50)],
    56: [(Decimal(0), 40), (Decimal(150_000_000), 20)],
}


def _fmt(value: Decimal, quantum: Decimal | None = None) -> str:
    """Hyperliquid-style decimal text: rounded to ``quantum``, trailing zeros dropped, at least ``x.0``."""
    q = value.quantize(quantum, rounding=ROUND_HALF_EVEN) if quantum is not None else value
    text = format(q, "f")
    if "." in text:
        text = text.rstrip("0")
        if text.endswith("."):
            text += "0"
    else:
        text += ".0"
    return "0.0" if text in ("-0.0",) else text


@dataclass
class _Asset:
    name: str
    sz_decimals: int
    max_leverage: int
    margin_table_id: int
    mark: Decimal
    oracle: Decimal
    open_interest: Decimal = Decimal(0)


@dataclass
class _Account:
    deposit_usd: Decimal
    positions: list[PerpPosition] = field(default_factory=list)


class HyperliquidApi:
    """Hyperliquid's markets and accounts in the local venue API (a :class:`devnet.parts.VenueApi`)."""

    def __init__(self) -> None:
        self.assets: dict[str, _Asset] = {
            "BTC": _Asset("BTC", 5, 40, 56, Decimal(60000), Decimal(60000)),
            "ETH": _Asset("ETH", 4, 25, 25, Decimal(4000), Decimal(4000)),
            "SOL": _Asset("SOL", 2, 20, 20, Decimal(150), Decimal(150)),
        }
        self.accounts: dict[str, _Account] = {}

    def add_account(self, account: str, usdc: Decimal, positions: Sequence[PerpPosition]) -> None:
        """Seed (or replace) the account of user ``account`` (a ``0x…`` address)."""
        if not _HEX_USER.fullmatch(account):
            raise ValueError(f"not a Hyperliquid user address: {account!r}")
        for p in positions:
            if p.symbol not in self.assets:
                raise ValueError(f"no Hyperliquid asset {p.symbol!r}")
        old = self.accounts.get(account.lower())
        self.accounts[account.lower()] = _Account(usdc, list(positions))
        # Open interest: the replaced account's sizes out, the new ones in (exact decimals: equal to the sum over
        # every account, at a cost independent of how many there are).
        for p in old.positions if old is not None else ():
            self.assets[p.symbol].open_interest -= abs(dec(p.size))
        for p in positions:
            self.assets[p.symbol].open_interest += abs(dec(p.size))

    def set_mark(self, coin: str, price: Decimal) -> bool:
        """Move ``coin``'s mark and oracle prices."""
        if coin not in self.assets:
            return False
        self.assets[coin].mark = price
        self.assets[coin].oracle = price
        return True

    def marks(self) -> dict[str, Decimal]:
        """Each asset's mark price, by coin."""
        return {name: asset.mark for name, asset in self.assets.items()}

    def route(self, method: str, route: str, body: bytes) -> tuple[int, Any] | None:
        """``POST /info``."""
        if method != "POST" or route != "/info":
            return None
        try:
            req = json.loads(body or b"null")
        except ValueError:
            return 400, "Failed to parse the request body as JSON"
        kind = req.get("type") if isinstance(req, dict) else None
        if kind == "metaAndAssetCtxs":
            return 200, self.meta_and_asset_ctxs()
        if kind == "allMids":
            return 200, {a.name: _fmt(a.mark) for a in self.assets.values()}
        if kind == "clearinghouseState":
            user = req.get("user")
            if not isinstance(user, str) or not _HEX_USER.fullmatch(user):
                return 422, _UNPARSABLE
            return 200, self.clearinghouse_state(user)
        return 422, _UNPARSABLE

    # --- WebSocket (devnet.parts.StreamingVenueApi) ---------------------------------------------------------------
    ws_path = "/ws"
    ws_max_accounts: int | None = 10

    def ws_open(self, conn: dict[str, Any]) -> list[Any]:
        return []

    def ws_error(self, conn: dict[str, Any], text: str) -> Any:
        return {"channel": "error", "data": text}

    def ws_request(self, conn: dict[str, Any], message: Any) -> tuple[list[Any], list[tuple[str, str]]]:
        """``subscribe`` to ``clearinghouseState`` / ``webData2`` of a user; ``{"method": "ping"}`` → pong."""
        if isinstance(message, dict) and message.get("method") == "ping":
            return [{"channel": "pong"}], []
        sub = message.get("subscription") if isinstance(message, dict) else None
        if not (isinstance(message, dict) and message.get("method") == "subscribe" and isinstance(sub, dict)):
            return [self.ws_error(conn, f"Invalid subscription {json.dumps(message)[:100]}")], []
        kind, user = sub.get("type"), sub.get("user")
        if kind not in ("clearinghouseState", "webData2") or not isinstance(user, str) or not _HEX_USER.fullmatch(user):
            return [self.ws_error(conn, f"Invalid subscription {json.dumps(message)[:100]}")], []
        reply = {"channel": "subscriptionResponse", "data": {"method": "subscribe", "subscription": sub}}
        return [reply], [(str(kind), user.lower())]

    def ws_push(self, conn: dict[str, Any], key: tuple[str, str], previous: Any) -> tuple[Any, Any | None]:
        """The user's ``clearinghouseState`` when it differs from the last one pushed (its ``time`` aside)."""
        kind, user = key
        state = self.clearinghouse_state(user)
        fingerprint = json.dumps({k: v for k, v in state.items() if k != "time"}, sort_keys=True)
        if fingerprint == previous:
            return fingerprint, None
        if kind == "webData2":
            data: dict[str, Any] = {"clearinghouseState": state, "user": user, "serverTime": state["time"],
                                    "leadingVaults": [], "openOrders": [], "agentAddress": None}
            return fingerprint, {"channel": "webData2", "data": data}
        return fingerprint, {"channel": "clearinghouseState",
                             "data": {"dex": "", "user": user, "clearinghouseState": state}}

    def _tiers(self, asset: _Asset) -> list[tuple[Decimal, int]]:
        table = asset.margin_table_id
        if table in _MARGIN_TABLES:
            return _MARGIN_TABLES[table]
        return [(Decimal(0), table if table < 50 else asset.max_leverage)]

    def _maintenance(self, asset: _Asset, notional: Decimal) -> tuple[Decimal, Decimal]:
        """(maintenance margin, rate) of a notional, per the tier table."""
        tiers = self._tiers(asset)
        deduction = current_deduction = Decimal(0)
        prev_rate = Decimal(1) / (2 * tiers[0][1])
        rate = prev_rate
        for i, (lower, lev) in enumerate(tiers):
            tier_rate = Decimal(1) / (2 * lev)
            if i > 0:
                deduction += lower * (tier_rate - prev_rate)
            prev_rate = tier_rate
            if notional >= lower:
                rate = tier_rate
                current_deduction = deduction
        return notional * rate - current_deduction, rate

    def meta_and_asset_ctxs(self) -> list[Any]:
        """``metaAndAssetCtxs``: ``[{"universe", "marginTables"}, [ctx…]]``."""
        universe = []
        ctxs = []
        for a in self.assets.values():
            universe.append(
                {
                    "name": a.name,
                    "szDecimals": a.sz_decimals,
                    "maxLeverage": a.max_leverage,
                    "marginTableId": a.margin_table_id,
                }
            )
            ctxs.append(
                {
                    "dayNtlVlm": "0.0",
                    "funding": "0.0000125",
                    "impactPxs": [_fmt(a.mark), _fmt(a.mark)],
                    "markPx": _fmt(a.mark),
                    "midPx": _fmt(a.mark),
                    "openInterest": _fmt(a.open_interest),
                    "oraclePx": _fmt(a.oracle),
                    "premium": "0.0",
                    "prevDayPx": _fmt(a.mark),
                }
            )
        tables = [
            [tid, {"description": "", "marginTiers": [{"lowerBound": _fmt(lo), "maxLeverage": v} for lo, v in t]}]
            for tid, t in _MARGIN_TABLES.items()
        ]
        return [{"universe": universe, "marginTables": tables}, ctxs]

    def clearinghouse_state(self, user: str) -> dict[str, Any]:
        """``clearinghouseState`` of ``user`` (an unknown user: zeros and no positions, as the venue answers)."""
        acct = self.accounts.get(user.lower(), _Account(Decimal(0)))
        rows = []
        cross_raw = acct.deposit_usd
        for p in acct.positions:
            if p.margin == "cross":
                cross_raw -= dec(p.size) * dec(p.entry_px)
        cross_value = cross_raw
        cross_ntl = cross_used = cross_mm = Decimal(0)
        iso_raw_total = iso_used_total = iso_ntl = Decimal(0)
        # First pass: the cross account's totals (a cross position's liquidation price needs them all).
        for p in acct.positions:
            asset = self.assets[p.symbol]
            szi = dec(p.size)
            ntl = abs(szi) * asset.mark
            if p.margin == "cross":
                cross_value += szi * asset.mark
                cross_ntl += ntl
                cross_used += ntl / p.leverage
                cross_mm += self._maintenance(asset, ntl)[0]
        for p in acct.positions:
            asset = self.assets[p.symbol]
            szi, entry = dec(p.size), dec(p.entry_px)
            mark = asset.mark
            ntl = abs(szi) * mark
            upnl = szi * (mark - entry)
            mm, rate = self._maintenance(asset, ntl)
            side = 1 if szi > 0 else -1
            leverage: dict[str, Any] = {"type": p.margin, "value": p.leverage}
            if p.margin == "cross":
                used = ntl / p.leverage
                available = cross_value - cross_mm
            else:
                raw = dec(p.isolated_margin_usd) - szi * entry
                leverage["rawUsd"] = _fmt(raw, _USD)
                used = raw + szi * mark
                available = used - mm
                iso_raw_total += raw
                iso_used_total += used
                iso_ntl += ntl
            liq = mark - side * available / abs(szi) / (1 - rate * side)
            rows.append(
                {
                    "type": "oneWay",
                    "position": {
                        "coin": p.symbol,
                        "cumFunding": {"allTime": "0.0", "sinceChange": "0.0", "sinceOpen": "0.0"},
                        "entryPx": _fmt(entry),
                        "leverage": leverage,
                        "liquidationPx": _fmt(liq, _PX) if liq > 0 else None,
                        "marginUsed": _fmt(used, _USD),
                        "maxLeverage": asset.max_leverage,
                        "positionValue": _fmt(ntl, _USD),
                        "returnOnEquity": _fmt(upnl / (abs(szi) * entry / p.leverage), _PX),
                        "szi": _fmt(szi),
                        "unrealizedPnl": _fmt(upnl, _USD),
                    },
                }
            )
        withdrawable = max(Decimal(0), cross_value - max(cross_used, cross_ntl / 10))
        return {
            "assetPositions": rows,
            "crossMaintenanceMarginUsed": _fmt(cross_mm, _USD),
            "crossMarginSummary": {
                "accountValue": _fmt(cross_value, _USD),
                "totalMarginUsed": _fmt(cross_used, _USD),
                "totalNtlPos": _fmt(cross_ntl, _USD),
                "totalRawUsd": _fmt(cross_raw, _USD),
            },
            "marginSummary": {
                "accountValue": _fmt(cross_value + iso_used_total, _USD),
                "totalMarginUsed": _fmt(cross_used + iso_used_total, _USD),
                "totalNtlPos": _fmt(cross_ntl + iso_ntl, _USD),
                "totalRawUsd": _fmt(cross_raw + iso_raw_total, _USD),
            },
            "time": int(time.time() * 1000),
            "withdrawable": _fmt(withdrawable, _USD),
        }


def _seed(api: VenueApi) -> None:
    """The hedged wallet's short ETH, and an isolated-margin account."""
    api.add_account(wallet_address("hedged"), Decimal(10_000), [PerpPosition("ETH", -15, 4000, leverage=10)])
    api.add_account(
        wallet_address("perp_isolated"),
        Decimal(5_000),
        [
            PerpPosition("BTC", "0.5", 60000, leverage=20, margin="isolated", isolated_margin_usd=1_500),
            PerpPosition("SOL", 40, 150, leverage=5),
        ],
    )


def _tables(info: DevnetInfo, chain: str) -> list[dict[str, object]]:
    url = info.services.get("perp_api")
    if url is None:
        return []
    return [{"name": "hyperliquid", "type": "hyperliquid", "chain": chain, "base_url": url}]


PART = ApiPart(
    venue="hyperliquid",
    title="Hyperliquid",
    module=__name__,
    names=("hyperliquid",),
    new=HyperliquidApi,
    seed=_seed,
    venue_tables=_tables,
)
"""Hyperliquid's part of the devnet: the info endpoint of the local venue API, its table."""
