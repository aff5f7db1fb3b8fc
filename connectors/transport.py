"""What the connectors' HTTP clients share: one endpoint over httpx, transient faults retried, URLs redacted.

:class:`RetryingHttpClient` is the base of :class:`~connectors.http.JsonHttpClient` (the perp venues' REST
APIs) and :class:`~connectors.evm.rpc.RpcClient` (JSON-RPC). It sends one request with retries and maps
what every HTTP answer can mean (see :mod:`connectors.errors`)::

    httpx timeout                              → RpcTimeoutError      (retried)
    connection refused / reset                  → RpcUnavailableError  (retried)
    unsupported URL scheme                      → InvalidInputError    (never retried)
    HTTP 429                                    → RateLimitedError     (retried after Retry-After, if short)

and hands every other answer to the subclass, which returns its value or a :class:`TransientError` to
retry (HTTP 5xx: :class:`RpcUnavailableError`). Retries back off exponentially with jitter
(:func:`backoff_delay`). Only idempotent reads go through these clients, so every transient fault is retried.

URLs may carry API keys in their path, query or credentials: a URL is never put in a message or a repr
except through :func:`redact_url`, and a filter on the ``httpx`` logger redacts the URLs httpx logs.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import ClassVar, Protocol, Self, TypedDict, TypeVar, Unpack

import httpx

from connectors.errors import (
    InvalidInputError,
    RateLimitedError,
    RpcTimeoutError,
    RpcUnavailableError,
    TransientError,
)

__all__ = [
    "ClosingContext",
    "RetryingHttpClient",
    "TransferStats",
    "TransportArgs",
    "TransportOptions",
    "backoff_delay",
    "redact_url",
    "retry_after_s",
    "transport_error",
]

T = TypeVar("T")


def redact_url(url: str | httpx.URL) -> str:
    """``scheme://host[:port]`` of ``url``: path, query, fragment and credentials dropped (they may hold keys)."""
    try:
        u = httpx.URL(str(url))
    except (httpx.InvalidURL, TypeError, ValueError):
        return "<unparsable url>"
    if not u.host:
        return f"{u.scheme}://<no host>" if u.scheme else "<no host>"
    port = f":{u.port}" if u.port is not None else ""
    return f"{u.scheme}://{u.host}{port}"


class _RedactUrlsFilter(logging.Filter):
    """Rewrites the URLs in httpx's own log records (``HTTP Request: POST <url> ...``) to scheme+host."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and any(isinstance(a, httpx.URL) for a in args):
            record.args = tuple(redact_url(a) if isinstance(a, httpx.URL) else a for a in args)
        return True


def _install_log_redaction() -> None:
    logger = logging.getLogger("httpx")
    if not any(isinstance(f, _RedactUrlsFilter) for f in logger.filters):
        logger.addFilter(_RedactUrlsFilter())


_install_log_redaction()


def retry_after_s(value: str | None, now_s: float | None = None) -> float | None:
    """``Retry-After`` in seconds: delta-seconds or an HTTP date; None when absent or unparsable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now_s is None else now_s))


def backoff_delay(
    attempt: int, err: TransientError, *, backoff_s: float, max_backoff_s: float, rng: random.Random
) -> float:
    """Seconds to wait before retry ``attempt + 1``: ``backoff_s`` doubled per attempt, capped at
    ``max_backoff_s``, with jitter in [delay/2, delay]; never shorter than a 429's ``Retry-After``."""
    delay = min(max_backoff_s, backoff_s * (1 << attempt))
    delay = delay / 2 + rng.uniform(0, delay / 2)
    if isinstance(err, RpcUnavailableError) and err.retry_after is not None:
        delay = max(delay, err.retry_after)
    return delay


def transport_error(
    exc: httpx.TransportError,
    what: str,
    *,
    timeout_s: float,
    redacted_url: str,
    scrub: Callable[[str], str],
    url_label: str = "URL",
) -> TransientError:
    """The error-tree fault for an httpx transport exception: a timeout or an unreachable endpoint (both
    transient); an unsupported URL raises :class:`InvalidInputError` (the caller's fault) at once."""
    if isinstance(exc, httpx.TimeoutException):
        return RpcTimeoutError(f"{what}: timed out after {timeout_s:g} s ({type(exc).__name__}) at {redacted_url}")
    if isinstance(exc, httpx.UnsupportedProtocol):
        raise InvalidInputError(f"unsupported {url_label} {redacted_url}: {scrub(str(exc))}") from None
    return RpcUnavailableError(f"{what}: {type(exc).__name__} from {redacted_url}: {scrub(str(exc))}")


class TransferStats(Protocol):
    """The counters :meth:`RetryingHttpClient._send` keeps: ``http_requests`` counts every request, retries
    included."""

    http_requests: int
    http_retries: int
    bytes_sent: int
    bytes_received: int


class ClosingContext:
    """A context manager that calls ``close()`` on exit."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


@dataclass(frozen=True)
class TransportOptions:
    """How a client talks to its endpoint: what every HTTP client of the connectors (and the venue connectors
    built on them) takes, as one object passed through.

    Parameters
    ----------
    timeout_s:
        Per-request timeout in seconds (connect, read, write, pool), and the bound on one whole answer.
    max_retries:
        Retries of a transient fault after the first attempt (0 disables retries).
    backoff_s, max_backoff_s:
        First backoff in seconds, doubling per retry with jitter in [delay/2, delay], capped at
        ``max_backoff_s``. A 429's ``Retry-After`` is honoured when not longer than ``max_backoff_s``
        (else raised at once, carrying ``retry_after``).
    client, transport:
        An existing ``httpx.Client`` (not closed by the client's ``close``) or a transport for a new one
        (``httpx.MockTransport`` in tests).
    sleep, rng:
        Injected for tests.
    """

    timeout_s: float = 10.0
    max_retries: int = 3
    backoff_s: float = 0.2
    max_backoff_s: float = 30.0
    client: httpx.Client | None = None
    transport: httpx.BaseTransport | None = None
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random | None = None

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise InvalidInputError("max_retries must be >= 0")
        if self.timeout_s <= 0:
            raise InvalidInputError("timeout_s must be > 0")

    @classmethod
    def of(cls, options: TransportOptions | None = None, **changes: Unpack[TransportArgs]) -> TransportOptions:
        """``options`` (default: the defaults) with the fields ``changes`` names replaced."""
        base = options if options is not None else cls()
        return dataclasses.replace(base, **changes) if changes else base


class TransportArgs(TypedDict, total=False):
    """The fields of :class:`TransportOptions` as keyword arguments (a client's constructor takes ``options``,
    these, or both: the keywords replace the options' fields)."""

    timeout_s: float
    max_retries: int
    backoff_s: float
    max_backoff_s: float
    client: httpx.Client | None
    transport: httpx.BaseTransport | None
    sleep: Callable[[float], None]
    rng: random.Random | None


class RetryingHttpClient(ClosingContext):
    """Requests to one endpoint, transient faults retried; subclasses decide what an answer means.

    Parameters
    ----------
    url:
        The endpoint as configured (shown only through :func:`redact_url`).
    endpoint:
        The URL requests go to (or are prefixed with), when not ``url`` itself; scrubbed from messages too.
    headers:
        Sent with every request.
    options:
        Timeout, retries, backoff and the injected client, transport, sleep and rng (:class:`TransportOptions`).
    """

    _url_label: ClassVar[str] = "URL"
    """How an unsupported URL is named in the :class:`InvalidInputError`."""
    stats: TransferStats

    def __init__(
        self, url: str, *, endpoint: str | None = None, headers: dict[str, str], options: TransportOptions,
    ) -> None:
        self._endpoint = url if endpoint is None else endpoint
        self.redacted_url = redact_url(url)
        self.options = options
        self._owns_client = options.client is None
        self._client = options.client or httpx.Client(timeout=options.timeout_s, transport=options.transport)
        self._timeout = httpx.Timeout(options.timeout_s)
        self._headers = headers
        self._sleep = options.sleep
        self._rng = options.rng or random.Random()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.redacted_url!r})"

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def _exchange(
        self, method: str, url: str, content: bytes | None, headers: dict[str, str]
    ) -> tuple[httpx.Response, bytes]:
        """One request and its whole body, within ``timeout_s`` in total: httpx's timeouts bound each read, so
        a server trickling its answer a byte at a time could otherwise hold a call forever."""
        started = time.monotonic()
        chunks: list[bytes] = []
        with self._client.stream(method, url, content=content, headers=headers, timeout=self._timeout) as resp:
            for chunk in resp.iter_bytes():
                chunks.append(chunk)
                if time.monotonic() - started > self.options.timeout_s:
                    raise httpx.ReadTimeout(f"the answer took longer than {self.options.timeout_s:g} s in total")
        return resp, b"".join(chunks)

    def _scrub(self, text: str) -> str:
        return text.replace(self._endpoint, self.redacted_url) if self._endpoint else text

    def _backoff(self, attempt: int, err: TransientError) -> float:
        return backoff_delay(attempt, err, backoff_s=self.options.backoff_s, max_backoff_s=self.options.max_backoff_s,
                             rng=self._rng)

    def _send(
        self,
        method: str,
        url: str,
        content: bytes | None,
        headers: dict[str, str],
        what: str,
        answer: Callable[[httpx.Response, bytes], T | TransientError],
        charge: Callable[[], object] | None = None,
    ) -> T:
        """Send one request, retrying transient faults (at most ``max_retries`` times); ``answer`` gets each
        response but a 429, with its body, and returns the value, a :class:`TransientError` to retry, or raises.
        ``charge`` runs before every attempt, retries included (a rate budget: it may wait, or raise)."""
        attempt = 0
        while True:
            err: TransientError
            if charge is not None:
                charge()
            self.stats.http_requests += 1
            self.stats.bytes_sent += len(content or b"")
            try:
                resp, body = self._exchange(method, url, content, headers)
            except httpx.TransportError as exc:
                err = transport_error(
                    exc,
                    what,
                    timeout_s=self.options.timeout_s,
                    redacted_url=self.redacted_url,
                    scrub=self._scrub,
                    url_label=self._url_label,
                )
            except httpx.HTTPError as exc:  # e.g. a body that does not decode (corrupt gzip): the answer is broken
                err = RpcUnavailableError(f"{what}: unreadable answer from {self.redacted_url} "
                                          f"({type(exc).__name__})")
            else:
                self.stats.bytes_received += len(body)
                if resp.status_code == 429:
                    retry_after = retry_after_s(resp.headers.get("retry-after"))
                    err = RateLimitedError(f"{what}: HTTP 429 from {self.redacted_url}", retry_after=retry_after)
                else:
                    outcome = answer(resp, body)
                    if not isinstance(outcome, TransientError):
                        return outcome
                    err = outcome
            if isinstance(err, RpcUnavailableError) and (err.retry_after or 0) > self.options.max_backoff_s:
                raise err  # told to come back later than we wait: fail now (a fallback endpoint may answer)
            if attempt >= self.options.max_retries:
                raise err
            delay = self._backoff(attempt, err)
            attempt += 1
            self.stats.http_retries += 1
            self._sleep(delay)
