"""Account streams: a venue's WebSocket user channel, written into the :class:`~connectors.perpcache.AccountCache`.

:class:`AccountStream` runs one connection (the ``websockets`` library's synchronous client) in a daemon thread:
it connects, sends each account's subscription, and hands every message to the venue's subclass
(:meth:`AccountStream.handle`), which decodes it in the venue's documented shape and puts the account's new state
in the cache (source ``stream``). When the connection drops (or cannot be opened) the stream's accounts are marked
stale ("stream down: …") — the poller (:func:`~connectors.perpcache.poll_within_budget`) then re-reads them within
the rate budget — and it reconnects with exponential backoff and jitter (``backoff_s`` doubling up to
``max_backoff_s``), subscribing again; a subscription's first answer is a full state, so nothing is lost.

Per venue: ``connectors/<venue>/stream.py`` subclasses it (subscription messages, message decoding).
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.sync.client import ClientConnection, connect

from connectors.errors import ConnectorError
from connectors.perpcache import AccountCache

__all__ = ["AccountStream"]

log = logging.getLogger(__name__)


class AccountStream(ABC):
    """One WebSocket connection carrying the user channels of ``accounts`` into ``cache``.

    Parameters
    ----------
    url:
        The venue's WebSocket URL (``wss://…``; the devnet's ``PerpApi.ws_url`` + the venue's path in tests).
    cache:
        Where account states go.
    accounts:
        The accounts to subscribe (at most :attr:`max_accounts`: the first ones are kept — pass them riskiest
        first); :meth:`follow` changes them.
    block:
        The current block number, stamped on states that arrive (None: unknown).
    clock_ms:
        Unix ms for answers that carry no time (injected in tests).
    backoff_s, max_backoff_s:
        Reconnect delays: ``backoff_s × 2^k`` up to ``max_backoff_s``, with jitter in [½, 1].
    """

    max_accounts: int | None = None
    """The most accounts one stream may carry (the venue's per-IP limit on user subscriptions); None: no limit."""

    def __init__(
        self,
        url: str,
        cache: AccountCache[Any],
        accounts: Sequence[str] = (),
        *,
        block: Callable[[], int | None] = lambda: None,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        backoff_s: float = 0.05,
        max_backoff_s: float = 5.0,
        open_timeout_s: float = 5.0,
        rng: random.Random | None = None,
    ) -> None:
        self.url = url
        self.cache = cache
        self._block = block
        self._clock_ms = clock_ms
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.open_timeout_s = open_timeout_s
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._accounts: list[str] = self._cap(accounts)
        self._subscribed: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: ClientConnection | None = None
        self.connected = threading.Event()
        """Set while the connection is open and subscribed."""
        self.connects = 0
        self.drops = 0
        self.messages = 0
        self.updates = 0
        """Connections opened, connections lost, messages received, account states written."""
        self.last_error: str | None = None

    # --- what a venue fills in -----------------------------------------------------------------------
    @abstractmethod
    def subscribe_message(self, account: str) -> dict[str, Any]:
        """The venue's subscription message of ``account``'s user channel."""

    @abstractmethod
    def handle(self, message: Any) -> None:
        """Decode one message and write what it says into the cache (:meth:`put`); unknown messages are ignored."""

    # --- helpers for venues --------------------------------------------------------------------------
    def put(self, account: str, state: Any, observed_at_ms: int) -> None:
        self.cache.put(account, state, block=self._block(), observed_at_ms=observed_at_ms, source="stream")
        self.updates += 1

    def now_ms(self) -> int:
        return self._clock_ms()

    # --- lifecycle -----------------------------------------------------------------------------------
    @property
    def accounts(self) -> list[str]:
        with self._lock:
            return list(self._accounts)

    def _cap(self, accounts: Sequence[str]) -> list[str]:
        unique = list(dict.fromkeys(accounts))
        return unique if self.max_accounts is None else unique[: self.max_accounts]

    def follow(self, accounts: Sequence[str]) -> None:
        """Carry ``accounts`` (capped at :attr:`max_accounts`); a changed set is applied by reconnecting."""
        new = self._cap(accounts)
        with self._lock:
            changed = set(new) != set(self._accounts)
            self._accounts = new
            conn = self._conn
        if changed and conn is not None:
            conn.close()

    def start(self) -> AccountStream:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=f"{type(self).__name__}", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            conn = self._conn
        if conn is not None:
            conn.close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.connected.clear()

    def subscribed(self) -> list[str]:
        """The accounts whose subscription is live now (none while disconnected)."""
        with self._lock:
            return [a for a in self._accounts if a in self._subscribed] if self.connected.is_set() else []

    def mark_subscribed(self, account: str) -> None:
        with self._lock:
            self._subscribed.add(account)

    def _run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            try:
                conn = connect(self.url, open_timeout=self.open_timeout_s, compression=None,
                               ping_interval=None, proxy=None)
                try:
                    with self._lock:
                        self._conn = conn
                        self._subscribed.clear()
                        accounts = list(self._accounts)
                    self.connects += 1
                    for account in accounts:
                        conn.send(json.dumps(self.subscribe_message(account)))
                    self.connected.set()
                    attempt = 0
                    self._receive(conn)
                finally:
                    conn.close()
                reason = "the venue closed the stream"
            except (OSError, TimeoutError, ConnectionClosed, InvalidHandshake, InvalidURI) as exc:
                reason = f"{type(exc).__name__}: {exc}"
            finally:
                with self._lock:
                    self._conn = None
                    lost = list(self._subscribed)
                    self._subscribed.clear()
                was_connected = self.connected.is_set()
                self.connected.clear()
            if self._stop.is_set():
                break
            self.last_error = reason
            if was_connected:
                self.drops += 1
            for account in lost:
                self.cache.fail(account, f"stream down: {reason}")
            delay = min(self.max_backoff_s, self.backoff_s * (2 ** attempt))
            attempt += 1
            self._stop.wait(delay * (0.5 + 0.5 * self._rng.random()))

    def _receive(self, conn: ClientConnection) -> None:
        while not self._stop.is_set():
            try:
                raw = conn.recv(timeout=0.25)
            except TimeoutError:
                continue
            self.messages += 1
            try:
                message = json.loads(raw)
            except ValueError:
                log.warning("%s: a message that is not JSON (%d bytes)", type(self).__name__, len(raw))
                continue
            self.handle_safely(message)

    def handle_safely(self, message: Any) -> bool:
        """:meth:`handle` one decoded message; a message that does not decode is logged and skipped (the account
        stays as it was, the stream goes on). Whether it was handled."""
        try:
            self.handle(message)
        except (ConnectorError, ValueError, TypeError, KeyError, AttributeError) as exc:
            log.warning("%s: undecodable message: %s: %s", type(self).__name__, type(exc).__name__, exc)
            self.last_error = f"undecodable message: {exc}"
            return False
        return True
