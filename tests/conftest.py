"""Suite-wide fixtures: an isolated XMARGIN_HOME per test session, and a seeded devnet shared per module."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True, scope="session")
def _isolated_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Keep tests away from the user's store and config (the devnet cache is shared on purpose)."""
    home = tmp_path_factory.mktemp("xmargin-home")
    saved = {k: os.environ.get(k) for k in ("XMARGIN_HOME", "XMARGIN_CONFIG", "XMARGIN_DB_URL", "XMARGIN_RPC_URL",
                                            "XMARGIN_DEVNET_RUN")}
    os.environ["XMARGIN_HOME"] = str(home)
    os.environ["XMARGIN_DEVNET_RUN"] = str(home / "devnet-run.json")
    for key in ("XMARGIN_CONFIG", "XMARGIN_DB_URL", "XMARGIN_RPC_URL"):
        os.environ.pop(key, None)
    yield home
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
