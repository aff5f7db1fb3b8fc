"""A wallet's state for the planner: its lending venues and perps from the newest sync, and its idle token
balances read from the chain at that sync's block.

Each venue's keeper part (``aggregator/venues/<venue>/keeper.py``, :mod:`aggregator.keeper.plugin`) turns its
newest snapshot into planner venues: a lending market into one (or one per isolated market), a perp account into
one perp venue (maintenance rate per position from the venue's margin figures); a venue that secures no debt
and has no margin (a liquidity range) is not planned. Amounts are token units as floats for the planner; the raw
integers are kept beside them so the executor never turns a float back into a balance it has not seen.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aggregator.config import Settings
from aggregator.keeper.plugin import PlannedVenue, StateError, TokenInfo, venue_keeper
from connectors.evm.erc20 import balance_of_answer, balance_of_call
from connectors.evm.rpc import RpcClient, hex_to_bytes
from db import Store
from riskcore.rebalance import LendingVenue, PerpVenue, TokenBalance

__all__ = ["PlannedVenue", "StateError", "TokenInfo", "WalletState", "read_idle_balances", "wallet_state"]



@dataclass(frozen=True)
class WalletState:
    """Everything the planner and the executor need about one wallet at one block."""

    wallet: str
    chain: str
    chain_id: int
    block_number: int
    block_timestamp: int
    """Unix seconds of the sync's block."""
    venues: tuple[LendingVenue | PerpVenue, ...]
    mapping: Mapping[str, PlannedVenue]
    """Planner venue name → configured venue and market."""
    tokens: Mapping[str, TokenInfo]
    """Token address → token."""
    idle_raw: Mapping[str, int]
    """Token address → the wallet's own balance at the block."""

    def balances(self) -> list[TokenBalance]:
        """The planner's token list: every token with its price and idle amount."""
        return [TokenBalance(token=a, price_usd=t.price_usd, idle=self.idle_raw.get(a, 0) / 10**t.decimals)
                for a, t in self.tokens.items()]


def read_idle_balances(rpc: RpcClient, wallet: str, tokens: Sequence[str], block: int) -> dict[str, int]:
    """The wallet's ERC-20 balances of ``tokens`` at ``block`` (one JSON-RPC batch)."""
    calldata = balance_of_call(wallet)
    answers = rpc.batch([("eth_call", RpcClient.call_params(t, calldata, block)) for t in tokens]) if tokens else []
    return {t: balance_of_answer(hex_to_bytes(a, f"balanceOf on {t}")) for t, a in zip(tokens, answers, strict=True)}


def wallet_state(store: Store, settings: Settings, wallet: str, rpc: RpcClient, chain: str) -> WalletState:
    """The wallet's state from the newest sync on ``chain`` plus its idle balances at that block.

    Raises :class:`StateError` when there is nothing to plan from: no sync yet, or a lending venue whose newest
    snapshot is an error (planning around a venue whose state is unknown could move collateral it needs).
    """
    chain_cfg = settings.chain(chain)
    types = {v.name: v.type for v in settings.venues if v.chain == chain}
    latest = [item for item in store.latest_health(wallet) if item.venue in types]
    if not latest:
        raise StateError(f"{wallet}: no synced state on {chain}")
    cfg = settings.keeper
    tokens: dict[str, TokenInfo] = {}
    venues: list[LendingVenue | PerpVenue] = []
    mapping: dict[str, PlannedVenue] = {}
    blocks = set()
    stamps: dict[int, int] = {}
    for item in latest:
        keeper = venue_keeper(types[item.venue])
        if item.health is None:
            if keeper.lending:
                raise StateError(f"{wallet}: {item.venue} was not read in the newest sync ({item.snapshot.error})")
            continue
        if keeper.lending:
            blocks.add(item.snapshot.block_number)
            stamps[item.snapshot.block_number] = int(item.snapshot.block_timestamp.timestamp())
        for venue, planned in keeper.planner_venues(item, cfg, tokens):
            if isinstance(venue, PerpVenue) or venue.collateral or venue.debt:
                venues.append(venue)
                mapping[venue.name] = planned
    if len(blocks) > 1:
        raise StateError(f"{wallet}: the newest lending snapshots are at different blocks {sorted(blocks)}")
    if not blocks:
        raise StateError(f"{wallet}: no lending position on {chain}")
    block = blocks.pop()
    idle = read_idle_balances(rpc, wallet, sorted(tokens), block)
    return WalletState(wallet=wallet, chain=chain, chain_id=chain_cfg.chain_id, block_number=block,
                       block_timestamp=stamps[block], venues=tuple(venues), mapping=mapping, tokens=tokens,
                       idle_raw=idle)
