"""Which chain a configured name points at, checked before every sync.

A configured chain is a name, a chain id and an RPC URL — none of which says *which* chain answers: a devnet reset
from the same deployment, a fork, or an RPC pointed elsewhere can all serve the same chain id, even the same
genesis block and the same block numbers. Before each sync the syncer asks the node, in one batched request, for
its head, its genesis block and the block at the height of the newest block the store holds from the current
identity (:mod:`db.chains`), and :func:`judge` decides:

``same``
    The newest stored block is still on the node's chain (the common case): sync on.
``reorg``
    The newest stored blocks were replaced, but an older stored block within ``max_reorg_depth`` blocks is still
    there: the chain reorganised. What the store holds above that ancestor is purged (it is no longer on the chain),
    and the sync goes on on the same identity.
``new``
    Another chain: another genesis, or none of the stored blocks is on the node's chain within the reorg depth,
    or the node's head is below what was stored while its time is later (a reset devnet starts again from a
    lower block). The old identity is retired — its rows stay in the store, apart, never served as current nor
    mixed into a history — and a new one begins. One WARNING line says so.
``behind``
    The node's head is below the newest stored block, and a stored block at or below the head is on the node's
    chain while none was replaced: a node (or a fallback endpoint) that lags behind. The sync fails with that
    reason rather than store older data as new. A node whose head is below *every* block stored from the chain
    gives no such evidence, and is taken for another chain (a reset devnet starts again below its predecessor's
    blocks; a node lagging behind everything ever stored would at worst begin a new identity, which the primary's
    next answer then continues).

An identity migrated from a store older than chain identities (``genesis_hash`` unknown) is adopted only when its
newest stored block is on the node's chain; otherwise it is retired.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from connectors.errors import ConnectorError, InvalidInputError
from connectors.evm.rpc import RpcClient
from connectors.types import BlockRef
from db import ChainRow, Store, StoredBlock

__all__ = ["MAX_REORG_DEPTH", "ChainBehindError", "Verdict", "identify", "judge"]

log = logging.getLogger(__name__)

MAX_REORG_DEPTH = 64
"""Deepest reorganisation treated as one (Ethereum finalises in two epochs, 64 blocks); deeper is another chain."""
PROBE_BLOCKS = 16
"""Stored blocks checked against the node when the newest one is not on its chain."""


class ChainBehindError(InvalidInputError):
    """The node's head is behind what the store already holds from this chain (a lagging node or fallback)."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the node's chain is to the stored identity: ``same``, ``reorg`` (above ``ancestor``), ``new`` or
    ``behind``, with the reason in words (``None`` for ``same``)."""

    kind: Literal["same", "reorg", "new", "behind"]
    reason: str | None = None
    ancestor: int | None = None


def _short(h: str | None) -> str:
    return "none" if h is None else f"{h[:10]}…"


def judge(
    chain: ChainRow | None,
    genesis_hash: str,
    head: BlockRef,
    stored: Sequence[StoredBlock],
    canonical: Mapping[int, str | None],
    *,
    max_reorg_depth: int = MAX_REORG_DEPTH,
) -> Verdict:
    """Decide what the node's chain is to the stored identity ``chain`` (see the module docstring).

    ``stored``: the identity's highest stored blocks and its highest ones at or below the node's head, highest
    first; ``canonical``: the node's hash at each of those heights (``None`` where the node has no such block,
    i.e. above its head). Pure: no I/O.
    """
    if chain is None:
        return Verdict("new", None)
    if chain.genesis_hash is not None and chain.genesis_hash.lower() != genesis_hash.lower():
        return Verdict("new", f"its genesis block is now {_short(genesis_hash)}, was {_short(chain.genesis_hash)}")
    if not stored:
        return Verdict("same")
    newest = stored[0]
    if (canonical.get(newest.number) or "").lower() == newest.hash.lower():
        return Verdict("same")
    replaced = [b for b in stored if canonical.get(b.number) is not None
                and str(canonical[b.number]).lower() != b.hash.lower()]
    kept = [b for b in stored if (canonical.get(b.number) or "").lower() == b.hash.lower()]
    later = newest.timestamp is not None and datetime.fromtimestamp(head.timestamp, UTC) > newest.timestamp
    if chain.genesis_hash is None:  # an identity migrated from an older store: adopted only when plainly the same
        return Verdict("new", f"block {newest.number} of the stored data is not on the node's chain "
                              "(recorded before chain identities were checked)")
    if not replaced and kept and head.number < newest.number and not later:
        return Verdict("behind", f"the node's head is block {head.number}, behind block {newest.number} "
                                 "already stored from this chain")
    ancestor = kept[0].number if kept else None
    if ancestor is not None and newest.number - ancestor <= max_reorg_depth:
        return Verdict("reorg", f"blocks above {ancestor} were replaced (block {newest.number} was "
                                f"{_short(newest.hash)}, is {_short(canonical.get(newest.number))})", ancestor)
    if not replaced and not kept:
        why = f"the node's head is block {head.number}, below every block stored from it (up to {newest.number})"
    elif head.number < newest.number:
        why = f"the node's head is block {head.number}, below block {newest.number} stored from it"
    else:
        why = f"block {newest.number} is now {_short(canonical.get(newest.number))}, was {_short(newest.hash)}"
    return Verdict("new", why + ("" if ancestor is None else f"; the nearest common block {ancestor} is more than "
                                                             f"{max_reorg_depth} blocks back"))


def identify(
    store: Store, rpc: RpcClient, name: str, chain_id: int, *, max_reorg_depth: int = MAX_REORG_DEPTH,
    also: Sequence[int] = (), seen: dict[int, BlockRef] | None = None,
) -> tuple[ChainRow, BlockRef]:
    """Check the node behind configured chain ``name`` against the store and return the identity to sync under,
    with the node's head. One batched request in the common case (head, genesis, the newest stored block), one
    more when that block is not on the node's chain.

    ``also``: more block numbers to read in the same request; ``seen``, when given, receives every block read
    here by number (the head, genesis, the probed and ``also`` blocks), so a caller need not read them again.

    Retires and begins identities, and purges reorganised blocks, as :func:`judge` decides. Raises
    :class:`ChainBehindError` for a node behind the store, :class:`InvalidInputError` for a node serving another
    chain id, and the RPC's :class:`ConnectorError` when it cannot be asked.
    """
    current = store.current_chain(chain_id)
    stored = store.stored_blocks(current.id, 1) if current is not None else []
    extra = [n for n in dict.fromkeys(also) if n not in {0, *(b.number for b in stored)}]
    head, genesis, *probed = rpc.get_blocks(["latest", 0, *(b.number for b in stored), *extra])
    if head is None or genesis is None:
        raise ConnectorError(f"chain {name!r}: the node did not return its head and genesis blocks")
    if seen is not None:
        seen.update({b.number: b for b in (head, genesis, *probed) if b is not None})
    probed = probed[: len(stored)]
    if head.chain_id != chain_id:
        raise InvalidInputError(f"chain {name!r} is configured as chain id {chain_id}, but its RPC serves chain id "
                                f"{head.chain_id}")
    canonical = {b.number: (p.hash if p is not None else None) for b, p in zip(stored, probed, strict=True)}
    if current is not None and stored and (canonical[stored[0].number] or "").lower() != stored[0].hash.lower():
        # Not on the node's chain: look further — the highest stored blocks, and the highest at or below its head.
        more = {b.number: b for b in [*store.stored_blocks(current.id, PROBE_BLOCKS),
                                      *store.stored_blocks(current.id, PROBE_BLOCKS // 2, at_most=head.number)]}
        stored = sorted(more.values(), key=lambda b: -b.number)
        ask = [b.number for b in stored if b.number <= head.number and b.number not in canonical]
        canonical |= {b.number: None for b in stored if b.number > head.number}
        canonical |= {n: (p.hash if p is not None else None) for n, p in zip(ask, rpc.get_blocks(ask), strict=True)}
    verdict = judge(current, genesis.hash, head, stored, canonical, max_reorg_depth=max_reorg_depth)
    if verdict.kind == "behind":
        raise ChainBehindError(f"chain {name!r}: {verdict.reason}; waiting for it to catch up")
    if verdict.kind == "reorg" and current is not None and verdict.ancestor is not None:
        purged = store.purge_above(current.id, verdict.ancestor)
        log.warning("chain %s (id %d) reorganised: %s; %d stored snapshot(s) of the replaced blocks removed",
                    name, chain_id, verdict.reason, purged)
    if verdict.kind == "new":
        if current is not None:
            log.warning(
                "chain %s (id %d) is no longer the chain stored before: %s — a devnet reset, a new fork or an RPC "
                "pointed elsewhere. Its data (blocks %s–%s) is kept apart and no longer served; syncing the new "
                "chain from block %d.", name, chain_id, verdict.reason, current.first_block, current.last_block,
                head.number)
        else:
            log.info("chain %s (id %d): recording its identity (genesis %s)", name, chain_id, _short(genesis.hash))
        reason = f"replaced by the chain behind {name!r} seen at block {head.number}: {verdict.reason}"
        current = store.begin_chain(chain_id, name, genesis.hash, retire=current.id if current else None,
                                    reason=reason)
    elif current is not None and (current.genesis_hash is None or current.name != name):
        current = store.verify_chain(current.id, name, genesis.hash)
    assert current is not None
    return current, head

