"""Prometheus metrics of a running xmargin: ``GET /metrics`` in the text exposition format.

Measured in the process (updated by each cycle of ``xmargin run``):

* ``xmargin_sync_duration_seconds`` (histogram) — one sync of every tracked wallet;
* ``xmargin_sync_batches_total{chain,status}`` — (wallet batch, block) units by outcome (ok / partial / failed);
* ``xmargin_cycle_errors_total{stage}`` — a stage (sync, alerts, keeper, alert delivery) that raised;
* ``xmargin_rpc_requests_total{chain}``, ``xmargin_rpc_http_requests_total{chain}``,
  ``xmargin_rpc_errors_total{chain}`` — JSON-RPC calls, HTTP posts (retries included) and failed calls;
* ``xmargin_rpc_endpoint_up{chain,endpoint}`` — 1 while an endpoint's circuit breaker is closed (endpoint:
  scheme and host only), ``xmargin_rpc_endpoint_trips_total{chain,endpoint}`` — times it opened.

Read from the store at scrape time (so every process serving the API reports the same figures):

* ``xmargin_wallets`` — tracked wallets;
* ``xmargin_last_block{chain_id}`` — newest block of a sync that did not fail, per chain;
* ``xmargin_alerts{state}`` — stored alerts by delivery state (fired, delivered, failed);
* ``xmargin_keeper_plans{status}``, ``xmargin_keeper_transactions{status}`` — keeper plans and their
  transactions by status; ``xmargin_keeper_executed_usd_total`` — USD moved by executed plans;
  ``xmargin_keeper_last_plan_timestamp_seconds`` — when the keeper last came to a plan (absent before the
  first); ``xmargin_keeper_refusals_standing`` — wallets whose newest plan is refused (over a limit: an
  operator must act).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from aggregator.pipeline import SyncReport

if TYPE_CHECKING:
    from aggregator.cycle import CycleError
from connectors.evm.failover import EndpointStatus
from connectors.evm.rpc import RpcStats
from db import Store

__all__ = ["CONTENT_TYPE", "Metrics"]

log = logging.getLogger(__name__)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
disable_created_metrics()  # type: ignore[no-untyped-call]  # no ``*_created`` series: they only add noise here
SYNC_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)

RpcSource = Callable[[], Mapping[str, RpcStats]]
EndpointSource = Callable[[], Mapping[str, Sequence[EndpointStatus]]]


class _StoreCollector(Collector):
    """Gauges read from the store, and the RPC counters read from the syncer, at each scrape."""

    def __init__(self, store: Store, rpc: Callable[[], RpcSource | None],
                 endpoints: Callable[[], EndpointSource | None]) -> None:
        self._store = store
        self._rpc = rpc
        self._endpoints = endpoints

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("xmargin_store_up", "1 when the store answered this scrape.")
        try:
            store_metrics = list(self._store_metrics())
        except Exception as exc:  # a store outage must not hide the process's own metrics
            log.warning("metrics: the store did not answer: %s", exc)
            store_metrics = []
            up.add_metric([], 0)
        else:
            up.add_metric([], 1)
        yield up
        yield from store_metrics
        yield from self._rpc_metrics()

    def _store_metrics(self) -> Iterator[Metric]:
        wallets = GaugeMetricFamily("xmargin_wallets", "Tracked wallets.")
        wallets.add_metric([], self._store.count_wallets())
        yield wallets
        blocks = GaugeMetricFamily("xmargin_last_block", "Newest block of a sync that did not fail.",
                                   labels=["chain_id"])
        for chain_id in sorted({v.chain_id for v in self._store.list_venues() if v.chain_id is not None}):
            block = self._store.latest_block(chain_id)
            if block is not None:
                blocks.add_metric([str(chain_id)], block)
        yield blocks
        alerts = GaugeMetricFamily("xmargin_alerts", "Stored alerts by delivery state.", labels=["state"])
        for state, n in sorted(self._store.alert_counts().items()):
            alerts.add_metric([state], n)
        yield alerts
        yield from self._keeper_metrics()

    def _keeper_metrics(self) -> Iterator[Metric]:
        figures = self._store.keeper_figures()
        plans = GaugeMetricFamily("xmargin_keeper_plans", "Stored keeper plans by status.", labels=["status"])
        for status, n in sorted(figures.plans.items()):
            plans.add_metric([status], n)
        txs = GaugeMetricFamily("xmargin_keeper_transactions", "Stored keeper transactions by status.",
                                labels=["status"])
        for status, n in sorted(figures.txs.items()):
            txs.add_metric([status], n)
        executed = CounterMetricFamily("xmargin_keeper_executed_usd", "USD moved by executed keeper plans.")
        executed.add_metric([], figures.executed_usd)
        refusals = GaugeMetricFamily("xmargin_keeper_refusals_standing",
                                     "Wallets whose newest keeper plan is refused (over a limit).")
        refusals.add_metric([], figures.standing_refusals)
        yield from (plans, txs, executed, refusals)
        if figures.last_plan_at is not None:
            last = GaugeMetricFamily("xmargin_keeper_last_plan_timestamp_seconds",
                                     "When the keeper last came to a plan (Unix seconds).")
            last.add_metric([], figures.last_plan_at.timestamp())
            yield last

    def _rpc_metrics(self) -> Iterator[Metric]:
        source = self._rpc()
        if source is None:
            return
        stats = source()
        calls = CounterMetricFamily("xmargin_rpc_requests", "JSON-RPC calls.", labels=["chain"])
        posts = CounterMetricFamily("xmargin_rpc_http_requests", "JSON-RPC HTTP posts, retries included.",
                                    labels=["chain"])
        errors = CounterMetricFamily("xmargin_rpc_errors", "JSON-RPC calls that failed (reverts excluded).",
                                     labels=["chain"])
        for chain, s in sorted(stats.items()):
            calls.add_metric([chain], s.calls)
            posts.add_metric([chain], s.http_requests)
            errors.add_metric([chain], s.errors)
        yield from (calls, posts, errors)
        endpoints = self._endpoints()
        if endpoints is None:
            return
        up = GaugeMetricFamily("xmargin_rpc_endpoint_up", "1 while the endpoint's circuit breaker is closed.",
                               labels=["chain", "endpoint"])
        trips = CounterMetricFamily("xmargin_rpc_endpoint_trips", "Times the endpoint's circuit breaker opened.",
                                    labels=["chain", "endpoint"])
        for chain, statuses in sorted(endpoints().items()):
            for e in statuses:
                up.add_metric([chain, e.url], 1 if e.state == "closed" else 0)
                trips.add_metric([chain, e.url], e.trips)
        yield from (up, trips)


class Metrics:
    """The metrics of one process, in their own registry (so several apps in one process do not collide)."""

    def __init__(self, store: Store) -> None:
        self.registry = CollectorRegistry()
        self._rpc: RpcSource | None = None
        self._endpoints: EndpointSource | None = None
        self._lock = threading.Lock()
        self.sync_duration = Histogram("xmargin_sync_duration_seconds", "Duration of one sync of every wallet.",
                                       buckets=SYNC_BUCKETS, registry=self.registry)
        self.sync_batches = Counter("xmargin_sync_batches", "(wallet batch, block) sync units by outcome.",
                                    ["chain", "status"], registry=self.registry)
        self.cycle_errors = Counter("xmargin_cycle_errors", "Cycle stages that raised.", ["stage"],
                                    registry=self.registry)
        self.reconcile_sweeps = Counter("xmargin_reconcile_sweeps", "Block mode: blocks at which wallets (a slice "
                                        "of them, or all) were re-read and compared with their cached state.",
                                        ["chain"],
                                        registry=self.registry)
        self.reconcile_mismatches = Counter("xmargin_reconcile_mismatches", "Block mode: (wallet, venue) states "
                                            "a reconciliation found different from the chain's.", ["chain"],
                                            registry=self.registry)
        self.registry.register(_StoreCollector(store, lambda: self._rpc, lambda: self._endpoints))

    def watch_rpc(self, source: RpcSource, endpoints: EndpointSource | None = None) -> None:
        """Report the RPC counters ``source`` returns and the endpoints' breakers (the syncer's), read at each
        scrape."""
        self._rpc = source
        self._endpoints = endpoints

    def observe_sync(self, report: SyncReport, *, failed: bool = False) -> None:
        """Count a sync's batches; its duration only when it ran (a sync that raised is counted by
        ``observe_errors``, not as a zero-second sync)."""
        if not failed:
            self.sync_duration.observe(report.seconds)
        for batch in report.batches:
            self.sync_batches.labels(batch.chain, str(batch.status)).inc()
            if batch.reconciled:
                self.reconcile_sweeps.labels(batch.chain).inc()
                self.reconcile_mismatches.labels(batch.chain).inc(batch.reconcile_mismatches)

    def observe_errors(self, errors: Sequence[CycleError]) -> None:
        for error in errors:
            self.cycle_errors.labels(error.stage.value).inc()

    def render(self) -> bytes:
        """The text exposition of every metric."""
        with self._lock:
            return generate_latest(self.registry)
