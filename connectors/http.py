"""A small JSON-over-HTTP client for the off-chain venues (perp exchanges' REST APIs): retries, error
mapping, the server's ``Date``, counters; and :class:`HttpVenueConnector`, the lifecycle those venues'
connectors share.

Error mapping (see :mod:`connectors.errors`), the same as :class:`~connectors.evm.rpc.RpcClient`'s::

    httpx timeout                              → RpcTimeoutError      (retried)
    connection refused / reset, HTTP 5xx        → RpcUnavailableError  (retried)
    HTTP 429                                    → RateLimitedError     (retried after Retry-After, if short; the
                                                                      budget is put on hold for it when raised)
    the client's rate budget exhausted for
    longer than max_backoff_s                   → RateLimitedError     (raised before sending: not retried)
    HTTP 400 / 404 / 422 (unless allowed)       → InvalidInputError    (the request was wrong: never retried)
    any other HTTP 4xx                          → RpcError(code=status)
    malformed JSON                              → DecodeError

Only idempotent reads go through this client, so every transient fault is retried (exponential backoff
with jitter). Base URLs may carry API keys: they are shown only through
:func:`~connectors.transport.redact_url`. The retry loop, the timeout / connection / 429 mapping and
``retry_after_s`` live in :mod:`connectors.transport`, shared with the JSON-RPC client.

A client with a :class:`~connectors.ratelimit.RateBudget` charges every attempt (retries included) the weight
of its request (by the request's ``name``, from the venue's :class:`~connectors.base.RateLimit`) before sending
it, waiting while the budget is exhausted. :class:`HttpVenueConnector` gives its client the budget of its
class's declared limit (``capabilities.rate_limit``), or the one it is handed.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, Literal, TypeVar, Unpack

import httpx

from connectors.base import Capabilities, RateLimit
from connectors.errors import (
    DecodeError,
    InvalidInputError,
    RateLimitedError,
    RpcError,
    RpcUnavailableError,
    TransientError,
)
from connectors.ratelimit import BudgetExhaustedError, RateBudget
from connectors.transport import (
    ClosingContext,
    RetryingHttpClient,
    TransportArgs,
    TransportOptions,
    redact_url,
    retry_after_s,
)

__all__ = [
    "HttpResponse",
    "HttpStats",
    "HttpVenueConnector",
    "JsonHttpClient",
    "http_date_ms",
    "json_decimal",
    "json_dict",
    "json_int",
    "json_list",
    "json_str",
    "retry_after_s",
    "snapshot_time",
]

S = TypeVar("S", bound=str)

_CALLER_FAULTS = frozenset({400, 404, 422})


def http_date_ms(value: str | None) -> int | None:
    """An HTTP ``Date`` header (RFC 7231 IMF-fixdate) as unix milliseconds; None when absent or unparsable."""
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return int(when.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """A decoded answer: its JSON ``body``, HTTP ``status`` and the server's ``Date`` (unix ms, if sent)."""

    body: Any
    status: int
    date_ms: int | None


@dataclass
class HttpStats:
    """Counters of one client: ``http_requests`` counts every request, retries included; ``weight`` the rate-limit
    weight charged for them (with a budget), ``rate_wait_s`` the seconds spent waiting for the budget."""

    http_requests: int = 0
    http_retries: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    requests_by_name: dict[str, int] = field(default_factory=dict)
    weight: int = 0
    rate_wait_s: float = 0.0

    def reset(self) -> None:
        self.http_requests = self.http_retries = self.bytes_sent = self.bytes_received = self.weight = 0
        self.rate_wait_s = 0.0
        self.requests_by_name.clear()


class JsonHttpClient(RetryingHttpClient):
    """JSON requests to one base URL.

    Parameters
    ----------
    base_url:
        ``scheme://host[:port][/prefix]``; request paths are appended to it.
    headers:
        Sent with every request (beside ``accept: application/json``).
    options, **transport:
        Timeout, retries, backoff, client, transport, sleep and rng: a
        :class:`~connectors.transport.TransportOptions`, its fields as keywords, or both (the keywords win).
    budget:
        The :class:`~connectors.ratelimit.RateBudget` every attempt is charged to (its limit weighs each request
        by its ``name``); a wait longer than ``max_backoff_s`` raises :class:`RateLimitedError`. None: unlimited.
    """

    stats: HttpStats

    def __init__(
        self,
        base_url: str,
        *,
        headers: dict[str, str] | None = None,
        options: TransportOptions | None = None,
        budget: RateBudget | None = None,
        **transport: Unpack[TransportArgs],
    ) -> None:
        super().__init__(
            base_url,
            endpoint=base_url.rstrip("/"),
            headers={"accept": "application/json", **(headers or {})},
            options=TransportOptions.of(options, **transport),
        )
        self.stats = HttpStats()
        self.budget = budget

    # --- requests ------------------------------------------------------------------------------------
    def get(self, path: str, *, name: str | None = None, allow_status: Collection[int] = ()) -> HttpResponse:
        """``GET {base_url}{path}``; statuses in ``allow_status`` come back instead of raising."""
        return self._request("GET", path, None, name or path, allow_status)

    def post(
        self, path: str, payload: Any, *, name: str | None = None, allow_status: Collection[int] = ()
    ) -> HttpResponse:
        """``POST {base_url}{path}`` with ``payload`` as its JSON body."""
        return self._request("POST", path, json.dumps(payload).encode(), name or path, allow_status)

    # --- internals -----------------------------------------------------------------------------------
    def _request(
        self, method: str, path: str, content: bytes | None, name: str, allow_status: Collection[int]
    ) -> HttpResponse:
        headers = dict(self._headers)
        if content is not None:
            headers["content-type"] = "application/json"
        self.stats.requests_by_name[name] = self.stats.requests_by_name.get(name, 0) + 1

        def answer(resp: httpx.Response, body_bytes: bytes) -> HttpResponse | TransientError:
            status = resp.status_code
            if status >= 500:
                return RpcUnavailableError(f"{name}: HTTP {status} from {self.redacted_url}")
            return self._answer(resp, body_bytes, status, name, allow_status)

        try:
            return self._send(method, self._endpoint + path, content, headers, name, answer,
                              charge=None if self.budget is None else lambda: self._charge(name))
        except BudgetExhaustedError:
            raise
        except RateLimitedError as exc:  # the venue's 429: nothing more before its Retry-After
            if self.budget is not None:
                self.budget.hold(exc.retry_after)
            raise

    def _charge(self, name: str) -> None:
        """Pay the budget for one attempt of ``name`` (waiting for it, or raising past ``max_backoff_s``)."""
        assert self.budget is not None
        weight = self.budget.limit.weight(name)
        waited = self.budget.charge(weight, what=f"{name} to {self.redacted_url}",
                                    max_wait_s=self.options.max_backoff_s, endpoint=name)
        self.stats.weight += weight
        self.stats.rate_wait_s += waited

    def _answer(
        self, resp: httpx.Response, body_bytes: bytes, status: int, name: str, allow_status: Collection[int]
    ) -> HttpResponse:
        date_ms = http_date_ms(resp.headers.get("date"))
        if status >= 400 and status not in allow_status:
            detail = _error_detail(body_bytes)
            text = f"{name}: HTTP {status} from {self.redacted_url}" + (f": {detail}" if detail else "")
            if status in _CALLER_FAULTS:
                raise InvalidInputError(text)
            raise RpcError(text, code=status)
        try:
            body = json.loads(body_bytes)
        except (ValueError, UnicodeDecodeError):
            raise DecodeError(
                f"{name}: malformed JSON from {self.redacted_url} ({len(body_bytes)} bytes, HTTP {status})"
            ) from None
        return HttpResponse(body=body, status=status, date_ms=date_ms)


class HttpVenueConnector(ClosingContext):
    """What the off-chain venues' connectors share: their :class:`JsonHttpClient` (``http``, its ``stats``),
    ``close`` and the context manager, the repr (the redacted base URL), the clock a snapshot falls back on, and
    the client's rate budget (``budget``).

    ``options``: the client's :class:`~connectors.transport.TransportOptions`; ``clock_ms`` (unix ms) defaults to
    this machine's clock; and:

    rate_limit:
        The limit to enforce when not the venue's published one (``capabilities.rate_limit``): an explicit setting
        for a private or local API server (the devnet's), never implied by the URL.
    budget:
        A budget to share (:func:`connectors.ratelimit.shared_budget`: one per venue and host in a process);
        default: one of this connector's own, under ``rate_limit`` or the declared limit, waiting with the
        options' ``sleep``.
    """

    capabilities: ClassVar[Capabilities]

    def __init__(
        self,
        base_url: str,
        *,
        options: TransportOptions,
        clock_ms: Callable[[], int] | None,
        rate_limit: RateLimit | None = None,
        budget: RateBudget | None = None,
    ) -> None:
        limit = rate_limit or self.capabilities.rate_limit
        if budget is None and limit is not None:
            budget = RateBudget(limit, where=f"{self.capabilities.venue_type} at {redact_url(base_url)}",
                                sleep=options.sleep)
        self.budget = budget
        self.http = JsonHttpClient(base_url, options=options, budget=budget)
        self._clock_ms = clock_ms or (lambda: int(time.time() * 1000))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.http.redacted_url!r})"

    @property
    def stats(self) -> HttpStats:
        return self.http.stats

    def close(self) -> None:
        self.http.close()

    def _time(self, date_ms: int | None) -> tuple[int, Literal["http_date", "local_clock"]]:
        """An answer's time: its HTTP ``Date`` when sent, else this machine's clock; and which it is."""
        return (date_ms, "http_date") if date_ms is not None else (self._clock_ms(), "local_clock")


_SOURCE_RANK = {"venue": 0, "http_date": 1, "local_clock": 2}


def snapshot_time(times: Sequence[tuple[int, S]]) -> tuple[int, S]:
    """The snapshot's time: the oldest of the times from the best source present (venue > HTTP Date > local)."""
    best = min(_SOURCE_RANK[s] for _, s in times)
    chosen = [(t, s) for t, s in times if _SOURCE_RANK[s] == best]
    return min(chosen, key=lambda ts: ts[0])


def _error_detail(body: bytes, limit: int = 200) -> str:
    """A short, printable detail of an error body (``{"errors": [{"msg": ...}]}`` bodies; else the text)."""
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return body[:limit].decode("utf-8", errors="replace").strip()
    if isinstance(parsed, dict) and isinstance(parsed.get("errors"), list):
        msgs = [str(e.get("msg")) for e in parsed["errors"] if isinstance(e, dict) and "msg" in e]
        if msgs:
            return "; ".join(msgs)[:limit]
    return json.dumps(parsed)[:limit]


# --- field decoding of JSON payloads (every failure is a DecodeError naming the field) ---------------
_MISSING = object()


def _get(obj: Mapping[str, Any], key: str, what: str, default: Any) -> Any:
    if not isinstance(obj, Mapping):
        raise DecodeError(f"{what}: expected an object, got {type(obj).__name__}")
    value = obj.get(key, _MISSING)
    if value is _MISSING:
        if default is _MISSING:
            raise DecodeError(f"{what}: missing field {key!r}")
        return default
    return value


def json_decimal(obj: Mapping[str, Any], key: str, what: str, default: Any = _MISSING) -> Any:
    """``obj[key]`` as an exact :class:`~decimal.Decimal` (a decimal string or an integer; a JSON float is
    read through its shortest repr). ``None`` stays ``None`` only when ``default`` is given as ``None``.

    A number whose magnitude a float64 cannot hold (above ~1.8e308, or non-zero below ~4.9e-324) is a
    :class:`DecodeError` like NaN and infinities: every venue figure becomes a float64 for the risk engine, and
    Decimal arithmetic on such exponents overflows the default context (``decimal.Overflow``)."""
    value = _get(obj, key, what, default)
    if value is None and default is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise DecodeError(f"{what}.{key}: expected a decimal string, got {value!r}")
    try:
        out = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except (InvalidOperation, ValueError):
        raise DecodeError(f"{what}.{key}: not a decimal number: {value!r}") from None
    if not out.is_finite():
        raise DecodeError(f"{what}.{key}: not a finite number: {value!r}")
    as_float = float(out)
    if math.isinf(as_float) or (as_float == 0.0 and out != 0):
        raise DecodeError(f"{what}.{key}: out of the range of a float64: {value!r}")
    return out


def json_int(obj: Mapping[str, Any], key: str, what: str, default: Any = _MISSING) -> Any:
    """``obj[key]`` as an ``int`` (a JSON integer or an integer string)."""
    value = _get(obj, key, what, default)
    if value is default and default is not _MISSING:
        return value
    if isinstance(value, bool):
        raise DecodeError(f"{what}.{key}: expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    raise DecodeError(f"{what}.{key}: expected an integer, got {value!r}")


def _json_typed(obj: Mapping[str, Any], key: str, what: str, default: Any, kind: type, label: str) -> Any:
    value = _get(obj, key, what, default)
    if value is default and default is not _MISSING:
        return value
    if not isinstance(value, kind):
        shown = repr(value) if kind is str else type(value).__name__
        raise DecodeError(f"{what}.{key}: expected {label}, got {shown}")
    return value


def json_str(obj: Mapping[str, Any], key: str, what: str, default: Any = _MISSING) -> Any:
    return _json_typed(obj, key, what, default, str, "a string")


def json_dict(obj: Mapping[str, Any], key: str, what: str, default: Any = _MISSING) -> Any:
    return _json_typed(obj, key, what, default, dict, "an object")


def json_list(obj: Mapping[str, Any], key: str, what: str, default: Any = _MISSING) -> Any:
    return _json_typed(obj, key, what, default, list, "an array")
