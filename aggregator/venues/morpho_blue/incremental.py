"""Morpho Blue's incremental read: the watched markets at the block apart from the positions' shares.

Market program (the connector's :meth:`~connectors.morpho_blue.connector.MorphoBlueConnector.market_program`):
per market ``market(id)``, the oracle's ``price()`` and the IRM's ``borrowRateView``, accrued to the block's
timestamp as ``_accrueInterest`` does — two rounds, calls per market, none per wallet.

Account program, one round: per (wallet, market) ``position(id, wallet)`` — supply shares, borrow shares,
collateral, all that Morpho stores per position.

:func:`combine` values cached shares on the block's accrued totals
(:func:`riskcore.venues.morpho_blue.recompute.position_assets`: ``toAssetsDown`` for supply, ``toAssetsUp`` for
borrow) and gives the :class:`~connectors.morpho_blue.models.MorphoSnapshot` the full read gives.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from aggregator.venues.plugin import Incremental
from connectors.errors import InvalidInputError
from connectors.evm.multicall import Call, CallResult, Plan
from connectors.evm.program import ReadProgram
from connectors.morpho_blue.connector import POSITION, MorphoBlueConnector
from connectors.morpho_blue.decode import decode_position
from connectors.morpho_blue.models import MorphoAccount, MorphoMarket, MorphoPosition, MorphoSnapshot
from connectors.types import Address, BlockRef
from riskcore.venues.morpho_blue.health import MorphoMarketState as RiskMarket
from riskcore.venues.morpho_blue.recompute import MorphoCachedPosition, position_assets

__all__ = ["MorphoAccountState", "MorphoMarketState", "account_program", "combine", "incremental", "market_program",
           "steady"]


@dataclass(frozen=True, slots=True)
class MorphoMarketState:
    """The watched markets at one block (stored and accrued totals, prices, rates)."""

    block: BlockRef
    morpho: Address
    markets: tuple[MorphoMarket, ...]


@dataclass(frozen=True, slots=True)
class MorphoAccountState:
    """One wallet's positions as read at ``block``: per watched market id, its shares and collateral."""

    wallet: Address
    block: BlockRef
    positions: tuple[tuple[str, MorphoCachedPosition], ...]


def market_program(connector: MorphoBlueConnector, block: BlockRef) -> ReadProgram[MorphoMarketState]:
    """The watched markets at ``block``, accrued to its timestamp."""
    markets = yield from connector.market_program(block)
    return MorphoMarketState(block, connector.deployment.morpho, markets)


def _positions_plan(
    connector: MorphoBlueConnector, wallets: Sequence[Address], block: BlockRef
) -> Plan[list[MorphoAccountState]]:
    morpho = connector.deployment.morpho
    ids = connector.deployment.markets
    id_bytes = [bytes.fromhex(i[2:]) for i in ids]
    calls: list[Call] = []
    for w in wallets:
        word = bytes(12) + bytes.fromhex(w[2:])
        calls += [Call(morpho, POSITION, calldata=POSITION.selector + b + word, allow_failure=False) for b in id_bytes]

    def decode(results: Sequence[CallResult]) -> list[MorphoAccountState]:
        m = len(ids)
        out = []
        for k, w in enumerate(wallets):
            raws = [decode_position(r.value) for r in results[k * m : (k + 1) * m]]
            out.append(MorphoAccountState(w, block, tuple(
                (i, MorphoCachedPosition(r.supply_shares, r.borrow_shares, r.collateral))
                for i, r in zip(ids, raws, strict=True))))
        return out

    return Plan(calls, decode)


def account_program(
    connector: MorphoBlueConnector, wallets: Sequence[str], block: BlockRef, market: MorphoMarketState | None
) -> ReadProgram[Sequence[MorphoAccountState]]:
    """Every wallet's shares and collateral in every watched market at ``block`` (one round; the market ids are
    the deployment's, so ``market`` is not needed). Wallets are validated before any I/O."""
    checked = connector._program_wallets(wallets, block)
    if not checked:
        return []
    (states,) = yield [_positions_plan(connector, checked, block)]
    out: list[MorphoAccountState] = states
    return out


def _accrued(m: MorphoMarket) -> RiskMarket:
    return RiskMarket(
        total_supply_assets=m.accrued_total_supply_assets_raw, total_supply_shares=m.accrued_total_supply_shares,
        total_borrow_assets=m.accrued_total_borrow_assets_raw, total_borrow_shares=m.accrued_total_borrow_shares,
        last_update=m.accrued_to, fee_wad=m.fee_wad,
    )


def combine(market: MorphoMarketState, accounts: Sequence[MorphoAccountState]) -> MorphoSnapshot:
    """The snapshot of ``accounts`` at the market's block (pure): each position's assets from its cached shares
    on the block's accrued totals. An account read after the block, or holding a market not watched, is refused
    (:class:`~connectors.errors.InvalidInputError`)."""
    block = market.block
    by_id = {m.market_id: m for m in market.markets}
    accrued = {i: _accrued(m) for i, m in by_id.items()}
    out = []
    for state in accounts:
        if state.block.number > block.number or state.block.chain_id != block.chain_id:
            raise InvalidInputError(f"{state.wallet}: account state of block {state.block.number} "
                                    f"(chain {state.block.chain_id}) cannot be valued at block {block.number}")
        held = dict(state.positions)
        missing = [i for i in held if i not in by_id]
        if missing:
            raise InvalidInputError(f"{state.wallet}: markets {missing} are not watched at block {block.number}")
        positions = []
        for m in market.markets:
            cached = held.get(m.market_id, MorphoCachedPosition(0, 0, 0))
            supply, borrow = position_assets(cached, accrued[m.market_id])
            positions.append(MorphoPosition(
                market_id=m.market_id, supply_shares=cached.supply_shares, borrow_shares=cached.borrow_shares,
                collateral_raw=cached.collateral_raw, supply_assets_raw=supply, borrow_assets_raw=borrow))
        out.append(MorphoAccount(wallet=state.wallet, positions=tuple(positions)))
    return MorphoSnapshot(block=block, morpho=market.morpho, markets=market.markets, accounts=tuple(out))


def wallet_of(state: MorphoAccountState) -> str:
    return state.wallet


def _ratio_within(assets_then: int, shares_then: int, assets_now: int, shares_now: int, drift: float) -> bool:
    """Assets per share grown by at most ``drift`` (relative), never shrunk."""
    if (assets_then, shares_then) == (assets_now, shares_now):
        return True
    if shares_then <= 0 or shares_now <= 0 or assets_then <= 0:
        return False
    then, now = assets_then * shares_now, assets_now * shares_then  # both × shares_then × shares_now
    return then <= now and (now - then) <= drift * then


def steady(then: MorphoMarketState, now: MorphoMarketState, prices_then: Mapping[str, float],
           prices_now: Mapping[str, float], drift: float) -> Callable[[MorphoAccountState], bool]:
    """The plugin's ``Incremental.steady``: an account is steady from ``then`` to ``now`` when every market it
    holds a position in kept its parameters, its oracle price and its loan token's USD price, and its supply and
    borrow assets per share grew by at most ``drift`` — its collateral values do not move, its debt and supply
    move by at most ``drift``, its health factor by about that — and when none of its amounts (collateral, debt,
    supply, the collateral's value in loan units) is under ``1 / drift`` raw units (the protocol's roundings,
    one unit each, stay within ``drift``)."""
    before = {m.market_id: m for m in then.markets}
    markets = {m.market_id: m for m in now.markets}
    kept: dict[str, bool] = {}
    for m in now.markets:
        b = before.get(m.market_id)
        kept[m.market_id] = b is not None and (
            b.price_raw == m.price_raw and m.price_raw > 0 and b.lltv_wad == m.lltv_wad
            and (b.loan_decimals, b.collateral_decimals) == (m.loan_decimals, m.collateral_decimals)
            and m.loan_token in prices_now and prices_then.get(m.loan_token) == prices_now[m.loan_token]
            and _ratio_within(b.accrued_total_borrow_assets_raw, b.accrued_total_borrow_shares,
                              m.accrued_total_borrow_assets_raw, m.accrued_total_borrow_shares, drift)
            and _ratio_within(b.accrued_total_supply_assets_raw, b.accrued_total_supply_shares,
                              m.accrued_total_supply_assets_raw, m.accrued_total_supply_shares, drift))
    least = 1.0 / drift

    def test(state: MorphoAccountState) -> bool:
        for market_id, pos in state.positions:
            if not (pos.supply_shares or pos.borrow_shares or pos.collateral_raw):
                continue
            if not kept.get(market_id, False):
                return False
            m = markets[market_id]
            if pos.collateral_raw and (pos.collateral_raw < least
                                       or pos.collateral_raw * m.price_raw // 10**36 < least):
                return False
            if pos.borrow_shares and (pos.borrow_shares * m.accrued_total_borrow_assets_raw
                                      < least * m.accrued_total_borrow_shares):
                return False
            if pos.supply_shares and (pos.supply_shares * m.accrued_total_supply_assets_raw
                                      < least * m.accrued_total_supply_shares):
                return False
        return True

    return test


def incremental(connector: MorphoBlueConnector) -> Incremental:
    """The plugin's :class:`~aggregator.venues.plugin.Incremental` over ``connector``."""
    return Incremental(
        market_program=lambda block, _cached: market_program(connector, block),
        account_program=lambda wallets, block, market: account_program(connector, wallets, block, market),
        combine=combine,
        wallet_of=wallet_of,
        steady=steady,
    )
