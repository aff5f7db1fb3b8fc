"""Store.open: where the database is, how SQLite is set up, and what never leaks (passwords, imports)."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

import db
from db import Store
from db.engine import resolve_url, safe_url


def test_default_location_is_under_xmargin_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "nested" / "home"
    monkeypatch.delenv("XMARGIN_DB_URL", raising=False)
    monkeypatch.setenv("XMARGIN_HOME", str(home))
    with Store.open() as store:
        assert store.engine.url.database == str(home / "xmargin.db")
        assert store.list_wallets() == []
    assert (home / "xmargin.db").is_file()


def test_home_defaults_to_local_share(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XMARGIN_DB_URL", raising=False)
    monkeypatch.delenv("XMARGIN_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_url().database == str(tmp_path / ".local/share/xmargin/xmargin.db")


def test_env_url_wins_over_home_and_argument_over_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XMARGIN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XMARGIN_DB_URL", f"sqlite:///{tmp_path / 'env.db'}")
    assert resolve_url().database == str(tmp_path / "env.db")
    assert resolve_url(f"sqlite:///{tmp_path / 'arg.db'}").database == str(tmp_path / "arg.db")


def test_sqlite_connections_are_configured(tmp_path: Path) -> None:
    with Store.open(f"sqlite:///{tmp_path / 'x.db'}") as store, store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one() >= 1000


def test_password_never_shown(caplog: pytest.LogCaptureFixture) -> None:
    url = "postgresql://xm:s3cret-pw@db.invalid:5432/xmargin"
    assert "s3cret-pw" not in safe_url(url)
    assert resolve_url(url).drivername == "postgresql+psycopg"
    engine = sa.create_engine(resolve_url(url))
    try:
        store = Store(engine)
        assert "s3cret-pw" not in repr(store)
        assert "s3cret-pw" not in store.url
    finally:
        engine.dispose()
    with caplog.at_level(logging.DEBUG, logger="db"), pytest.raises(sa.exc.OperationalError):
        Store.open(url, connect_args={"connect_timeout": 1})
    assert "s3cret-pw" not in caplog.text


def test_db_does_not_import_upper_layers() -> None:
    """Nothing of connectors, riskcore or aggregator but the one address rule (connectors.types, pure, and the
    errors it raises)."""
    allowed = "{'connectors', 'connectors.types', 'connectors.errors'}"
    code = (
        "import sys, db, db.store, db.migrate\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'connectors', 'riskcore', 'aggregator'}\n"
        f"             and m not in {allowed})\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_public_api_is_exported() -> None:
    for name in db.__all__:
        assert getattr(db, name) is not None
    assert sorted(db.__all__) == db.__all__


@pytest.mark.postgres
def test_postgres_connections_time_out() -> None:
    """Every PostgreSQL connection carries a statement timeout, and connecting gives up after seconds."""
    from tests.conftest import pg_schema_url

    for url in pg_schema_url():
        with Store.open(url) as store, store.engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW statement_timeout").scalar_one() == "5min"
            assert store.engine.dialect.name == "postgresql"
    engine = db.engine.make_engine("postgresql+psycopg://postgres@10.255.255.1:5432/test")  # unroutable
    try:
        began = time.monotonic()
        with pytest.raises(sa.exc.OperationalError):
            engine.connect()
        assert time.monotonic() - began < 15
    finally:
        engine.dispose()
