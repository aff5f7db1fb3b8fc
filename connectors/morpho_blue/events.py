"""Morpho Blue events (``EventsLib``): which logs change a wallet's position, which change a market, which mean
the watch must be rebuilt. Only logs of the watched markets count (the singleton emits every market's).

Positions: ``Supply``, ``Withdraw``, ``Borrow``, ``Repay``, ``SupplyCollateral``, ``WithdrawCollateral`` dirty
``onBehalf`` (the position's owner; ``caller`` and ``receiver`` only move tokens), ``Liquidate`` dirties
``borrower``; ``AccrueInterest`` with ``feeShares > 0`` mints supply shares to the fee recipient *without a
Supply event* (EventsLib says so), so it dirties the fee recipient the watch was built with.

Market (a reason): ``AccrueInterest``, ``SetFee``, ``SetFeeRecipient`` (which also rebuilds the watch: the
recipient changed), ``CreateMarket`` of a configured market missing from the snapshot (rebuild).

Oracles: the devnet's ``OracleMock`` (``@morpho-org/morpho-blue`` ``src/mocks/OracleMock.sol``) emits no event on
``setPrice``, and Morpho's Chainlink oracles read feeds the snapshot does not name; so a Morpho market's price is
never seen in the logs: re-read the markets (one multicall) every block.

:func:`account_state` is the part of a wallet's read that only these events change (shares and collateral).
"""

from __future__ import annotations

from collections.abc import Iterable

from connectors.evm.abi import Fn
from connectors.evm.logs import ZERO_ADDRESS, Decoded, Effect, Event, Handler, LogWatch, Watched, watched
from connectors.morpho_blue.models import MorphoAccount, MorphoSnapshot

__all__ = [
    "ACCRUE_INTEREST",
    "CREATE_MARKET",
    "FEE_RECIPIENT",
    "POSITION_EVENTS",
    "SET_FEE",
    "SET_FEE_RECIPIENT",
    "account_state",
    "morpho_watch",
]

FEE_RECIPIENT = Fn("feeRecipient()(address)")

_ID = "bytes32 indexed id"
POSITION_EVENTS: tuple[tuple[Event, str], ...] = (
    (Event(f"Supply({_ID}, address indexed caller, address indexed onBehalf, uint256 assets, uint256 shares)"),
     "onBehalf"),
    (Event(f"Withdraw({_ID}, address caller, address indexed onBehalf, address indexed receiver, uint256 assets, "
           "uint256 shares)"), "onBehalf"),
    (Event(f"Borrow({_ID}, address caller, address indexed onBehalf, address indexed receiver, uint256 assets, "
           "uint256 shares)"), "onBehalf"),
    (Event(f"Repay({_ID}, address indexed caller, address indexed onBehalf, uint256 assets, uint256 shares)"),
     "onBehalf"),
    (Event(f"SupplyCollateral({_ID}, address indexed caller, address indexed onBehalf, uint256 assets)"), "onBehalf"),
    (Event(f"WithdrawCollateral({_ID}, address caller, address indexed onBehalf, address indexed receiver, "
           "uint256 assets)"), "onBehalf"),
    (Event(f"Liquidate({_ID}, address indexed caller, address indexed borrower, uint256 repaidAssets, "
           "uint256 repaidShares, uint256 seizedAssets, uint256 badDebtAssets, uint256 badDebtShares)"), "borrower"),
)
"""Events that change a position, with the argument naming its owner (``Id`` is ``bytes32``)."""

ACCRUE_INTEREST = Event(f"AccrueInterest({_ID}, uint256 prevBorrowRate, uint256 interest, uint256 feeShares)")
SET_FEE = Event(f"SetFee({_ID}, uint256 newFee)")
SET_FEE_RECIPIENT = Event("SetFeeRecipient(address indexed newFeeRecipient)")
CREATE_MARKET = Event(f"CreateMarket({_ID}, (address,address,address,address,uint256) marketParams)")


def _market_id(decoded: Decoded) -> str:
    value: bytes = decoded["id"]
    return "0x" + value.hex()


def morpho_watch(venue: str, snapshot: MorphoSnapshot, *, fee_recipient: str | None = None,
                 configured: Iterable[str] = ()) -> LogWatch:
    """The watch of one Morpho deployment over the snapshot's markets (``configured``: market ids the venue is
    configured to read, so the creation of one not yet in the snapshot rebuilds the watch); ``fee_recipient``
    as of the snapshot's block (``None``: unknown, fee shares then dirty no one)."""
    markets = frozenset(m.market_id.lower() for m in snapshot.markets)
    wanted = frozenset(m.lower() for m in configured) - markets
    recipient = fee_recipient if fee_recipient not in (None, ZERO_ADDRESS) else None

    def owner_of(arg: str) -> Handler:
        def handler(decoded: Decoded) -> Effect | None:
            if _market_id(decoded) not in markets:
                return None
            return Effect(wallets=(decoded[arg],))

        return handler

    def accrue(decoded: Decoded) -> Effect | None:
        market = _market_id(decoded)
        if market not in markets:
            return None
        wallets = (recipient,) if recipient is not None and decoded["feeShares"] > 0 else ()
        return Effect(wallets=wallets, market_reason=f"AccrueInterest {market}")

    def set_fee(decoded: Decoded) -> Effect | None:
        market = _market_id(decoded)
        return Effect(market_reason=f"SetFee {market}") if market in markets else None

    def set_recipient(decoded: Decoded) -> Effect:
        return Effect(market_reason=f"SetFeeRecipient {decoded['newFeeRecipient']}",
                      rewatch=f"SetFeeRecipient {decoded['newFeeRecipient']}")

    def create(decoded: Decoded) -> Effect | None:
        market = _market_id(decoded)
        return Effect(market_reason=f"CreateMarket {market}", rewatch=f"CreateMarket {market}") \
            if market in wanted else None

    morpho = [snapshot.morpho]
    entries: list[Watched] = [watched(morpho, event, owner_of(arg)) for event, arg in POSITION_EVENTS]
    entries += [watched(morpho, ACCRUE_INTEREST, accrue), watched(morpho, SET_FEE, set_fee),
                watched(morpho, SET_FEE_RECIPIENT, set_recipient), watched(morpho, CREATE_MARKET, create)]
    note = "oracles emit no events here (OracleMock; Chainlink oracles read unnamed feeds): re-read markets every block"
    return LogWatch(venue, tuple(entries), note)


def account_state(account: MorphoAccount) -> tuple[object, ...]:
    """The part of ``account`` only its own events change: per market, supply shares, borrow shares, collateral
    (the assets are the shares on the block's accrued totals, recomputed locally)."""
    return tuple((p.market_id, p.supply_shares, p.borrow_shares, p.collateral_raw) for p in account.positions)
