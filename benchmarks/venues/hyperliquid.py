"""Hyperliquid's part of the block benchmark: every wallet's account in the devnet's local venue API (its
``clearinghouseState`` is read for the wallet's own address): a USDC deposit and 1-2 cross positions (10x) among
BTC / ETH / SOL, traded by the activity (:class:`benchmarks.venues.PerpBook`)."""

from __future__ import annotations

from benchmarks.venues import PerpBook

COINS = {"BTC": 5, "ETH": 4, "SOL": 2}
"""The devnet's Hyperliquid coins and their ``szDecimals``."""


class HyperliquidBench(PerpBook):
    def __init__(self) -> None:
        super().__init__("hyperliquid", COINS, lambda wallet: wallet, leverage=10)


PART = HyperliquidBench
"""This venue's part of the benchmark, found by :func:`benchmarks.venues.perp_part`."""
