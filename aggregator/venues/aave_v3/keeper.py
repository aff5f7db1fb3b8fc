"""Aave v3's keeper part: each Aave market is one planner venue (health = Σ collateral × threshold / Σ debt, the
reserves' own thresholds, e-mode's where it applies), acted on through its Pool::

    repay      Pool.repay(asset, amount, interestRateMode, onBehalfOf=wallet)
    supply     Pool.supply(asset, amount, onBehalfOf=wallet, referralCode=0)
    withdraw   Pool.withdraw(asset, amount, to=wallet)

and judged after a simulated plan by the Pool's own ``getUserAccountData`` health factor.
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
    note_token,
)
from aggregator.venues.aave_v3 import PLUGIN
from aggregator.venues.aave_v3.detail import AavePositionDetail
from aggregator.venues.detail import parse
from aggregator.venues.plugin import ChainLink
from connectors.aave_v3 import calls
from connectors.aave_v3.connector import AaveV3Connector
from connectors.errors import InvalidInputError
from db import LatestVenueHealth
from riskcore.rebalance import CollateralLine, DebtLine, LendingVenue

__all__ = ["KEEPER", "AaveV3Keeper"]


class AaveV3Keeper:
    lending = True

    def planner_venues(self, item: LatestVenueHealth, cfg: KeeperConfig,
                       tokens: dict[str, TokenInfo]) -> list[PlannerPair]:
        collateral: list[CollateralLine] = []
        debt: list[DebtLine] = []
        coll_raw: dict[str, int] = {}
        debt_raw: dict[str, int] = {}
        for p in item.snapshot.positions:
            note_token(tokens, p.asset.address, p.asset.symbol, p.asset.decimals, p.price_usd, item.venue)
            if p.side == "collateral" and p.is_collateral:
                bps = parse(AavePositionDetail, p.extra).liquidation_threshold_bps
                if bps is None:
                    raise StateError(f"{item.venue}: {p.asset.symbol} collateral without its liquidation threshold")
                collateral.append(CollateralLine(token=p.asset.address, amount=p.amount, threshold=bps / 10_000))
                coll_raw[p.asset.address] = p.amount_raw
            elif p.side == "debt":
                debt.append(DebtLine(token=p.asset.address, amount=p.amount))
                debt_raw[p.asset.address] = p.amount_raw
        target = cfg.target(item.venue)
        return [(LendingVenue(name=item.venue, collateral=tuple(collateral), debt=tuple(debt), target=target.target,
                              offset=target.offset),
                 PlannedVenue(venue=item.venue, protocol="aave_v3", market_key=None, collateral_raw=coll_raw,
                              debt_raw=debt_raw))]

    # -- actions ---------------------------------------------------------------------------------------------
    def target(self, cfg: VenueConfig, planned: PlannedVenue, link: ChainLink) -> ActionTarget:
        """The market's Pool, from its PoolAddressesProvider at the latest block."""
        connector = PLUGIN.open_onchain(cfg, link).connector
        assert isinstance(connector, AaveV3Connector)
        block = link.rpc.get_block("latest")
        return ActionTarget(to=str(connector.addresses(block).pool))

    def validate(self, action: ActionSpec) -> None:
        if action.kind == "repay" and action.interest_rate_mode not in calls.RATE_MODES:
            raise InvalidInputError(f"{action.kind} {action.symbol} on {action.venue}: interest_rate_mode must be "
                                    "1 (stable) or 2 (variable)")

    def call(self, action: ActionSpec) -> VenueCall:
        wallet, token, amount, what = action.wallet, action.token, action.amount_raw, action.what
        if action.kind == "repay":
            mode = calls.RATE_MODES[action.interest_rate_mode]
            return VenueCall(calls.repay_call(token, amount, action.interest_rate_mode, wallet),
                             f"repay {what} {mode} debt on {action.venue} for {wallet}")
        if action.kind == "supply":
            return VenueCall(calls.supply_call(token, amount, wallet),
                             f"supply {what} to {action.venue} for {wallet}")
        return VenueCall(calls.withdraw_call(token, amount, wallet), f"withdraw {what} from {action.venue} to {wallet}")

    def spender_name(self, action: ActionSpec) -> str:
        return f"{action.venue} Pool"

    def health_reads(self, planned: PlannedVenue, target: ActionTarget, wallet: str) -> HealthReads:
        """The Pool's ``getUserAccountData(wallet)`` health factor."""

        def health(answers: Sequence[bytes]) -> float | None:
            return calls.account_data_answer(answers[0]).health_factor

        return HealthReads(reads=(Read(to=target.to, data=calls.account_data_call(wallet)),), health=health)


KEEPER = AaveV3Keeper()
