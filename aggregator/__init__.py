"""The application: composes connectors, the store and the risk core into syncs, a scheduler and a CLI."""
