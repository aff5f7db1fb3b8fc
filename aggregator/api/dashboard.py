"""The web dashboard, served by the API's own process: hand-written HTML, CSS and JavaScript from
``aggregator/api/static/`` (no build step, nothing fetched from the internet; charts are inline SVG).

* ``GET /`` — redirects to ``/ui/``;
* ``GET /ui/`` — the wallet list: every tracked wallet with its unified and lowest venue health;
* ``GET /ui/wallet/{address}`` — one wallet: unified health, each venue's health, liquidation prices, net
  exposure per underlying, the liquidation-aware P&L grid (price × volatility), health history and alerts.
  The page is the same file for every wallet; its script reads the address from the path and polls
  ``/v1/wallets/{address}/health`` (every 2 s, ``?refresh=<seconds>`` overrides), re-reading the rest when
  the block changes;
* ``/ui/static/…`` — the assets.

The pages read the JSON API only, so they show exactly what an API client gets.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, RedirectResponse
from starlette.responses import Response
from starlette.staticfiles import PathLike, StaticFiles
from starlette.types import Scope

__all__ = ["STATIC_DIR", "mount_dashboard"]

STATIC_DIR = Path(__file__).with_name("static")
"""The dashboard's files (package data)."""

NO_CACHE = {"Cache-Control": "no-cache"}
"""Revalidate on every load, so an upgraded server never runs against a browser's stale script."""


class _Assets(StaticFiles):
    """Static files that the browser revalidates (ETag) instead of caching by heuristic."""

    def file_response(self, full_path: PathLike, stat_result: os.stat_result, scope: Scope,
                      status_code: int = 200) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers.update(NO_CACHE)
        return response


def mount_dashboard(app: FastAPI) -> None:
    """Serve the dashboard from ``app`` (the routes stay out of the OpenAPI schema)."""
    index, wallet_page = STATIC_DIR / "index.html", STATIC_DIR / "wallet.html"

    def to_list(request: Request) -> RedirectResponse:
        query = request.url.query  # e.g. ?refresh=
        return RedirectResponse("/ui/" + (f"?{query}" if query else ""), status_code=307)

    app.add_api_route("/", to_list, methods=["GET"], include_in_schema=False)
    app.add_api_route("/ui", to_list, methods=["GET"], include_in_schema=False)

    @app.get("/ui/", include_in_schema=False)
    def wallets_page() -> FileResponse:
        return FileResponse(index, media_type="text/html", headers=NO_CACHE)

    @app.get("/ui/wallet/{address}", include_in_schema=False)
    def wallet(address: str) -> FileResponse:
        return FileResponse(wallet_page, media_type="text/html", headers=NO_CACHE)

    app.mount("/ui/static", _Assets(directory=STATIC_DIR), name="dashboard-static")
