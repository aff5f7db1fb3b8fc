"""Morpho Blue's keeper part: each market the wallet holds a position in is one planner venue named
``<venue>:<market id>`` (one collateral, one loan token, LLTV), acted on through the Morpho contract with the
market's ``MarketParams``::

    repay      repay(marketParams, assets, shares=0, onBehalf=wallet, data="")            the loan token
    supply     supplyCollateral(marketParams, assets, onBehalf=wallet, data="")           the collateral token
    withdraw   withdrawCollateral(marketParams, assets, onBehalf=wallet, receiver=wallet) the collateral token

and judged after a simulated plan by the protocol's health from the market's position, totals and oracle price.
"""

from __future__ import annotations

from collections.abc import Sequence

from aggregator.config import KeeperConfig, VenueConfig
from aggregator.keeper.plugin import (
    ActionSpec,
    ActionTarget,
    HealthReads,
    PlannedVenue,
    PlannerPair,
    Read,
    StateError,
    TokenInfo,
    VenueCall,
    checked_address,
    note_token,
)
from aggregator.venues.detail import parse
from aggregator.venues.morpho_blue import PLUGIN, MorphoBlueConfig
from aggregator.venues.morpho_blue.detail import MorphoHealthDetail
from aggregator.venues.plugin import ChainLink
from connectors.errors import InvalidInputError
from connectors.morpho_blue import calls
from connectors.morpho_blue.calls import MarketParams
from db import LatestVenueHealth, PositionRow
from riskcore.rebalance import CollateralLine, DebtLine, LendingVenue
from riskcore.venues.morpho_blue.health import health_factor_raw

__all__ = ["KEEPER", "MorphoBlueKeeper"]


class MorphoBlueKeeper:
    lending = True

    def planner_venues(self, item: LatestVenueHealth, cfg: KeeperConfig,
                       tokens: dict[str, TokenInfo]) -> list[PlannerPair]:
        assert item.health is not None
        markets = parse(MorphoHealthDetail, item.health.extra).by_market()
        by_market: dict[str, list[PositionRow]] = {}
        for p in item.snapshot.positions:
            if p.market_key is not None:
                by_market.setdefault(p.market_key, []).append(p)
        out: list[PlannerPair] = []
        target = cfg.target(item.venue)
        for key, positions in by_market.items():
            detail = markets.get(key)
            if detail is None:
                raise StateError(f"{item.venue}: no parameters stored for market {key}")
            lltv = detail.lltv
            collateral: list[CollateralLine] = []
            debt: list[DebtLine] = []
            coll_raw: dict[str, int] = {}
            debt_raw: dict[str, int] = {}
            for p in positions:
                if p.price_usd is None:
                    raise StateError(f"{item.venue}: {p.asset.symbol} has no USD price")
                note_token(tokens, p.asset.address, p.asset.symbol, p.asset.decimals, p.price_usd, item.venue)
                if p.side == "collateral":
                    # Morpho values collateral with the market's own oracle, which may differ from the token's USD
                    # price used for every venue: scale the LLTV so that the planner's health is Morpho's.
                    scale = p.price_usd / tokens[p.asset.address].price_usd
                    collateral.append(CollateralLine(token=p.asset.address, amount=p.amount,
                                                     threshold=lltv * scale))
                    coll_raw[p.asset.address] = p.amount_raw
                elif p.side == "debt":
                    debt.append(DebtLine(token=p.asset.address, amount=p.amount))
                    debt_raw[p.asset.address] = p.amount_raw
            if not debt and not collateral:
                continue
            out.append((LendingVenue(name=f"{item.venue}:{key}", collateral=tuple(collateral), debt=tuple(debt),
                                     target=target.target, offset=target.offset),
                        PlannedVenue(venue=item.venue, protocol="morpho_blue", market_key=key,
                                     collateral_raw=coll_raw, debt_raw=debt_raw)))
        return out

    # -- actions ---------------------------------------------------------------------------------------------
    def target(self, cfg: VenueConfig, planned: PlannedVenue, link: ChainLink) -> ActionTarget:
        """The Morpho contract, and the market's ``MarketParams`` read from it (immutable once created)."""
        own: MorphoBlueConfig = PLUGIN.config(cfg)
        assert planned.market_key is not None
        answer = link.rpc.eth_call(own.morpho, calls.market_params_call(planned.market_key), "latest")
        return ActionTarget(to=own.morpho, market=calls.market_params_answer(answer))

    def validate(self, action: ActionSpec) -> None:
        what = f"{action.kind} {action.symbol} on {action.venue}"
        market = action.market
        if market is None:
            raise InvalidInputError(f"{what}: a Morpho Blue action needs its market params")
        if not isinstance(market, MarketParams):
            raise InvalidInputError(f"{what}: the market is not a Morpho Blue MarketParams: {market!r}")
        expected = market.loan_token if action.kind == "repay" else market.collateral_token
        role = "loan" if action.kind == "repay" else "collateral"
        if checked_address(expected, f"market {role} token") != checked_address(action.token, "token"):
            raise InvalidInputError(f"{what}: token {action.token} is not the market's {role} token {expected}")

    def call(self, action: ActionSpec) -> VenueCall:
        market = _checked_market(action.market)
        wallet, amount, what = action.wallet, action.amount_raw, action.what
        if action.kind == "repay":
            return VenueCall(calls.repay_call(market, amount, wallet),
                             f"repay {what} debt on {action.venue} for {wallet}")
        if action.kind == "supply":
            return VenueCall(calls.supply_collateral_call(market, amount, wallet),
                             f"supply {what} collateral to {action.venue} for {wallet}")
        return VenueCall(calls.withdraw_collateral_call(market, amount, wallet, wallet),
                         f"withdraw {what} collateral from {action.venue} to {wallet}")

    def spender_name(self, action: ActionSpec) -> str:
        return action.venue

    def health_reads(self, planned: PlannedVenue, target: ActionTarget, wallet: str) -> HealthReads:
        """The wallet's position, the market's totals and its oracle's price; the protocol's health from them."""
        assert planned.market_key is not None
        assert isinstance(target.market, MarketParams)
        params = target.market
        reads = (Read(to=target.to, data=calls.position_call(planned.market_key, wallet)),
                 Read(to=target.to, data=calls.market_call(planned.market_key)),
                 Read(to=params.oracle, data=calls.price_call()))

        def health(answers: Sequence[bytes]) -> float | None:
            position = calls.position_answer(answers[0])
            totals = calls.market_answer(answers[1])
            price = calls.price_answer(answers[2])
            if position.borrow_shares == 0:
                return None
            return float(health_factor_raw(position.collateral, position.borrow_shares, totals.total_borrow_assets,
                                           totals.total_borrow_shares, price, params.lltv_wad))

        return HealthReads(reads=reads, health=health)


def _checked_market(market: object) -> MarketParams:
    """The market's ``MarketParams`` with every address checked (an :class:`InvalidInputError` naming it)."""
    assert isinstance(market, MarketParams)  # checked by validate
    return MarketParams(checked_address(market.loan_token, "market loan_token"),
                        checked_address(market.collateral_token, "market collateral_token"),
                        checked_address(market.oracle, "market oracle"), checked_address(market.irm, "market irm"),
                        market.lltv_wad)


KEEPER = MorphoBlueKeeper()
