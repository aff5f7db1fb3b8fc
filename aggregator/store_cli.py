"""``xmargin store``: upkeep of the change-only store (``compact``: downsample what is older than the retention
window of ``[store]``, as ``xmargin run`` does every ``compact_every_s``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from aggregator.config import Settings
from db.store import Store

__all__ = ["register"]

console = Console()
err = Console(stderr=True)


def register(app: typer.Typer, settings: Callable[[], Settings], store: Callable[[Settings], Store]) -> None:
    """Add the ``store`` command group to ``app``."""
    store_app = typer.Typer(no_args_is_help=True, help="Upkeep of the store.")
    app.add_typer(store_app, name="store")

    @store_app.command("compact")
    def compact(
        keep_days: Annotated[float | None, typer.Option(
            "--keep-days", min=0, help="Keep every row of this many days (default: [store] keep_full_days).")] = None,
        bucket_s: Annotated[int | None, typer.Option(
            "--bucket-s", min=1, help="Beyond that, keep the first and last row per window of this many seconds "
            "(default: [store] bucket_s).")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """Downsample the store: every row of the last days, then the first and the last per hour (by default)."""
        s = settings()
        policy = s.store.retention_policy()
        if keep_days is not None:
            policy = replace(policy, full_days=keep_days)
        if bucket_s is not None:
            policy = replace(policy, bucket_s=bucket_s)
        try:
            with store(s) as opened:
                stats = opened.compact(policy)
        except Exception as exc:  # said in one line, exit 1: a store that cannot be written
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            err.print(f"[bold red]error:[/] store compaction failed: {type(exc).__name__}: {escape(text[:500])}",
                      soft_wrap=True)
            raise typer.Exit(1) from None
        if as_json:
            print(json.dumps({"cutoff": stats.cutoff.isoformat(), "health_deleted": stats.health_deleted,
                              "risk_deleted": stats.risk_deleted, "prices_deleted": stats.prices_deleted,
                              "versions_deleted": stats.versions_deleted, "deleted": stats.deleted}))
            return
        console.print(f"kept every row since {stats.cutoff:%Y-%m-%d %H:%M} UTC; before it, the first and last per "
                      f"{policy.bucket_s:g} s window", soft_wrap=True)
        console.print(f"deleted {stats.health_deleted} health, {stats.risk_deleted} risk and {stats.prices_deleted} "
                      f"price row(s), {stats.versions_deleted} position version(s)", soft_wrap=True)
