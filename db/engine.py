"""Where the database is and how to connect to it.

``resolve_url``: the argument, else ``$XMARGIN_DB_URL``, else the SQLite file ``$XMARGIN_HOME/xmargin.db``
(``XMARGIN_HOME`` defaults to ``~/.local/share/xmargin``). A bare ``postgresql://`` URL is given the psycopg 3
driver (the only one installed).

``make_engine`` sets SQLite up for a long-lived service: WAL journal, ``foreign_keys=ON`` (needed for the
``ON DELETE CASCADE`` of positions and health results), a busy timeout, and SQLAlchemy in charge of ``BEGIN``
(sqlite3's own transaction handling does not put DDL in transactions and begins lazily, so two writers could
each read and then fail to write). Write transactions begin ``IMMEDIATE``: they take the write lock up front
and wait up to the busy timeout for it, instead of failing half-way. See :func:`write_transaction`.

Never log a URL with its password: use :func:`safe_url`.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, Engine, make_url

__all__ = [
    "DEFAULT_HOME",
    "SQLITE_BEGIN_OPTION",
    "SQLITE_BUSY_TIMEOUT_MS",
    "compact_json",
    "make_engine",
    "read_transaction",
    "resolve_url",
    "safe_url",
    "upsert_insert",
    "write_transaction",
]

DEFAULT_HOME = "~/.local/share/xmargin"
SQLITE_BUSY_TIMEOUT_MS = 30_000
_BEGIN = {"DEFERRED": "BEGIN DEFERRED", "IMMEDIATE": "BEGIN IMMEDIATE"}
SQLITE_BEGIN_OPTION = "xmargin_sqlite_begin"
"""Execution option naming how a SQLite transaction begins (``DEFERRED`` or ``IMMEDIATE``)."""


def resolve_url(url: str | URL | None = None) -> URL:
    """The database URL: ``url``, else ``$XMARGIN_DB_URL``, else ``$XMARGIN_HOME/xmargin.db`` (SQLite).

    Creates the directory of a SQLite file. ``postgresql://`` becomes ``postgresql+psycopg://``.
    """
    if url is None:
        url = os.environ.get("XMARGIN_DB_URL") or None
    if url is None:
        home = Path(os.environ.get("XMARGIN_HOME") or DEFAULT_HOME).expanduser()
        url = URL.create("sqlite", database=str(home / "xmargin.db"))
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    return parsed


def safe_url(url: str | URL | Engine) -> str:
    """The URL as text with any password masked, for messages and logs."""
    if isinstance(url, Engine):
        url = url.url
    return make_url(url).render_as_string(hide_password=True)


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # SQLAlchemy emits BEGIN itself (see _sqlite_on_begin); sqlite3 must not.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS:d}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA synchronous = NORMAL")
        _enable_wal(cursor)
    finally:
        cursor.close()


def _enable_wal(cursor: Any) -> None:
    """Switch the file to WAL (persistent: only the first connection to a new file does it).

    Changing the journal mode does not wait on the busy handler: when several processes open a new database at
    once it can fail with "database is locked", so it is retried until the busy timeout.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            mode = cursor.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() in ("wal", "memory"):
                return
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _sqlite_on_begin(conn: Connection) -> None:
    mode = conn.get_execution_options().get(SQLITE_BEGIN_OPTION, "DEFERRED")
    conn.exec_driver_sql(_BEGIN[mode])


class JsonText(str):
    """A JSON column's value already written as :func:`compact_json` gives it: the engine passes it through. The
    store serializes a row's JSON once, for the engine and for its byte count alike (serializing each value twice
    was 11 % of a heavy block's write in ``bench_block --prices stress``)."""

    __slots__ = ()

    @classmethod
    def of(cls, value: Any) -> JsonText:
        return cls(compact_json(value))


def compact_json(value: Any) -> str:
    """JSON text without the spaces ``json.dumps`` puts after ``,`` and ``:`` by default: 6-9 % of a health row's
    JSON on SQLite, which stores the text as given (PostgreSQL's ``jsonb`` keeps its own binary form either way);
    a :class:`JsonText` as it is."""
    if isinstance(value, JsonText):
        return str(value)
    return json.dumps(value, separators=(",", ":"))


def upsert_insert(conn: Connection, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
    """``INSERT`` with the dialect's ``ON CONFLICT`` support (PostgreSQL and SQLite share the syntax)."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"unsupported database backend: {conn.dialect.name}")


def make_engine(url: str | URL | None = None, **kwargs: Any) -> Engine:
    """An engine for ``resolve_url(url)``, with the SQLite setup described in the module docstring; JSON columns are
    written as :func:`compact_json`."""
    resolved = resolve_url(url)
    kwargs.setdefault("json_serializer", compact_json)
    if resolved.get_backend_name() == "postgresql":
        kwargs.setdefault("pool_pre_ping", True)
        kwargs.setdefault("pool_timeout", PG_POOL_TIMEOUT_S)
        if "connect_timeout" not in resolved.query:  # an unreachable server fails in seconds, not minutes
            kwargs.setdefault("connect_args", {"connect_timeout": PG_CONNECT_TIMEOUT_S})
    engine = sa.create_engine(resolved, **kwargs)
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_on_connect)
        sa.event.listen(engine, "begin", _sqlite_on_begin)
    elif engine.dialect.name == "postgresql":
        sa.event.listen(engine, "connect", _pg_on_connect)
    return engine


PG_CONNECT_TIMEOUT_S = 10
PG_POOL_TIMEOUT_S = 30
PG_STATEMENT_TIMEOUT_MS = 300_000
"""No statement runs longer than 5 minutes (a hung lock or query fails the batch; its transaction rolls back)."""


def _pg_on_connect(dbapi_conn: Any, _record: Any) -> None:
    with dbapi_conn.cursor() as cursor:
        cursor.execute(f"SET statement_timeout = {PG_STATEMENT_TIMEOUT_MS:d}")
    dbapi_conn.commit()


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction meant to write: committed on exit, rolled back on any exception.

    On SQLite it begins ``IMMEDIATE`` (takes the write lock now, waiting up to the busy timeout).
    """
    with engine.connect() as conn:
        conn.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"})
        with conn.begin():
            yield conn


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    """A connection in a read-only transaction that sees one consistent snapshot.

    SQLite's deferred transaction (under WAL) reads one snapshot; PostgreSQL gets REPEATABLE READ for it.
    """
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        with conn.begin():
            yield conn
