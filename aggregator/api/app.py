"""The analytics HTTP API (FastAPI) and the dashboard, over the store.

Reads (public on a loopback server unless ``[api] public_reads = false``; keyed on any other interface unless
public reads are asked for explicitly):

* ``GET /v1/wallets`` — tracked wallets (``limit`` / ``offset``);
* ``GET /v1/wallets/{address}/health`` — every venue's newest health (the ``xmargin health --json`` document);
* ``GET /v1/wallets/{address}/positions`` — every position of the newest snapshots, with price source and age;
* ``GET /v1/wallets/{address}/risk`` — the netting engine's newest document (unified health, margins, exposures,
  VaR/ES, first liquidation, liquidation prices, the price × volatility P&L grid);
* ``GET /v1/wallets/{address}/history?from_block=&to_block=&venue=&limit=&before_block=`` — health points, newest
  first, paginated by block (``next_before_block`` continues), and the page's net worth per block (``net_worth``);
* ``GET /v1/wallets/{address}/alerts`` — the wallet's alerts, newest first;
* ``GET /v1/venues``, ``GET /v1/prices`` (every oracle price with its source and age);
* ``GET /v1/alert-rules``, ``GET /v1/alert-rules/{id}``;
* ``GET /metrics`` — Prometheus text format.

Writes (always with ``Authorization: Bearer <key>`` of scope ``write`` or ``admin``; keys from
``xmargin apikey create NAME --scope write``, stored hashed):

* ``POST /v1/wallets`` (one wallet or a list), ``DELETE /v1/wallets/{address}``;
* ``POST /v1/alert-rules``, ``PATCH /v1/alert-rules/{id}``, ``DELETE /v1/alert-rules/{id}``.

Key scopes (see :mod:`db.apikeys`): ``read`` reads, ``write`` also writes, ``admin`` also manages keys (no endpoint
does yet: keys are made and revoked with ``xmargin apikey``).

Invalid input gets a 4xx with ``{"error": "<what is wrong>"}``, never a 5xx: a malformed address in the path or the
query, a Host header the server does not answer to, or a body that is not JSON is 400, a missing or wrong key 401,
a key whose scope does not cover the request 403, an untracked wallet, unknown rule or wallet without data 404,
bad parameters or bodies 422.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, FastAPI, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import Field, ValidationError
from starlette.datastructures import Headers, State
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from aggregator.api.deps import (
    READ,
    RuleId,
    Wallet,
    Writer,
    address_or_400,
    error_response,
    error_responses,
)
from aggregator.api.history import net_worth_points
from aggregator.api.models import (
    ADDRESS_SCHEMA,
    MAX_INT,
    RULE_PARAMS,
    AlertOut,
    AlertsOut,
    HealthOut,
    HistoryOut,
    PositionsOut,
    PriceOut,
    PricesOut,
    RiskOut,
    RuleIn,
    RuleOut,
    RulePatch,
    VenueOut,
    WalletIn,
    WalletOut,
    WalletsAdded,
    parse_address,
)
from aggregator.documents import health_view, risk_view, service_status
from aggregator.metrics import CONTENT_TYPE, Metrics
from connectors.errors import InvalidAddressError
from db import AlertRow, RuleRow, Store, UnknownReferenceError

__all__ = ["create_app", "is_loopback", "public_reads_warning", "trusted_hosts"]

MAX_PAGE = 1_000
MAX_WALLETS_PER_POST = 1_000


def _rule_out(rule: RuleRow) -> RuleOut:
    return RuleOut(id=rule.id, wallet=rule.wallet, kind=rule.kind, params=dict(rule.params),
                   hysteresis=rule.hysteresis, cooldown_s=rule.cooldown_s, severity=rule.severity,
                   enabled=rule.enabled, created_at=rule.created_at, active=rule.active, episode=rule.episode,
                   last_value=rule.last_value, last_block=rule.last_block, last_fired_at=rule.last_fired_at)


def _alert_out(alert: AlertRow) -> AlertOut:
    kind = alert.payload.get("kind")
    return AlertOut(id=alert.id, event_id=alert.event_id, rule_id=alert.rule_id,
                    kind=kind if isinstance(kind, str) else None, severity=alert.severity, message=alert.message,
                    value=alert.value, threshold=alert.threshold, chain_id=alert.chain_id, block=alert.block_number,
                    fired_at=alert.fired_at, state=alert.state, attempts=alert.attempts,
                    delivered_at=alert.delivered_at)


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
"""The dashboard's pages run only their own scripts and talk only to their own server."""


def is_loopback(host: str) -> bool:
    """Whether a server bound to ``host`` is reachable from this machine only."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def trusted_hosts(bind_host: str) -> tuple[str, ...] | None:
    """The Host names a server bound to ``bind_host`` answers: loopback names for a loopback bind (so a web
    page cannot reach it through DNS rebinding), any for another interface (put a proxy with TLS in front)."""
    if not is_loopback(bind_host):
        return None
    return tuple(dict.fromkeys((*LOOPBACK_HOSTS, bind_host.strip("[]"))))


def public_reads_warning(bind_host: str, public_reads: bool | None) -> str | None:
    """The warning a server bound to ``bind_host`` gives when it serves reads without a key to other machines."""
    if not public_reads or is_loopback(bind_host):
        return None
    return (f"public reads on a non-loopback interface ({bind_host}): anyone who can reach this port reads every "
            "tracked wallet, position, health, risk result and alert without an API key. Serve it behind TLS, or "
            "drop `public_reads = true` / XMARGIN_API_PUBLIC_READS=true / --public-reads to require a key.")


class _HostCheck:
    """Answers only requests whose Host header names one of ``allowed`` (any port); the others get 400 with
    ``{"error": …}`` like every refused request (Starlette's TrustedHostMiddleware answers in plain text)."""

    def __init__(self, app: ASGIApp, allowed: Sequence[str]) -> None:
        self.app = app
        self.allowed = frozenset(h.lower().strip("[]") for h in allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        given = Headers(scope=scope).get("host", "")
        if given.startswith("["):  # [::1]:8700
            name = given[1:given.find("]")] if "]" in given else given
        else:
            name = given.rsplit(":", 1)[0] if given.count(":") == 1 else given
        if name.lower() in self.allowed:
            await self.app(scope, receive, send)
            return
        shown = given if len(given) <= 100 else given[:100] + "…"
        response = error_response(400, f"this server answers to {', '.join(sorted(self.allowed))} only, not Host "
                               f"{shown!r} (it listens on a loopback interface; see [api] host)")
        await response(scope, receive, send)


def create_app(store: Store, *, public_reads: bool | None = None, metrics: Metrics | None = None,
               dashboard: bool = True, allowed_hosts: Sequence[str] | None = LOOPBACK_HOSTS,
               stale_after_s: float = 45.0) -> FastAPI:
    """The API (and, with ``dashboard``, the web dashboard) over ``store``; the caller owns and closes the store.

    ``metrics`` carries the process's sync and RPC counters (``xmargin run`` passes its own); without it,
    ``/metrics`` reports what the store holds. ``allowed_hosts``: the Host names answered (``None``: any, a server
    on a non-loopback interface; see :func:`trusted_hosts`). ``public_reads``: reads without a key; ``None`` (not
    asked for either way): public for a loopback server (``allowed_hosts`` given), keyed for any other.
    ``stale_after_s``: data older than this is shown as stale (the configuration's ``stale_bound_s``).
    """
    if public_reads is None:
        public_reads = allowed_hosts is not None
    # No /docs or /redoc: FastAPI's pages load their scripts from a CDN (the schema is at /openapi.json).
    app = FastAPI(title="xmargin", version="0.1.0", docs_url=None, redoc_url=None,
                  description="Positions, health and cross-venue risk of DeFi wallets.")
    if allowed_hosts is not None:  # a loopback server answers only to loopback names (DNS rebinding)
        app.add_middleware(_HostCheck, allowed=list(allowed_hosts))

    @app.middleware("http")
    async def _headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        if request.url.path.startswith("/ui"):
            response.headers.setdefault("Content-Security-Policy", CSP)
        return response

    app.state.store = store
    app.state.public_reads = public_reads
    app.state.stale_after_s = stale_after_s
    app.state.metrics = metrics if metrics is not None else Metrics(store)

    @app.exception_handler(StarletteHTTPException)
    async def _httperror_response(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:  # Starlette's Allow names the methods of the first route on the path only
            path = request.scope["path"]
            allowed = {m for r in app.routes if isinstance(r, APIRoute) and r.path_regex.match(path)
                       for m in (r.methods or ())}
            headers = {**(headers or {}), "Allow": ", ".join(sorted(allowed))}
        return error_response(exc.status_code, str(exc.detail), headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        if any(e.get("type") == "json_invalid" for e in exc.errors()):
            return error_response(400, "the request body is not valid JSON")
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or 'request'}: {e['msg']}"
                             for e in exc.errors())
        return error_response(422, problems)

    # Reads take the key's dependency; with public reads the schema marks the key optional ({} = no scheme).
    read: dict[str, Any] = {"dependencies": READ, "openapi_extra": {"security": [{}]} if public_reads else None}

    app.include_router(_wallet_routes(store, read, app.state))
    app.include_router(_market_routes(store, read))
    app.include_router(_rule_routes(store, read))
    app.include_router(_operation_routes(store, read, app.state))
    from aggregator.api.whatif import whatif_router
    app.include_router(whatif_router(read))  # POST /v1/wallets/{address}/whatif (a read)

    if dashboard:
        from aggregator.api.dashboard import mount_dashboard

        mount_dashboard(app)
    return app



def _kinds(store: Store) -> dict[str, str]:
    """Venue name → kind, as the store holds the venues."""
    return {v.name: str(v.kind) for v in store.list_venues()}


def _wallet_routes(store: Store, read: dict[str, Any], state: State) -> APIRouter:
    """``/v1/wallets``: the tracked wallets, and each one's health, positions, risk, history and alerts."""
    router = APIRouter()

    def kinds() -> dict[str, str]:
        return _kinds(store)

    # -- wallets -------------------------------------------------------------------------------------------
    @router.get("/v1/wallets", **read, responses=error_responses(401, 422))
    def wallets(
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1_000,
        offset: Annotated[int, Query(ge=0, le=MAX_INT)] = 0,
    ) -> list[WalletOut]:
        return [WalletOut(address=w.address, label=w.label, ens_name=w.ens_name)
                for w in store.list_wallets(limit=limit, offset=offset)]

    @router.post("/v1/wallets", status_code=201, responses=error_responses(400, 401, 403, 422))
    def add_wallets(
        _auth: Writer,
        body: Annotated[WalletIn | Annotated[list[WalletIn], Field(min_length=1, max_length=MAX_WALLETS_PER_POST)],
                        Body(description=f"One wallet or a list of 1 to {MAX_WALLETS_PER_POST:,}.")],
    ) -> WalletsAdded:
        items = body if isinstance(body, list) else [body]
        changed = store.add_wallets([(w.address, w.label) for w in items])
        rows = {w.address: store.get_wallet(w.address) for w in items}
        return WalletsAdded(changed=changed, wallets=[WalletOut(address=a, label=row.label, ens_name=row.ens_name)
                                                      for a, row in rows.items() if row is not None])

    @router.delete("/v1/wallets/{address}", status_code=204, responses=error_responses(400, 401, 403, 404, 422))
    def remove_wallet(_auth: Writer, address: Wallet) -> Response:
        store.remove_wallet(address)
        return Response(status_code=204)

    @router.get("/v1/wallets/{address}/health", **read, response_model=HealthOut,
             responses=error_responses(400, 401, 404, 422))
    def health(address: Wallet) -> Any:
        latest = store.latest_health(address)
        if not latest:
            raise HTTPException(404, f"{address} has no snapshot on the current chain yet")
        # validated once, by the response model
        return health_view(store, address, stale_after_s=state.stale_after_s, latest=latest)

    @router.get("/v1/wallets/{address}/positions", **read, responses=error_responses(400, 401, 404, 422))
    def positions(address: Wallet) -> PositionsOut:
        latest = store.latest_health(address)
        if not latest:
            raise HTTPException(404, f"{address} has no snapshot on the current chain yet")
        doc = health_view(store, address, stale_after_s=state.stale_after_s, latest=latest, with_risk=False)
        rows = [{"venue": v["venue"], "block": v["block"], "synced_at": v["synced_at"], "age_s": v["age_s"],
                 "stale": v["stale"], **p} for v in doc["venues"] for p in v["positions"]]
        return PositionsOut(wallet=address, block=doc["block"], positions=rows, freshness=doc["freshness"])

    @router.get("/v1/wallets/{address}/risk", **read, responses=error_responses(400, 401, 404, 422))
    def risk(address: Wallet) -> RiskOut:
        doc = risk_view(store, address, stale_after_s=state.stale_after_s)
        if doc is None:
            raise HTTPException(404, f"{address} has no risk result on the current chain yet")
        return RiskOut.model_validate(doc)

    @router.get("/v1/wallets/{address}/history", **read, responses=error_responses(400, 401, 404, 422))
    def history(
        address: Wallet,
        from_block: Annotated[int | None, Query(alias="from", ge=0, le=MAX_INT,
                                                description="First block (inclusive).")] = None,
        to_block: Annotated[int | None, Query(alias="to", ge=0, le=MAX_INT,
                                              description="Last block (inclusive).")] = None,
        from_block_: Annotated[int | None, Query(alias="from_block", ge=0, le=MAX_INT,
                                                 description="Same as `from`.")] = None,
        to_block_: Annotated[int | None, Query(alias="to_block", ge=0, le=MAX_INT, description="Same as `to`.")] = None,
        before_block: Annotated[int | None, Query(ge=0, le=MAX_INT,
                                                  description="Page cursor: blocks below this one.")] = None,
        venue: Annotated[str | None, Query(max_length=100)] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    ) -> HistoryOut:
        for given, alias, name in ((from_block, from_block_, "from"), (to_block, to_block_, "to")):
            if given is not None and alias is not None and given != alias:
                raise HTTPException(422, f"{name} and {name}_block disagree ({given} vs {alias})")
        from_block = from_block if from_block is not None else from_block_
        to_block = to_block if to_block is not None else to_block_
        if from_block is not None and to_block is not None and from_block > to_block:
            raise HTTPException(422, f"from_block {from_block} is after to_block {to_block}")
        if venue is not None and venue not in kinds():
            raise HTTPException(404, f"unknown venue {venue!r}")
        upper = to_block if before_block is None else (
            before_block - 1 if to_block is None else min(before_block - 1, to_block))
        if upper is not None and upper < 0:
            return HistoryOut(wallet=address, items=[], next_before_block=None)
        points = store.history(address, venue=venue, from_block=from_block, to_block=upper, limit=limit + 1)
        page, more = points[:limit], len(points) > limit
        # A page ends on a block boundary: the rest of its last block comes with the next page.
        if more and points[limit].block_number == page[-1].block_number:
            last = page[-1].block_number
            page = [p for p in page if p.block_number != last]
            if not page:  # one block holds more points than the limit: the page is that whole block
                page = store.history(address, venue=venue, from_block=last, to_block=last, limit=MAX_PAGE * 100)
                more = last > 0 and bool(store.history(address, venue=venue, from_block=from_block,
                                                       to_block=last - 1, limit=1))
        items = [{"venue": p.venue, "block": p.block_number, "block_timestamp": p.block_timestamp.isoformat(),
                  "status": str(p.status), "error": p.error,
                  "health_factor": p.health.health_factor if p.health else None,
                  "collateral_usd": p.health.collateral_usd if p.health else None,
                  "debt_usd": p.health.debt_usd if p.health else None} for p in page]
        blocks = [p.block_number for p in page]
        unified = [{"block": b, "block_timestamp": ts.isoformat() if ts else None, "unified_health": uh}
                   for b, ts, uh in store.risk_history(address, min(blocks), max(blocks))] if blocks else []
        return HistoryOut.model_validate({"wallet": address, "items": items, "net_worth": net_worth_points(page),
                                          "unified_health": unified,
                                          "next_before_block": page[-1].block_number if more and page else None})

    @router.get("/v1/wallets/{address}/alerts", **read, responses=error_responses(400, 401, 404, 422))
    def alerts(address: Wallet, limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100) -> AlertsOut:
        return AlertsOut(wallet=address, items=[_alert_out(a) for a in store.list_alerts(address, limit=limit)])

    return router


def _market_routes(store: Store, read: dict[str, Any]) -> APIRouter:
    """``/v1/venues`` and ``/v1/prices``: what is read, and the oracle prices it was valued at."""
    router = APIRouter()

    # -- venues and prices ---------------------------------------------------------------------------------
    @router.get("/v1/venues", **read, responses=error_responses(401))
    def venues() -> list[VenueOut]:
        return [VenueOut(name=v.name, kind=str(v.kind), chain_id=v.chain_id, type=v.config.get("type"))
                for v in store.list_venues()]

    @router.get("/v1/prices", **read, responses=error_responses(401, 422))
    def prices(chain_id: Annotated[int | None, Query(ge=0, le=MAX_INT)] = None) -> PricesOut:
        now = datetime.now(UTC)
        return PricesOut(items=[
            PriceOut(chain_id=p.asset.chain_id, asset=p.asset.symbol, asset_address=p.asset.address,
                     source=p.source, source_address=p.source_address, price_usd=p.price_usd,
                     price_raw=str(p.price_raw), decimals=p.decimals, block=p.block_number,
                     observed_at=p.observed_at, updated_at=p.updated_at, age_s=p.age_s,
                     age_now_s=(now - p.updated_at).total_seconds() if p.updated_at else None, flags=list(p.flags))
            for p in store.latest_prices(chain_id)
        ])

    return router


def _rule_routes(store: Store, read: dict[str, Any]) -> APIRouter:
    """``/v1/alert-rules``: the alert rules, read with a reader's key, changed with a writer's."""
    router = APIRouter()

    def kinds() -> dict[str, str]:
        return _kinds(store)

    # -- alert rules ---------------------------------------------------------------------------------------
    def rule_or_404(rule_id: int) -> RuleRow:
        rule = store.get_rule(rule_id)
        if rule is None:
            raise HTTPException(404, f"no alert rule {rule_id}")
        return rule

    def checked_params(kind: str, params: dict[str, Any]) -> dict[str, Any]:
        from aggregator.alerts.engine import check_rule

        venue = params.get("venue")
        known = kinds()
        if venue is not None and venue not in known:
            raise HTTPException(422, f"unknown venue {venue!r}; known: {', '.join(sorted(known))}")
        try:
            return check_rule(kind, params, assets=store.priced_symbols(), venues=known)
        except ValueError as exc:
            raise HTTPException(422, _firsterror_response(exc)) from None

    @router.get("/v1/alert-rules", **read, responses=error_responses(400, 401, 422))
    def list_rules(wallet: Annotated[str | None, Query(json_schema_extra=ADDRESS_SCHEMA)] = None) -> list[RuleOut]:
        if wallet is not None:
            wallet = address_or_400(wallet)
        return [_rule_out(r) for r in store.list_rules(wallet)]

    @router.post("/v1/alert-rules", status_code=201, responses=error_responses(400, 401, 403, 422))
    def add_rule(_auth: Writer, body: RuleIn) -> RuleOut:
        try:
            wallet = parse_address(body.wallet)
        except InvalidAddressError as exc:
            raise HTTPException(422, f"wallet: {exc}") from None
        params = checked_params(body.kind, body.params.model_dump(exclude_none=True))
        row = store.get_wallet(wallet)
        if row is None or not row.active:
            raise HTTPException(422, f"wallet: {wallet} is not tracked; POST /v1/wallets first")
        try:
            rule = store.add_rule(wallet, body.kind, params, hysteresis=body.hysteresis, cooldown_s=body.cooldown_s,
                                  severity=body.severity, enabled=body.enabled, now=datetime.now(UTC))
        except UnknownReferenceError:
            raise HTTPException(422, f"wallet: {wallet} is not tracked; POST /v1/wallets first") from None
        return _rule_out(rule)

    @router.get("/v1/alert-rules/{rule_id}", **read, responses=error_responses(401, 404, 422))
    def get_rule(rule_id: RuleId) -> RuleOut:
        return _rule_out(rule_or_404(rule_id))

    @router.patch("/v1/alert-rules/{rule_id}", responses=error_responses(400, 401, 403, 404, 422))
    def update_rule(_auth: Writer, rule_id: RuleId, body: RulePatch) -> RuleOut:
        rule = rule_or_404(rule_id)
        params = None
        if body.params is not None:  # the parameters of the rule's kind, as POST takes them
            given = body.params.model_dump(exclude_none=True)
            shape = RULE_PARAMS[rule.kind]
            try:
                shape.model_validate(given)
            except ValidationError as exc:
                problems = "; ".join(f"params.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
                raise HTTPException(422, f"rule {rule_id} is {rule.kind}, whose params are "
                                         f"{', '.join(shape.model_fields) or 'none'}: {problems}") from None
            params = checked_params(rule.kind, given)
        updated = store.update_rule(rule_id, params=params, hysteresis=body.hysteresis, cooldown_s=body.cooldown_s,
                                    severity=body.severity, enabled=body.enabled)
        if updated is None:
            raise HTTPException(404, f"no alert rule {rule_id}")
        return _rule_out(updated)

    @router.delete("/v1/alert-rules/{rule_id}", status_code=204, responses=error_responses(401, 403, 404, 422))
    def remove_rule(_auth: Writer, rule_id: RuleId) -> Response:
        if not store.remove_rule(rule_id):
            raise HTTPException(404, f"no alert rule {rule_id}")
        return Response(status_code=204)

    return router


def _operation_routes(store: Store, read: dict[str, Any], state: State) -> APIRouter:
    """``/metrics`` and ``/healthz``: what an operator's probes read."""
    router = APIRouter()

    # -- operations ----------------------------------------------------------------------------------------
    @router.get("/metrics", **read, responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus text format"},
        **error_responses(401)})
    def metrics_text() -> Response:
        return Response(state.metrics.render(), media_type=CONTENT_TYPE)

    @router.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, Any]:
        """``ok``, or ``degraded`` with the reasons (a chain whose newest sync failed or is older than the stale
        bound) — always 200, so a probe chooses what to do with it; 503 only when the store cannot be read."""
        try:
            return service_status(store, stale_after_s=state.stale_after_s)
        except Exception as exc:  # the store is down: that is not "ok"
            raise HTTPException(503, f"the store cannot be read: {type(exc).__name__}") from None

    return router

def _firsterror_response(exc: ValueError) -> str:
    """A pydantic validation error in one line."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        return "; ".join(str(e.get("msg", e)) for e in errors())
    return str(exc).splitlines()[0]
