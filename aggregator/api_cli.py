"""``xmargin serve`` (the API and dashboard without syncing) and ``xmargin apikey create|list|revoke``."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from aggregator.config import ApiConfig, Settings
from db import DuplicateNameError, Store
from db.apikeys import DEFAULT_SCOPE

__all__ = ["HostOpt", "PortOpt", "PublicReadsOpt", "api_settings", "register"]

apikey_app = typer.Typer(no_args_is_help=True, help="API keys for the HTTP API: read, write or admin.")
console = Console()
err = Console(stderr=True)


class _Ctx:
    settings: Callable[[], Settings]
    store: Callable[[Settings], Store]


def _fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


# No square brackets in help texts: typer renders them as Rich markup and drops them ("default: host").
HostOpt = Annotated[str | None, typer.Option(
    "--host", help=f"Interface to listen on (default: XMARGIN_API_HOST, else api.host of the config, else "
                   f"{ApiConfig().host}).")]
PortOpt = Annotated[int | None, typer.Option(
    "--port", help=f"Port, 0 for any free one (default: XMARGIN_API_PORT, else api.port of the config, else "
                   f"{ApiConfig().port}).", min=0, max=65_535)]
PublicReadsOpt = Annotated[bool | None, typer.Option(
    "--public-reads/--keyed-reads", show_default=False,
    help="Serve reads without an API key, or only with one (default: XMARGIN_API_PUBLIC_READS, else "
         "api.public_reads of the config, else public on a loopback interface and keyed on any other).")]


def api_settings(settings: Settings, host: str | None, port: int | None,
                 public_reads: bool | None = None) -> Settings:
    """``settings`` with the command line's host, port and public reads (``None``: not given)."""
    given = (("host", host), ("port", port), ("public_reads", public_reads))
    api = settings.api.model_copy(update={k: v for k, v in given if v is not None})
    return settings.model_copy(update={"api": api})


def serve(host: HostOpt = None, port: PortOpt = None, public_reads: PublicReadsOpt = None) -> None:
    """Serve the HTTP API and the dashboard over the store, without syncing (another process syncs)."""
    from aggregator.api.app import create_app, trusted_hosts
    from aggregator.api.server import ApiServer, ServerStartError

    settings = api_settings(_Ctx.settings(), host, port, public_reads)
    stop = threading.Event()
    with _Ctx.store(settings) as store:
        app = create_app(store, public_reads=settings.api.public_reads,
                         allowed_hosts=trusted_hosts(settings.api.host), stale_after_s=settings.stale_bound_s)
        try:
            server = ApiServer(app, settings.api.host, settings.api.port).start()
        except ServerStartError as exc:
            _fail(str(exc))
        reads = "public reads" if app.state.public_reads else "reads need an API key"
        console.print(f"serving the API and dashboard at {server.url}/ui/ (API: {server.url}/v1, "
                      f"schema: {server.url}/openapi.json; {reads}); Ctrl-C to stop", soft_wrap=True)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            console.print("stopping…")
        finally:
            server.stop()


class KeyScope(StrEnum):
    read = "read"
    write = "write"
    admin = "admin"


DEFAULT_KEY_SCOPE = KeyScope(DEFAULT_SCOPE)


@apikey_app.command("create")
def apikey_create(
    name: Annotated[str, typer.Argument(help="What the key is for (unique).")],
    scope: Annotated[KeyScope, typer.Option(
        "--scope", help="read: every GET; write: also add and remove wallets and alert rules; admin: all that, "
                        "and managing API keys once the API offers it. Default read: a key does no more than it "
                        "was made for.")] = DEFAULT_KEY_SCOPE,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Create an API key; it is printed once and only its hash is stored."""
    with _Ctx.store(_Ctx.settings()) as store:
        try:
            row, key = store.create_api_key(name, now=datetime.now(UTC), scope=scope.value)
        except (DuplicateNameError, ValueError) as exc:
            _fail(str(exc))
    if as_json:
        print(json.dumps({"id": row.id, "name": row.name, "scope": row.scope, "key": key}))
        return
    console.print(f"API key {row.id} ({row.name}, scope {row.scope}): [bold]{key}[/]")
    console.print("Keep it now: only its hash is stored. Send it as `Authorization: Bearer <key>`.")
    if row.scope == "read":
        console.print("It reads only; a key that adds wallets or alert rules needs --scope write.")


@apikey_app.command("list")
def apikey_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List API keys with their scopes (names and prefixes; the keys themselves are not stored)."""
    with _Ctx.store(_Ctx.settings()) as store:
        rows = store.list_api_keys()
    if as_json:
        print(json.dumps([{"id": r.id, "name": r.name, "scope": r.scope, "prefix": r.prefix,
                           "created_at": r.created_at.isoformat(),
                           "revoked_at": r.revoked_at.isoformat() if r.revoked_at else None} for r in rows]))
        return
    if not rows:
        console.print("no API keys yet: xmargin apikey create NAME --scope read|write|admin")
        return
    table = Table("id", "name", "scope", "prefix", "created", "revoked")
    for r in rows:
        table.add_row(str(r.id), r.name, r.scope, r.prefix + "…", r.created_at.strftime("%Y-%m-%d %H:%M"),
                      r.revoked_at.strftime("%Y-%m-%d %H:%M") if r.revoked_at else "")
    console.print(table)


@apikey_app.command("revoke")
def apikey_revoke(key: Annotated[str, typer.Argument(help="The key's id or name.")]) -> None:
    """Revoke an API key: requests with it get 401 from now on."""
    target: str | int = int(key) if key.isdigit() else key
    with _Ctx.store(_Ctx.settings()) as store:
        if not store.revoke_api_key(target, now=datetime.now(UTC)):
            _fail(f"no active API key {key!r}", code=1)
    console.print(f"revoked {key}")


def register(app: typer.Typer, settings: Callable[[], Settings], store: Callable[[Settings], Store]) -> None:
    """Add ``serve`` and the ``apikey`` group to ``app``."""
    _Ctx.settings, _Ctx.store = settings, store
    app.command("serve")(serve)
    app.add_typer(apikey_app, name="apikey")
