"""Several RPC endpoints for one chain: a circuit breaker per endpoint, and failover to the next.

:class:`FailoverRpcClient` is an :class:`~connectors.evm.rpc.RpcClient` whose requests go to the first endpoint,
in configured order, whose :class:`CircuitBreaker` lets them through. Each endpoint retries transient faults
itself (backoff with jitter, ``Retry-After``); a request that still fails there — timeout, connection error,
5xx, 429, malformed answer — counts against that endpoint's breaker and goes to the next endpoint. A breaker opens
after ``failure_threshold`` consecutive failures and stays open for ``reset_s`` (doubling while the endpoint keeps
failing, up to ``max_reset_s``); then one trial request is let through (half-open): success closes it.

Every endpoint is checked to serve the configured chain (``eth_chainId``) before its first request: one that
serves another chain is a misconfiguration, not a transient fault — its breaker is held open and it is named in
the error. JSON-RPC errors and reverts are answers, not faults: they are returned as from any endpoint.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Unpack

from connectors.errors import (
    CallRevertedError,
    ConnectorError,
    DecodeError,
    InvalidInputError,
    RpcError,
    RpcUnavailableError,
    TransientError,
)
from connectors.evm.rpc import RpcClient, hex_to_int
from connectors.transport import TransportArgs, TransportOptions

__all__ = ["BreakerState", "ChainMismatchError", "CircuitBreaker", "EndpointStatus", "FailoverRpcClient"]

BreakerState = Literal["closed", "open", "half_open"]
ENDPOINT_HTTP_FAULTS = frozenset({401, 402, 403, 404, 405, 407, 410})
"""HTTP statuses that say this endpoint will not serve us (key, quota, path): fail over, count against it."""
log = logging.getLogger(__name__)


class ChainMismatchError(RpcError):
    """An endpoint serves another chain than the one configured."""


@dataclass
class CircuitBreaker:
    """Closed → open after ``failure_threshold`` consecutive failures → half-open after ``reset_s`` → closed on
    one success (or open again, for twice as long, up to ``max_reset_s``). Thread-safe."""

    failure_threshold: int = 3
    reset_s: float = 30.0
    max_reset_s: float = 600.0
    clock: Callable[[], float] = time.monotonic
    failures: int = 0
    opened_at: float | None = None
    open_for_s: float = 0.0
    trips: int = 0
    _trial: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if self.failure_threshold < 1 or self.reset_s <= 0 or self.max_reset_s < self.reset_s:
            raise InvalidInputError("circuit breaker: failure_threshold >= 1 and 0 < reset_s <= max_reset_s")

    @property
    def state(self) -> BreakerState:
        if self.opened_at is None:
            return "closed"
        return "half_open" if self.clock() - self.opened_at >= self.open_for_s else "open"

    def allow(self) -> bool:
        """Whether a request may go now (in half-open, only one trial at a time)."""
        with self._lock:
            state = self.state
            if state == "closed":
                return True
            if state == "half_open" and not self._trial:
                self._trial = True
                return True
            return False

    def success(self) -> None:
        with self._lock:
            self.failures = 0
            self.opened_at = None
            self.open_for_s = 0.0
            self._trial = False

    def failure(self) -> None:
        with self._lock:
            self.failures += 1
            if self._trial or self.opened_at is not None:  # the half-open trial failed: open again, longer
                self._open(min(self.max_reset_s, max(self.reset_s, 2 * self.open_for_s)))
            elif self.failures >= self.failure_threshold:
                self._open(self.reset_s)

    def hold_open(self, seconds: float) -> None:
        """Open now for ``seconds`` (a misconfigured endpoint)."""
        with self._lock:
            self._open(seconds)

    def _open(self, seconds: float) -> None:
        self.opened_at = self.clock()
        self.open_for_s = seconds
        self.trips += 1
        self._trial = False


@dataclass(frozen=True)
class EndpointStatus:
    """One endpoint as metrics and messages show it (its URL redacted)."""

    url: str
    state: BreakerState
    failures: int
    trips: int
    requests: int


class _Endpoint:
    def __init__(self, client: RpcClient, breaker: CircuitBreaker) -> None:
        self.client = client
        self.breaker = breaker
        self.chain_checked = False


class FailoverRpcClient(RpcClient):
    """JSON-RPC over the first healthy endpoint of ``urls`` (see the module docstring).

    Parameters
    ----------
    urls:
        The primary endpoint first, then the fallbacks, in the order they are tried.
    chain_id:
        The chain every endpoint must serve (checked once per endpoint); ``None`` skips the check.
    failure_threshold, reset_s, max_reset_s:
        The breakers' settings.
    options, **transport:
        Every endpoint's :class:`~connectors.transport.TransportOptions` (``timeout_s``, ``max_retries`` per
        endpoint, ``transport`` …), its fields as keywords, or both (the keywords win).
    """

    def __init__(
        self,
        urls: Sequence[str],
        *,
        chain_id: int | None = None,
        failure_threshold: int = 3,
        reset_s: float = 30.0,
        max_reset_s: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
        options: TransportOptions | None = None,
        **transport: Unpack[TransportArgs],
    ) -> None:
        if not urls:
            raise InvalidInputError("a chain needs at least one RPC URL")
        options = TransportOptions.of(options, **transport)
        super().__init__(urls[0], options=options)
        self.expected_chain_id = chain_id
        self._endpoints: list[_Endpoint] = []
        for url in urls:
            client = RpcClient(url, options=options)
            client.stats = self.stats  # one set of counters for the chain, whichever endpoint answered
            self._endpoints.append(_Endpoint(client, CircuitBreaker(failure_threshold, reset_s, max_reset_s, clock)))
        self._served: dict[str, int] = {ep.client.redacted_url: 0 for ep in self._endpoints}
        self.redacted_url = ", ".join(ep.client.redacted_url for ep in self._endpoints)

    def close(self) -> None:
        for ep in self._endpoints:
            ep.client.close()
        super().close()

    def endpoints(self) -> list[EndpointStatus]:
        """Each endpoint's breaker, in configured order."""
        return [EndpointStatus(ep.client.redacted_url, ep.breaker.state, ep.breaker.failures, ep.breaker.trips,
                               self._served[ep.client.redacted_url]) for ep in self._endpoints]

    def _check_chain(self, ep: _Endpoint) -> None:
        if self.expected_chain_id is None or ep.chain_checked:
            return
        body = ep.client._post(json.dumps({"jsonrpc": "2.0", "id": 0, "method": "eth_chainId", "params": []})
                               .encode(), "eth_chainId")
        if not isinstance(body, dict) or "result" not in body:
            raise DecodeError(f"eth_chainId: unexpected answer from {ep.client.redacted_url}")
        served = hex_to_int(body["result"], "eth_chainId")
        if served != self.expected_chain_id:
            raise ChainMismatchError(f"{ep.client.redacted_url} serves chain id {served}, not the configured "
                                     f"chain id {self.expected_chain_id}")
        ep.chain_checked = True

    def _post(self, payload: bytes, what: str) -> Any:
        """Send through the first endpoint whose breaker allows it; fail over on transport faults."""
        failures: list[str] = []
        errors: list[ConnectorError] = []
        for ep in self._endpoints:
            if not ep.breaker.allow():
                failures.append(f"{ep.client.redacted_url}: circuit open after {ep.breaker.failures} failures")
                continue
            try:
                self._check_chain(ep)
                body = ep.client._post(payload, what)
            except (ChainMismatchError, InvalidInputError) as exc:  # misconfigured: serves another chain, bad URL
                ep.breaker.hold_open(ep.breaker.max_reset_s)
                log.error("RPC endpoint %s set aside: %s", ep.client.redacted_url, exc)
                failures.append(str(exc))
                errors.append(exc)
                continue
            except (TransientError, DecodeError) as exc:
                ep.breaker.failure()
                failures.append(f"{ep.client.redacted_url}: {exc}")
                errors.append(exc)
                continue
            except RpcError as exc:
                if exc.code in ENDPOINT_HTTP_FAULTS and not isinstance(exc, CallRevertedError):
                    # The endpoint refuses us (key revoked, quota, wrong path): another endpoint may not.
                    ep.breaker.failure()
                    failures.append(f"{ep.client.redacted_url}: {exc}")
                    errors.append(exc)
                    continue
                ep.breaker.success()  # the endpoint answered: a JSON-RPC error / too large is the request's fault
                raise
            except BaseException:
                ep.breaker.failure()  # never leave a half-open trial taken
                raise
            ep.breaker.success()
            self._served[ep.client.redacted_url] += 1
            return body
        if len(self._endpoints) == 1 and errors:
            raise errors[0]  # one endpoint: its own error, as a plain client raises it
        if errors and len(errors) == len(self._endpoints) and all(isinstance(e, ChainMismatchError) for e in errors):
            raise ChainMismatchError(f"{what}: every RPC endpoint serves another chain ({'; '.join(failures)})")
        raise RpcUnavailableError(f"{what}: no RPC endpoint answered ({'; '.join(failures)})") from (
            errors[-1] if errors else None)

