"""Read programs: multi-round on-chain reads that several venues run together, one round trip per round.

A venue's read is rarely one batch: a lending pool must be asked for its reserves before the balances in them. A
*read program* is a generator that yields, per round, the :class:`~connectors.evm.multicall.Plan` s it
needs, receives their decoded values (one per plan, same order) and finally returns its snapshot::

    def program(wallets, block) -> ReadProgram[Snapshot]:
        reserves = (yield [reserves_plan])[0]
        balances, prices = yield [balances_plan(reserves, wallets), prices_plan(reserves)]
        return Snapshot(...)

:func:`run_programs` steps every venue's program in lock-step: the plans of all venues for round *k* go
into one :meth:`Multicall.execute` — the same Multicall3 batches, the same pinned block — so N venues
cost as many round trips as the longest program, not the sum. Failures are isolated per venue: a
required call that reverts, or a decoder that fails, ends that venue's program with its error while the
others go on. A fault of the node itself (unreachable, timeout) fails every venue of the chain, as it should.
"""

from __future__ import annotations

from collections.abc import Generator, Hashable, Mapping, Sequence
from typing import Any, TypeVar

from connectors.errors import ConnectorError, DecodeError
from connectors.evm.multicall import Call, CallResult, Multicall, Plan
from connectors.types import BlockRef

__all__ = ["ReadProgram", "check_required", "run_program", "run_programs"]

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)

ReadProgram = Generator[Sequence[Plan[Any]], Sequence[Any], T]
"""Yields the plans of one round, receives their decoded values, returns the snapshot."""


def check_required(results: Sequence[CallResult]) -> None:
    """Raise for the first required call (``allow_failure=False``) that failed, naming it."""
    for r in results:
        if not r.ok and not r.call.allow_failure:
            r.unwrap()


def _decode(plan: Plan[Any], results: Sequence[CallResult]) -> Any:
    check_required(results)
    try:
        return plan.decode(results)
    except ConnectorError:
        raise
    except (IndexError, KeyError, TypeError, ValueError) as exc:
        first = plan.calls[0].describe() if plan.calls else "an empty plan"
        raise DecodeError(f"unexpected answer decoding {first}…: {type(exc).__name__}: {exc}") from exc


def _step(program: ReadProgram[Any], value: Sequence[Any] | None) -> tuple[bool, Any]:
    """Advance ``program``; returns (finished, plans or final value or error)."""
    try:
        plans = next(program) if value is None else program.send(value)
    except StopIteration as stop:
        return True, stop.value
    except ConnectorError as exc:
        return True, exc
    return False, plans


def run_programs(
    multicall: Multicall, programs: Mapping[K, ReadProgram[Any]], block: int | BlockRef
) -> dict[K, Any]:
    """Run several read programs in lock-step at ``block``; each key maps to its snapshot or its
    :class:`~connectors.errors.ConnectorError`.

    Every round executes the plans of all still-running programs in one :meth:`Multicall.execute`. A node fault
    in a round (``TransientError``, ``RpcError`` of the batch itself, a malformed answer) fails the programs still
    running in it with that error; programs that had already finished keep their snapshots (every read of theirs
    was answered at ``block``).
    """
    out: dict[K, Any] = {}
    pending: dict[K, Sequence[Plan[Any]]] = {}
    for key, program in programs.items():
        done, value = _step(program, None)
        if done:
            out[key] = value
        else:
            pending[key] = value
    while pending:
        calls: list[Call] = []
        spans: list[tuple[K, Plan[Any], int, int]] = []
        for key, plans in pending.items():
            for plan in plans:
                start = len(calls)
                calls.extend(plan.calls)
                spans.append((key, plan, start, len(calls)))
        try:
            results = multicall.execute(calls, block, strict=False)
        except ConnectorError as exc:
            for key in pending:
                programs[key].close()
                out[key] = exc
            break
        decoded: dict[K, list[Any]] = {key: [] for key in pending}
        failed: dict[K, ConnectorError] = {}
        for key, plan, start, end in spans:
            if key in failed:
                continue
            try:
                decoded[key].append(_decode(plan, results[start:end]))
            except ConnectorError as exc:
                failed[key] = exc
        following: dict[K, Sequence[Plan[Any]]] = {}
        for key in pending:
            if key in failed:
                programs[key].close()
                out[key] = failed[key]
                continue
            done, value = _step(programs[key], decoded[key])
            if done:
                out[key] = value
            else:
                following[key] = value
        pending = following
    return out


def run_program(multicall: Multicall, program: ReadProgram[T], block: int | BlockRef) -> T:
    """Run one program alone; raises its error."""
    result = run_programs(multicall, {0: program}, block)[0]
    if isinstance(result, ConnectorError):
        raise result
    return result  # type: ignore[no-any-return]
