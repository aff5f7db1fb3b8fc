"""One block's incremental read of the on-chain venues: every venue's market program and the account program of
the wallets to re-read, all in ONE :func:`connectors.evm.program.run_programs` (the same multicall rounds, one
pinned block), then each venue's health recomputed from cached account state (:class:`Incremental`).

The caller keeps, per venue, the account states it has (``cached``, read at earlier blocks) and names the wallets
an event touched this block (``wallets``); :func:`read_block` returns the block's market state and the fresh
states, :func:`refreshed` merges them into the cache and :func:`snapshot_at` builds the snapshot the venue's
``evaluate`` takes. A venue whose program failed has its :class:`~connectors.errors.ConnectorError` in place of the
state, the other venues go on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aggregator.venues.plugin import Incremental, MarketUpdate
from connectors.errors import ConnectorError
from connectors.evm.multicall import Multicall
from connectors.evm.program import ReadProgram, run_programs
from connectors.types import BlockRef

__all__ = ["BlockRead", "VenueBlock", "read_block", "refreshed", "snapshot_at"]


@dataclass(frozen=True)
class VenueBlock:
    """What one venue reads at a block: its incremental parts, its cached account states, the wallets to re-read
    and a market state already known (for the static addresses the account program needs; None: discovered)."""

    incremental: Incremental
    cached: Sequence[Any]
    wallets: Sequence[str] = ()
    known_market: Any | None = None
    update: MarketUpdate | None = None
    """The market state of the block before and what this block's logs touched: the venue's ``market_update``
    (where it has one) reads only what may have changed. None: the whole market program."""


@dataclass(frozen=True)
class BlockRead:
    """One venue's result at a block: the block's market state and the re-read wallets' states (each its
    :class:`~connectors.errors.ConnectorError` when its program failed)."""

    market: Any
    accounts: Sequence[Any] | ConnectorError

    @property
    def ok(self) -> bool:
        return not isinstance(self.market, ConnectorError) and not isinstance(self.accounts, ConnectorError)


def read_block(multicall: Multicall, venues: Mapping[str, VenueBlock], block: BlockRef) -> dict[str, BlockRead]:
    """Every venue's market program (sized by markets, not wallets) and account program (the wallets to re-read),
    run together at ``block``: as many multicall rounds as the longest program, whatever the venue count."""
    programs: dict[tuple[str, str], ReadProgram[Any]] = {}
    for name, v in venues.items():
        update = v.incremental.market_update
        programs[(name, "market")] = (update(block, v.cached, v.update) if update is not None and v.update is not None
                                      else v.incremental.market_program(block, v.cached))
        programs[(name, "accounts")] = v.incremental.account_program(v.wallets, block, v.known_market)
    results = run_programs(multicall, programs, block)
    return {name: BlockRead(results[(name, "market")], results[(name, "accounts")]) for name in venues}


def refreshed(cached: Sequence[Any], fresh: Sequence[Any], wallet_of: Callable[[Any], str]) -> list[Any]:
    """``cached`` with every wallet of ``fresh`` replaced by (or, new, appended as) its fresh state; order kept."""
    by_wallet = {wallet_of(a).lower(): a for a in fresh}
    out = [by_wallet.pop(wallet_of(a).lower(), a) for a in cached]
    return out + list(by_wallet.values())


def snapshot_at(incremental: Incremental, market: Any, accounts: Sequence[Any]) -> Any:
    """The venue's snapshot of ``accounts`` at ``market``'s block (``incremental.combine``)."""
    return incremental.combine(market, accounts)
