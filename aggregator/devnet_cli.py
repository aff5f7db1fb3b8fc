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
from devnet.perp_api import dydx_address

__all__ = ["devnet_config_path", "devnet_settings", "down", "info", "seed", "set_price", "up"]

VENUE = "aave_v3"


def devnet_config_path() -> Path:
    """The config file ``xmargin devnet up`` writes: ``$XMARGIN_HOME/devnet.toml``."""
    return xmargin_home() / "devnet.toml"


def devnet_settings(info: devnet.DevnetInfo, base: Settings | None = None) -> Settings:
    """Settings that point xmargin at every venue of ``info``'s devnet, as a user's config file would
    (keeping ``base``'s store and interval): Aave v3, and where deployed Morpho Blue, Uniswap v3 and the
    local perp API's Hyperliquid and dYdX."""
    base = base or Settings()
    chain = ChainConfig(name="devnet", chain_id=info.chain_id, rpc_url=info.rpc_url, timeout_s=10.0)
    c = info.contracts
    venues = [VenueConfig(name=VENUE, type="aave_v3", chain="devnet",
                          pool_addresses_provider=c["aave_v3.pool_addresses_provider"])]
    if "morpho_blue.morpho" in c:
        markets = tuple(mid for name, mid in sorted(info.markets.items()) if name.startswith("morpho_blue."))
        venues.append(VenueConfig(name="morpho_blue", type="morpho_blue", chain="devnet",
                                  morpho=c["morpho_blue.morpho"], markets=markets))
    if "uniswap_v3.position_manager" in c:
        venues.append(VenueConfig(name="uniswap_v3", type="uniswap_v3", chain="devnet",
                                  position_manager=c["uniswap_v3.position_manager"], factory=c["uniswap_v3.factory"]))
    perp_url = info.services.get("perp_api")
    if perp_url is not None:
        hedged = devnet.wallet_address("hedged")
        venues.append(VenueConfig(name="hyperliquid", type="hyperliquid", chain="devnet", base_url=perp_url))
        venues.append(VenueConfig(name="dydx_v4", type="dydx_v4", chain="devnet", base_url=perp_url,
                                  accounts={hedged: dydx_address("hedged")}))
    return base.model_copy(update={"chains": (chain,), "venues": tuple(venues)})


def up() -> tuple[dict[str, Any], Path]:
    """Start the shared devnet (installing and deploying on first use) and write its config file."""
    devnet.ensure_installed()
    running = devnet.up()
    path = devnet_config_path()
    write_settings_toml(devnet_settings(running), path)
    return running.as_json(), path


def info() -> dict[str, Any]:
    """The running devnet's ``{"rpc_url", "chain_id", "contracts", "tokens", "markets", "services"}``."""
    return devnet.info().as_json(with_markets=True)


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
