"""Liquidity-provider positions: exact amounts and fees as the AMM computes them, value and price exposure."""
