"""xmargin's HTTP API (FastAPI): :func:`aggregator.api.app.create_app`."""
