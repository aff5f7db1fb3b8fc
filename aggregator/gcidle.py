"""Full garbage collections kept out of the blocks: the block loop runs them between blocks.

CPython's cyclic collector traverses every tracked object in a full (generation 2) collection, and the block path
keeps every wallet's cached state in memory (10,000 wallets: about 1.9 GB). A full collection that falls inside a
block costs the block its duration: in a 2,000-wallet ``benchmarks/bench_block.py`` run, 40 full collections took
10.4 s (0.26 s each), against 1.0 s for the 846 generation-1 collections, and they grow with the wallets.

:class:`IdleCollector` works between blocks (:meth:`IdleCollector.idle`, after a block is stored and served): it
moves every object alive into the permanent generation (``gc.freeze``, constant time), so the collections the
interpreter starts during the next block traverse only what that block allocates; and at most every ``every_s``
seconds it first runs the full collection itself. Cyclic garbage among frozen objects waits for that collection
(objects freed by their reference count, most of them, go at once as always). Freezing without the per-block freeze
makes it worse: the collector counts only unfrozen objects as long-lived, so its full collections come more often
(three a block instead of one at 2,000 wallets) and traverse all that survived since the last freeze.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

__all__ = ["DEFAULT_EVERY_S", "IdleCollector"]

DEFAULT_EVERY_S = 60.0
"""Seconds between the idle full collections (five Ethereum blocks)."""


class IdleCollector:
    """Full collections between blocks (see the module's docstring).

    Parameters
    ----------
    every_s:
        Seconds between two full collections (the first :meth:`idle` collects).
    clock:
        Seconds, monotonic (injected in tests).
    """

    def __init__(self, every_s: float = DEFAULT_EVERY_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.every_s = every_s
        self._clock = clock
        self._last: float | None = None
        self.collections = 0
        """Full collections run by :meth:`idle`."""
        self.seconds = 0.0
        """Their total duration."""
        self.freed = 0
        """Unreachable objects they found."""

    def idle(self) -> bool:
        """Between blocks: a full collection if ``every_s`` has passed since the last; then every object alive
        frozen. Returns whether it collected."""
        now = self._clock()
        collect = self._last is None or now - self._last >= self.every_s
        t0 = time.perf_counter()
        if collect:
            gc.unfreeze()
            self.freed += gc.collect()
            self.collections += 1
            self._last = now
        gc.freeze()
        self.seconds += time.perf_counter() - t0
        return collect

    def close(self) -> None:
        """Hand every frozen object back to the collector."""
        gc.unfreeze()
