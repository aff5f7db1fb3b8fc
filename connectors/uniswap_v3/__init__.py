"""Uniswap v3 liquidity positions (NonfungiblePositionManager NFTs) and their pools, read at one block."""
