"""``xmargin serve`` (the API and dashboard without syncing) and ``xmargin apikey create|list|revoke``."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from aggregator.config import Settings
from db import DuplicateNameError, Store

__all__ = ["register"]

apikey_app = typer.Typer(no_args_is_help=True, help="API keys for the HTTP API's writes (and keyed reads).")
console = Console()
err = Console(stderr=True)


class _Ctx:
    settings: Callable[[], Settings]
    store: Callable[[Settings], Store]


def _fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


HostOpt = Annotated[str | None, typer.Option("--host", help="Interface to listen on (default: [api] host).")]
PortOpt = Annotated[int | None, typer.Option("--port", help="Port (0: any free port; default: [api] port).",
                                             min=0, max=65_535)]


def api_settings(settings: Settings, host: str | None, port: int | None) -> Settings:
    """``settings`` with the command line's host and port."""
    api = settings.api.model_copy(update={k: v for k, v in (("host", host), ("port", port)) if v is not None})
    return settings.model_copy(update={"api": api})


def serve(host: HostOpt = None, port: PortOpt = None) -> None:
    """Serve the HTTP API and the dashboard over the store, without syncing (another process syncs)."""
    from aggregator.api.app import create_app, trusted_hosts
    from aggregator.api.server import ApiServer, ServerStartError

    settings = api_settings(_Ctx.settings(), host, port)
    stop = threading.Event()
    with _Ctx.store(settings) as store:
        app = create_app(store, public_reads=settings.api.public_reads,
                     allowed_hosts=trusted_hosts(settings.api.host), stale_after_s=settings.stale_bound_s)
        try:
            server = ApiServer(app, settings.api.host, settings.api.port).start()
        except ServerStartError as exc:
            _fail(str(exc))
        console.print(f"serving the API and dashboard at {server.url}/ui/ (API: {server.url}/v1, "
                      f"schema: {server.url}/openapi.json); Ctrl-C to stop", soft_wrap=True)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            console.print("stopping…")
        finally:
            server.stop()


@apikey_app.command("create")
def apikey_create(
    name: Annotated[str, typer.Argument(help="What the key is for (unique).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Create an API key; it is printed once and only its hash is stored."""
    with _Ctx.store(_Ctx.settings()) as store:
        try:
            row, key = store.create_api_key(name, now=datetime.now(UTC))
        except (DuplicateNameError, ValueError) as exc:
            _fail(str(exc))
    if as_json:
        print(json.dumps({"id": row.id, "name": row.name, "key": key}))
        return
    console.print(f"API key {row.id} ({row.name}): [bold]{key}[/]")
    console.print("Keep it now: only its hash is stored. Send it as `Authorization: Bearer <key>`.")


@apikey_app.command("list")
def apikey_list() -> None:
    """List API keys (names and prefixes; the keys themselves are not stored)."""
    with _Ctx.store(_Ctx.settings()) as store:
        rows = store.list_api_keys()
    table = Table("id", "name", "prefix", "created", "revoked")
    for r in rows:
        table.add_row(str(r.id), r.name, r.prefix + "…", r.created_at.strftime("%Y-%m-%d %H:%M"),
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
