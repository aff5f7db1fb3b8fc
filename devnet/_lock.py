"""An exclusive advisory file lock, so that concurrent processes (pytest workers, the demo) install and
deploy once and the others wait and reuse the result."""

from __future__ import annotations

import fcntl
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

__all__ = ["file_lock"]


@contextmanager
def file_lock(path: Path, waiting: Callable[[], AbstractContextManager[object]] | None = None) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing) for the duration of the block.

    When another process holds it, the wait happens inside ``waiting()`` (e.g. a progress stage), if given.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            with waiting() if waiting is not None else nullcontext():
                fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
