"""Aave v3 (and forks such as Spark): from the connector's snapshot to per-wallet health."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aggregator.venues.aave_v3.detail import (
    AaveBalanceDetail,
    AaveEModeDetail,
    AaveHealthDetail,
    AaveMarketReserveDetail,
)
from aggregator.venues.limits import largest_passing
from aggregator.views import PositionView, PriceView, VenueHealth, VenueReading
from connectors.aave_v3.decode import decode_reserve_configuration
from connectors.aave_v3.models import (
    AaveAccount,
    AaveEModeCategory,
    AaveMarket,
    AaveReserve,
    AaveSnapshot,
)
from connectors.errors import DecodeError
from connectors.types import BlockRef
from riskcore.fixedpoint import ray_mul
from riskcore.units import UINT256_MAX, bps_to_fraction, from_raw
from riskcore.venues.aave_v3.health import (
    AaveAccountData,
    AaveEMode,
    AaveReserveParams,
    AaveUserBalance,
    account_data,
    withdraw_check,
)

__all__ = ["emode_detail", "evaluate", "market_params", "max_withdraw_raw", "prices", "reserve_state"]


def _base_decimals(market: AaveMarket) -> int:
    unit = market.base_currency_unit
    decimals = len(str(unit)) - 1
    if unit <= 0 or 10**decimals != unit:
        raise DecodeError(f"{market.name}: base currency unit {unit} is not a power of ten")
    return decimals


def market_params(market: AaveMarket) -> tuple[dict[int, AaveReserveParams], dict[int, AaveEMode]]:
    """The risk core's view of the market: reserves by id, e-mode categories by id."""
    reserves = {
        r.reserve_id: AaveReserveParams(
            reserve_id=r.reserve_id,
            decimals=r.decimals,
            ltv_bps=r.ltv_bps,
            liquidation_threshold_bps=r.liquidation_threshold_bps,
            emode_category=r.emode_category,
            price_raw=r.price_raw,
            normalized_income_ray=r.normalized_income_ray,
            normalized_variable_debt_ray=r.normalized_variable_debt_ray,
        )
        for r in market.reserves
    }
    emodes = {
        c.category_id: AaveEMode(c.ltv_bps, c.liquidation_threshold_bps, c.price_raw or 0)
        for c in market.emode_categories
    }
    return reserves, emodes


def prices(snapshot: AaveSnapshot, source: str) -> tuple[PriceView, ...]:
    """Every reserve's oracle price at the block, with the feed's own timestamp and quality flags."""
    market = snapshot.market
    base = _base_decimals(market)
    out = []
    for r in market.reserves:
        feed = r.feed
        flags = list(feed.flags) if feed is not None else []
        if r.price_raw == 0 and "zero" not in flags and "negative" not in flags:
            flags.append("zero")  # (the oracle reverts on a zero or negative answer: read as 0)
        out.append(
            PriceView(
                chain_id=snapshot.block.chain_id,
                asset=r.symbol,
                asset_address=r.asset,
                decimals=r.decimals,
                source=source,
                source_address=r.price_source,
                price_raw=r.price_raw,
                price_decimals=base,
                price_usd=from_raw(r.price_raw, base),
                updated_at=feed.updated_at if feed is not None else None,
                age_s=feed.age_s if feed is not None else None,
                flags=tuple(flags),
            )
        )
    return tuple(out)


def _reserve_fields(r: AaveReserve) -> dict[str, int]:
    """The reserve's state (:class:`~aggregator.venues.aave_v3.detail.AaveReserveDetail`'s fields)."""
    return {
        "reserve_id": r.reserve_id,
        "decimals": r.decimals,
        "reserve_ltv_bps": r.ltv_bps,
        "reserve_liquidation_threshold_bps": r.liquidation_threshold_bps,
        "reserve_emode_category": r.emode_category,
        "debt_ceiling": decode_reserve_configuration(r.configuration_raw).debt_ceiling,
        "price_raw": r.price_raw,
        "normalized_income_ray": r.normalized_income_ray,
        "normalized_variable_debt_ray": r.normalized_variable_debt_ray,
    }


def reserve_state(r: AaveReserve, block: BlockRef, base_decimals: int) -> AaveMarketReserveDetail:
    """The reserve as the venue stores it in its market state: its parameters and its exact state at the block,
    stamped with the block — what a what-if (``aggregator.whatif``) needs to replay ``supply``/``borrow`` on a
    reserve the wallet does not hold yet."""
    return AaveMarketReserveDetail(
        symbol=r.symbol, ltv_bps=r.ltv_bps, liquidation_threshold_bps=r.liquidation_threshold_bps,
        liquidation_bonus_bps=r.liquidation_bonus_bps, emode_category=r.emode_category, base_decimals=base_decimals,
        **_reserve_fields(r), active=r.active, frozen=r.frozen, paused=r.paused,
        borrowing_enabled=r.borrowing_enabled, block=block.number, block_hash=block.hash,
    )


def max_withdraw_raw(
    reserves: Mapping[int, AaveReserveParams],
    balances: Sequence[AaveUserBalance],
    user_emode: int,
    emodes: Mapping[int, AaveEMode],
    reserve: AaveReserve,
    data: AaveAccountData,
) -> int:
    """The largest ``Pool.withdraw(asset, amount)`` the protocol accepts for this wallet at the block.

    Aave v3's rule (``SupplyLogic.executeWithdraw``): when the reserve is used as collateral and the wallet
    borrows anything, the aTokens are burnt (``amount.rayDiv(liquidityIndex)`` scaled units, the collateral bit
    cleared on a full withdrawal) and then ``validateHFAndLtv`` must pass: health factor ≥ 1 and, while any
    zero-LTV collateral remains, only a zero-LTV reserve may be withdrawn. Otherwise the whole balance can be
    withdrawn. Found by bisection on :func:`~riskcore.venues.aave_v3.health.withdraw_check` (the exact
    :func:`account_data` of the balances after the withdrawal, its sums taken once: O(1) per amount where
    recomputing the account was O(reserves) — 2.4 s of a 1,000-wallet block's 4.3 s went to it). The reserve's
    available liquidity (the aToken's underlying balance) also caps a withdrawal; it is not read here.
    """
    own = next(b for b in balances if b.reserve_id == reserve.reserve_id)
    balance = ray_mul(own.scaled_a_token_balance_raw, reserve.normalized_income_ray)
    if not reserve.active or reserve.paused:
        return 0
    borrowing = any(b.borrowing for b in balances)
    if not (own.usage_as_collateral and borrowing):
        return balance

    ok = withdraw_check(reserves, balances, reserve.reserve_id, user_emode, emodes)
    guess = None
    counted = data.collateral_base_raw.get(reserve.reserve_id, 0)
    lt = _effective(reserve, user_emode, emodes)[1]
    if counted and lt and data.total_debt_base_raw:
        spare_base = (data.total_collateral_base_raw * data.current_liquidation_threshold_bps / 1e4
                      - data.total_debt_base_raw) * 1e4 / lt
        guess = int(max(spare_base, 0.0) / counted * balance)
    return largest_passing(ok, balance, guess)


def _effective(reserve: AaveReserve, user_emode: int, emodes: Mapping[int, AaveEMode]) -> tuple[int, int]:
    """The (LTV, liquidation threshold) in bps the protocol applies to ``reserve`` for a wallet in ``user_emode``:
    the e-mode category's when the reserve belongs to it; an LTV of 0 stays 0 (zero-LTV collateral)."""
    category = emodes.get(user_emode) if user_emode and reserve.emode_category == user_emode else None
    ltv, lt = (category.ltv_bps, category.liquidation_threshold_bps) if category is not None \
        else (reserve.ltv_bps, reserve.liquidation_threshold_bps)
    return (0 if reserve.ltv_bps == 0 else ltv), lt


def _positions(
    account: AaveAccount,
    by_asset: dict[str, AaveReserve],
    base: int,
    categories: dict[int, AaveEModeCategory],
    params: tuple[Mapping[int, AaveReserveParams], Mapping[int, AaveEMode]],
    balances: Sequence[AaveUserBalance],
    data: AaveAccountData,
    detail: bool = True,
) -> list[PositionView]:
    """The wallet's supplies and debts, each with the parameters the protocol applies to it for this wallet and
    (supplies) the largest withdrawal it accepts now; every position carries the account's borrowing room
    (``detail=False``: none of that, ``extra`` empty)."""
    out: list[PositionView] = []
    reserves, emodes = params
    category = categories.get(account.emode_category) if account.emode_category else None
    available_usd = from_raw(data.available_borrows_base_raw, base)
    for ur in account.reserves:
        r = by_asset[ur.asset]
        # The threshold and bonus the protocol applies to this reserve for this wallet (e-mode replaces them).
        src = category if category is not None and r.emode_category == account.emode_category else r
        ltv_bps, _lt = _effective(r, account.emode_category, emodes)
        price_usd = from_raw(r.price_raw, base)
        unit = 10**r.decimals
        supplied = ray_mul(ur.scaled_a_token_balance_raw, r.normalized_income_ray)
        debt = ray_mul(ur.scaled_variable_debt_raw, r.normalized_variable_debt_ray) + ur.stable_debt_raw
        for side, amount_raw in (("collateral", supplied), ("debt", debt)):
            if amount_raw == 0:
                continue
            # What only the wallet's actions change: its scaled balance, stable debt, flags and e-mode category.
            state = (f"emode={account.emode_category};scaled={ur.scaled_a_token_balance_raw};"
                     f"collateral={ur.usage_as_collateral:d}" if side == "collateral" else
                     f"emode={account.emode_category};scaled={ur.scaled_variable_debt_raw};"
                     f"stable={ur.stable_debt_raw};borrowing={ur.borrowing:d}")
            extra: dict[str, object] = {}
            if detail:
                if side == "collateral":
                    withdrawable = max_withdraw_raw(reserves, balances, account.emode_category, emodes, r, data)
                    own: dict[str, object] = {
                        "max_withdraw_raw": withdrawable, "max_withdraw": from_raw(withdrawable, r.decimals),
                        "max_withdraw_usd": from_raw(withdrawable * r.price_raw // unit, base),
                        "scaled_raw": ur.scaled_a_token_balance_raw}
                else:
                    own = {"scaled_raw": ur.scaled_variable_debt_raw, "stable_debt_raw": ur.stable_debt_raw}
                extra = AaveBalanceDetail(
                    liquidation_threshold_bps=src.liquidation_threshold_bps,
                    liquidation_bonus_bps=src.liquidation_bonus_bps, ltv_bps=ltv_bps,
                    available_borrows_usd=available_usd, **own, **_reserve_fields(r),
                    usage_as_collateral=ur.usage_as_collateral, borrowing=ur.borrowing,
                ).stored()
            out.append(
                PositionView(
                    asset=r.symbol,
                    asset_address=r.asset,
                    decimals=r.decimals,
                    side="collateral" if side == "collateral" else "debt",
                    amount_raw=amount_raw,
                    amount=from_raw(amount_raw, r.decimals),
                    price_usd=price_usd,
                    value_usd=from_raw(amount_raw * r.price_raw // unit, base),
                    is_collateral=side == "collateral"
                    and ur.usage_as_collateral
                    and r.liquidation_threshold_bps != 0,
                    market_key=r.asset,
                    extra=extra,
                    state=state,
                )
            )
    return out


def emode_detail(account: AaveAccount, categories: dict[int, AaveEModeCategory]) -> AaveEModeDetail | None:
    """The wallet's e-mode category, whose parameters replace the reserves' own for the reserves in it (``None``:
    the wallet is in none)."""
    category = categories.get(account.emode_category) if account.emode_category else None
    if category is None:
        return None
    return AaveEModeDetail(ltv_bps=category.ltv_bps, liquidation_threshold_bps=category.liquidation_threshold_bps,
                           liquidation_bonus_bps=category.liquidation_bonus_bps, price_raw=category.price_raw or 0)


def _provenance(account: AaveAccount) -> dict[str, object]:
    """A recomputed account's health detail says so (``source``) and when it was last checked against the
    protocol (``verified_at_block``); a read one stores nothing more (``matches_onchain`` is its check)."""
    if account.source != "recomputed":
        return {}
    return {"source": account.source, "verified_at_block": account.verified_at_block}


def evaluate(snapshot: AaveSnapshot, venue: str, *, detail: bool = True) -> VenueReading:
    """Compute every wallet's Aave health from the snapshot, and compare it with the protocol's own.

    ``matches_onchain`` is exact equality of the health factor, the collateral and the debt totals,
    and the liquidation threshold; a mismatch is flagged ``onchain_mismatch``. A position priced by
    a flagged oracle (stale, zero, negative) flags the health ``bad_oracle``. ``detail=False`` leaves out the
    venue's detail (the positions' ``extra`` empty, the health's only its provenance, the largest withdrawals not
    searched): every other field is as with it.
    """
    market = snapshot.market
    base = _base_decimals(market)
    reserves, emodes = market_params(market)
    by_asset = {r.asset: r for r in market.reserves}
    categories = {c.category_id: c for c in market.emode_categories}
    price_list = prices(snapshot, f"{venue}.oracle")
    bad_assets = {p.asset_address for p in price_list if p.flags}
    healths = []
    for account in snapshot.accounts:
        balances = [
            AaveUserBalance(
                reserve_id=by_asset[ur.asset].reserve_id,
                scaled_a_token_balance_raw=ur.scaled_a_token_balance_raw,
                scaled_variable_debt_raw=ur.scaled_variable_debt_raw,
                stable_debt_raw=ur.stable_debt_raw,
                usage_as_collateral=ur.usage_as_collateral,
                borrowing=ur.borrowing,
            )
            for ur in account.reserves
        ]
        data = account_data(reserves, balances, account.emode_category, emodes)
        onchain = account.onchain
        matches = onchain is not None and (
            data.health_factor_wad == onchain.health_factor_wad
            and data.total_collateral_base_raw == onchain.total_collateral_base_raw
            and data.total_debt_base_raw == onchain.total_debt_base_raw
            and data.current_liquidation_threshold_bps == onchain.current_liquidation_threshold_bps
        )
        flags = []
        if account.source == "recomputed":
            pass  # no protocol figure was read at this block: nothing to disagree with (``source`` says so)
        elif onchain is None:
            flags.append("onchain_unavailable")  # the protocol's own figure reverted (an invalid oracle price)
        elif not matches:
            flags.append("onchain_mismatch")
        if any(ur.asset in bad_assets for ur in account.reserves):
            flags.append("bad_oracle")
        has_debt = data.total_debt_base_raw != 0
        positions = _positions(account, by_asset, base, categories, (reserves, emodes), balances, data, detail)
        healths.append(
            VenueHealth(
                wallet=account.wallet,
                venue=venue,
                kind="lending",
                health_factor=data.health_factor_wad / 10**18 if has_debt else None,
                health_factor_raw=data.health_factor_wad if has_debt else None,
                onchain_health_factor_raw=(
                    onchain.health_factor_wad if onchain is not None and onchain.health_factor_wad != UINT256_MAX
                    else None
                ),
                matches_onchain=matches if onchain is not None else None,
                collateral_usd=from_raw(data.total_collateral_base_raw, base),
                debt_usd=from_raw(data.total_debt_base_raw, base),
                liquidation_threshold=(
                    bps_to_fraction(data.current_liquidation_threshold_bps)
                    if data.total_collateral_base_raw
                    else None
                ),
                positions=tuple(positions),
                flags=tuple(flags),
                extra=_provenance(account) if not detail else AaveHealthDetail(
                    base_decimals=base,
                    user_configuration=account.user_configuration_raw,
                    emode_category=account.emode_category,
                    emode=emode_detail(account, categories),
                    available_borrows_usd=from_raw(data.available_borrows_base_raw, base),
                    ltv=bps_to_fraction(data.ltv_bps) if data.total_collateral_base_raw else None,
                    net_worth_usd=sum(p.value_usd if p.side == "collateral" else -p.value_usd for p in positions),
                    **_provenance(account),
                ).stored(),
            )
        )
    markets: dict[str, dict[str, object]] = {
        r.asset: reserve_state(r, snapshot.block, base).stored() for r in market.reserves
    }
    return VenueReading(venue=venue, kind="lending", block=snapshot.block, healths=tuple(healths),
                        prices=price_list, markets=markets)
