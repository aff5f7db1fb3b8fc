"""What the change-only store writes, and what it keeps: the change and retention policies and the write and
compaction statistics.

A sync reads every wallet at every block, but most of it is the same as the block before. The store keeps:

- position *versions*: a snapshot row holds from its first block to ``valid_to_block`` (``NULL`` while newest);
  a new one is written when the positions changed — where the venue declares the wallet's own state behind a
  position (``PositionRow.state``: a scaled balance, shares, an LP's range and liquidity, a perp's size), when a
  position opened or closed, its collateral flag or its state changed; otherwise when its exact raw amount or
  extra changed or its prices moved by more than :attr:`ChangePolicy.rel_tolerance` — or the status or error
  changed;
- health as a series of changes: a row when a value moved by more than the tolerance, a flag changed, the
  positions' values differ at all from the newest stored ones (interest, prices: the row holds them exactly,
  ``position_values``, so the positions are served exact as of the version's newest block), or the newest row
  is :attr:`ChangePolicy.max_age_blocks` old or older; a row's ``extra`` (the venue's detail) is stored as the
  changes from its version's first, which the version holds (``health_base``, :mod:`db.jsondelta`), and read back
  whole;
- risk results the same way, at most one per (chain identity, wallet, block); a per-block result may name the
  block of the wallet's heavy measures instead of copying them (``db.store.CARRIED_FROM_KEY``);
- one sync run and its prices per block (a block synced again reuses them).

Per-block fields (times of the read, price ages, the block hash of an unchanged version, the per-block keys of a
health row's ``extra``: :func:`is_per_block_key`) never force a write.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

__all__ = ["WRITE_CACHE_SIZE", "ChangePolicy", "CompactStats", "RetentionPolicy", "WriteStats", "estimate_bytes",
           "is_per_block_key"]

WRITE_CACHE_SIZE = 100_000
"""(wallet, venue) current versions the store keeps in memory between writes (``db.Store.write_cache_size``): with
their positions and newest health row, about 2 KiB each for two positions (``benchmarks/bench_store.py``), so
~200 MB when full."""

_PER_BLOCK_SUFFIXES = ("age_s", "_at", "_timestamp", "_time")
_PER_BLOCK_NAMES = frozenset({"block", "block_number", "block_hash", "timestamp", "age_s"})


def is_per_block_key(key: str) -> bool:
    """Whether a JSON key of a health row's ``extra`` names a per-block field (an age, a time, the block), which
    changes at every block and is not compared: ``block``, ``block_number``, ``block_hash``, ``timestamp``, and
    keys ending in ``age_s``, ``_at``, ``_timestamp`` or ``_time``."""
    return key in _PER_BLOCK_NAMES or key.endswith(_PER_BLOCK_SUFFIXES)


@dataclass(frozen=True, slots=True)
class ChangePolicy:
    """When a value counts as changed: it moved by more than ``rel_tolerance`` (relative to the larger magnitude,
    an absolute ``abs_floor`` near zero), or the last stored row is ``max_age_blocks`` old or older."""

    rel_tolerance: float = 1e-4
    max_age_blocks: int = 300
    abs_floor: float = 1e-12

    def __post_init__(self) -> None:
        if not (self.rel_tolerance >= 0 and math.isfinite(self.rel_tolerance)):
            raise ValueError(f"rel_tolerance must be a finite number >= 0, got {self.rel_tolerance!r}")
        if self.max_age_blocks < 1:
            raise ValueError(f"max_age_blocks must be at least 1, got {self.max_age_blocks!r}")

    def moved(self, old: float | None, new: float | None) -> bool:
        """Whether ``new`` differs from ``old`` by more than the tolerance (``None`` vs a number: changed)."""
        if old is None or new is None:
            return old is not new
        if math.isnan(old) or math.isnan(new):
            return not (math.isnan(old) and math.isnan(new))
        if old == new:
            return False
        scale = max(abs(old), abs(new))
        return abs(new - old) > max(self.rel_tolerance * scale, self.abs_floor)

    def any_moved(self, old: Sequence[float | None], new: Sequence[float | None]) -> bool:
        """Whether any pair moved (see :meth:`moved`)."""
        return len(old) != len(new) or any(self.moved(a, b) for a, b in zip(old, new, strict=True))

    def too_old(self, last_block: int, block: int) -> bool:
        """Whether a row stored at ``last_block`` is due again at ``block``."""
        return block - last_block >= self.max_age_blocks


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """What :meth:`db.Store.compact` keeps: every row for ``full_days``, then, per series and per ``bucket_s``
    window (of block time), the first and the last row."""

    full_days: float = 7.0
    bucket_s: int = 3_600

    def __post_init__(self) -> None:
        if not self.full_days >= 0:
            raise ValueError(f"full_days must be >= 0, got {self.full_days!r}")
        if self.bucket_s < 1:
            raise ValueError(f"bucket_s must be at least 1, got {self.bucket_s!r}")

    def cutoff(self, now: datetime) -> datetime:
        """Rows with a block time before this are downsampled."""
        return now - timedelta(days=self.full_days)

    def bucket(self, at: datetime) -> int:
        """The window a block time falls in."""
        return int(at.timestamp()) // self.bucket_s


@dataclass(slots=True)
class WriteStats:
    """What one :meth:`db.Store.write_changes` wrote.

    ``rows_written`` counts every inserted row (sync run, versions, positions, health, risk, prices);
    ``bytes_estimate`` is their payload size estimated from the values (see :func:`estimate_bytes`);
    ``skipped`` counts the batch's snapshots, health and risk results that were not written because they
    changed nothing (or were already stored); ``extended`` the versions that now hold for one more block.
    """

    run_id: int
    reused_run: bool = False
    versions_written: int = 0
    positions_written: int = 0
    health_written: int = 0
    risk_written: int = 0
    prices_written: int = 0
    extended: int = 0
    skipped: int = 0
    from_memory: int = 0
    """Versions whose positions and newest health row the store kept from its previous write instead of reading
    them back."""
    rows_written: int = 0
    bytes_estimate: int = 0
    by_table: dict[str, int] = field(default_factory=dict)
    bytes_by_table: dict[str, int] = field(default_factory=dict)

    def add(self, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Count ``rows`` inserted into ``table``."""
        if not rows:
            return
        size = sum(estimate_bytes(r) for r in rows)
        self.rows_written += len(rows)
        self.bytes_estimate += size
        self.by_table[table] = self.by_table.get(table, 0) + len(rows)
        self.bytes_by_table[table] = self.bytes_by_table.get(table, 0) + size


@dataclass(slots=True)
class CompactStats:
    """What one :meth:`db.Store.compact` deleted (rows), and the cutoff it used."""

    cutoff: datetime
    health_deleted: int = 0
    risk_deleted: int = 0
    versions_deleted: int = 0
    prices_deleted: int = 0

    @property
    def deleted(self) -> int:
        """Rows deleted in all."""
        return self.health_deleted + self.risk_deleted + self.versions_deleted + self.prices_deleted


def estimate_bytes(row: Mapping[str, Any]) -> int:
    """A row's payload size in bytes, estimated from its values (8 per number or time, text and JSON by length,
    big integers by their digits; plus 24 bytes of row header). An estimate for comparing layouts, not the size
    on disk."""
    size = 24
    for value in row.values():
        if value is None or isinstance(value, bool):
            size += 1
        elif isinstance(value, int):
            size += 8 if -(2**63) <= value < 2**63 else len(str(value))
        elif isinstance(value, (float, datetime)):
            size += 8
        elif isinstance(value, str):
            size += len(value.encode())
        else:
            size += len(json.dumps(value, default=str, separators=(",", ":")))  # as the engine writes it
    return size
