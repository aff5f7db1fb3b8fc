"""The dydx_v4 venue's own rules, pure (see :mod:`connectors.registry` for the layout)."""
