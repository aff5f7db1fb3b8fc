"""Each venue's own rules, one package per venue named after it (:mod:`connectors.registry`)."""
