"""Alembic environment for the xmargin store.

Two ways in:

* programmatic (:func:`db.migrate.upgrade`): the caller passes an open connection, already inside a
  transaction and holding the migration lock, as ``config.attributes["connection"]``; everything runs in that
  transaction and the caller commits;
* the ``alembic`` command line (``alembic -c db/alembic.ini ...``): the URL comes from ``$XMARGIN_DB_URL`` or
  the default store, and the same lock and single transaction are taken here.

Logging is left to the application (no ``fileConfig``).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from db.engine import make_engine, resolve_url
from db.migrate import locked_migration_transaction
from db.models import Base

config = context.config
target_metadata = Base.metadata


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",
    )


def run_migrations_offline() -> None:
    """Emit the SQL to stdout instead of running it (``alembic upgrade head --sql``)."""
    context.configure(
        url=resolve_url(config.get_main_option("sqlalchemy.url")),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():  # a no-op inside the caller's transaction
            context.run_migrations()
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url"))
    try:
        with locked_migration_transaction(engine) as conn:
            _configure(conn)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
