"""What a start loads: the CLI, ``xmargin serve``'s app, ``xmargin run``'s sync path, the ``xmargin devnet …``
commands (the devnet's wallets) and ``xmargin wallet add`` with an address leave out the heavy libraries
they need only for rare work (each costs a quarter to a third of a second of every start, paid by every console
command, every API process and every restart of a run). Each is checked in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from db.store import Store

HEAVY = ("alembic", "scipy.special", "scipy.optimize", "web3", "eth_account")


def _loaded(code: str) -> list[str]:
    probe = code + "\nimport json, sys\nprint(json.dumps(sorted(m for m in sys.modules if m in " + repr(HEAVY) + ")))\n"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120)
    return [str(m) for m in json.loads(out.stdout.strip().splitlines()[-1])]


@pytest.mark.parametrize("code", [
    "import aggregator.cli\n"
    "from db.store import Store\n"
    "Store.open(URL).close()",
    "from aggregator.api.app import create_app\n"
    "from db.store import Store\n"
    "create_app(Store.open(URL))",
    "import aggregator.cli, aggregator.scheduler, aggregator.cycle, aggregator.risk, aggregator.blockrun\n"
    "import aggregator.keeper.runner",
    "import aggregator.cli, aggregator.devnet_cli, devnet\n"
    "from devnet.venues import parts\n"
    "devnet.wallet_address('near_liquidation')",
    "import os\n"
    "os.environ['XMARGIN_DB_URL'] = URL\n"
    "from typer.testing import CliRunner\n"
    "from aggregator.cli import app\n"
    "done = CliRunner().invoke(app, ['wallet', 'add', '0x' + 'ab' * 20])\n"
    "assert done.exit_code == 0 and 'tracking' in done.output, done.output",
], ids=["cli", "serve", "run", "devnet", "wallet-add"])
def test_a_start_loads_none_of_the_heavy_libraries(code: str, db_url: str) -> None:
    """On both backends: a store at head is recognised without Alembic (``db.migrate.upgrade``'s fast path)."""
    Store.open(db_url).close()  # a store at head (an empty one is migrated, by Alembic)
    assert _loaded(f"URL = {db_url!r}\n{code}") == []


def test_the_probe_sees_a_heavy_library() -> None:
    """Guard against a vacuous check: code that needs one shows it."""
    assert _loaded("from riskcore.var import normal_factors\nnormal_factors(0.99)") == ["scipy.special"]
