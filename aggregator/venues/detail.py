"""What every venue's typed detail models share (``aggregator/venues/<venue>/detail.py``).

A venue stores, beside each position and each health (and each market it reads), the figures of its own rule as
JSON (``extra``, a market's ``params``). Its ``detail`` module declares them as pydantic models, every stored key
a field: the venue's sync builds the models and stores their :meth:`Detail.stored` dump, and its risk, keeper and
what-if parts read them back through the same models (:func:`parse`) instead of by string key. ``STORED``
(:class:`StoredDetails`) says which model describes which stored dict; a test syncs the devnet and checks that
every stored dict parses with its model without an undeclared key (:meth:`Detail.undeclared`).

A field's position in its model is the key's position in the stored JSON. A model made of parts that other models
share lists its parts in reverse (``class Whole(Last, Middle, First)``): pydantic orders fields from the last base
to the first, then the class's own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Self, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

__all__ = [
    "BigInt",
    "Detail",
    "Number",
    "PerpHealthDetail",
    "PerpPositionDetail",
    "RawInt",
    "StoredDetails",
    "parse",
]


class Detail(BaseModel):
    """Base of the venues' detail models: frozen, the stored keys the model does not name kept as they were; a
    field's docstring is its description."""

    model_config = ConfigDict(extra="allow", frozen=True, use_attribute_docstrings=True)

    def stored(self) -> dict[str, Any]:
        """The JSON the venue stores: the fields set when the model was built, in the model's order (integers
        beyond 2**53 as decimal strings, :data:`BigInt`), nested models likewise."""
        return self.model_dump(exclude_unset=True)

    def updated(self, **fields: Any) -> Self:
        """A copy with ``fields`` set too, validated."""
        return self.model_validate({**self.stored(), **fields})

    def undeclared(self) -> list[str]:
        """The stored keys no field declares, here and in the nested models (``markets[0].key``); empty when the
        model describes all of it."""
        return _undeclared(self, "")


def _undeclared(value: object, at: str) -> list[str]:
    if isinstance(value, Detail):
        own = [f"{at}{'.' if at else ''}{key}" for key in value.model_extra or {}]
        nested = [_undeclared(getattr(value, name), f"{at}{'.' if at else ''}{name}")
                  for name in type(value).model_fields]
        return own + [k for keys in nested for k in keys]
    if isinstance(value, list | tuple):
        return [k for i, item in enumerate(value) for k in _undeclared(item, f"{at}[{i}]")]
    if isinstance(value, dict):
        return [k for key, item in value.items() for k in _undeclared(item, f"{at}.{key}")]
    return []


_D = TypeVar("_D", bound=Detail)

RawInt = Annotated[int, BeforeValidator(lambda value: int(str(value)))]
"""An exact integer stored as a JSON number (read also from a decimal string)."""

BigInt = Annotated[int, BeforeValidator(lambda value: int(str(value))), PlainSerializer(str, return_type=str)]
"""An exact integer stored as a decimal string (it may exceed 2**53, beyond a JSON reader's exact numbers)."""

Number = int | float
"""A figure stored as the JSON number it was computed as: a float, or an integer (a sum over nothing is ``0``)."""


def parse(model: type[_D], raw: Mapping[str, Any]) -> _D:
    """``raw`` (a stored ``extra``) as ``model``; a stored value of the wrong type is a ``pydantic`` error."""
    return model.model_validate(dict(raw))


class PerpHealthDetail(Detail):
    """A perp venue's account figures as the venue's rule computed them, in USD (``None``: not stored); a venue's
    own account model adds its figures after these (:func:`aggregator.venues.perp.perp_health`)."""

    equity_usd: float | None = None
    """The account's equity (all margin accounts), USD."""
    maintenance_margin_usd: float = 0.0
    """The maintenance margin the venue requires of the account, USD."""
    liquidation_price: dict[str, float | None] = Field(default_factory=dict)
    """Per position label (coin or market): the mark at which the venue liquidates it, USD (``None``: never)."""
    discrepancies: list[str] = Field(default_factory=list)
    """Where the recomputed figures disagree with the venue's own (empty: they agree)."""


class PerpPositionDetail(Detail):
    """What every perp venue adds after its own figures to a position's detail
    (:func:`aggregator.venues.perp.perp_position`); ``None``: not stored."""

    mark_px: float | None = None
    """The mark the position is valued at, USD."""
    notional_usd: float | None = None
    """Signed size × mark, USD."""
    effective_leverage: float | None = None
    """|notional| ÷ the account's equity (``None`` when the equity is not positive)."""


@dataclass(frozen=True)
class StoredDetails:
    """Which of a venue's models describes each dict its sync stores (every key a declared field)."""

    positions: Mapping[str, type[Detail]]
    """A position's ``extra``, by side (``collateral``, ``debt``, ``supply``, ``lp``, ``perp``)."""
    health: type[Detail]
    """A health's ``extra``."""
    markets: type[Detail] | None = None
    """A market's ``params`` (the reading's ``markets``), when the venue stores any."""
