"""dYdX v4's lines in the cross-venue risk book: one perp margin account
(:func:`aggregator.venues.risk_lines.perp_accounts`)."""

from __future__ import annotations

from aggregator.venues.risk_lines import PERP_RULE_LABEL as RULE_LABEL
from aggregator.venues.risk_lines import perp_accounts as accounts

__all__ = ["RULE_LABEL", "accounts"]
