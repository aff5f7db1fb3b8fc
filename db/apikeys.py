"""HTTP API keys, stored hashed.

A key is ``xm_`` followed by 43 URL-safe characters (256 random bits); the store keeps its SHA-256 and its
first characters (``prefix``, to name it in listings), never the key. A fast hash is the right one here: the
key is random, not a password, so there is nothing to brute-force, and a lookup costs one indexed query.
:class:`ApiKeyStore` is mixed into :class:`db.Store`.

Every key has a scope, each covering the ones before it: ``read`` (reads), ``write`` (wallets and alert rules,
and reads), ``admin`` (API keys, and everything else). Keys made before scopes existed are ``write``.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, get_args

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from db.engine import read_transaction, write_transaction
from db.errors import StoreError
from db.models import Base

__all__ = ["DEFAULT_SCOPE", "KEY_PREFIX", "SCOPES", "ApiKeyRow", "ApiKeyStore", "DuplicateNameError", "Scope",
           "covers", "hash_key"]

KEY_PREFIX = "xm_"
_PREFIX_LEN = 10
KEYS = Base.metadata.tables["api_keys"]

Scope = Literal["read", "write", "admin"]
SCOPES: tuple[Scope, ...] = get_args(Scope)
"""Narrowest first; each covers the ones before it."""
DEFAULT_SCOPE: Scope = "read"
"""A key is made for reading unless writing is asked for (the least a key can do)."""


def covers(scope: str, needed: Scope) -> bool:
    """Whether a key of ``scope`` may do what needs ``needed`` (an unknown scope covers nothing)."""
    return scope in SCOPES and SCOPES.index(scope) >= SCOPES.index(needed)


class DuplicateNameError(StoreError, ValueError):
    """An API key with this name exists already."""


def hash_key(key: str) -> str:
    """The stored form of ``key``: SHA-256, hex."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ApiKeyRow:
    """A stored API key (without the key)."""

    id: int
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None
    scope: Scope

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def allows(self, needed: Scope) -> bool:
        """Whether this key may do what needs ``needed``."""
        return covers(self.scope, needed)


def _row(r: Any) -> ApiKeyRow:
    return ApiKeyRow(id=r.id, name=r.name, prefix=r.prefix, created_at=r.created_at, revoked_at=r.revoked_at,
                     scope=r.scope)


_COLUMNS = (KEYS.c.id, KEYS.c.name, KEYS.c.prefix, KEYS.c.created_at, KEYS.c.revoked_at, KEYS.c.scope)


class ApiKeyStore:
    """API keys (mixed into :class:`db.Store`, which provides ``_engine``)."""

    _engine: Engine

    def create_api_key(self, name: str, *, now: datetime, scope: Scope = DEFAULT_SCOPE) -> tuple[ApiKeyRow, str]:
        """A new key named ``name`` with ``scope``: the stored row and the key itself, which is not stored and
        cannot be shown again. Raises :class:`DuplicateNameError` for a name in use (revoked keys keep theirs),
        ``ValueError`` for an unknown scope."""
        name = name.strip()
        if not name or name.isdigit():
            raise ValueError("an API key needs a name that is not a number (numbers are key ids)")
        if scope not in SCOPES:
            raise ValueError(f"unknown API key scope {scope!r}; one of: {', '.join(SCOPES)}")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        try:
            with write_transaction(self._engine) as conn:
                key_id = conn.execute(
                    sa.insert(KEYS).values(name=name, prefix=key[:_PREFIX_LEN], key_hash=hash_key(key),
                                           created_at=now, revoked_at=None, scope=scope).returning(KEYS.c.id)
                ).scalar_one()
        except IntegrityError:
            raise DuplicateNameError(f"an API key named {name!r} exists already") from None
        return ApiKeyRow(id=key_id, name=name, prefix=key[:_PREFIX_LEN], created_at=now, revoked_at=None,
                         scope=scope), key

    def verify_api_key(self, key: str) -> ApiKeyRow | None:
        """The active key matching ``key``, or ``None`` (unknown, malformed or revoked)."""
        if not key.startswith(KEY_PREFIX) or len(key) > 200:
            return None
        with read_transaction(self._engine) as conn:
            found = conn.execute(
                sa.select(*_COLUMNS).where(KEYS.c.key_hash == hash_key(key), KEYS.c.revoked_at.is_(None))
            ).first()
        return _row(found) if found is not None else None

    def list_api_keys(self) -> list[ApiKeyRow]:
        """Every key, revoked ones included, oldest first."""
        with read_transaction(self._engine) as conn:
            return [_row(r) for r in conn.execute(sa.select(*_COLUMNS).order_by(KEYS.c.id))]

    def revoke_api_key(self, name_or_id: str | int, *, now: datetime) -> bool:
        """Revoke a key by id or name; ``False`` when no active key matches."""
        where = KEYS.c.id == name_or_id if isinstance(name_or_id, int) else KEYS.c.name == name_or_id
        with write_transaction(self._engine) as conn:
            result = conn.execute(sa.update(KEYS).where(where, KEYS.c.revoked_at.is_(None)).values(revoked_at=now))
            return result.rowcount > 0
