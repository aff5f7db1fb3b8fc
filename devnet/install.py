"""Install the devnet's JavaScript side: npm packages, vendored Chainlink sources, compiled contracts.

Three steps, each skipped when the stamp it leaves matches the hash of its inputs:

1. ``npm ci --ignore-scripts`` in ``devnet/`` from the committed ``package-lock.json``: anvil, hardhat, solc-js and
   every on-chain venue part's packages (:attr:`devnet.parts.DevnetPart.npm_packages`: deploy packages, published
   artifacts, Solidity sources). No install script is needed: the anvil binary comes in an optional per-platform
   package.
2. ``npm pack @chainlink/contracts@1.4.0`` (it cannot be ``npm install``-ed offline: a dependency of it is a
   tarball outside the registry), checked against a pinned sha512 and untarred into ``devnet/vendor/``.
3. ``node compile.js``: solc-js 0.8.19 compiles Chainlink's ``MockV3Aggregator`` and the ``Multicall3`` source
   Chainlink vendors (both MIT), and every venue part's compile jobs (:attr:`devnet.parts.DevnetPart.compile_jobs`:
   sources and solc settings; ``compile.js`` is generic and reads them from a jobs file) into
   ``devnet/vendor/build/<Contract>.json``.

A venue part may instead use the bytecode its npm packages publish (:attr:`devnet.parts.DevnetPart.npm_artifacts`);
:func:`artifact` reads either.

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
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from devnet._lock import file_lock
from devnet.parts import CompileJob
from devnet.paths import BUILD_DIR, DEVNET_DIR, NODE_MODULES, VENDOR_DIR, anvil_bin
from devnet.progress import Progress, stage
from devnet.venues import chain_parts

__all__ = ["CHAINLINK_DIR", "InstallError", "artifact", "compiled", "ensure_installed", "npm_artifacts"]

CHAINLINK_PACKAGE = "@chainlink/contracts@1.4.0"
CHAINLINK_INTEGRITY = "sha512-SpNCJ0TPOI6pa2l702Wk4WIP8ccw5ARcRP1E/ZTqaFffXNoZeF03WhsVL8f3l3OTRFA9Z40O5KcZzmJmZQkoFA=="
CHAINLINK_DIR = VENDOR_DIR / "chainlink-contracts-1.4.0"
CHAINLINK_JOB = CompileJob(
    root=CHAINLINK_DIR,
    contracts=MappingProxyType({
        "MockV3Aggregator": "src/v0.8/shared/mocks/MockV3Aggregator.sol",
        "Multicall3": "src/v0.8/vendor/multicall/ebd8b64/src/Multicall3.sol",
    }),
    settings=MappingProxyType({"evmVersion": "paris", "optimizer": MappingProxyType({"enabled": True, "runs": 200})}),
)
"""Chainlink's mock feed and the Multicall3 source it vendors (both MIT), with the devnet's first settings."""
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
    _check_packages()
    with file_lock(VENDOR_DIR / ".install.lock",
                   lambda: stage(progress, "wait", "waiting for another process installing the devnet")):
        _npm_ci(progress)
        _vendor_chainlink(progress)
        _compile_contracts(progress)
    return DEVNET_DIR


def _check_packages() -> None:
    """Every on-chain venue part's npm packages are dependencies in ``package.json`` (else :class:`InstallError`)."""
    listed = json.loads((DEVNET_DIR / "package.json").read_text()).get("dependencies", {})
    for part in chain_parts():
        missing = [name for name in part.npm_packages if name not in listed]
        if missing:
            raise InstallError(f"devnet/package.json lacks {', '.join(missing)}, which the {part.title} part needs")


def compiled() -> tuple[str, ...]:
    """The contracts ``compile.js`` builds: Chainlink's, then every venue part's."""
    return (*CHAINLINK_JOB.contracts, *(name for part in chain_parts() for name in part.compiled))


def npm_artifacts() -> Mapping[str, str]:
    """Contracts used as their npm packages publish them, by name: path under node_modules (every venue part's)."""
    return {name: path for part in chain_parts() for name, path in part.npm_artifacts.items()}


def artifact(name: str) -> dict[str, object]:
    """The artifact ``{abi, bytecode, deployedBytecode, ...}`` of one of :func:`compiled` (built here) or
    :func:`npm_artifacts` (as published)."""
    published = npm_artifacts()
    path = NODE_MODULES / published[name] if name in published else BUILD_DIR / f"{name}.json"
    data: dict[str, object] = json.loads(path.read_text())
    return data


def _npm_ci(progress: Progress | None) -> None:
    stamp = _digest((DEVNET_DIR / "package-lock.json").read_bytes())
    previous = _read(_NPM_STAMP)
    if anvil_bin().exists() and previous == stamp:
        return
    why = "first run" if previous is None else "package-lock.json changed"

    venues = ", ".join(part.short for part in chain_parts())
    with stage(progress, "npm_ci", f"npm ci ({why}): anvil, hardhat, {venues}, solc-js"):
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
    building = [part for part in chain_parts() if part.compile_jobs]
    jobs = [CHAINLINK_JOB.spec("chainlink")]
    jobs += [job.spec(name) for part in building for name, job in part.compile_jobs.items()]
    spec = json.dumps(jobs, indent=1).encode()
    stamp = _digest(script.read_bytes() + (DEVNET_DIR / "package-lock.json").read_bytes() + spec)

    outputs_present = all((BUILD_DIR / f"{name}.json").exists() for name in compiled())
    if outputs_present and _read(_BUILD_STAMP) == stamp:
        return
    titles = "".join(f"{part.title}, " for part in building)
    with (stage(progress, "compile", f"compiling {titles}Chainlink's mock feed and Multicall3 with solc-js"),
          tempfile.TemporaryDirectory(dir=VENDOR_DIR) as tmp):
        jobs_file = Path(tmp) / "jobs.json"
        jobs_file.write_bytes(spec)
        _run(["node", str(script), str(BUILD_DIR), str(jobs_file)], DEVNET_DIR)
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
