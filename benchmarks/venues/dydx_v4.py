"""dYdX v4's part of the block benchmark: every wallet's subaccount 0 in the devnet's local venue API (the wallet's
20 bytes under ``dydx1…``, mapped in the venue's ``accounts`` table): a USDC deposit and 1-2 positions among
BTC-USD / ETH-USD, traded by the activity (:class:`benchmarks.venues.PerpBook`)."""

from __future__ import annotations

from typing import Any

from benchmarks.venues import PerpBook
from connectors.dydx_v4.address import bech32_encode

COINS = {"BTC": 4, "ETH": 3}
"""The devnet's dYdX markets (``<coin>-USD``) and the decimals of their step size."""


def account_of(wallet: str) -> str:
    return bech32_encode(bytes.fromhex(wallet[2:]))


class DydxBench(PerpBook):
    def __init__(self) -> None:
        super().__init__("dydx_v4", COINS, account_of)

    def configure(self, cfg: Any) -> Any:
        """The venue's ``accounts`` table: every planned wallet to its subaccount (the venue reads no other)."""
        return cfg.model_copy(update={"accounts": {**cfg.accounts, **{w: account_of(w) for w in self.accounts}}})


PART = DydxBench
"""This venue's part of the benchmark, found by :func:`benchmarks.venues.perp_part`."""
