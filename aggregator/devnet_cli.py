"""``xmargin devnet …``: drive the local chain, and configure xmargin for it as a user would.

This module (and :mod:`aggregator.demo`) is the only product code that imports :mod:`devnet`; the
pipeline itself only ever sees an RPC URL and contract addresses from its configuration. :mod:`devnet` is
imported inside the functions that drive it, so :func:`current_devnet_config` (for ``xmargin run``, which
re-reads the devnet's config when its chain disappears) costs no devnet import.

Every public function that drives the devnet raises :class:`DevnetCommandError` (a message for the user and an
exit code) for anything a user can cause or meet: no devnet running, a port taken, an unknown symbol, a bad
price, a failed install or deployment.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, Task, TextColumn, TimeElapsedColumn
from rich.text import Text

from aggregator.config import ChainConfig, Settings, venue_config, write_settings_toml, xmargin_home
from db.store import Store

if TYPE_CHECKING:
    import devnet
    from devnet.progress import StageEvent

__all__ = [
    "DevnetCommandError",
    "DevnetConfig",
    "SeedResult",
    "StageDisplay",
    "UpResult",
    "current_devnet_config",
    "devnet_config_path",
    "devnet_settings",
    "down",
    "info",
    "is_devnet_config",
    "seed",
    "set_price",
    "up",
]

CHAIN = "devnet"
"""The name of the devnet's chain in the settings."""
FEED_DECIMALS = 8
"""The devnet's price feeds' decimals: a price must be at least 1e-8 USD."""

_P = ParamSpec("_P")
_R = TypeVar("_R")


class DevnetCommandError(Exception):
    """A ``devnet`` command cannot do what was asked: ``str(exc)`` is the one-line message for the user and
    ``code`` the exit code (2: bad input; 1: the devnet's state or an install/deploy failure)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def _user_errors(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """Turn the devnet's exceptions into :class:`DevnetCommandError` with a message a user can act on."""

    @functools.wraps(fn)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        import httpx

        import devnet

        try:
            return fn(*args, **kwargs)
        except devnet.DevnetNotRunningError as exc:
            raise DevnetCommandError(f"{exc}: start one with `xmargin devnet up`") from exc
        except devnet.DevnetAlreadyRunningError as exc:
            raise DevnetCommandError(f"{exc} (`xmargin devnet down`)") from exc
        except devnet.PortInUseError as exc:
            raise DevnetCommandError(f"{exc}: free it, or choose another with --port / --perp-port") from exc
        except devnet.RevertedError as exc:
            raise DevnetCommandError(f"the devnet refused the transaction: {exc}") from exc
        except (devnet.DevnetError, devnet.InstallError, devnet.DeployError) as exc:
            raise DevnetCommandError(str(exc)) from exc
        except httpx.HTTPError as exc:
            raise DevnetCommandError(f"the devnet's perp API failed: {exc}") from exc

    return wrapper


# --------------------------------------------------------------------------------------------- progress
class _MarkColumn(SpinnerColumn):
    """A spinner while the stage runs, then its mark (✓, or ✗ when it failed)."""

    def render(self, task: Task) -> Text:
        if task.finished:
            return Text.from_markup(str(task.fields.get("mark", "[green]✓")))
        rendered = super().render(task)
        return rendered if isinstance(rendered, Text) else Text(str(rendered))


class StageDisplay:
    """Shows the devnet's stages (:mod:`devnet.progress`) on ``console``: pass it as ``progress``.

    In a terminal: one live line per stage — a spinner, what is happening and the time elapsed — left behind
    with a ✓ (or ✗) when it ends. Otherwise (a pipe, a CI log): one plain line per stage, written as it starts
    and finished when it ends (``npm ci (first run)… done in 62.3 s``); updates are not written. Use it as a
    context manager around the calls that take it.
    """

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live = console.is_terminal
        self.events: list[StageEvent] = []
        self._progress: Progress | None = None
        self._tasks: dict[str, Any] = {}
        self._open_line = False

    def __enter__(self) -> StageDisplay:
        if self.live:
            self._progress = Progress(_MarkColumn(finished_text=""), TextColumn("{task.description}"),
                                      TimeElapsedColumn(), console=self.console, transient=False)
            self._progress.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        self._end_line()

    def __call__(self, event: StageEvent) -> None:
        self.events.append(event)
        if self._progress is not None:
            self._live(self._progress, event)
        else:
            self._plain(event)

    def _live(self, progress: Progress, event: StageEvent) -> None:
        text = escape(event.text)
        if event.status == "start":
            self._tasks[event.stage] = progress.add_task(text, total=1)
            return
        task = self._tasks.get(event.stage)
        if task is None:
            return
        if event.status == "update":
            progress.update(task, description=f"{text} [dim]· {escape(event.detail or '')}[/]")
        elif event.status == "done":
            progress.update(task, description=text, completed=1)
        else:
            progress.update(task, description=f"{text} [red]failed: {escape(event.detail or '')}[/]", completed=1,
                            mark="[red]✗")

    def _plain(self, event: StageEvent) -> None:
        if event.status == "start":
            self._end_line()
            self.console.print(f"{event.text}…", end=" ", highlight=False, soft_wrap=True, markup=False)
            self._open_line = True
        elif event.status in ("done", "failed") and self._open_line:
            verb = "done in" if event.status == "done" else "failed after"
            self.console.print(f"{verb} {event.elapsed_s:.1f} s", highlight=False, soft_wrap=True, markup=False)
            self._open_line = False

    def _end_line(self) -> None:
        if self._open_line:
            self.console.print()
            self._open_line = False


# ------------------------------------------------------------------------------------------------ config
def devnet_config_path() -> Path:
    """The config file ``xmargin devnet up`` writes: ``$XMARGIN_HOME/devnet.toml``."""
    return xmargin_home() / "devnet.toml"


@dataclass(frozen=True)
class DevnetConfig:
    """The devnet's config file as it is now."""

    path: Path
    text: str
    fingerprint: str
    """sha256 (hex) of the file's bytes: equal fingerprints, equal configs."""


def current_devnet_config(path: Path | None = None) -> DevnetConfig | None:
    """The devnet config ``xmargin devnet up`` last wrote (``path``, default :func:`devnet_config_path`), or
    None when there is none. Cheap (one file read, no devnet import): meant for ``xmargin run`` to call when
    the chain it watches stops answering, and to reload its settings when the fingerprint changed.

    ``devnet up`` rewrites the file only when its content changes, and atomically (a reader never sees half
    a file); a devnet restarted on its previous ports (the default) writes the same content.
    """
    path = path or devnet_config_path()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    return DevnetConfig(path, data.decode(), hashlib.sha256(data).hexdigest())


def is_devnet_config(source: str | Path | None) -> bool:
    """Whether a config file (e.g. ``Settings.source``, the file the settings were read from) is the one
    ``xmargin devnet up`` writes, so that re-reading it after a devnet restart makes sense."""
    if source is None:
        return False
    try:
        return Path(source).resolve() == devnet_config_path().resolve()
    except OSError:
        return False


LOCAL_API_RATE_LIMIT = 1_000_000
"""Request weight per minute the devnet's config gives its local perp API (the published venues' limits are
for their public servers; tests and benchmarks read the local one as fast as it answers). Written into the devnet's
config file as ``rate_limit_per_minute`` of each off-chain venue, so it is never implied for another endpoint."""


def devnet_settings(info: devnet.DevnetInfo, base: Settings | None = None) -> Settings:
    """Settings that point xmargin at every venue of ``info``'s devnet, as a user's config file would
    (keeping ``base``'s store and interval): each venue part's ``[[venues]]`` tables, in registry order, for the
    venues the devnet has (its on-chain venues where deployed, the off-chain ones where the local venue API
    serves; the off-chain ones with :data:`LOCAL_API_RATE_LIMIT`)."""
    from devnet.venues import parts

    base = base or Settings()
    # anvil serves its WebSocket on the JSON-RPC port: block mode starts a sync as each head is announced
    ws_url = "ws" + info.rpc_url[len("http"):] if info.rpc_url.startswith("http") else None
    chain = ChainConfig(name=CHAIN, chain_id=info.chain_id, rpc_url=info.rpc_url, timeout_s=10.0, ws_url=ws_url)
    tables = [{**table, "rate_limit_per_minute": LOCAL_API_RATE_LIMIT} if part.kind == "api" else table
              for part in parts() for table in part.venue_tables(info, CHAIN)]
    venues = [venue_config(t) for t in tables]
    return base.model_copy(update={"chains": (chain,), "venues": tuple(venues)})


def _write_config(settings: Settings, path: Path) -> bool:
    """Write ``settings`` to ``path`` atomically unless it holds that text already; whether it changed."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write_settings_toml(settings, tmp)
    try:
        if path.is_file() and path.read_bytes() == tmp.read_bytes():
            return False
        tmp.replace(path)
        return True
    finally:
        tmp.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------- commands
@dataclass(frozen=True)
class UpResult:
    """What ``xmargin devnet up`` did."""

    info: dict[str, Any]
    """The running devnet (``info --json``'s document)."""
    config_path: Path
    config_changed: bool
    """Whether the config file was (re)written with a different content (False: as it was)."""
    already_running: bool
    notes: list[str] = field(default_factory=list)
    """Things the user should know, e.g. a previous port that was taken, so the devnet moved."""


@_user_errors
def up(port: int | None = None, perp_port: int | None = None,
       progress: Callable[[StageEvent], None] | None = None) -> UpResult:
    """Start the shared devnet (installing and deploying on first use) and write its config file.

    Ports: ``port`` / ``perp_port`` when given, else the previous run's when free (so a restarted devnet
    has the same URLs and the same config), else free ones.
    """
    import devnet

    for what, value in (("--port", port), ("--perp-port", perp_port)):
        if value is not None and not 0 < value < 65_536:
            raise DevnetCommandError(f"{what} must be a TCP port (1-65535), got {value}", code=2)
    if port is not None and port == perp_port:
        raise DevnetCommandError(f"--port and --perp-port must differ, both are {port}", code=2)
    previous = devnet.remembered_ports()
    try:
        already: devnet.DevnetInfo | None = devnet.info()
    except devnet.DevnetNotRunningError:
        already = None
    running = devnet.up(port, perp_port, progress)  # the running one, when there is one on these ports
    notes: list[str] = []
    now = devnet.ports_of(running)
    if already is None:
        for what, before, after, asked in (("RPC port", previous.rpc, now.rpc, port),
                                           ("perp API port", previous.perp_api, now.perp_api, perp_port)):
            if asked is None and before is not None and before != after:
                notes.append(f"the last run's {what} {before} is taken, so the devnet moved to {after}: restart a "
                             "running `xmargin run` (or let it re-read the config)")
    path = devnet_config_path()
    changed = _write_config(devnet_settings(running), path)
    return UpResult(running.as_json(with_markets=True), path, changed, already is not None, notes)


@_user_errors
def info() -> dict[str, Any]:
    """The running devnet's ``{"rpc_url", "chain_id", "contracts", "tokens", "markets", "services"}``."""
    import devnet

    return devnet.info().as_json(with_markets=True)


def check_price(usd: float) -> None:
    """Refuse a price the devnet's feeds cannot hold: not a finite positive number, or below 1e-8 USD."""
    if not math.isfinite(usd) or usd <= 0:
        raise DevnetCommandError(f"a price must be a positive number of dollars, got {usd:g}", code=2)
    if round(usd * 10**FEED_DECIMALS) <= 0:
        raise DevnetCommandError(f"a price must be at least ${10 ** -FEED_DECIMALS:.8f} (the feeds have "
                                 f"{FEED_DECIMALS} decimals), got {usd:g}", code=2)


@_user_errors
def set_price(symbol: str, usd: float) -> str:
    """Move ``symbol``'s price to ``usd`` on every venue of the running devnet (its Chainlink feed, which the
    token market's oracle reads, every other on-chain venue's oracles and pools, and the perp marks); returns the
    symbol as the devnet names it."""
    import devnet

    check_price(usd)
    running = devnet.info()
    sym = symbol.upper()
    if sym not in running.tokens:
        raise DevnetCommandError(f"unknown symbol {symbol!r}: the devnet has {', '.join(sorted(running.tokens))}",
                                 code=2)
    devnet.set_price(running, sym, usd)
    return sym


@dataclass(frozen=True)
class SeedResult:
    """What ``xmargin devnet seed`` did."""

    wallets: list[tuple[str, str]]
    """(address, label) of the tracked demo wallets."""
    already_seeded: bool


@_user_errors
def seed(settings: Settings, progress: Callable[[StageEvent], None] | None = None) -> SeedResult:
    """Open the demo positions on the running devnet (unless open already) and track the demo wallets."""
    import devnet

    running = devnet.info()
    already = devnet.is_seeded(running)
    wallets = [(w.address, w.label) for w in devnet.seed(running, progress) if w.label != "lender"]
    with Store.open(settings.db_url) as store:
        store.add_wallets([(address, label) for address, label in wallets])
    return SeedResult(wallets, already)


@_user_errors
def down() -> bool:
    """Stop the shared devnet; False when none was running. Its ports are remembered for the next ``up``."""
    import devnet

    return devnet.down()
