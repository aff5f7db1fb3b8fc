"""Aave v3 actions on the devnet for arbitrary wallets: fund, supply, borrow, repay, withdraw, collateral
and e-mode switches, liquidation; plus the reads tests compare against.

All amounts are raw token integers (``amount_raw``, in the token's own decimals). Each action approves the
Pool for what it needs first and returns the mined receipt; a revert raises
:class:`devnet.evm.RevertedError` whose ``reason`` is Aave's error code (e.g. ``"35"``).

Test-market facts (``MARKET_NAME=Test``, Aave v3.0.2): reserves AAVE, DAI, LINK, USDC, WETH; AAVE and
WETH cannot be borrowed; stable-rate borrowing is enabled on DAI, LINK and USDC; e-mode category 1
("Stable-EMode": LTV 98 %, LT 98.5 %, bonus 1 %) holds DAI and USDC.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

from devnet.deploy import ADMIN
from devnet.evm import Receipt, eth_call, transact
from devnet.models import DevnetInfo

__all__ = [
    "MAX_UINT256",
    "AccountData",
    "EModeCategory",
    "RateMode",
    "account_data",
    "balance_of",
    "borrow",
    "create_emode_category",
    "decimals",
    "emode_category",
    "fund",
    "liquidate",
    "repay",
    "set_emode",
    "set_use_as_collateral",
    "supply",
    "user_emode",
    "withdraw",
]

MAX_UINT256 = 2**256 - 1
"""Pass as ``amount_raw`` to :func:`repay` / :func:`withdraw` (all of it) or :func:`liquidate` (max)."""
_WRAPPED_NATIVE = "WETH"
_NO_REFERRAL = 0


class RateMode(IntEnum):
    """Aave interest rate modes."""

    STABLE = 1
    VARIABLE = 2


@dataclass(frozen=True)
class AccountData:
    """``Pool.getUserAccountData``: values in the oracle base currency (USD, 8 decimals); thresholds in
    basis points; ``health_factor_wad`` in WAD (1e18 = 1.0; uint256 max when there is no debt)."""

    total_collateral_base: int
    total_debt_base: int
    available_borrows_base: int
    current_liquidation_threshold_bps: int
    ltv_bps: int
    health_factor_wad: int


@dataclass(frozen=True)
class EModeCategory:
    """``Pool.getEModeCategoryData``; bps values, ``price_source`` zero when the reserves' own oracles apply."""

    ltv_bps: int
    liquidation_threshold_bps: int
    liquidation_bonus_bps: int
    price_source: str
    label: str


def account_data(info: DevnetInfo, wallet: str) -> AccountData:
    """The wallet's Aave account data as the Pool computes it."""
    values = eth_call(info, info.contract("aave_v3.pool"), "getUserAccountData(address)", [wallet], ["uint256"] * 6)
    return AccountData(*(int(v) for v in values))


def decimals(info: DevnetInfo, symbol: str) -> int:
    """The reserve token's ``decimals()``."""
    (value,) = eth_call(info, info.token(symbol), "decimals()", (), ["uint8"])
    return int(value)


def balance_of(info: DevnetInfo, token: str, wallet: str) -> int:
    """``balanceOf(wallet)`` (raw) of ``token``: a reserve symbol, or any ERC-20 address (e.g. an aToken)."""
    address = info.tokens.get(token, token)
    (value,) = eth_call(info, address, "balanceOf(address)", [wallet], ["uint256"])
    return int(value)


def fund(info: DevnetInfo, wallet: str, symbol: str, amount_raw: int) -> None:
    """Give ``wallet`` ``amount_raw`` more of reserve ``symbol``.

    Test tokens come from the faucet (owner-sent, in mints of at most the faucet's cap, 10,000 tokens);
    WETH, which the faucet may not mint, is wrapped from ETH the wallet is given.
    """
    token = info.token(symbol)
    if symbol == _WRAPPED_NATIVE:
        transact(info, wallet, token, "deposit()", value=amount_raw)
        return
    faucet = info.contract("aave_v3.faucet")
    (cap_tokens,) = eth_call(info, faucet, "getMaximumMintAmount()", (), ["uint256"])
    cap_raw = int(cap_tokens) * 10 ** decimals(info, symbol)
    remaining = amount_raw
    while remaining > 0:
        chunk = min(remaining, cap_raw)
        transact(info, ADMIN, faucet, "mint(address,address,uint256)", token, wallet, chunk)
        remaining -= chunk


def supply(info: DevnetInfo, wallet: str, symbol: str, amount_raw: int) -> Receipt:
    """Supply ``amount_raw`` of ``symbol`` from ``wallet`` (which must hold it) on its own behalf."""
    pool = _approve_pool(info, wallet, symbol, amount_raw)
    return transact(
        info,
        wallet,
        pool,
        "supply(address,uint256,address,uint16)",
        info.token(symbol),
        amount_raw,
        wallet,
        _NO_REFERRAL,
    )


def borrow(
    info: DevnetInfo, wallet: str, symbol: str, amount_raw: int, rate_mode: RateMode = RateMode.VARIABLE
) -> Receipt:
    """Borrow ``amount_raw`` of ``symbol`` at ``rate_mode`` (stable only where the reserve enables it)."""
    return transact(
        info,
        wallet,
        info.contract("aave_v3.pool"),
        "borrow(address,uint256,uint256,uint16,address)",
        info.token(symbol),
        amount_raw,
        int(rate_mode),
        _NO_REFERRAL,
        wallet,
    )


def repay(
    info: DevnetInfo, wallet: str, symbol: str, amount_raw: int, rate_mode: RateMode = RateMode.VARIABLE
) -> Receipt:
    """Repay ``amount_raw`` (:data:`MAX_UINT256`: the whole debt; the wallet must hold it, interest
    included) of the wallet's ``rate_mode`` debt in ``symbol``."""
    pool = _approve_pool(info, wallet, symbol, amount_raw)
    return transact(
        info,
        wallet,
        pool,
        "repay(address,uint256,uint256,address)",
        info.token(symbol),
        amount_raw,
        int(rate_mode),
        wallet,
    )


def withdraw(info: DevnetInfo, wallet: str, symbol: str, amount_raw: int) -> Receipt:
    """Withdraw ``amount_raw`` (:data:`MAX_UINT256`: all) of the wallet's ``symbol`` supply to itself."""
    return transact(
        info,
        wallet,
        info.contract("aave_v3.pool"),
        "withdraw(address,uint256,address)",
        info.token(symbol),
        amount_raw,
        wallet,
    )


def set_use_as_collateral(info: DevnetInfo, wallet: str, symbol: str, enabled: bool) -> Receipt:
    """Turn the wallet's ``symbol`` supply on or off as collateral."""
    return transact(
        info,
        wallet,
        info.contract("aave_v3.pool"),
        "setUserUseReserveAsCollateral(address,bool)",
        info.token(symbol),
        enabled,
    )


def set_emode(info: DevnetInfo, wallet: str, category: int) -> Receipt:
    """Put the wallet in e-mode ``category`` (0 leaves e-mode)."""
    return transact(info, wallet, info.contract("aave_v3.pool"), "setUserEMode(uint8)", category)


def user_emode(info: DevnetInfo, wallet: str) -> int:
    """The wallet's e-mode category (0: none)."""
    (value,) = eth_call(info, info.contract("aave_v3.pool"), "getUserEMode(address)", [wallet], ["uint256"])
    return int(value)


def emode_category(info: DevnetInfo, category: int) -> EModeCategory:
    """The configuration of e-mode ``category`` (all zero when it does not exist)."""
    (data,) = eth_call(
        info,
        info.contract("aave_v3.pool"),
        "getEModeCategoryData(uint8)",
        [category],
        ["(uint16,uint16,uint16,address,string)"],
    )
    ltv, threshold, bonus, source, label = data
    return EModeCategory(int(ltv), int(threshold), int(bonus), str(source), str(label))


def create_emode_category(
    info: DevnetInfo,
    category: int,
    ltv_bps: int,
    liquidation_threshold_bps: int,
    liquidation_bonus_bps: int,
    label: str,
    symbols: Sequence[str],
    price_source: str = "0x0000000000000000000000000000000000000000",
) -> None:
    """Create (or reconfigure) e-mode ``category`` as pool admin and put reserves ``symbols`` in it.

    Aave requires the category's LTV / threshold to exceed those of every reserve put in it, and
    ``liquidation_bonus_bps`` > 10,000 with threshold × bonus ≤ 100 %.
    """
    configurator = info.contract("aave_v3.pool_configurator")
    transact(
        info,
        ADMIN,
        configurator,
        "setEModeCategory(uint8,uint16,uint16,uint16,address,string)",
        category,
        ltv_bps,
        liquidation_threshold_bps,
        liquidation_bonus_bps,
        price_source,
        label,
    )
    for symbol in symbols:
        transact(info, ADMIN, configurator, "setAssetEModeCategory(address,uint8)", info.token(symbol), category)


def liquidate(
    info: DevnetInfo,
    liquidator: str,
    user: str,
    collateral_symbol: str,
    debt_symbol: str,
    debt_to_cover_raw: int,
    receive_a_token: bool = False,
) -> Receipt:
    """``liquidationCall`` by ``liquidator`` (which must hold the debt asset) on ``user``: repay up to
    ``debt_to_cover_raw`` of its ``debt_symbol`` debt (:data:`MAX_UINT256`: as much as allowed) and seize
    ``collateral_symbol`` collateral (as aTokens if ``receive_a_token``)."""
    pool = _approve_pool(info, liquidator, debt_symbol, debt_to_cover_raw)
    return transact(
        info,
        liquidator,
        pool,
        "liquidationCall(address,address,address,uint256,bool)",
        info.token(collateral_symbol),
        info.token(debt_symbol),
        user,
        debt_to_cover_raw,
        receive_a_token,
    )


def _approve_pool(info: DevnetInfo, wallet: str, symbol: str, amount_raw: int) -> str:
    """Approve the Pool to pull ``amount_raw`` of ``symbol`` from ``wallet``; return the Pool address."""
    pool = info.contract("aave_v3.pool")
    transact(info, wallet, info.token(symbol), "approve(address,uint256)", pool, amount_raw)
    return pool
