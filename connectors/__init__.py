"""Venue connectors: block-pinned reads of positions and prices, decoded into typed boundary models.

Connectors know nothing of the store (``db``), the risk math (``riskcore``) or the application
(``aggregator``); raw on-chain integers stay integers (``*_raw``).
"""
