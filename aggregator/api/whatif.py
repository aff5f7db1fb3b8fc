"""``POST /v1/wallets/{address}/whatif``: every venue's health, the unified health and the liquidation prices
before and after price moves and the wallet's own actions (:mod:`aggregator.whatif`). A read: it computes from the
stored snapshots and sends nothing anywhere; it takes the same key as the other reads.

Request body (:class:`WhatIfIn`)::

    {"prices": {"WETH": "3000"},
     "changes": [{"action": "repay", "venue": "<lending venue>", "asset": "USDC", "amount": "5000"},
                 {"action": "supply", "venue": "<venue of markets>", "asset": "WETH", "amount": "2",
                  "market": "WETH/USDC"}]}

What an action or a market means on a venue, and the venue's own figures in the answer, are the venue's what-if
part's (``aggregator/venues/<venue>/whatif.py``); the schema composes them in registry order.

Answers: 200 with the document (:class:`WhatIfOut`); 400 a malformed address or a body that is not JSON; 401 a
missing key (when reads need one); 404 an untracked wallet or one without a snapshot; 422 a body that does not fit
the schema or a change the wallet cannot make (unknown venue, asset or price symbol, an amount that is not a
positive number of the token's units, repaying more than owed, withdrawing more than held), with
``{"error": "<why>"}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field, create_model

from aggregator.api.deps import Wallet
from aggregator.api.deps import error_responses as _responses
from aggregator.api.models import NO_NUL
from aggregator.venues.whatif import changing_venues, whatif_parts
from aggregator.whatif import MAX_CHANGES, Change, NoSnapshotError, Scenario, WhatIfError, parse_amount
from aggregator.whatif import whatif as compute

__all__ = ["WhatIfIn", "WhatIfOut", "whatif_router"]

Amount = Annotated[str | float, Field(
    description="A positive decimal number: whole tokens (or USD for a price). A string keeps every digit "
                "(\"0.000000000000000001\"); a JSON number is read as its shortest decimal form.",
    examples=["5000", 2.5])]
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=NO_NUL)]


def _texts(attribute: str) -> list[str]:
    """Each registered venue's what-if text ``attribute`` (those it has, each once), in registry order."""
    texts = [getattr(part, attribute) for _, part in whatif_parts()]
    return list(dict.fromkeys(t for t in texts if t))


_EXAMPLE_VENUE = next(iter(changing_venues()), "lending")
"""The venue the schema's examples name: the first registered venue that takes changes."""


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class WhatIfChangeIn(_In):
    """One action of the wallet, applied in the order given."""

    action: Literal["supply", "withdraw", "borrow", "repay"] = Field(description=" ".join(_texts("api_action_doc")))
    venue: Name = Field(
        description=f"A configured lending venue's name (`GET /v1/venues`), e.g. `{_EXAMPLE_VENUE}`.")
    asset: Name = Field(description="The token's symbol, e.g. `USDC`.")
    amount: Amount
    market: Annotated[str | None, Field(
        max_length=100, pattern=NO_NUL,
        description=" ".join(_texts("api_market_doc")) or "The market, on a venue of several.")] = None


class WhatIfIn(_In):
    """Price moves and changes; at least one of them."""

    prices: Annotated[dict[Annotated[str, Field(min_length=1, max_length=64, pattern=NO_NUL)], Amount], Field(
        max_length=MAX_CHANGES,
        description="Symbol → USD. Moves the token on every venue, and the perp markets of its underlying when "
                    "the token is that underlying or a 1:1 wrapper of it (WETH moves the ETH perp).")] = {}
    changes: Annotated[list[WhatIfChangeIn], Field(max_length=MAX_CHANGES)] = []

    def scenario(self) -> Scenario:
        """The engine's scenario (:class:`WhatIfError` for an amount or price that is not a positive number)."""
        prices = {symbol: parse_amount(usd, f"prices.{symbol}") for symbol, usd in self.prices.items()}
        changes = tuple(Change(c.action, c.venue, c.asset, parse_amount(c.amount, f"changes.{i}.amount"),
                               c.market or None) for i, c in enumerate(self.changes))
        return Scenario(prices, changes)


class WhatIfPositionOut(BaseModel):
    asset: str
    asset_address: str
    side: str = Field(description="collateral | debt | supply | lp | perp")
    amount: float
    amount_raw: str = Field(description="The exact integer (token units × 10**decimals; perps: size × 1e8).")
    price_usd: float | None
    value_usd: float | None
    is_collateral: bool
    market: str | None = Field(description="; ".join([*_texts("api_position_market_doc"), "perps / LP: the market."]))


class _VenueStateOut(BaseModel):
    """A venue's figures (null where the venue has no such figure)."""

    health_factor: float | None = Field(description="null: no debt (lending) / no position (perps).")
    health_factor_raw: str | None = Field(
        description="; ".join([*_texts("api_health_raw_doc"), "null for perps and without debt."]))
    healthy: bool = Field(description="Not liquidatable.")
    collateral_usd: float
    debt_usd: float
    positions: list[WhatIfPositionOut]


def _venue_state_fields() -> dict[str, Any]:
    """Every venue's own figures (each once, the first venue to declare one gives its type), in registry order."""
    fields: dict[str, Any] = {}
    for _, part in whatif_parts():
        for name, spec in part.api_state_fields.items():
            fields.setdefault(name, spec)
    return fields


if TYPE_CHECKING:
    WhatIfVenueStateOut = _VenueStateOut
else:
    WhatIfVenueStateOut = create_model("WhatIfVenueStateOut", __base__=_VenueStateOut,
                                       __doc__=_VenueStateOut.__doc__, __module__=__name__, **_venue_state_fields())


class WhatIfVenueOut(BaseModel):
    venue: str
    kind: str
    type: str | None
    block: int
    matches_sync: bool | None = Field(
        description="Replaying the stored snapshot without changes gives the sync's own health (null: nothing "
                    "to compare); false flags the venue's what-if figures as suspect.")
    changed: bool
    before: WhatIfVenueStateOut
    after: WhatIfVenueStateOut


class WhatIfPriceOut(BaseModel):
    asset: str
    price: str = Field(description="The price as given (exact decimal).")
    price_usd: float
    previous_price_usd: float | None
    applies_to: list[str] = Field(description="`venue:asset` it moved.")


class WhatIfChangeOut(BaseModel):
    step: int
    action: str
    venue: str
    asset: str
    market: str | None
    market_id: str | None
    amount: str
    amount_raw: str | None
    refused: str | None = Field(description="Why the protocol would revert this step (its error); null: it would "
                                            "not. The step is applied in the figures all the same.")


class WhatIfUnifiedOut(BaseModel):
    """The netting engine's headline (as in the risk document) over the book before or after."""

    model_config = ConfigDict(extra="allow")

    unified_health: float | None = None
    equity_usd: float | None = None
    portfolio_margin_usd: float | None = None
    netting_benefit_usd: float | None = None
    worst_scenario: str | None = None
    first_liquidation: dict[str, Any] | None = None
    liquidation_prices: list[dict[str, Any]] = []
    net_exposure_usd: dict[str, float] = {}


class WhatIfUnifiedPairOut(BaseModel):
    before: WhatIfUnifiedOut | None = Field(description="null when the risk engine could not run (see notes).")
    after: WhatIfUnifiedOut | None


class WhatIfSummaryOut(BaseModel):
    text: str = Field(description=f"e.g. `{_EXAMPLE_VENUE} 1.6500 → 1.4143 · unified 7.9591 → 7.8552`.")
    lowest_venue_after: dict[str, Any] | None
    unified_health: dict[str, float | None] | None
    feasible: bool


class WhatIfOut(BaseModel):
    """Every venue's health and the unified figures before and after the change."""

    wallet: str
    chain_id: int
    block: int = Field(description="The snapshots' block the what-if starts from.")
    block_timestamp: str
    computed_at: str
    prices: list[WhatIfPriceOut]
    changes: list[WhatIfChangeOut]
    feasible: bool = Field(description="False when the protocol would refuse a step (see changes[].refused).")
    venues: list[WhatIfVenueOut]
    unified: WhatIfUnifiedPairOut
    notes: list[str]
    summary: WhatIfSummaryOut


def whatif_router(read: dict[str, Any]) -> APIRouter:
    """The what-if route, with the reads' authentication (``read``: the dependencies and OpenAPI extra the other
    read routes of :func:`aggregator.api.app.create_app` get)."""
    router = APIRouter()

    description = ("Every venue's health, the unified health and the liquidation prices after price moves and the\n"
                   "wallet's own supply / withdraw / borrow / repay, recomputed from the newest snapshots with the "
                   f"sync's\nengine ({', '.join(_texts('api_engine_doc'))}). Nothing is\nsent to any chain.")

    @router.post("/v1/wallets/{address}/whatif", **read, response_model=WhatIfOut,
                 responses=_responses(400, 401, 404, 422), summary="What if: health before and after a change",
                 description=description)
    def whatif(address: Wallet, body: WhatIfIn, request: Request) -> Any:
        """Every venue's health, the unified health and the liquidation prices after price moves and the
        wallet's own changes, recomputed with each venue's own rule (the route's description names them)."""
        if not body.prices and not body.changes:
            raise HTTPException(422, "nothing to change: give prices or changes")
        try:
            scenario = body.scenario()
            return compute(request.app.state.store, address, scenario)
        except NoSnapshotError as exc:
            raise HTTPException(404, str(exc)) from None
        except WhatIfError as exc:
            raise HTTPException(422, str(exc)) from None

    return router
