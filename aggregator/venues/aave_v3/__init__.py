"""The aave_v3 venue's plugin (see :mod:`connectors.registry` for the layout)."""
