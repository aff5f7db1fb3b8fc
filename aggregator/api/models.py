"""The API's request and response bodies (they are its OpenAPI schema)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    ValidatorFunctionWrapHandler,
    WithJsonSchema,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from connectors.errors import InvalidAddressError
from connectors.types import checksum

__all__ = [
    "ADDRESS_SCHEMA",
    "RULE_PARAMS",
    "AlertOut",
    "AlertsOut",
    "ChainOut",
    "ErrorBody",
    "FreshnessOut",
    "HealthOut",
    "HistoryOut",
    "NetWorthPoint",
    "PositionOut",
    "PositionRowOut",
    "PositionsOut",
    "PriceOut",
    "PricesOut",
    "RiskOut",
    "RuleIn",
    "RuleOut",
    "RulePatch",
    "SummaryOut",
    "VenueOut",
    "WalletIn",
    "WalletOut",
    "WalletsAdded",
    "parse_address",
]

MAX_INT = 2**63 - 1
Severity = Literal["info", "warning", "critical"]
NO_NUL = r"^[^\x00]*$"
"""Text without NUL characters (PostgreSQL stores none in text or JSON)."""
NonNegative = Annotated[float, Field(ge=0, le=1e9, allow_inf_nan=False)]
ADDRESS_FORMAT = "eip55-address"
ADDRESS_SCHEMA: dict[str, Any] = {
    "pattern": "^0x[0-9a-fA-F]{40}$", "format": ADDRESS_FORMAT,
    "description": "0x + 40 hex digits, any case; mixed case must be a valid EIP-55 checksum (a typo is refused, "
                   "with 400 in the path or the query and 422 in a body).",
    "examples": ["0x52908400098527886E0F7030069857D2E4169EE7"]}
"""The OpenAPI schema of an address: only stated, the check is :func:`parse_address` (so that a malformed address
gets one clear message and one status, whatever is wrong with it)."""


def parse_address(value: str) -> str:
    """The EIP-55 form of ``value``; :class:`InvalidAddressError` saying what is wrong, in a line (a very long
    value is not echoed whole)."""
    try:
        return checksum(value)
    except InvalidAddressError:
        if len(value) <= 100:
            raise
        raise InvalidAddressError(f"not an address (want 0x + 40 hex digits): {value[:12]!r}… "
                                  f"({len(value):,} characters)") from None


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _Open(BaseModel):
    """A document that may carry more fields than the ones named (they are documented in the README)."""

    model_config = ConfigDict(extra="allow")


Number = Annotated[float | int, WithJsonSchema({"type": "number"})]
"""A number of a document, kept as given: an integer stays one (a ``float`` field would write ``2`` as ``2.0``)."""


class _Doc(BaseModel):
    """A document the product builds as a dict (or stores as JSON), described field by field: serialised with
    exactly the keys it was given, in the order given (a stored document's, which PostgreSQL's JSONB orders its
    own way), with any key it does not name kept as given. ``_lead`` names fields written first, given or not."""

    model_config = ConfigDict(extra="allow", use_attribute_docstrings=True)
    _lead: ClassVar[tuple[str, ...]] = ()
    _given: tuple[str, ...] | None = PrivateAttr(default=None)

    @model_validator(mode="wrap")
    @classmethod
    def _remember_keys(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        doc = handler(data)
        if isinstance(data, Mapping) and isinstance(doc, _Doc):
            doc._given = tuple(data)
        return doc

    @model_serializer(mode="wrap")
    def _as_given(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        out: dict[str, Any] = handler(self)
        if self._given is None:
            return out
        keys = dict.fromkeys((*self._lead, *self._given))
        return {k: out[k] for k in keys if k in out}

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        """The fields' schema in both modes (the key-keeping serialiser would otherwise describe any object)."""
        return handler(_without_serializer(schema))


def _without_serializer(schema: Any) -> Any:
    """``schema`` (a model's core schema, maybe wrapped by its validator) less the model's own serialiser."""
    if not isinstance(schema, dict):
        return schema
    plain = {k: v for k, v in schema.items() if not (k == "serialization" and schema.get("type") == "model")}
    if isinstance(plain.get("schema"), dict) and plain.get("type") != "model":
        plain["schema"] = _without_serializer(plain["schema"])
    return plain


class ErrorBody(BaseModel):
    """Every 4xx: what is wrong, in words."""

    error: str


class WalletOut(BaseModel):
    address: str
    label: str | None
    ens_name: str | None = None


def _checksummed(value: str) -> str:
    try:
        return parse_address(value)
    except InvalidAddressError as exc:
        raise ValueError(str(exc)) from None


class WalletIn(_In):
    address: Annotated[str, Field(json_schema_extra=ADDRESS_SCHEMA)]
    label: Annotated[str | None, Field(max_length=200, pattern=NO_NUL)] = None

    _address = field_validator("address")(_checksummed)


class WalletsAdded(BaseModel):
    changed: int
    """Wallets added, reactivated or relabelled (0: nothing changed)."""
    wallets: list[WalletOut]


class PositionOut(_Doc):
    """One position of a venue's newest snapshot, valued at the price the venue was read with."""

    asset: str
    """The token's symbol."""
    asset_address: str
    side: str
    """``collateral``, ``debt``, ``lp`` or ``perp``."""
    amount: Number
    """Whole tokens (``amount_raw`` scaled by the token's decimals)."""
    amount_raw: str
    """The exact integer the venue holds (token units × 10**decimals)."""
    price_usd: Number | None
    value_usd: Number | None
    is_collateral: bool
    price_source: str | None
    """Where the price came from (a venue's oracle, a price source of the chain)."""
    price_age_s: Number | None
    """The price's age at the block it was read at."""
    detail: dict[str, Any] | None = None
    """The venue's own figures beside the position, as its detail model states them (absent: none stored)."""


class PositionRowOut(PositionOut):
    """A position with the venue reading it belongs to (``GET …/positions``)."""

    venue: str
    block: int
    synced_at: str | None
    """When the sync that read it finished (ISO 8601, UTC)."""
    age_s: Number | None
    stale: bool


class VenueHealthOut(_Open):
    venue: str
    kind: str
    chain_id: int | None
    block: int
    status: str
    """``ok``; ``stale`` (the newest read failed: the last good values, with ``error``); ``error`` (never read)."""
    error: str | None
    health_factor: float | None
    collateral_usd: float | None
    debt_usd: float | None
    synced_at: str | None = None
    """When the sync that read these values finished (ISO 8601, UTC)."""
    age_s: float | None = None
    stale: bool = False
    positions: list[PositionOut]


class ChainOut(BaseModel):
    """The chain the numbers come from: the configured name, chain id, genesis hash and newest stored block."""

    name: str | None
    chain_id: int
    genesis_hash: str | None
    head_hash: str | None
    head_block: int | None


class LastSyncOut(BaseModel):
    status: str
    at: str | None
    error: str | None


class FreshnessOut(BaseModel):
    """How current the numbers are: when they were synced, their age, and whether (and why) they are stale."""

    synced_at: str | None
    age_s: float | None
    block_timestamp: str | None
    block_age_s: float | None
    stale: bool
    stale_after_s: float
    last_sync: LastSyncOut | None
    failing_since: str | None
    reason: str | None


class FirstLiquidationOut(_Open):
    """The first venue to liquidate and the move that does it: one price to ``price_usd``, or — with
    ``common_move`` — every risky price of the wallet moving together by ``move``."""

    venue: str | None
    asset: str | None
    direction: Literal["falls", "rises"]
    price_usd: float | None
    current_price_usd: float | None
    move: float
    common_move: bool = False
    phrase: str | None = None
    """The move in words: "USDC falls to $0.9137 (−8.6%)", "ETH, LINK and WBTC all fall 57.9%"."""


class VenueHealthRef(BaseModel):
    venue: str
    health_factor: float


class SummaryOut(BaseModel):
    """The headline: lowest venue health, unified health, first liquidation, and one line that says them."""

    lowest_venue: VenueHealthRef | None
    unified_health: float | None
    """``null``: no margin needed (∞) when ``risk_block`` is set; no risk result yet when it is not."""
    risk_block: int | None
    first_liquidation: FirstLiquidationOut | None
    text: str
    unified_health_meaning: str


class HealthOut(BaseModel):
    wallet: str
    chain_id: int | None
    block: int | None
    chain: ChainOut | None = None
    freshness: FreshnessOut | None = None
    summary: SummaryOut | None = None
    venues: list[VenueHealthOut]


class PositionsOut(BaseModel):
    wallet: str
    block: int | None
    positions: list[PositionRowOut]
    freshness: FreshnessOut | None = None


class MoveOut(_Doc):
    """The smallest common move of every risky price, in one direction, that liquidates a venue."""

    move: Number | None = None
    """The move's size (0.25: 25 %); ``null``: no move of that direction liquidates any venue."""
    venue: str | None = None
    """The venue it liquidates first."""


class LiquidationMoveOut(_Doc):
    """A move that liquidates a venue: one price to ``price_usd``, or — with ``common_move`` — every risky price
    of the wallet moving together by ``move``."""

    venue: str | None = None
    asset: str | None = None
    factor: str | None = None
    """The risk factor the engine moved (the underlying the asset's price follows)."""
    direction: Literal["falls", "rises"] | None = None
    price_usd: Number | None = None
    current_price_usd: Number | None = None
    move: Number | None = None
    """The relative move (−0.04: a 4 % fall)."""
    common_move: bool | None = None
    phrase: str | None = None
    """The move in words (the headline's)."""


class FirstLiquidationsOut(_Doc):
    """The first venue to liquidate: under a common move of every risky price down and up, and the single-price
    move nearest today's prices."""

    down: MoveOut | None = None
    up: MoveOut | None = None
    moves: list[str] | None = None
    """The wallet's underlyings ``down`` and ``up`` move together (every non-stable one)."""
    nearest: LiquidationMoveOut | None = None


class LiquidationPriceOut(_Doc):
    """The price of one underlying, every other price unchanged, at which a venue liquidates."""

    venue: str | None = None
    asset: str | None = None
    """The underlying."""
    token: str | None = None
    """The venue's token for it."""
    price_usd: Number | None = None
    current_price_usd: Number | None = None
    side: Literal["below", "above"] | None = None
    """Liquidated when the price goes below (a collateral) or above (a debt, a short) ``price_usd``."""


class PegBasisMoveOut(_Doc):
    """The stress sizes of a peg or basis factor."""

    down: Number | None = None
    up: Number | None = None
    basis: str | None = None
    """Where the sizes come from, in words."""


class VarEsOut(_Doc):
    """Value at risk and expected shortfall (USD, positive: a loss) at one horizon and confidence level."""

    var_usd: Number | None = None
    """Parametric (the factors' covariance)."""
    es_usd: Number | None = None
    historical_var_usd: Number | None = None
    """Over the factors' history; ``null`` without one."""
    historical_es_usd: Number | None = None
    monte_carlo_var_usd: Number | None = None
    monte_carlo_es_usd: Number | None = None


class PnlGridOut(_Doc):
    """The liquidation-aware P&L over the price × volatility grid: rows ``vol_shifts``, columns
    ``price_moves``."""

    price_moves: list[Number] | None = None
    vol_shifts: list[Number] | None = None
    underlyings: list[str] | None = None
    """The underlyings moved by each column's move."""
    moved: str | None = None
    """The same, in words."""
    pnl_usd: list[list[Number | None]] | None = None
    liquidation_loss_usd: list[list[Number | None]] | None = None
    liquidated: list[list[list[str]]] | None = None
    """The venues liquidated in each cell."""


class RiskSummaryOut(SummaryOut):
    """The headline (as the health document's), its first liquidation as the risk document states it."""

    unified_health: Number | None
    first_liquidation: LiquidationMoveOut | None  # type: ignore[assignment]


class RiskOut(_Doc):
    """The netting engine's document (see the README's "Risk document"): unified health, margins, net exposure,
    VaR / ES, first liquidation, liquidation prices and the P&L grid, with the chain, freshness and headline.
    A figure absent from a stored document (one from an older version) is left out."""

    _lead = ("wallet", "computed_at", "block", "unified_health")
    wallet: str
    computed_at: str
    """When the risk result was computed (ISO 8601, UTC)."""
    block: int | None = None
    unified_health: float | None = None
    """The wallet's equity over its portfolio margin; ``null``: no margin needed (∞)."""
    equity_usd: Number | None = None
    portfolio_margin_usd: Number | None = None
    """The worst liquidation-aware loss over the stress scenarios, every venue's rule applied in each."""
    maintenance_factor: Number | None = None
    venue_margins_usd: dict[str, Number | None] | None = None
    """Each venue's margin on its own (its positions alone through the same scenarios)."""
    sum_of_venue_margins_usd: Number | None = None
    netting_benefit_usd: Number | None = None
    """``sum_of_venue_margins_usd`` less ``portfolio_margin_usd``: what netting across venues saves."""
    worst_scenario: str | None = None
    scenario_count: int | None = None
    first_liquidation: FirstLiquidationsOut | None = None
    liquidation_prices: list[LiquidationPriceOut] | None = None
    net_exposure_usd: dict[str, Number | None] | None = None
    """USD delta per risky factor and per stablecoin."""
    peg_basis_exposure_usd: dict[str, Number | None] | None = None
    """USD exposure per peg or basis factor."""
    scan_ranges: dict[str, Number | None] | None = None
    """Each risky factor's scan range (the stress move size)."""
    ewma_vol_daily: dict[str, Number | None] | None = None
    peg_basis_moves: dict[str, PegBasisMoveOut] | None = None
    flags: list[str] | None = None
    """Codes of what the engine had to assume (a default peg size, a missing history…)."""
    flag_notes: list[str] | None = None
    """The same, in words."""
    worst_scenario_label: str | None = None
    """The worst scenario in words."""
    var_es: dict[str, dict[str, VarEsOut]] | None = None
    """Horizon (``1h``, ``1d``, ``7d``) → confidence level (``0.95``…) → VaR and ES."""
    pnl_grid: PnlGridOut | None = None
    """``null``: the wallet holds no risky underlying."""
    heavy_measures_block: int | None = None
    """The block ``var_es`` and ``pnl_grid`` were computed at: the heavy measures run on their own cadence (and
    when the wallet's positions change), the rest of the document every block its inputs change. Absent from a
    document of the full sync (all computed at ``block``); ``null``: not computed yet."""
    chain: ChainOut | None
    freshness: FreshnessOut | None
    summary: RiskSummaryOut | None


class HistoryItem(BaseModel):
    venue: str
    block: int
    block_timestamp: str
    status: str
    error: str | None
    health_factor: float | None
    collateral_usd: float | None
    debt_usd: float | None


class NetWorthPoint(BaseModel):
    block: int
    block_timestamp: str
    net_worth_usd: float
    """Everything held on every venue less every debt, USD (see :mod:`aggregator.api.history`)."""


class UnifiedHealthPoint(BaseModel):
    block: int
    block_timestamp: str | None
    unified_health: float | None
    """``null``: no margin needed (∞)."""


class HistoryOut(BaseModel):
    wallet: str
    items: list[HistoryItem]
    net_worth: list[NetWorthPoint] = []
    unified_health: list[UnifiedHealthPoint] = []
    """The unified health of the page's blocks, oldest first (blocks with a risk result)."""
    """The page's blocks, oldest first: the wallet's net worth at each (a failed venue read counts its last value)."""
    next_before_block: int | None
    """Pass as ``before_block`` for the next (older) page; ``null`` on the last page."""


class VenueOut(BaseModel):
    name: str
    kind: str
    chain_id: int | None
    type: str | None


class PriceOut(BaseModel):
    chain_id: int
    asset: str
    asset_address: str
    source: str
    source_address: str | None
    price_usd: float | None
    price_raw: str
    decimals: int
    block: int
    observed_at: datetime
    updated_at: datetime | None
    age_s: float | None
    """Age at the block it was read at (the source's own timestamp against the block's)."""
    age_now_s: float | None
    """Age now (from the source's timestamp)."""
    flags: list[str]


class PricesOut(BaseModel):
    items: list[PriceOut]


class AlertOut(BaseModel):
    id: int
    event_id: str
    rule_id: int
    kind: str | None
    severity: str
    message: str
    value: float | None
    threshold: float | None
    chain_id: int | None
    block: int | None
    fired_at: datetime
    state: str
    attempts: int
    delivered_at: datetime | None


class AlertsOut(BaseModel):
    wallet: str
    items: list[AlertOut]


VenueName = Annotated[str, Field(min_length=1, max_length=64, pattern=NO_NUL, description="A venue's name.")]
Symbol = Annotated[str, Field(min_length=1, max_length=64, pattern=NO_NUL, description=(
    "The symbol of an asset the store holds a price of (any case; see GET /v1/prices)."))]
Threshold = Annotated[float, Field(gt=0, le=1e12, allow_inf_nan=False)]
Direction = Literal["above", "below"]


class RuleParamsIn(_In):
    """A rule's parameters; the ones its kind takes (see ``POST /v1/alert-rules``) are required."""

    venue: VenueName | None = None
    threshold: Threshold | None = None
    asset: Symbol | None = None
    level: Threshold | None = None
    direction: Direction | None = None


class VenueHealthParams(_In):
    venue: VenueName
    threshold: Annotated[Threshold, Field(description="Health factor below which the rule fires.")]


class UnifiedHealthParams(_In):
    threshold: Annotated[Threshold, Field(description="Unified health below which the rule fires.")]


class MoveParams(_In):
    threshold: Annotated[Threshold, Field(description="Percent: the smallest move that liquidates a venue.")]


class OracleParams(_In):
    asset: Annotated[Symbol | None, Field(description="Only this asset's prices (or a venue's name: its "
                                                      "healths); all of the wallet's when absent.")] = None


class PriceCrossParams(_In):
    asset: Symbol
    level: Annotated[Threshold, Field(description="The price level in USD.")]
    direction: Direction


class _RuleIn(_In):
    wallet: Annotated[str, Field(json_schema_extra=ADDRESS_SCHEMA)]
    hysteresis: NonNegative = 0.0
    cooldown_s: NonNegative = 0.0
    severity: Severity = "warning"
    enabled: bool = True


class VenueHealthRuleIn(_RuleIn):
    kind: Literal["venue_health_below"]
    params: VenueHealthParams


class UnifiedHealthRuleIn(_RuleIn):
    kind: Literal["unified_health_below"]
    params: UnifiedHealthParams


class MoveRuleIn(_RuleIn):
    kind: Literal["move_to_liquidation_below"]
    params: MoveParams


class OracleRuleIn(_RuleIn):
    kind: Literal["oracle_invalid"]
    params: OracleParams = OracleParams()


class PriceCrossRuleIn(_RuleIn):
    kind: Literal["price_cross"]
    params: PriceCrossParams


RULE_PARAMS: dict[str, type[BaseModel]] = {
    "venue_health_below": VenueHealthParams, "unified_health_below": UnifiedHealthParams,
    "move_to_liquidation_below": MoveParams, "oracle_invalid": OracleParams, "price_cross": PriceCrossParams}
"""The parameters each rule kind takes."""

RuleIn = Annotated[VenueHealthRuleIn | UnifiedHealthRuleIn | MoveRuleIn | OracleRuleIn | PriceCrossRuleIn,
                   Field(discriminator="kind")]
"""A new rule: its ``kind`` says which ``params`` it takes (the schema states each kind's)."""


class RulePatch(_In):
    params: RuleParamsIn | None = None
    hysteresis: NonNegative | None = None
    cooldown_s: NonNegative | None = None
    severity: Severity | None = None
    enabled: bool | None = None


class RuleOut(BaseModel):
    id: int
    wallet: str
    kind: str
    params: dict[str, Any]
    hysteresis: float
    cooldown_s: float
    severity: str
    enabled: bool
    created_at: datetime
    active: bool
    """An episode is open: the rule fired and has not re-armed."""
    episode: int
    last_value: float | None
    last_block: int | None
    last_fired_at: datetime | None
