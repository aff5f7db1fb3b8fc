"""The local venue API of the devnet: every off-chain venue's routes (:class:`devnet.parts.ApiPart`), served over
loopback on one port, in the venues' documented shapes, for the accounts seeded into it.

Each venue's part (``devnet/venues/<venue>.py``) holds its markets, its accounts, its routes and the figures it
reports, computed there from the positions and the current marks with the venue's documented rules, written
independently of ``riskcore`` (no part may import it). Besides the venues' routes the server has its own control
routes: ``POST /devnet/mark`` (``{"symbol", "usd"}``: :meth:`PerpApi.set_mark`), ``POST /devnet/accounts``
(``{"venue", "accounts": [{"account", "usdc", "positions": [{"symbol", "size", "entry_px", …}]}]}``: many
:meth:`PerpApi.add_account` at once; a request that does not parse adds none) and ``GET /devnet/ready``.

Usage::

    api = PerpApi().start()            # seeded with the demo accounts; returns the base URL
    api.set_mark("ETH", 4600)          # every venue's prices of ETH
    api.stop()

The devnet's ``set_price(info, symbol, usd)`` calls :func:`set_mark` (``WETH`` → ``ETH``); a server started
with :func:`serve_for` follows it. The names a venue part exports (:attr:`devnet.parts.ApiPart.exports`) are
attributes of this module too.
"""

from __future__ import annotations

import importlib
import json
import threading
from collections.abc import Iterable
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import httpx

from devnet.models import DevnetInfo
from devnet.parts import ApiPart, PerpPosition, VenueApi, dec
from devnet.venues import api_parts

__all__ = [
    "HEDGED_LABEL",
    "ISOLATED_LABEL",
    "PerpApi",
    "PerpPosition",
    "account_document",
    "add_accounts",
    "running_for",
    "serve_for",
    "set_mark",
]

HEDGED_LABEL = "hedged"
ISOLATED_LABEL = "perp_isolated"

_ALIASES = {"WETH": "ETH", "WBTC": "BTC", "ETH-USD": "ETH", "BTC-USD": "BTC"}
READY_ROUTE = "/devnet/ready"
ACCOUNTS_ROUTE = "/devnet/accounts"
_POSITION_FIELDS = ("symbol", "size", "entry_px", "leverage", "margin", "isolated_margin_usd")


def account_document(account: str, usdc: Decimal | float | int | str, positions: Iterable[PerpPosition]) -> Any:
    """One account as ``POST /devnet/accounts`` takes it (decimals as text)."""
    return {"account": account, "usdc": str(usdc),
            "positions": [{k: str(getattr(p, k)) if k not in ("leverage", "margin") else getattr(p, k)
                           for k in _POSITION_FIELDS} for p in positions]}


def _parse_accounts(documents: Any) -> list[tuple[str, Decimal, list[PerpPosition]]]:
    """``POST /devnet/accounts``' accounts (``ValueError`` / ``KeyError`` / ``TypeError`` for a malformed one)."""
    if not isinstance(documents, list):
        raise TypeError("accounts must be a list")
    out = []
    for doc in documents:
        positions = [PerpPosition(str(p["symbol"]), dec(str(p["size"])), dec(str(p["entry_px"])),
                                  leverage=int(p.get("leverage", 10)), margin=p.get("margin", "cross"),
                                  isolated_margin_usd=dec(str(p.get("isolated_margin_usd", 0))))
                     for p in doc["positions"]]
        for p in positions:
            if p.margin not in ("cross", "isolated"):
                raise ValueError(f"margin must be cross or isolated, got {p.margin!r}")
        out.append((str(doc["account"]), dec(str(doc["usdc"])), positions))
    return out


class PerpApi:
    """The local venue API (stdlib ``http.server`` in a daemon thread): every off-chain venue part's routes.

    Parameters
    ----------
    port:
        TCP port on 127.0.0.1; None picks a free one.
    seed:
        Seed the demo accounts (each venue part's: the hedged wallet's shorts, an isolated-margin account).
    """

    def __init__(self, port: int | None = None, *, seed: bool = True) -> None:
        self._port = port or 0
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.requests = 0
        self.venues: dict[str, VenueApi] = {}
        """Each off-chain venue's state, by venue (registry order)."""
        self._parts: dict[str, ApiPart] = {}
        for part in api_parts():
            self.venues[part.venue] = part.new()
            self._parts[part.venue] = part
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
        """The demo accounts of every venue part."""
        with self._lock:
            for venue, part in self._parts.items():
                part.seed(self.venues[venue])

    def add_account(
        self, venue: str, account: str, *, usdc: Decimal | float | int | str, positions: Iterable[PerpPosition] = ()
    ) -> None:
        """Seed (or replace) an account of ``venue`` (a name its part takes, :attr:`devnet.parts.ApiPart.names`):
        ``usdc`` deposited, ``positions`` opened at their entry prices. ``account`` is in the venue's own form (an
        address, a subaccount); ``ValueError`` for one the venue cannot have."""
        pos = list(positions)
        with self._lock:
            for name, part in self._parts.items():
                if venue in part.names:
                    self.venues[name].add_account(account, dec(usdc), pos)
                    return
        raise ValueError(f"unknown venue {venue!r}")

    def add_accounts(self, venue: str, accounts: Iterable[tuple[str, Decimal, Iterable[PerpPosition]]]) -> int:
        """:meth:`add_account` of each ``(account, usdc, positions)`` of ``venue``, under one hold of the lock (no
        request sees half of them); the count. ``ValueError`` for an unknown venue (nothing added) or an account the
        venue cannot have (the accounts before it are added)."""
        if not any(venue in part.names for part in self._parts.values()):
            raise ValueError(f"unknown venue {venue!r}")
        n = 0
        with self._lock:
            for account, usdc, positions in accounts:
                self.add_account(venue, account, usdc=usdc, positions=positions)
                n += 1
        return n

    def set_mark(self, symbol: str, usd: Decimal | float | int | str) -> bool:
        """Move ``symbol``'s prices on every venue (``ETH``, ``WETH``, ``ETH-USD``).

        Returns whether any market has that symbol (others, e.g. ``DAI``, are ignored).
        """
        price = dec(usd)
        if price <= 0:
            raise ValueError(f"price must be positive, got {usd}")
        coin = _ALIASES.get(symbol.upper(), symbol.upper())
        with self._lock:
            moved = [venue.set_mark(coin, price) for venue in self.venues.values()]
        return any(moved)

    # --- HTTP ----------------------------------------------------------------------------------------
    def handle(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        """Route one request; returns (status, JSON body). Public for tests that skip the socket."""
        with self._lock:
            self.requests += 1
        route = urlsplit(path).path
        if method == "POST" and route == "/devnet/mark":  # the devnet's own control route, not a venue's
            try:
                req = json.loads(body or b"null")
                moved = self.set_mark(str(req["symbol"]), str(req["usd"]))
            except (ValueError, KeyError, TypeError, ArithmeticError) as exc:
                return 400, f"bad mark request: {exc}"
            return 200, {"moved": moved}
        if method == "POST" and route == ACCOUNTS_ROUTE:
            try:
                req = json.loads(body or b"null")
                added = self.add_accounts(str(req["venue"]), _parse_accounts(req["accounts"]))
            except (ValueError, KeyError, TypeError, ArithmeticError) as exc:
                return 400, f"bad accounts request: {exc}"
            return 200, {"added": added}
        if method == "GET" and route == READY_ROUTE:
            return 200, {"ready": True}
        with self._lock:
            for venue in self.venues.values():
                answer = venue.route(method, route, body)
                if answer is not None:
                    return answer
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


def add_accounts(info: DevnetInfo, venue: str, documents: list[Any], timeout_s: float = 120.0) -> int:
    """Add (or replace) ``documents`` (:func:`account_document`) of ``venue`` on the perp API serving ``info`` (in
    this process when started by :func:`serve_for`, else over its control route); the count."""
    api = _RUNNING.get(_key(info))
    if api is not None:
        return api.add_accounts(venue, _parse_accounts(documents))
    url = info.services.get("perp_api")
    if url is None:
        raise RuntimeError("no perp API serves this devnet")
    resp = httpx.post(f"{url}{ACCOUNTS_ROUTE}", json={"venue": venue, "accounts": documents}, timeout=timeout_s)
    resp.raise_for_status()
    return int(resp.json()["added"])


def __getattr__(name: str) -> Any:
    """The names the venue parts export (:attr:`devnet.parts.ApiPart.exports`)."""
    for part in api_parts():
        if name in part.exports:
            return getattr(importlib.import_module(part.module), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
