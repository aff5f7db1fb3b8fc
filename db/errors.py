"""The store's exceptions. Each also subclasses the builtin a caller would naturally catch.

::

    StoreError(Exception)
    ├── InvalidAddressError(StoreError, ValueError)     not 0x + 40 hex digits
    ├── UnknownReferenceError(StoreError, LookupError)  a wallet or venue the store does not know
    └── SyncWriteError(StoreError, RuntimeError)        write_sync rolled back; the cause is chained
"""

from __future__ import annotations

__all__ = ["InvalidAddressError", "StoreError", "SyncWriteError", "UnknownReferenceError"]


class StoreError(Exception):
    """Base of every error raised by :mod:`db`."""


class InvalidAddressError(StoreError, ValueError):
    """An address that is not ``0x`` followed by 40 hex digits."""


class UnknownReferenceError(StoreError, LookupError):
    """A row refers to a wallet or venue that is not in the store (add it first)."""


class SyncWriteError(StoreError, RuntimeError):
    """:meth:`db.Store.write_sync` failed and nothing of the batch was written.

    ``failed_run_id`` is the id of the ``failed`` sync run recorded afterwards in its own transaction, or
    ``None`` when none was recorded. The original exception is ``__cause__``.
    """

    def __init__(self, message: str, failed_run_id: int | None = None) -> None:
        super().__init__(message)
        self.failed_run_id = failed_run_id
