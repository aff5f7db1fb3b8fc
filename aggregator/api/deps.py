"""What the API's routers share: the API key dependencies (a reader's, a writer's), the tracked-wallet path
parameter, and the refusals' body and their OpenAPI description.

Its own module so that every router (:mod:`aggregator.api.app`'s, :mod:`aggregator.api.whatif`'s) takes them
without importing the app that includes it.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, HTTPException, Path, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from aggregator.api.models import ADDRESS_SCHEMA, MAX_INT, ErrorBody, parse_address
from connectors.errors import InvalidAddressError
from db import ApiKeyRow, Store
from db.apikeys import Scope as KeyScope

__all__ = [
    "READ",
    "Credentials",
    "RuleId",
    "Wallet",
    "Writer",
    "address_or_400",
    "error_response",
    "error_responses",
]

_bearer = HTTPBearer(auto_error=False, scheme_name="ApiKey",
                     description="An API key from `xmargin apikey create`, as `Authorization: Bearer xm_…`.")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """Every refusal's body: ``{"error": message}``."""
    return JSONResponse(status_code=status, content={"error": message}, headers=headers)


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` of an operation's refusals ``codes``."""
    words = {400: "Malformed address in the path or the query, or a body that is not JSON",
             401: "Missing or invalid API key", 403: "The API key's scope does not cover this request",
             404: "Not found", 422: "Invalid parameters or body"}
    return {code: {"model": ErrorBody, "description": words[code]} for code in codes}


def _key(request: Request, credentials: HTTPAuthorizationCredentials | None, needed: KeyScope) -> ApiKeyRow:
    """The request's key, if it is valid (else 401) and its scope covers ``needed`` (else 403)."""
    if credentials is None:
        raise HTTPException(401, "this needs an API key: Authorization: Bearer <key>",
                            headers={"WWW-Authenticate": "Bearer"})
    store: Store = request.app.state.store
    key = store.verify_api_key(credentials.credentials)
    if key is None:
        raise HTTPException(401, "unknown or revoked API key", headers={"WWW-Authenticate": "Bearer"})
    if not key.allows(needed):
        raise HTTPException(403, f"API key {key.name!r} has scope {key.scope}; this needs scope {needed} "
                                 f"(xmargin apikey create NAME --scope {needed})")
    return key


def _writer(request: Request, credentials: Credentials) -> ApiKeyRow:
    """Writes always need a valid key of scope ``write`` (or ``admin``)."""
    return _key(request, credentials, "write")


def _reader(request: Request, credentials: Credentials) -> None:
    """Reads need a key (any scope) unless the API serves public reads."""
    if not request.app.state.public_reads:
        _key(request, credentials, "read")


def address_or_400(value: str) -> str:
    """``value`` checksummed; 400 saying what is wrong with it."""
    try:
        return parse_address(value)
    except InvalidAddressError as exc:
        raise HTTPException(400, str(exc)) from None


def _tracked(request: Request, address: Annotated[str, Path(json_schema_extra=ADDRESS_SCHEMA)]) -> str:
    """The path's address, checksummed, of a tracked wallet (400 malformed, 404 untracked)."""
    wallet = address_or_400(address)
    store: Store = request.app.state.store
    row = store.get_wallet(wallet)
    if row is None or not row.active:
        raise HTTPException(404, f"{wallet} is not tracked")
    return wallet


Wallet = Annotated[str, Depends(_tracked)]
"""A path ``address`` of a tracked wallet, checksummed."""
Writer = Annotated[ApiKeyRow, Depends(_writer)]
RuleId = Annotated[int, Path(ge=1, le=MAX_INT)]

READ = [Depends(_reader)]
