"""Aave v3's incremental read: the block's market state apart from the wallets' raw state, recomputed together.

Market program (the connector's own :meth:`~connectors.aave_v3.connector.AaveV3Connector.market_program`, rounds
A–E without wallets): reserves, configurations, normalized income and variable debt indexes accrued to the block,
oracle prices and feeds, e-mode categories. Its calls grow with reserves, never with wallets.

Account program, one round (the reserve list and token addresses taken from a known market state; without one
the market is discovered first): per wallet ``getUserConfiguration``, ``getUserEMode`` and
``getUserAccountData`` (the protocol's own figures at the read block, kept as that block's check); per (wallet,
reserve) ``aToken.scaledBalanceOf``, ``variableDebtToken.scaledBalanceOf``, and the stable debt's raw state
``principalBalanceOf``, ``getUserStableRate``, ``getUserLastUpdated``.

:func:`combine` rebuilds the :class:`~connectors.aave_v3.models.AaveSnapshot` the full read gives: scaled
balances as cached (``evaluate`` multiplies them by the block's indexes, ``rayMul`` half up as v3.0.2 does), the
stable debt accrued to the block's timestamp (:func:`riskcore.venues.aave_v3.recompute.stable_debt_raw`). An
account read at the market's own block keeps the protocol's figures and is checked as the full read is; one read
earlier is marked ``source = "recomputed"`` with the block it was last verified at (no ``onchain`` figure, and
not flagged "onchain unavailable").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from aggregator.venues.plugin import Incremental
from connectors.aave_v3.connector import (
    GET_USER_ACCOUNT_DATA,
    GET_USER_CONFIGURATION,
    GET_USER_EMODE,
    SCALED_BALANCE_OF,
    AaveV3Connector,
)
from connectors.aave_v3.models import AaveAccount, AaveMarket, AaveSnapshot, AaveUserReserve, OnchainAccountData
from connectors.errors import DecodeError, InvalidInputError
from connectors.evm.abi import Fn
from connectors.evm.multicall import Call, CallResult, Plan
from connectors.evm.program import ReadProgram
from connectors.types import Address, BlockRef
from riskcore.fixedpoint import ray_mul
from riskcore.venues.aave_v3.recompute import AaveCachedBalance, stable_debt_raw

__all__ = [
    "AaveAccountState",
    "AaveMarketState",
    "AaveReserveState",
    "account_program",
    "combine",
    "incremental",
    "market_program",
    "steady",
]

PRINCIPAL_BALANCE_OF = Fn("principalBalanceOf(address)(uint256)")
GET_USER_STABLE_RATE = Fn("getUserStableRate(address)(uint256)")
GET_USER_LAST_UPDATED = Fn("getUserLastUpdated(address)(uint40)")

_PER_WALLET = 3
_PER_RESERVE = 5


@dataclass(frozen=True, slots=True)
class AaveMarketState:
    """The market at one block (what the market program returns)."""

    block: BlockRef
    market: AaveMarket


@dataclass(frozen=True, slots=True)
class AaveReserveState:
    """A wallet's raw state in one reserve (only reserves holding something or flagged are kept)."""

    asset: Address
    balance: AaveCachedBalance


@dataclass(frozen=True, slots=True)
class AaveAccountState:
    """One wallet's raw Aave state as read at ``block``: nothing in it accrues."""

    wallet: Address
    block: BlockRef
    user_configuration_raw: int
    emode_category: int
    reserves: tuple[AaveReserveState, ...]
    onchain: OnchainAccountData | None
    """``getUserAccountData`` at ``block`` (None when it reverted)."""


def market_program(connector: AaveV3Connector, block: BlockRef) -> ReadProgram[AaveMarketState]:
    """The block's market (the connector's market program), stamped with the block."""
    market = yield from connector.market_program(block)
    return AaveMarketState(block, market)


def _stable_calls(token: str, wallet: str) -> list[Call]:
    # A reserve without a stable debt token (zero address) answers "no code": allowed to fail → 0.
    missing = int(token, 16) == 0
    return [Call(token, fn, (wallet,), allow_failure=missing)
            for fn in (PRINCIPAL_BALANCE_OF, GET_USER_STABLE_RATE, GET_USER_LAST_UPDATED)]


def _accounts_plan(market: AaveMarket, wallets: Sequence[Address], block: BlockRef) -> Plan[list[AaveAccountState]]:
    reserves = market.reserves
    stride = _PER_WALLET + _PER_RESERVE * len(reserves)
    calls: list[Call] = []
    for w in wallets:
        calls += [
            Call(market.pool, GET_USER_CONFIGURATION, (w,), allow_failure=False),
            Call(market.pool, GET_USER_EMODE, (w,), allow_failure=False),
            Call(market.pool, GET_USER_ACCOUNT_DATA, (w,), allow_failure=True),
        ]
        for r in reserves:
            calls += [
                Call(r.a_token, SCALED_BALANCE_OF, (w,), allow_failure=False),
                Call(r.variable_debt_token, SCALED_BALANCE_OF, (w,), allow_failure=False),
                *_stable_calls(r.stable_debt_token, w),
            ]

    def value(res: CallResult) -> int:
        return int(res.value[0]) if res.ok else 0

    def decode(results: Sequence[CallResult]) -> list[AaveAccountState]:
        out = []
        for k, w in enumerate(wallets):
            chunk = results[k * stride : (k + 1) * stride]
            cfg = int(chunk[0].value[0][0])
            ids = {r.reserve_id for r in reserves}
            unknown = [rid for rid in range(cfg.bit_length() // 2 + 1) if (cfg >> (2 * rid)) & 3 and rid not in ids]
            if unknown:
                raise DecodeError(f"{w}: configuration bits set for reserve ids {unknown} not in the market")
            kept = []
            for i, r in enumerate(reserves):
                at = _PER_WALLET + _PER_RESERVE * i
                a, v, principal, rate, last = (value(x) for x in chunk[at : at + _PER_RESERVE])
                borrowing = bool((cfg >> (2 * r.reserve_id)) & 1)
                collateral = bool((cfg >> (2 * r.reserve_id + 1)) & 1)
                if not (a or v or principal or borrowing or collateral):
                    continue
                kept.append(AaveReserveState(r.asset, AaveCachedBalance(
                    reserve_id=r.reserve_id, scaled_a_token_balance_raw=a, scaled_variable_debt_raw=v,
                    stable_principal_raw=principal, stable_rate_ray=rate, stable_last_updated=last,
                    usage_as_collateral=collateral, borrowing=borrowing)))
            data = chunk[2]
            out.append(AaveAccountState(
                wallet=w, block=block, user_configuration_raw=cfg, emode_category=int(chunk[1].value[0]),
                reserves=tuple(kept),
                onchain=OnchainAccountData(
                    total_collateral_base_raw=data.value[0], total_debt_base_raw=data.value[1],
                    available_borrows_base_raw=data.value[2], current_liquidation_threshold_bps=data.value[3],
                    ltv_bps=data.value[4], health_factor_wad=data.value[5],
                ) if data.ok else None,
            ))
        return out

    return Plan(calls, decode)


def account_program(
    connector: AaveV3Connector, wallets: Sequence[str], block: BlockRef, market: AaveMarketState | None
) -> ReadProgram[Sequence[AaveAccountState]]:
    """Every wallet's raw state at ``block`` (one round when ``market`` is known: its reserves' tokens are
    immutable; the market is read first otherwise). Wallets are validated before any I/O."""
    checked = connector._program_wallets(wallets, block)
    known = market.market if market is not None else (yield from connector.market_program(block))
    if not checked:
        return []
    (states,) = yield [_accounts_plan(known, checked, block)]
    out: list[AaveAccountState] = states
    return out


def _account(state: AaveAccountState, timestamp: int, block: BlockRef) -> AaveAccount:
    same_block = state.block.number == block.number and state.block.hash == block.hash
    reserves = tuple(
        AaveUserReserve(
            asset=r.asset,
            scaled_a_token_balance_raw=r.balance.scaled_a_token_balance_raw,
            scaled_variable_debt_raw=r.balance.scaled_variable_debt_raw,
            stable_debt_raw=stable_debt_raw(r.balance.stable_principal_raw, r.balance.stable_rate_ray,
                                            r.balance.stable_last_updated, timestamp),
            usage_as_collateral=r.balance.usage_as_collateral,
            borrowing=r.balance.borrowing,
        )
        for r in state.reserves
    )
    verified = state.block.number if state.onchain is not None else None
    if same_block:
        return AaveAccount(wallet=state.wallet, user_configuration_raw=state.user_configuration_raw,
                           emode_category=state.emode_category, reserves=reserves, onchain=state.onchain,
                           read_block=state.block.number, verified_at_block=verified)
    return AaveAccount(wallet=state.wallet, user_configuration_raw=state.user_configuration_raw,
                       emode_category=state.emode_category, reserves=reserves, onchain=None, source="recomputed",
                       read_block=state.block.number, verified_at_block=verified)


def combine(market: AaveMarketState, accounts: Sequence[AaveAccountState]) -> AaveSnapshot:
    """The snapshot of ``accounts`` at the market's block (pure): each account's stable debt accrued to the
    block's timestamp, its scaled balances kept for ``evaluate`` to multiply by the block's indexes. An account
    read after the market's block is refused (:class:`~connectors.errors.InvalidInputError`), as is one holding a
    reserve the market does not list."""
    block = market.block
    assets = {r.asset for r in market.market.reserves}
    out = []
    for state in accounts:
        if state.block.number > block.number or state.block.chain_id != block.chain_id:
            raise InvalidInputError(f"{state.wallet}: account state of block {state.block.number} "
                                    f"(chain {state.block.chain_id}) cannot be valued at block {block.number}")
        missing = [r.asset for r in state.reserves if r.asset not in assets]
        if missing:
            raise InvalidInputError(f"{state.wallet}: reserves {missing} are not in the market at block {block.number}")
        out.append(_account(state, block.timestamp, block))
    return AaveSnapshot(block=block, market=market.market, accounts=tuple(out))


def wallet_of(state: AaveAccountState) -> str:
    return state.wallet


def _within(then: int, now: int, drift: float) -> bool:
    """An index that only grows, grown by at most ``drift`` (relative)."""
    return then == now or (0 < then <= now and (now - then) <= drift * then)


def steady(then: AaveMarketState, now: AaveMarketState, _prices_then: Mapping[str, float],
           _prices_now: Mapping[str, float], drift: float) -> Callable[[AaveAccountState], bool]:
    """The plugin's ``Incremental.steady``: an account is steady from ``then`` to ``now`` when every reserve it
    holds kept its configuration, its oracle price and the feed's flags, and its two indexes grew by at most
    ``drift`` — every amount and value then moves by at most ``drift`` (the health factor, a ratio of sums of
    them, by about twice that); and when

    * no amount or base-currency value it holds is under ``1 / drift`` raw units (the protocol's integer
      roundings, one unit each, stay within ``drift``),
    * it has no stable debt (it accrues by the timestamp, not by an index read here),
    * the protocol's average liquidation threshold (an integer of bps: Σ value × threshold // Σ value over the
      collateral it counts) cannot turn: with one threshold it is that one; with several, the exact ratio at
      ``then`` stands farther from an integer than the weights' growth can move it — (highest − lowest threshold)
      × 2 × ``drift``, plus four units of each value's rounding — so a turn of one bps, more than the tolerance,
      is never skipped;
    * its e-mode categories are unchanged."""
    before = {r.asset: r for r in then.market.reserves}
    same_categories = then.market.emode_categories == now.market.emode_categories
    categories = {c.category_id: c for c in now.market.emode_categories}
    reserves = {r.asset: r for r in now.market.reserves}
    kept: dict[str, bool] = {}
    for r in now.market.reserves:
        b = before.get(r.asset)
        kept[r.asset] = b is not None and (
            b.configuration_raw == r.configuration_raw and b.price_raw == r.price_raw and r.price_raw > 0
            and b.decimals == r.decimals and b.reserve_id == r.reserve_id
            and (b.feed.flags if b.feed is not None else None) == (r.feed.flags if r.feed is not None else None)
            and _within(b.normalized_income_ray, r.normalized_income_ray, drift)
            and _within(b.normalized_variable_debt_ray, r.normalized_variable_debt_ray, drift))
    least = 1.0 / drift

    def test(state: AaveAccountState) -> bool:
        if state.emode_category and not same_categories:
            return False
        category = categories.get(state.emode_category) if state.emode_category else None
        counted: list[tuple[str, int, int]] = []  # (asset, scaled balance, threshold) of each collateral counted
        for held in state.reserves:
            if not kept.get(held.asset, False):
                return False
            bal, r = held.balance, reserves[held.asset]
            if bal.stable_principal_raw:
                return False
            unit = 10**r.decimals
            for scaled, index in ((bal.scaled_a_token_balance_raw, r.normalized_income_ray),
                                  (bal.scaled_variable_debt_raw, r.normalized_variable_debt_ray)):
                if scaled:
                    amount = ray_mul(scaled, index)
                    if amount < least or amount * r.price_raw // unit < least:
                        return False
            if bal.scaled_a_token_balance_raw and bal.usage_as_collateral and r.liquidation_threshold_bps:
                in_category = category is not None and r.emode_category == state.emode_category
                counted.append((held.asset, bal.scaled_a_token_balance_raw,
                                category.liquidation_threshold_bps if category is not None and in_category
                                else r.liquidation_threshold_bps))
        if len({lt for _, _, lt in counted}) <= 1:
            return True
        # each collateral's base-currency value at then, as the protocol computes it (its price is unchanged)
        weighted = [(ray_mul(scaled, before[asset].normalized_income_ray) * before[asset].price_raw
                     // 10 ** before[asset].decimals, lt) for asset, scaled, lt in counted]
        return average_threshold_holds(weighted, drift)

    return test


def average_threshold_holds(weighted: Sequence[tuple[int, int]], drift: float) -> bool:
    """Whether the protocol's average liquidation threshold ``Σ value × threshold // Σ value`` (bps, an integer)
    over the collateral ``weighted`` ((value in base-currency units, threshold bps) each) stays the same integer when
    every value grows by a factor within [1, 1 + ``drift``] and then rounds by a unit either way: the exact ratio
    stands farther from an integer than (highest − lowest threshold) × 2 × ``drift`` plus four units of rounding per
    value (relative to the total)."""
    total = sum(v for v, _ in weighted)
    if total <= 0:
        return False
    _, rem = divmod(sum(v * lt for v, lt in weighted), total)
    frac = rem / total
    lts = [lt for _, lt in weighted]
    move = (max(lts) - min(lts)) * 2 * drift + 4 * len(weighted) * max(lts) / total
    return move < frac < 1 - move


def incremental(connector: AaveV3Connector) -> Incremental:
    """The plugin's :class:`~aggregator.venues.plugin.Incremental` over ``connector``."""
    return Incremental(
        market_program=lambda block, _cached: market_program(connector, block),
        account_program=lambda wallets, block, market: account_program(connector, wallets, block, market),
        combine=combine,
        wallet_of=wallet_of,
        steady=steady,
    )
