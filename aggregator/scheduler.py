"""The schedule: APScheduler 3.x runs the sync on an interval.

Policies, set on the job: ``max_instances=1`` (a sync never overlaps itself: a tick that comes while
one is running is skipped and logged), ``coalesce=True`` (ticks missed while the process was busy or
asleep collapse into one run), ``misfire_grace_time`` of one interval (a late tick still runs).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MAX_INSTANCES, JobEvent
from apscheduler.schedulers.background import BackgroundScheduler
from rich.console import Console

from aggregator.config import Settings
from db.store import Store

__all__ = ["SyncScheduler", "run_forever"]

log = logging.getLogger(__name__)
JOB_ID = "sync"


class SyncScheduler:
    """Runs ``job`` every ``interval_s`` seconds in a background thread with the policies above.

    ``skipped`` counts ticks dropped because a run was still going; ``runs`` counts finished runs.
    """

    def __init__(self, job: Callable[[], object], interval_s: float) -> None:
        self._job = job
        self.interval_s = interval_s
        self.runs = 0
        self.errors = 0
        self.skipped = 0
        self._lock = threading.Lock()
        self._scheduler = BackgroundScheduler(timezone=UTC)
        self._scheduler.add_listener(self._on_event, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MAX_INSTANCES)

    def _on_event(self, event: JobEvent) -> None:
        with self._lock:
            if event.code == EVENT_JOB_MAX_INSTANCES:
                self.skipped += 1
                log.warning("sync still running; tick skipped")
            elif event.code == EVENT_JOB_ERROR:
                self.errors += 1
                self.runs += 1
                log.error("sync failed: %s", getattr(event, "exception", None))
            else:
                self.runs += 1

    def start(self, run_now: bool = True) -> None:
        self._scheduler.add_job(
            self._job,
            "interval",
            seconds=self.interval_s,
            id=JOB_ID,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(1, int(self.interval_s)),
            next_run_time=datetime.now(UTC) if run_now else None,
            replace_existing=True,
        )
        self._scheduler.start()

    def shutdown(self, wait: bool = True) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=wait)

    @property
    def job_policies(self) -> dict[str, object]:
        """The job's effective scheduling policies (for tests and ``--verbose`` output)."""
        job = self._scheduler.get_job(JOB_ID)
        if job is None:
            return {}
        return {"max_instances": job.max_instances, "coalesce": job.coalesce,
                "misfire_grace_time": job.misfire_grace_time}


def run_forever(settings: Settings, console: Console, stop: threading.Event | None = None) -> None:
    """``xmargin run``: sync, evaluate alert rules and run the keeper on the configured interval until Ctrl-C
    (or ``stop`` is set)."""
    from aggregator.api.server import ApiServer
    from aggregator.cycle import Cycle, CycleReport
    from aggregator.metrics import Metrics
    from aggregator.render import cycle_summary, venue_summary_table

    stop = stop or threading.Event()
    store = Store.open(settings.db_url)
    cycle = Cycle(settings, store)
    metrics = Metrics(store)
    metrics.watch_rpc(cycle.syncer.rpc_stats, cycle.syncer.rpc_endpoints)
    server: ApiServer | None = None
    if settings.api.enabled:
        from aggregator.api.app import create_app, trusted_hosts

        app = create_app(store, public_reads=settings.api.public_reads, metrics=metrics,
                     allowed_hosts=trusted_hosts(settings.api.host))
        try:
            server = ApiServer(app, settings.api.host, settings.api.port).start()
        except Exception:
            cycle.close()
            store.close()
            raise

    def job() -> CycleReport:
        labels = {w.address: w.label or "" for w in store.list_wallets()}
        report = cycle.run()
        metrics.observe_sync(report.sync, failed=any(e.startswith("sync:") for e in report.errors))
        metrics.observe_errors(report.errors)
        blocks = [b.block.number for b in report.sync.batches if b.block]
        console.print(venue_summary_table(list(report.sync.healths()), labels, max(blocks) if blocks else None))
        for line in cycle_summary(report):
            console.print(line)
        return report

    scheduler = SyncScheduler(job, settings.interval_s)
    scheduler.start()
    keeper = settings.keeper
    mode = ("off" if not keeper.enabled else "executing" if keeper.execute else "dry run")
    console.print(f"syncing every {settings.interval_s:g} s; keeper {mode}; Ctrl-C to stop")
    if server is not None:
        console.print(f"dashboard: {server.url}/ui/  API: {server.url}/v1  metrics: {server.url}/metrics",
                      soft_wrap=True)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        console.print("stopping…")
    finally:
        scheduler.shutdown(wait=True)
        if server is not None:
            server.stop()
        cycle.close()
        store.close()
