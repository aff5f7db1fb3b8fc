"""A stage of the cycle that raises travels as a typed error (its stage and its message), never as a prefixed
string parsed back: the scheduler, the run view and the metrics read the stage."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from aggregator.config import Settings
from aggregator.cycle import Cycle, CycleError, Stage
from aggregator.metrics import Metrics
from db import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(f"sqlite:///{tmp_path / 'x.db'}") as s:
        yield s


def test_a_failing_stage_is_reported_with_its_stage(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    with Cycle(Settings(), store, sinks=[]) as cycle:
        def boom() -> None:
            raise RuntimeError("node gone: sync: not a prefix")

        monkeypatch.setattr(cycle.syncer, "run", boom)
        monkeypatch.setattr(cycle.alerts, "deliver", lambda: (_ for _ in ()).throw(OSError("sink down")))
        report = cycle.run()
    assert report.errors == [CycleError(Stage.SYNC, "node gone: sync: not a prefix"),
                             CycleError(Stage.ALERT_DELIVERY, "sink down")]
    assert [str(e) for e in report.errors] == ["sync: node gone: sync: not a prefix", "alert delivery: sink down"]
    metrics = Metrics(store)
    metrics.observe_errors(report.errors)
    text = metrics.render().decode()
    assert 'xmargin_cycle_errors_total{stage="sync"} 1.0' in text
    assert 'xmargin_cycle_errors_total{stage="alert delivery"} 1.0' in text


def test_a_message_that_looks_like_a_stage_is_not_one(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """The keeper's error text starting with "sync:" is still the keeper's (a parsed prefix would say sync)."""
    with Cycle(Settings(), store, sinks=[]) as cycle:
        class FailingKeeper:
            def run(self) -> None:
                raise RuntimeError("sync: the keeper saw a stale state")

            def close(self) -> None:
                pass

        monkeypatch.setattr(cycle, "keeper", FailingKeeper())
        report = cycle.run()
    assert [e.stage for e in report.errors] == [Stage.KEEPER]
    assert not any(e.stage is Stage.SYNC for e in report.errors)
