"""The hand-written migration creates exactly what ``db.models`` declares, on both backends; data made at an
older revision survives the upgrade with the meaning it had."""

from __future__ import annotations

import contextlib
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import db
from db.apikeys import KEY_PREFIX, hash_key
from db.engine import make_engine
from db.migrate import ALEMBIC_INI, HEAD_REVISION, MIGRATIONS_DIR, alembic_config, head_revision, upgrade
from db.models import Base
from db.store import Store
from tests.migration_replay import MigrationReplay

pytestmark = pytest.mark.real_migrations
"""Every test here migrates through Alembic, ``Store.open`` included."""

def _diffs(engine: sa.Engine, metadata: sa.MetaData) -> list[object]:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        return list(compare_metadata(ctx, metadata))


def test_migration_matches_models(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        upgrade(engine)
        assert _diffs(engine, Base.metadata) == []
        tables = set(sa.inspect(engine).get_table_names())
        assert tables == set(Base.metadata.tables) | {"alembic_version"}
    finally:
        engine.dispose()


def test_comparison_sees_differences(db_url: str) -> None:
    """Guard against a vacuous comparison: a changed model must show up as a diff."""
    engine = make_engine(db_url)
    try:
        upgrade(engine)
        changed = sa.MetaData()
        for table in Base.metadata.sorted_tables:
            table.to_metadata(changed)
        changed.tables["wallets"].append_column(sa.Column("extra_col", sa.Integer()))
        changed.tables["positions"].c.side.type = sa.String(99)
        diffs = _diffs(engine, changed)
        assert any(d[0] == "add_column" for d in diffs if isinstance(d, tuple))
        assert any(isinstance(d, list) and d[0][0] == "modify_type" for d in diffs)
    finally:
        engine.dispose()


def test_check_constraints_match_models(db_url: str) -> None:
    """Alembic does not compare CHECK constraints: compare their names directly."""
    engine = make_engine(db_url)
    try:
        upgrade(engine)
        inspector = sa.inspect(engine)
        for table in Base.metadata.sorted_tables:
            want = {c.name for c in table.constraints if isinstance(c, sa.CheckConstraint)}
            got = {c["name"] for c in inspector.get_check_constraints(table.name)}
            assert got == want, table.name
    finally:
        engine.dispose()


def test_upgrade_is_idempotent_and_downgrade_works(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        upgrade(engine)
        upgrade(engine)
        with engine.connect() as conn:
            assert MigrationContext.configure(conn).get_current_revision() == head_revision()
        with engine.begin() as conn:
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "base")
        assert set(sa.inspect(engine).get_table_names()) <= {"alembic_version"}
        upgrade(engine)
        assert _diffs(engine, Base.metadata) == []
    finally:
        engine.dispose()


def test_the_fast_path_knows_the_newest_migration(db_url: str) -> None:
    """``upgrade`` skips Alembic when the store is at :data:`HEAD_REVISION`: that constant must be the scripts' head,
    and a store one revision behind must still be migrated (the fast path does not take it for head)."""
    assert head_revision() == HEAD_REVISION, "a migration was added: set db.migrate.HEAD_REVISION to its revision"
    engine = make_engine(db_url)
    try:
        upgrade(engine)
        with engine.begin() as conn:
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "-1")
        with engine.connect() as conn:
            behind = MigrationContext.configure(conn).get_current_revision()
        assert behind is not None
        assert behind != HEAD_REVISION
        upgrade(engine)
        with engine.connect() as conn:
            assert MigrationContext.configure(conn).get_current_revision() == HEAD_REVISION
        assert _diffs(engine, Base.metadata) == []
    finally:
        engine.dispose()


def test_concurrent_open_migrates_once(db_url: str) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def open_store() -> None:
        try:
            barrier.wait()
            Store.open(db_url).close()
        except BaseException as exc:  # collected and re-raised in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            versions = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
        assert versions == [head_revision()]
    finally:
        engine.dispose()


def test_migrations_ship_inside_the_package() -> None:
    package_dir = Path(db.__file__).resolve().parent
    assert MIGRATIONS_DIR.parent == package_dir
    assert (MIGRATIONS_DIR / "env.py").is_file()
    assert ALEMBIC_INI.parent == package_dir
    assert ALEMBIC_INI.is_file()
    assert alembic_config().get_main_option("script_location") == str(MIGRATIONS_DIR)
    assert sorted(p.name for p in (MIGRATIONS_DIR / "versions").glob("*.py")) == [
        "0001_initial.py",
        "0002_venues.py",
        "0003_risk.py",
        "0004_automation.py",
        "0005_api_keys.py",
        "0006_rule_version.py",
        "0007_api_key_scopes.py",
        "0008_chain_identity.py",
        "0009_keeper_last_seen.py",
        "0010_change_only_store.py",
        "0011_wallet_ens.py",
        "0012_position_state.py",
        "0013_chain_purges.py",
        "0014_health_base.py",
        "0015_venue_confirmations.py",
    ]


def test_keys_made_before_scopes_keep_writing(db_url: str) -> None:
    """A key stored at revision 0006 (no scopes: every key could write) is a ``write`` key after the upgrade,
    verifies as before, and the store's new keys name their scope; downgrading drops the scope again."""
    legacy = KEY_PREFIX + "L" * 43
    made = datetime(2026, 11, 21, 15, tzinfo=UTC)
    engine = make_engine(db_url)
    try:
        upgrade(engine, "0006")
        with engine.begin() as conn:
            assert "scope" not in {c["name"] for c in sa.inspect(conn).get_columns("api_keys")}
            conn.execute(sa.text("INSERT INTO api_keys (name, prefix, key_hash, created_at) "
                                 "VALUES ('ci', :prefix, :hash, :at)"),
                         {"prefix": legacy[:10], "hash": hash_key(legacy), "at": made})
        upgrade(engine)
        assert _diffs(engine, Base.metadata) == []
        with Store(engine) as store:
            row = store.verify_api_key(legacy)
            assert row is not None
            assert (row.name, row.scope, row.allows("write"), row.allows("admin")) == ("ci", "write", True, False)
            new, _ = store.create_api_key("reader", now=made)
            assert new.scope == "read"
            assert [(k.name, k.scope) for k in store.list_api_keys()] == [("ci", "write"), ("reader", "read")]
            with engine.begin() as conn, pytest.raises(sa.exc.IntegrityError):  # the CHECK constraint holds
                conn.execute(sa.text("UPDATE api_keys SET scope = 'root' WHERE name = 'ci'"))
        with engine.begin() as conn:
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0006")
        assert "scope" not in {c["name"] for c in sa.inspect(engine).get_columns("api_keys")}
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT name FROM api_keys ORDER BY id")).scalars().all() == ["ci", "reader"]
    finally:
        engine.dispose()


def _schema(engine: sa.Engine) -> dict[str, object]:
    """Everything a schema consists of, in a form two databases (or two PostgreSQL schemas) can be compared by."""
    with engine.connect() as conn:
        sql = conn.exec_driver_sql
        version = sorted(sql("SELECT version_num FROM alembic_version").scalars())
        if conn.dialect.name == "sqlite":
            return {"version": version,
                    "objects": sorted(tuple(r) for r in sql("SELECT type, name, tbl_name, sql FROM sqlite_master"))}
        schema = sql("SELECT current_schema()").scalar_one()
        columns = sorted(tuple(r) for r in sql(
            "SELECT table_name, column_name, ordinal_position, data_type, is_nullable, column_default, "
            "character_maximum_length, numeric_precision, numeric_scale FROM information_schema.columns "
            "WHERE table_schema = current_schema()"))
        constraints = sorted(tuple(r) for r in sql(
            "SELECT t.relname, c.conname, c.contype, pg_get_constraintdef(c.oid) FROM pg_constraint c "
            "JOIN pg_class t ON t.oid = c.conrelid WHERE t.relnamespace = current_schema()::regnamespace"))
        indexes = sorted((r[0], r[1], str(r[2]).replace(f"{schema}.", "")) for r in sql(
            "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()"))
        sequences = sorted(tuple(r) for r in sql(
            "SELECT sequence_name, data_type, start_value, increment FROM information_schema.sequences "
            "WHERE sequence_schema = current_schema()"))
        return {"version": version, "columns": columns, "constraints": constraints, "indexes": indexes,
                "sequences": sequences}


def test_the_suites_replayed_migration_builds_the_migrated_schema(db_url: str, tmp_path: Path) -> None:
    """The suite's shortcut (tests/migration_replay.py) is exact: a store built by replaying the statements of one
    real migration equals a store the migrations built, object for object, and passes the model comparison."""
    from tests.conftest import pg_schema_url

    replay = MigrationReplay()
    with contextlib.ExitStack() as stack:
        if db_url.startswith("sqlite"):
            second = f"sqlite:///{tmp_path / 'second.db'}"
        else:
            second = next(stack.enter_context(contextlib.closing(pg_schema_url())))
        replay(db_url)  # migrated for real, its statements recorded
        replay(second)  # replayed
        assert replay.replayed == 1
        engines = [make_engine(db_url), make_engine(second)]
        for engine in engines:
            stack.callback(engine.dispose)
        migrated, replayed = (_schema(e) for e in engines)
        assert replayed["version"] == [head_revision()]
        assert replayed == migrated
        assert _diffs(engines[1], Base.metadata) == []
        replay(second)  # no longer empty: the real upgrade (which finds it at head)
        assert replay.replayed == 1
