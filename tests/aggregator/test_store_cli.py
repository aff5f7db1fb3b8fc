"""``xmargin store compact`` and the scheduler's hourly compaction (issue 14)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from aggregator.cli import _store as cli_store
from aggregator.cli import app
from aggregator.config import Settings, StoreConfig, load_settings
from aggregator.scheduler import SyncScheduler, compact_store
from db import ChangePolicy, RetentionPolicy, Store
from tests.db import db_testdata as td


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XMARGIN_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XMARGIN_CONFIG", raising=False)
    monkeypatch.delenv("XMARGIN_DB_URL", raising=False)
    return tmp_path / "home"


def _old_store(url: str, n: int = 20) -> str:
    """A store with ``n`` blocks of changing health for one wallet, written long ago (2025)."""
    with Store.open(url) as store:
        wallets = td.setup(store, 1)
        for block in range(n):
            store.write_sync(td.batch(wallets, block))
    return wallets[0]


def test_store_compact_downsamples_and_says_what_it_did(home: Path) -> None:
    home.mkdir(parents=True)
    wallet = _old_store(f"sqlite:///{home / 'xmargin.db'}")
    runner = CliRunner()
    result = runner.invoke(app, ["store", "compact", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    # 20 blocks of 12 s, all in one hour, years before the 7-day window: the first and the last stay
    assert out["health_deleted"] == 18
    assert out["versions_deleted"] == 18
    assert out["deleted"] == out["health_deleted"] + out["risk_deleted"] + out["prices_deleted"] + 18
    with Store.open(f"sqlite:///{home / 'xmargin.db'}") as store:
        assert [p.block_number for p in store.history(wallet)] == [19, 0]
    again = runner.invoke(app, ["store", "compact"], catch_exceptions=False)
    assert again.exit_code == 0
    assert "deleted 0 health" in again.stdout
    assert "kept every row since" in again.stdout


def test_store_compact_fails_with_a_clear_error(home: Path) -> None:
    home.mkdir(parents=True)
    url = f"sqlite:///{home / 'xmargin.db'}"
    _old_store(url, n=3)
    with Store.open(url) as store, store.engine.begin() as conn:  # a damaged store: compaction cannot run
        conn.execute(sa.text("DROP TABLE risk_results"))
    result = CliRunner().invoke(app, ["store", "compact"])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "store compaction failed" in result.stderr
    with Store.open(url, migrate=False) as store:
        assert len(store.history(td.wallet(0))) == 3  # nothing lost


def test_store_config_gives_the_policies(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[store]\nrel_tolerance = 0.001\nmax_age_blocks = 50\nkeep_full_days = 2\nbucket_s = 600\n"
                    "compact_every_s = 60\nwrite_cache_size = 7\n")
    settings = load_settings(path)
    assert settings.store.change_policy() == ChangePolicy(rel_tolerance=0.001, max_age_blocks=50)
    assert settings.store.retention_policy() == RetentionPolicy(full_days=2, bucket_s=600)
    assert settings.store.write_cache_size == 7
    with cli_store(settings.model_copy(update={"db_url": f"sqlite:///{tmp_path / 'x.db'}"})) as store:
        assert store.write_cache_size == 7
    assert Settings().store == StoreConfig()
    assert StoreConfig().change_policy() == ChangePolicy()
    path.write_text("[store]\nmax_age_blocks = 0\n")
    with pytest.raises(ValueError, match="max_age_blocks"):
        load_settings(path)
    path.write_text("[store]\nwrite_cache_size = -1\n")
    with pytest.raises(ValueError, match="write_cache_size"):
        load_settings(path)


def test_the_scheduler_compacts_beside_the_sync(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    wallet = _old_store(url)
    settings = Settings(db_url=url, store=StoreConfig(compact_every_s=0.05))
    syncs = 0
    done = threading.Event()

    def job() -> None:
        nonlocal syncs
        syncs += 1

    with Store.open(url) as store:
        scheduler = SyncScheduler(job, interval_s=0.05)
        compactions: list[int] = []

        def compact() -> None:
            stats = compact_store(store, settings)
            assert stats is not None
            compactions.append(stats.deleted)
            done.set()

        scheduler.add_maintenance("compact", compact, settings.store.compact_every_s)
        scheduler.start()
        try:
            assert done.wait(5)
            time.sleep(0.2)
        finally:
            scheduler.shutdown()
        assert compactions[0] > 0
        assert set(compactions[1:]) <= {0}
        assert scheduler.runs == syncs  # the compaction's runs are not counted as syncs
        assert [p.block_number for p in store.history(wallet)] == [19, 0]
        store.close()
        with sa.create_engine(url).connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM health_results")).scalar_one() == 2


def test_a_failing_compaction_is_logged_not_raised(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    _old_store(url, n=2)
    store = Store.open(url)
    with store.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE risk_results"))
    assert compact_store(store, Settings(db_url=url)) is None
    assert "store compaction failed" in caplog.text
    store.close()
