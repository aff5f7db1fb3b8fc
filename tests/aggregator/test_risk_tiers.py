"""Risk in tiers (issue 14, item 4): the per-block tier (``assess_book(heavy=False)``) gives every wallet the same
unified health, scenario margin, first liquidation and liquidation prices as the full assessment, and leaves out
only the heavy measures (VaR / ES and the P&L grid), which the full one computes."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given, settings

from aggregator.risk import RiskInputs, assess_book, risk_documents
from tests.aggregator.test_risk_invariant import books

HEAVY = ("var_es", "pnl_grid")


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(books())
def test_the_per_block_tier_equals_the_full_assessment_less_the_heavy_measures(inputs: RiskInputs) -> None:
    full = risk_documents(inputs, *assess_book(inputs))
    light = risk_documents(inputs, *assess_book(inputs, heavy=False))
    assert len(full) == len(light) == inputs.book.n_wallets
    heavy_seen: list[bool] = []
    for f, li in zip(full, light, strict=True):
        for key in HEAVY:
            assert li[key] is None
        assert isinstance(f["var_es"], dict)  # (empty for a book with no risky factor)
        heavy_seen.append(bool(f["var_es"]) and f["pnl_grid"] is not None)
        rest_f = {k: v for k, v in f.items() if k not in HEAVY}
        rest_l = {k: v for k, v in li.items() if k not in HEAVY}
        assert _same(rest_f, rest_l), [k for k in rest_f if not _same(rest_f[k], rest_l.get(k))]
    HEAVY_SEEN.extend(heavy_seen)


HEAVY_SEEN: list[bool] = []


def test_the_examples_above_include_wallets_with_var_and_a_grid() -> None:
    """(Runs after the property test in the same module: its examples were not all stable-only books.)"""
    test_the_per_block_tier_equals_the_full_assessment_less_the_heavy_measures()
    assert any(HEAVY_SEEN)
