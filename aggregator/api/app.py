"""The analytics HTTP API (FastAPI): positions, health, risk and history of any tracked wallet, from the store.

Read endpoints (this module, first part of the API):

* ``GET /v1/wallets`` — tracked wallets;
* ``GET /v1/wallets/{address}/health`` — every venue's newest health (the ``xmargin health --json`` document);
* ``GET /v1/wallets/{address}/positions`` — every position of the newest snapshots, with price source and age;
* ``GET /v1/wallets/{address}/risk`` — the netting engine's newest document (unified health, margins, exposures,
  VaR/ES, first liquidation, liquidation prices);
* ``GET /v1/wallets/{address}/history?from_block=&to_block=&venue=&limit=&before_block=`` — health points, newest
  first, paginated by block (``next_before_block`` continues);
* ``GET /v1/venues`` — configured venues.

Invalid input gets a 4xx with ``{"error": "<what is wrong>"}``, never a 5xx: a malformed address is 400, an
untracked wallet or a wallet without data 404, out-of-range parameters 422.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from aggregator.render import health_document
from connectors.errors import InvalidAddressError
from connectors.types import checksum
from db import Store

__all__ = ["create_app"]

MAX_PAGE = 1_000


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": message})


def _tracked(request: Request, address: str) -> str:
    """The path's address, checksummed, of a tracked wallet (400 malformed, 404 untracked)."""
    try:
        wallet = checksum(address)
    except InvalidAddressError as exc:
        raise HTTPException(400, str(exc)) from None
    store: Store = request.app.state.store
    if store.get_wallet(wallet) is None:
        raise HTTPException(404, f"{wallet} is not tracked")
    return wallet


Wallet = Annotated[str, Depends(_tracked)]
"""A path ``address`` of a tracked wallet, checksummed."""


def create_app(store: Store) -> FastAPI:
    """The API over ``store`` (the caller owns and closes it)."""
    app = FastAPI(title="xmargin", version="0.1.0",
                  description="Positions, health and cross-venue risk of DeFi wallets.")
    app.state.store = store

    @app.exception_handler(HTTPException)
    async def _http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or 'request'}: {e['msg']}"
                             for e in exc.errors())
        return _error(422, problems)

    def kinds() -> dict[str, str]:
        return {v.name: str(v.kind) for v in store.list_venues()}

    @app.get("/v1/wallets")
    def wallets() -> list[dict[str, Any]]:
        return [{"address": w.address, "label": w.label} for w in store.list_wallets()]

    @app.get("/v1/wallets/{address}/health")
    def health(address: Wallet) -> dict[str, Any]:
        latest = store.latest_health(address)
        if not latest:
            raise HTTPException(404, f"{address} has no snapshot yet")
        return health_document(address, latest, kinds())

    @app.get("/v1/wallets/{address}/positions")
    def positions(address: Wallet) -> dict[str, Any]:
        latest = store.latest_health(address)
        if not latest:
            raise HTTPException(404, f"{address} has no snapshot yet")
        doc = health_document(address, latest, kinds())
        rows = [{"venue": v["venue"], "block": v["block"], **p} for v in doc["venues"] for p in v["positions"]]
        return {"wallet": address, "block": doc["block"], "positions": rows}

    @app.get("/v1/wallets/{address}/risk")
    def risk(address: Wallet) -> dict[str, Any]:
        row = store.latest_risk(address)
        if row is None:
            raise HTTPException(404, f"{address} has no risk result yet")
        return {**row.document, "computed_at": row.computed_at.isoformat()}

    @app.get("/v1/wallets/{address}/history")
    def history(
        address: Wallet,
        from_block: Annotated[int | None, Query(ge=0)] = None,
        to_block: Annotated[int | None, Query(ge=0)] = None,
        before_block: Annotated[int | None, Query(ge=0, description="Page cursor: blocks below this one.")] = None,
        venue: str | None = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    ) -> dict[str, Any]:
        if from_block is not None and to_block is not None and from_block > to_block:
            raise HTTPException(422, f"from_block {from_block} is after to_block {to_block}")
        if venue is not None and venue not in kinds():
            raise HTTPException(404, f"unknown venue {venue!r}")
        upper = to_block if before_block is None else min(before_block - 1, to_block or before_block - 1)
        points = store.history(address, venue=venue, from_block=from_block, to_block=upper, limit=limit + 1)
        page, more = points[:limit], len(points) > limit
        # A page ends on a block boundary: the rest of its last block comes with the next page.
        if more and points[limit].block_number == page[-1].block_number:
            last = page[-1].block_number
            page = [p for p in page if p.block_number != last]
            if not page:  # one block holds more points than the limit: the page is that whole block
                page = store.history(address, venue=venue, from_block=last, to_block=last, limit=MAX_PAGE * 100)
        items = [{"venue": p.venue, "block": p.block_number, "block_timestamp": p.block_timestamp.isoformat(),
                  "status": str(p.status), "error": p.error,
                  "health_factor": p.health.health_factor if p.health else None,
                  "collateral_usd": p.health.collateral_usd if p.health else None,
                  "debt_usd": p.health.debt_usd if p.health else None} for p in page]
        return {"wallet": address, "items": items,
                "next_before_block": page[-1].block_number if more and page else None}

    @app.get("/v1/venues")
    def venues() -> list[dict[str, Any]]:
        return [{"name": v.name, "kind": str(v.kind), "chain_id": v.chain_id, "type": v.config.get("type")}
                for v in store.list_venues()]

    return app
