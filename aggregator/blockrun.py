"""``xmargin run`` block-driven (``sync_mode = "block"``): each tick processes every block since the last, in order.

:class:`BlockSyncer` has the :class:`~aggregator.pipeline.Syncer`'s face (``run`` returns a
:class:`~aggregator.pipeline.SyncReport`; ``rpc_stats``, ``rpc_endpoints``, ``close``), so the cycle, the metrics and
the views are the same in both modes. Per chain it keeps one :class:`~aggregator.blocksync.BlockSync` (its caches,
its log filter, its live perp venues) and, at each run:

1. identifies the chain (:func:`aggregator.chainid.identify`: another chain or a reorganisation below the stored
   blocks is handled there, the store purged above the common ancestor); when another chain answers now, nothing
   processed on the old one stands: its :class:`~aggregator.blocksync.BlockSync` starts over at the new head;
2. reads, in one batched request, the block it processed last and every block up to the head: when the last one's
   hash changed (a reorganisation since), or the range is longer than ``max_backfill_blocks``, every wallet is re-read
   at the head (a full sweep) — a missed range is never skipped silently;
3. steps through the blocks in order (one ``eth_getLogs`` each, the dirty wallets re-read, the rest recomputed);
   each block is one batch of the report.

A chain that cannot be reached is a failed batch, recorded in the store like the full sync's; the other chains go
on. The first run of a chain is a full sweep at its head. A run that finds no new block confirms the last one
(:meth:`db.Store.confirm_block`), so freshness counts from the newest good sync in both modes.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from aggregator.blocksync import BlockReport, BlockSync, LiveVenue
from aggregator.config import ChainConfig, ConfigError, Settings
from aggregator.pipeline import BatchResult, Syncer, SyncReport
from aggregator.venues import plugin_of
from connectors.errors import ConnectorError
from connectors.types import BlockRef, checksum
from db.rows import SyncStatus
from db.store import Store

if TYPE_CHECKING:
    from connectors.evm.heads import HeadStream
    from connectors.evm.rpc import RpcClient

__all__ = ["DEFAULT_MAX_BACKFILL", "BlockSyncer", "HeadTriggers"]

log = logging.getLogger(__name__)

DEFAULT_MAX_BACKFILL = 64
"""Blocks a run steps through one by one; a longer gap (the process was down) is a full sweep at the head."""


class BlockSyncer(Syncer):
    """The block-driven sync of every configured chain (see the module docstring)."""

    def __init__(self, settings: Settings, store: Store, *, max_backfill_blocks: int = DEFAULT_MAX_BACKFILL) -> None:
        super().__init__(settings, store)
        self.max_backfill_blocks = max_backfill_blocks
        self._syncs: dict[str, BlockSync] = {}
        self._live: dict[str, dict[str, LiveVenue]] = {}
        self.reports: list[BlockReport] = []
        """The blocks of the newest run."""
        self._last: dict[str, BatchResult] = {}

    def close(self) -> None:
        for live in self._live.values():
            for venue in live.values():
                close = getattr(venue, "close", None)
                if close is not None:
                    close()
        self._live.clear()
        self._syncs.clear()
        super().close()

    def _block_sync(self, chain: ChainConfig) -> BlockSync:
        if chain.name not in self._syncs:
            ctx = self._context(chain)
            live: dict[str, LiveVenue] = {v.name: plugin_of(v.type).open_live(v) for v in self.settings.venues
                                          if not v.onchain and v.chain == chain.name}
            self._live[chain.name] = live
            self._syncs[chain.name] = BlockSync(ctx, self.store, live=live,
                                                tolerance=self.settings.store.rel_tolerance,
                                                max_age_blocks=self.settings.store.max_age_blocks,
                                                reconcile_every=self.settings.reconcile_every_blocks)
        return self._syncs[chain.name]

    def _blocks(self, sync: BlockSync, head: BlockRef, seen: Mapping[int, BlockRef]) -> list[BlockRef]:
        """The blocks to process up to ``head``, in order (see the module docstring, step 2); ``seen``: blocks the
        chain's identification read in this run (in steady state the last block and the head: nothing more is read)."""
        last = sync.last_block
        if last is None:
            return [head]
        if head.number < last.number:  # the node is behind what was processed: wait for it
            return []
        numbers = list(range(last.number, head.number + 1))
        if len(numbers) - 1 > self.max_backfill_blocks:
            log.warning("%d blocks since block %d: more than %d to step through; every wallet is re-read at block "
                        "%d", len(numbers) - 1, last.number, self.max_backfill_blocks, head.number)
            sync.full_sweep()
            return [head]
        missing = [n for n in numbers if n not in seen]
        fetched = dict(zip(missing, sync.ctx.rpc.get_blocks(missing), strict=True)) if missing else {}
        got = [seen[n] if n in seen else fetched[n] for n in numbers]
        if got[0] is None or got[0].hash.lower() != last.hash.lower():
            log.warning("block %d changed since it was processed (a reorganisation): every wallet is re-read at "
                        "block %d", last.number, head.number)
            sync.full_sweep()
            return [head]
        blocks = [b for b in got[1:] if b is not None]
        if len(blocks) != len(numbers) - 1:  # the node lost blocks it had just named: read all again at the head
            sync.full_sweep()
            return [head]
        return blocks

    def run(
        self,
        wallets: Sequence[str] | None = None,
        block_number: int | None = None,
        on_batch: Callable[[BatchResult], None] | None = None,
    ) -> SyncReport:
        """Process every configured chain's new blocks for the tracked wallets (``wallets`` and ``block_number``
        are the full sync's arguments: block mode follows the store's wallets and the chain's head, so giving them
        is an error)."""
        if wallets is not None or block_number is not None or on_batch is not None:
            raise ConfigError("block mode follows the tracked wallets and the head: use the full sync for a "
                              "wallet list or a given block")
        t0 = time.perf_counter()
        tracked = [checksum(w.address) for w in self.store.list_wallets()]
        report = SyncReport()
        self.reports = []
        for chain in self.settings.chains:
            if not any(v.chain == chain.name for v in self.settings.venues):
                continue
            started = datetime.now(UTC)
            try:
                sync = self._block_sync(chain)
                seen: dict[int, BlockRef] = {}
                last = sync.last_block
                identity = sync.ctx.chain_ref_id
                # The last processed block is read with the head (one request): its hash shows a reorganisation.
                head = self._identify(sync.ctx, also=() if last is None else (last.number,), seen=seen)
                if identity is not None and sync.ctx.chain_ref_id != identity:
                    # Another chain answers (the old one's data is kept apart by the identification): what was
                    # processed on the old chain neither stands nor is confirmed; the new one is swept at its head.
                    log.warning("chain %s: another chain answers now; every wallet is re-read at its head, block %d",
                                chain.name, head.number)
                    sync.restart()
                    self._last.pop(chain.name, None)
                    seen.clear()
                sync.track(tracked)
                blocks = self._blocks(sync, head, seen)
            except (ConnectorError, ConfigError) as exc:
                error = f"chain {chain.name} unavailable: {exc}"
                log.error("%s", error)
                run_id = self._record_failure(chain, error, started, len(tracked))
                report.batches.append(BatchResult(chain=chain.name, block=None, wallets=len(tracked),
                                                  status=SyncStatus.FAILED, readings=(), sync_run_id=run_id,
                                                  error=error))
                continue
            if not blocks and chain.name in self._last and sync.last_block is not None:
                # No new block: what the last one stored stands, confirmed now (freshness counts from here).
                last = sync.last_block
                if sync.ctx.chain_ref_id is not None:
                    self.store.confirm_block(sync.ctx.chain_ref_id, last.number, last.hash,
                                             datetime.fromtimestamp(last.timestamp, UTC))
                # (its reconciliation, if it had one, is not counted again)
                report.batches.append(dataclasses.replace(self._last[chain.name], reconciled=False,
                                                          reconcile_mismatches=0))
                continue
            for block in blocks:
                step = sync.step(block)
                self.reports.append(step)
                failed = [r for r in step.readings if r.error is not None]
                status = (SyncStatus.OK if not step.errors else
                          SyncStatus.FAILED if "store" in step.errors or (failed and len(failed) == len(step.readings))
                          else SyncStatus.PARTIAL)
                result = BatchResult(
                    chain=chain.name, block=block, wallets=len(sync.wallets), status=status, readings=step.readings,
                    sync_run_id=step.sync_run_id,
                    error="; ".join(f"{k}: {v}" for k, v in sorted(step.errors.items())) or None,
                    reconciled=step.reconciled, reconcile_mismatches=step.reconcile_mismatches)
                report.batches.append(result)
                self._last[chain.name] = result
        report.seconds = time.perf_counter() - t0
        return report


class HeadTriggers:
    """Block mode's new-head triggers: for every chain with a WebSocket endpoint (``ws_url``), a
    :class:`~connectors.evm.heads.HeadFollower` on its own thread calls ``on_head`` as each head arrives (a new
    block, a reorganisation, a gap), so a block is processed on its arrival rather than at the next tick.

    A head only says that the chain moved: the sync reads and orders the blocks itself (a missed range backfilled, a
    reorganisation or a gap too long a full sweep), so a head lost while the follower changes transport costs
    latency, never a block. The follower therefore reads nothing per head (``read_blocks=False``): the socket's
    announcement is the trigger, and each block's header is read once, by the sync. When the socket drops, the
    follower polls ``eth_blockNumber`` (every ``poll_interval_s``) and tries the socket again; if the follower itself
    fails, the interval is left to sync, and the log says so.
    """

    def __init__(self, settings: Settings, on_head: Callable[[], None], *, poll_interval_s: float = 1.0) -> None:
        from connectors.evm.heads import HeadFollower
        from connectors.evm.rpc import RpcClient

        self.on_head = on_head
        self.heads = 0
        """Heads announced so far (all chains)."""
        self._streams: list[tuple[HeadStream, RpcClient]] = []
        self._threads: list[threading.Thread] = []
        for chain in settings.chains:
            ws_url = chain.resolve_ws_url()
            if ws_url is None:
                continue
            rpc = RpcClient(chain.resolve_rpc_url(), timeout_s=chain.timeout_s, max_retries=chain.max_retries)
            # a trigger only (read_blocks=False): the sync reads the blocks it processes, once
            stream = HeadFollower(rpc, ws_url, poll_interval_s=poll_interval_s, read_blocks=False).sync()
            self._streams.append((stream, rpc))
            thread = threading.Thread(target=self._consume, args=(chain.name, stream), name=f"heads-{chain.name}",
                                      daemon=True)
            thread.start()
            self._threads.append(thread)

    @property
    def chains(self) -> int:
        """Chains whose heads are followed."""
        return len(self._threads)

    def _consume(self, chain: str, stream: HeadStream) -> None:
        from connectors.evm.heads import TransportChanged

        try:
            for event in stream:
                if isinstance(event, TransportChanged):
                    log.info("new heads of %s: %s (%s)", chain, event.transport, event.reason)
                    continue
                self.heads += 1
                self.on_head()
        except Exception as exc:  # the follower gave up (the HTTP endpoint keeps failing): the interval goes on
            log.error("new heads of %s no longer followed (%s): syncing on the interval", chain, exc)

    def close(self) -> None:
        for stream, rpc in self._streams:
            stream.close()
            rpc.close()
        for thread in self._threads:
            thread.join(5.0)
