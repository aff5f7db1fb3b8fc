"""Where the devnet keeps its files.

Inside the repository (all gitignored except the sources): ``devnet/node_modules`` (``npm ci``),
``devnet/vendor`` (third-party sources fetched with ``npm pack`` and the contracts compiled from them).
Outside it: the state cache, the run file and the remembered ports, under :func:`cache_root`.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

__all__ = [
    "BUILD_DIR",
    "DEVNET_DIR",
    "NODE_MODULES",
    "VENDOR_DIR",
    "anvil_bin",
    "cache_root",
    "ports_file",
    "run_file",
]

DEVNET_DIR = Path(__file__).resolve().parent
NODE_MODULES = DEVNET_DIR / "node_modules"
VENDOR_DIR = DEVNET_DIR / "vendor"
BUILD_DIR = VENDOR_DIR / "build"
_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def anvil_bin() -> Path:
    """The anvil binary that ``@foundry-rs/anvil`` installs for this platform (an optional dependency
    named ``@foundry-rs/anvil-<os>-<arch>``)."""
    arch = _ARCH.get(platform.machine().lower(), platform.machine().lower())
    name = "anvil.exe" if sys.platform == "win32" else "anvil"
    return NODE_MODULES / "@foundry-rs" / f"anvil-{sys.platform}-{arch}" / "bin" / name


def cache_root() -> Path:
    """The devnet cache directory: ``$XMARGIN_DEVNET_CACHE``, else ``$XDG_CACHE_HOME/xmargin/devnet``,
    else ``~/.cache/xmargin/devnet``. Not created here."""
    explicit = os.environ.get("XMARGIN_DEVNET_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "xmargin" / "devnet"


def run_file() -> Path:
    """The run file shared by CLI processes: ``$XMARGIN_DEVNET_RUN``, else ``<cache_root>/run.json``."""
    explicit = os.environ.get("XMARGIN_DEVNET_RUN")
    return Path(explicit).expanduser() if explicit else cache_root() / "run.json"


def ports_file() -> Path:
    """Where the shared devnet's ports are remembered between runs: beside the run file
    (``<run file stem>.ports.json``, default ``<cache_root>/run.ports.json``). Kept after ``down``."""
    run = run_file()
    return run.with_name(f"{run.stem}.ports.json")
