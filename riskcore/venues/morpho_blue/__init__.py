"""The morpho_blue venue's own rules, pure (see :mod:`connectors.registry` for the layout)."""
