"""dYdX v4 on the devnet: its part of the local venue API (:data:`PART`), the indexer's routes for the subaccounts
seeded into it::

    GET  /v4/perpetualMarkets                                      markets
    GET  /v4/addresses/{dydx1…}/subaccountNumber/{n}               a subaccount (unknown: HTTP 404)

and its WebSocket (``/v4/ws``, indexer ``socks``): on connect ``{"type": "connected", "connection_id", "message_id":
0}``; ``{"type": "subscribe", "channel": "v4_subaccounts", "id": "dydx1…/N"}`` answered ``{"type": "subscribed", …,
"contents": {"subaccount": {…the REST subaccount…}, "orders": []}}``, then ``{"type": "channel_data", "channel":
"v4_subaccounts", "id", "version", "contents": {"perpetualPositions": [...], "assetPositions": [...]}}`` when a
position or the USDC balance changes (a closed position: ``status: CLOSED``, size 0; oracle moves alone push nothing,
as on the indexer, whose ``v4_markets`` carries prices).

Every reported figure is computed here from the positions and the current oracle prices with the indexer's
``calculateEquityAndFreeCollateral``, written independently of ``riskcore`` (this module must not import it):
equity = USDC + Σ size × oracle; free collateral = equity − Σ |size × oracle| × IMF; ``unrealizedPnl`` = size ×
(oracle − entry). Exact decimals.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import unquote

from connectors.dydx_v4.address import bech32_encode, validate_address
from connectors.errors import InvalidAddressError
from devnet.models import DevnetInfo
from devnet.parts import ApiPart, PerpPosition, VenueApi, dec
from devnet.wallets import wallet_address

__all__ = ["PART", "DydxApi", "dydx_address"]

_SUBACCOUNT_ROUTE = re.compile(r"^/v4/addresses/([^/]+)/subaccountNumber/([^/]+)$")
_MARKETS_ROUTE = "/v4/perpetualMarkets"


def dydx_address(label: str) -> str:
    """The devnet's dYdX account for seed label ``label``: the same 20 bytes as
    :func:`devnet.wallets.wallet_address`, bech32-encoded under ``dydx``."""
    return bech32_encode(bytes.fromhex(wallet_address(label)[2:]))


def _fixed(value: Decimal) -> str:
    """big.js ``toFixed()``: plain notation, no trailing zeros."""
    return format(value.normalize(), "f") if value != 0 else "0"


@dataclass
class _Market:
    ticker: str
    clob_pair_id: int
    oracle: Decimal
    imf: Decimal
    mmf: Decimal
    open_interest: Decimal = Decimal(0)
    lower_cap: Decimal = Decimal(0)
    upper_cap: Decimal = Decimal(0)


@dataclass
class _Account:
    deposit_usd: Decimal
    positions: list[PerpPosition] = field(default_factory=list)


class DydxApi:
    """dYdX v4's markets and subaccounts in the local venue API (a :class:`devnet.parts.VenueApi`)."""

    def __init__(self) -> None:
        self.markets: dict[str, _Market] = {
            "BTC-USD": _Market("BTC-USD", 0, Decimal(60000), Decimal("0.05"), Decimal("0.03")),
            "ETH-USD": _Market("ETH-USD", 1, Decimal(4000), Decimal("0.05"), Decimal("0.03")),
        }
        self.subaccounts: dict[tuple[str, int], _Account] = {}

    def add_account(self, account: str, usdc: Decimal, positions: Sequence[PerpPosition]) -> None:
        """Seed (or replace) subaccount ``account`` (``dydx1…`` or ``dydx1…/N``, number 0 by default)."""
        address, _, number = account.partition("/")
        validate_address(address)
        for p in positions:
            if f"{p.symbol}-USD" not in self.markets:
                raise ValueError(f"no dYdX market {p.symbol}-USD")
        key = (address, int(number or 0))
        old = self.subaccounts.get(key)
        self.subaccounts[key] = _Account(usdc, list(positions))
        # Open interest: the replaced subaccount's sizes out, the new ones in (exact decimals: equal to the sum over
        # every subaccount, at a cost independent of how many there are).
        for p in old.positions if old is not None else ():
            self.markets[f"{p.symbol}-USD"].open_interest -= abs(dec(p.size))
        for p in positions:
            self.markets[f"{p.symbol}-USD"].open_interest += abs(dec(p.size))

    def set_mark(self, coin: str, price: Decimal) -> bool:
        """Move the oracle price of ``coin``'s market (``ETH`` → ``ETH-USD``)."""
        market = self.markets.get(f"{coin}-USD")
        if market is None:
            return False
        market.oracle = price
        return True

    def marks(self) -> dict[str, Decimal]:
        """Each market's oracle price, by coin (``ETH-USD`` → ``ETH``)."""
        return {ticker.removesuffix("-USD"): market.oracle for ticker, market in self.markets.items()}

    def route(self, method: str, route: str, body: bytes) -> tuple[int, Any] | None:
        """``GET /v4/perpetualMarkets`` and ``GET /v4/addresses/{address}/subaccountNumber/{n}``."""
        if method == "GET" and route == _MARKETS_ROUTE:
            return 200, self.perpetual_markets()
        match = _SUBACCOUNT_ROUTE.fullmatch(route)
        if method != "GET" or not match:
            return None
        address, number = unquote(match.group(1)), match.group(2)
        try:
            validate_address(address)
        except InvalidAddressError:
            return 400, {
                "errors": [
                    {
                        "value": address,
                        "msg": "address must be a valid dydx address",
                        "param": "address",
                        "location": "params",
                    }
                ]
            }
        if not number.isdigit():
            return 400, {
                "errors": [
                    {
                        "value": number,
                        "msg": "subaccountNumber must be a non-negative integer",
                        "param": "subaccountNumber",
                        "location": "params",
                    }
                ]
            }
        answer = self.subaccount(address, int(number))
        if answer is None:
            msg = f"No subaccount found with address {address} and subaccountNumber {number}"
            return 404, {"errors": [{"msg": msg}]}
        return 200, answer

    # --- WebSocket (devnet.parts.StreamingVenueApi) ---------------------------------------------------------------
    ws_path = "/v4/ws"
    ws_max_accounts: int | None = None

    def _envelope(self, conn: dict[str, Any], kind: str) -> dict[str, Any]:
        conn["message_id"] = conn.get("message_id", -1) + 1
        return {"type": kind, "connection_id": conn["connection_id"], "message_id": conn["message_id"]}

    def ws_open(self, conn: dict[str, Any]) -> list[Any]:
        conn["connection_id"] = str(uuid.uuid4())
        return [self._envelope(conn, "connected")]

    def ws_error(self, conn: dict[str, Any], text: str) -> Any:
        return {**self._envelope(conn, "error"), "message": text}

    def ws_request(self, conn: dict[str, Any], message: Any) -> tuple[list[Any], list[tuple[str, str]]]:
        """``subscribe`` to ``v4_subaccounts`` of ``dydx1…/N``."""
        if not (isinstance(message, dict) and message.get("type") == "subscribe"
                and message.get("channel") == "v4_subaccounts" and isinstance(message.get("id"), str)):
            return [self.ws_error(conn, f"Invalid subscribe message: {json.dumps(message)[:100]}")], []
        sub_id = str(message["id"])
        address, _, number = sub_id.partition("/")
        answer = self.subaccount(address, int(number)) if number.isdigit() else None
        if answer is None:
            text = f"Internal error, could not fetch data for subscription: v4_subaccounts, id: {sub_id}"
            return [self.ws_error(conn, text)], []
        reply = {**self._envelope(conn, "subscribed"), "channel": "v4_subaccounts", "id": sub_id,
                 "contents": {"subaccount": answer["subaccount"], "orders": []}}
        return [reply], [("v4_subaccounts", sub_id)]

    def ws_push(self, conn: dict[str, Any], key: tuple[str, str], previous: Any) -> tuple[Any, Any | None]:
        """``channel_data`` with the positions and USDC balance that changed since the last push."""
        sub_id = key[1]
        address, _, number = sub_id.partition("/")
        answer = self.subaccount(address, int(number))
        sub = answer["subaccount"] if answer is not None else {"openPerpetualPositions": {}, "assetPositions": {}}
        fingerprint: dict[str, dict[str, Any]] = {
            "perp": {m: (p["size"], p["entryPrice"], p["side"]) for m, p in sub["openPerpetualPositions"].items()},
            "asset": {a: (p["size"], p["side"]) for a, p in sub["assetPositions"].items()},
        }
        if previous is None or fingerprint == previous:
            return fingerprint, None  # the subscribed message carried the state
        perps = []
        for market, p in sub["openPerpetualPositions"].items():
            if fingerprint["perp"][market] != previous["perp"].get(market):
                perps.append({**{k: v for k, v in p.items() if k != "createdAt"}, "address": address,
                              "subaccountNumber": int(number), "positionId": f"{address}/{number}/{market}"})
        for market in previous["perp"].keys() - fingerprint["perp"].keys():
            perps.append({"address": address, "subaccountNumber": int(number), "market": market, "status": "CLOSED",
                          "side": previous["perp"][market][2], "size": "0", "entryPrice": previous["perp"][market][1],
                          "positionId": f"{address}/{number}/{market}"})
        assets = [{**p, "address": address, "positionId": f"{address}/{number}/{sym}"}
                  for sym, p in sub["assetPositions"].items()
                  if fingerprint["asset"][sym] != previous["asset"].get(sym)]
        assets += [{"address": address, "subaccountNumber": int(number), "symbol": sym, "side": "LONG", "size": "0",
                    "assetId": "0"} for sym in previous["asset"].keys() - fingerprint["asset"].keys()]
        contents: dict[str, Any] = {}
        if perps:
            contents["perpetualPositions"] = perps
        if assets:
            contents["assetPositions"] = assets
        message = {**self._envelope(conn, "channel_data"), "channel": "v4_subaccounts", "id": sub_id,
                   "version": "3.0.0", "contents": contents}
        return fingerprint, message

    def perpetual_markets(self) -> dict[str, Any]:
        """``/v4/perpetualMarkets``."""
        return {
            "markets": {
                m.ticker: {
                    "clobPairId": str(m.clob_pair_id),
                    "ticker": m.ticker,
                    "status": "ACTIVE",
                    "oraclePrice": _fixed(m.oracle),
                    "priceChange24H": "0",
                    "volume24H": "0",
                    "trades24H": 0,
                    "nextFundingRate": "0",
                    "initialMarginFraction": _fixed(m.imf),
                    "maintenanceMarginFraction": _fixed(m.mmf),
                    "openInterest": _fixed(m.open_interest),
                    "atomicResolution": -9,
                    "quantumConversionExponent": -9,
                    "tickSize": "0.1",
                    "stepSize": "0.001",
                    "stepBaseQuantums": 1000000,
                    "subticksPerTick": 100000,
                    "marketType": "CROSS",
                    "openInterestLowerCap": _fixed(m.lower_cap),
                    "openInterestUpperCap": _fixed(m.upper_cap),
                    "baseOpenInterest": _fixed(m.open_interest),
                    "defaultFundingRate1H": "0",
                }
                for m in self.markets.values()
            }
        }

    def subaccount(self, address: str, number: int) -> dict[str, Any] | None:
        """``/v4/addresses/{address}/subaccountNumber/{number}`` (None: unknown, HTTP 404)."""
        acct = self.subaccounts.get((address, number))
        if acct is None:
            return None
        usdc = acct.deposit_usd
        notional = Decimal(0)
        risk = Decimal(0)
        positions: dict[str, Any] = {}
        for p in acct.positions:
            m = self.markets[f"{p.symbol}-USD"]
            size, entry = dec(p.size), dec(p.entry_px)
            usdc -= size * entry
            signed = size * m.oracle
            notional += signed
            risk += abs(signed) * m.imf
            positions[m.ticker] = {
                "market": m.ticker,
                "status": "OPEN",
                "side": "LONG" if size > 0 else "SHORT",
                "size": _fixed(size),
                "maxSize": _fixed(size),
                "entryPrice": _fixed(entry),
                "exitPrice": None,
                "realizedPnl": "0",
                "unrealizedPnl": _fixed(size * (m.oracle - entry)),
                "createdAt": "2025-01-01T00:00:00.000Z",
                "createdAtHeight": "1",
                "closedAt": None,
                "sumOpen": _fixed(abs(size)),
                "sumClose": "0",
                "netFunding": "0",
                "subaccountNumber": number,
            }
        equity = usdc + notional
        return {
            "subaccount": {
                "address": address,
                "subaccountNumber": number,
                "equity": _fixed(equity),
                "freeCollateral": _fixed(equity - risk),
                "openPerpetualPositions": positions,
                "assetPositions": {
                    "USDC": {
                        "symbol": "USDC",
                        "side": "LONG" if usdc >= 0 else "SHORT",
                        "size": _fixed(abs(usdc)),
                        "assetId": "0",
                        "subaccountNumber": number,
                    }
                }
                if usdc != 0
                else {},
                "marginEnabled": True,
                "updatedAtHeight": "1",
                "latestProcessedBlockHeight": "1",
            }
        }


def _seed(api: VenueApi) -> None:
    """The hedged wallet's short ETH, and an isolated-margin account's subaccount 0."""
    api.add_account(dydx_address("hedged"), Decimal(20_000), [PerpPosition("ETH", -10, 4000)])
    api.add_account(f"{dydx_address('perp_isolated')}/0", Decimal(5_000), [PerpPosition("BTC", "0.2", 60000)])


def _tables(info: DevnetInfo, chain: str) -> list[dict[str, object]]:
    url = info.services.get("perp_api")
    if url is None:
        return []
    hedged = wallet_address("hedged")
    return [{"name": "dydx_v4", "type": "dydx_v4", "chain": chain, "base_url": url,
             "accounts": {hedged: dydx_address("hedged")}}]


PART = ApiPart(
    venue="dydx_v4",
    title="dYdX",
    module=__name__,
    names=("dydx_v4", "dydx"),
    new=DydxApi,
    seed=_seed,
    venue_tables=_tables,
    exports=("dydx_address",),
)
"""dYdX v4's part of the devnet: the indexer routes of the local venue API, its table."""
