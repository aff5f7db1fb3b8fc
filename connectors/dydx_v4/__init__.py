"""dYdX v4 perpetuals: subaccounts and markets from the indexer's REST API."""

from connectors.dydx_v4.address import bech32_encode, parse_account, validate_address
from connectors.dydx_v4.connector import DydxConnector
from connectors.dydx_v4.deployments import DYDX_MAINNET, DYDX_TESTNET, DydxDeployment
from connectors.dydx_v4.models import (
    DydxAssetPosition,
    DydxMarket,
    DydxMarkets,
    DydxPerpPosition,
    DydxSnapshot,
    DydxSubaccount,
)

__all__ = [
    "DYDX_MAINNET",
    "DYDX_TESTNET",
    "DydxAssetPosition",
    "DydxConnector",
    "DydxDeployment",
    "DydxMarket",
    "DydxMarkets",
    "DydxPerpPosition",
    "DydxSnapshot",
    "DydxSubaccount",
    "bech32_encode",
    "parse_account",
    "validate_address",
]
