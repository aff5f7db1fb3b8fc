"""A wallet's state for the planner: its lending venues and perps from the newest sync, and its idle token
balances read from the chain at that sync's block.

Each Aave market is one planner venue (health = Σ collateral × threshold / Σ debt, the reserves' own
thresholds, e-mode's where it applies); each Morpho market the wallet borrows on is one planner venue named
``<venue>:<market id>`` (one collateral, one loan token, LLTV); each perp venue one perp venue (maintenance
rate per position from the venue's margin figures). Uniswap ranges are not collateral anywhere and are not
planned. Amounts are token units as floats for the planner; the raw integers are kept beside them so the
executor never turns a float back into a balance it has not seen.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from aggregator.config import KeeperConfig, Settings
from connectors.aave_v3.connector import BALANCE_OF
from connectors.evm.rpc import RpcClient, hex_to_bytes
from db import LatestVenueHealth, PositionRow, Store
from riskcore.rebalance import CollateralLine, DebtLine, LendingVenue, PerpLine, PerpVenue, TokenBalance

__all__ = ["PlannedVenue", "StateError", "TokenInfo", "WalletState", "read_idle_balances", "wallet_state"]



class StateError(ValueError):
    """The store does not hold what a plan needs (no sync yet, a venue failed, a price missing)."""


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """An ERC-20 token of the chain: its symbol, decimals and USD price at the sync's block."""

    address: str
    symbol: str
    decimals: int
    price_usd: float


@dataclass(frozen=True, slots=True)
class PlannedVenue:
    """How a planner venue maps back to the configured venue and the protocol's market."""

    venue: str
    """The configured venue's name."""
    protocol: str
    """Connector type: ``aave_v3``, ``morpho_blue``, ``hyperliquid``, ``dydx_v4``."""
    market_key: str | None
    """Morpho: the market id."""
    collateral_raw: Mapping[str, int] = field(default_factory=dict)
    debt_raw: Mapping[str, int] = field(default_factory=dict)


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


def _lending_aave(item: LatestVenueHealth, cfg: KeeperConfig, tokens: dict[str, TokenInfo]) -> tuple[
        LendingVenue, PlannedVenue]:
    collateral: list[CollateralLine] = []
    debt: list[DebtLine] = []
    coll_raw: dict[str, int] = {}
    debt_raw: dict[str, int] = {}
    for p in item.snapshot.positions:
        _token(tokens, p.asset.address, p.asset.symbol, p.asset.decimals, p.price_usd, item.venue)
        if p.side == "collateral" and p.is_collateral:
            bps = p.extra.get("liquidation_threshold_bps")
            if not isinstance(bps, int):
                raise StateError(f"{item.venue}: {p.asset.symbol} collateral without its liquidation threshold")
            collateral.append(CollateralLine(token=p.asset.address, amount=p.amount, threshold=bps / 10_000))
            coll_raw[p.asset.address] = p.amount_raw
        elif p.side == "debt":
            debt.append(DebtLine(token=p.asset.address, amount=p.amount))
            debt_raw[p.asset.address] = p.amount_raw
    target = cfg.target(item.venue)
    return (LendingVenue(name=item.venue, collateral=tuple(collateral), debt=tuple(debt), target=target.target,
                         offset=target.offset),
            PlannedVenue(venue=item.venue, protocol="aave_v3", market_key=None, collateral_raw=coll_raw,
                         debt_raw=debt_raw))


def _lending_morpho(item: LatestVenueHealth, cfg: KeeperConfig, tokens: dict[str, TokenInfo]) -> list[
        tuple[LendingVenue, PlannedVenue]]:
    assert item.health is not None
    markets = {str(m["market_id"]): m for m in item.health.extra.get("markets", ())}
    by_market: dict[str, list[PositionRow]] = {}
    for p in item.snapshot.positions:
        if p.market_key is not None:
            by_market.setdefault(p.market_key, []).append(p)
    out = []
    target = cfg.target(item.venue)
    for key, positions in by_market.items():
        detail = markets.get(key)
        if detail is None:
            raise StateError(f"{item.venue}: no parameters stored for market {key}")
        lltv = float(detail["lltv"])
        collateral: list[CollateralLine] = []
        debt: list[DebtLine] = []
        coll_raw: dict[str, int] = {}
        debt_raw: dict[str, int] = {}
        for p in positions:
            if p.price_usd is None:
                raise StateError(f"{item.venue}: {p.asset.symbol} has no USD price")
            _token(tokens, p.asset.address, p.asset.symbol, p.asset.decimals, p.price_usd, item.venue)
            if p.side == "collateral":
                # Morpho values collateral with the market's own oracle, which may differ from the token's USD
                # price used for every venue: scale the LLTV so that the planner's health is Morpho's.
                scale = p.price_usd / tokens[p.asset.address].price_usd
                collateral.append(CollateralLine(token=p.asset.address, amount=p.amount, threshold=lltv * scale))
                coll_raw[p.asset.address] = p.amount_raw
            elif p.side == "debt":
                debt.append(DebtLine(token=p.asset.address, amount=p.amount))
                debt_raw[p.asset.address] = p.amount_raw
        if not debt and not collateral:
            continue
        name = f"{item.venue}:{key}"
        out.append((LendingVenue(name=name, collateral=tuple(collateral), debt=tuple(debt), target=target.target,
                                 offset=target.offset),
                    PlannedVenue(venue=item.venue, protocol="morpho_blue", market_key=key, collateral_raw=coll_raw,
                                 debt_raw=debt_raw)))
    return out


def _perp(item: LatestVenueHealth, cfg: KeeperConfig, protocol: str) -> tuple[PerpVenue, PlannedVenue] | None:
    assert item.health is not None
    extra = item.health.extra
    equity = float(extra.get("equity_usd", 0.0))
    maintenance = float(extra.get("maintenance_margin_usd", 0.0))
    positions = [p for p in item.snapshot.positions if p.side == "perp" and p.price_usd]
    notional = sum(abs(p.amount) * (p.price_usd or 0.0) for p in positions)
    if not positions or maintenance <= 0 or notional <= 0:
        return None
    rate = maintenance / notional  # one blended rate: the venues report the account's maintenance, not per position
    lines = tuple(PerpLine(market=p.asset.address, size=p.amount, mark_usd=p.price_usd or 0.0, maintenance_rate=rate)
                  for p in positions)
    target = cfg.target(item.venue)
    return (PerpVenue(name=item.venue, equity_usd=equity, positions=lines, target=target.target,
                      offset=target.offset),
            PlannedVenue(venue=item.venue, protocol=protocol, market_key=None))


def _token(tokens: dict[str, TokenInfo], address: str, symbol: str, decimals: int, price: float | None,
           venue: str) -> None:
    if price is None or not math.isfinite(price) or price <= 0:
        raise StateError(f"{venue}: no valid USD price for {symbol}")
    tokens.setdefault(address, TokenInfo(address=address, symbol=symbol, decimals=decimals, price_usd=price))


def read_idle_balances(rpc: RpcClient, wallet: str, tokens: Sequence[str], block: int) -> dict[str, int]:
    """The wallet's ERC-20 balances of ``tokens`` at ``block`` (one JSON-RPC batch)."""
    calldata = BALANCE_OF.encode(wallet)
    answers = rpc.batch([("eth_call", RpcClient.call_params(t, calldata, block)) for t in tokens]) if tokens else []
    return {t: int(BALANCE_OF.decode_one(hex_to_bytes(a, f"balanceOf on {t}")))
            for t, a in zip(tokens, answers, strict=True)}


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
        kind = types[item.venue]
        if item.health is None:
            if kind in ("aave_v3", "morpho_blue"):
                raise StateError(f"{wallet}: {item.venue} was not read in the newest sync ({item.snapshot.error})")
            continue
        if kind in ("aave_v3", "morpho_blue"):
            blocks.add(item.snapshot.block_number)
            stamps[item.snapshot.block_number] = int(item.snapshot.block_timestamp.timestamp())
        if kind == "aave_v3":
            pairs = [_lending_aave(item, cfg, tokens)]
        elif kind == "morpho_blue":
            pairs = _lending_morpho(item, cfg, tokens)
        elif kind in ("hyperliquid", "dydx_v4"):
            perp = _perp(item, cfg, kind)
            if perp is not None:
                venues.append(perp[0])
                mapping[perp[0].name] = perp[1]
            continue
        else:
            continue
        for venue, planned in pairs:
            if venue.collateral or venue.debt:
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
