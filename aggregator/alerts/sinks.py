"""Alert delivery: where the rules engine's alerts go (a log line, a signed webhook).

A sink takes an :class:`AlertEvent` and returns a :class:`DeliveryResult`; it never raises for a delivery
fault (an unreachable receiver, a timeout, an HTTP error), only for a programming error (a closed sink).

:class:`LogSink` writes one line per alert on the ``xmargin.alerts`` logger (WARNING; ``critical`` → ERROR).

Webhook protocol (:class:`WebhookSink`)
---------------------------------------
Each alert is one ``POST`` to the configured URL.

Body
    The canonical JSON of :meth:`AlertEvent.to_json`, UTF-8:
    ``json.dumps(event.to_json(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)``. It carries
    ``"version": 1``; ``fired_at`` is ISO-8601 in UTC (``2024-05-01T12:00:00+00:00``). JSON has no
    infinities: a non-finite number (e.g. the health factor of a position without debt) is sent as ``null``.

Headers
    ``Content-Type: application/json``,
    ``User-Agent: xmargin/<version>``,
    ``X-Xmargin-Event-Id: <event_id>`` (the same alert always has the same id; delivery is *at least once*,
    so receivers deduplicate on it),
    ``X-Xmargin-Timestamp: <unix seconds>``,
    ``X-Xmargin-Signature: sha256=<hex>``: the HMAC-SHA256, keyed with the shared secret, of
    ``"<timestamp>." + body`` (the raw body bytes, exactly as received).

Verifying (receivers)
    Recompute the HMAC over ``X-Xmargin-Timestamp`` + ``"."`` + the raw body, compare it with the signature
    in constant time, and reject timestamps more than 5 minutes away from your clock (the timestamp is
    signed, so a captured request cannot be replayed later). :func:`verify` does all of this::

        ok = verify(secret, headers["X-Xmargin-Timestamp"], raw_body, headers["X-Xmargin-Signature"])

Success, retries
    Any 2xx is success. Connection errors, timeouts (connect, read and write: ``timeout_s`` each), 5xx, 408
    and 429 are retried, up to ``max_attempts`` attempts in all; a 429 or 503 waits its ``Retry-After``
    (seconds or an HTTP date, capped at ``max_backoff_s``), anything else waits an exponential backoff with
    full jitter (uniform in ``[0, min(max_backoff_s, backoff_s · 2^(attempt-1))]``). Any other answer (4xx,
    a redirect: redirects are not followed) fails at once. Every attempt is signed afresh, with a new
    timestamp, so a retry after a long ``Retry-After`` is not rejected as stale.

Secrets
    The signing secret is never logged nor returned. The URL may carry credentials or a token (userinfo,
    path, query): it appears in logs and errors only as :func:`connectors.transport.redact_url` gives it
    (``scheme://host[:port]``); the sink's ``name`` tells webhooks on one host apart.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from typing import Literal, Protocol, runtime_checkable

import httpx

from connectors.transport import ClosingContext, redact_url, retry_after_s

__all__ = [
    "ALERTS_LOGGER",
    "EVENT_ID_HEADER",
    "PROTOCOL_VERSION",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "AlertEvent",
    "DeliveryResult",
    "LogSink",
    "Severity",
    "Sink",
    "WebhookSink",
    "canonical_body",
    "sign",
    "verify",
]

Severity = Literal["info", "warning", "critical"]
_SEVERITIES: frozenset[str] = frozenset({"info", "warning", "critical"})

PROTOCOL_VERSION = 1
EVENT_ID_HEADER = "X-Xmargin-Event-Id"
TIMESTAMP_HEADER = "X-Xmargin-Timestamp"
SIGNATURE_HEADER = "X-Xmargin-Signature"
_SIGNATURE_PREFIX = "sha256="
_HEX_DIGEST = re.compile(r"[0-9a-f]{64}", re.ASCII)
_UNIX_SECONDS = re.compile(r"[0-9]{1,15}", re.ASCII)
_RETRYABLE_STATUSES = frozenset({408, 429})
_RETRY_AFTER_STATUSES = frozenset({429, 503})

ALERTS_LOGGER = "xmargin.alerts"
_log = logging.getLogger(f"{ALERTS_LOGGER}.webhook")


def _version() -> str:
    try:
        return metadata.version("xmargin")
    except metadata.PackageNotFoundError:
        return "0.1"


USER_AGENT = f"xmargin/{_version()}"


def _json_safe(value: object) -> object:
    """``value`` as plain JSON types: mappings → dicts (string keys), sequences → lists, non-finite
    floats → None (JSON has no infinities)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


@dataclass(frozen=True)
class AlertEvent:
    """One firing of a rule, as the sinks deliver it."""

    event_id: str
    rule_id: int
    wallet: str
    kind: str
    severity: Severity
    message: str
    value: float | None
    threshold: float | None
    chain_id: int | None
    block_number: int | None
    fired_at: datetime
    details: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.event_id:
            raise ValueError("AlertEvent.event_id must not be empty")
        if self.severity not in _SEVERITIES:
            raise ValueError(f"AlertEvent.severity must be one of {sorted(_SEVERITIES)}, not {self.severity!r}")
        if self.fired_at.tzinfo is None or self.fired_at.utcoffset() is None:
            raise ValueError("AlertEvent.fired_at must be timezone-aware (UTC)")
        # A private copy: the caller mutating its dict afterwards must not change a pending delivery.
        object.__setattr__(self, "details", dict(self.details))

    def to_json(self) -> dict[str, object]:
        """The webhook body (before canonical serialization, see :func:`canonical_body`)."""
        return {
            "version": PROTOCOL_VERSION,
            "event_id": self.event_id,
            "rule_id": self.rule_id,
            "wallet": self.wallet,
            "kind": self.kind,
            "severity": self.severity,
            "message": self.message,
            "value": _json_safe(self.value),
            "threshold": _json_safe(self.threshold),
            "chain_id": self.chain_id,
            "block_number": self.block_number,
            "fired_at": self.fired_at.astimezone(UTC).isoformat(),
            "details": _json_safe(self.details),
        }


def canonical_body(event: AlertEvent) -> bytes:
    """The exact bytes a webhook POSTs (and signs) for ``event``."""
    return json.dumps(
        event.to_json(), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


@dataclass(frozen=True)
class DeliveryResult:
    """How one delivery went. ``error`` never holds the secret nor the URL beyond ``scheme://host[:port]``."""

    sink: str
    ok: bool
    attempts: int
    status_code: int | None
    error: str | None


@runtime_checkable
class Sink(Protocol):
    """Where alerts go. ``deliver`` reports delivery faults in its result instead of raising."""

    name: str

    def deliver(self, event: AlertEvent) -> DeliveryResult: ...

    def close(self) -> None: ...


def _key(secret: str | bytes) -> bytes:
    key = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    if not key:
        raise ValueError("the webhook secret must not be empty")
    return key


def sign(secret: str | bytes, timestamp: int, body: bytes) -> str:
    """``"sha256=" + hex(HMAC-SHA256(secret, f"{timestamp}." + body))``."""
    mac = hmac.new(_key(secret), f"{int(timestamp)}.".encode("ascii") + body, hashlib.sha256)
    return _SIGNATURE_PREFIX + mac.hexdigest()


def verify(
    secret: str | bytes,
    timestamp: str | int,
    body: bytes,
    signature: str,
    *,
    now: float | None = None,
    tolerance_s: float = 300,
) -> bool:
    """Whether ``signature`` (the ``X-Xmargin-Signature`` header) signs ``body`` at ``timestamp`` (the
    ``X-Xmargin-Timestamp`` header) with ``secret``, and the timestamp is within ``tolerance_s`` of ``now``
    (default: the system clock), either way. Malformed headers are simply not valid; the digests are
    compared in constant time. Raises ValueError only for an empty secret (a misconfigured receiver)."""
    key = _key(secret)
    if isinstance(timestamp, bool):
        return False
    if isinstance(timestamp, int):
        ts = timestamp
    elif isinstance(timestamp, str) and _UNIX_SECONDS.fullmatch(timestamp):
        ts = int(timestamp)
    else:
        return False
    if ts < 0 or abs((time.time() if now is None else now) - ts) > tolerance_s:
        return False
    if not isinstance(signature, str) or not signature.startswith(_SIGNATURE_PREFIX):
        return False
    given = signature[len(_SIGNATURE_PREFIX) :]
    if not _HEX_DIGEST.fullmatch(given):
        return False
    expected = sign(key, ts, body)[len(_SIGNATURE_PREFIX) :]
    return hmac.compare_digest(expected.encode("ascii"), given.encode("ascii"))


def _one_line(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\r", "\\r").replace("\n", "\\n")


class LogSink:
    """Logs one line per alert on the ``xmargin.alerts`` logger: WARNING, or ERROR for ``critical``.

    The record carries the event's JSON as ``record.alert`` for structured handlers. Always ``ok``.
    """

    def __init__(self, name: str = "log", *, logger: logging.Logger | None = None) -> None:
        self.name = name
        self._logger = logger or logging.getLogger(ALERTS_LOGGER)

    def __repr__(self) -> str:
        return f"LogSink({self.name!r})"

    def deliver(self, event: AlertEvent) -> DeliveryResult:
        level = logging.ERROR if event.severity == "critical" else logging.WARNING
        self._logger.log(
            level,
            "alert %s [%s] %s rule=%d wallet=%s value=%s threshold=%s chain=%s block=%s event=%s: %s",
            event.kind,
            event.severity,
            event.fired_at.astimezone(UTC).isoformat(),
            event.rule_id,
            event.wallet,
            event.value,
            event.threshold,
            event.chain_id,
            event.block_number,
            event.event_id,
            _one_line(event.message),
            extra={"alert": event.to_json()},
        )
        return DeliveryResult(sink=self.name, ok=True, attempts=1, status_code=None, error=None)

    def close(self) -> None:
        return None


class WebhookSink(ClosingContext):
    """POSTs each alert, HMAC-signed, to ``url`` (see the module docstring for the protocol).

    Parameters
    ----------
    url:
        ``http(s)://`` receiver URL; may carry credentials or a token (only its scheme and host are shown).
    secret:
        The shared HMAC key (a str is UTF-8 encoded); must not be empty.
    timeout_s:
        Connect, read and write timeout of one attempt.
    max_attempts:
        Attempts in all, the first included (1: never retry).
    backoff_s, max_backoff_s:
        Exponential backoff base and cap; ``max_backoff_s`` also caps ``Retry-After``.
    transport, sleep, clock, rng:
        Injection points (tests): the httpx transport, how to wait, the unix-seconds clock used for the
        signature timestamp and HTTP-date ``Retry-After``, and the jitter's random source.
    """

    def __init__(
        self,
        url: str,
        secret: str | bytes,
        *,
        name: str = "webhook",
        timeout_s: float = 5.0,
        max_attempts: int = 4,
        backoff_s: float = 0.5,
        max_backoff_s: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        redacted = redact_url(url)
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError, ValueError):
            raise ValueError(f"webhook {name!r}: unparsable URL {redacted}") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError(f"webhook {name!r}: URL must be http(s)://host..., not {redacted}")
        self._key = _key(secret)
        if max_attempts < 1:
            raise ValueError(f"webhook {name!r}: max_attempts must be >= 1, not {max_attempts}")
        if not timeout_s > 0:
            raise ValueError(f"webhook {name!r}: timeout_s must be > 0, not {timeout_s}")
        if backoff_s < 0 or max_backoff_s < 0:
            raise ValueError(f"webhook {name!r}: backoff_s and max_backoff_s must be >= 0")
        self.name = name
        self.redacted_url = redacted
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._url = url
        self._sensitive = [
            s for s in {url, str(parsed), parsed.password or "", parsed.query.decode("ascii", "replace")} if len(s) >= 3
        ]
        self._sensitive.sort(key=len, reverse=True)
        self._client = httpx.Client(timeout=httpx.Timeout(timeout_s), transport=transport, follow_redirects=False)
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()

    def __repr__(self) -> str:
        return f"WebhookSink({self.name!r}, {self.redacted_url!r})"

    def close(self) -> None:
        self._client.close()

    def _scrub(self, text: str) -> str:
        for s in self._sensitive:
            text = text.replace(s, "<redacted>")
        secret = self._key.decode("utf-8", "replace")
        return text.replace(secret, "<secret>") if len(secret) >= 3 else text

    def _backoff(self, attempt: int) -> float:
        cap = min(self.max_backoff_s, self.backoff_s * (1 << min(attempt - 1, 62)))
        return self._rng.uniform(0, cap)

    def _fail(self, attempts: int, status: int | None, error: str) -> DeliveryResult:
        error = self._scrub(error)
        _log.warning("alert sink %s: delivery failed: %s", self.name, error)
        return DeliveryResult(sink=self.name, ok=False, attempts=attempts, status_code=status, error=error)

    def deliver(self, event: AlertEvent) -> DeliveryResult:
        try:
            body = canonical_body(event)
        except (TypeError, ValueError) as exc:
            return self._fail(0, None, f"event {event.event_id} is not JSON-serializable: {exc}")
        where = f"{self.redacted_url} (event {event.event_id})"
        status: int | None = None
        attempt = 0
        while True:
            attempt += 1
            timestamp = int(self._clock())
            headers = {
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                EVENT_ID_HEADER: event.event_id,
                TIMESTAMP_HEADER: str(timestamp),
                SIGNATURE_HEADER: sign(self._key, timestamp, body),
            }
            retry_after: float | None = None
            try:
                resp = self._client.post(self._url, content=body, headers=headers)
            except httpx.TimeoutException as exc:
                status = None
                problem = f"timed out after {self.timeout_s:g} s ({type(exc).__name__})"
                retryable = True
            except httpx.HTTPError as exc:
                status = None
                problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                retryable = True
            else:
                status = resp.status_code
                if resp.is_success:
                    _log.debug("alert sink %s: delivered to %s: HTTP %d, attempt %d", self.name, where, status, attempt)
                    return DeliveryResult(sink=self.name, ok=True, attempts=attempt, status_code=status, error=None)
                problem = f"HTTP {status}"
                retryable = status >= 500 or status in _RETRYABLE_STATUSES
                if status in _RETRY_AFTER_STATUSES:
                    retry_after = retry_after_s(resp.headers.get("retry-after"), self._clock())
            if not retryable:
                return self._fail(attempt, status, f"{problem} from {where}; not retried")
            if attempt >= self.max_attempts:
                return self._fail(attempt, status, f"{problem} from {where}; gave up after {attempt} attempts")
            delay = min(retry_after, self.max_backoff_s) if retry_after is not None else self._backoff(attempt)
            _log.info(
                "alert sink %s: attempt %d/%d: %s from %s; retrying in %.2f s",
                self.name,
                attempt,
                self.max_attempts,
                self._scrub(problem),
                where,
                delay,
            )
            self._sleep(delay)
