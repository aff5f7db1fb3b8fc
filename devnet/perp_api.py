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

The venues' WebSocket channels are served on a second port (:attr:`PerpApi.ws_url`; each venue part at its own path,
:class:`devnet.parts.StreamingVenueApi`), pushing a subscription's message whenever the state behind it changes.
Fault hooks: :meth:`PerpApi.ws_down` closes every stream and refuses new ones until :meth:`PerpApi.ws_up`;
:meth:`PerpApi.throttle` answers the venues' HTTP routes with 429 and a ``Retry-After`` (a 429 storm).

The devnet's ``set_price(info, symbol, usd)`` calls :func:`set_mark` (``WETH`` → ``ETH``); a server started
with :func:`serve_for` follows it. The names a venue part exports (:attr:`devnet.parts.ApiPart.exports`) are
attributes of this module too.
"""

from __future__ import annotations

import importlib
import json
import threading
import time
from collections.abc import Iterable
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import httpx
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

from devnet.models import DevnetInfo
from devnet.parts import ApiPart, PerpPosition, StreamingVenueApi, VenueApi, dec
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
        self.version = 0
        """Bumped on every change of state (streams push when it moves)."""
        self._ws_server: Server | None = None
        self._ws_thread: threading.Thread | None = None
        self._ws_accepting = True
        self._ws_conns: dict[int, tuple[ServerConnection, StreamingVenueApi, set[tuple[str, str]]]] = {}
        self.ws_connections = 0
        """Connections accepted so far (reconnects included)."""
        self._throttle_left: int | None = 0
        self._throttle_until = 0.0
        self._throttle_retry_after = "1"
        self.throttled = 0
        """Requests answered 429 by :meth:`throttle`."""
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
            if self._ws_server is None:
                ws = serve(self._ws_handler, "127.0.0.1", 0, compression=None, ping_interval=None)
                ws_thread = threading.Thread(target=ws.serve_forever, name="perp-api-ws", daemon=True)
                ws_thread.start()
                self._ws_server, self._ws_thread = ws, ws_thread
            return self.base_url

    def stop(self) -> None:
        """Stop serving and free the port."""
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
            ws, ws_thread = self._ws_server, self._ws_thread
            self._ws_server = self._ws_thread = None
            conns = [c for c, _, _ in self._ws_conns.values()]
        for conn in conns:
            conn.close()
        if ws is not None:
            ws.shutdown()
        if ws_thread is not None:
            ws_thread.join(timeout=5)
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

    @property
    def ws_url(self) -> str:
        """The WebSocket server's root (``ws://127.0.0.1:PORT``); each venue's channels at its part's ``ws_path``."""
        if self._ws_server is None:
            raise RuntimeError("PerpApi is not running; call start()")
        return f"ws://127.0.0.1:{self._ws_server.socket.getsockname()[1]}"

    # --- faults --------------------------------------------------------------------------------------
    def ws_down(self) -> None:
        """Close every WebSocket connection and refuse new ones (closed at once after the handshake) until
        :meth:`ws_up`."""
        with self._lock:
            self._ws_accepting = False
            conns = [c for c, _, _ in self._ws_conns.values()]
        for conn in conns:
            conn.close(1012, "service restart")

    def ws_up(self) -> None:
        """Accept WebSocket connections again."""
        with self._lock:
            self._ws_accepting = True

    def throttle(self, requests: int | None = None, *, seconds: float | None = None, retry_after_s: int = 1) -> None:
        """Answer the venues' HTTP routes with ``429`` and ``Retry-After: retry_after_s``: the next ``requests`` of
        them, or all of them for ``seconds``, or (both None) until :meth:`unthrottle`. The devnet's control routes are
        never throttled."""
        with self._lock:
            self._throttle_left = requests if seconds is None else 0
            self._throttle_until = time.monotonic() + seconds if seconds is not None else 0.0
            if requests is None and seconds is None:
                self._throttle_left = None
            self._throttle_retry_after = str(int(retry_after_s))

    def unthrottle(self) -> None:
        with self._lock:
            self._throttle_left, self._throttle_until = 0, 0.0

    def _throttled_now(self) -> str | None:
        """The ``Retry-After`` to answer with when this request is throttled, else None."""
        with self._lock:
            if self._throttle_left is None or time.monotonic() < self._throttle_until:
                self.throttled += 1
                return self._throttle_retry_after
            if self._throttle_left > 0:
                self._throttle_left -= 1
                self.throttled += 1
                return self._throttle_retry_after
            return None

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
                    self.version += 1
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
            self.version += 1
        return any(moved)

    def _ws_handler(self, connection: ServerConnection) -> None:
        _ws_serve(self, connection)

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


def _streaming(venue: VenueApi) -> StreamingVenueApi | None:
    return venue if hasattr(venue, "ws_path") and hasattr(venue, "ws_push") else None  # type: ignore[return-value]


def _ws_serve(api: PerpApi, connection: ServerConnection) -> None:
    """One WebSocket connection: the venue part at the request's path answers its messages; every subscription's
    message is pushed when the state behind it changes (checked whenever :attr:`PerpApi.version` moves)."""
    path = urlsplit(connection.request.path if connection.request else "/").path
    with api._lock:
        accepting = api._ws_accepting
        part = next((v for v in map(_streaming, api.venues.values()) if v is not None and v.ws_path == path), None)
        api.ws_connections += 1
    if part is None or not accepting:
        connection.close(1013 if accepting is False else 1008, "unavailable" if not accepting else "no such channel")
        return
    conn: dict[str, Any] = {}
    subs: set[tuple[str, str]] = set()
    pushed: dict[tuple[str, str], Any] = {}
    seen_version = -1
    with api._lock:
        api._ws_conns[id(connection)] = (connection, part, subs)
        opening = part.ws_open(conn)
    try:
        for message in opening:
            connection.send(json.dumps(message))
        while True:
            try:
                raw = connection.recv(timeout=0.02)
            except TimeoutError:
                raw = None
            out: list[Any] = []
            with api._lock:
                if not api._ws_accepting:
                    break
                if raw is not None:
                    try:
                        msg = json.loads(raw)
                    except ValueError:
                        out.append(part.ws_error(conn, f"not JSON: {str(raw)[:80]}"))
                        msg = None
                    if msg is not None:
                        replies, keys = part.ws_request(conn, msg)
                        limit = part.ws_max_accounts
                        tracked = {k[1] for _, p, ss in api._ws_conns.values() if p is part for k in ss}
                        new = {k[1] for k in keys} - tracked
                        if limit is not None and len(tracked) + len(new) > limit:
                            out.append(part.ws_error(conn, f"Cannot track more than {limit} total users."))
                        else:
                            out.extend(replies)
                            for k in keys:
                                subs.add(k)
                                pushed.setdefault(k, None)
                            seen_version = -1
                if api.version != seen_version:
                    seen_version = api.version
                    for key in sorted(subs):
                        fingerprint, push = part.ws_push(conn, key, pushed.get(key))
                        pushed[key] = fingerprint
                        if push is not None:
                            out.append(push)
            for message in out:
                connection.send(json.dumps(message))
    except ConnectionClosed:
        pass
    finally:
        with api._lock:
            api._ws_conns.pop(id(connection), None)
        connection.close()


def _handler_for(api: PerpApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out as separate writes: no delayed-ACK stall

        def _respond(self, method: str) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            retry_after = None if urlsplit(self.path).path.startswith("/devnet/") else api._throttled_now()
            if retry_after is not None:
                status, answer = 429, {"error": "rate limited"}
            else:
                status, answer = api.handle(method, self.path, body)
            data = json.dumps(answer).encode()
            self.send_response(status)  # adds Date and Server
            if retry_after is not None:
                self.send_header("retry-after", retry_after)
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
    # The handler only sets a flag: a threading.Event set from a signal handler can deadlock on the event's own lock
    # when the main thread is inside its wait (see aggregator.scheduler.SigtermFlag).
    stopping: list[bool] = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    try:
        while not stopping:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        api.stop()


if __name__ == "__main__":
    main()
