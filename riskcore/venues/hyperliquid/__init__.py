"""The hyperliquid venue's own rules, pure (see :mod:`connectors.registry` for the layout)."""
