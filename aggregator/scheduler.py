"""The schedule: APScheduler 3.x runs the sync on an interval.

Policies, set on the job: ``max_instances=1`` (a sync never overlaps itself: a tick that comes while
one is running is skipped and logged), ``coalesce=True`` (ticks missed while the process was busy or
asleep collapse into one run), ``misfire_grace_time`` of one interval (a late tick still runs).
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MAX_INSTANCES, JobEvent
from apscheduler.schedulers.background import BackgroundScheduler
from rich.console import Console

from aggregator.config import ConfigError, Settings, load_settings
from aggregator.gcidle import IdleCollector
from db.changes import CompactStats
from db.store import Store

__all__ = ["SigtermFlag", "SyncScheduler", "compact_store", "run_forever"]

log = logging.getLogger(__name__)
JOB_ID = "sync"
COMPACT_JOB_ID = "compact"


def compact_store(store: Store, settings: Settings) -> CompactStats | None:
    """Downsample the store by the ``[store]`` retention (:meth:`db.Store.compact`); a failure is logged, never
    raised (the sync goes on; the next run tries again). Returns what was deleted, ``None`` on failure."""
    try:
        stats = store.compact(settings.store.retention_policy())
    except Exception as exc:
        log.error("store compaction failed: %s: %s", type(exc).__name__, exc)
        return None
    if stats.deleted:
        log.info("store compacted: %d row(s) older than %s downsampled away", stats.deleted, stats.cutoff.isoformat())
    return stats


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
        self._running = False
        self._again = False
        self._maintenance: list[str] = []
        self._scheduler = BackgroundScheduler(timezone=UTC)
        self._scheduler.add_listener(self._on_event, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MAX_INSTANCES)

    def _on_event(self, event: JobEvent) -> None:
        if event.job_id in self._maintenance:
            return
        again = False
        with self._lock:
            if event.code == EVENT_JOB_MAX_INSTANCES:
                self.skipped += 1
                log.info("sync still running; tick skipped")
                return
            if event.code == EVENT_JOB_ERROR:
                self.errors += 1
                log.error("sync failed: %s", getattr(event, "exception", None))
            self.runs += 1
            # the run has ended and its instance is released: a head announced meanwhile runs the sync again now
            self._running, again, self._again = False, self._again, False
        if again:
            self._kick()

    def _run(self) -> object:
        with self._lock:
            self._running, self._again = True, False
        return self._job()

    def run_soon(self) -> None:
        """Run the sync now, not at the next tick (a new head arrived); when one is running, once more right after
        it, so a head announced during a sync is never left for the next tick."""
        with self._lock:
            if self._running:
                self._again = True
                return
        self._kick()

    def _kick(self) -> None:
        job = self._scheduler.get_job(JOB_ID) if self._scheduler.running else None
        if job is not None:
            job.modify(next_run_time=datetime.now(UTC))

    def start(self, run_now: bool = True) -> None:
        self._scheduler.add_job(
            self._run,
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

    def add_maintenance(self, job_id: str, job: Callable[[], object], every_s: float) -> None:
        """Run ``job`` every ``every_s`` seconds beside the sync (first after one period), never overlapping itself
        (``max_instances=1``, missed runs coalesced): store compaction. Its outcome does not count in ``runs``."""
        self._maintenance.append(job_id)
        self._scheduler.add_job(job, "interval", seconds=every_s, id=job_id, max_instances=1, coalesce=True,
                                misfire_grace_time=max(1, int(every_s)), replace_existing=True)

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


class SigtermFlag:
    """A SIGTERM handler that only sets :attr:`requested`; the main loop polls it.

    It must not set a :class:`threading.Event`: the handler runs in the main thread between two bytecodes, and when
    that thread is inside ``stop.wait()`` re-acquiring the event's own (non-reentrant) lock, ``stop.set()`` waits
    for that lock forever — seen once as an ``xmargin run`` that never stopped on SIGTERM (its stack: the handler's
    ``Event.set`` inside ``Condition._acquire_restore``)."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self, _signum: int, _frame: object) -> None:
        self.requested = True


def run_forever(settings: Settings, console: Console, stop: threading.Event | None = None,
                *, reload: Callable[[Settings], Settings] | None = None) -> None:
    """``xmargin run``: sync, evaluate alert rules and run the keeper on the configured interval until Ctrl-C or
    SIGTERM (or ``stop`` is set), serving the API and dashboard.

    The console shows the wallets' health once, then per cycle only what changed (with Δ health); when a sync
    fails it says so once with the reason and shows the last known values marked STALE, then one line per cycle
    until it recovers. SIGTERM (what service managers send) stops it like Ctrl-C: the stage in hand finishes or
    rolls back, then the process exits 0.

    When the settings came from the devnet's config file and the chain stops answering, the file is read again:
    a devnet restarted on other ports (or another devnet) is followed — ``reload`` re-applies the command line's
    overrides to the re-read settings.
    """
    from aggregator.api.server import ApiServer
    from aggregator.cycle import Cycle, CycleReport, Stage
    from aggregator.devnet_cli import current_devnet_config, is_devnet_config
    from aggregator.keeper.banner import keeper_banner
    from aggregator.metrics import Metrics
    from aggregator.runview import RunView

    stop = stop or threading.Event()
    store = Store.open(settings.db_url, change_policy=settings.store.change_policy(),
                      change_only=settings.store.change_only, write_cache_size=settings.store.write_cache_size)
    cycle = Cycle(settings, store)  # replaced when a restarted devnet is followed
    metrics = Metrics(store)
    metrics.watch_rpc(cycle.syncer.rpc_stats, cycle.syncer.rpc_endpoints)
    watched = current_devnet_config() if is_devnet_config(settings.source) else None
    view = RunView(console, store, settings.stale_bound_s)
    server: ApiServer | None = None
    if settings.api.enabled:
        from aggregator.api.app import create_app, trusted_hosts

        app = create_app(store, public_reads=settings.api.public_reads, metrics=metrics,
                         allowed_hosts=trusted_hosts(settings.api.host), stale_after_s=settings.stale_bound_s)
        try:
            server = ApiServer(app, settings.api.host, settings.api.port).start()
        except Exception:
            cycle.close()
            store.close()
            raise

    def follow_devnet(report: CycleReport) -> None:
        """After a failed sync of a chain that stopped answering: re-read the devnet's config if it changed."""
        nonlocal watched, cycle
        if watched is None or report.sync.ok:
            return
        now = current_devnet_config()
        if now is None or now.fingerprint == watched.fingerprint:
            return
        try:
            fresh = load_settings(now.path)
            fresh = reload(fresh) if reload is not None else fresh
        except ConfigError as exc:
            log.error("the devnet's config changed but cannot be read: %s", exc)
            return
        old, cycle = cycle, Cycle(fresh, store)
        metrics.watch_rpc(cycle.syncer.rpc_stats, cycle.syncer.rpc_endpoints)
        old.close()
        watched = now
        rpc = ", ".join(c.rpc_url or c.rpc_url_env or "" for c in fresh.chains)
        log.warning("the devnet was restarted (%s now): following it", rpc)
        console.print(f"[yellow]the devnet was restarted: following it at {rpc}[/]", soft_wrap=True)

    collector = IdleCollector()

    def job() -> CycleReport:
        report = cycle.run()
        metrics.observe_sync(report.sync, failed=any(e.stage is Stage.SYNC for e in report.errors))
        metrics.observe_errors(report.errors)
        view.show(report)
        follow_devnet(report)
        collector.idle()  # the sync is stored and shown: a full collection now stays out of the next block
        return report

    scheduler = SyncScheduler(job, settings.interval_s)
    heads = None
    if settings.store.compact_every_s > 0:
        scheduler.add_maintenance(COMPACT_JOB_ID, lambda: compact_store(store, settings),
                                  settings.store.compact_every_s)
    previous = signal.getsignal(signal.SIGTERM) if threading.current_thread() is threading.main_thread() else None
    terminated = SigtermFlag()
    if previous is not None:
        signal.signal(signal.SIGTERM, terminated)
    scheduler.start()
    if settings.sync_mode == "block":
        from aggregator.blockrun import HeadTriggers

        heads = HeadTriggers(settings, scheduler.run_soon)
        if heads.chains:
            console.print(f"following new heads on {heads.chains} chain(s): a block is synced as it arrives",
                          soft_wrap=True)
    console.print(f"syncing every {settings.interval_s:g} s; {keeper_banner(settings)}; "
                  f"data older than {settings.stale_bound_s:g} s is shown as stale; Ctrl-C to stop", soft_wrap=True)
    if server is not None:
        console.print(f"dashboard: {server.url}/ui/  API: {server.url}/v1  metrics: {server.url}/metrics",
                      soft_wrap=True)
    try:
        while not stop.wait(0.5) and not terminated.requested:
            pass
        console.print("stopping…")
    except KeyboardInterrupt:
        console.print("stopping…")
    finally:
        if heads is not None:
            heads.close()
        scheduler.shutdown(wait=True)  # the stage in hand finishes (a store write commits or rolls back whole)
        if server is not None:
            server.stop()
        cycle.close()
        store.close()
        collector.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
