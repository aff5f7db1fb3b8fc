"""``python -m devnet``: install the devnet's npm packages and compile its contracts (used by ``make``).

Each install step that runs prints one line (what, then how long it took); nothing when all is current.
"""

import sys

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
except InstallError as exc:  # its message says which step failed and shows the tool's output
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(1)
