"""Uniswap v3 events: the position manager's (which change a wallet's LP positions) and the pools' (market
reasons), and the stateful token id → owner book the manager's events need.

``IncreaseLiquidity``, ``DecreaseLiquidity`` and ``Collect`` name a token id, not its owner; ``Transfer`` (mint,
transfer, burn) names both. So the watch keeps an :class:`OwnerBook`: token id → owner, seeded from the venue
snapshot it was built from (every NFT each tracked wallet owns) and updated by every ``Transfer`` it sees, in
log order. **It is stateful**: a watch must see the blocks after its snapshot's, each once and in order (after a
reorganisation, rebuild it from a snapshot of the new chain). A token id it does not know belongs to a wallet the
snapshot did not read: its events dirty no one.

Positions: manager ``Transfer`` dirties ``from`` and ``to`` (not the zero address) and, when a tracked wallet
receives a position, rebuilds the watch (the position may be in a pool the snapshot has not read);
``IncreaseLiquidity`` / ``DecreaseLiquidity`` / ``Collect`` dirty the owner; ``Approval`` dirties the owner
(the position's ``operator`` changes).

Market: the snapshot's pools' ``Swap``, ``Mint``, ``Burn``, ``Collect``, ``Flash`` and ``SetFeeProtocol``
(price, tick, liquidity, fee growth, the ticks and the manager's pool positions). Each ``Swap``, ``Mint``, ``Burn``
and ``Collect`` also says, as a :class:`PoolTouch`, which of the pool's cached ticks and range positions it may
have changed: a swap moves the price to its ``tick`` (ticks between the price before and after are crossed, their
fee growth outside flipped), a mint or burn changes its two bound ticks and its owner's range position, a collect
its owner's range position. A flash or a fee protocol change moves only what is read every block.

:func:`account_state` is the part of a wallet's read that only these events change: its NFTs and their fields.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from connectors.evm.logs import ZERO_ADDRESS, Decoded, Effect, Event, LogWatch, Watched, watched
from connectors.uniswap_v3.models import UniswapAccount, UniswapSnapshot

__all__ = [
    "MANAGER_APPROVAL",
    "MANAGER_TRANSFER",
    "POOL_EVENTS",
    "TOKEN_ID_EVENTS",
    "OwnerBook",
    "PoolTouch",
    "account_state",
    "uniswap_watch",
]

MANAGER_TRANSFER = Event("Transfer(address indexed from, address indexed to, uint256 indexed tokenId)")
"""ERC-721 ``Transfer`` (three indexed topics: not the ERC-20 layout of the same topic0)."""
MANAGER_APPROVAL = Event("Approval(address indexed owner, address indexed approved, uint256 indexed tokenId)")
TOKEN_ID_EVENTS: tuple[Event, ...] = (
    Event("IncreaseLiquidity(uint256 indexed tokenId, uint128 liquidity, uint256 amount0, uint256 amount1)"),
    Event("DecreaseLiquidity(uint256 indexed tokenId, uint128 liquidity, uint256 amount0, uint256 amount1)"),
    Event("Collect(uint256 indexed tokenId, address recipient, uint256 amount0, uint256 amount1)"),
)
"""Manager events that name a position by token id."""
POOL_EVENTS: tuple[Event, ...] = tuple(Event(d) for d in (
    "Swap(address indexed sender, address indexed recipient, int256 amount0, int256 amount1, uint160 sqrtPriceX96, "
    "uint128 liquidity, int24 tick)",
    "Mint(address sender, address indexed owner, int24 indexed tickLower, int24 indexed tickUpper, uint128 amount, "
    "uint256 amount0, uint256 amount1)",
    "Burn(address indexed owner, int24 indexed tickLower, int24 indexed tickUpper, uint128 amount, uint256 amount0, "
    "uint256 amount1)",
    "Collect(address indexed owner, address recipient, int24 indexed tickLower, int24 indexed tickUpper, "
    "uint128 amount0, uint128 amount1)",
    "Flash(address indexed sender, address indexed recipient, uint256 amount0, uint256 amount1, uint256 paid0, "
    "uint256 paid1)",
    "SetFeeProtocol(uint8 feeProtocol0Old, uint8 feeProtocol1Old, uint8 feeProtocol0New, uint8 feeProtocol1New)",
))
"""Pool events: market reasons."""
_SWAP, _MINT, _BURN, _COLLECT = POOL_EVENTS[:4]


@dataclass(frozen=True, slots=True)
class PoolTouch:
    """What one pool event may have changed of the pool's cached state (see the module docstring).

    ``kind``: ``swap`` (``ticks`` = the tick after it), ``liquidity`` (a mint or burn: ``ticks`` = its bounds,
    ``owner`` its range position's owner) or ``collect`` (``ticks`` = the bounds of ``owner``'s range position).
    """

    pool: str
    kind: str
    ticks: tuple[int, ...]
    owner: str | None = None


def _pool_event(decoded: Decoded) -> Effect:
    """A pool event: its market reason, and what it touched (:class:`PoolTouch`)."""
    pool = decoded.log.address
    reason = f"{decoded.event.name} {pool}"
    event = decoded.event
    touch: PoolTouch | None = None
    if event is _SWAP:
        touch = PoolTouch(pool, "swap", (int(decoded["tick"]),))
    elif event is _MINT or event is _BURN:
        touch = PoolTouch(pool, "liquidity", (int(decoded["tickLower"]), int(decoded["tickUpper"])),
                          str(decoded["owner"]))
    elif event is _COLLECT:
        touch = PoolTouch(pool, "collect", (int(decoded["tickLower"]), int(decoded["tickUpper"])),
                          str(decoded["owner"]))
    return Effect(market_reason=reason, touched=() if touch is None else (touch,))


class OwnerBook:
    """Token id → owner of the tracked wallets' positions (stateful; see the module docstring)."""

    def __init__(self, tracked: Iterable[str], owners: dict[int, str]) -> None:
        self.tracked = frozenset(tracked)
        self.owners = owners

    @classmethod
    def of(cls, snapshot: UniswapSnapshot) -> OwnerBook:
        """Seeded from ``snapshot``: its wallets are the tracked ones, their NFTs the known token ids."""
        return cls((a.wallet for a in snapshot.accounts),
                   {p.token_id: a.wallet for a in snapshot.accounts for p in a.positions})

    def owner(self, token_id: int) -> str | None:
        return self.owners.get(token_id)

    def transfer(self, token_id: int, to: str) -> bool:
        """Record a transfer; whether a tracked wallet received the position."""
        if to in self.tracked:
            self.owners[token_id] = to
            return True
        self.owners.pop(token_id, None)
        return False


def uniswap_watch(venue: str, snapshot: UniswapSnapshot) -> LogWatch:
    """The watch of one position manager and the snapshot's pools, with a fresh :class:`OwnerBook` of the
    snapshot (the handlers' state: ``watch.state``)."""
    book = OwnerBook.of(snapshot)
    manager = [snapshot.position_manager]

    def transfer(decoded: Decoded) -> Effect:
        token_id: int = decoded["tokenId"]
        to: str = decoded["to"]
        received = book.transfer(token_id, to)
        return Effect(wallets=tuple(w for w in (decoded["from"], to) if w != ZERO_ADDRESS),
                      rewatch=f"position {token_id} to {to}" if received else None)

    def by_token_id(decoded: Decoded) -> Effect | None:
        owner = book.owner(decoded["tokenId"])
        return None if owner is None else Effect(wallets=(owner,))

    entries: list[Watched] = [watched(manager, MANAGER_TRANSFER, transfer),
                              watched(manager, MANAGER_APPROVAL, by_token_id)]
    entries += [watched(manager, event, by_token_id) for event in TOKEN_ID_EVENTS]
    pools = [p.address for p in snapshot.pools]
    if pools:
        entries += [watched(pools, event, _pool_event) for event in POOL_EVENTS]
    return LogWatch(venue, tuple(entries), "token id -> owner book: stateful, blocks in order after the snapshot's",
                    state=book)


def account_state(account: UniswapAccount) -> tuple[object, ...]:
    """The part of ``account`` only its own events change: every NFT it owns with every field of it."""
    return tuple(sorted((p.token_id, p.liquidity, p.fee_growth_inside0_last_x128, p.fee_growth_inside1_last_x128,
                         p.tokens_owed0, p.tokens_owed1, p.nonce, p.operator, p.pool, p.tick_lower, p.tick_upper)
                        for p in account.positions))
