"""Scenario sets: SPAN and Deribit grids against hand-worked multipliers, history with EWMA scaling, stresses."""

from __future__ import annotations

import math

import numpy as np
import pytest

from riskcore.assets import DEFAULT_ASSET_MAP
from riskcore.ewma import ewma_volatility
from riskcore.scenarios import (
    DERIBIT_VOL_TERM,
    ScenarioSet,
    VolTermScaling,
    correlation_breakdown,
    deribit_grid,
    fhs_volatility,
    historical_scenarios,
    price_vol_grid,
    scan_ranges,
    span_scenarios,
    user_scenarios,
)

T3, T23 = 1 / 3, 2 / 3


# --- SPAN ------------------------------------------------------------------------------------------------------


def test_span_one_underlying_hand_worked() -> None:
    # ETH scan range 12%, vol scan 10 points.
    s = span_scenarios(["ETH"], 0.12, 0.10)
    assert s.n_scenarios == len(s) == 16
    assert s.underlyings == ("ETH",)
    expected = [1, 1, 1.04, 1.04, 0.96, 0.96, 1.08, 1.08, 0.92, 0.92, 1.12, 1.12, 0.88, 0.88, 1.24, 0.76]
    np.testing.assert_allclose(s.price_multipliers[:, 0], expected, rtol=0, atol=1e-15)
    np.testing.assert_allclose(s.vol_shift[:, 0], [0.1, -0.1] * 7 + [0, 0], atol=1e-15)
    np.testing.assert_array_equal(s.weights, [1.0] * 14 + [0.35] * 2)
    np.testing.assert_array_equal(s.vol_shift_relative, 0.0)
    assert s.names[0] == "SPAN ETH 01"
    assert s.names[-1] == "SPAN ETH 16"
    assert s.horizon_days == 1.0
    assert s.vol_term is None
    assert set(s.groups) == {"ETH"}


def test_span_two_underlyings_per_underlying_and_joint() -> None:
    s = span_scenarios(("ETH", "BTC"), [0.12, 0.09], vol_scan=[0.10, 0.08])
    assert len(s) == 48
    assert s.groups == ("ETH",) * 16 + ("BTC",) * 16 + ("joint",) * 16
    eth, btc, joint = s.subset(slice(0, 16)), s.subset(slice(16, 32)), s.subset(slice(32, 48))
    # Per-underlying blocks move one underlying, the other is unchanged (price and vol).
    np.testing.assert_array_equal(eth.price_multipliers[:, 1], 1.0)
    np.testing.assert_array_equal(eth.vol_shift[:, 1], 0.0)
    np.testing.assert_array_equal(btc.price_multipliers[:, 0], 1.0)
    np.testing.assert_array_equal(btc.vol_shift[:, 0], 0.0)
    btc_expected = [1, 1, 1.03, 1.03, 0.97, 0.97, 1.06, 1.06, 0.94, 0.94, 1.09, 1.09, 0.91, 0.91, 1.18, 0.82]
    np.testing.assert_allclose(btc.price_multipliers[:, 1], btc_expected, atol=1e-15)
    np.testing.assert_allclose(btc.vol_shift[:, 1], [0.08, -0.08] * 7 + [0, 0], atol=1e-15)
    # Joint: both move the same fraction of their own scan range, same vol direction.
    np.testing.assert_allclose(joint.price_multipliers[10], [1.12, 1.09], atol=1e-15)  # scenario 11
    np.testing.assert_allclose(joint.price_multipliers[13], [0.88, 0.91], atol=1e-15)  # scenario 14
    np.testing.assert_allclose(joint.price_multipliers[15], [0.76, 0.82], atol=1e-15)  # scenario 16
    np.testing.assert_allclose(joint.vol_shift[13], [-0.10, -0.08], atol=1e-15)
    np.testing.assert_array_equal(joint.weights, s.weights[:16])
    assert joint.names[2] == "SPAN joint 03"
    assert len(span_scenarios(("ETH", "BTC"), 0.1, joint=False)) == 32


def test_span_extreme_multiple_and_weight_are_parameters() -> None:
    s = span_scenarios(["ETH"], 0.1, extreme_multiple=3.0, extreme_weight=0.3)
    np.testing.assert_allclose(s.price_multipliers[14:, 0], [1.3, 0.7])
    np.testing.assert_allclose(s.weights[14:], 0.3)
    with pytest.raises(ValueError, match="below -100%"):
        span_scenarios(["ETH"], 0.6)  # −2 × 60% = −120%


def test_span_worst_loss_of_a_short_straddle_hand_case() -> None:
    # Linear long 1 ETH at $3,000, scan 10%: worst loss is scenario 13/14 (−10%) = $300, not the extreme
    # (−20% × 0.35 = $210).
    s = span_scenarios(["ETH"], 0.10)
    pnl = 3_000.0 * (s.price_multipliers[:, 0] - 1.0)
    loss = np.max(-pnl * s.weights)
    assert loss == pytest.approx(300.0)
    assert s.names[int(np.argmax(-pnl * s.weights))] in {"SPAN ETH 13", "SPAN ETH 14"}


# --- Deribit -------------------------------------------------------------------------------------------------


def test_deribit_grid_one_underlying_hand_worked() -> None:
    g = deribit_grid(["BTC"])
    assert len(g) == 9 * 3 + 8 == 35
    core = g.subset(slice(0, 27))
    moves = np.repeat([-0.16, -0.12, -0.08, -0.04, 0.0, 0.04, 0.08, 0.12, 0.16], 3)
    np.testing.assert_allclose(core.price_multipliers[:, 0], 1 + moves, atol=1e-15)
    np.testing.assert_array_equal(core.vol_shift_relative[:, 0], [0.5, 0.0, -0.25] * 9)
    np.testing.assert_array_equal(core.weights, 1.0)
    np.testing.assert_array_equal(g.vol_shift, 0.0)
    ext = g.subset(slice(27, 35))
    np.testing.assert_allclose(ext.price_multipliers[:, 0], [0.34, 0.67, 1.5, 2, 3, 4, 5, 6], atol=1e-15)
    np.testing.assert_array_equal(ext.vol_shift_relative[:, 0], 0.5)
    np.testing.assert_array_equal(ext.weights, 0.5)
    assert g.names[0] == "DRB BTC -4/4R vol +0.5"
    assert g.names[13] == "DRB BTC +0/4R vol +0"
    assert g.names[27] == "DRB BTC ext -0.66 vol +0.5"
    assert g.vol_term == DERIBIT_VOL_TERM


def test_deribit_grid_two_underlyings() -> None:
    g = deribit_grid(("BTC", "ETH"), range_=[0.16, 0.20], extended_weight=0.25)
    assert len(g) == 3 * 35
    assert g.groups == ("BTC",) * 35 + ("ETH",) * 35 + ("joint",) * 35
    eth = g.subset([n for n in g.names if n.startswith("DRB ETH ")])
    np.testing.assert_array_equal(eth.price_multipliers[:, 0], 1.0)
    np.testing.assert_array_equal(eth.vol_shift_relative[:, 0], 0.0)
    np.testing.assert_allclose(eth.price_multipliers[:27:3, 1], 1 + np.linspace(-0.2, 0.2, 9), atol=1e-15)
    joint = g.subset(slice(70, 105))
    np.testing.assert_allclose(joint.price_multipliers[0], [0.84, 0.80], atol=1e-15)  # −4/4 of each range
    np.testing.assert_allclose(joint.price_multipliers[26], [1.16, 1.20], atol=1e-15)
    np.testing.assert_allclose(joint.price_multipliers[28], [0.67, 0.67], atol=1e-15)  # extended −33% for both
    np.testing.assert_array_equal(joint.vol_shift_relative[1], [0.0, 0.0])
    np.testing.assert_array_equal(g.weights[27:35], 0.25)


def test_deribit_vol_states_scale_with_expiry_and_floor_the_up_shock() -> None:
    g = deribit_grid(["ETH"], extended_moves=())
    up, same, down = (g.names.index(f"DRB ETH +0/4R vol {s}") for s in ("+0.5", "+0", "-0.25"))
    vols = np.array([0.8, 0.8, 0.2, 0.8])
    dte = np.array([30.0, 7.5, 60.0, 0.0])  # 0 days: floored at one hour
    out = g.shocked_vols(vols, np.zeros(4, dtype=int), days_to_expiry=dte)
    assert out.shape == (len(g), 4)
    g7 = 4.0**0.3
    g60 = 0.5**0.13
    np.testing.assert_allclose(out[up, :3], [1.2, 0.8 * (1 + 0.5 * g7), 0.5])  # 0.2·(1 + 0.5·0.914) < 0.5 floor
    np.testing.assert_allclose(out[same, :3], [0.8, 0.8, 0.2])
    np.testing.assert_allclose(out[down, :3], [0.6, 0.8 * (1 - 0.25 * g7), 0.2 * (1 - 0.25 * g60)])
    assert out[down, 3] == 0.0  # (30 / (1/24))^0.3 > 4: the down shock would go negative → floored at 0
    with pytest.raises(ValueError, match="days_to_expiry"):
        g.shocked_vols(vols, np.zeros(4, dtype=int))


def test_vol_term_factor() -> None:
    t = VolTermScaling()
    np.testing.assert_allclose(t.factor([30.0, 15.0, 60.0]), [1.0, 2.0**0.3, 0.5**0.13])


# --- ScenarioSet ---------------------------------------------------------------------------------------------


def _set(**kw: object) -> ScenarioSet:
    args: dict[str, object] = {
        "names": ("a", "b"),
        "underlyings": ("ETH", "BTC"),
        "price_multipliers": [[0.9, 1.0], [1.1, 0.8]],
        "vol_shift": [0.1, -0.05],
        "horizon_days": 1.0,
    }
    args.update(kw)
    return ScenarioSet(**args)  # type: ignore[arg-type]


def test_scenario_set_defaults_and_read_only_arrays() -> None:
    s = _set()
    np.testing.assert_array_equal(s.vol_shift, [[0.1, 0.1], [-0.05, -0.05]])  # (S,) broadcast to (S, U)
    np.testing.assert_array_equal(s.weights, [1.0, 1.0])
    np.testing.assert_array_equal(s.vol_shift_relative, 0.0)
    assert s.groups == ("all", "all")
    with pytest.raises(ValueError, match="read-only"):
        s.price_multipliers[0, 0] = 2.0
    np.testing.assert_allclose(s.shocked_prices([3_000.0, 60_000.0]), [[2_700, 60_000], [3_300, 48_000]])
    np.testing.assert_allclose(s.shocked_prices([10.0, 20.0, 30.0], [1, 0, 1]), [[10, 18, 30], [8, 22, 24]])
    np.testing.assert_allclose(s.shocked_vols([0.5, 0.04], [0, 1]), [[0.6, 0.14], [0.45, 0.0]])
    assert s.index_of("BTC") == 1
    with pytest.raises(KeyError):
        s.index_of("SOL")


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"names": ("a", "a")}, "unique"),
        ({"underlyings": ("ETH", "ETH")}, "unique"),
        ({"price_multipliers": [[0.9, 1.0]]}, "shape"),
        ({"price_multipliers": [[-0.1, 1.0], [1.0, 1.0]]}, ">= 0"),
        ({"price_multipliers": [[np.nan, 1.0], [1.0, 1.0]]}, "finite"),
        ({"weights": [1.0, 1.5]}, r"\[0, 1\]"),
        ({"horizon_days": 0.0}, "positive"),
        ({"vol_shift_relative": [-1.0, 0.0]}, "> -1"),
        ({"groups": ("x",)}, "groups"),
    ],
)
def test_scenario_set_validation(kw: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _set(**kw)


def test_subset_by_names_indices_mask_and_slice() -> None:
    s = span_scenarios(["ETH"], 0.1)
    assert s.subset(["SPAN ETH 16", "SPAN ETH 01"]).names == ("SPAN ETH 16", "SPAN ETH 01")
    assert s.subset([2, 3]).names == ("SPAN ETH 03", "SPAN ETH 04")
    mask = s.weights < 1
    sub = s.subset(mask)
    assert sub.names == ("SPAN ETH 15", "SPAN ETH 16")
    np.testing.assert_array_equal(sub.weights, [0.35, 0.35])
    assert len(s.subset(slice(None, None, 2))) == 8
    with pytest.raises(KeyError):
        s.subset(["nope"])


def test_concat_unions_factors_and_leaves_missing_ones_unchanged() -> None:
    a = span_scenarios(["ETH"], 0.1)
    b = deribit_grid(["BTC"], extended_moves=())
    c = ScenarioSet.concat(a, b)
    assert c.underlyings == ("ETH", "BTC")
    assert len(c) == 16 + 27
    np.testing.assert_array_equal(c.price_multipliers[:16, 1], 1.0)
    np.testing.assert_array_equal(c.price_multipliers[16:, 0], 1.0)
    np.testing.assert_array_equal(c.vol_shift[:16, 0], a.vol_shift[:, 0])
    np.testing.assert_array_equal(c.vol_shift_relative[16:, 1], b.vol_shift_relative[:, 0])
    assert c.vol_term == DERIBIT_VOL_TERM
    assert c.groups[:16] == a.groups
    with pytest.raises(ValueError, match="horizons"):
        ScenarioSet.concat(a, span_scenarios(["ETH"], 0.1, horizon_days=3.0))
    with pytest.raises(ValueError, match="unique"):
        ScenarioSet.concat(a, a)
    other = deribit_grid(["ETH"], extended_moves=(), vol_term=VolTermScaling(min_vol_up=0.3))
    with pytest.raises(ValueError, match="VolTermScaling"):
        ScenarioSet.concat(b, other)


def test_token_multipliers_combine_underlying_and_basis() -> None:
    s = user_scenarios(
        ("ETH", "stETH/ETH", "USDC/USD"),
        {"crash": {"ETH": -0.3, "stETH/ETH": -0.05}, "usdc": {"USDC/USD": -0.13}},
    )
    m = s.token_multipliers(["WETH", "wstETH", "stETH", "USDC", "USDT", "USD"])
    np.testing.assert_allclose(m, [[0.7, 0.665, 0.665, 1, 1, 1], [1, 1, 1, 0.87, 1, 1]])
    with pytest.raises(KeyError, match="BTC"):
        s.token_multipliers(["WBTC"])


# --- Dynamic scan ranges and EWMA ------------------------------------------------------------------------------


def test_scan_ranges_floored_monotone_and_horizon_scaled() -> None:
    vol = np.array([0.01, 0.03, 0.05])
    out = scan_ranges(vol, 1.0, k=3.0, floors=0.08)
    np.testing.assert_allclose(out, [0.08, 0.09, 0.15])
    np.testing.assert_allclose(scan_ranges(vol, 4.0, k=3.0), [0.06, 0.18, 0.30])  # ×√4
    np.testing.assert_allclose(scan_ranges(vol, 1.0, k=3.0, floors=[0.0, 0.1, 0.0], caps=0.12), [0.03, 0.1, 0.12])
    grid = np.linspace(0, 0.2, 101)
    ranges = scan_ranges(grid, 1.0, floors=0.05)
    assert np.all(np.diff(ranges) >= 0)
    assert np.all(ranges >= 0.05)
    with pytest.raises(ValueError, match="caps"):
        scan_ranges(vol, floors=0.1, caps=0.05)


def test_margin_tightens_as_volatility_rises() -> None:
    # A long 1 ETH position's SPAN worst loss, as ETH's EWMA vol rises: flat at the floor, then increasing.
    losses = []
    for vol in (0.005, 0.01, 0.02, 0.04, 0.06):
        s = span_scenarios(["ETH"], scan_ranges(np.array([vol]), floors=0.05, caps=0.45))
        losses.append(float(np.max(-3_000.0 * (s.price_multipliers[:, 0] - 1) * s.weights)))
    np.testing.assert_allclose(losses, [150.0, 150.0, 180.0, 360.0, 540.0])


def test_fhs_volatility_hand_worked() -> None:
    r = np.array([[0.01], [-0.02], [0.03]])
    then, now = fhs_volatility(r, lam=0.5, initial_vol=0.01)
    # σ² : 1e-4 → 0.5e-4 + 0.5e-4 = 1e-4 → 0.5e-4 + 2e-4 = 2.5e-4 → 1.25e-4 + 4.5e-4 = 5.75e-4
    np.testing.assert_allclose(then[:, 0], np.sqrt([1e-4, 1e-4, 2.5e-4]))
    np.testing.assert_allclose(now, np.sqrt([5.75e-4]))


def test_fhs_volatility_is_riskcore_ewma_shifted_one_bar() -> None:
    r = np.random.default_rng(3).normal(0, 0.03, size=(200, 3))
    then, now = fhs_volatility(r)
    ewma = ewma_volatility(r)  # forecast for t + 1, seeded on the first 30 bars
    np.testing.assert_allclose(then[1:], ewma[:-1], rtol=1e-13)
    np.testing.assert_allclose(now, ewma[-1], rtol=1e-13)
    np.testing.assert_allclose(then[0], np.sqrt(np.mean(r[:30] ** 2, axis=0)), rtol=1e-13)


def test_fhs_volatility_skips_missing_returns() -> None:
    r = np.array([[np.nan, 0.01], [0.02, np.nan], [0.04, 0.03]])
    then, now = fhs_volatility(r, lam=0.5, seed_days=2)
    # column 0 seeds on (0.02, 0.04): σ² = 1e-3; the NaN leaves it unchanged.
    np.testing.assert_allclose(then[:, 0] ** 2, [1e-3, 1e-3, 0.5e-3 + 0.5 * 4e-4])
    np.testing.assert_allclose(then[:, 1] ** 2, [5e-4, 0.5 * 5e-4 + 0.5 * 1e-4, 3e-4])
    np.testing.assert_allclose(now**2, [0.5 * 7e-4 + 0.5 * 16e-4, 0.5 * 3e-4 + 0.5 * 9e-4])


# --- Historical ------------------------------------------------------------------------------------------------

R = np.array([[0.01, 0.02], [-0.02, 0.0], [0.03, -0.01], [0.0, 0.04]])
DATES = np.array(["2020-03-10", "2020-03-11", "2020-03-12", "2020-03-13"], dtype="datetime64[D]")


def test_historical_one_day_unscaled() -> None:
    s = historical_scenarios(("ETH", "BTC"), R, DATES, 1)
    np.testing.assert_allclose(s.price_multipliers, np.exp(R))
    assert s.names == ("HIST 1d 2020-03-10", "HIST 1d 2020-03-11", "HIST 1d 2020-03-12", "HIST 1d 2020-03-13")
    assert s.horizon_days == 1.0
    assert s.groups == ("historical",) * 4
    np.testing.assert_array_equal(s.weights, 1.0)


def test_historical_three_day_with_ewma_scaling() -> None:
    # ETH's vol today is twice its vol then on every day; BTC's vol was 0.02 on the first two days, 0.04 after,
    # and is 0.02 today: the later BTC returns are halved.
    vol_then = np.array([[0.01, 0.02], [0.01, 0.02], [0.01, 0.04], [0.01, 0.04]])
    vol_now = np.array([0.02, 0.02])
    s = historical_scenarios(("ETH", "BTC"), R, DATES, 3, vol_now=vol_now, vol_then=vol_then)
    assert len(s) == 2
    assert s.horizon_days == 3.0
    eth = [2 * (0.01 - 0.02 + 0.03), 2 * (-0.02 + 0.03 + 0.0)]
    btc = [0.02 + 0.0 - 0.01 / 2, 0.0 - 0.01 / 2 + 0.04 / 2]
    np.testing.assert_allclose(s.price_multipliers, np.exp(np.column_stack([eth, btc])), rtol=1e-14)
    assert s.names == ("HIST 3d 2020-03-12", "HIST 3d 2020-03-13")


def test_historical_missing_returns_dropped_or_unchanged() -> None:
    r = R.copy()
    r[0, 1] = np.nan  # BTC not listed on the first day
    dropped = historical_scenarios(("ETH", "BTC"), r, DATES, 2)
    assert dropped.names == ("HIST 2d 2020-03-12", "HIST 2d 2020-03-13")
    kept = historical_scenarios(("ETH", "BTC"), r, DATES, 2, missing="unchanged")
    assert len(kept) == 3
    np.testing.assert_allclose(kept.price_multipliers[0], [math.exp(-0.01), 1.0])


def test_historical_validation() -> None:
    with pytest.raises(ValueError, match="both"):
        historical_scenarios(("ETH", "BTC"), R, DATES, 1, vol_now=[0.1, 0.1])
    with pytest.raises(ValueError, match="increasing"):
        historical_scenarios(("ETH", "BTC"), R, DATES[::-1], 1)
    with pytest.raises(ValueError, match="whole number"):
        historical_scenarios(("ETH", "BTC"), R, DATES, 1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="window"):
        historical_scenarios(("ETH", "BTC"), R, DATES, 5)
    with pytest.raises(ValueError, match="positive"):
        historical_scenarios(("ETH", "BTC"), R, DATES, 1, vol_now=[0.1, 0.1], vol_then=np.zeros((4, 2)))


# --- Stress and user scenarios ---------------------------------------------------------------------------------


def test_correlation_breakdown_hand_worked() -> None:
    factors = ("ETH", "BTC", "stETH/ETH", "USDC/USD", "USDT/USD", "USD")
    s = correlation_breakdown(factors, risky_drop={"BTC": 0.25}, vol_shift=0.2)
    assert s.names == (
        "BREAK crash",
        "BREAK crash + USDC/USD depeg",
        "BREAK crash + USDT/USD depeg",
        "BREAK USDC/USD depeg",
        "BREAK USDT/USD depeg",
    )
    crash = [0.70, 0.75, 0.95, 1.0, 1.0, 1.0]  # ETH default 30%, BTC 25%, stETH basis 5% from the asset map
    np.testing.assert_allclose(
        s.price_multipliers,
        [
            crash,
            [0.70, 0.75, 0.95, 0.87, 1.0, 1.0],
            [0.70, 0.75, 0.95, 1.0, 0.90, 1.0],
            [1.0, 1.0, 1.0, 0.87, 1.0, 1.0],
            [1.0, 1.0, 1.0, 1.0, 0.90, 1.0],
        ],
    )
    np.testing.assert_allclose(s.vol_shift[:, 0], [0.2, 0.2, 0.2, 0.0, 0.0])
    explicit = correlation_breakdown(factors, risky_drop=0.5, stable_depeg=0.2, basis_drop={"stETH/ETH": 0.1})
    np.testing.assert_allclose(explicit.price_multipliers[1], [0.5, 0.5, 0.9, 0.8, 1.0, 1.0])
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        correlation_breakdown(factors, risky_drop=1.0)


def test_breakdown_catches_a_cross_stablecoin_book() -> None:
    # $100k USDC collateral, $90k USDT debt, short 10 ETH at $3,000: the crash is a gain; the USDC depeg is not.
    s = correlation_breakdown(("ETH", "USDC/USD", "USDT/USD"))
    m = s.token_multipliers(["USDC", "USDT", "ETH"], DEFAULT_ASSET_MAP)
    value = np.array([100_000.0, -90_000.0, -30_000.0])
    pnl = (m - 1.0) @ value
    worst = s.names[int(np.argmin(pnl))]
    assert worst == "BREAK USDC/USD depeg"
    assert float(pnl.min()) == pytest.approx(-13_000.0)


def test_user_scenarios() -> None:
    s = user_scenarios(
        ("ETH", "BTC"),
        {"eth -40%": {"ETH": -0.4}, "both +20%": {"ETH": 0.2, "BTC": 0.2}},
        vol_shifts={"eth -40%": {"ETH": 0.3}, "both +20%": -0.05},
        weights={"both +20%": 0.5},
        horizon_days=2.0,
    )
    np.testing.assert_allclose(s.price_multipliers, [[0.6, 1.0], [1.2, 1.2]])
    np.testing.assert_allclose(s.vol_shift, [[0.3, 0.0], [-0.05, -0.05]])
    np.testing.assert_array_equal(s.weights, [1.0, 0.5])
    assert s.groups == ("user", "user")
    assert s.horizon_days == 2.0
    with pytest.raises(KeyError, match="SOL"):
        user_scenarios(("ETH",), {"x": {"SOL": -0.1}})
    with pytest.raises(KeyError, match="unknown scenarios"):
        user_scenarios(("ETH",), {"x": {}}, weights={"y": 0.5})


def test_price_vol_grid_is_volatility_major_and_moves_every_underlying_together() -> None:
    grid = price_vol_grid(["ETH", "BTC"], [-0.2, 0.0, 0.1], [0.0, 0.5])
    assert len(grid) == 6
    # Row v, column p of the heatmap is scenario v·P + p.
    np.testing.assert_allclose(grid.price_multipliers[:, 0], [0.8, 1.0, 1.1, 0.8, 1.0, 1.1])
    np.testing.assert_array_equal(grid.price_multipliers[:, 0], grid.price_multipliers[:, 1])
    np.testing.assert_allclose(grid.vol_shift_relative[:, 1], [0, 0, 0, 0.5, 0.5, 0.5])
    assert not grid.vol_shift.any()
    assert grid.names[4] == "grid vol +0.5 move +0"
    with pytest.raises(ValueError, match="price moves"):
        price_vol_grid(["ETH"], [-1.5], [0.0])
    with pytest.raises(ValueError, match="volatility shifts"):
        price_vol_grid(["ETH"], [0.0], [-1.0])
    with pytest.raises(ValueError, match="at least one underlying"):
        price_vol_grid([], [0.0], [0.0])
