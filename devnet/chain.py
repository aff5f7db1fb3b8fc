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
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from devnet.cache import CachedState, ensure_state
from devnet.evm import DevnetError, RpcError, block_timestamp, mine, rpc
from devnet.feeds import refresh_feeds
from devnet.models import DevnetInfo
from devnet.node import (
    HISTORY_STATES,
    AttachedNode,
    alive,
    check_free,
    free_port,
    is_anvil,
    kill_detached,
    port_is_free,
    spawn_detached,
)
from devnet.paths import ports_file, run_file
from devnet.perp_api import READY_ROUTE, PerpApi
from devnet.progress import Progress, stage

__all__ = [
    "Devnet",
    "DevnetAlreadyRunningError",
    "DevnetNotRunningError",
    "Ports",
    "down",
    "info",
    "ports_of",
    "remembered_ports",
    "up",
]


class DevnetNotRunningError(DevnetError):
    """No devnet is recorded in the run file, or the recorded one does not answer."""


class DevnetAlreadyRunningError(DevnetError):
    """:func:`up` was asked for ports other than those of the shared devnet already running."""

    def __init__(self, running: DevnetInfo, message: str) -> None:
        super().__init__(message)
        self.running = running


@dataclass(frozen=True)
class Ports:
    """The shared devnet's loopback ports: anvil's JSON-RPC and the local perp API's (None: not known)."""

    rpc: int | None = None
    perp_api: int | None = None


def ports_of(devnet: DevnetInfo) -> Ports:
    """The ports ``devnet``'s RPC URL and perp API URL are on."""
    perp = devnet.services.get("perp_api")
    return Ports(urlsplit(devnet.rpc_url).port, urlsplit(perp).port if perp else None)


def remembered_ports() -> Ports:
    """The ports the last :func:`up` used (:func:`devnet.paths.ports_file`, kept after :func:`down`), or
    ``Ports()`` when there is no readable record."""
    try:
        data = json.loads(ports_file().read_text())
        return Ports(_port_or_none(data.get("rpc")), _port_or_none(data.get("perp_api")))
    except (OSError, ValueError, AttributeError):
        return Ports()


def _port_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and 0 < value < 65_536 else None


class Devnet:
    """A private devnet: an anvil child process with the deployed state loaded.

    >>> with Devnet.launch() as dn:   # doctest: +SKIP
    ...     rpc_url = dn.info.rpc_url
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

    def start(self, port: int | None = None, progress: Progress | None = None, *,
              history_states: int = HISTORY_STATES) -> DevnetInfo:
        """Start anvil on ``port`` (a free loopback port when None), deploy-or-load, sync the clock; anvil keeps
        the last ``history_states`` block states for reads pinned to past blocks.

        The stages that run (first-run install and deployment, the start itself) are reported to
        ``progress`` (see :mod:`devnet.progress`).
        """
        if self._node is not None:
            raise DevnetError("this Devnet is already started")
        began = time.perf_counter()
        state, self.deployed = ensure_state(progress)
        try:
            with stage(progress, "anvil", "starting anvil on the cached chain state"):
                self._node = AttachedNode(port, state.state_file, history_states)
                ready = _ready(state, self._node.url)
            with stage(progress, "perp_api", "starting the local perp API"):
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
    def launch(cls, port: int | None = None, progress: Progress | None = None, *,
               history_states: int = HISTORY_STATES) -> Iterator[Devnet]:
        """Context manager: a started private :class:`Devnet`, stopped on exit."""
        devnet = cls()
        devnet.start(port, progress, history_states=history_states)
        try:
            yield devnet
        finally:
            devnet.stop()


def up(port: int | None = None, perp_port: int | None = None, progress: Progress | None = None) -> DevnetInfo:
    """Start the shared devnet detached (its own session; log next to the run file) and record it in the
    run file; if the recorded one still answers, return it instead of starting another.

    Ports: anvil's JSON-RPC on ``port`` and the local perp API on ``perp_port`` when given (raising
    :class:`devnet.node.PortInUseError` when taken, :class:`DevnetAlreadyRunningError` when a running devnet
    is on others); otherwise the ports of the previous run (:func:`remembered_ports`) when they are free, so
    that a restarted devnet has the same URLs; otherwise free ones. The ports used are remembered.
    Stages are reported to ``progress`` (see :mod:`devnet.progress`).
    """
    try:
        running = info()
    except DevnetNotRunningError:
        down()  # clear a stale record, and its process if it hangs
    else:
        _refuse_other_ports(running, port, perp_port)
        return running
    if port is not None:
        check_free(port, "port")
    if perp_port is not None:
        check_free(perp_port, "perp API port")
    remembered = remembered_ports()
    state, _ = ensure_state(progress)
    path = run_file()
    log_file = path.with_suffix(".log")
    rpc_port = port if port is not None else _free_or_none(remembered.rpc)
    pid = perp_pid = None
    try:
        with stage(progress, "anvil", "starting anvil on the cached chain state"):
            try:
                pid, url = spawn_detached(rpc_port, state.state_file, log_file)
            except DevnetError:
                if port is not None or rpc_port is None:
                    raise
                pid, url = spawn_detached(None, state.state_file, log_file)  # the last port was taken meanwhile
            devnet = _ready(state, url)
        with stage(progress, "perp_api", "starting the local perp API"):
            if perp_port is not None:
                check_free(perp_port, "perp API port")  # anvil may have been put there
                perp_pid, perp_url = _spawn_perp_api(log_file, perp_port)
            else:
                perp_pid, perp_url = _spawn_perp_api_near(log_file, _free_or_none(remembered.perp_api))
        devnet = replace(devnet, services={"perp_api": perp_url})
    except BaseException:
        if pid is not None:
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
    used = ports_of(devnet)
    _write_atomically(ports_file(), json.dumps({"rpc": used.rpc, "perp_api": used.perp_api}))
    return devnet


def _spawn_perp_api_near(log_file: Path, remembered: int | None) -> tuple[int, str]:
    """The perp API on the ``remembered`` port when it can be had, else on a free one."""
    if remembered is not None:
        with contextlib.suppress(DevnetError):
            return _spawn_perp_api(log_file, remembered)
    return _spawn_perp_api(log_file, free_port())


def _free_or_none(port: int | None) -> int | None:
    """``port`` when it can be bound now, else None (a free one is picked)."""
    return port if port is not None and port_is_free(port) else None


def _refuse_other_ports(running: DevnetInfo, port: int | None, perp_port: int | None) -> None:
    have = ports_of(running)
    for what, wanted, got in (("port", port, have.rpc), ("perp API port", perp_port, have.perp_api)):
        if wanted is not None and wanted != got:
            raise DevnetAlreadyRunningError(
                running, f"a devnet is already running at {running.rpc_url} (perp API "
                f"{running.services.get('perp_api', 'none')}); stop it before asking for {what} {wanted}"
            )


def info() -> DevnetInfo:
    """The shared devnet recorded in the run file, checked to answer JSON-RPC; raises
    :class:`DevnetNotRunningError` (start one with :func:`up`) when there is none or it does not answer."""
    path = run_file()
    try:
        record = json.loads(path.read_text())
        devnet = DevnetInfo.from_json(record)
    except FileNotFoundError:
        raise DevnetNotRunningError(f"no devnet is running (no run file at {path})") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DevnetNotRunningError(f"the devnet run file {path} is unreadable ({exc})") from exc
    try:
        rpc(devnet, "eth_chainId")
    except (httpx.TransportError, RpcError) as exc:
        raise DevnetNotRunningError(f"the devnet recorded in {path} ({devnet.rpc_url}) does not answer "
                                    f"({type(exc).__name__}: {exc})") from exc
    return devnet


def down() -> bool:
    """Stop the shared devnet and remove the run file; False if none was recorded."""
    path = run_file()
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return False
    except (OSError, ValueError):
        record = {}  # unreadable: nothing to stop that can be found; the record goes
    pid = record.get("pid") if isinstance(record, dict) else None
    if isinstance(pid, int) and is_anvil(pid):
        kill_detached(pid)
    perp_pid = record.get("perp_api_pid") if isinstance(record, dict) else None
    if isinstance(perp_pid, int) and _is_perp_api(perp_pid):
        kill_detached(perp_pid)  # waits until it has exited: its port is free for the next up()
    path.unlink(missing_ok=True)
    return True


def _is_perp_api(pid: int) -> bool:
    """Whether ``pid`` is a live ``python -m devnet.perp_api`` (guards against reused pids)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"devnet.perp_api" in cmdline and alive(pid)


def _spawn_perp_api(log_file: Path, port: int) -> tuple[int, str]:
    """Start the local perp API on ``port`` in its own session (it outlives this process); wait until it
    answers."""
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
        if not alive(pid):
            raise DevnetError(f"the perp API exited during startup on port {port} (taken?); see {log_file}")
        try:
            if httpx.get(f"{url}{READY_ROUTE}", timeout=1.0).status_code == 200:
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
