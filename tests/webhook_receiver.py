"""A real webhook receiver for tests: an HTTP server on 127.0.0.1 (a free port) in a background thread.

It records every request (headers, raw body, parsed JSON, whether the xmargin signature verifies) and
answers 200, or, first, a scripted queue of answers::

    with WebhookReceiver(secret) as rx:
        rx.script([503, (429, {"Retry-After": "1"}), "hang", "drop"])
        ...                                    # point a WebhookSink (or the whole app) at rx.url
        rx.wait_for(1, timeout=5)              # blocks until one accepted delivery
        assert rx.accepted[0].json["event_id"] == "..."

Script entries: an ``int`` status; ``(status, headers)`` or ``(status, headers, body)``; ``"hang"``: read
the request, then answer nothing for ``hang_s`` seconds (longer than the client's timeout) and close;
``"drop"``: read the request and close the connection without answering. Each request consumes one entry;
when the queue is empty the answer is ``default_status``. Leaving the ``with`` block ends hanging answers
at once, stops the server and joins its threads.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Literal, Self

from aggregator.alerts.sinks import EVENT_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify

__all__ = ["Answer", "RecordedRequest", "WebhookReceiver"]

Answer = int | tuple[int, Mapping[str, str]] | tuple[int, Mapping[str, str], bytes] | Literal["hang", "drop"]


@dataclass(frozen=True)
class RecordedRequest:
    """One request as received, and how it was answered (``status`` None: hung or dropped)."""

    method: str
    path: str
    headers: Mapping[str, str]  # lower-cased names
    body: bytes
    json: object  # the parsed body; None when it is not JSON
    signature_ok: bool
    status: int | None
    received_at: float

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @property
    def event_id(self) -> str | None:
        return self.header(EVENT_ID_HEADER)

    @property
    def timestamp(self) -> str | None:
        return self.header(TIMESTAMP_HEADER)

    @property
    def signature(self) -> str | None:
        return self.header(SIGNATURE_HEADER)

    @property
    def accepted(self) -> bool:
        return self.status is not None and 200 <= self.status < 300 and self.signature_ok


class WebhookReceiver:
    """A loopback HTTP receiver that verifies xmargin webhook signatures with ``secret``."""

    def __init__(
        self,
        secret: str | bytes,
        *,
        path: str = "/hook",
        default_status: int = 200,
        hang_s: float = 30.0,
        tolerance_s: float = 300,
    ) -> None:
        self.secret = secret
        self.path = path
        self.default_status = default_status
        self.hang_s = hang_s
        self.tolerance_s = tolerance_s
        self._lock = threading.Condition()
        self._script: deque[Answer] = deque()
        self._received: list[RecordedRequest] = []
        self._closing = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle -----------------------------------------------------------------------------------------

    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError("WebhookReceiver already started")
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        server.daemon_threads = False
        server.block_on_close = True  # server_close() joins the handler threads
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.01}, name="webhook-receiver", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._closing.set()  # wake hanging answers
        server.shutdown()
        server.server_close()
        thread.join()
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("WebhookReceiver not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    # scripting and inspection ----------------------------------------------------------------------------

    def script(self, answers: Iterable[Answer]) -> None:
        """Queue answers for the next requests (after any still queued), then ``default_status``."""
        with self._lock:
            self._script.extend(answers)

    @property
    def received(self) -> list[RecordedRequest]:
        """Every request so far, in arrival order."""
        with self._lock:
            return list(self._received)

    @property
    def accepted(self) -> list[RecordedRequest]:
        """The requests answered 2xx whose signature verified."""
        with self._lock:
            return [r for r in self._received if r.accepted]

    def events(self) -> list[object]:
        """The bodies of accepted requests, deduplicated on the event id (first delivery kept)."""
        seen: set[str | None] = set()
        out: list[object] = []
        for r in self.accepted:
            if r.event_id not in seen:
                seen.add(r.event_id)
                out.append(r.json)
        return out

    def wait_for(self, n: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """Block until at least ``n`` requests were accepted; TimeoutError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                accepted = [r for r in self._received if r.accepted]
                if len(accepted) >= n:
                    return accepted
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"{len(accepted)} of {n} webhook deliveries accepted after {timeout:g} s "
                        f"({len(self._received)} requests received)"
                    )
                self._lock.wait(left)

    # called from the handler threads ---------------------------------------------------------------------

    def _next_answer(self) -> Answer:
        with self._lock:
            return self._script.popleft() if self._script else self.default_status

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._received.append(request)
            self._lock.notify_all()

    def _signature_ok(self, headers: Mapping[str, str], body: bytes) -> bool:
        timestamp = headers.get(TIMESTAMP_HEADER.lower())
        signature = headers.get(SIGNATURE_HEADER.lower())
        if timestamp is None or signature is None:
            return False
        return verify(self.secret, timestamp, body, signature, tolerance_s=self.tolerance_s)


def _handler_for(rx: WebhookReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # HTTP/1.0: one request per connection, so no idle keep-alive connection holds up stop().
        protocol_version = "HTTP/1.0"

        def log_message(self, format: str, *args: object) -> None:
            return None

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length > 0 else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                parsed: object = json.loads(body)
            except ValueError:
                parsed = None
            answer = rx._next_answer()
            status: int | None
            reply_headers: Mapping[str, str] = {}
            reply_body = b""
            if answer == "hang" or answer == "drop":
                status = None
            elif isinstance(answer, int):
                status = answer
            else:
                status, reply_headers = answer[0], answer[1]
                reply_body = answer[2] if len(answer) == 3 else b""
            rx._record(
                RecordedRequest(
                    method=self.command,
                    path=self.path,
                    headers=headers,
                    body=body,
                    json=parsed,
                    signature_ok=rx._signature_ok(headers, body),
                    status=status,
                    received_at=time.time(),
                )
            )
            if answer == "hang":
                rx._closing.wait(rx.hang_s)
            if status is None:
                self.close_connection = True
                return
            if not reply_body and 200 <= status < 300 and status not in (204, 205):
                reply_body = b'{"ok":true}'
            self.send_response(status)
            for name, value in reply_headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply_body)))
            self.end_headers()
            self.wfile.write(reply_body)

    return Handler
