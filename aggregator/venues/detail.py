"""What every venue's typed detail models share (``aggregator/venues/<venue>/detail.py``).

A venue stores, beside each position and each health, the figures of its own rule as JSON (``extra``). Its
``detail`` module describes them as pydantic models; the venue's risk, keeper and what-if parts read them
through those models (:func:`parse`) instead of by string key. The models name what the product reads and keep
the rest as it was stored (``extra="allow"``), so the stored JSON and every document stay as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict

__all__ = ["Detail", "PerpHealthDetail", "RawInt", "parse"]


class Detail(BaseModel):
    """Base of the venues' detail models: frozen, the stored keys the model does not name kept as they were."""

    model_config = ConfigDict(extra="allow", frozen=True)


_D = TypeVar("_D", bound=Detail)

RawInt = Annotated[int, BeforeValidator(lambda value: int(str(value)))]
"""An exact integer as a venue stores it: a JSON number or a decimal string (integers beyond 2**53 are stored as
strings)."""


def parse(model: type[_D], raw: Mapping[str, Any]) -> _D:
    """``raw`` (a stored ``extra``) as ``model``; a stored value of the wrong type is a ``pydantic`` error."""
    return model.model_validate(dict(raw))


class PerpHealthDetail(Detail):
    """A perp venue's account figures as the venue's rule computed them, in USD (``None``: not stored)."""

    equity_usd: float | None = None
    maintenance_margin_usd: float = 0.0
