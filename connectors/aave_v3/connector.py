"""Aave v3 (3.0.x layout) connector: market state and many wallets' positions, pinned to one block.

Every read goes through Multicall3; the read plan, by round trip (each is one JSON-RPC batch, one HTTP
request unless its body passes the multicall's byte cap)::

    0  eth_getBlockByNumber("latest")                        only when no block is given (+ eth_chainId once)
    A  provider.getPool / getPriceOracle / getPoolDataProvider       once per connector (cached)
    B  pool.getReservesList, oracle.BASE_CURRENCY_UNIT
    C  per reserve: getReserveData, getReserveNormalizedIncome, getReserveNormalizedVariableDebt,
       oracle.getAssetPrice, oracle.getSourceOfAsset, asset.symbol
    D  per price source: latestRoundData, decimals (Chainlink reader plan; non-Chainlink sources tolerated)
       per e-mode category used by a reserve: getEModeCategoryData
       per wallet: getUserConfiguration, getUserEMode, getUserAccountData;
       per (wallet, reserve): aToken.scaledBalanceOf                       (read_accounts only)
    E  per e-mode category with a price source: oracle.getAssetPrice(source)   (only when there is one)
       per (wallet, reserve with the borrowing bit): variableDebtToken.scaledBalanceOf,
       stableDebtToken.balanceOf                                   (``debt_reads="flagged"``, the default)

With ``debt_reads="all"`` the debt balances of every (wallet, reserve) are read in D instead (one round
trip fewer, three times the (wallet, reserve) sub-calls).

E-mode price (v3.0.2 ``EModeLogic.getEModeConfiguration``): when a category's ``priceSource`` is nonzero,
``oracle.getAssetPrice(priceSource)`` replaces the asset price for the assets of the user's category.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from connectors.aave_v3.decode import (
    RESERVE_DATA_TYPE,
    ReserveData,
    decode_reserve_configuration,
    decode_reserve_data,
    user_reserve_flags,
)
from connectors.aave_v3.deployments import AaveDeployment
from connectors.aave_v3.models import (
    AaveAccount,
    AaveEModeCategory,
    AaveMarket,
    AaveReserve,
    AaveSnapshot,
    AaveUserReserve,
    OnchainAccountData,
)
from connectors.base import Capabilities
from connectors.chainlink.models import FeedRound
from connectors.chainlink.reader import DEFAULT_HEARTBEAT_S, decode_feeds, plan_feeds
from connectors.errors import DecodeError, InvalidInputError
from connectors.evm.abi import BALANCE_OF, SYMBOL, Fn, decode_symbol
from connectors.evm.multicall import Call, CallResult, Multicall, Plan
from connectors.evm.program import ReadProgram, run_program
from connectors.evm.rpc import RpcClient
from connectors.evm.venue import EvmVenueConnector, wallet_addresses
from connectors.types import Address, BlockRef, checksum

__all__ = ["AaveAddresses", "AaveV3Connector", "wallet_addresses"]

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"

GET_POOL = Fn("getPool()(address)")
GET_PRICE_ORACLE = Fn("getPriceOracle()(address)")
GET_POOL_DATA_PROVIDER = Fn("getPoolDataProvider()(address)")
GET_RESERVES_LIST = Fn("getReservesList()(address[])")
BASE_CURRENCY_UNIT = Fn("BASE_CURRENCY_UNIT()(uint256)")
GET_RESERVE_DATA = Fn(f"getReserveData(address)({RESERVE_DATA_TYPE})")
GET_RESERVE_NORMALIZED_INCOME = Fn("getReserveNormalizedIncome(address)(uint256)")
GET_RESERVE_NORMALIZED_VARIABLE_DEBT = Fn("getReserveNormalizedVariableDebt(address)(uint256)")
GET_ASSET_PRICE = Fn("getAssetPrice(address)(uint256)")
GET_SOURCE_OF_ASSET = Fn("getSourceOfAsset(address)(address)")
SYMBOL_BYTES32 = Fn("symbol()(bytes32)")
GET_EMODE_CATEGORY_DATA = Fn("getEModeCategoryData(uint8)((uint16,uint16,uint16,address,string))")
GET_USER_CONFIGURATION = Fn("getUserConfiguration(address)((uint256))")
GET_USER_EMODE = Fn("getUserEMode(address)(uint256)")
GET_USER_ACCOUNT_DATA = Fn("getUserAccountData(address)(uint256,uint256,uint256,uint256,uint256,uint256)")
SCALED_BALANCE_OF = Fn("scaledBalanceOf(address)(uint256)")

DebtReads = Literal["flagged", "all"]


@dataclass(frozen=True, slots=True)
class AaveAddresses:
    """Contracts discovered from the PoolAddressesProvider."""

    pool: str
    oracle: str
    data_provider: str


@dataclass(frozen=True, slots=True)
class _ReserveCore:
    """Round C of one reserve (before feeds)."""

    asset: str
    symbol: str
    data: ReserveData
    normalized_income_ray: int
    normalized_variable_debt_ray: int
    price_raw: int
    price_source: str


@dataclass(frozen=True, slots=True)
class _WalletPhase1:
    wallet: str
    user_configuration: int
    emode: int
    onchain: OnchainAccountData | None
    scaled_a: tuple[int, ...]
    """Per reserve, in market order."""
    scaled_variable: tuple[int, ...] | None
    stable: tuple[int, ...] | None
    """Per reserve when ``debt_reads="all"``; None when read in round E."""


class AaveV3Connector(EvmVenueConnector[AaveDeployment]):
    """Reads an Aave v3 market (``deployment``) and wallets' positions in it (Spark: the same, its own addresses).

    Parameters
    ----------
    rpc:
        The chain's client (its ``stats`` count the HTTP requests and calls).
    multicall:
        Defaults to Multicall3 at its canonical address over ``rpc``.
    heartbeat_s:
        Staleness bound of the price feeds (seconds), one for all or per feed address.
    debt_reads:
        ``"flagged"``: debt balances only for reserves with the user's borrowing bit (one more round trip);
        ``"all"``: for every (wallet, reserve), in the same round trip as the supply balances.
    """

    capabilities: ClassVar[Capabilities] = Capabilities(
        venue_type="aave_v3", kind="lending", transport="evm", block_pinned=True, batch_wallets=True,
        reports_own_health=True, positions=("collateral", "debt"),
        actions=("repay", "supply", "withdraw"),
    )

    def __init__(
        self,
        rpc: RpcClient,
        deployment: AaveDeployment,
        multicall: Multicall | None = None,
        *,
        heartbeat_s: int | Mapping[str, int] = DEFAULT_HEARTBEAT_S,
        debt_reads: DebtReads = "flagged",
    ) -> None:
        if debt_reads not in ("flagged", "all"):
            raise InvalidInputError(f"debt_reads must be 'flagged' or 'all', got {debt_reads!r}")
        super().__init__(rpc, deployment, multicall)
        self.heartbeat_s = heartbeat_s
        self.debt_reads: DebtReads = debt_reads
        self._addresses: AaveAddresses | None = None

    # --- discovery -----------------------------------------------------------------------------------
    def _addresses_plan(self) -> Plan[AaveAddresses]:
        """Round A: pool, oracle and data provider from the PoolAddressesProvider."""
        provider = self.deployment.pool_addresses_provider
        calls = [
            Call(provider, GET_POOL, allow_failure=False),
            Call(provider, GET_PRICE_ORACLE, allow_failure=False),
            Call(provider, GET_POOL_DATA_PROVIDER),
        ]

        def decode(res: Sequence[CallResult]) -> AaveAddresses:
            pool, oracle = checksum(res[0].value[0]), checksum(res[1].value[0])
            data_provider = checksum(res[2].value[0]) if res[2].ok else ZERO_ADDRESS
            if pool == ZERO_ADDRESS or oracle == ZERO_ADDRESS:
                raise DecodeError(f"{self.deployment.name}: provider {provider} has no pool or oracle set")
            return AaveAddresses(pool, oracle, data_provider)

        return Plan(calls, decode)

    def addresses(self, block: BlockRef) -> AaveAddresses:
        """Pool, oracle and data provider from the PoolAddressesProvider (read once, then cached)."""
        if self._addresses is None:
            self._addresses = run_program(self.multicall, self._discover(), block)
        return self._addresses

    def _discover(self) -> ReadProgram[AaveAddresses]:
        """Round A, skipped once the addresses are cached."""
        if self._addresses is None:
            (self._addresses,) = yield [self._addresses_plan()]
        return self._addresses

    # --- market rounds -------------------------------------------------------------------------------
    @staticmethod
    def _head_plan(addrs: AaveAddresses) -> Plan[tuple[list[str], int]]:
        """Round B: the reserve list and the oracle's base currency unit."""
        calls = [
            Call(addrs.pool, GET_RESERVES_LIST, allow_failure=False),
            Call(addrs.oracle, BASE_CURRENCY_UNIT, allow_failure=False),
        ]

        def decode(res: Sequence[CallResult]) -> tuple[list[str], int]:
            return [checksum(a) for a in res[0].value[0]], int(res[1].value[0])

        return Plan(calls, decode)

    @staticmethod
    def _reserves_plan(addrs: AaveAddresses, assets: Sequence[str]) -> Plan[list[_ReserveCore]]:
        """Round C: every reserve's data, indexes accrued to the block, price and price source, symbol."""
        calls: list[Call] = []
        for a in assets:
            calls += [
                Call(addrs.pool, GET_RESERVE_DATA, (a,), allow_failure=False),
                Call(addrs.pool, GET_RESERVE_NORMALIZED_INCOME, (a,), allow_failure=False),
                Call(addrs.pool, GET_RESERVE_NORMALIZED_VARIABLE_DEBT, (a,), allow_failure=False),
                # The oracle reverts on a zero or negative feed answer: read as price 0, flagged from the feed.
                Call(addrs.oracle, GET_ASSET_PRICE, (a,), allow_failure=True),
                Call(addrs.oracle, GET_SOURCE_OF_ASSET, (a,), allow_failure=False),
                Call(a, SYMBOL, decoder=decode_symbol),
            ]

        def decode(out: Sequence[CallResult]) -> list[_ReserveCore]:
            cores = []
            for i, a in enumerate(assets):
                rd, inc, vdebt, price, source, sym = out[6 * i : 6 * i + 6]
                cores.append(
                    _ReserveCore(
                        asset=a,
                        symbol=sym.value if sym.ok else "",
                        data=decode_reserve_data(rd.value[0]),
                        normalized_income_ray=inc.value[0],
                        normalized_variable_debt_ray=vdebt.value[0],
                        price_raw=price.value[0] if price.ok else 0,
                        price_source=checksum(source.value[0]),
                    )
                )
            return cores

        return Plan(calls, decode)

    def _core(self) -> ReadProgram[tuple[AaveAddresses, int, list[_ReserveCore]]]:
        """Rounds A (cached), B and C."""
        addrs = yield from self._discover()
        ((assets, base_unit),) = yield [self._head_plan(addrs)]
        (cores,) = yield [self._reserves_plan(addrs, assets)]
        return addrs, base_unit, cores

    def _feeds_and_emode_plan(
        self, addrs: AaveAddresses, cores: Sequence[_ReserveCore], block: BlockRef
    ) -> Plan[tuple[dict[str, FeedRound], dict[int, tuple[Any, ...]]]]:
        """Round D, market part: the price sources' rounds and the e-mode categories' data."""
        sources = list(dict.fromkeys(c.price_source for c in cores if c.price_source != ZERO_ADDRESS))
        categories = sorted(
            {cat for c in cores if (cat := decode_reserve_configuration(c.data.configuration).emode_category)}
        )
        feed_calls = plan_feeds(sources, required=False)
        emode_calls = [Call(addrs.pool, GET_EMODE_CATEGORY_DATA, (cat,), allow_failure=False) for cat in categories]

        def decode(results: Sequence[CallResult]) -> tuple[dict[str, FeedRound], dict[int, tuple[Any, ...]]]:
            n = len(feed_calls)
            feeds: dict[str, FeedRound] = dict(
                decode_feeds(sources, results[:n], block, self.heartbeat_s, required=False)
            )
            emodes = {cat: r.value[0] for cat, r in zip(categories, results[n:], strict=True)}
            return feeds, emodes

        return Plan([*feed_calls, *emode_calls], decode)

    @staticmethod
    def _emode_price_plan(addrs: AaveAddresses, emodes: Mapping[int, tuple[Any, ...]]) -> Plan[dict[int, int]]:
        """Round E, market part: ``oracle.getAssetPrice(priceSource)`` of categories with a price source."""
        with_source = [(cat, checksum(d[3])) for cat, d in emodes.items() if int(d[3], 16) != 0]
        calls = [Call(addrs.oracle, GET_ASSET_PRICE, (src,), allow_failure=True) for _, src in with_source]

        def decode(results: Sequence[CallResult]) -> dict[int, int]:
            return {cat: r.value[0] if r.ok else 0 for (cat, _), r in zip(with_source, results, strict=True)}

        return Plan(calls, decode)

    def _build_market(
        self,
        addrs: AaveAddresses,
        base_unit: int,
        cores: Sequence[_ReserveCore],
        feeds: Mapping[str, FeedRound],
        emodes: Mapping[int, tuple[Any, ...]],
        emode_prices: Mapping[int, int],
    ) -> AaveMarket:
        reserves = []
        for c in cores:
            cfg = decode_reserve_configuration(c.data.configuration)
            reserves.append(
                AaveReserve(
                    asset=c.asset,
                    symbol=c.symbol,
                    decimals=cfg.decimals,
                    reserve_id=c.data.id,
                    configuration_raw=c.data.configuration,
                    ltv_bps=cfg.ltv_bps,
                    liquidation_threshold_bps=cfg.liquidation_threshold_bps,
                    liquidation_bonus_bps=cfg.liquidation_bonus_bps,
                    reserve_factor_bps=cfg.reserve_factor_bps,
                    active=cfg.active,
                    frozen=cfg.frozen,
                    paused=cfg.paused,
                    borrowing_enabled=cfg.borrowing_enabled,
                    stable_borrowing_enabled=cfg.stable_borrowing_enabled,
                    emode_category=cfg.emode_category,
                    a_token=c.data.a_token,
                    stable_debt_token=c.data.stable_debt_token,
                    variable_debt_token=c.data.variable_debt_token,
                    normalized_income_ray=c.normalized_income_ray,
                    normalized_variable_debt_ray=c.normalized_variable_debt_ray,
                    price_raw=c.price_raw,
                    price_source=c.price_source,
                    feed=feeds.get(c.price_source),
                )
            )
        categories = tuple(
            AaveEModeCategory(
                category_id=cat,
                ltv_bps=d[0],
                liquidation_threshold_bps=d[1],
                liquidation_bonus_bps=d[2],
                price_source=d[3],
                price_raw=emode_prices.get(cat),
                label=d[4],
            )
            for cat, d in sorted(emodes.items())
        )
        return AaveMarket(
            name=self.deployment.name,
            pool=addrs.pool,
            oracle=addrs.oracle,
            base_currency_unit=base_unit,
            reserves=tuple(reserves),
            emode_categories=categories,
        )

    def market_program(self, block: BlockRef) -> ReadProgram[AaveMarket]:
        """The market alone: rounds A–E without wallets."""
        addrs, base_unit, cores = yield from self._core()
        ((feeds, emodes),) = yield [self._feeds_and_emode_plan(addrs, cores, block)]
        (prices,) = yield [self._emode_price_plan(addrs, emodes)]
        return self._build_market(addrs, base_unit, cores, feeds, emodes, prices)

    def read_market(self, block: BlockRef | int | None = None) -> AaveMarket:
        """Reserves, prices, feeds and e-mode categories at ``block`` (latest when None)."""
        ref = self._resolve_block(block)
        return run_program(self.multicall, self.market_program(ref), ref)

    # --- wallet rounds -------------------------------------------------------------------------------
    def _wallet_plan(
        self, addrs: AaveAddresses, cores: Sequence[_ReserveCore], wallets: Sequence[str]
    ) -> Plan[list[_WalletPhase1]]:
        """Round D, wallet part."""
        all_debts = self.debt_reads == "all"
        per_reserve = 3 if all_debts else 1
        stride = 3 + per_reserve * len(cores)
        calls: list[Call] = []
        for w in wallets:
            calls += [
                Call(addrs.pool, GET_USER_CONFIGURATION, (w,), allow_failure=False),
                Call(addrs.pool, GET_USER_EMODE, (w,), allow_failure=False),
                # Reverts when one of the wallet's assets has no valid oracle price: then the protocol itself has
                # no figure (and cannot liquidate); ours is computed and flagged.
                Call(addrs.pool, GET_USER_ACCOUNT_DATA, (w,), allow_failure=True),
            ]
            for c in cores:
                calls.append(Call(c.data.a_token, SCALED_BALANCE_OF, (w,), allow_failure=False))
                if all_debts:
                    calls.append(Call(c.data.variable_debt_token, SCALED_BALANCE_OF, (w,), allow_failure=False))
                    calls.append(self._stable_call(c, w))

        def decode(results: Sequence[CallResult]) -> list[_WalletPhase1]:
            out = []
            for k, w in enumerate(wallets):
                r = results[k * stride : (k + 1) * stride]
                balances = [x.value[0] if x.ok else 0 for x in r[3:]]
                out.append(
                    _WalletPhase1(
                        wallet=w,
                        user_configuration=r[0].value[0][0],
                        emode=r[1].value[0],
                        onchain=OnchainAccountData(
                            total_collateral_base_raw=r[2].value[0],
                            total_debt_base_raw=r[2].value[1],
                            available_borrows_base_raw=r[2].value[2],
                            current_liquidation_threshold_bps=r[2].value[3],
                            ltv_bps=r[2].value[4],
                            health_factor_wad=r[2].value[5],
                        ) if r[2].ok else None,
                        scaled_a=tuple(balances[::per_reserve]),
                        scaled_variable=tuple(balances[1::3]) if all_debts else None,
                        stable=tuple(balances[2::3]) if all_debts else None,
                    )
                )
            return out

        return Plan(calls, decode)

    @staticmethod
    def _stable_call(core: _ReserveCore, wallet: str) -> Call:
        token = core.data.stable_debt_token
        # A reserve without a stable debt token (zero address) answers "no code": allowed to fail → 0.
        return Call(token, BALANCE_OF, (wallet,), allow_failure=int(token, 16) == 0)

    def _debt_plan(
        self, cores: Sequence[_ReserveCore], phase1: Sequence[_WalletPhase1]
    ) -> Plan[dict[tuple[int, int], tuple[int, int]]]:
        """Round E, wallet part: debts of the (wallet, reserve) pairs with the borrowing bit set."""
        by_id = {c.data.id: k for k, c in enumerate(cores)}
        pairs: list[tuple[int, int]] = []
        calls: list[Call] = []
        for wi, p in enumerate(phase1):
            for flags in user_reserve_flags(p.user_configuration):
                if not flags.borrowing:
                    continue
                ri = by_id.get(flags.reserve_id)
                if ri is None:
                    raise DecodeError(f"{p.wallet}: borrowing bit set for unknown reserve id {flags.reserve_id}")
                pairs.append((wi, ri))
                c = cores[ri]
                calls.append(Call(c.data.variable_debt_token, SCALED_BALANCE_OF, (p.wallet,), allow_failure=False))
                calls.append(self._stable_call(c, p.wallet))

        def decode(results: Sequence[CallResult]) -> dict[tuple[int, int], tuple[int, int]]:
            return {
                pair: (results[2 * k].value[0], results[2 * k + 1].value[0] if results[2 * k + 1].ok else 0)
                for k, pair in enumerate(pairs)
            }

        return Plan(calls, decode)

    def program(self, wallets: Sequence[str], block: BlockRef) -> ReadProgram[AaveSnapshot]:
        """The read program of :meth:`read_accounts` (see :mod:`connectors.evm.program`), for running
        together with other venues' programs in shared round trips. Wallets are validated here, before
        any I/O."""
        return self._accounts(self._program_wallets(wallets, block), block)

    def _accounts(self, wallets: Sequence[Address], block: BlockRef) -> ReadProgram[AaveSnapshot]:
        addrs, base_unit, cores = yield from self._core()
        (feeds, emodes), phase1 = yield [
            self._feeds_and_emode_plan(addrs, cores, block),
            self._wallet_plan(addrs, cores, wallets),
        ]
        debts: dict[tuple[int, int], tuple[int, int]] = {}
        price_plan = self._emode_price_plan(addrs, emodes)
        if self.debt_reads == "flagged":
            prices, debts = yield [price_plan, self._debt_plan(cores, phase1)]
        elif price_plan.calls:
            (prices,) = yield [price_plan]
        else:
            prices = {}
        market = self._build_market(addrs, base_unit, cores, feeds, emodes, prices)
        accounts = tuple(self._build_account(cores, wi, p, debts) for wi, p in enumerate(phase1))
        return AaveSnapshot(block=block, market=market, accounts=accounts)

    def read_accounts(self, wallets: Sequence[str], block: BlockRef | int | None = None) -> AaveSnapshot:
        """The market and every wallet's Aave state, all read at one block (the latest when None).

        Wallets are validated (EIP-55) before any I/O and de-duplicated, order kept. A wallet that never
        used the market comes back as an empty account (health factor = uint256 max on-chain).
        """
        checked, ref = self._read_inputs(wallets, block)
        return run_program(self.multicall, self._accounts(checked, ref), ref)

    @staticmethod
    def _build_account(
        cores: Sequence[_ReserveCore],
        wi: int,
        p: _WalletPhase1,
        debts: Mapping[tuple[int, int], tuple[int, int]],
    ) -> AaveAccount:
        cfg = p.user_configuration
        reserves = []
        for ri, c in enumerate(cores):
            rid = c.data.id
            borrowing = bool((cfg >> (rid << 1)) & 1)
            collateral = bool((cfg >> ((rid << 1) + 1)) & 1)
            if p.scaled_variable is not None and p.stable is not None:
                vdebt, sdebt = p.scaled_variable[ri], p.stable[ri]
            else:
                vdebt, sdebt = debts.get((wi, ri), (0, 0))
            scaled_a = p.scaled_a[ri]
            if not (scaled_a or vdebt or sdebt or borrowing or collateral):
                continue
            reserves.append(
                AaveUserReserve(
                    asset=c.asset,
                    scaled_a_token_balance_raw=scaled_a,
                    scaled_variable_debt_raw=vdebt,
                    stable_debt_raw=sdebt,
                    usage_as_collateral=collateral,
                    borrowing=borrowing,
                )
            )
        return AaveAccount(
            wallet=p.wallet,
            user_configuration_raw=cfg,
            emode_category=p.emode,
            reserves=tuple(reserves),
            onchain=p.onchain,
        )


CONNECTOR = AaveV3Connector
"""This venue's connector class, found by :mod:`connectors.registry`."""
