"""A local perp-venue API for the devnet: Hyperliquid's info endpoint and dYdX v4's indexer, over loopback.

It answers, in the venues' documented shapes, for the accounts seeded into it::

    POST /info  {"type": "metaAndAssetCtxs"}                       Hyperliquid markets and margin tables
    POST /info  {"type": "clearinghouseState", "user": "0x…"}      a Hyperliquid account (unknown: zeros)
    GET  /v4/perpetualMarkets                                      dYdX markets
    GET  /v4/addresses/{dydx1…}/subaccountNumber/{n}               a dYdX subaccount (unknown: HTTP 404)

Every reported figure is computed here from the positions and the current marks with the venues'
documented rules, written independently of ``riskcore`` (this module must not import it):

* Hyperliquid (docs *Margining*, *Margin tiers*, *Liquidations*): maintenance = notional × mmr − deduction of
  the notional's tier, mmr = 1 / (2 × tier max leverage); cross ``marginUsed`` = notional / leverage, isolated
  ``marginUsed`` = rawUsd + szi × mark; ``liquidationPx = mark − side × margin_available / |szi| /
  (1 − mmr × side)`` with ``margin_available`` = account value − maintenance (the cross account's, or the
  isolated position's); null when not positive. USD amounts are printed with 6 decimals, prices with 8.
* dYdX (indexer ``calculateEquityAndFreeCollateral``): equity = USDC + Σ size × oracle; free collateral =
  equity − Σ |size × oracle| × IMF; ``unrealizedPnl`` = size × (oracle − entry). Exact decimals.

Usage::

    api = PerpApi().start()            # seeded with the hedged wallet; returns the base URL
    api.set_mark("ETH", 4600)          # Hyperliquid mark and dYdX oracle of ETH
    api.stop()

The devnet's ``set_price(info, symbol, usd)`` calls :func:`set_mark` (``WETH`` → ``ETH``); a server started
with :func:`serve_for` follows it.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

import httpx

from connectors.dydx_v4.address import bech32_encode, validate_address
from connectors.errors import InvalidAddressError
from devnet.models import DevnetInfo
from devnet.seed import wallet_address

__all__ = [
    "HEDGED_LABEL",
    "PerpApi",
    "PerpPosition",
    "dydx_address",
    "running_for",
    "serve_for",
    "set_mark",
]

HEDGED_LABEL = "hedged"
ISOLATED_LABEL = "perp_isolated"

Venue = Literal["hyperliquid", "dydx"]

_USD = Decimal("0.000001")
_PX = Decimal("0.00000001")
_ALIASES = {"WETH": "ETH", "WBTC": "BTC", "ETH-USD": "ETH", "BTC-USD": "BTC"}
_HEX_USER = re.compile(r"^0x[0-9a-fA-F]{40}$")
_SUBACCOUNT_ROUTE = re.compile(r"^/v4/addresses/([^/]+)/subaccountNumber/([^/]+)$")


def dydx_address(label: str) -> str:
    """The devnet's dYdX account for seed label ``label``: the same 20 bytes as
    :func:`devnet.seed.wallet_address`, bech32-encoded under ``dydx``."""
    return bech32_encode(bytes.fromhex(wallet_address(label)[2:]))


def _d(value: float | int | str | Decimal) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


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


def _fixed(value: Decimal) -> str:
    """big.js ``toFixed()``: plain notation, no trailing zeros."""
    return format(value.normalize(), "f") if value != 0 else "0"


@dataclass(frozen=True)
class PerpPosition:
    """A seeded position: ``size`` signed (base units), opened at ``entry_px`` (USD).

    Hyperliquid: ``leverage`` and ``margin`` (``"cross"`` or ``"isolated"``; an isolated position holds
    ``isolated_margin_usd``). dYdX: ``symbol`` is the coin (``ETH`` → market ``ETH-USD``); leverage is unused.
    """

    symbol: str
    size: Decimal | float | int | str
    entry_px: Decimal | float | int | str
    leverage: int = 10
    margin: Literal["cross", "isolated"] = "cross"
    isolated_margin_usd: Decimal | float | int | str = 0


@dataclass
class _HlAsset:
    name: str
    sz_decimals: int
    max_leverage: int
    margin_table_id: int
    mark: Decimal
    oracle: Decimal
    open_interest: Decimal = Decimal(0)


@dataclass
class _DxMarket:
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


# Margin tables as Hyperliquid's meta publishes them (docs, Margin tiers: mainnet BTC 40× to 150M, 20× above).
_MARGIN_TABLES: dict[int, list[tuple[Decimal, int]]] = {
    50: [(Decimal(0), 50)],
    56: [(Decimal(0), 40), (Decimal(150_000_000), 20)],
}


class PerpApi:
    """The local Hyperliquid + dYdX API (stdlib ``http.server`` in a daemon thread).

    Parameters
    ----------
    port:
        TCP port on 127.0.0.1; None picks a free one.
    seed:
        Seed the demo accounts (the hedged wallet on both venues, and an isolated-margin account).
    """

    def __init__(self, port: int | None = None, *, seed: bool = True) -> None:
        self._port = port or 0
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.requests = 0
        self.hl_assets: dict[str, _HlAsset] = {
            "BTC": _HlAsset("BTC", 5, 40, 56, Decimal(60000), Decimal(60000)),
            "ETH": _HlAsset("ETH", 4, 25, 25, Decimal(4000), Decimal(4000)),
            "SOL": _HlAsset("SOL", 2, 20, 20, Decimal(150), Decimal(150)),
        }
        self.dx_markets: dict[str, _DxMarket] = {
            "BTC-USD": _DxMarket("BTC-USD", 0, Decimal(60000), Decimal("0.05"), Decimal("0.03")),
            "ETH-USD": _DxMarket("ETH-USD", 1, Decimal(4000), Decimal("0.05"), Decimal("0.03")),
        }
        self.hl_accounts: dict[str, _Account] = {}
        self.dx_subaccounts: dict[tuple[str, int], _Account] = {}
        if seed:
            self.seed()

    # --- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> str:
        """Start serving (idempotent); return the base URL (``http://127.0.0.1:PORT``)."""
        with self._lock:
            if self._server is None:
                server = ThreadingHTTPServer(("127.0.0.1", self._port), _handler_for(self))
                server.daemon_threads = True
                thread = threading.Thread(
                    target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="perp-api", daemon=True
                )
                thread.start()
                self._server, self._thread = server, thread
            return self.base_url

    def stop(self) -> None:
        """Stop serving and free the port."""
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        for key, api in list(_RUNNING.items()):
            if api is self:
                del _RUNNING[key]

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("PerpApi is not running; call start()")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> PerpApi:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- state ---------------------------------------------------------------------------------------
    def seed(self) -> None:
        """The demo accounts: the hedged wallet (short ETH on both venues) and an isolated-margin account."""
        hedged = wallet_address(HEDGED_LABEL)
        self.add_account("hyperliquid", hedged, usdc=10_000, positions=[PerpPosition("ETH", -15, 4000, leverage=10)])
        self.add_account("dydx", dydx_address(HEDGED_LABEL), usdc=20_000, positions=[PerpPosition("ETH", -10, 4000)])
        self.add_account(
            "hyperliquid",
            wallet_address(ISOLATED_LABEL),
            usdc=5_000,
            positions=[
                PerpPosition("BTC", "0.5", 60000, leverage=20, margin="isolated", isolated_margin_usd=1_500),
                PerpPosition("SOL", 40, 150, leverage=5),
            ],
        )
        self.add_account(
            "dydx", f"{dydx_address(ISOLATED_LABEL)}/0", usdc=5_000, positions=[PerpPosition("BTC", "0.2", 60000)]
        )

    def add_account(
        self, venue: Venue, account: str, *, usdc: Decimal | float | int | str, positions: Iterable[PerpPosition] = ()
    ) -> None:
        """Seed (or replace) an account: ``usdc`` deposited, ``positions`` opened at their entry prices.

        ``account``: a ``0x…`` address (Hyperliquid) or ``dydx1…`` / ``dydx1…/N`` (dYdX).
        """
        pos = list(positions)
        with self._lock:
            if venue == "hyperliquid":
                if not _HEX_USER.fullmatch(account):
                    raise ValueError(f"not a Hyperliquid user address: {account!r}")
                for p in pos:
                    if p.symbol not in self.hl_assets:
                        raise ValueError(f"no Hyperliquid asset {p.symbol!r}")
                self.hl_accounts[account.lower()] = _Account(_d(usdc), pos)
            elif venue == "dydx":
                address, _, number = account.partition("/")
                validate_address(address)
                for p in pos:
                    if f"{p.symbol}-USD" not in self.dx_markets:
                        raise ValueError(f"no dYdX market {p.symbol}-USD")
                self.dx_subaccounts[(address, int(number or 0))] = _Account(_d(usdc), pos)
            else:
                raise ValueError(f"unknown venue {venue!r}")
            self._refresh_open_interest()

    def set_mark(self, symbol: str, usd: Decimal | float | int | str) -> bool:
        """Move ``symbol``'s Hyperliquid mark/oracle and dYdX oracle price (``ETH``, ``WETH``, ``ETH-USD``).

        Returns whether any market has that symbol (others, e.g. ``DAI``, are ignored).
        """
        price = _d(usd)
        if price <= 0:
            raise ValueError(f"price must be positive, got {usd}")
        coin = _ALIASES.get(symbol.upper(), symbol.upper())
        found = False
        with self._lock:
            if coin in self.hl_assets:
                self.hl_assets[coin].mark = price
                self.hl_assets[coin].oracle = price
                found = True
            if f"{coin}-USD" in self.dx_markets:
                self.dx_markets[f"{coin}-USD"].oracle = price
                found = True
        return found

    def _refresh_open_interest(self) -> None:
        for asset in self.hl_assets.values():
            asset.open_interest = sum(
                (abs(_d(p.size)) for a in self.hl_accounts.values() for p in a.positions if p.symbol == asset.name),
                Decimal(0),
            )
        for m in self.dx_markets.values():
            m.open_interest = sum(
                (
                    abs(_d(p.size))
                    for a in self.dx_subaccounts.values()
                    for p in a.positions
                    if f"{p.symbol}-USD" == m.ticker
                ),
                Decimal(0),
            )

    # --- Hyperliquid ---------------------------------------------------------------------------------
    def _hl_tiers(self, asset: _HlAsset) -> list[tuple[Decimal, int]]:
        table = asset.margin_table_id
        if table in _MARGIN_TABLES:
            return _MARGIN_TABLES[table]
        return [(Decimal(0), table if table < 50 else asset.max_leverage)]

    def _hl_maintenance(self, asset: _HlAsset, notional: Decimal) -> tuple[Decimal, Decimal]:
        """(maintenance margin, rate) of a notional, per the tier table."""
        tiers = self._hl_tiers(asset)
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
        with self._lock:
            universe = []
            ctxs = []
            for a in self.hl_assets.values():
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
        with self._lock:
            acct = self.hl_accounts.get(user.lower(), _Account(Decimal(0)))
            rows = []
            cross_raw = acct.deposit_usd
            for p in acct.positions:
                if p.margin == "cross":
                    cross_raw -= _d(p.size) * _d(p.entry_px)
            cross_value = cross_raw
            cross_ntl = cross_used = cross_mm = Decimal(0)
            iso_raw_total = iso_used_total = iso_ntl = Decimal(0)
            # First pass: the cross account's totals (a cross position's liquidation price needs them all).
            for p in acct.positions:
                asset = self.hl_assets[p.symbol]
                szi = _d(p.size)
                ntl = abs(szi) * asset.mark
                if p.margin == "cross":
                    cross_value += szi * asset.mark
                    cross_ntl += ntl
                    cross_used += ntl / p.leverage
                    cross_mm += self._hl_maintenance(asset, ntl)[0]
            for p in acct.positions:
                asset = self.hl_assets[p.symbol]
                szi, entry = _d(p.size), _d(p.entry_px)
                mark = asset.mark
                ntl = abs(szi) * mark
                upnl = szi * (mark - entry)
                mm, rate = self._hl_maintenance(asset, ntl)
                side = 1 if szi > 0 else -1
                leverage: dict[str, Any] = {"type": p.margin, "value": p.leverage}
                if p.margin == "cross":
                    used = ntl / p.leverage
                    available = cross_value - cross_mm
                else:
                    raw = _d(p.isolated_margin_usd) - szi * entry
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

    # --- dYdX ----------------------------------------------------------------------------------------
    def perpetual_markets(self) -> dict[str, Any]:
        """``/v4/perpetualMarkets``."""
        with self._lock:
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
                    for m in self.dx_markets.values()
                }
            }

    def subaccount(self, address: str, number: int) -> dict[str, Any] | None:
        """``/v4/addresses/{address}/subaccountNumber/{number}`` (None: unknown, HTTP 404)."""
        with self._lock:
            acct = self.dx_subaccounts.get((address, number))
            if acct is None:
                return None
            usdc = acct.deposit_usd
            notional = Decimal(0)
            risk = Decimal(0)
            positions: dict[str, Any] = {}
            for p in acct.positions:
                m = self.dx_markets[f"{p.symbol}-USD"]
                size, entry = _d(p.size), _d(p.entry_px)
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

    # --- HTTP ----------------------------------------------------------------------------------------
    def handle(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        """Route one request; returns (status, JSON body). Public for tests that skip the socket."""
        with self._lock:
            self.requests += 1
        route = urlsplit(path).path
        if method == "POST" and route == "/info":
            try:
                req = json.loads(body or b"null")
            except ValueError:
                return 400, "Failed to parse the request body as JSON"
            kind = req.get("type") if isinstance(req, dict) else None
            if kind == "metaAndAssetCtxs":
                return 200, self.meta_and_asset_ctxs()
            if kind == "clearinghouseState":
                user = req.get("user")
                if not isinstance(user, str) or not _HEX_USER.fullmatch(user):
                    return 422, "Failed to deserialize the JSON body into the target type"
                return 200, self.clearinghouse_state(user)
            return 422, "Failed to deserialize the JSON body into the target type"
        if method == "POST" and route == "/devnet/mark":  # the devnet's own control route, not a venue's
            try:
                req = json.loads(body or b"null")
                moved = self.set_mark(str(req["symbol"]), str(req["usd"]))
            except (ValueError, KeyError, TypeError, ArithmeticError) as exc:
                return 400, f"bad mark request: {exc}"
            return 200, {"moved": moved}
        if method == "GET" and route == "/v4/perpetualMarkets":
            return 200, self.perpetual_markets()
        match = _SUBACCOUNT_ROUTE.fullmatch(route)
        if method == "GET" and match:
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
        return 404, {"errors": [{"msg": f"no route {method} {route}"}]}


def _handler_for(api: PerpApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out as separate writes: no delayed-ACK stall

        def _respond(self, method: str) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            status, answer = api.handle(method, self.path, body)
            data = json.dumps(answer).encode()
            self.send_response(status)  # adds Date and Server
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._respond("GET")

        def do_POST(self) -> None:
            self._respond("POST")

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


# --- the devnet's hook -------------------------------------------------------------------------------
_RUNNING: dict[str, PerpApi] = {}


def _key(info: DevnetInfo) -> str:
    return f"{info.chain_id}@{info.rpc_url}"


def serve_for(info: DevnetInfo, port: int | None = None) -> PerpApi:
    """The perp API that follows ``info``'s prices (started and seeded on first call, then reused)."""
    key = _key(info)
    api = _RUNNING.get(key)
    if api is None:
        api = PerpApi(port)
        api.start()
        _RUNNING[key] = api
    return api


def running_for(info: DevnetInfo) -> PerpApi | None:
    """The perp API serving ``info``, if one was started with :func:`serve_for`."""
    return _RUNNING.get(_key(info))


def set_mark(info: DevnetInfo, symbol: str, usd: Decimal | float | int | str) -> bool:
    """Hook for the devnet's ``set_price``: move ``symbol``'s perp marks on the API serving ``info``.

    A no-op (False) when no perp API serves ``info`` or no perp market has that symbol.
    """
    api = _RUNNING.get(_key(info))
    if api is not None:
        return api.set_mark(symbol, usd)
    url = info.services.get("perp_api")
    if url is None:
        return False
    # A perp API in another process (the shared devnet's, started by ``devnet up``): its control route.
    resp = httpx.post(f"{url}/devnet/mark", json={"symbol": symbol, "usd": str(usd)}, timeout=5.0)
    resp.raise_for_status()
    return bool(resp.json()["moved"])


def main(argv: list[str] | None = None) -> None:
    """``python -m devnet.perp_api --port N``: serve the seeded perp API until SIGTERM / Ctrl-C."""
    import argparse
    import signal

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    api = PerpApi(args.port or None)
    print(api.start(), flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        api.stop()


if __name__ == "__main__":
    main()
