"""Venue adapters: connector snapshot → risk core → :mod:`aggregator.views`."""
