"""The block loop's idle full collections (aggregator/gcidle.py)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from aggregator.gcidle import IdleCollector


class Node:
    """An object in a reference cycle: freed only by the cyclic collector."""

    def __init__(self) -> None:
        self.me = self


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def collector() -> Iterator[tuple[IdleCollector, Clock]]:
    clock = Clock()
    c = IdleCollector(every_s=60.0, clock=clock)
    enabled = gc.isenabled()
    gc.disable()  # nothing but the collector under test collects here
    try:
        yield c, clock
    finally:
        c.close()
        if enabled:
            gc.enable()


def _garbage() -> weakref.ref[Node]:
    node = Node()
    return weakref.ref(node)


def test_it_collects_at_most_every_every_s_between_blocks_and_freezes_the_survivors(
    collector: tuple[IdleCollector, Clock],
) -> None:
    c, clock = collector
    assert c.idle()  # the first call collects
    assert gc.get_freeze_count() > 0  # what survived is out of the collections that fall inside a block
    gone = _garbage()
    assert gone() is not None  # a cycle outlives its last reference until a collection
    frozen = gc.get_freeze_count()
    clock.now = 59.0
    assert not c.idle()
    assert gone() is not None
    assert gc.get_freeze_count() > frozen  # what the block allocated is frozen too, without a collection
    clock.now = 60.0
    assert c.idle()
    assert gone() is None
    assert c.collections == 2
    assert c.freed >= 1
    assert c.seconds > 0


def test_cyclic_garbage_among_frozen_objects_is_freed_by_the_next_idle_collection(
    collector: tuple[IdleCollector, Clock],
) -> None:
    c, clock = collector
    held = [Node()]
    frozen = weakref.ref(held[0])
    c.idle()  # held[0] is frozen now
    held.clear()  # …and garbage: a collection started by the interpreter does not see it
    gc.collect()
    assert frozen() is not None
    clock.now = 60.0
    c.idle()
    assert frozen() is None
