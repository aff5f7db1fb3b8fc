"""Aave v3 (and forks such as Spark): from the connector's snapshot to per-wallet health."""

from __future__ import annotations

from aggregator.views import PositionView, PriceView, VenueHealth, VenueReading
from connectors.aave_v3.decode import decode_reserve_configuration
from connectors.aave_v3.models import (
    AaveAccount,
    AaveEModeCategory,
    AaveMarket,
    AaveReserve,
    AaveSnapshot,
    AaveUserReserve,
)
from connectors.types import BlockRef
from riskcore.fixedpoint import ray_mul
from riskcore.health.aave import AaveEMode, AaveReserveParams, AaveUserBalance, account_data
from riskcore.units import UINT256_MAX, bps_to_fraction, from_raw

__all__ = ["account_state", "evaluate", "market_params", "prices", "reserve_state"]


def _base_decimals(market: AaveMarket) -> int:
    unit = market.base_currency_unit
    decimals = len(str(unit)) - 1
    if unit <= 0 or 10**decimals != unit:
        raise ValueError(f"{market.name}: base currency unit {unit} is not a power of ten")
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


def _reserve_params(r: AaveReserve) -> dict[str, object]:
    return {
        "reserve_id": r.reserve_id,
        "decimals": r.decimals,
        "reserve_ltv_bps": r.ltv_bps,
        "reserve_liquidation_threshold_bps": r.liquidation_threshold_bps,
        "reserve_emode_category": r.emode_category,
        "debt_ceiling": decode_reserve_configuration(r.configuration_raw).debt_ceiling,
        "price_raw": str(r.price_raw),
        "normalized_income_ray": str(r.normalized_income_ray),
        "normalized_variable_debt_ray": str(r.normalized_variable_debt_ray),
    }


def reserve_state(r: AaveReserve, block: BlockRef) -> dict[str, object]:
    """The reserve's exact state at the block as plain JSON (integers beyond 2**53 as decimal strings), stamped
    with the block: what a what-if (``aggregator.whatif``) needs to replay ``supply``/``borrow`` on a reserve the
    wallet does not hold yet."""
    return {**_reserve_params(r), "active": r.active, "frozen": r.frozen, "paused": r.paused,
            "borrowing_enabled": r.borrowing_enabled, "block": block.number, "block_hash": block.hash}


def _raw_detail(ur: AaveUserReserve, r: AaveReserve, side: str) -> dict[str, object]:
    """The wallet's exact balance in the reserve as the protocol holds it: the scaled balance (and, for debt, the
    stable debt), the reserve's parameters and indexes at the block, the wallet's configuration bits."""
    if side == "collateral":
        raw = {"scaled_raw": str(ur.scaled_a_token_balance_raw)}
    else:
        raw = {"scaled_raw": str(ur.scaled_variable_debt_raw), "stable_debt_raw": str(ur.stable_debt_raw)}
    return {**_reserve_params(r), **raw, "usage_as_collateral": ur.usage_as_collateral, "borrowing": ur.borrowing}


def _positions(
    account: AaveAccount, by_asset: dict[str, AaveReserve], base: int, categories: dict[int, AaveEModeCategory]
) -> list[PositionView]:
    out: list[PositionView] = []
    category = categories.get(account.emode_category) if account.emode_category else None
    for ur in account.reserves:
        r = by_asset[ur.asset]
        # The threshold and bonus the protocol applies to this reserve for this wallet (e-mode replaces them).
        src = category if category is not None and r.emode_category == account.emode_category else r
        detail: dict[str, object] = {
            "liquidation_threshold_bps": src.liquidation_threshold_bps,
            "liquidation_bonus_bps": src.liquidation_bonus_bps,
        }
        price_usd = from_raw(r.price_raw, base)
        unit = 10**r.decimals
        supplied = ray_mul(ur.scaled_a_token_balance_raw, r.normalized_income_ray)
        debt = ray_mul(ur.scaled_variable_debt_raw, r.normalized_variable_debt_ray) + ur.stable_debt_raw
        for side, amount_raw in (("collateral", supplied), ("debt", debt)):
            if amount_raw == 0:
                continue
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
                    extra={**detail, **_raw_detail(ur, r, side)},
                )
            )
    return out


def account_state(account: AaveAccount, categories: dict[int, AaveEModeCategory]) -> dict[str, object]:
    """The wallet's own protocol state beside its balances: the configuration bitmap and its e-mode category (with
    the category's parameters, which replace the reserves' own for the reserves in it)."""
    category = categories.get(account.emode_category) if account.emode_category else None
    return {
        "user_configuration": str(account.user_configuration_raw),
        "emode_category": account.emode_category,
        "emode": None if category is None else {
            "ltv_bps": category.ltv_bps,
            "liquidation_threshold_bps": category.liquidation_threshold_bps,
            "liquidation_bonus_bps": category.liquidation_bonus_bps,
            "price_raw": str(category.price_raw or 0),
        },
    }



def evaluate(snapshot: AaveSnapshot, venue: str) -> VenueReading:
    """Compute every wallet's Aave health from the snapshot, and compare it with the protocol's own.

    ``matches_onchain`` is exact equality of the health factor, the collateral and the debt totals,
    and the liquidation threshold; a mismatch is flagged ``onchain_mismatch``. A position priced by
    a flagged oracle (stale, zero, negative) flags the health ``bad_oracle``.
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
        if onchain is None:
            flags.append("onchain_unavailable")  # the protocol's own figure reverted (an invalid oracle price)
        elif not matches:
            flags.append("onchain_mismatch")
        if any(ur.asset in bad_assets for ur in account.reserves):
            flags.append("bad_oracle")
        has_debt = data.total_debt_base_raw != 0
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
                positions=tuple(_positions(account, by_asset, base, categories)),
                flags=tuple(flags),
                extra={"base_decimals": base, **account_state(account, categories)},
            )
        )
    markets: dict[str, dict[str, object]] = {
        r.asset: {
            "symbol": r.symbol,
            "ltv_bps": r.ltv_bps,
            "liquidation_threshold_bps": r.liquidation_threshold_bps,
            "liquidation_bonus_bps": r.liquidation_bonus_bps,
            "emode_category": r.emode_category,
            "decimals": r.decimals,
            "base_decimals": base,
            **reserve_state(r, snapshot.block),
        }
        for r in market.reserves
    }
    return VenueReading(venue=venue, kind="lending", block=snapshot.block, healths=tuple(healths),
                        prices=price_list, markets=markets)
