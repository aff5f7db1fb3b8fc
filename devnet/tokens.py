"""The devnet's tokens beyond their venue: the liquidity wallet that provides the venues' own liquidity, and
minting any amount of a token (through the token market's own minter, :class:`devnet.parts.TokenMarket`).
"""

from __future__ import annotations

from devnet.models import DevnetInfo
from devnet.venues import token_market
from devnet.wallets import wallet_address

__all__ = ["LIQUIDITY", "mint_tokens"]

LIQUIDITY = wallet_address("liquidity")
"""The wallet that provides the venues' own liquidity (loan liquidity of lending markets, the pools' deep LP
positions) in the cached deployment (not a seed wallet: seeding does not touch it)."""


def mint_tokens(info: DevnetInfo, wallet: str, symbol: str, amount_raw: int) -> None:
    """Give ``wallet`` ``amount_raw`` more of ``symbol`` in one transaction, beyond any faucet's per-mint cap (the
    token market's minter: the wrapped native token from ETH the wallet is given, a test token by its owner)."""
    market = token_market().market
    assert market is not None  # token_market() has one
    market.mint(info, wallet, symbol, amount_raw)
