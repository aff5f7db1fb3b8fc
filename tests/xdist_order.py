"""How ``pytest -n N --dist loadfile`` hands out the suite's modules (installed by ``tests/conftest.py``).

xdist's own file scheduler queues modules by their number of tests, most first; cost is not count here — the kill -9
campaign is two tests and two minutes — so the longest modules came last and the run ended on one worker while the
others idled. This scheduler keeps the collection order (``conftest.py`` puts the long modules first, longest first)
and gives each test of a module listed in :data:`ONE_TEST_PER_UNIT` to a worker of its own (their tests share no
fixture worth keeping on one worker: each builds its own chain).
"""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest
from xdist.remote import Producer
from xdist.scheduler import LoadFileScheduling

__all__ = ["ONE_TEST_PER_UNIT", "LongFirstScheduling"]

ONE_TEST_PER_UNIT = frozenset({"test_crash_consistency.py", "test_crash_blocks.py"})
"""Modules whose tests are scheduled one by one (each test takes a minute or more)."""


class LongFirstScheduling(LoadFileScheduling):
    """``--dist loadfile`` in collection order, with :data:`ONE_TEST_PER_UNIT` split per test."""

    def __init__(self, config: pytest.Config, log: Producer | None = None) -> None:
        super().__init__(config, log)
        # Queue work units as collected (long modules first), not by their number of tests.
        config.option.loadscopereorder = False

    def _split_scope(self, nodeid: str) -> str:
        path = nodeid.split("::", 1)[0]
        if PurePosixPath(path).name in ONE_TEST_PER_UNIT:
            return nodeid
        return path
