"""Suite-wide fixtures: an isolated XMARGIN_HOME per test session, an empty database on each backend, and one
devnet per test process shared by the modules that need no private chain.

PostgreSQL: ``$XMARGIN_TEST_PG_URL`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``). Each test
gets its own freshly created schema (selected through ``search_path`` in the connection options) that is
dropped afterwards, so concurrent test sessions on one server do not see each other. When the server cannot
be reached the PostgreSQL cases are skipped, unless ``XMARGIN_TEST_PG_REQUIRED=1`` (CI) makes that a failure.
Deselect them with ``-m "not postgres"``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

import devnet
from tests.migration_replay import MigrationReplay
from tests.shared_devnet import SharedDevnet

# Timing tests scale their injected delays and deadlines together (tests/timing.py): twice the patience by
# default, so a loaded machine or xdist workers sharing the cores do not turn them red.
os.environ.setdefault("XMARGIN_TEST_TIME_SCALE", "2")

# Modules that take the longest (their own devnet launches, kill campaigns, browsers, processes): with
# ``--dist loadfile`` they are handed out first, so the run does not end waiting on one of them.
_LONG_FIRST = (
    "test_crash_consistency.py", "test_crash_blocks.py", "test_cli.py", "test_run_view_e2e.py", "test_api_schema.py",
    "test_api_process.py",
    "test_aave_truth.py", "test_keeper_e2e.py", "test_devnet_cli.py", "test_whatif_devnet.py", "test_reliability.py",
    "test_uniswap_truth.py", "test_risk_invariant.py", "test_dashboard_browser.py", "test_morpho_truth.py",
)


_DEPLOYED_ENV = "XMARGIN_TEST_DEVNET_DEPLOYED"
"""Set by the first process (the xdist controller, before it starts its workers): every worker must collect the
same order, even if the deployment finishes between their collections."""


def _devnet_deployed() -> bool:
    """Whether the devnet's deployed chain state was cached when the run began (``make test`` deploys it beside the
    suite)."""
    if _DEPLOYED_ENV not in os.environ:
        from devnet.cache import cache_key
        from devnet.paths import cache_root

        try:
            deployed = (cache_root() / cache_key() / "deployment.json").exists()
        except OSError:
            deployed = False
        os.environ[_DEPLOYED_ENV] = "1" if deployed else "0"
    return os.environ[_DEPLOYED_ENV] == "1"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Long modules first (in the order above), the rest as collected. While the devnet's first deployment is still
    running (``make test`` starts the suite beside it), the modules that use no chain go first, so the workers have
    work until the deployed state is there; a chain module's devnet waits for that deployment (a file lock)."""
    rank = {name: i for i, name in enumerate(_LONG_FIRST)}
    if _devnet_deployed():
        items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
        return
    on_chain = {item.path for item in items if item.get_closest_marker("chain") is not None}
    items.sort(key=lambda item: (item.path in on_chain, rank.get(item.path.name, len(rank))))


@pytest.hookimpl(optionalhook=True)  # xdist's hook: pytest without xdist (-p no:xdist) must still run
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadfile`` keeps the order above (xdist would queue modules by their number of tests)."""
    if config.getvalue("dist") != "loadfile":
        return None
    from tests.xdist_order import LongFirstScheduling

    return LongFirstScheduling(config, log)


@pytest.fixture(autouse=True, scope="session")
def _isolated_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Keep tests away from the user's store and config (the devnet cache is shared on purpose)."""
    home = tmp_path_factory.mktemp("xmargin-home")
    saved = {k: os.environ.get(k) for k in ("XMARGIN_HOME", "XMARGIN_CONFIG", "XMARGIN_DB_URL", "XMARGIN_RPC_URL",
                                            "XMARGIN_DEVNET_RUN")}
    os.environ["XMARGIN_HOME"] = str(home)
    os.environ["XMARGIN_DEVNET_RUN"] = str(home / "devnet-run.json")
    for key in ("XMARGIN_CONFIG", "XMARGIN_DB_URL", "XMARGIN_RPC_URL"):
        os.environ.pop(key, None)
    yield home
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


_REPLAY = MigrationReplay()


def pytest_configure(config: pytest.Config) -> None:
    """``Store.open`` builds an empty store by replaying the migrations this process recorded
    (tests/migration_replay.py)."""
    import db.store

    db.store.upgrade = _REPLAY  # type: ignore[assignment]
    _devnet_deployed()  # decided once, before xdist starts the workers (they inherit the environment)


@pytest.fixture(autouse=True)
def _real_migrations(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests marked ``real_migrations`` open stores through Alembic itself."""
    if request.node.get_closest_marker("real_migrations") is not None:
        monkeypatch.setattr("db.store.upgrade", _REPLAY.upgrade)


PG_URL = os.environ.get("XMARGIN_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
_pg_error: list[str] = []


def _admin_engine() -> sa.Engine:
    url = make_url(PG_URL)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    return sa.create_engine(url, poolclass=sa.NullPool)


def _require_pg() -> None:
    if not _pg_error:
        engine = _admin_engine()
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
            _pg_error.append("")
        except sa.exc.OperationalError as exc:
            _pg_error.append(f"PostgreSQL not reachable: {str(exc).splitlines()[0]}")
        finally:
            engine.dispose()
    if _pg_error[0]:
        if os.environ.get("XMARGIN_TEST_PG_REQUIRED") == "1":
            pytest.fail(_pg_error[0])
        pytest.skip(_pg_error[0])


def pg_schema_url() -> Iterator[str]:
    """Create a uniquely named schema, yield a URL whose connections use it, then drop it."""
    _require_pg()
    schema = f"xmargin_test_{os.getpid()}_{uuid.uuid4().hex[:12]}"
    admin = _admin_engine()
    try:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'xmargin.db'}"
    else:
        yield from pg_schema_url()


@pytest.fixture(scope="session")
def shared_devnet() -> Iterator[SharedDevnet]:
    """This process's devnet (one per xdist worker), started when a module first asks for it
    (see tests/shared_devnet.py)."""
    shared = SharedDevnet()
    yield shared
    shared.close()


@pytest.fixture(scope="module")
def fresh_devnet(shared_devnet: SharedDevnet) -> devnet.DevnetInfo:
    """The shared devnet as a private launch leaves it (reverted at the module's start): nothing seeded."""
    return shared_devnet.fresh()


@pytest.fixture(scope="module")
def seeded_devnet(shared_devnet: SharedDevnet) -> devnet.DevnetInfo:
    """The shared devnet as a private launch and :func:`devnet.seed` leave it (reverted at the module's start)."""
    return shared_devnet.seeded()
