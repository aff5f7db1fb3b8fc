"""Progress of the devnet's slow stages (first-run install, compile, deploy; start; seeding), for a caller to show.

The devnet never prints. Functions that can take long accept ``progress``: any callable taking a
:class:`StageEvent` (``None``, the default, reports nothing). Each stage is reported as ``start``, then zero or
more ``update`` (with a ``detail``, e.g. the wallet being seeded), then ``done`` or ``failed``, with the seconds
since it started. Stages never nest: one ends before the next starts. A stage that has nothing to do (an
install already current, a cached deployment) is not reported at all.

Stage keys (stable, for code) and what happens (``text``, for people):

============== =============================================================================================
``npm_ci``      ``npm ci`` in ``devnet/`` (first run, or after ``package-lock.json`` changed)
``chainlink``   ``npm pack @chainlink/contracts`` into ``devnet/vendor`` (first run)
``compile``     solc-js compiles the venue parts' compile jobs, Chainlink's mock feed and Multicall3 (first run)
``wait``        another process holds the install or deploy lock: waiting for it to finish
(market)        the token market's own deployment on a private anvil (no cached state yet), under the key its
                part names (:attr:`devnet.parts.TokenMarket.stage`)
``deploy_feeds``  Chainlink feeds wired into the token market's oracle, Multicall3
``deploy_venues`` the other on-chain venues with their markets, pools and liquidity
``cache``       the deployed chain state dumped into the cache
``anvil``       anvil started on the cached state, clock and feeds synced to wall time
``perp_api``    the local venue API (every off-chain venue's routes) started
``seed``        the demo positions opened (an ``update`` per wallet)
============== =============================================================================================
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

__all__ = ["Progress", "StageEvent", "stage"]


@dataclass(frozen=True)
class StageEvent:
    """One step of a stage's life."""

    stage: str
    """Stable key (see the module table)."""
    text: str
    """What is happening, in words, e.g. ``"npm ci (first run)"``."""
    status: Literal["start", "update", "done", "failed"]
    elapsed_s: float
    """Seconds since the stage started (0.0 at ``start``)."""
    detail: str | None = None
    """For ``update``: what the stage is at now (e.g. ``"hedged (6/6)"``); for ``failed``: the error."""


Progress = Callable[[StageEvent], None]
"""A progress callback."""


@contextmanager
def stage(progress: Progress | None, key: str, text: str) -> Iterator[Callable[[str], None]]:
    """Report stage ``key`` (``text``) as started, then done — or failed when the block raises (re-raised).

    Yields ``update(detail)`` for reporting where the stage is. With ``progress=None`` nothing is reported.
    """
    if progress is None:
        yield lambda detail: None
        return
    began = time.monotonic()

    def update(detail: str) -> None:
        progress(StageEvent(key, text, "update", time.monotonic() - began, detail))

    progress(StageEvent(key, text, "start", 0.0))
    try:
        yield update
    except BaseException as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        progress(StageEvent(key, text, "failed", time.monotonic() - began, first_line))
        raise
    progress(StageEvent(key, text, "done", time.monotonic() - began))
