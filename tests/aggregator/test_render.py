"""The CLI's check column (:func:`aggregator.render.check_text`): what it says for each kind of health figure."""

from __future__ import annotations

import dataclasses

from aggregator.render import check_text
from aggregator.views import VenueHealth

WALLET = "0x" + "11" * 20


def _health(matches: bool | None, **extra: object) -> VenueHealth:
    return VenueHealth(wallet=WALLET, venue="lender", kind="lending", health_factor=1.5, health_factor_raw=15 * 10**17,
                       onchain_health_factor_raw=None if matches is None else 15 * 10**17, matches_onchain=matches,
                       collateral_usd=3.0, debt_usd=1.6, liquidation_threshold=0.8, positions=(), extra=dict(extra))


def test_the_check_column_tells_a_recomputed_figure_from_one_with_no_venue_figure() -> None:
    assert check_text(_health(True)).plain == "exact"
    assert check_text(dataclasses.replace(_health(True), kind="perp")).plain == "agrees"
    assert check_text(_health(False)).plain == "MISMATCH"
    assert check_text(_health(None)).plain == "–"
    # block mode: computed from the cached state at a block that did not read the wallet
    assert check_text(_health(None, source="recomputed", verified_at_block=255)).plain == "recomputed"
    # a figure that was compared says how it compared, whatever else the detail holds
    assert check_text(_health(False, source="recomputed")).plain == "MISMATCH"
