"""Install the devnet's JavaScript side: npm packages, vendored Chainlink sources, compiled contracts.

Three steps, each skipped when the stamp it leaves matches the hash of its inputs:

1. ``npm ci --ignore-scripts`` in ``devnet/`` from the committed ``package-lock.json`` (anvil, Aave's deploy
   package and artifacts, hardhat, solc-js, Uniswap v3's core and periphery packages with their published
   artifacts, Morpho Blue's Solidity source). No install script is needed: the anvil binary comes in an
   optional per-platform package.
2. ``npm pack @chainlink/contracts@1.4.0`` (it cannot be ``npm install``-ed offline: a dependency of it is a
   tarball outside the registry), checked against a pinned sha512 and untarred into ``devnet/vendor/``.
3. ``node compile.js``: solc-js 0.8.19 compiles Chainlink's ``MockV3Aggregator`` and the ``Multicall3``
   source Chainlink vendors (both MIT), and Morpho Blue's ``Morpho`` with its own ``IrmMock`` and
   ``OracleMock`` (via-IR, 999,999 optimizer runs, as Morpho deployed; ~15 s) into
   ``devnet/vendor/build/<Contract>.json``.

Uniswap v3 is not compiled: :func:`artifact` reads the bytecode its npm packages ship (:data:`NPM_ARTIFACTS`).

Nothing third-party is committed: all of it lands in gitignored directories. A file lock serialises
concurrent installers.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from devnet._lock import file_lock
from devnet.paths import BUILD_DIR, DEVNET_DIR, NODE_MODULES, VENDOR_DIR, anvil_bin
from devnet.progress import Progress, stage

__all__ = ["CHAINLINK_DIR", "COMPILED", "MORPHO_DIR", "NPM_ARTIFACTS", "InstallError", "artifact", "ensure_installed"]

CHAINLINK_PACKAGE = "@chainlink/contracts@1.4.0"
CHAINLINK_INTEGRITY = "sha512-SpNCJ0TPOI6pa2l702Wk4WIP8ccw5ARcRP1E/ZTqaFffXNoZeF03WhsVL8f3l3OTRFA9Z40O5KcZzmJmZQkoFA=="
CHAINLINK_DIR = VENDOR_DIR / "chainlink-contracts-1.4.0"
MORPHO_DIR = NODE_MODULES / "@morpho-org" / "morpho-blue"
COMPILED = ("MockV3Aggregator", "Multicall3", "Morpho", "IrmMock", "OracleMock")
NPM_ARTIFACTS = {
    "UniswapV3Factory": "@uniswap/v3-core/artifacts/contracts/UniswapV3Factory.sol/UniswapV3Factory.json",
    "UniswapV3Pool": "@uniswap/v3-core/artifacts/contracts/UniswapV3Pool.sol/UniswapV3Pool.json",
    "NonfungiblePositionManager": (
        "@uniswap/v3-periphery/artifacts/contracts/NonfungiblePositionManager.sol/NonfungiblePositionManager.json"
    ),
    "SwapRouter": "@uniswap/v3-periphery/artifacts/contracts/SwapRouter.sol/SwapRouter.json",
}
"""Contracts whose published artifacts (with bytecode) come in npm packages, by name: path under node_modules."""
_NPM_STAMP = NODE_MODULES / ".xmargin-stamp"
_BUILD_STAMP = BUILD_DIR / ".xmargin-stamp"


class InstallError(RuntimeError):
    """A tool is missing or an install step failed; the message says which and shows its output."""


def ensure_installed(progress: Progress | None = None) -> Path:
    """Make the devnet's npm packages and compiled contracts present and current; return ``devnet/``.

    Idempotent (a few file reads when nothing changed) and quiet: the steps that run are reported to
    ``progress`` (stages ``npm_ci``, ``chainlink``, ``compile``, and ``wait`` while another process installs;
    see :mod:`devnet.progress`). Raises :class:`InstallError` if ``node``/``npm`` are not on ``PATH`` or a step
    fails.
    """
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            raise InstallError(f"`{tool}` not found on PATH: the devnet needs Node.js >= 20 and npm")
    with file_lock(VENDOR_DIR / ".install.lock",
                   lambda: stage(progress, "wait", "waiting for another process installing the devnet")):
        _npm_ci(progress)
        _vendor_chainlink(progress)
        _compile_contracts(progress)
    return DEVNET_DIR


def artifact(name: str) -> dict[str, object]:
    """The artifact ``{abi, bytecode, deployedBytecode, ...}`` of one of :data:`COMPILED` (built here) or
    :data:`NPM_ARTIFACTS` (as published)."""
    path = NODE_MODULES / NPM_ARTIFACTS[name] if name in NPM_ARTIFACTS else BUILD_DIR / f"{name}.json"
    data: dict[str, object] = json.loads(path.read_text())
    return data


def _npm_ci(progress: Progress | None) -> None:
    stamp = _digest((DEVNET_DIR / "package-lock.json").read_bytes())
    previous = _read(_NPM_STAMP)
    if anvil_bin().exists() and previous == stamp:
        return
    why = "first run" if previous is None else "package-lock.json changed"
    with stage(progress, "npm_ci", f"npm ci ({why}): anvil, hardhat, Aave, Uniswap, Morpho, solc-js"):
        _run(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"], DEVNET_DIR)
        if not anvil_bin().exists():
            raise InstallError(f"npm ci finished but the anvil binary is missing at {anvil_bin()}")
        _NPM_STAMP.write_text(stamp)


def _vendor_chainlink(progress: Progress | None) -> None:
    if (CHAINLINK_DIR / "package.json").exists():
        return
    with (stage(progress, "chainlink", f"fetching {CHAINLINK_PACKAGE} (npm pack, first run)"),
          tempfile.TemporaryDirectory(dir=VENDOR_DIR) as tmp):
        out = _run(["npm", "pack", CHAINLINK_PACKAGE, "--json", "--pack-destination", tmp], DEVNET_DIR)
        tarball = Path(tmp) / json.loads(out)[0]["filename"]
        integrity = "sha512-" + base64.b64encode(hashlib.sha512(tarball.read_bytes()).digest()).decode()
        if integrity != CHAINLINK_INTEGRITY:
            raise InstallError(f"{CHAINLINK_PACKAGE}: integrity {integrity} != pinned {CHAINLINK_INTEGRITY}")
        with tarfile.open(tarball) as tar:
            tar.extractall(tmp, filter="data")
        shutil.rmtree(CHAINLINK_DIR, ignore_errors=True)
        (Path(tmp) / "package").rename(CHAINLINK_DIR)


def _compile_contracts(progress: Progress | None) -> None:
    script = DEVNET_DIR / "compile.js"
    stamp = _digest(script.read_bytes() + (DEVNET_DIR / "package-lock.json").read_bytes())
    outputs_present = all((BUILD_DIR / f"{name}.json").exists() for name in COMPILED)
    if outputs_present and _read(_BUILD_STAMP) == stamp:
        return
    jobs = [f"chainlink={CHAINLINK_DIR}", f"morpho={MORPHO_DIR}"]
    with stage(progress, "compile", "compiling Morpho Blue, Chainlink's mock feed and Multicall3 with solc-js"):
        _run(["node", str(script), str(BUILD_DIR), *jobs], DEVNET_DIR)
        _BUILD_STAMP.write_text(stamp)


def _run(cmd: list[str], cwd: Path) -> str:
    """Run ``cmd``; return its stdout, or raise :class:`InstallError` with the tail of its output."""
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-4000:]
        raise InstallError(f"`{' '.join(cmd)}` failed in {cwd} (exit {proc.returncode}):\n{tail}")
    return proc.stdout


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read(path: Path) -> str | None:
    return path.read_text() if path.exists() else None
