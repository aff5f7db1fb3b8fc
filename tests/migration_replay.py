"""The suite's stores start migrated by replaying, not re-running, the migrations (installed by ``tests/conftest.py``).

``Store.open`` on an empty database runs every Alembic migration: 0.2-0.3 s each time (Alembic loads and runs twelve
revision scripts, SQLite's batch mode rebuilds tables through reflection). The suite opened ~440 empty stores, and
116 s of a 590 s run on 2 cores went to migrating them. Here the first empty store a test process opens on each
backend is migrated for real and the statements Alembic sent that wrote (DDL and data) are recorded; every later
empty store of that backend gets them replayed in one transaction under the migration lock (~10 ms): the schema and
``alembic_version`` the migrations produce, statement for statement. Reads (reflection, ``PRAGMA``, advisory locks)
are not replayed: they change nothing.

Only ``Store.open`` (``db.store.upgrade``) is routed here, only to ``head``, only for a database without tables, and
not for tests marked ``real_migrations`` (the migration tests). A store that holds anything, ``db.migrate.upgrade``
called directly and every ``xmargin`` process the suite starts migrate for real. ``tests/db/test_db_migrations.py``
checks that a replayed store equals a migrated one on both backends.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine

from db.engine import make_engine
from db.migrate import locked_migration_transaction
from db.migrate import upgrade as migrate_upgrade

__all__ = ["MigrationReplay"]

_WRITES = frozenset({"CREATE", "ALTER", "DROP", "INSERT", "UPDATE", "DELETE"})
"""Statements that change the database; the rest (reflection, ``PRAGMA``, advisory locks, ``BEGIN``) are reads."""

Statement = tuple[str, Any, bool]
"""(SQL, DBAPI parameters, executemany)."""


class MigrationReplay:
    """A drop-in for ``db.migrate.upgrade`` that replays the recorded migration of an empty database."""

    def __init__(self, upgrade: Callable[..., None] = migrate_upgrade) -> None:
        self.upgrade = upgrade
        """The real migration."""
        self.recorded: dict[str, list[Statement]] = {}
        self.replayed = 0

    def __call__(self, engine_or_url: Engine | str | URL | None = None, revision: str = "head") -> None:
        if revision != "head":
            self.upgrade(engine_or_url, revision)
            return
        own = not isinstance(engine_or_url, Engine)
        engine = make_engine(engine_or_url) if not isinstance(engine_or_url, Engine) else engine_or_url
        try:
            with engine.connect() as conn:
                empty = not sa.inspect(conn).get_table_names()
            dialect = engine.dialect.name
            if not empty:
                self.upgrade(engine, revision)
            elif dialect in self.recorded:
                if not self.replay(engine, self.recorded[dialect]):
                    self.upgrade(engine, revision)  # migrated meanwhile: the real check of its revision
            else:
                self.recorded[dialect] = self.record(engine)
        finally:
            if own:
                engine.dispose()

    def record(self, engine: Engine) -> list[Statement]:
        """Migrate ``engine``'s empty database for real; returns the statements that wrote."""
        statements: list[Statement] = []

        def seen(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
            if statement.split(None, 1)[0].upper() in _WRITES:
                statements.append((statement, parameters, executemany))

        event.listen(engine, "before_cursor_execute", seen)
        try:
            self.upgrade(engine, "head")
        finally:
            event.remove(engine, "before_cursor_execute", seen)
        return statements

    def replay(self, engine: Engine, statements: list[Statement]) -> bool:
        """Send ``statements`` to ``engine``'s database in one transaction under the migration lock, if it is still
        empty then (another opener may have migrated it meanwhile); returns whether it replayed."""
        with locked_migration_transaction(engine) as conn:
            if sa.inspect(conn).get_table_names():
                return False
            for statement, parameters, many in statements:
                conn.exec_driver_sql(statement, parameters if many else parameters or ())
        self.replayed += 1
        return True
