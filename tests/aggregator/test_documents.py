"""The headline's first liquidation: the nearer of the nearest single price move and the common move of every risky
price the engine moved (``first_liquidation.moves``), said in words."""

from __future__ import annotations

from typing import Any

from aggregator.documents import summary

VENUES = [{"venue": "aave_v3", "health_factor": 2.03}]


def _risk(down: float | None, moves: list[str], nearest: dict[str, Any] | None) -> dict[str, Any]:
    return {"unified_health": 2.0, "block": 7,
            "first_liquidation": {"down": {"move": down, "venue": "aave_v3" if down else None},
                                  "up": {"move": None, "venue": None}, "moves": moves, "nearest": nearest}}


DAI_UP = {"venue": "aave_v3", "asset": "DAI", "direction": "rises", "price_usd": 3.475, "current_price_usd": 1.0,
          "move": 2.475}


def test_a_nearer_common_move_beats_a_far_single_price() -> None:
    s = summary(VENUES, _risk(0.579, ["AAVE", "ETH", "LINK"], DAI_UP), None)
    first = s["first_liquidation"]
    assert first["common_move"] is True
    assert first["move"] == -0.579
    assert first["price_usd"] is None
    assert s["text"].endswith("first liquidation: aave_v3 if AAVE, ETH and LINK all fall 57.9%")


def test_a_nearer_single_price_beats_the_common_move() -> None:
    usdc = {"venue": "aave_v3", "asset": "USDC", "direction": "falls", "price_usd": 0.9137, "current_price_usd": 1.0,
            "move": -0.0863}
    s = summary(VENUES, _risk(0.4, ["ETH"], usdc), None)
    assert s["first_liquidation"]["asset"] == "USDC"
    assert s["text"].endswith("first liquidation: aave_v3 if USDC falls to $0.9137 (-8.6%)")


def test_one_risky_underlying_falls_alone_and_none_moved_means_no_common_move() -> None:
    assert summary(VENUES, _risk(0.25, ["ETH"], None), None)["text"].endswith("aave_v3 if ETH falls 25.0%")
    assert summary(VENUES, _risk(0.25, [], None), None)["first_liquidation"] is None
