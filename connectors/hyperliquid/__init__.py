"""Hyperliquid perpetuals: accounts (``clearinghouseState``) and markets (``metaAndAssetCtxs``) over the info API."""

from connectors.hyperliquid.connector import HyperliquidConnector
from connectors.hyperliquid.deployments import HYPERLIQUID_MAINNET, HYPERLIQUID_TESTNET, HyperliquidDeployment
from connectors.hyperliquid.models import (
    HyperliquidAccount,
    HyperliquidAsset,
    HyperliquidCumFunding,
    HyperliquidLeverage,
    HyperliquidMarginSummary,
    HyperliquidMarginTier,
    HyperliquidMarket,
    HyperliquidPosition,
    HyperliquidSnapshot,
)

__all__ = [
    "HYPERLIQUID_MAINNET",
    "HYPERLIQUID_TESTNET",
    "HyperliquidAccount",
    "HyperliquidAsset",
    "HyperliquidConnector",
    "HyperliquidCumFunding",
    "HyperliquidDeployment",
    "HyperliquidLeverage",
    "HyperliquidMarginSummary",
    "HyperliquidMarginTier",
    "HyperliquidMarket",
    "HyperliquidPosition",
    "HyperliquidSnapshot",
]
