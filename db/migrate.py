"""Run the store's Alembic migrations programmatically, from the installed package.

The scripts live in ``db/migrations`` next to this module (shipped as package data with ``db/alembic.ini``),
so ``upgrade()`` works from a wheel as well as from a checkout; no working directory or ``alembic.ini`` on the
command line is needed.

Concurrency: every upgrade runs in one transaction that first takes a lock (PostgreSQL: a transaction-level
advisory lock keyed by the current schema; SQLite: ``BEGIN IMMEDIATE``, the database's write lock, waited for up
to the busy timeout). A second process that opens the store at the same time waits, then finds the schema at
head and does nothing. PostgreSQL and SQLite both run DDL transactionally here, so a failed migration leaves
no half-made schema. When the schema is already at head, ``upgrade()`` only reads the version table: opening
the store takes no write lock.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine

from db.engine import SQLITE_BEGIN_OPTION, make_engine, write_transaction

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = [
    "ALEMBIC_INI",
    "HEAD_REVISION",
    "MIGRATIONS_DIR",
    "alembic_config",
    "current_revision",
    "head_revision",
    "locked_migration_transaction",
    "upgrade",
]

PACKAGE_DIR = Path(__file__).resolve().parent
MIGRATIONS_DIR = PACKAGE_DIR / "migrations"
ALEMBIC_INI = PACKAGE_DIR / "alembic.ini"
HEAD_REVISION = "0015"
"""The newest packaged revision, so that opening a store at head neither imports Alembic nor parses every migration
script (about 0.2 s of each CLI start: :func:`upgrade`'s fast path). ``tests/db/test_db_migrations.py`` checks it is
:func:`head_revision`; a new migration updates it."""
_PG_LOCK_CLASS = 0x786D6172  # "xmar": first key of pg_advisory_xact_lock(int, int); the second is the schema


def alembic_config() -> Config:
    """Alembic's ``Config`` for the packaged migrations (``script_location`` = this package's directory)."""
    from alembic.config import Config

    cfg = Config(str(ALEMBIC_INI))
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    return cfg


def head_revision() -> str:
    """The newest revision id of the packaged migrations, as Alembic reads them from the scripts."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships one revision at least
        raise RuntimeError("no migration revisions found in " + str(MIGRATIONS_DIR))
    return head


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at, ``None`` for an empty database."""
    from alembic.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


@contextmanager
def locked_migration_transaction(engine: Engine) -> Iterator[Connection]:
    """A write transaction holding the migration lock (see the module docstring).

    On SQLite, foreign keys are switched off around the transaction (the pragma cannot change inside one), as
    SQLite prescribes for schema changes: a table rebuilt by Alembic's batch mode is dropped and recreated, and
    with foreign keys on that DROP would delete every referencing row through ON DELETE CASCADE. The whole database
    is checked with ``PRAGMA foreign_key_check`` before the transaction commits.
    """
    if engine.dialect.name != "sqlite":
        with write_transaction(engine) as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:cls, hashtext(coalesce(current_schema(), '')))"),
                    {"cls": _PG_LOCK_CLASS},
                )
            yield conn
        return
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        raw.execute("PRAGMA foreign_keys = OFF")  # on the driver connection, outside any transaction
        try:
            conn.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"})
            with conn.begin():
                yield conn
                broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"migration left {len(broken)} rows with broken foreign keys: {broken[:5]}")
        finally:
            raw.execute("PRAGMA foreign_keys = ON")


def _at_head(engine: Engine) -> bool:
    """Whether the database's one version row is :data:`HEAD_REVISION`, read with a plain query (a store made by
    Alembic has exactly one row in ``alembic_version``; anything else goes the long way, through Alembic)."""
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table("alembic_version"):
            return False
        rows = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
    return rows == [HEAD_REVISION]


def upgrade(engine_or_url: Engine | str | URL | None = None, revision: str = "head") -> None:
    """Migrate the database to ``revision`` (default: head). Idempotent; safe against concurrent callers.

    ``engine_or_url``: an engine (left open), or a URL (an engine is made and disposed), or ``None`` for the
    default store (see :func:`db.engine.resolve_url`).
    """
    own = not isinstance(engine_or_url, Engine)
    engine = make_engine(engine_or_url) if not isinstance(engine_or_url, Engine) else engine_or_url
    try:
        if revision == "head" and _at_head(engine):
            return
        from alembic import command

        with locked_migration_transaction(engine) as conn:
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
    finally:
        if own:
            engine.dispose()
