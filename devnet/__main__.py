"""``python -m devnet``: install the devnet's npm packages and compile its contracts (used by ``make``)."""

from devnet.install import ensure_installed

print(f"devnet installed in {ensure_installed()}")
