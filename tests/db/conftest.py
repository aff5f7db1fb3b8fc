"""Fixtures for the store tests: every ``store`` test runs on SQLite and on PostgreSQL (``db_url``, from the
suite-wide conftest)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from db import Store


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    """A migrated store on each backend."""
    s = Store.open(db_url)
    try:
        yield s
    finally:
        s.close()
