"""The schedule's policies, observed on a real APScheduler: no overlap, missed runs coalesced."""

from __future__ import annotations

import os
import signal
import threading
import time

from aggregator.scheduler import SigtermFlag, SyncScheduler


def _wait_for(predicate: object, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


def test_a_slow_sync_never_overlaps_itself_and_late_ticks_are_skipped() -> None:
    running = 0
    max_running = 0
    lock = threading.Lock()
    release = threading.Event()
    calls = 0

    def slow_job() -> None:
        nonlocal running, max_running, calls
        with lock:
            running += 1
            calls += 1
            max_running = max(max_running, running)
        release.wait(5)  # far longer than the interval
        with lock:
            running -= 1

    scheduler = SyncScheduler(slow_job, interval_s=0.1)
    scheduler.start()
    try:
        _wait_for(lambda: scheduler.skipped >= 3)  # ticks came while the first run was still going
        assert calls == 1
        release.set()
        _wait_for(lambda: scheduler.runs >= 2)
    finally:
        release.set()
        scheduler.shutdown()
    assert max_running == 1
    assert scheduler.errors == 0


def test_policies_are_set_on_the_job() -> None:
    scheduler = SyncScheduler(lambda: None, interval_s=30)
    scheduler.start(run_now=False)
    try:
        assert scheduler.job_policies == {"max_instances": 1, "coalesce": True, "misfire_grace_time": 30}
    finally:
        scheduler.shutdown()


def test_a_failing_sync_is_counted_and_the_schedule_goes_on() -> None:
    attempts = 0

    def flaky() -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise RuntimeError("node down (injected)")

    scheduler = SyncScheduler(flaky, interval_s=0.05)
    scheduler.start()
    try:
        _wait_for(lambda: scheduler.runs >= 3)
    finally:
        scheduler.shutdown()
    assert scheduler.errors == 1
    assert attempts >= 3


def test_a_new_head_runs_the_sync_now_and_once_more_when_it_came_during_a_run() -> None:
    """``run_soon`` (a head arrived) runs the sync at once, not at the next tick; a head announced while a sync runs
    gets one more run right after it (the first may have read the head before that block existed)."""
    started: list[float] = []
    release = threading.Event()

    def job() -> None:
        started.append(time.monotonic())
        if len(started) == 2:
            release.wait(10)

    scheduler = SyncScheduler(job, interval_s=3600)
    scheduler.start(run_now=False)
    try:
        t0 = time.monotonic()
        scheduler.run_soon()
        deadline = time.monotonic() + 10
        while len(started) < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(started) == 1
        assert started[0] - t0 < 5  # not the hour's tick
        while scheduler.runs < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        scheduler.run_soon()  # the second run blocks until released
        while len(started) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(started) == 2
        scheduler.run_soon()  # during the second run: remembered…
        scheduler.run_soon()  # …once
        time.sleep(0.3)
        assert len(started) == 2  # no overlap
        release.set()
        while len(started) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)
        assert len(started) == 3  # one more run right after, then nothing until the next head or tick
        assert scheduler.skipped == 0
    finally:
        release.set()
        scheduler.shutdown()


def test_the_sigterm_handler_only_sets_a_flag_even_inside_the_stop_events_wait() -> None:
    """``xmargin run``'s SIGTERM handler runs in the main thread, possibly while that thread holds the stop event's
    own lock inside ``stop.wait()`` (re-acquiring it after a timeout). There it must return at once: the handler
    that called ``stop.set()`` waited for that lock forever (a run that never stopped). As a real handler, a
    SIGTERM sets the flag the main loop polls."""
    stop = threading.Event()
    flag = SigtermFlag()
    returned = threading.Event()

    def inside_the_wait() -> None:
        with stop._cond:  # type: ignore[attr-defined]  # what Event.wait holds while it re-acquires
            flag(signal.SIGTERM, None)
        returned.set()

    threading.Thread(target=inside_the_wait, daemon=True).start()
    assert returned.wait(5), "the SIGTERM handler blocked on the stop event's lock"
    assert flag.requested
    assert not stop.is_set()

    real = SigtermFlag()
    previous = signal.signal(signal.SIGTERM, real)
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        deadline = time.monotonic() + 5
        while not real.requested and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert real.requested
