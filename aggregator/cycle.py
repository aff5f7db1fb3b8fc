"""One cycle of ``xmargin run``: sync every tracked wallet, evaluate the alert rules on what was stored, let the
keeper plan (and, when configured, execute) rebalances, then deliver the alerts.

Each stage's failure is logged and the next stage still runs on what the store holds: a failed alert delivery
never stops the keeper, and neither stops the next sync.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import StrEnum

from aggregator.alerts.engine import AlertEngine, AlertReport, sinks_from_config
from aggregator.alerts.sinks import Sink
from aggregator.config import Settings
from aggregator.keeper.runner import Keeper, KeeperOutcome
from aggregator.pipeline import Syncer, SyncReport
from db import Store

__all__ = ["Cycle", "CycleError", "CycleReport", "Stage"]

log = logging.getLogger(__name__)


class Stage(StrEnum):
    """A stage of the cycle (the ``stage`` label of ``xmargin_cycle_errors_total``)."""

    SYNC = "sync"
    ALERTS = "alerts"
    KEEPER = "keeper"
    ALERT_DELIVERY = "alert delivery"


@dataclass(frozen=True)
class CycleError:
    """A stage that raised, and what it said (``str()`` is the line the views show: ``"<stage>: <message>"``)."""

    stage: Stage
    message: str

    def __str__(self) -> str:
        return f"{self.stage}: {self.message}"


@dataclass
class CycleReport:
    """What one cycle did."""

    sync: SyncReport
    alerts: AlertReport | None = None
    keeper: list[KeeperOutcome] = field(default_factory=list)
    errors: list[CycleError] = field(default_factory=list)


class Cycle:
    """Sync + alerts + keeper for one configuration, keeping connections open between cycles."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        sinks: list[Sink] | None = None,
        keeper: Keeper | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        if settings.sync_mode == "block":
            from aggregator.blockrun import BlockSyncer

            self.syncer: Syncer = BlockSyncer(settings, store, max_backfill_blocks=settings.max_backfill_blocks)
        else:
            self.syncer = Syncer(settings, store)
        self.alerts = AlertEngine(store, sinks if sinks is not None else sinks_from_config(settings.alerts),
                                  retry_for_s=settings.alerts.retry_for_s)
        self.keeper = keeper if keeper is not None else (Keeper(settings, store) if settings.keeper.enabled else None)

    def close(self) -> None:
        self.syncer.close()
        self.alerts.close()
        if self.keeper is not None:
            self.keeper.close()

    def __enter__(self) -> Cycle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self) -> CycleReport:
        """Sync, evaluate the rules (storing what fired), run the keeper, then deliver the alerts: a slow or
        failing webhook never delays a rebalance."""
        try:
            report = CycleReport(sync=self.syncer.run())
        except Exception as exc:  # the alerts and the keeper still run on what the store holds
            log.exception("sync failed")
            report = CycleReport(sync=SyncReport(), errors=[CycleError(Stage.SYNC, str(exc))])
        try:
            evaluated, fired = self.alerts.evaluate()
            report.alerts = AlertReport(evaluated=evaluated, fired=fired)
        except Exception as exc:
            log.exception("alert evaluation failed")
            report.errors.append(CycleError(Stage.ALERTS, str(exc)))
        if self.keeper is not None:
            try:
                report.keeper = self.keeper.run()
            except Exception as exc:
                log.exception("keeper failed")
                report.errors.append(CycleError(Stage.KEEPER, str(exc)))
        try:
            deliveries = self.alerts.deliver()
            if report.alerts is None:
                report.alerts = AlertReport()
            report.alerts.deliveries = deliveries
        except Exception as exc:
            log.exception("alert delivery failed")
            report.errors.append(CycleError(Stage.ALERT_DELIVERY, str(exc)))
        return report
