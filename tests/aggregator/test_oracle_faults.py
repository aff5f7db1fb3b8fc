"""Oracle faults in a batch: a price that jumped beyond the bound is flagged ``jump``, and every health holding an
asset whose price is flagged — on any venue of the batch — is marked ``bad_oracle``."""

from __future__ import annotations

from aggregator.pipeline import flag_oracle_faults
from aggregator.views import PositionView, PriceView, VenueHealth, VenueReading
from connectors.types import BlockRef

BLOCK = BlockRef(chain_id=31337, number=10, hash="0x" + "0a" * 32, timestamp=1_700_000_000)
WETH = "0x" + "11" * 20
USDC = "0x" + "22" * 20
WALLET = "0x" + "33" * 20


def _price(asset: str, symbol: str, usd: float, flags: tuple[str, ...] = ()) -> PriceView:
    return PriceView(chain_id=31337, asset=symbol, asset_address=asset, decimals=18, source="aave_v3.oracle",
                     source_address="0x" + "44" * 20, price_raw=int(usd * 10**8), price_decimals=8, price_usd=usd,
                     updated_at=None, age_s=None, flags=flags)


def _health(venue: str, assets: tuple[str, ...]) -> VenueHealth:
    positions = tuple(PositionView(asset="X", asset_address=a, decimals=18, side="collateral", amount_raw=10**18,
                                   amount=1.0, price_usd=1.0, value_usd=1.0, is_collateral=True, market_key=a)
                      for a in assets)
    return VenueHealth(wallet=WALLET, venue=venue, kind="lending", health_factor=1.5, health_factor_raw=None,
                       onchain_health_factor_raw=None, matches_onchain=None, collateral_usd=1.0, debt_usd=0.5,
                       liquidation_threshold=0.8, positions=positions)


def _readings(weth_usd: float, usdc_flags: tuple[str, ...] = ()) -> list[VenueReading]:
    aave = VenueReading(venue="aave_v3", kind="lending", block=BLOCK,
                        prices=(_price(WETH, "WETH", weth_usd), _price(USDC, "USDC", 1.0, usdc_flags)),
                        healths=(_health("aave_v3", (WETH,)), _health("aave_v3", (USDC,))))
    morpho = VenueReading(venue="morpho_blue", kind="lending", block=BLOCK,
                          healths=(_health("morpho_blue", (WETH.upper().replace("0X", "0x"), USDC)),))
    return [aave, morpho]


def _flags(readings: list[VenueReading]) -> list[list[tuple[str, ...]]]:
    return [[h.flags for h in r.healths] for r in readings]


def test_a_jump_beyond_the_bound_flags_the_price_and_every_health_that_holds_it() -> None:
    last = {("aave_v3.oracle", WETH): (4_000.0, 9), ("aave_v3.oracle", USDC): (1.0, 9)}
    calm = flag_oracle_faults(_readings(2_100.0), last, 0.5)  # −47.5 %: within the bound
    assert [p.flags for p in calm[0].prices] == [(), ()]
    assert _flags(calm) == [[(), ()], [()]]
    crashed = flag_oracle_faults(_readings(1_900.0), last, 0.5)  # −52.5 %
    assert [p.flags for p in crashed[0].prices] == [("jump",), ()]
    # Aave's WETH holder and Morpho's (whose address differs only in case) are marked; the USDC-only one is not.
    assert _flags(crashed) == [[("bad_oracle",), ()], [("bad_oracle",)]]
    assert flag_oracle_faults(_readings(1_900.0), last, None)[0].prices[0].flags == ()  # the check turned off
    assert flag_oracle_faults(_readings(1_900.0), {}, 0.5)[0].prices[0].flags == ()  # nothing to compare with
    # Only an earlier block's price is a baseline: every batch of one block (or an older block synced later) is
    # judged alike.
    same_block = {("aave_v3.oracle", WETH): (4_000.0, BLOCK.number)}
    assert flag_oracle_faults(_readings(1_900.0), same_block, 0.5)[0].prices[0].flags == ()


def test_any_flagged_price_marks_the_healths_that_hold_it() -> None:
    out = flag_oracle_faults(_readings(4_000.0, usdc_flags=("stale",)), {}, 0.5)
    assert _flags(out) == [[(), ("bad_oracle",)], [("bad_oracle",)]]
