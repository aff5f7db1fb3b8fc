"""Alert rules: what each kind watches, and the state machine that keeps a rule from flapping.

Kinds and their parameters (``xmargin alert add``):

=============================== ============================== ===============================================
kind                            parameters                     value watched (from the newest sync)
=============================== ============================== ===============================================
``venue_health_below``          ``venue``, ``threshold``        the venue's health factor (no debt: no value)
``unified_health_below``        ``threshold``                   the netting engine's unified health
``move_to_liquidation_below``   ``threshold`` (percent)         smallest uniform move of every price, down or
                                                                up, that liquidates a venue, in percent
``oracle_invalid``              ``asset`` (optional)            number of the wallet's prices flagged stale,
                                                                zero, negative, old round or jump, plus
                                                                healths flagged ``bad_oracle``
``price_cross``                 ``asset``, ``level``,           the asset's price in USD (the wallet's venues'
                                ``direction`` (above/below)     oracle in the newest sync)
=============================== ============================== ===============================================

State machine (per rule, stored with the rule): a rule is *armed* (``active`` false) or *latched*
(``active`` true). An armed rule whose condition holds fires — unless its last firing is less than
``cooldown_s`` ago, in which case it stays armed and fires at the first evaluation after the cooldown if
the condition still holds — and latches. A latched rule re-arms only when the value is back beyond the
threshold by at least ``hysteresis`` (in the value's own unit: health, percent or USD), so a value that
oscillates around the threshold fires once. Each firing opens a new *episode*; the alert's event id is
(rule, episode), so the same firing is stored and delivered once even if a sync is evaluated twice.
A missing value (a venue not read, no risk result) changes nothing; a venue without debt counts as infinitely
healthy (the rule re-arms).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from db import LatestVenueHealth, RiskRow, RuleRow

__all__ = [
    "ORACLE_FLAGS",
    "Evaluation",
    "Observation",
    "RuleParams",
    "evaluate_rule",
    "event_id",
    "observe",
    "validate_params",
]

RuleKind = Literal[
    "venue_health_below", "unified_health_below", "move_to_liquidation_below", "oracle_invalid", "price_cross"
]
ORACLE_FLAGS = frozenset({"stale", "zero", "negative", "old_round", "jump", "bad_oracle"})
"""Price or health flags that make a price (or a health computed from it) invalid."""


class RuleParams(BaseModel):
    """A rule's parameters, validated per kind (see the module table)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: RuleKind
    venue: str | None = None
    threshold: float | None = None
    asset: str | None = None
    level: Annotated[float, Field(gt=0)] | None = None
    direction: Literal["above", "below"] | None = None

    @model_validator(mode="after")
    def _fields_of_kind(self) -> RuleParams:
        need = {
            "venue_health_below": ("venue", "threshold"),
            "unified_health_below": ("threshold",),
            "move_to_liquidation_below": ("threshold",),
            "oracle_invalid": (),
            "price_cross": ("asset", "level", "direction"),
        }[self.kind]
        missing = [f for f in need if getattr(self, f) is None]
        if missing:
            raise ValueError(f"rule {self.kind} needs {', '.join(missing)}")
        if self.threshold is not None and (not math.isfinite(self.threshold) or self.threshold <= 0):
            raise ValueError("threshold must be a positive number")
        return self

    def stored(self) -> dict[str, Any]:
        """The parameters as stored with the rule (without the kind and unset fields)."""
        return self.model_dump(exclude={"kind"}, exclude_none=True)


def validate_params(kind: str, params: Mapping[str, Any]) -> RuleParams:
    """Parse a rule's parameters; ``ValueError`` with a readable message when they do not fit the kind."""
    try:
        return RuleParams.model_validate({"kind": kind, **params})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or kind}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"invalid {kind} rule: {problems}") from None


@dataclass(frozen=True, slots=True)
class Observation:
    """What the newest sync says about one wallet, for the rules."""

    wallet: str
    chain_id: int | None
    block_number: int | None
    venue_health: Mapping[str, float | None]
    """Venue → health factor (``None``: no debt); error snapshots are absent."""
    unified_health: float | None
    move_to_liquidation_pct: float | None
    prices_usd: Mapping[str, float]
    """Symbol → USD price (unflagged observations)."""
    oracle_problems: Mapping[str, tuple[str, ...]]
    """Symbol (or ``venue:<name>`` for a health) → invalid-oracle flags."""


@dataclass(frozen=True, slots=True)
class Evaluation:
    """A rule's outcome at one observation: its new state, and whether it fires now."""

    active: bool
    episode: int
    value: float | None
    fires: bool
    last_fired_at: datetime | None
    threshold: float | None
    message: str


def observe(wallet: str, latest: Sequence[LatestVenueHealth], risk: RiskRow | None) -> Observation:
    """Collect the rules' inputs from the store's newest snapshots and risk result of ``wallet``."""
    venue_health: dict[str, float | None] = {}
    prices: dict[str, float] = {}
    problems: dict[str, set[str]] = {}
    chain_id = block = None
    for item in latest:
        snap = item.snapshot
        if item.health is None:
            continue
        chain_id, block = snap.chain_id, max(block or 0, snap.block_number)
        venue_health[item.venue] = item.health.health_factor
        bad = ORACLE_FLAGS.intersection(item.health.flags)
        if bad:
            problems.setdefault(f"venue:{item.venue}", set()).update(bad)
        for price in item.prices:
            symbol = price.asset.symbol
            flagged = ORACLE_FLAGS.intersection(price.flags)
            if flagged:
                problems.setdefault(symbol, set()).update(flagged)
            elif price.price_usd > 0:
                prices.setdefault(symbol, price.price_usd)
    move = None
    unified = None
    if risk is not None:
        unified = risk.unified_health
        first = risk.document.get("first_liquidation") or {}
        moves = [abs(side["move"]) for side in first.values()
                 if isinstance(side, dict) and side.get("move") is not None]  # 0.0: already liquidatable
        move = min(moves) * 100 if moves else None
    return Observation(
        wallet=wallet, chain_id=chain_id, block_number=block, venue_health=venue_health, unified_health=unified,
        move_to_liquidation_pct=move, prices_usd=prices,
        oracle_problems={k: tuple(sorted(v)) for k, v in problems.items()},
    )


def _value(params: RuleParams, obs: Observation) -> tuple[float | None, bool, bool, str]:
    """(value, condition holds, clear of the condition by the hysteresis, what) for one observation."""
    kind = params.kind
    if kind == "oracle_invalid":
        keys = [k for k in obs.oracle_problems if params.asset is None or k in (params.asset, f"venue:{params.asset}")]
        count = float(sum(len(obs.oracle_problems[k]) for k in keys))
        what = ", ".join(f"{k} {'/'.join(obs.oracle_problems[k])}" for k in sorted(keys)) or "all oracles valid"
        return count, count > 0, count == 0, what
    if kind == "price_cross":
        assert params.asset is not None
        assert params.level is not None
        price = obs.prices_usd.get(params.asset)
        if price is None:
            return None, False, False, ""
        return price, False, False, f"{params.asset} ${price:,.2f}"
    value: float | None
    if kind == "venue_health_below":
        assert params.venue is not None
        if params.venue not in obs.venue_health:  # not read in the newest sync: no value
            return None, False, False, ""
        health = obs.venue_health[params.venue]
        value = math.inf if health is None else health  # no debt: as healthy as it gets (the rule re-arms)
        what = f"{params.venue} health"
    elif kind == "unified_health_below":
        value, what = obs.unified_health, "unified health"
    else:
        value, what = obs.move_to_liquidation_pct, "move to first liquidation (%)"
    if value is None:
        return None, False, False, ""
    return value, False, False, f"{what} {value:.4f}"


def evaluate_rule(rule: RuleRow, obs: Observation, now: datetime) -> Evaluation:
    """Advance one rule's state machine (see the module docstring) with ``obs``."""
    params = validate_params(rule.kind, rule.params)
    value, on, off, what = _value(params, obs)
    h = rule.hysteresis
    threshold = params.threshold
    if value is not None and params.kind in ("venue_health_below", "unified_health_below",
                                              "move_to_liquidation_below"):
        assert threshold is not None
        on, off = value < threshold, value >= threshold + h
    elif value is not None and params.kind == "price_cross":
        assert params.level is not None
        threshold = params.level
        if params.direction == "below":
            on, off = value < threshold, value >= threshold + h
        else:
            on, off = value > threshold, value <= threshold - h
    active, episode, fired_at, fires = rule.active, rule.episode, rule.last_fired_at, False
    if value is not None:
        if active and off:
            active = False
        elif not active and on:
            cooled = fired_at is None or now - fired_at >= timedelta(seconds=rule.cooldown_s)
            if cooled:
                active, episode, fired_at, fires = True, episode + 1, now, True
    message = ""
    if fires:
        message = f"{obs.wallet}: {_describe(params, threshold)} — {what}"
    return Evaluation(active=active, episode=episode, value=value, fires=fires, last_fired_at=fired_at,
                      threshold=threshold, message=message)


def _describe(params: RuleParams, threshold: float | None) -> str:
    if params.kind == "venue_health_below":
        return f"{params.venue} health below {threshold:g}"
    if params.kind == "unified_health_below":
        return f"unified health below {threshold:g}"
    if params.kind == "move_to_liquidation_below":
        return f"a {threshold:g}% move liquidates"
    if params.kind == "oracle_invalid":
        return "invalid oracle price" + (f" for {params.asset}" if params.asset else "")
    return f"{params.asset} {params.direction} ${threshold:,.2f}"


def event_id(rule_id: int, episode: int) -> str:
    """The stable id of a rule's ``episode``-th firing (receivers dedupe on it)."""
    return f"xmargin-rule-{rule_id}-episode-{episode}"
