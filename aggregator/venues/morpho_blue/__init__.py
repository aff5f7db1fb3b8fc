"""The morpho_blue venue's plugin (see :mod:`connectors.registry` for the layout)."""
