"""One devnet per test process, shared by the test modules that need no private chain (not a test module).

Starting a devnet per module cost an anvil process, a perp API and the seeding every time. Instead each pytest
process (each xdist worker) starts one :class:`SharedDevnet` on first use (``tests/conftest.py``'s session
fixture) and hands every module the chain in the state a fresh launch would have given it:

``fresh()``
    as :meth:`devnet.Devnet.launch` leaves it (loaded, clock synced, nothing seeded);
``seeded()``
    the same after :func:`devnet.seed`.

Both are ``evm_snapshot``s taken once, the fresh one first; a module gets its state by ``evm_revert`` to one of them
(same blocks as a private launch), then one empty block of its own on top (see below). A revert consumes its snapshot,
and reverting to the fresh one also drops the seeded one taken after it, so each is taken again right after (the seeded
state is then seeded anew on the next ``seeded()``). What is not in the chain's state is put back too: the perp API's
marks (a ``set_price`` moves them), automine on, no fixed block-timestamp interval. A node that stopped answering, or a
snapshot the node refuses, is replaced by a new devnet.

Why a block of its own: reads pinned to a past block need the node's stored state of that block. anvil stores a
block's state, keyed by its hash, when a block is mined on top of it, and forgets the oldest stored states first
(``--prune-history``), but a hash stored again is queued again, and when its older entry comes out the state goes
with it (anvil 1.7's ``InMemoryBlockStates``). Every module that reverted to the same head and mined stored that
head once more, so once a few hundred blocks had been mined a module that read pinned to the block it started
at, after mining, could find its state gone (``BlockOutOfRangeError``, seen in CI). Each module now starts at an
empty block mined by a coinbase no earlier module used, so the block it starts at has a hash of its own.

Modules that kill or restart the node, change its chain id, run several chains or time the launch itself keep
their own :meth:`devnet.Devnet.launch`.
"""

from __future__ import annotations

import contextlib
from decimal import Decimal

import httpx

import devnet
from devnet import perp_api
from devnet.node import HISTORY_STATES

__all__ = ["SharedDevnet"]


def _default_marks() -> dict[str, Decimal]:
    """The marks a newly started perp API has (Hyperliquid mark = oracle = the dYdX oracle of each coin)."""
    api = perp_api.PerpApi(seed=False)  # not started: only its initial figures are read
    marks: dict[str, Decimal] = {}
    for venue, state in api.venues.items():
        for coin, mark in state.marks().items():
            assert marks.setdefault(coin, mark) == mark, f"{venue} {coin}: the perp API's initial marks differ by venue"
    return marks


class SharedDevnet:
    """A devnet started on first use, reset to a launched (or launched and seeded) state on request."""

    def __init__(self, history_states: int = HISTORY_STATES) -> None:
        self.history_states = history_states
        """Block states the node keeps for reads pinned to past blocks (``--prune-history``)."""
        self._stack: contextlib.ExitStack | None = None
        self._info: devnet.DevnetInfo | None = None
        self._fresh: str | None = None
        self._seeded: str | None = None
        self._marks = _default_marks()
        self._starts = 0
        self.launches = 0
        """Devnets started so far (1 unless one had to be replaced)."""

    def fresh(self) -> devnet.DevnetInfo:
        """The devnet as :meth:`devnet.Devnet.launch` leaves it."""
        info = self._ensure()
        assert self._fresh is not None
        if not self._revert(self._fresh):
            return self.fresh()
        self._fresh = devnet.snapshot(info)
        self._seeded = None  # it was taken after the fresh one: gone with that revert
        self._reset_off_chain(info)
        self._own_block(info)
        return info

    def seeded(self) -> devnet.DevnetInfo:
        """The devnet as :meth:`devnet.Devnet.launch` and :func:`devnet.seed` leave it."""
        if self._seeded is None:
            info = self.fresh()
            devnet.seed(info)
            self._seeded = devnet.snapshot(info)
            self._own_block(info)
            return info
        info = self._ensure()
        if not self._revert(self._seeded):
            return self.seeded()
        self._seeded = devnet.snapshot(info)
        self._reset_off_chain(info)
        self._own_block(info)
        return info

    def close(self) -> None:
        """Stop the devnet (if one was started)."""
        if self._stack is not None:
            self._stack.close()
        self._stack = self._info = self._fresh = self._seeded = None

    # --- internals -------------------------------------------------------------------------------------------------
    def _ensure(self) -> devnet.DevnetInfo:
        """The running devnet, started (or replaced when it stopped answering) as needed."""
        if self._info is not None:
            try:
                devnet.rpc(self._info, "eth_chainId")
            except (httpx.HTTPError, devnet.DevnetError):
                self.close()
        if self._info is None:
            stack = contextlib.ExitStack()
            self._info = stack.enter_context(devnet.Devnet.launch(history_states=self.history_states)).info
            self._stack = stack
            self.launches += 1
            self._fresh = devnet.snapshot(self._info)
            self._seeded = None
        return self._info

    def _revert(self, snapshot_id: str) -> bool:
        """Revert to ``snapshot_id``; False (and the devnet closed, to be replaced) when the node refuses."""
        assert self._info is not None
        try:
            devnet.revert(self._info, snapshot_id)
        except (httpx.HTTPError, devnet.DevnetError):
            self.close()
            return False
        return True

    def _own_block(self, info: devnet.DevnetInfo) -> None:
        """Mine an empty block no other module's start can share: a coinbase of its own (see the module docstring).
        It carries the snapshot's own timestamp, so every start reads the same chain state: a revert sets the node's
        clock back to the snapshot's block, but the first start, right after the snapshot, would mine at the wall
        clock, a second later when one had ticked over, with a second more of interest accrued."""
        self._starts += 1
        devnet.rpc(info, "anvil_setCoinbase", [f"0xc0ffee{self._starts:034x}"])
        devnet.rpc(info, "evm_mine", [devnet.block_timestamp(info)])

    def _reset_off_chain(self, info: devnet.DevnetInfo) -> None:
        """What a revert does not restore: the node's mining settings and the perp API's marks."""
        devnet.rpc(info, "evm_setAutomine", [True])
        devnet.rpc(info, "anvil_removeBlockTimestampInterval")
        for coin, usd in self._marks.items():
            perp_api.set_mark(info, coin, usd)
