"""The deployed-state cache: deploy once, then every start loads the dumped anvil state in ~0.1 s.

Layout under :func:`devnet.paths.cache_root` (outside git)::

    <key>/state.json        anvil state (anvil_dumpState, un-gzipped), loaded with --load-state
    <key>/deployment.json   {"chain_id", "contracts", "tokens", "markets", "created_at", "deploy_s"}
    <key>.lock              flock serialising the first run across processes

Only the :data:`KEEP_ENTRIES` newest entries are kept.

``<key>`` hashes ``package-lock.json``, ``compile.js`` and ``install.py`` (the compile jobs), the deploy code
(``deploy.py``, ``parts.py``, ``tokens.py``, ``wallets.py``: the liquidity wallet's address is derived there, and
every on-chain venue part's module, ``venues/<venue>.py``, with the files it names in ``key_files``, such as a deploy
tool's configuration) and :data:`CACHE_FORMAT`, so changing what gets deployed (or how)
starts a new cache entry. An entry is written to a temporary directory and renamed
into place, so readers never see a partial one.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from devnet._lock import file_lock
from devnet.deploy import Deployment, deploy_all
from devnet.evm import rpc
from devnet.install import ensure_installed
from devnet.node import AttachedNode
from devnet.paths import DEVNET_DIR, cache_root
from devnet.progress import Progress, stage
from devnet.venues import chain_parts

__all__ = ["CACHE_FORMAT", "CachedState", "cache_key", "ensure_state"]

CACHE_FORMAT = 2
KEEP_ENTRIES = 3
"""Entries kept after a deployment (the newest ones); older keys' entries are deleted."""
_KEY_FILES = (
    "package-lock.json",
    "compile.js",
    "install.py",
    "deploy.py",
    "parts.py",
    "tokens.py",
    "wallets.py",
)


@dataclass(frozen=True)
class CachedState:
    """A complete cache entry."""

    directory: Path
    chain_id: int
    deployment: Deployment

    @property
    def state_file(self) -> Path:
        """The anvil state to pass to ``--load-state``."""
        return self.directory / "state.json"


def cache_key() -> str:
    """16 hex digits identifying the deploy inputs (see the module docstring)."""
    digest = hashlib.sha256(f"format={CACHE_FORMAT}".encode())
    parts = [Path(*part.module.split(".")[1:]).with_suffix(".py").as_posix() for part in chain_parts()]
    parts += [path.relative_to(DEVNET_DIR).as_posix() for part in chain_parts() for path in part.key_files]
    for name in (*_KEY_FILES, *parts):
        digest.update(name.encode() + b"\0" + (DEVNET_DIR / name).read_bytes())
    return digest.hexdigest()[:16]


def ensure_state(progress: Progress | None = None) -> tuple[CachedState, bool]:
    """The cache entry for the current deploy inputs, deploying it first if missing.

    Returns ``(entry, deployed)`` where ``deployed`` tells whether this call did the deployment. Installs
    the npm side first if needed. Concurrent callers wait for one deployment and share it. The install and
    deploy stages that run are reported to ``progress`` (see :mod:`devnet.progress`).
    """
    ensure_installed(progress)
    directory = cache_root() / cache_key()
    if (directory / "deployment.json").exists():
        return _load(directory), False
    waiting = "waiting for another process deploying the devnet (first run)"
    with file_lock(cache_root() / f"{cache_key()}.lock", lambda: stage(progress, "wait", waiting)):
        if (directory / "deployment.json").exists():
            return _load(directory), False
        _build(directory, progress)
        _prune(cache_root())
        return _load(directory), True


def _prune(root: Path) -> None:
    """Delete all but the :data:`KEEP_ENTRIES` newest entries (and their lock files)."""
    entries = sorted(
        (p for p in root.iterdir() if p.is_dir() and (p / "deployment.json").exists()),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for stale in entries[KEEP_ENTRIES:]:
        shutil.rmtree(stale, ignore_errors=True)
        (root / f"{stale.name}.lock").unlink(missing_ok=True)


def _load(directory: Path) -> CachedState:
    data = json.loads((directory / "deployment.json").read_text())
    deployment = Deployment(data["contracts"], data["tokens"], data.get("markets", {}))
    return CachedState(directory, int(data["chain_id"]), deployment)


def _build(directory: Path, progress: Progress | None = None) -> None:
    """Deploy onto a fresh private anvil, dump its state, and move the finished entry into place."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    node = AttachedNode(None, None)
    began = time.perf_counter()
    try:
        deployment = deploy_all(node.url, progress)
        deploy_s = time.perf_counter() - began
        with stage(progress, "cache", f"saving the deployed chain state to {directory.parent}"):
            chain_id = int(rpc(node.url, "eth_chainId"), 16)
            state = gzip.decompress(bytes.fromhex(rpc(node.url, "anvil_dumpState")[2:]))
    finally:
        node.stop()
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=directory.parent))
    try:
        (staging / "state.json").write_bytes(state)
        meta = {
            "chain_id": chain_id,
            "contracts": deployment.contracts,
            "tokens": deployment.tokens,
            "markets": deployment.markets,
            "created_at": int(time.time()),
            "deploy_s": round(deploy_s, 1),
        }
        (staging / "deployment.json").write_text(json.dumps(meta, indent=1))
        shutil.rmtree(directory, ignore_errors=True)  # an incomplete leftover, if any
        staging.rename(directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
