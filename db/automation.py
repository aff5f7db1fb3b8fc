"""The automation tables: alert rules and their firing state, alerts and their delivery, keeper plans and their
signed transactions.

:class:`AutomationStore` is mixed into :class:`db.Store`. The guarantees the keeper and the alert engine rely
on are made here, in the database, so they hold across processes and restarts:

* an alert is identified by its ``event_id`` (rule + episode): inserting it twice inserts it once, and only
  the insert that created it returns it for delivery (:meth:`AutomationStore.record_evaluation`);
* a rule's state (open episode, last value, last firing) is updated in the same transaction as the alerts it
  fires: a crash leaves either both or neither;
* a plan is identified by its ``plan_key``; a plan that is not executed (a dry run, a refusal) is stored once
  while it stands (:meth:`AutomationStore.record_plan`: seen again, not stored again);
  :meth:`AutomationStore.begin_execution` moves it from
  ``simulated`` to ``executing`` and stores its signed transactions in one transaction, and only if no other
  plan of the wallet is executing (compare-and-set), so a plan is sent at most once and a restart re-sends the
  stored bytes (same nonce, same hash) instead of signing anew.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from db.addresses import canonical_address
from db.engine import read_transaction, upsert_insert, write_transaction
from db.errors import UnknownReferenceError
from db.models import ALERT_STATES, PLAN_STATUSES, RULE_KINDS, SEVERITIES, TX_STATUSES, Base

__all__ = [
    "ALERT_STATES",
    "PLAN_STATUSES",
    "RULE_KINDS",
    "SEVERITIES",
    "TX_STATUSES",
    "AlertRow",
    "AutomationStore",
    "KeeperFigures",
    "NewAlert",
    "NewTx",
    "PlanRow",
    "RuleRow",
    "RuleUpdate",
    "TxRow",
]

_T = Base.metadata.tables
WALLETS = _T["wallets"]
RULES = _T["alert_rules"]
ASSETS = _T["assets"]
PRICES = _T["prices"]
ALERTS = _T["alerts"]
PLANS = _T["keeper_plans"]
TXS = _T["keeper_txs"]

_OPEN_PLAN = ("executing",)


@dataclass(frozen=True, slots=True)
class RuleRow:
    """An alert rule of a wallet, with its firing state."""

    id: int
    wallet: str
    kind: str
    params: Mapping[str, Any]
    hysteresis: float
    cooldown_s: float
    severity: str
    enabled: bool
    created_at: datetime
    active: bool
    episode: int
    last_value: float | None
    last_block: int | None
    last_fired_at: datetime | None
    version: int = 0
    """Bumped by every edit (see :meth:`AutomationStore.update_rule`)."""


@dataclass(frozen=True, slots=True)
class RuleUpdate:
    """A rule's state after one evaluation of the rule as it was at ``version``."""

    rule_id: int
    active: bool
    episode: int
    last_value: float | None
    last_block: int | None
    last_fired_at: datetime | None
    version: int = 0


@dataclass(frozen=True, slots=True)
class NewAlert:
    """An alert to store (``state`` starts at ``fired``)."""

    event_id: str
    rule_id: int
    wallet: str
    episode: int
    fired_at: datetime
    chain_id: int | None
    block_number: int | None
    value: float | None
    threshold: float | None
    severity: str
    message: str
    payload: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class AlertRow:
    """A stored alert and its delivery state."""

    id: int
    event_id: str
    rule_id: int
    wallet: str
    episode: int
    fired_at: datetime
    chain_id: int | None
    block_number: int | None
    value: float | None
    threshold: float | None
    severity: str
    message: str
    payload: Mapping[str, Any]
    state: str
    attempts: int
    last_error: str | None
    delivered_at: datetime | None


@dataclass(frozen=True, slots=True)
class PlanRow:
    """A stored keeper plan."""

    id: int
    plan_key: str
    wallet: str
    chain_id: int
    block_number: int
    created_at: datetime
    updated_at: datetime
    status: str
    execute: bool
    signer: str | None
    usd_total: float
    plan: Mapping[str, Any]
    simulation: Mapping[str, Any] | None
    error: str | None
    last_seen_block: int
    """The newest block at which the keeper came to this same plan (``block_number`` is the first)."""
    last_seen_at: datetime
    seen_count: int
    """Keeper cycles that came to this plan (a standing dry run or refusal is one row, seen again)."""


@dataclass(frozen=True, slots=True)
class KeeperFigures:
    """The keeper's figures for ``/metrics``, read from the store."""

    plans: Mapping[str, int]
    """Stored plans per status (every status present, 0 when none)."""
    txs: Mapping[str, int]
    """Stored transactions per status (every status present)."""
    executed_usd: float
    """USD moved by plans that executed (``usd_total`` of every ``executed`` plan)."""
    last_plan_at: datetime | None
    """When the keeper last came to a plan (stored or seen again)."""
    standing_refusals: int
    """(wallet, chain) pairs whose newest plan is a refusal."""


@dataclass(frozen=True, slots=True)
class NewTx:
    """A signed transaction of a plan, stored before it is broadcast."""

    seq: int
    description: str
    to_address: str
    nonce: int
    tx_hash: str
    raw_tx: str


@dataclass(frozen=True, slots=True)
class TxRow:
    """A stored keeper transaction."""

    id: int
    plan_id: int
    seq: int
    description: str
    to_address: str
    nonce: int
    tx_hash: str
    raw_tx: str
    status: str
    block_number: int | None
    gas_used: int | None
    updated_at: datetime


def _check(value: str, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; expected one of {', '.join(allowed)}")
    return value


class AutomationStore:
    """Rules, alerts and keeper plans (mixed into :class:`db.Store`, which provides ``_engine``)."""

    _engine: Engine

    # -- rules -----------------------------------------------------------------------------------------------

    def add_rule(
        self,
        wallet: str,
        kind: str,
        params: Mapping[str, Any],
        *,
        hysteresis: float = 0.0,
        cooldown_s: float = 0.0,
        severity: str = "warning",
        enabled: bool = True,
        now: datetime,
    ) -> RuleRow:
        """Add a rule for a tracked wallet; raises :class:`~db.errors.UnknownReferenceError` for an unknown one."""
        _check(kind, RULE_KINDS, "rule kind")
        _check(severity, SEVERITIES, "severity")
        if hysteresis < 0 or cooldown_s < 0:
            raise ValueError("hysteresis and cooldown must be >= 0")
        with write_transaction(self._engine) as conn:
            wallet_id = _wallet_id(conn, wallet)
            rule_id = conn.execute(
                sa.insert(RULES).values(
                    wallet_id=wallet_id, kind=kind, params=dict(params), hysteresis=hysteresis,
                    cooldown_s=cooldown_s, severity=severity, enabled=enabled, created_at=now, active=False,
                    episode=0, last_value=None, last_block=None, last_fired_at=None, deleted=False,
                ).returning(RULES.c.id)
            ).scalar_one()
            return _rules(conn, RULES.c.id == rule_id)[0]

    def list_rules(self, wallet: str | None = None, *, enabled_only: bool = False) -> list[RuleRow]:
        """Rules (not removed), oldest first; of one wallet when given. ``enabled_only``: the enabled rules of
        tracked wallets (what the alert engine evaluates)."""
        where: list[sa.ColumnElement[bool]] = [RULES.c.deleted.is_(False)]
        if enabled_only:
            where += [RULES.c.enabled.is_(True), WALLETS.c.active.is_(True)]
        with read_transaction(self._engine) as conn:
            if wallet is not None:
                wallet_id = _wallet_id(conn, wallet, missing_ok=True)
                if wallet_id is None:
                    return []
                where.append(RULES.c.wallet_id == wallet_id)
            return _rules(conn, *where)

    def priced_symbols(self) -> list[str]:
        """The symbol of every asset the store holds a price of, sorted, each once: what a price rule can
        watch."""
        priced = sa.exists().where(PRICES.c.asset_id == ASSETS.c.id)
        with read_transaction(self._engine) as conn:
            return list(conn.execute(sa.select(ASSETS.c.symbol).where(priced).distinct().order_by(ASSETS.c.symbol))
                        .scalars())

    def get_rule(self, rule_id: int) -> RuleRow | None:
        """The rule with this id, unless removed."""
        with read_transaction(self._engine) as conn:
            found = _rules(conn, RULES.c.id == rule_id, RULES.c.deleted.is_(False))
        return found[0] if found else None

    def update_rule(
        self,
        rule_id: int,
        *,
        params: Mapping[str, Any] | None = None,
        hysteresis: float | None = None,
        cooldown_s: float | None = None,
        severity: str | None = None,
        enabled: bool | None = None,
    ) -> RuleRow | None:
        """Change a rule's settings (``None`` leaves one as it is); ``None`` when there is no such rule.

        New parameters re-arm the rule (its open episode ends): it fires again if the new threshold is already
        crossed; the episode counter keeps counting, so the next alert has a new event id.
        """
        values: dict[str, Any] = {k: v for k, v in (("params", params), ("hysteresis", hysteresis),
                                                     ("cooldown_s", cooldown_s), ("severity", severity),
                                                     ("enabled", enabled)) if v is not None}
        with write_transaction(self._engine) as conn:
            where = (RULES.c.id == rule_id, RULES.c.deleted.is_(False))
            current = _rules(conn, *where)
            if not current:
                return None
            if params is not None and dict(params) != dict(current[0].params):
                values["active"] = False
            if values:
                conn.execute(sa.update(RULES).where(*where).values(**values, version=RULES.c.version + 1))
            return _rules(conn, *where)[0]

    def remove_rule(self, rule_id: int) -> bool:
        """Remove a rule (its alerts are kept); ``False`` when there is no such rule."""
        with write_transaction(self._engine) as conn:
            result = conn.execute(
                sa.update(RULES).where(RULES.c.id == rule_id, RULES.c.deleted.is_(False))
                .values(deleted=True, enabled=False, version=RULES.c.version + 1)
            )
            return result.rowcount > 0

    def record_evaluation(self, updates: Sequence[RuleUpdate], alerts: Sequence[NewAlert]) -> list[AlertRow]:
        """Store rules' new states and the alerts they fired, in one transaction.

        An alert whose ``event_id`` is already stored is not inserted again; the alerts returned are the ones
        this call inserted (the ones to deliver), taken from ``INSERT … RETURNING``. An update made from a rule's
        older version (edited, disabled or removed since it was read) is dropped with its alerts: the edit wins.
        """
        with write_transaction(self._engine) as conn:
            applied: set[int] = set()
            for u in updates:
                result = conn.execute(
                    sa.update(RULES).where(RULES.c.id == u.rule_id, RULES.c.version == u.version).values(
                        active=u.active, episode=u.episode, last_value=u.last_value, last_block=u.last_block,
                        last_fired_at=u.last_fired_at)
                )
                if result.rowcount > 0:
                    applied.add(u.rule_id)
            evaluated = {u.rule_id for u in updates}
            alerts = [a for a in alerts if a.rule_id in applied or a.rule_id not in evaluated]
            if not alerts:
                return []
            wallet_ids = {a.wallet: _wallet_id(conn, a.wallet) for a in alerts}
            existing = set(conn.execute(
                sa.select(ALERTS.c.event_id).where(ALERTS.c.event_id.in_([a.event_id for a in alerts]))
            ).scalars())
            fresh = [a for a in {a.event_id: a for a in alerts}.values() if a.event_id not in existing]
            if not fresh:
                return []
            insert = (upsert_insert(conn, ALERTS).on_conflict_do_nothing(index_elements=["event_id"])
                      .returning(ALERTS.c.id))
            inserted = [conn.execute(insert, row).scalar() for row in [
                {"event_id": a.event_id, "rule_id": a.rule_id, "wallet_id": wallet_ids[a.wallet],
                 "episode": a.episode, "fired_at": a.fired_at, "chain_id": a.chain_id,
                 "block_number": a.block_number, "value": a.value, "threshold": a.threshold,
                 "severity": a.severity, "message": a.message, "payload": dict(a.payload), "state": "fired",
                 "attempts": 0, "last_error": None, "delivered_at": None}
                for a in fresh
            ]]
            ids = [i for i in inserted if i is not None]
            return _alerts(conn, ALERTS.c.id.in_(ids)) if ids else []

    def undelivered_alerts(self, limit: int = 1_000) -> list[AlertRow]:
        """Alerts still ``fired`` (not delivered nor given up), oldest first: what a restart must still send."""
        with read_transaction(self._engine) as conn:
            return _alerts(conn, ALERTS.c.state == "fired", limit=limit)

    def mark_alert(
        self, alert_id: int, state: str, *, attempts: int, error: str | None = None,
        delivered_at: datetime | None = None,
    ) -> None:
        """Record a delivery outcome."""
        _check(state, ALERT_STATES, "alert state")
        with write_transaction(self._engine) as conn:
            conn.execute(
                sa.update(ALERTS).where(ALERTS.c.id == alert_id).values(
                    state=state, attempts=ALERTS.c.attempts + attempts, last_error=error, delivered_at=delivered_at,
                )
            )

    def list_alerts(self, wallet: str | None = None, *, limit: int = 100) -> list[AlertRow]:
        """Newest alerts first."""
        with read_transaction(self._engine) as conn:
            where = []
            if wallet is not None:
                wallet_id = _wallet_id(conn, wallet, missing_ok=True)
                if wallet_id is None:
                    return []
                where.append(ALERTS.c.wallet_id == wallet_id)
            return _alerts(conn, *where, limit=limit, newest_first=True)

    def alert_counts(self) -> dict[str, int]:
        """Stored alerts per delivery state (every state present, 0 when none)."""
        with read_transaction(self._engine) as conn:
            rows = conn.execute(sa.select(ALERTS.c.state, sa.func.count()).group_by(ALERTS.c.state)).all()
        return dict.fromkeys(ALERT_STATES, 0) | {r[0]: int(r[1]) for r in rows}

    # -- keeper plans ----------------------------------------------------------------------------------------

    def insert_plan(
        self,
        *,
        plan_key: str,
        wallet: str,
        chain_id: int,
        block_number: int,
        status: str,
        execute: bool,
        signer: str | None,
        usd_total: float,
        plan: Mapping[str, Any],
        now: datetime,
        error: str | None = None,
        simulation: Mapping[str, Any] | None = None,
    ) -> PlanRow | None:
        """Store a new plan; ``None`` when a plan with this key is already stored (nothing changes)."""
        _check(status, PLAN_STATUSES, "plan status")
        with write_transaction(self._engine) as conn:
            wallet_id = _wallet_id(conn, wallet)
            assert wallet_id is not None
            return _insert_plan(conn, wallet_id, plan_key=plan_key, chain_id=chain_id, block_number=block_number,
                                status=status, execute=execute, signer=signer, usd_total=usd_total, plan=plan,
                                now=now, error=error, simulation=simulation)

    def record_plan(
        self,
        *,
        same: Callable[[PlanRow], bool],
        plan_key: str,
        wallet: str,
        chain_id: int,
        block_number: int,
        status: str,
        execute: bool,
        signer: str | None,
        usd_total: float,
        plan: Mapping[str, Any],
        now: datetime,
        error: str | None = None,
        simulation: Mapping[str, Any] | None = None,
    ) -> tuple[PlanRow | None, bool]:
        """Store a plan that is not going to be executed (a dry run, a refusal, an infeasible or failed plan) once
        while it stands.

        When the wallet's newest plan on the chain has this ``status``, is not from a later block, and ``same``
        says it is this plan, that row is seen again — its last-seen block and time move, its count grows — and
        returned with ``False``. Otherwise the plan is inserted and returned with ``True``; ``(None, False)``
        when its key is already stored. One transaction, serialised per wallet.
        """
        _check(status, PLAN_STATUSES, "plan status")
        with write_transaction(self._engine) as conn:
            wallet_id = _wallet_id(conn, wallet)
            assert wallet_id is not None
            conn.execute(sa.select(WALLETS.c.id).where(WALLETS.c.id == wallet_id).with_for_update())
            newest = _plans(conn, PLANS.c.wallet_id == wallet_id, PLANS.c.chain_id == chain_id, limit=1)
            if newest and newest[0].status == status and newest[0].block_number <= block_number and same(newest[0]):
                row = newest[0]
                conn.execute(sa.update(PLANS).where(PLANS.c.id == row.id).values(
                    last_seen_block=max(row.last_seen_block, block_number), last_seen_at=max(row.last_seen_at, now),
                    seen_count=PLANS.c.seen_count + 1))
                return _plans(conn, PLANS.c.id == row.id)[0], False
            inserted = _insert_plan(conn, wallet_id, plan_key=plan_key, chain_id=chain_id, block_number=block_number,
                                    status=status, execute=execute, signer=signer, usd_total=usd_total, plan=plan,
                                    now=now, error=error, simulation=simulation)
            return inserted, inserted is not None

    def get_plan(self, plan_id: int) -> PlanRow | None:
        with read_transaction(self._engine) as conn:
            found = _plans(conn, PLANS.c.id == plan_id)
        return found[0] if found else None

    def list_plans(self, wallet: str | None = None, *, status: str | None = None, limit: int = 100) -> list[PlanRow]:
        """Newest plans first."""
        with read_transaction(self._engine) as conn:
            where = []
            if wallet is not None:
                wallet_id = _wallet_id(conn, wallet, missing_ok=True)
                if wallet_id is None:
                    return []
                where.append(PLANS.c.wallet_id == wallet_id)
            if status is not None:
                where.append(PLANS.c.status == _check(status, PLAN_STATUSES, "plan status"))
            return _plans(conn, *where, limit=limit)

    def update_plan(
        self, plan_id: int, status: str, *, now: datetime, simulation: Mapping[str, Any] | None = None,
        error: str | None = None, expect: Sequence[str] | None = None,
    ) -> bool:
        """Set a plan's status (and simulation / error when given). With ``expect``, only if its status is one of
        them (compare-and-set); returns whether the row changed."""
        _check(status, PLAN_STATUSES, "plan status")
        values: dict[str, Any] = {"status": status, "updated_at": now}
        if simulation is not None:
            values["simulation"] = dict(simulation)
        if error is not None:
            values["error"] = error
        query = sa.update(PLANS).where(PLANS.c.id == plan_id)
        if expect is not None:
            query = query.where(PLANS.c.status.in_(list(expect)))
        with write_transaction(self._engine) as conn:
            return conn.execute(query.values(values)).rowcount > 0

    def begin_execution(self, plan_id: int, txs: Sequence[NewTx], *, now: datetime) -> bool:
        """Move a ``simulated`` plan to ``executing`` and store its signed transactions, in one transaction.

        Refused (``False``, nothing written) when the plan is not ``simulated``, when another plan of the same
        wallet on the chain is executing, or when one started (or finished) after this plan was made — its
        basis is then stale (two keepers sharing a store planned from different syncs): a plan is sent at
        most once, and never on top of another plan it did not see.
        """
        with write_transaction(self._engine) as conn:
            plan = _plans(conn, PLANS.c.id == plan_id)
            if not plan or plan[0].status != "simulated":
                return False
            wallet_id = conn.execute(sa.select(PLANS.c.wallet_id).where(PLANS.c.id == plan_id)).scalar_one()
            # Serialise plan starts per wallet (a row lock on PostgreSQL; SQLite's write lock is already held).
            conn.execute(sa.select(WALLETS.c.id).where(WALLETS.c.id == wallet_id).with_for_update())
            busy = conn.execute(
                sa.select(sa.func.count()).select_from(PLANS).where(
                    PLANS.c.wallet_id == wallet_id, PLANS.c.chain_id == plan[0].chain_id, PLANS.c.id != plan_id,
                    sa.or_(PLANS.c.status.in_(_OPEN_PLAN),
                           sa.and_(PLANS.c.status.in_(("executed", "failed")),
                                   PLANS.c.updated_at >= plan[0].created_at)),
                )
            ).scalar_one()
            if busy:
                return False
            changed = conn.execute(
                sa.update(PLANS).where(PLANS.c.id == plan_id, PLANS.c.status == "simulated")
                .values(status="executing", updated_at=now)
            ).rowcount
            if not changed:
                return False
            if txs:
                conn.execute(sa.insert(TXS), [
                    {"plan_id": plan_id, "seq": t.seq, "description": t.description, "to_address": t.to_address,
                     "nonce": t.nonce, "tx_hash": t.tx_hash, "raw_tx": t.raw_tx, "status": "signed",
                     "block_number": None, "gas_used": None, "updated_at": now}
                    for t in txs
                ])
            return True

    def plan_txs(self, plan_id: int) -> list[TxRow]:
        """A plan's transactions in order."""
        with read_transaction(self._engine) as conn:
            rows = conn.execute(sa.select(TXS).where(TXS.c.plan_id == plan_id).order_by(TXS.c.seq)).mappings()
            return [TxRow(**{k: r[k] for k in TxRow.__slots__}) for r in rows]

    def update_tx(
        self, tx_id: int, status: str, *, now: datetime, block_number: int | None = None, gas_used: int | None = None
    ) -> None:
        _check(status, TX_STATUSES, "transaction status")
        with write_transaction(self._engine) as conn:
            conn.execute(sa.update(TXS).where(TXS.c.id == tx_id).values(
                status=status, block_number=block_number, gas_used=gas_used, updated_at=now))

    def executing_plans(self, wallet: str | None = None) -> list[PlanRow]:
        """Plans left ``executing`` (sent, or about to be): a restart reconciles them before planning anew."""
        return self.list_plans(wallet, status="executing", limit=10_000)

    def keeper_figures(self) -> KeeperFigures:
        """Plans and transactions by status, USD executed, the last plan's time and the standing refusals."""
        newest = sa.select(sa.func.max(PLANS.c.id)).group_by(PLANS.c.wallet_id, PLANS.c.chain_id)
        with read_transaction(self._engine) as conn:
            plans = conn.execute(sa.select(PLANS.c.status, sa.func.count()).group_by(PLANS.c.status)).all()
            txs = conn.execute(sa.select(TXS.c.status, sa.func.count()).group_by(TXS.c.status)).all()
            executed = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(PLANS.c.usd_total), 0.0))
                                    .where(PLANS.c.status == "executed")).scalar_one()
            last = conn.execute(sa.select(sa.func.max(PLANS.c.last_seen_at))).scalar_one()
            standing = conn.execute(sa.select(sa.func.count()).select_from(PLANS).where(
                PLANS.c.status == "refused", PLANS.c.id.in_(newest))).scalar_one()
        return KeeperFigures(
            plans=dict.fromkeys(PLAN_STATUSES, 0) | {r[0]: int(r[1]) for r in plans},
            txs=dict.fromkeys(TX_STATUSES, 0) | {r[0]: int(r[1]) for r in txs},
            executed_usd=float(executed), last_plan_at=last, standing_refusals=int(standing))

    def executed_usd_since(self, since: datetime, *, signer: str | None = None) -> float:
        """USD moved by plans started since ``since`` (executing, executed, or failed after sending: a failed plan
        may have moved part of it): the daily limit's spend."""
        query = sa.select(sa.func.coalesce(sa.func.sum(PLANS.c.usd_total), 0.0)).where(
            PLANS.c.status.in_(["executing", "executed", "failed"]), PLANS.c.updated_at >= since,
            PLANS.c.execute.is_(True))
        if signer is not None:
            query = query.where(PLANS.c.signer == signer)
        with read_transaction(self._engine) as conn:
            return float(conn.execute(query).scalar_one())


# -- helpers ----------------------------------------------------------------------------------------------------


def _wallet_id(conn: Connection, wallet: str, *, missing_ok: bool = False) -> int | None:
    found = conn.execute(sa.select(WALLETS.c.id).where(WALLETS.c.address == canonical_address(wallet))).scalar()
    if found is None and not missing_ok:
        raise UnknownReferenceError(f"unknown wallet {wallet}; add it first (xmargin wallet add)")
    return found


def _rules(conn: Connection, *where: Any) -> list[RuleRow]:
    query = (sa.select(RULES, WALLETS.c.address).join(WALLETS, WALLETS.c.id == RULES.c.wallet_id)
             .where(*where).order_by(RULES.c.id))
    return [
        RuleRow(id=r["id"], wallet=r["address"], kind=r["kind"], params=r["params"], hysteresis=r["hysteresis"],
                cooldown_s=r["cooldown_s"], severity=r["severity"], enabled=r["enabled"], created_at=r["created_at"],
                active=r["active"], episode=r["episode"], last_value=r["last_value"], last_block=r["last_block"],
                last_fired_at=r["last_fired_at"], version=r["version"])
        for r in conn.execute(query).mappings()
    ]


def _alerts(conn: Connection, *where: Any, limit: int | None = None, newest_first: bool = False) -> list[AlertRow]:
    order = ALERTS.c.id.desc() if newest_first else ALERTS.c.id
    query = (sa.select(ALERTS, WALLETS.c.address).join(WALLETS, WALLETS.c.id == ALERTS.c.wallet_id)
             .where(*where).order_by(order))
    if limit is not None:
        query = query.limit(limit)
    return [
        AlertRow(id=r["id"], event_id=r["event_id"], rule_id=r["rule_id"], wallet=r["address"], episode=r["episode"],
                 fired_at=r["fired_at"], chain_id=r["chain_id"], block_number=r["block_number"], value=r["value"],
                 threshold=r["threshold"], severity=r["severity"], message=r["message"], payload=r["payload"],
                 state=r["state"], attempts=r["attempts"], last_error=r["last_error"],
                 delivered_at=r["delivered_at"])
        for r in conn.execute(query).mappings()
    ]


def _insert_plan(conn: Connection, wallet_id: int, *, plan_key: str, chain_id: int, block_number: int, status: str,
                 execute: bool, signer: str | None, usd_total: float, plan: Mapping[str, Any], now: datetime,
                 error: str | None, simulation: Mapping[str, Any] | None) -> PlanRow | None:
    new_id = conn.execute(
        upsert_insert(conn, PLANS).on_conflict_do_nothing(index_elements=["plan_key"]).returning(PLANS.c.id),
        {"plan_key": plan_key, "wallet_id": wallet_id, "chain_id": chain_id, "block_number": block_number,
         "created_at": now, "updated_at": now, "status": status, "execute": execute, "signer": signer,
         "usd_total": usd_total, "plan": dict(plan), "simulation": dict(simulation) if simulation else None,
         "error": error, "last_seen_block": block_number, "last_seen_at": now, "seen_count": 1},
    ).scalar()
    if new_id is None:
        return None
    return _plans(conn, PLANS.c.id == new_id)[0]


def _plans(conn: Connection, *where: Any, limit: int | None = None) -> list[PlanRow]:
    query = (sa.select(PLANS, WALLETS.c.address).join(WALLETS, WALLETS.c.id == PLANS.c.wallet_id)
             .where(*where).order_by(PLANS.c.id.desc()))
    if limit is not None:
        query = query.limit(limit)
    return [
        PlanRow(id=r["id"], plan_key=r["plan_key"], wallet=r["address"], chain_id=r["chain_id"],
                block_number=r["block_number"], created_at=r["created_at"], updated_at=r["updated_at"],
                status=r["status"], execute=r["execute"], signer=r["signer"], usd_total=r["usd_total"],
                plan=r["plan"], simulation=r["simulation"], error=r["error"],
                last_seen_block=r["last_seen_block"] if r["last_seen_block"] is not None else r["block_number"],
                last_seen_at=r["last_seen_at"] if r["last_seen_at"] is not None else r["created_at"],
                seen_count=r["seen_count"])
        for r in conn.execute(query).mappings()
    ]
