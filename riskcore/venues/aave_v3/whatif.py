"""Aave v3.0.x what-if replays: a wallet's own actions with the pool's integer arithmetic.

``SupplyLogic``, ``BorrowLogic``, ``ValidationLogic`` of ``@aave/core-v3`` 1.19: every action mints or burns
*scaled* balances, ``amount.rayDiv(index)`` rounded half up, at the reserve's index of the block; a balance is
``scaled.rayMul(index)``. :class:`AaveWallet` holds the wallet's scaled balances and configuration bits;
:func:`aave_supply`, :func:`aave_withdraw`, :func:`aave_borrow`, :func:`aave_repay` return the wallet after the
action and, where the pool would revert, the reason (:class:`AaveStep`). The health is then
:func:`riskcore.venues.aave_v3.health.account_data` — ``getUserAccountData`` to the last unit.

Units (see :mod:`riskcore.whatif`): prices in the oracle's base currency units (1e8 = $1), ``*_ray`` 1e27,
``*_bps`` 1e4. No I/O, no floats.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from riskcore.fixedpoint import ray_div, ray_mul
from riskcore.venues.aave_v3.health import AaveAccountData, AaveEMode, AaveReserveParams, AaveUserBalance, account_data
from riskcore.whatif import positive

__all__ = [
    "HEALTH_FACTOR_LIQUIDATION_THRESHOLD",
    "AaveReserveFlags",
    "AaveStep",
    "AaveWallet",
    "aave_borrow",
    "aave_repay",
    "aave_supply",
    "aave_withdraw",
    "percent_div",
]

HEALTH_FACTOR_LIQUIDATION_THRESHOLD = 10**18
"""Aave's ``HEALTH_FACTOR_LIQUIDATION_THRESHOLD`` (1.0 in WAD)."""


def percent_div(value: int, percentage_bps: int) -> int:
    """``value * 1e4 / percentage`` rounded half up (Aave ``PercentageMath.percentDiv``)."""
    if percentage_bps == 0:
        raise ZeroDivisionError("percent_div by zero")
    return (value * 10**4 + percentage_bps // 2) // percentage_bps


@dataclass(frozen=True, slots=True)
class AaveReserveFlags:
    """What the pool checks of a reserve before an action, beside its risk parameters.

    ``debt_ceiling`` is the isolation-mode ceiling (0: not an isolated asset); the others mirror the reserve's
    configuration bits. Unknown flags default to the permissive value (the check is then not made).
    """

    active: bool = True
    frozen: bool = False
    paused: bool = False
    borrowing_enabled: bool = True
    debt_ceiling: int = 0


@dataclass(frozen=True, slots=True)
class AaveWallet:
    """One wallet's Aave state at one block: what ``calculateUserAccountData`` reads.

    Attributes
    ----------
    reserves : mapping of reserve id to AaveReserveParams
        Every reserve the wallet holds or acts on (prices and indexes of the block).
    balances : mapping of reserve id to AaveUserBalance
        Scaled balances and the configuration bits (``usage_as_collateral`` / ``borrowing``), per reserve.
    user_emode : int
        The wallet's e-mode category (0: none).
    emode_categories : mapping of category id to AaveEMode
        At least the wallet's own category when it has one.
    flags : mapping of reserve id to AaveReserveFlags
        The reserves' flags (missing: :class:`AaveReserveFlags` defaults).
    """

    reserves: Mapping[int, AaveReserveParams]
    balances: Mapping[int, AaveUserBalance]
    user_emode: int = 0
    emode_categories: Mapping[int, AaveEMode] = dataclasses.field(default_factory=dict)
    flags: Mapping[int, AaveReserveFlags] = dataclasses.field(default_factory=dict)

    def account_data(self) -> AaveAccountData:
        """``Pool.getUserAccountData`` of this state."""
        return account_data(self.reserves, list(self.balances.values()), self.user_emode,
                            self.emode_categories if self.user_emode else None)

    def balance(self, reserve_id: int) -> AaveUserBalance:
        """The wallet's balance in the reserve (all zeros, no bits, when it has none)."""
        return self.balances.get(reserve_id) or AaveUserBalance(reserve_id, 0, 0, 0, False, False)

    def supplied_raw(self, reserve_id: int) -> int:
        """The aToken balance: ``scaled.rayMul(normalizedIncome)``."""
        return ray_mul(self.balance(reserve_id).scaled_a_token_balance_raw,
                       self.reserves[reserve_id].normalized_income_ray)

    def variable_debt_raw(self, reserve_id: int) -> int:
        """The variable debt: ``scaled.rayMul(normalizedVariableDebt)``."""
        return ray_mul(self.balance(reserve_id).scaled_variable_debt_raw,
                       self.reserves[reserve_id].normalized_variable_debt_ray)

    def stable_debt_raw(self, reserve_id: int) -> int:
        """The stable debt (already accrued to the block)."""
        return self.balance(reserve_id).stable_debt_raw

    def with_prices(self, prices_raw: Mapping[int, int]) -> AaveWallet:
        """The same wallet with some reserves' oracle prices replaced (reserve id → base-currency units)."""
        for rid, price in prices_raw.items():
            if price <= 0:
                raise ValueError(f"reserve {rid}: oracle price must be positive, got {price}")
        reserves = {rid: dataclasses.replace(r, price_raw=prices_raw.get(rid, r.price_raw))
                    for rid, r in self.reserves.items()}
        return dataclasses.replace(self, reserves=reserves)

    def _with(self, balance: AaveUserBalance) -> AaveWallet:
        return dataclasses.replace(self, balances={**self.balances, balance.reserve_id: balance})

    def _flags(self, reserve_id: int) -> AaveReserveFlags:
        return self.flags.get(reserve_id) or AaveReserveFlags()

    def _collateral_ids(self) -> list[int]:
        return [rid for rid, b in self.balances.items() if b.usage_as_collateral]

    def _isolation_mode(self) -> bool:
        """``UserConfiguration.getIsolationModeState``: exactly one collateral, and it has a debt ceiling."""
        ids = self._collateral_ids()
        return len(ids) == 1 and self._flags(ids[0]).debt_ceiling != 0


@dataclass(frozen=True, slots=True)
class AaveStep:
    """The wallet after one action, and why the pool would revert it (None: it would not)."""

    wallet: AaveWallet
    refused: str | None = None


def _reserve_state(w: AaveWallet, reserve_id: int, action: str) -> str | None:
    """``validateSupply`` / ``validateWithdraw`` / ``validateBorrow``'s reserve state checks."""
    f = w._flags(reserve_id)
    if not f.active:
        return "RESERVE_INACTIVE (the reserve is not active)"
    if f.paused:
        return "RESERVE_PAUSED (the reserve is paused)"
    if f.frozen and action in ("supply", "borrow"):
        return "RESERVE_FROZEN (the reserve is frozen)"
    return None


def aave_supply(w: AaveWallet, reserve_id: int, amount_raw: int) -> AaveStep:
    """``Pool.supply``: mint ``amount.rayDiv(liquidityIndex)`` scaled aTokens.

    A first supply (scaled balance 0) turns the reserve on as collateral when
    ``validateAutomaticUseAsCollateral`` allows it: the reserve has an LTV, no debt ceiling (the role that may
    supply isolated collateral is not modelled: a wallet without it), and the wallet is either without collateral
    or not in isolation mode. Supply caps are not checked.
    """
    positive(amount_raw)
    reserve = w.reserves[reserve_id]
    old = w.balance(reserve_id)
    scaled = ray_div(amount_raw, reserve.normalized_income_ray)
    if scaled == 0:
        return AaveStep(w, "INVALID_MINT_AMOUNT (the amount is below one scaled unit)")
    use = old.usage_as_collateral
    if old.scaled_a_token_balance_raw == 0 and not use:
        allowed = reserve.ltv_bps != 0 and w._flags(reserve_id).debt_ceiling == 0
        if allowed and w._collateral_ids():
            allowed = not w._isolation_mode()
        use = allowed
    new = dataclasses.replace(old, scaled_a_token_balance_raw=old.scaled_a_token_balance_raw + scaled,
                              usage_as_collateral=use)
    return AaveStep(w._with(new), _reserve_state(w, reserve_id, "supply"))


def aave_withdraw(w: AaveWallet, reserve_id: int, amount_raw: int) -> AaveStep:
    """``Pool.withdraw``: burn ``amount.rayDiv(liquidityIndex)``; withdrawing the whole balance also clears the
    collateral bit. With the reserve as collateral and any debt, the pool then requires a health factor ≥ 1 and
    (``LTV_VALIDATION_FAILED``) no zero-LTV collateral unless this reserve has zero LTV itself.

    Raises
    ------
    ValueError
        ``amount_raw`` exceeds the balance (the pool reverts ``NOT_ENOUGH_AVAILABLE_USER_BALANCE``; a what-if
        refuses it as input instead).
    """
    positive(amount_raw)
    reserve = w.reserves[reserve_id]
    old = w.balance(reserve_id)
    balance = w.supplied_raw(reserve_id)
    if amount_raw > balance:
        raise ValueError(f"withdrawing {amount_raw} of reserve {reserve_id}, whose balance is {balance}")
    was_collateral = old.usage_as_collateral
    if amount_raw == balance:
        scaled = 0
        use = False
    else:
        scaled = old.scaled_a_token_balance_raw - ray_div(amount_raw, reserve.normalized_income_ray)
        use = was_collateral
    after = w._with(dataclasses.replace(old, scaled_a_token_balance_raw=scaled, usage_as_collateral=use))
    refused = _reserve_state(w, reserve_id, "withdraw")
    if refused is None and was_collateral and any(b.borrowing for b in after.balances.values()):
        data = after.account_data()
        if data.health_factor_wad < HEALTH_FACTOR_LIQUIDATION_THRESHOLD:
            refused = (f"HEALTH_FACTOR_LOWER_THAN_LIQUIDATION_THRESHOLD (health factor after it "
                       f"{data.health_factor_wad / 1e18:.4f} < 1)")
        elif data.has_zero_ltv_collateral and reserve.ltv_bps != 0:
            refused = "LTV_VALIDATION_FAILED (the wallet holds zero-LTV collateral)"
    return AaveStep(after, refused)


def aave_borrow(w: AaveWallet, reserve_id: int, amount_raw: int) -> AaveStep:
    """``Pool.borrow`` at the variable rate: mint ``amount.rayDiv(variableBorrowIndex)`` scaled debt, set the
    borrowing bit.

    The pool's checks (``ValidationLogic.validateBorrow``, v3.0.2) that depend on what is known here, in its order:
    reserve active / not paused / not frozen, borrowing enabled; in e-mode the asset must be in the wallet's
    category (``INCONSISTENT_EMODE_CATEGORY``); on the account *before* the borrow: collateral > 0, LTV > 0,
    health factor > 1; then ``(debt + amount × price / unit).percentDiv(ltv) <= collateral``
    (``COLLATERAL_CANNOT_COVER_NEW_BORROW``), with the e-mode category's own price when it has one. Borrow caps,
    isolation-mode ceilings and siloed borrowing are not checked.
    """
    positive(amount_raw)
    reserve = w.reserves[reserve_id]
    old = w.balance(reserve_id)
    scaled = ray_div(amount_raw, reserve.normalized_variable_debt_ray)
    after = w._with(dataclasses.replace(old, scaled_variable_debt_raw=old.scaled_variable_debt_raw + scaled,
                                        borrowing=True))
    refused = _reserve_state(w, reserve_id, "borrow")
    if scaled == 0 and refused is None:
        refused = "INVALID_MINT_AMOUNT (the amount is below one scaled unit)"
    if refused is None and not w._flags(reserve_id).borrowing_enabled:
        refused = "BORROWING_NOT_ENABLED (the reserve is not borrowable)"
    category = w.emode_categories.get(w.user_emode) if w.user_emode else None
    if refused is None and w.user_emode and reserve.emode_category != w.user_emode:
        refused = "INCONSISTENT_EMODE_CATEGORY (the asset is not in the wallet's e-mode category)"
    if refused is None:
        before = w.account_data()
        if before.total_collateral_base_raw == 0:
            refused = "COLLATERAL_BALANCE_IS_ZERO (no collateral)"
        elif before.ltv_bps == 0:
            refused = "LTV_VALIDATION_FAILED (the collateral's LTV is 0)"
        elif before.health_factor_wad <= HEALTH_FACTOR_LIQUIDATION_THRESHOLD:
            refused = "HEALTH_FACTOR_LOWER_THAN_LIQUIDATION_THRESHOLD (health factor ≤ 1 before the borrow)"
        else:
            price = category.price_raw if category is not None and category.price_raw else reserve.price_raw
            amount_base = price * amount_raw // 10**reserve.decimals
            needed = percent_div(before.total_debt_base_raw + amount_base, before.ltv_bps)
            if needed > before.total_collateral_base_raw:
                refused = "COLLATERAL_CANNOT_COVER_NEW_BORROW (beyond the collateral's loan-to-value)"
    return AaveStep(after, refused)


def aave_repay(w: AaveWallet, reserve_id: int, amount_raw: int) -> AaveStep:
    """``Pool.repay`` of the variable debt when the wallet has any in the reserve, else of the stable debt.

    Repaying the whole variable debt burns every scaled unit (as ``repay(type(uint256).max)`` does); a part burns
    ``amount.rayDiv(variableBorrowIndex)``. The stable debt falls by the amount. The borrowing bit is cleared when
    nothing is owed any more.

    Raises
    ------
    ValueError
        ``amount_raw`` exceeds the debt of the kind repaid.
    """
    positive(amount_raw)
    reserve = w.reserves[reserve_id]
    old = w.balance(reserve_id)
    variable = w.variable_debt_raw(reserve_id)
    if variable > 0:
        if amount_raw > variable:
            raise ValueError(f"repaying {amount_raw} of reserve {reserve_id}, whose variable debt is {variable}")
        scaled = 0 if amount_raw == variable else (
            old.scaled_variable_debt_raw - ray_div(amount_raw, reserve.normalized_variable_debt_ray))
        new = dataclasses.replace(old, scaled_variable_debt_raw=scaled)
    else:
        if amount_raw > old.stable_debt_raw:
            raise ValueError(f"repaying {amount_raw} of reserve {reserve_id}, whose debt is {old.stable_debt_raw}")
        new = dataclasses.replace(old, stable_debt_raw=old.stable_debt_raw - amount_raw)
    owes = new.scaled_variable_debt_raw != 0 or new.stable_debt_raw != 0
    new = dataclasses.replace(new, borrowing=old.borrowing and owes)
    return AaveStep(w._with(new), _reserve_state(w, reserve_id, "repay"))
