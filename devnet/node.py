"""Starting, probing and stopping anvil processes on loopback ports.

Two ways to run one: attached (a child process the caller stops, see :class:`AttachedNode`) or detached
(its own session, output to a log file, found again by pid; see :func:`spawn_detached`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import httpx

from devnet.evm import DevnetError, RpcError, disconnect, rpc
from devnet.paths import anvil_bin

__all__ = [
    "HISTORY_STATES",
    "AttachedNode",
    "PortInUseError",
    "alive",
    "anvil_command",
    "check_free",
    "free_port",
    "is_anvil",
    "kill_detached",
    "port_is_free",
    "spawn_detached",
    "url_for",
]

_READY_TIMEOUT_S = 20.0
_PORT_ATTEMPTS = 3
_T = TypeVar("_T")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PortInUseError(DevnetError):
    """A port asked for explicitly cannot be bound on 127.0.0.1 (another process listens there)."""

    def __init__(self, port: int, what: str = "port") -> None:
        super().__init__(f"{what} {port} on 127.0.0.1 is in use by another process")
        self.port = port


def port_is_free(port: int) -> bool:
    """Whether ``port`` can be bound on loopback now. (SO_REUSEADDR: connections of a just-stopped node in
    TIME_WAIT do not count, a listener does.)"""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def check_free(port: int, what: str = "port") -> None:
    """Raise :class:`PortInUseError` unless ``port`` can be bound on loopback: a node already there would
    answer our probes."""
    if not 0 < port < 65_536:
        raise DevnetError(f"{what} {port} is not a TCP port (1-65535)")
    if not port_is_free(port):
        raise PortInUseError(port, what)


def url_for(port: int) -> str:
    """The JSON-RPC URL of an anvil on ``port``."""
    return f"http://127.0.0.1:{port}"


HISTORY_STATES = 500
"""Historical states anvil keeps (in memory) for reads pinned to past blocks."""


def anvil_command(port: int, state_file: Path | None, history_states: int = HISTORY_STATES) -> list[str]:
    """anvil's command line: loopback only, quiet, any sender allowed, optionally loading a state file.

    ``--prune-history``: the last ``history_states`` block states stay in memory and none go to disk (anvil keeps
    each as a copy of the whole state: a chain of 10,000 benchmark wallets holds ~10 GB with 500 of them).
    Without it anvil moves older states to ``~/.foundry/anvil/tmp`` and leaves them there when killed —
    gigabytes per busy run (seen: 5.3 GB each, 76 GB in one afternoon, until the disk was full).
    """
    cmd = [str(anvil_bin()), "--host", "127.0.0.1", "--port", str(port), "--silent", "--auto-impersonate",
           "--prune-history", str(history_states)]
    return [*cmd, "--load-state", str(state_file)] if state_file else cmd


class AttachedNode:
    """An anvil child process of this Python process."""

    def __init__(self, port: int | None, state_file: Path | None, history_states: int = HISTORY_STATES) -> None:
        """Start anvil (on a free port when ``port`` is None, retrying if it was taken) and wait until it
        answers JSON-RPC. Raises :class:`DevnetError` if it exits or does not answer in time."""
        self._proc, self.url = _with_port_retries(port, lambda p: _start_attached(p, state_file, history_states))
        self._finalizer = weakref.finalize(self, _stop_child, self._proc)  # also at interpreter exit

    @property
    def pid(self) -> int:
        """The process id."""
        return self._proc.pid

    def stop(self) -> None:
        """Terminate the process (kill it after 5 s) and release its connections. Idempotent."""
        disconnect(self.url)
        self._finalizer()


def spawn_detached(port: int | None, state_file: Path | None, log_file: Path) -> tuple[int, str]:
    """Start anvil in its own session (it outlives this process), output appended to ``log_file``;
    wait until it answers. Returns ``(pid, rpc_url)``."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    return _with_port_retries(port, lambda p: _start_detached(p, state_file, log_file))


def kill_detached(pid: int) -> None:
    """Terminate a detached anvil's session (SIGKILL after 5 s) and reap it if it is our child."""
    for sig, grace_s in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            if not _alive(pid):
                return
            time.sleep(0.02)
    raise DevnetError(f"anvil pid {pid} did not exit")


def is_anvil(pid: int) -> bool:
    """Whether ``pid`` is a live process running the anvil binary (guards against reused pids)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return _alive(pid) and Path(cmdline.split(b"\0")[0].decode()).name == "anvil"


def _with_port_retries(port: int | None, start: Callable[[int], _T]) -> _T:
    """``start(port)``; with no port given, on a free one, retried on another if startup fails."""
    if port is not None:
        check_free(port)
        return start(port)
    for _ in range(_PORT_ATTEMPTS - 1):
        with contextlib.suppress(DevnetError):
            return start(free_port())
    return start(free_port())


def _start_attached(
    port: int, state_file: Path | None, history_states: int = HISTORY_STATES
) -> tuple[subprocess.Popen[bytes], str]:
    """Start anvil as a child; its stderr goes to an anonymous temporary file, shown if startup fails."""
    url = url_for(port)
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(anvil_command(port, state_file, history_states), stdout=subprocess.DEVNULL,
                                stderr=errors)
        try:
            _wait_ready(url, lambda: proc.poll() is None)
        except DevnetError as exc:
            _stop_child(proc)
            errors.seek(0)
            raise DevnetError(f"{exc} {errors.read().decode(errors='replace').strip()}") from exc
    return proc, url


def _stop_child(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _start_detached(port: int, state_file: Path | None, log_file: Path) -> tuple[int, str]:
    cmd = anvil_command(port, state_file)
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(log_file), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    pid = os.posix_spawn(cmd[0], cmd, dict(os.environ), file_actions=actions, setsid=True)
    try:
        _wait_ready(url_for(port), lambda: _alive(pid))
    except DevnetError:
        kill_detached(pid)
        raise
    return pid, url_for(port)


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (reaping it first if it is our exited child)."""
    return _alive(pid)


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (reaping it first if it is our exited child)."""
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """Whether ``pid`` has exited and waits for a parent that is not us to reap it (``Z`` in ``/proc``): an init
    that never reaps (a container's) leaves a stopped node there, and ``kill(pid, 0)`` still finds it. Without
    ``/proc`` (not Linux) it is taken as running."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def _wait_ready(url: str, alive: Callable[[], bool]) -> None:
    """Poll ``eth_chainId`` at ``url`` until it answers; raise if the process dies or time runs out."""
    deadline = time.monotonic() + _READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if not alive():
            raise DevnetError(f"anvil for {url} exited during startup (port taken, or a bad state file?)")
        try:
            rpc(url, "eth_chainId")
            return
        except (httpx.TransportError, RpcError):
            time.sleep(0.01)
    raise DevnetError(f"anvil at {url} did not answer within {_READY_TIMEOUT_S:.0f} s")
