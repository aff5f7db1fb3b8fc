"""The hyperliquid venue's plugin (see :mod:`connectors.registry` for the layout)."""
