"""The dydx_v4 venue's plugin (see :mod:`connectors.registry` for the layout)."""
