"""``xmargin devnet …``: drive the local chain, and configure xmargin for it as a user would.

This module (and :mod:`aggregator.demo`) is the only product code that imports :mod:`devnet`; the
pipeline itself only ever sees an RPC URL and contract addresses from its configuration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import devnet
from aggregator.config import ChainConfig, Settings, VenueConfig, write_settings_toml, xmargin_home
from db.store import Store

__all__ = ["devnet_config_path", "devnet_settings", "down", "info", "seed", "set_price", "up"]

VENUE = "aave_v3"


def devnet_config_path() -> Path:
    """The config file ``xmargin devnet up`` writes: ``$XMARGIN_HOME/devnet.toml``."""
    return xmargin_home() / "devnet.toml"


def devnet_settings(info: devnet.DevnetInfo, base: Settings | None = None) -> Settings:
    """Settings that point xmargin at ``info``'s chain and Aave market (keeping ``base``'s store and interval)."""
    base = base or Settings()
    chain = ChainConfig(name="devnet", chain_id=info.chain_id, rpc_url=info.rpc_url, timeout_s=10.0)
    venue = VenueConfig(
        name=VENUE, type="aave_v3", chain="devnet",
        pool_addresses_provider=info.contract("aave_v3.pool_addresses_provider"),
    )
    return base.model_copy(update={"chains": (chain,), "venues": (venue,)})


def up() -> tuple[dict[str, Any], Path]:
    """Start the shared devnet (installing and deploying on first use) and write its config file."""
    devnet.ensure_installed()
    running = devnet.up()
    path = devnet_config_path()
    write_settings_toml(devnet_settings(running), path)
    return running.as_json(), path


def info() -> dict[str, Any]:
    """The running devnet's ``{"rpc_url", "chain_id", "contracts", "tokens"}``."""
    return devnet.info().as_json()


def set_price(symbol: str, usd: float) -> None:
    """Move ``symbol``'s Chainlink feed (which Aave's oracle reads) to ``usd``."""
    if not usd > 0:
        raise ValueError(f"price must be positive, got {usd}")
    running = devnet.info()
    sym = symbol.upper()
    if sym not in running.tokens:
        raise KeyError(f"unknown symbol {symbol!r}; the devnet has {sorted(running.tokens)}")
    devnet.set_price(running, sym, usd)


def seed(settings: Settings) -> list[tuple[str, str]]:
    """Open the demo positions on the running devnet and track the demo wallets; returns (address, label)."""
    running = devnet.info()
    wallets = [(w.address, w.label) for w in devnet.seed(running) if w.label != "lender"]
    with Store.open(settings.db_url) as store:
        store.add_wallets([(address, label) for address, label in wallets])
    return wallets


def down() -> bool:
    """Stop the shared devnet; False when none was running."""
    return devnet.down()
