"""The aave_v3 venue's own rules, pure (see :mod:`connectors.registry` for the layout)."""
