"""What a registered venue must have in every layer, and a check that says which parts a venue lacks.

A venue is complete when each layer holds its part, in a module named after the venue (see
:mod:`connectors.registry`): its connector class, its pure rules in riskcore, and its plugin — configuration
model, how it opens and evaluates a snapshot, its lines in the cross-venue risk book, its keeper and what-if
parts — and its part of the local devnet (found by name, never imported by the product beyond this check).
:func:`missing_parts` lists what is absent or malformed; the completeness test runs it for every registered venue,
so a venue that lacks a part is a red test, never a venue silently skipped in risk or the sync.
"""

from __future__ import annotations

import importlib
import typing
from types import ModuleType

from aggregator.venues.detail import Detail, StoredDetails
from aggregator.venues.plugin import VenuePlugin
from connectors import registry
from connectors.registry import venue_module

__all__ = ["PARTS", "missing_parts"]

PARTS: tuple[str, ...] = (
    "connectors/<venue>/connector.py: CONNECTOR, a connector class whose capabilities name the venue",
    "riskcore/venues/<venue>/: the venue's own rules, a non-empty __all__",
    "aggregator/venues/<venue>/__init__.py: PLUGIN, a VenuePlugin whose config model's type is the venue",
    "aggregator/venues/<venue>/sync.py: evaluate(snapshot, …), the snapshot's health by the venue's own rule",
    "aggregator/venues/<venue>/risk.py: accounts(snapshot, factor), the venue's lines in the risk book",
    "aggregator/venues/<venue>/keeper.py: KEEPER, the planner's venues from the venue's snapshot, and how the keeper"
    " acts on the venue (target, validate, call, spender_name, health_reads; NoActions where it declares none)",
    "aggregator/venues/<venue>/detail.py: the typed models of what the venue stores with its positions, health and"
    " markets, and STORED, which model describes which (its sync writes through them)",
    "aggregator/venues/<venue>/whatif.py: WHATIF, the what-if part (the changes it takes, how it opens its snapshot)",
    "devnet/venues/<venue>.py: PART, the venue on the local devnet (on-chain: its deployer and seeding; off-chain: "
    "its routes in the local venue API)",
)
"""Every part a venue must have, in words (the README's "Adding a venue" lists the same files)."""


def _module(name: str, problems: list[str]) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and name.startswith(exc.name):
            problems.append(f"{name.replace('.', '/')}: missing")
            return None
        raise


def missing_parts(venue: str) -> list[str]:
    """What ``venue`` lacks: one line per missing or malformed part (empty when the venue is complete)."""
    problems: list[str] = []
    if venue not in registry.VENUES:
        return [f"{venue}: not in connectors.registry.VENUES"]
    connector = _module(venue_module("connectors", venue, "connector"), problems)
    if connector is not None:
        cls = getattr(connector, "CONNECTOR", None)
        caps = getattr(cls, "capabilities", None)
        if cls is None:
            problems.append(f"connectors/{venue}/connector.py: no CONNECTOR")
        elif getattr(caps, "venue_type", None) != venue:
            problems.append(f"connectors/{venue}/connector.py: CONNECTOR's capabilities do not name {venue!r}")
    rules = _module(venue_module("riskcore", venue), problems)
    if rules is not None and not getattr(rules, "__all__", None):
        problems.append(f"riskcore/venues/{venue}/: empty __all__")
    package = _module(venue_module("aggregator", venue), problems)
    if package is not None:
        plugin = getattr(package, "PLUGIN", None)
        if not isinstance(plugin, VenuePlugin):
            problems.append(f"aggregator/venues/{venue}/__init__.py: PLUGIN is not a VenuePlugin")
        else:
            if plugin.venue_type != venue:
                problems.append(f"aggregator/venues/{venue}: PLUGIN.venue_type is {plugin.venue_type!r}")
            literal = plugin.config_model.model_fields["type"].annotation
            if typing.get_args(literal) != (venue,):
                problems.append(f"aggregator/venues/{venue}: the config model's type is not Literal[{venue!r}]")
    sync = _module(venue_module("aggregator", venue, "sync"), problems)
    if sync is not None and not callable(getattr(sync, "evaluate", None)):
        problems.append(f"aggregator/venues/{venue}/sync.py: no evaluate")
    risk = _module(venue_module("aggregator", venue, "risk"), problems)
    if risk is not None and not callable(getattr(risk, "accounts", None)):
        problems.append(f"aggregator/venues/{venue}/risk.py: no accounts")
    detail = _module(venue_module("aggregator", venue, "detail"), problems)
    models = [getattr(detail, n, None) for n in getattr(detail, "__all__", ())] if detail is not None else []
    if detail is not None and not any(isinstance(m, type) and issubclass(m, Detail) for m in models):
        problems.append(f"aggregator/venues/{venue}/detail.py: no Detail model in __all__")
    if detail is not None and not isinstance(getattr(detail, "STORED", None), StoredDetails):
        problems.append(f"aggregator/venues/{venue}/detail.py: no STORED (the models of what its sync stores)")
    keeper = _module(venue_module("aggregator", venue, "keeper"), problems)
    if keeper is not None:
        part = getattr(keeper, "KEEPER", None)
        if not callable(getattr(part, "planner_venues", None)):
            problems.append(f"aggregator/venues/{venue}/keeper.py: no KEEPER with planner_venues")
        else:
            lacking = [m for m in _KEEPER_ACTIONS if not callable(getattr(part, m, None))]
            if lacking:
                problems.append(f"aggregator/venues/{venue}/keeper.py: KEEPER has no {', '.join(lacking)}")
    whatif = _module(venue_module("aggregator", venue, "whatif"), problems)
    wpart = getattr(whatif, "WHATIF", None)
    if whatif is not None and not (callable(getattr(wpart, "open", None))
                                   and isinstance(getattr(wpart, "actions", None), tuple)):
        problems.append(f"aggregator/venues/{venue}/whatif.py: no WHATIF with actions and open")
    devnet = _module(venue_module("devnet", venue), problems)
    if devnet is not None:
        dpart = getattr(devnet, "PART", None)
        if getattr(dpart, "venue", None) != venue or getattr(dpart, "kind", None) not in ("chain", "api"):
            problems.append(f"devnet/venues/{venue}.py: PART is not the venue's DevnetPart or ApiPart")
    return problems


_KEEPER_ACTIONS = ("target", "validate", "call", "spender_name", "health_reads")
"""How the keeper acts on a venue (:class:`aggregator.keeper.plugin.VenueKeeper`)."""
