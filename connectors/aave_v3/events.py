"""Aave v3 events (3.0.x): which logs change a wallet's position, which change the market, which mean the watch
must be rebuilt.

Positions (the wallet is dirty):

========================================== ==================================================================
Pool ``Supply`` / ``MintUnbacked``          ``onBehalfOf`` (the payer ``user`` holds nothing new)
Pool ``Withdraw``                           ``user``
Pool ``Borrow``                             ``onBehalfOf`` (``user`` only receives the tokens)
Pool ``Repay``                              ``user`` (the debtor; a repayer paying with aTokens shows in the
                                            aToken's ``Transfer``)
Pool ``LiquidationCall``                    ``user`` (a liquidator taking aTokens shows in their ``Transfer``)
Pool ``ReserveUsedAsCollateralEnabled``/…   ``user``
Pool ``UserEModeSet``                       ``user``
Pool ``SwapBorrowRateMode``,
``RebalanceStableBorrowRate``               ``user``
aToken, variable and stable debt token
``Transfer``                                ``from`` and ``to`` (both sides; mint and burn have the zero
                                            address on one side, never dirty)
========================================== ==================================================================

Market (a reason): Pool ``ReserveDataUpdated`` (rates and indexes), ``IsolationModeTotalDebtUpdated``,
``MintedToTreasury``, ``BackUnbacked``; every ``PoolConfigurator`` configuration event; ``AaveOracle``
``AssetSourceUpdated`` / ``FallbackOracleUpdated`` / ``BaseCurrencySet``; the price feeds' own answers
(:mod:`connectors.chainlink.events`).

Rebuild the watch: a reserve initialised or dropped (new token addresses), an oracle source changed (a new feed
to watch), and any address the ``PoolAddressesProvider`` hands out changed.

:func:`account_state` is the part of a wallet's read that only these events change (scaled balances, flags,
e-mode): the cached state the per-block local recompute starts from.
"""

from __future__ import annotations

from collections.abc import Iterable

from connectors.aave_v3.models import AaveAccount, AaveMarket
from connectors.chainlink.events import feed_entries
from connectors.evm.abi import Fn
from connectors.evm.logs import Decoded, Effect, Event, LogWatch, Watched, market_reason, wallets_of, watched

__all__ = [
    "CONFIGURATOR_EVENTS",
    "GET_POOL_CONFIGURATOR",
    "ORACLE_EVENTS",
    "POOL_MARKET_EVENTS",
    "POOL_WALLET_EVENTS",
    "PROVIDER_EVENTS",
    "TOKEN_TRANSFER",
    "aave_watch",
    "account_state",
    "feeds",
]

GET_POOL_CONFIGURATOR = Fn("getPoolConfigurator()(address)")
"""``PoolAddressesProvider.getPoolConfigurator``: where the configuration events come from."""

POOL_WALLET_EVENTS: tuple[tuple[Event, tuple[str, ...]], ...] = (
    (Event("Supply(address indexed reserve, address user, address indexed onBehalfOf, uint256 amount, "
           "uint16 indexed referralCode)"), ("onBehalfOf",)),
    (Event("MintUnbacked(address indexed reserve, address user, address indexed onBehalfOf, uint256 amount, "
           "uint16 indexed referralCode)"), ("onBehalfOf",)),
    (Event("Withdraw(address indexed reserve, address indexed user, address indexed to, uint256 amount)"), ("user",)),
    (Event("Borrow(address indexed reserve, address user, address indexed onBehalfOf, uint256 amount, "
           "uint8 interestRateMode, uint256 borrowRate, uint16 indexed referralCode)"), ("onBehalfOf",)),
    (Event("Repay(address indexed reserve, address indexed user, address indexed repayer, uint256 amount, "
           "bool useATokens)"), ("user",)),
    (Event("LiquidationCall(address indexed collateralAsset, address indexed debtAsset, address indexed user, "
           "uint256 debtToCover, uint256 liquidatedCollateralAmount, address liquidator, bool receiveAToken)"),
     ("user",)),
    (Event("ReserveUsedAsCollateralEnabled(address indexed reserve, address indexed user)"), ("user",)),
    (Event("ReserveUsedAsCollateralDisabled(address indexed reserve, address indexed user)"), ("user",)),
    (Event("UserEModeSet(address indexed user, uint8 categoryId)"), ("user",)),
    (Event("SwapBorrowRateMode(address indexed reserve, address indexed user, uint8 interestRateMode)"), ("user",)),
    (Event("RebalanceStableBorrowRate(address indexed reserve, address indexed user)"), ("user",)),
)
"""Pool events that change a position, with the arguments naming the wallets they change."""

POOL_MARKET_EVENTS: tuple[tuple[Event, str | None], ...] = (
    (Event("ReserveDataUpdated(address indexed reserve, uint256 liquidityRate, uint256 stableBorrowRate, "
           "uint256 variableBorrowRate, uint256 liquidityIndex, uint256 variableBorrowIndex)"), "reserve"),
    (Event("IsolationModeTotalDebtUpdated(address indexed asset, uint256 totalDebt)"), "asset"),
    (Event("MintedToTreasury(address indexed reserve, uint256 amountMinted)"), "reserve"),
    (Event("BackUnbacked(address indexed reserve, address indexed backer, uint256 amount, uint256 fee)"), "reserve"),
)
"""Pool events that change a reserve's state, with the argument naming it."""

TOKEN_TRANSFER = Event("Transfer(address indexed from, address indexed to, uint256 value)")
"""ERC-20 ``Transfer`` of an aToken or debt token (also emitted on mint and burn)."""

_CONFIGURATOR_MARKET = (
    "BorrowCapChanged(address indexed asset, uint256 oldBorrowCap, uint256 newBorrowCap)",
    "BorrowableInIsolationChanged(address asset, bool borrowable)",
    "BridgeProtocolFeeUpdated(uint256 oldBridgeProtocolFee, uint256 newBridgeProtocolFee)",
    "CollateralConfigurationChanged(address indexed asset, uint256 ltv, uint256 liquidationThreshold, "
    "uint256 liquidationBonus)",
    "DebtCeilingChanged(address indexed asset, uint256 oldDebtCeiling, uint256 newDebtCeiling)",
    "EModeAssetCategoryChanged(address indexed asset, uint8 oldCategoryId, uint8 newCategoryId)",
    "EModeCategoryAdded(uint8 indexed categoryId, uint256 ltv, uint256 liquidationThreshold, "
    "uint256 liquidationBonus, address oracle, string label)",
    "FlashloanPremiumToProtocolUpdated(uint128 oldFlashloanPremiumToProtocol, uint128 newFlashloanPremiumToProtocol)",
    "FlashloanPremiumTotalUpdated(uint128 oldFlashloanPremiumTotal, uint128 newFlashloanPremiumTotal)",
    "LiquidationProtocolFeeChanged(address indexed asset, uint256 oldFee, uint256 newFee)",
    "ReserveActive(address indexed asset, bool active)",
    "ReserveBorrowing(address indexed asset, bool enabled)",
    "ReserveFactorChanged(address indexed asset, uint256 oldReserveFactor, uint256 newReserveFactor)",
    "ReserveFlashLoaning(address indexed asset, bool enabled)",
    "ReserveFrozen(address indexed asset, bool frozen)",
    "ReserveInterestRateStrategyChanged(address indexed asset, address oldStrategy, address newStrategy)",
    "ReservePaused(address indexed asset, bool paused)",
    "ReserveStableRateBorrowing(address indexed asset, bool enabled)",
    "SiloedBorrowingChanged(address indexed asset, bool oldState, bool newState)",
    "SupplyCapChanged(address indexed asset, uint256 oldSupplyCap, uint256 newSupplyCap)",
    "UnbackedMintCapChanged(address indexed asset, uint256 oldUnbackedMintCap, uint256 newUnbackedMintCap)",
    "ATokenUpgraded(address indexed asset, address indexed proxy, address indexed implementation)",
    "StableDebtTokenUpgraded(address indexed asset, address indexed proxy, address indexed implementation)",
    "VariableDebtTokenUpgraded(address indexed asset, address indexed proxy, address indexed implementation)",
)
_CONFIGURATOR_REWATCH = (
    "ReserveInitialized(address indexed asset, address indexed aToken, address stableDebtToken, "
    "address variableDebtToken, address interestRateStrategyAddress)",
    "ReserveDropped(address indexed asset)",
)
CONFIGURATOR_EVENTS: tuple[Event, ...] = tuple(Event(d) for d in _CONFIGURATOR_MARKET + _CONFIGURATOR_REWATCH)
"""Every ``PoolConfigurator`` event (3.0.x): market reasons; the last two also rebuild the watch."""

ORACLE_EVENTS: tuple[Event, ...] = (
    Event("AssetSourceUpdated(address indexed asset, address indexed source)"),
    Event("FallbackOracleUpdated(address indexed fallbackOracle)"),
    Event("BaseCurrencySet(address indexed baseCurrency, uint256 baseCurrencyUnit)"),
)
"""``AaveOracle`` events: market reasons, and a rebuild (the new source is the feed to watch)."""

PROVIDER_EVENTS: tuple[Event, ...] = tuple(Event(d) for d in (
    "PoolUpdated(address indexed oldAddress, address indexed newAddress)",
    "PoolConfiguratorUpdated(address indexed oldAddress, address indexed newAddress)",
    "PriceOracleUpdated(address indexed oldAddress, address indexed newAddress)",
    "AddressSet(bytes32 indexed id, address indexed oldAddress, address indexed newAddress)",
    "AddressSetAsProxy(bytes32 indexed id, address indexed proxyAddress, address oldImplementationAddress, "
    "address indexed newImplementationAddress)",
))
"""``PoolAddressesProvider`` events that move a contract the watch listens to: rebuild."""


def _rewatch(decoded: Decoded) -> Effect:
    return Effect(market_reason=f"{decoded.event.name} {decoded.log.address}",
                  rewatch=f"{decoded.event.name} {decoded.log.address}")


def aave_watch(venue: str, market: AaveMarket, *, configurator: str | None = None,
               provider: str | None = None, aggregators: Iterable[str] = ()) -> LogWatch:
    """The watch of one Aave market (``venue`` names it in dirty sets): the pool, every reserve's aToken and debt
    tokens, the oracle, the price feeds the snapshot read (Chainlink-shaped sources), and — when given — the
    ``PoolConfigurator``, the ``PoolAddressesProvider`` and the aggregators behind proxy feeds (which emit the
    feeds' events)."""
    entries: list[Watched] = []
    pool = [market.pool]
    for event, names in POOL_WALLET_EVENTS:
        entries.append(watched(pool, event, wallets_of(*names)))
    for event, key in POOL_MARKET_EVENTS:
        entries.append(watched(pool, event, market_reason(key)))
    tokens = [t for r in market.reserves for t in (r.a_token, r.variable_debt_token, r.stable_debt_token)]
    entries.append(watched(tokens, TOKEN_TRANSFER, wallets_of("from", "to")))
    if configurator is not None:
        for event in CONFIGURATOR_EVENTS:
            rebuild = event.name in ("ReserveInitialized", "ReserveDropped")
            key = "asset" if any(p.name == "asset" for p in event.params) else None
            entries.append(watched([configurator], event, _rewatch if rebuild else market_reason(key)))
    for event in ORACLE_EVENTS:
        entries.append(watched([market.oracle], event, _rewatch))
    if provider is not None:
        for event in PROVIDER_EVENTS:
            entries.append(watched([provider], event, _rewatch))
    entries.extend(feed_entries([*feeds(market), *aggregators]))
    note = ("price feeds without events (the devnet's MockV3Aggregator) and interest accruing with time change "
            "the market without a log: re-read the market state every block")
    return LogWatch(venue, tuple(entries), note)


def feeds(market: AaveMarket) -> list[str]:
    """The Chainlink-shaped price sources the market's read found (each once)."""
    return list(dict.fromkeys(r.feed.feed for r in market.reserves if r.feed is not None))


def account_state(account: AaveAccount) -> tuple[object, ...]:
    """The part of ``account`` only its own events change: configuration bitmap, e-mode, and per reserve the
    scaled aToken and variable-debt balances and the flags (the stable debt's balance accrues with time; its
    being nonzero is kept)."""
    return (
        account.user_configuration_raw,
        account.emode_category,
        tuple((r.asset, r.scaled_a_token_balance_raw, r.scaled_variable_debt_raw, r.stable_debt_raw > 0,
               r.usage_as_collateral, r.borrowing) for r in account.reserves),
    )
