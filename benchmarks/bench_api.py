"""HTTP API benchmark: requests/s and latency of ``GET /v1/wallets/{address}/health`` over loopback.

The app (``aggregator.api.app.create_app``) runs under uvicorn in a separate process (this script, started with
``--serve DB_URL PORT``: one uvicorn process, its defaults, no access log) over a store filled with ``--wallets``
tracked wallets, each with snapshots on two venues (the registry's first lending venue and its first LP venue) at
``--blocks`` blocks (rows of ``tests/db/db_testdata``: two positions per snapshot, their health, two oracle prices
per block). The load generator is this process: ``--concurrency`` client threads, each with its own keep-alive
``httpx.Client``, cycling through all wallets from different offsets, ``--warmup`` seconds unrecorded and then
``--seconds`` recorded; every response must be a 200.

Measured in the same run, for the ratios:

* ``/healthz`` (or ``/openapi.json`` where there is no ``/healthz``): a route that reads nothing, under the same
  load — what uvicorn + FastAPI + the client cost per request;
* ``store.latest_health(address)`` in this process, one thread, no HTTP — the store read the endpoint makes; and
  the same with ``health_view`` (the JSON document the endpoint returns, before serialization).

Columns: requests recorded, requests per second, latency percentiles as the client sees them, CPU of the client
and of the server process (share of one core over the recorded seconds), and the ratios: req/s of the health
endpoint over the trivial route's at the same concurrency, and p50 over the direct store read's. The machine is
small and noisy: read the ratios more than the absolute figures.

    python benchmarks/bench_api.py [--wallets 1000] [--blocks 3] [--seconds 4] [--concurrency 1 8] [--postgres]
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.db.db_testdata builds the rows

import httpx
import sqlalchemy as sa
import uvicorn
from sqlalchemy.engine import make_url

from aggregator.api.app import create_app
from aggregator.documents import health_view
from aggregator.venues import plugins
from db import Store
from tests.db import db_testdata as td

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
HEALTH = "GET /v1/wallets/{address}/health"


# --- server -------------------------------------------------------------------------------------------------


def serve(db_url: str, port: int) -> None:
    """The API over the store at ``db_url`` on 127.0.0.1:``port``, until terminated."""
    with Store.open(db_url) as store:
        uvicorn.run(create_app(store), host="127.0.0.1", port=port, log_level="warning", access_log=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def server_process(db_url: str) -> Iterator[tuple[str, int]]:
    """Start ``--serve`` in a child process; yield its base URL and pid once it answers."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--serve", db_url, str(port)])
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the API server exited with {proc.returncode}")
            try:
                if httpx.get(f"{base_url}/openapi.json", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the API server did not answer within 60 s")
            time.sleep(0.1)
        yield base_url, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a process (Linux /proc), None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- store --------------------------------------------------------------------------------------------------


def fill(store: Store, n_wallets: int, blocks: int) -> list[str]:
    """``n_wallets`` tracked wallets with snapshots on :func:`bench_venues` at ``blocks`` blocks."""
    wallets = td.setup(store, n_wallets)
    for block in range(100, 100 + blocks):
        for venue in bench_venues():
            store.write_sync(td.batch(wallets, block, venue=venue))
    return wallets


def bench_venues() -> list[str]:
    """The venues the store is filled with: the registry's first lending venue and its first LP venue."""
    return [next(p.venue_type for p in plugins() if p.kind == kind) for kind in ("lending", "lp")]


@contextlib.contextmanager
def pg_schema(base_url: str) -> Iterator[str]:
    """A URL on a fresh private schema, dropped afterwards."""
    admin = sa.create_engine(make_url(base_url), poolclass=sa.NullPool)
    schema = f"xmargin_bench_api_{os.getpid()}_{uuid.uuid4().hex[:10]}"
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        yield make_url(base_url).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
            hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()


# --- load ---------------------------------------------------------------------------------------------------


@dataclass
class Figures:
    endpoint: str
    concurrency: int
    latencies_s: list[float]
    seconds: float
    errors: Counter[str] = field(default_factory=Counter)
    client_cpu: float | None = None  # share of one core
    server_cpu: float | None = None
    cpu_ms_per_request: float | None = None  # the server's (a direct read: this process's)

    @property
    def requests(self) -> int:
        return len(self.latencies_s)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def pct_ms(self, q: float) -> float:
        ordered = sorted(self.latencies_s)
        return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] * 1e3


def load(
    base_url: str, paths: Sequence[str], *, concurrency: int, warmup_s: float, seconds: float,
    headers: dict[str, str], server_pid: int, endpoint: str,
) -> Figures:
    """``concurrency`` keep-alive clients GET ``paths`` round-robin: warmup, then ``seconds`` recorded."""
    start = time.perf_counter() + 0.2  # every client connected before the clock starts
    record_from = start + warmup_s
    until = record_from + seconds
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors: list[Counter[str]] = [Counter() for _ in range(concurrency)]
    ready = threading.Barrier(concurrency + 1)

    def client(k: int) -> None:
        with httpx.Client(base_url=base_url, headers=headers, timeout=30) as c:
            c.get(paths[k % len(paths)])  # connect
            ready.wait()
            i = k * max(1, len(paths) // concurrency)
            while (now := time.perf_counter()) < until:
                path = paths[i % len(paths)]
                i += 1
                try:
                    resp = c.get(path)
                    status = resp.status_code
                except httpx.HTTPError as exc:
                    status = -1
                    errors[k][type(exc).__name__] += 1
                took = time.perf_counter() - now
                if now >= record_from:
                    latencies[k].append(took)
                    if status != 200 and status != -1:
                        errors[k][str(status)] += 1

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(concurrency)]
    for t in threads:
        t.start()
    ready.wait()
    time.sleep(max(0.0, record_from - time.perf_counter()))
    cpu0, server0 = time.process_time(), process_cpu_s(server_pid)
    for t in threads:
        t.join()
    wall = time.perf_counter() - record_from
    cpu1, server1 = time.process_time(), process_cpu_s(server_pid)
    figures = Figures(endpoint, concurrency, [x for per in latencies for x in per], wall,
                      sum(errors, Counter()), client_cpu=(cpu1 - cpu0) / wall)
    if server0 is not None and server1 is not None:
        figures.server_cpu = (server1 - server0) / wall
        figures.cpu_ms_per_request = (server1 - server0) / max(1, figures.requests) * 1e3
    return figures


def direct(endpoint: str, wallets: Sequence[str], read: Callable[[str], object], seconds: float,
           warmup_s: float) -> Figures:
    """One thread calling ``read`` in this process (no HTTP), round-robin over ``wallets``."""
    record_from = time.perf_counter() + warmup_s
    until = record_from + seconds
    latencies: list[float] = []
    i = 0
    cpu0: float | None = None
    while (now := time.perf_counter()) < until:
        if cpu0 is None and now >= record_from:
            cpu0 = time.process_time()
        read(wallets[i % len(wallets)])
        i += 1
        if now >= record_from:
            latencies.append(time.perf_counter() - now)
    wall = time.perf_counter() - record_from
    cpu = time.process_time() - (cpu0 or 0.0)
    return Figures(endpoint, 1, latencies, wall, client_cpu=cpu / wall,
                   cpu_ms_per_request=cpu / max(1, len(latencies)) * 1e3)


# --- output -------------------------------------------------------------------------------------------------


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[str(c) for c in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    print(f"\n{title}")
    for k, r in enumerate(cells):
        print("  " + "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))))
        if k == 0:
            print("  " + "  ".join("-" * w for w in widths))


def pct(share: float | None) -> str:
    return "" if share is None else f"{share * 100:.0f}%"


# --- main ---------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--serve", nargs=2, metavar=("DB_URL", "PORT"), help=argparse.SUPPRESS)
    ap.add_argument("--wallets", type=int, default=1_000, help="tracked wallets in the store")
    ap.add_argument("--blocks", type=int, default=3, help="blocks of snapshots per wallet and venue")
    ap.add_argument("--seconds", type=float, default=4.0, help="recorded seconds per measurement")
    ap.add_argument("--warmup", type=float, default=1.0, help="unrecorded seconds before each measurement")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8], help="concurrent clients")
    ap.add_argument("--postgres", action="store_true", help=f"PostgreSQL ({DEFAULT_PG_URL}, a private schema) "
                    "instead of a SQLite file")
    ap.add_argument("--pg-url", default=os.environ.get("XMARGIN_BENCH_PG_URL", DEFAULT_PG_URL))
    args = ap.parse_args(argv)
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return 0

    t_start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if args.postgres:
            db_url = stack.enter_context(pg_schema(args.pg_url))
            backend = f"PostgreSQL {make_url(args.pg_url).render_as_string()} (private schema)"
        else:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="xmargin-bench-api-"))
            db_url = f"sqlite:///{tmp}/xmargin.db"
            backend = "SQLite file"
        store = stack.enter_context(Store.open(db_url))
        t0 = time.perf_counter()
        wallets = fill(store, args.wallets, args.blocks)
        fill_s = time.perf_counter() - t0
        headers: dict[str, str] = {}
        create_key = getattr(store, "create_api_key", None)
        if create_key is not None:  # reads may need a key; a public read ignores it
            _row, key = create_key("bench", **({"now": td.T0} if "now" in inspect.signature(create_key).parameters
                                              else {}))
            headers["Authorization"] = f"Bearer {key}"
        kinds = {v.name: str(v.kind) for v in store.list_venues()}
        print(f"=== API benchmark: {backend}, {len(wallets):,} wallets x {len(kinds)} venues x {args.blocks} "
              f"blocks ({len(wallets) * len(kinds) * args.blocks:,} snapshots, filled in {fill_s:.1f} s); "
              f"uvicorn {uvicorn.__version__}, 1 server process; {os.cpu_count()} CPUs ===")

        base_url, pid = stack.enter_context(server_process(db_url))
        health_paths = [f"/v1/wallets/{w}/health" for w in wallets]
        with httpx.Client(base_url=base_url, headers=headers, timeout=30) as c:
            sample = c.get(health_paths[0])
            expected = health_view(store, wallets[0], stale_after_s=STALE_AFTER_S)
            if sample.status_code != 200 or _without_ages(sample.json()) != _without_ages(expected):
                raise RuntimeError(f"{HEALTH} does not answer the store's document: {sample.status_code} "
                                   f"{sample.text[:300]}")
            trivial = "/healthz" if c.get("/healthz").status_code == 200 else "/openapi.json"
        print(f"checked: {HEALTH} answers the store's document ({len(sample.content):,} bytes per wallet)")

        rows: list[Figures] = []
        for conc in args.concurrency:
            for endpoint, paths in ((HEALTH, health_paths), (f"GET {trivial}", [trivial])):
                rows.append(load(base_url, paths, concurrency=conc, warmup_s=args.warmup, seconds=args.seconds,
                                 headers=headers, server_pid=pid, endpoint=endpoint))
        read = direct("store.latest_health() in-process", wallets, store.latest_health, args.seconds, args.warmup)
        render = direct("  + health_view() in-process", wallets,
                        lambda w: health_view(store, w, stale_after_s=STALE_AFTER_S), args.seconds, args.warmup)

    trivial_rate = {f.concurrency: f.rate for f in rows if f.endpoint != HEALTH}
    table = []
    for f in [*rows, read, render]:
        vs_trivial = f"{f.rate / trivial_rate[f.concurrency]:.2f}x" if f.endpoint == HEALTH else ""
        vs_read = f"{f.pct_ms(50) / read.pct_ms(50):.1f}x" if f is not read else "1.0x"
        cpu_ms = "" if f.cpu_ms_per_request is None else f"{f.cpu_ms_per_request:.2f}"
        errors = ", ".join(f"{k}: {v}" for k, v in sorted(f.errors.items())) or "0"
        table.append([f.endpoint, f.concurrency, f"{f.requests:,}", f"{f.rate:,.0f}", f"{f.pct_ms(50):.2f}",
                      f"{f.pct_ms(90):.2f}", f"{f.pct_ms(99):.2f}", errors, pct(f.client_cpu), pct(f.server_cpu),
                      cpu_ms, vs_trivial, vs_read])
    print_table(
        f"{args.seconds:g} s recorded per row after {args.warmup:g} s warmup; keep-alive httpx clients (threads); "
        "latency as the client sees it",
        ["endpoint", "concurrency", "requests", "req/s", "p50 ms", "p90 ms", "p99 ms", "non-200", "client CPU",
         "server CPU", "CPU ms/req", "req/s vs trivial", "p50 vs store read"],
        table,
    )
    health_rows = [f for f in rows if f.endpoint == HEALTH]
    best = max(health_rows, key=lambda f: f.rate)
    print(f"  health: best {best.rate:,.0f} req/s (concurrency {best.concurrency}) = "
          f"{best.rate / trivial_rate[best.concurrency]:.0%} of the trivial route's rate; at concurrency "
          f"{health_rows[0].concurrency} its p50 is {health_rows[0].pct_ms(50) / read.pct_ms(50):.1f}x the direct "
          f"store read's ({read.pct_ms(50):.2f} ms).")
    cpu = [f.cpu_ms_per_request for f in health_rows if f.cpu_ms_per_request is not None]
    read_ms, render_ms = read.cpu_ms_per_request or 0.0, render.cpu_ms_per_request or 0.0
    if cpu and read_ms:
        server_ms = statistics.median(cpu)
        print(f"  server CPU per health request {server_ms:.2f} ms (median over the concurrencies) vs {read_ms:.2f} ms "
              f"for latest_health() in-process: {server_ms / read_ms:.1f}x; rendering the document in-process adds "
              f"{render_ms - read_ms:+.2f} ms.")
    print("  CPU: share of one core over the recorded seconds (the server is one process; its Python runs on one core "
          f"at a time); the client shares the {os.cpu_count()} CPUs with it. CPU ms/req: the server's CPU per request "
          "(direct rows: this process's per call), less sensitive to a busy machine than req/s.")
    print(f"\ntotal {time.perf_counter() - t_start:.0f} s")
    bad = sum(sum(f.errors.values()) for f in rows)
    if bad:
        print(f"{bad} responses were not 200")
    return 1 if bad else 0


STALE_AFTER_S = 45.0


def _without_ages(doc: dict[str, Any]) -> dict[str, Any]:
    """The health document less what moves with the clock (ages, and the sentences naming them)."""
    out = {**doc, "freshness": {k: v for k, v in doc["freshness"].items() if k not in ("age_s", "block_age_s",
                                                                                          "reason")},
           "summary": {k: v for k, v in doc["summary"].items() if k != "text"}}
    out["venues"] = [{k: v for k, v in venue.items() if k != "age_s"} for venue in doc["venues"]]
    return out


if __name__ == "__main__":
    sys.exit(main())
