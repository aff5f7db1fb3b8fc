"""First-run deployment of everything the devnet holds, onto a fresh anvil node.

1. The token market: the one venue part whose deployment brings the devnet's tokens
   (:class:`devnet.parts.TokenMarket`, see :func:`devnet.venues.token_market`).
2. Price feeds the devnet can move: one Chainlink ``MockV3Aggregator`` (8 decimals, USD) per token, starting at
   the price the token market reports for it; then the market's oracle is pointed at them.
3. Multicall3 at its canonical address, placed with ``anvil_setCode`` (anvil 1.7.1 has no code there).
4. Every other on-chain venue part with a deployer, in registry order (:func:`deploy_venues`), on those tokens at
   the feeds' prices, with their liquidity owned by :data:`devnet.tokens.LIQUIDITY`.

Every address is read from the deployment: none is hard-coded except Multicall3's canonical one and the
deployer (anvil's dev account 0, :data:`ADMIN`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from eth_utils.address import to_checksum_address

from devnet.evm import deploy_contract, rpc
from devnet.install import artifact
from devnet.models import DevnetInfo
from devnet.parts import TokenMarket
from devnet.progress import Progress, stage
from devnet.tokens import LIQUIDITY
from devnet.venues import chain_parts, token_market

__all__ = [
    "ADMIN",
    "FEED_DECIMALS",
    "MULTICALL3",
    "DeployError",
    "Deployment",
    "deploy_all",
    "deploy_venues",
    "feed_name",
]

ADMIN = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
"""anvil dev account 0: the deployer of every venue, and the admin and owner of what they deploy (the token
market's ACL admin, pool admin and faucet owner included)."""
MULTICALL3 = "0xcA11bde05977b3631167028862bE2a173976CA11"
FEED_DECIMALS = 8


class DeployError(RuntimeError):
    """The first-run deployment failed; the message carries the tail of the deploy output."""


@dataclass(frozen=True)
class Deployment:
    """Addresses (checksummed) of what :func:`deploy_all` put on chain, and market ids, named as in
    ``DevnetInfo``."""

    contracts: dict[str, str]
    tokens: dict[str, str]
    markets: dict[str, str] = field(default_factory=dict)


def feed_name(symbol: str) -> str:
    """The ``DevnetInfo.contracts`` key of the USD price feed of ``symbol``."""
    return f"chainlink.{symbol}_USD"


def deploy_all(rpc_url: str, progress: Progress | None = None) -> Deployment:
    """Deploy the token market, the Chainlink feeds, Multicall3 and every other on-chain venue onto the fresh
    node at ``rpc_url``.

    Takes ~25 s (the token market's ~20 s). Needs :func:`devnet.install.ensure_installed` to have run. Reports
    the token market's own stage, ``deploy_feeds`` and ``deploy_venues`` to ``progress``.
    """
    accounts = [to_checksum_address(a) for a in rpc(rpc_url, "eth_accounts")]
    if not accounts or accounts[0] != ADMIN:
        raise DeployError(f"expected anvil's default dev account 0 {ADMIN}, node has {accounts[:1]}")
    market = token_market().market
    assert market is not None  # token_market() has one
    with stage(progress, market.stage.key, market.stage.text):
        contracts, tokens = market.deploy(rpc_url)
    with stage(progress, "deploy_feeds", "deploying Chainlink price feeds and Multicall3"):
        contracts.update(_deploy_feeds(rpc_url, market, contracts, tokens))
        contracts["multicall3"] = _place_multicall3(rpc_url)
    chain_id = int(rpc(rpc_url, "eth_chainId"), 16)
    titles = " and ".join(p.title for p in chain_parts() if p.deploy is not None)
    with stage(progress, "deploy_venues", f"deploying {titles} with their liquidity"):
        venue_contracts, markets = deploy_venues(DevnetInfo(rpc_url, chain_id, dict(contracts), dict(tokens)))
    contracts.update(venue_contracts)
    return Deployment(dict(sorted(contracts.items())), dict(sorted(tokens.items())), dict(sorted(markets.items())))


def deploy_venues(info: DevnetInfo) -> tuple[dict[str, str], dict[str, str]]:
    """Deploy every on-chain venue part with a deployer (registry order) with its markets, pools and liquidity
    onto ``info``'s chain (tokens and feeds already there), each seeing what the ones before it deployed; return
    ``(contracts, markets)``."""
    contracts: dict[str, str] = {}
    markets: dict[str, str] = {}
    for part in chain_parts():
        if part.deploy is None:
            continue
        live = DevnetInfo(info.rpc_url, info.chain_id, {**info.contracts, **contracts}, info.tokens,
                          {**info.markets, **markets})
        added, added_markets = part.deploy(live, LIQUIDITY)
        contracts.update(added)
        markets.update(added_markets)
    return contracts, markets


def _deploy_feeds(
    rpc_url: str, market: TokenMarket, contracts: dict[str, str], tokens: dict[str, str]
) -> dict[str, str]:
    """One MockV3Aggregator per token at its current price on the token market; the market's oracle switched to
    them."""
    bytecode = str(artifact("MockV3Aggregator")["bytecode"])
    feeds: dict[str, str] = {}
    for symbol, token in tokens.items():
        price = market.price(rpc_url, contracts, token)
        feeds[symbol] = deploy_contract(rpc_url, ADMIN, bytecode, ["uint8", "int256"], [FEED_DECIMALS, price])
    market.use_feeds(rpc_url, contracts, tokens, feeds)
    return {feed_name(symbol): feed for symbol, feed in feeds.items()}


def _place_multicall3(rpc_url: str) -> str:
    """Put Multicall3's runtime code at its canonical address unless code is already there."""
    if rpc(rpc_url, "eth_getCode", [MULTICALL3, "latest"]) in ("0x", "0x0", ""):
        rpc(rpc_url, "anvil_setCode", [MULTICALL3, str(artifact("Multicall3")["deployedBytecode"])])
    return MULTICALL3
