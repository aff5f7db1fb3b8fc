"""``python -m devnet``: install the devnet's npm packages, compile its contracts and deploy the cached chain state
every devnet starts from (used by ``make``), so the first test or demo that starts a devnet does not deploy it.

Each step that runs prints one line (what, then how long it took); nothing when all is current.
"""

import sys

from devnet.cache import ensure_state
from devnet.deploy import DeployError
from devnet.evm import DevnetError
from devnet.install import InstallError, ensure_installed
from devnet.progress import StageEvent


def _print_stage(event: StageEvent) -> None:
    if event.status == "start":
        print(f"{event.text}…", end=" ", flush=True)
    elif event.status == "done":
        print(f"done in {event.elapsed_s:.1f} s", flush=True)
    elif event.status == "failed":
        print(f"failed after {event.elapsed_s:.1f} s", flush=True)


try:
    print(f"devnet installed in {ensure_installed(_print_stage)}")
    state, _deployed = ensure_state(_print_stage)
    print(f"devnet state cached in {state.directory}")
except (InstallError, DeployError, DevnetError) as exc:  # its message says which step failed, with its output
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(1)
