"""The connector error tree.

Every error raised by a connector subclasses :class:`ConnectorError` and a builtin, so callers can
catch either. Caller faults are separated from transient faults (worth a retry) and venue faults::

    ConnectorError
    ├── InvalidInputError (ValueError)          caller fault: bad address, unknown symbol, bad block
    │   └── InvalidAddressError
    ├── TransientError                          worth retrying
    │   ├── RpcTimeoutError (TimeoutError)
    │   ├── RpcUnavailableError (ConnectionError)   node down, connection refused, 5xx, 429
    │   └── RateLimitedError
    ├── RpcError (RuntimeError)                 the node answered with a JSON-RPC error
    │   ├── CallRevertedError                   an eth_call reverted (carries the revert data)
    │   └── RequestTooLargeError                out of gas / request or response over the node's cap
    ├── DecodeError (ValueError)                malformed / truncated / unexpected answer
    └── OracleError (ValueError)                a price that cannot be used (zero, negative)
"""

from __future__ import annotations

__all__ = [
    "CallRevertedError",
    "ConnectorError",
    "DecodeError",
    "InvalidAddressError",
    "InvalidInputError",
    "OracleError",
    "RateLimitedError",
    "RequestTooLargeError",
    "RpcError",
    "RpcTimeoutError",
    "RpcUnavailableError",
    "TransientError",
]


class ConnectorError(Exception):
    """Base of every error a connector raises."""


class InvalidInputError(ConnectorError, ValueError):
    """The caller passed something invalid (not worth retrying)."""


class InvalidAddressError(InvalidInputError):
    """A string that is not a 20-byte hex address (or fails its EIP-55 checksum)."""


class TransientError(ConnectorError):
    """A fault that may go away on retry."""


class RpcTimeoutError(TransientError, TimeoutError):
    """The node did not answer in time."""


class RpcUnavailableError(TransientError, ConnectionError):
    """The node could not be reached or answered with an HTTP error status; ``retry_after`` in seconds when it
    said when to come back (``Retry-After`` on a 503)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RateLimitedError(RpcUnavailableError):
    """HTTP 429, or a JSON-RPC error that says the caller is rate limited; ``retry_after`` in seconds when the
    node said so."""


class RpcError(ConnectorError, RuntimeError):
    """The node answered with a JSON-RPC error object."""

    def __init__(self, message: str, code: int | None = None, data: object = None) -> None:
        super().__init__(message)
        self.code = code
        self.data = data


class CallRevertedError(RpcError):
    """A call reverted; ``revert_data`` holds the raw revert bytes when known.

    ``reason`` is the decoded ``Error(string)`` / ``Panic(uint256)`` / custom-error selector, when there is one.
    """

    def __init__(
        self,
        message: str,
        revert_data: bytes = b"",
        target: str | None = None,
        *,
        reason: str | None = None,
        code: int | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.revert_data = revert_data
        self.target = target
        self.reason = reason


class RequestTooLargeError(RpcError):
    """The node refused the work as too big: an ``eth_call`` out of gas, HTTP 413, a body or response cap.

    Not transient (the same request fails again), but a smaller request may pass: split and resend.
    """


class DecodeError(ConnectorError, ValueError):
    """An answer could not be decoded (malformed, truncated, wrong type)."""


class OracleError(ConnectorError, ValueError):
    """A price that must not be used."""
