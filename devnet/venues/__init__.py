"""The devnet's venue parts: one module per venue, ``devnet/venues/<venue>.py``, whose ``PART`` is a
:class:`~devnet.parts.DevnetPart` (on-chain) or an :class:`~devnet.parts.ApiPart` (off-chain), in the order of
:data:`connectors.registry.VENUES` (the one list of venues).
"""

from __future__ import annotations

import importlib
from functools import cache

from connectors.registry import VENUES, venue_module
from devnet.parts import ApiPart, DevnetPart

__all__ = ["api_parts", "chain_parts", "part_of", "parts", "token_market"]


def part_of(venue: str) -> DevnetPart | ApiPart:
    """``venue``'s devnet part (``UnknownVenueError`` for a venue that is not registered)."""
    part = importlib.import_module(venue_module("devnet", venue)).PART
    if not isinstance(part, DevnetPart | ApiPart) or part.venue != venue:
        raise TypeError(f"devnet/venues/{venue}.py: PART is not the venue's DevnetPart or ApiPart")
    return part


@cache
def parts() -> tuple[DevnetPart | ApiPart, ...]:
    """Every venue's part, in registry order."""
    return tuple(part_of(v) for v in VENUES)


def chain_parts() -> tuple[DevnetPart, ...]:
    """The on-chain venues' parts, in registry order (the order they are deployed, seeded and priced in)."""
    return tuple(p for p in parts() if isinstance(p, DevnetPart))


def api_parts() -> tuple[ApiPart, ...]:
    """The off-chain venues' parts, in registry order (their routes in the local venue API)."""
    return tuple(p for p in parts() if isinstance(p, ApiPart))


def token_market() -> DevnetPart:
    """The part whose deployment brings the devnet's tokens (exactly one)."""
    found = [p for p in chain_parts() if p.market is not None]
    if len(found) != 1:
        raise LookupError(f"expected one devnet part with the token market, found {[p.venue for p in found]}")
    return found[0]
