"""Morpho Blue connector: watched markets and many wallets' positions, pinned to one block.

Every read goes through Multicall3; the read plan, by round trip (each one JSON-RPC batch, one HTTP request
unless its body passes the multicall's byte cap)::

    0  eth_getBlockByNumber                    read_accounts only, when no BlockRef is given (+ eth_chainId once)
    1  per market: morpho.market(id); morpho.idToMarketParams(id)      (params: first read only, then cached)
       per (wallet, market): morpho.position(id, wallet)
    2  per market: oracle.price(); irm.borrowRateView(marketParams, market)   (no IRM call when irm = 0)
       per token not seen before: decimals(), symbol()                      (first read only, then cached)

So two round trips at any wallet count; ``2M + W·M`` sub-calls in round 1 and ``2M`` in round 2 once the
static parts (params, decimals, symbols — immutable on-chain) are cached.

Interest: ``market(id)`` holds totals as of ``lastUpdate``. The protocol accrues before every health check
(``_accrueInterest``: ``borrowRate(marketParams, market)`` × ``block.timestamp − lastUpdate`` through
``wTaylorCompounded``, fee minted as supply shares). The connector reads the IRM's ``borrowRateView`` with
the stored market at the pinned block — the value ``borrowRate`` returns in a transaction of that block —
and replicates the accrual to the block's timestamp (an ``eth_call`` at block N runs with block N's
timestamp), so :class:`~connectors.morpho_blue.models.MorphoMarket` carries both the stored and the
accrued totals, and positions' assets are derived from the accrued ones with ``SharesMathLib``'s rounding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from connectors.base import Capabilities
from connectors.errors import DecodeError, InvalidInputError
from connectors.evm.abi import SYMBOL, Fn, decode_symbol
from connectors.evm.multicall import Call, CallResult, Multicall, Plan
from connectors.evm.program import ReadProgram, run_program
from connectors.evm.rpc import RpcClient
from connectors.evm.venue import EvmVenueConnector, wallet_addresses
from connectors.morpho_blue.decode import (
    MARKET_PARAMS_TYPE,
    MARKET_TYPE,
    MarketParams,
    MarketTotals,
    PositionRaw,
    accrue,
    decode_market,
    decode_market_params,
    decode_position,
    to_assets_down,
    to_assets_up,
)
from connectors.morpho_blue.deployments import MorphoDeployment
from connectors.morpho_blue.models import MorphoAccount, MorphoMarket, MorphoPosition, MorphoSnapshot
from connectors.types import Address, BlockRef

__all__ = [
    "BORROW_RATE_VIEW",
    "DECIMALS",
    "ID_TO_MARKET_PARAMS",
    "MARKET",
    "POSITION",
    "PRICE",
    "SYMBOL",
    "MorphoBlueConnector",
    "TokenInfo",
    "wallet_addresses",
]

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"

MARKET = Fn("market(bytes32)(uint128,uint128,uint128,uint128,uint128,uint128)")
ID_TO_MARKET_PARAMS = Fn("idToMarketParams(bytes32)(address,address,address,address,uint256)")
POSITION = Fn("position(bytes32,address)(uint256,uint128,uint128)")
PRICE = Fn("price()(uint256)")
BORROW_RATE_VIEW = Fn(f"borrowRateView({MARKET_PARAMS_TYPE},{MARKET_TYPE})(uint256)")
DECIMALS = Fn("decimals()(uint8)")


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A token's ``symbol()`` ("" when it has none) and ``decimals()`` (None when it has none)."""

    symbol: str
    decimals: int | None


@dataclass(frozen=True, slots=True)
class _Round1:
    totals: tuple[MarketTotals, ...]
    params: tuple[MarketParams, ...]
    positions: tuple[tuple[PositionRaw, ...], ...]
    """Per wallet, per market."""


class MorphoBlueConnector(EvmVenueConnector[MorphoDeployment]):
    """Reads a chain's Morpho Blue (``deployment``: the contract and the markets to watch) and wallets' positions.

    Parameters
    ----------
    rpc:
        The chain's client (its ``stats`` count the HTTP requests and calls).
    deployment:
        Morpho's address and the market ids to read, in the order the snapshot lists them.
    multicall:
        Defaults to Multicall3 at its canonical address over ``rpc``.
    """

    capabilities: ClassVar[Capabilities] = Capabilities(
        venue_type="morpho_blue", kind="lending", transport="evm", block_pinned=True, batch_wallets=True,
        reports_own_health=False, positions=("collateral", "debt"),
        actions=("repay", "supply", "withdraw"),
    )

    def __init__(self, rpc: RpcClient, deployment: MorphoDeployment, multicall: Multicall | None = None) -> None:
        super().__init__(rpc, deployment, multicall)
        self._params: dict[str, MarketParams] = {}
        self._tokens: dict[str, TokenInfo] = {}

    def __repr__(self) -> str:
        return f"MorphoBlueConnector({self.deployment.name!r}, {len(self.deployment.markets)} markets, {self.rpc!r})"

    # --- round 1 -------------------------------------------------------------------------------------
    def _round1_plan(self, wallets: Sequence[str], block: BlockRef) -> Plan[_Round1]:
        morpho = self.deployment.morpho
        ids = self.deployment.markets
        id_bytes = [bytes.fromhex(i[2:]) for i in ids]
        missing = [k for k, i in enumerate(ids) if i not in self._params]
        calls: list[Call] = [Call(morpho, MARKET, calldata=MARKET.selector + b, allow_failure=False) for b in id_bytes]
        calls += [
            Call(morpho, ID_TO_MARKET_PARAMS, calldata=ID_TO_MARKET_PARAMS.selector + id_bytes[k], allow_failure=False)
            for k in missing
        ]
        n_head = len(calls)
        for w in wallets:
            word = bytes(12) + bytes.fromhex(w[2:])
            calls += [
                Call(morpho, POSITION, calldata=POSITION.selector + b + word, allow_failure=False) for b in id_bytes
            ]

        def decode(res: Sequence[CallResult]) -> _Round1:
            totals = tuple(decode_market(r.value) for r in res[: len(ids)])
            for k, r in zip(missing, res[len(ids) : n_head], strict=True):
                self._learn_params(ids[k], decode_market_params(r.value))
            for i, t in zip(ids, totals, strict=True):
                if t.last_update == 0:
                    raise InvalidInputError(
                        f"{self.deployment.name}: market {i} is not created on Morpho {morpho} "
                        f"(chain {block.chain_id}, block {block.number})"
                    )
            params = tuple(self._params[i] for i in ids)
            m = len(ids)
            positions = tuple(
                tuple(decode_position(r.value) for r in res[n_head + wi * m : n_head + (wi + 1) * m])
                for wi in range(len(wallets))
            )
            return _Round1(totals, params, positions)

        return Plan(calls, decode)

    def _learn_params(self, market_id: str, params: MarketParams) -> None:
        if params.loan_token == ZERO_ADDRESS and params.lltv_wad == 0:
            return  # not created: reported with the market's lastUpdate == 0, params not cached
        if params.id != market_id:
            raise DecodeError(
                f"{self.deployment.name}: idToMarketParams({market_id}) hashes to {params.id}, not to the id"
            )
        self._params[market_id] = params

    # --- round 2 -------------------------------------------------------------------------------------
    def _round2_plan(
        self, totals: Sequence[MarketTotals], params: Sequence[MarketParams]
    ) -> Plan[tuple[tuple[int, ...], tuple[int | None, ...]]]:
        calls: list[Call] = []
        slots: list[tuple[int, int]] = []  # (price index, rate index or -1) per market
        for t, p in zip(totals, params, strict=True):
            price_at = len(calls)
            calls.append(Call(p.oracle, PRICE, allow_failure=False))
            rate_at = -1
            if p.irm != ZERO_ADDRESS:
                rate_at = len(calls)
                calls.append(Call(p.irm, BORROW_RATE_VIEW, (p.as_tuple(), t.as_tuple()), allow_failure=False))
            slots.append((price_at, rate_at))
        new_tokens = list(
            dict.fromkeys(a for p in params for a in (p.loan_token, p.collateral_token) if a not in self._tokens)
        )
        token_at = len(calls)
        for a in new_tokens:
            calls += [Call(a, DECIMALS), Call(a, SYMBOL, decoder=decode_symbol)]

        def decode(res: Sequence[CallResult]) -> tuple[tuple[int, ...], tuple[int | None, ...]]:
            for k, a in enumerate(new_tokens):
                dec, sym = res[token_at + 2 * k], res[token_at + 2 * k + 1]
                self._tokens[a] = TokenInfo(sym.value if sym.ok else "", dec.value[0] if dec.ok else None)
            prices = tuple(int(res[p].value[0]) for p, _ in slots)
            rates = tuple(int(res[r].value[0]) if r >= 0 else None for _, r in slots)
            return prices, rates

        return Plan(calls, decode)

    # --- programs ------------------------------------------------------------------------------------
    def program(self, wallets: Sequence[str], block: BlockRef) -> ReadProgram[MorphoSnapshot]:
        """The read program of :meth:`read_accounts` (see :mod:`connectors.evm.program`), for running
        together with other venues' programs in shared round trips. Wallets are validated here, before
        any I/O."""
        return self._accounts(self._program_wallets(wallets, block), block)

    def market_program(self, block: BlockRef) -> ReadProgram[tuple[MorphoMarket, ...]]:
        """The watched markets alone (the same two rounds without positions)."""
        self._check_chain(block)
        snap = yield from self._accounts([], block)
        return snap.markets

    def _accounts(self, wallets: Sequence[Address], block: BlockRef) -> ReadProgram[MorphoSnapshot]:
        (r1,) = yield [self._round1_plan(wallets, block)]
        ((prices, rates),) = yield [self._round2_plan(r1.totals, r1.params)]
        markets = tuple(
            self._build_market(i, t, p, price, rate, block.timestamp)
            for i, t, p, price, rate in zip(self.deployment.markets, r1.totals, r1.params, prices, rates, strict=True)
        )
        accounts = tuple(
            MorphoAccount(
                wallet=w,
                positions=tuple(_build_position(m, raw) for m, raw in zip(markets, per_market, strict=True)),
            )
            for w, per_market in zip(wallets, r1.positions, strict=True)
        )
        return MorphoSnapshot(block=block, morpho=self.deployment.morpho, markets=markets, accounts=accounts)

    def _build_market(
        self, market_id: str, t: MarketTotals, p: MarketParams, price: int, rate: int | None, timestamp: int
    ) -> MorphoMarket:
        acc = accrue(t, rate, timestamp)
        loan, coll = self._tokens[p.loan_token], self._tokens[p.collateral_token]
        return MorphoMarket(
            market_id=market_id,
            loan_token=p.loan_token,
            loan_symbol=loan.symbol,
            loan_decimals=loan.decimals,
            collateral_token=p.collateral_token,
            collateral_symbol=coll.symbol,
            collateral_decimals=coll.decimals,
            oracle=p.oracle,
            irm=p.irm,
            lltv_wad=p.lltv_wad,
            total_supply_assets_raw=t.total_supply_assets,
            total_supply_shares=t.total_supply_shares,
            total_borrow_assets_raw=t.total_borrow_assets,
            total_borrow_shares=t.total_borrow_shares,
            last_update=t.last_update,
            fee_wad=t.fee_wad,
            price_raw=price,
            borrow_rate_wad=rate,
            accrued_to=acc.timestamp,
            accrued_total_supply_assets_raw=acc.total_supply_assets,
            accrued_total_supply_shares=acc.total_supply_shares,
            accrued_total_borrow_assets_raw=acc.total_borrow_assets,
            accrued_total_borrow_shares=acc.total_borrow_shares,
            pending_interest_raw=acc.interest,
        )

    # --- entry points --------------------------------------------------------------------------------
    def read_accounts(self, wallets: Sequence[str], block: BlockRef | int | None = None) -> MorphoSnapshot:
        """The watched markets and every wallet's position in each, all read at one block (the latest when None).

        Wallets are validated (EIP-55) before any I/O and de-duplicated, order kept. A wallet that never used
        a market has a position of zeros there.
        """
        checked, ref = self._read_inputs(wallets, block)
        return run_program(self.multicall, self._accounts(checked, ref), ref)

    def read_markets(self, block: BlockRef | int | None = None) -> tuple[MorphoMarket, ...]:
        """The watched markets at ``block`` (latest when None)."""
        ref = self._resolve_block(block)
        return run_program(self.multicall, self.market_program(ref), ref)


def _build_position(m: MorphoMarket, raw: PositionRaw) -> MorphoPosition:
    return MorphoPosition(
        market_id=m.market_id,
        supply_shares=raw.supply_shares,
        borrow_shares=raw.borrow_shares,
        collateral_raw=raw.collateral,
        supply_assets_raw=to_assets_down(
            raw.supply_shares, m.accrued_total_supply_assets_raw, m.accrued_total_supply_shares
        ),
        borrow_assets_raw=to_assets_up(
            raw.borrow_shares, m.accrued_total_borrow_assets_raw, m.accrued_total_borrow_shares
        ),
    )


CONNECTOR = MorphoBlueConnector
"""This venue's connector class, found by :mod:`connectors.registry`."""
