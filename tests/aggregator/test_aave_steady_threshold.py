"""The Aave steady rule's average-threshold test (``aggregator.venues.aave_v3.incremental.average_threshold_holds``)
against the protocol's integer arithmetic: when it says the average liquidation threshold holds, no growth of the
collateral values within the drift (each then rounded by a unit) turns ``Σ value × threshold // Σ value``."""

from __future__ import annotations

import numpy as np

from aggregator.venues.aave_v3.incremental import average_threshold_holds

DRIFT = 1e-4 / 8
ACCOUNTS = 4_000
GROWTHS = 40


def test_the_average_threshold_said_to_hold_never_turns_under_growth_within_the_drift() -> None:
    rng = np.random.default_rng(20261208)
    holds = turns_caught = 0
    for _ in range(ACCOUNTS):
        n = int(rng.integers(2, 6))
        values = [int(10 ** float(rng.uniform(3, 14))) for _ in range(n)]  # base currency, 8 decimals: $1e-5 to $1e6
        lts = [int(rng.choice([6500, 7000, 7500, 7800, 8000, 8250, 8500, 8600, 9300, 9500])) for _ in range(n)]
        weighted = list(zip(values, lts, strict=True))
        before = sum(v * lt for v, lt in weighted) // sum(values)
        said = average_threshold_holds(weighted, DRIFT)
        holds += said
        turned = False
        for k in range(GROWTHS):
            # the extremes of the growth (one value grows by the whole drift, the others not at all) and random ones
            grow = (rng.random(n) * DRIFT if k >= n else np.eye(n)[k] * DRIFT)
            after_values = [max(int(v * (1 + g)) + int(rng.integers(-1, 2)), 0) for v, g in zip(values, grow,
                                                                                               strict=True)]
            after = sum(v * lt for v, lt in zip(after_values, lts, strict=True)) // max(sum(after_values), 1)
            turned |= after != before
            if said:
                assert after == before, (weighted, after_values, before, after)
        turns_caught += turned and not said
    print(f"\nheld {holds} of {ACCOUNTS}; turned under growth (and not said to hold) {turns_caught}")
    assert holds >= ACCOUNTS // 2  # the rule lets most multi-threshold accounts be steady
    assert turns_caught >= 10  # and the growth does turn the average, for the accounts it refuses
