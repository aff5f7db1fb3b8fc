"""The venues deployed next to Aave (Morpho Blue, Uniswap v3) as a whole: their first-run deployment, the
liquidity wallet that provides their liquidity, bulk token minting, and keeping every venue's price in
line with the Chainlink feeds (:func:`sync_prices`, which :func:`devnet.feeds.set_price` calls).
"""

from __future__ import annotations

from decimal import Decimal

from devnet import morpho, uniswap
from devnet.evm import transact
from devnet.models import DevnetInfo
from devnet.wallets import wallet_address

__all__ = ["LIQUIDITY", "deploy_venues", "mint_tokens", "sync_prices"]

LIQUIDITY = wallet_address("liquidity")
"""The wallet that supplies the Morpho markets' loan liquidity and owns the Uniswap pools' deep LP
positions, in the cached deployment (not a seed wallet: seeding does not touch it)."""
_WRAPPED_NATIVE = "WETH"


def mint_tokens(info: DevnetInfo, wallet: str, symbol: str, amount_raw: int) -> None:
    """Give ``wallet`` ``amount_raw`` more of ``symbol`` in one transaction, beyond the faucet's per-mint
    cap: WETH is wrapped from ETH the wallet is given; a test token is minted by its owner, the Aave
    faucet (impersonated)."""
    token = info.token(symbol)
    if symbol == _WRAPPED_NATIVE:
        transact(info, wallet, token, "deposit()", value=amount_raw)
    else:
        transact(info, info.contract("aave_v3.faucet"), token, "mint(address,uint256)", wallet, amount_raw)


def deploy_venues(info: DevnetInfo) -> tuple[dict[str, str], dict[str, str]]:
    """Deploy Morpho Blue and Uniswap v3 with their markets, pools and liquidity onto ``info``'s chain
    (Aave tokens and Chainlink feeds already there); return ``(contracts, markets)``."""
    contracts, markets = morpho.deploy(info, LIQUIDITY)
    live = DevnetInfo(info.rpc_url, info.chain_id, {**info.contracts, **contracts}, info.tokens, markets)
    contracts.update(uniswap.deploy(live, LIQUIDITY))
    return contracts, markets


def sync_prices(info: DevnetInfo, symbol: str, usd: float | Decimal, answer_raw: int | None = None) -> None:
    """Bring the other venues to ``symbol`` = ``usd``: set every Morpho oracle and move every Uniswap pool
    involving ``symbol`` to the ratio of the feeds' answers (``answer_raw``, the 8-decimal answer the feed
    has or is about to get, stands in for ``symbol``'s), then the local perp API's mark price if
    ``devnet.perp_api`` provides ``set_mark(info, symbol, usd)``. Venues missing from ``info`` are skipped."""
    answers = {symbol: answer_raw} if answer_raw is not None else None
    if "morpho_blue.morpho" in info.contracts:
        morpho.sync_oracles(info, symbol, answers)
    if "uniswap_v3.factory" in info.contracts:
        uniswap.sync_pools(info, symbol, answers)
    try:
        from devnet import perp_api  # type: ignore[attr-defined,unused-ignore]  # another engineer's module
    except ImportError:
        return
    set_mark = getattr(perp_api, "set_mark", None)
    if callable(set_mark):
        set_mark(info, symbol, usd)
