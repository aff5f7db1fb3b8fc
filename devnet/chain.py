"""Run the devnet: a private anvil for a test (:class:`Devnet`), or a shared detached one that separate
CLI processes find through a run file (:func:`up`, :func:`info`, :func:`down`).

Every start loads the cached deployed state (deploying it first if there is none; see
:mod:`devnet.cache`) and then syncs the clock: the loaded chain's time is that of the deployment, possibly
days ago, so the node's clock is set to wall-clock time (``anvil_setTime``, never backwards), a block is
mined, and every feed re-posts its answer. After a start, the latest block timestamp, the feeds'
``updatedAt`` and wall-clock time agree, so staleness checks against either clock pass until the caller
moves time (:func:`devnet.evm.increase_time`; then call :func:`devnet.feeds.refresh_feeds`).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import httpx

from devnet.cache import CachedState, ensure_state
from devnet.evm import DevnetError, RpcError, block_timestamp, mine, rpc
from devnet.feeds import refresh_feeds
from devnet.models import DevnetInfo
from devnet.node import AttachedNode, free_port, is_anvil, kill_detached, spawn_detached
from devnet.paths import run_file
from devnet.perp_api import PerpApi

__all__ = ["Devnet", "DevnetNotRunningError", "down", "info", "up"]


class DevnetNotRunningError(DevnetError):
    """No devnet is recorded in the run file, or the recorded one does not answer."""


class Devnet:
    """A private devnet: an anvil child process with the deployed state loaded.

    >>> with Devnet.launch() as dn:   # doctest: +SKIP
    ...     pool = dn.info.contracts["aave_v3.pool"]
    """

    def __init__(self) -> None:
        self._node: AttachedNode | None = None
        self._info: DevnetInfo | None = None
        self._perp: PerpApi | None = None
        self.deployed = False
        """Whether starting this devnet had to deploy (no cache entry existed): False means loaded."""
        self.startup_s = 0.0
        """Seconds :meth:`start` took, deployment included."""

    @property
    def info(self) -> DevnetInfo:
        """The running devnet; raises :class:`DevnetNotRunningError` before :meth:`start` or after :meth:`stop`."""
        if self._info is None:
            raise DevnetNotRunningError("this Devnet is not started")
        return self._info

    def start(self, port: int | None = None) -> DevnetInfo:
        """Start anvil on ``port`` (a free loopback port when None), deploy-or-load, sync the clock."""
        if self._node is not None:
            raise DevnetError("this Devnet is already started")
        began = time.perf_counter()
        state, self.deployed = ensure_state()
        self._node = AttachedNode(port, state.state_file)
        try:
            ready = _ready(state, self._node.url)
            self._perp = PerpApi()
            self._info = replace(ready, services={"perp_api": self._perp.start()})
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.perf_counter() - began
        return self._info

    def stop(self) -> None:
        """Stop the anvil process and the perp API. Idempotent."""
        if self._perp is not None:
            self._perp.stop()
            self._perp = None
        if self._node is not None:
            self._node.stop()
        self._node = None
        self._info = None

    @classmethod
    @contextmanager
    def launch(cls, port: int | None = None) -> Iterator[Devnet]:
        """Context manager: a started private :class:`Devnet`, stopped on exit."""
        devnet = cls()
        devnet.start(port)
        try:
            yield devnet
        finally:
            devnet.stop()


def up(port: int | None = None) -> DevnetInfo:
    """Start the shared devnet detached (its own session; log next to the run file) and record it in the
    run file; if the recorded one still answers, return it instead of starting another."""
    try:
        return info()
    except DevnetNotRunningError:
        down()  # clear a stale record, and its process if it hangs
    state, _ = ensure_state()
    path = run_file()
    log_file = path.with_suffix(".log")
    pid, url = spawn_detached(port, state.state_file, log_file)
    perp_pid = None
    try:
        devnet = _ready(state, url)
        perp_pid, perp_url = _spawn_perp_api(log_file)
        devnet = replace(devnet, services={"perp_api": perp_url})
    except BaseException:
        kill_detached(pid)
        if perp_pid is not None:
            _kill_group(perp_pid)
        raise
    record = {
        **devnet.as_json(with_markets=True),
        "pid": pid,
        "perp_api_pid": perp_pid,
        "log": str(log_file),
        "state_file": str(state.state_file),
        "started_at": int(time.time()),
    }
    _write_atomically(path, json.dumps(record, indent=1))
    return devnet


def info() -> DevnetInfo:
    """The shared devnet recorded in the run file, checked to answer JSON-RPC."""
    path = run_file()
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise DevnetNotRunningError(f"no devnet run file at {path}: start one with devnet.chain.up()") from None
    devnet = DevnetInfo.from_json(record)
    try:
        rpc(devnet, "eth_chainId")
    except (httpx.TransportError, RpcError) as exc:
        raise DevnetNotRunningError(f"the devnet in {path} ({devnet.rpc_url}) does not answer: {exc}") from exc
    return devnet


def down() -> bool:
    """Stop the shared devnet and remove the run file; False if none was recorded."""
    path = run_file()
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return False
    pid = int(record["pid"])
    if is_anvil(pid):
        kill_detached(pid)
    if record.get("perp_api_pid"):
        _kill_group(int(record["perp_api_pid"]))
    path.unlink(missing_ok=True)
    return True


def _spawn_perp_api(log_file: Path) -> tuple[int, str]:
    """Start the local perp API in its own session (it outlives this process); wait until it answers."""
    port = free_port()
    cmd = [sys.executable, "-m", "devnet.perp_api", "--port", str(port)]
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(log_file), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    pid = os.posix_spawn(cmd[0], cmd, dict(os.environ), file_actions=actions, setsid=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/v4/perpetualMarkets", timeout=1.0).status_code == 200:
                return pid, url
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    _kill_group(pid)
    raise DevnetError(f"the perp API did not answer at {url} within 15 s; see {log_file}")


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)  # reap it when it is our child (started in this process)


def _ready(state: CachedState, url: str) -> DevnetInfo:
    """The info of a node that just loaded ``state``, after syncing its clock and feeds to wall time."""
    deployment = state.deployment
    devnet = DevnetInfo(
        url, state.chain_id, dict(deployment.contracts), dict(deployment.tokens), dict(deployment.markets)
    )
    now = int(time.time())
    if now > block_timestamp(devnet):
        rpc(devnet, "anvil_setTime", [now])
    mine(devnet)
    refresh_feeds(devnet)
    return devnet


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
