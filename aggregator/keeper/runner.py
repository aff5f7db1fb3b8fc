"""The keeper: after a sync, plan a rebalance for every managed wallet that needs one, simulate it, and execute
it only when configured to — never twice.

One wallet, one cycle:

1. **reconcile** plans a previous run left ``executing`` (a crash between broadcast and receipt): each stored
   signed transaction is looked up, re-sent byte for byte if the chain does not have it (same nonce, same
   hash: the chain executes it at most once), and the plan closed ``executed`` or ``failed``. A wallet with a
   plan still open gets no new plan.
2. **plan** from the newest sync (:func:`aggregator.keeper.state.wallet_state`) with the MILP planner
   (:func:`riskcore.rebalance.plan_rebalance`). Healthy: nothing is stored. No plan reaches the targets:
   stored ``infeasible`` and reported, never executed.
3. **limits**: an action above ``max_action_usd``, or a plan that would take the signer's last 24 h over
   ``max_daily_usd``: stored ``refused``.
4. **simulate** the transactions (approvals included) with ``eth_simulateV1`` against the latest block, and
   read the health of every venue the keeper acts on in the simulated state (the reads its keeper part names:
   the protocol's own figures): a failing call, or a venue left below its target, is ``simulation_failed``.
5. **execute**, only with ``execute = true``, a loaded signer, and a wallet that is the signer's own: the
   transactions are signed (EIP-1559, gas and fee caps), stored signed with the plan moved to ``executing``
   in one transaction (compare-and-set: a plan starts once), then sent one by one, each awaited.

The signer's key is read only to execute, once, when first needed: a dry run never reads it, and a key that
cannot be loaded is one clear error (logged once), never a traceback; nothing is planned until it is fixed.

A plan's key hashes the wallet, chain, block, actions and outcome, and what of the configuration decides the
outcome (targets, limits, gas caps, mode, signer: the plan document's ``policy``): the same plan at the same
block under the same configuration is stored and sent once, while a changed configuration plans again.

A plan that is not executed (a dry run, a refusal, an infeasible plan, a failed dry-run simulation) is stored
once while it stands: the next cycle that comes to the same plan — same outcome and configuration, the same
actions within :data:`SAME_PLAN_TOLERANCE` — moves the stored plan's last-seen block instead of storing another
row, and logs it at DEBUG only (a wallet found healthy in between ends the standing plan).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

from aggregator.config import ChainConfig, KeeperConfig, Settings
from aggregator.keeper.chain import (
    GasPolicy,
    KeeperChainError,
    Read,
    SendError,
    SignedTx,
    Signer,
    SignerError,
    get_receipt,
    send_raw,
    sign_calls,
    simulate,
    wait_receipt,
)
from aggregator.keeper.plugin import ActionSpec, ActionTarget, HealthReads, PlannedVenue, venue_actions, venue_keeper
from aggregator.keeper.state import StateError, WalletState, wallet_state
from aggregator.keeper.txs import allowance_call_data, build_calls
from aggregator.venues.plugin import ChainLink
from connectors.errors import ConnectorError
from connectors.evm.multicall import Multicall
from connectors.evm.rpc import RpcClient
from connectors.types import checksum
from db import NewTx, PlanRow, Store, TxRow
from riskcore.rebalance import Action, PerpVenue, Plan, plan_rebalance

__all__ = ["SAME_PLAN_TOLERANCE", "Keeper", "KeeperOutcome", "signer_from_config"]

log = logging.getLogger(__name__)

GWEI = 10**9
SAME_PLAN_TOLERANCE = 0.01
"""A plan whose actions (same kinds, venues and tokens, in order) each move within 1 % of a standing plan's
amount and USD value, with the same outcome and configuration, is that standing plan seen again."""


def signer_from_config(cfg: KeeperConfig) -> Signer | None:
    """The configured signer (key from the environment or a keystore), or ``None`` when none is configured."""
    if cfg.signer_key_env is not None:
        return Signer.from_env(cfg.signer_key_env)
    if cfg.keystore is not None:
        assert cfg.keystore_password_env is not None
        return Signer.from_keystore(cfg.keystore, cfg.keystore_password_env)
    return None


@dataclass
class KeeperOutcome:
    """What the keeper did for one wallet in one cycle."""

    wallet: str
    status: str
    """``healthy``, ``busy``, ``waiting``, ``duplicate``, ``error``, or the stored plan's status (``infeasible``,
    ``refused``, ``simulated``, ``simulation_failed``, ``executed``, ``failed``, ``executing``)."""
    message: str = ""
    plan_id: int | None = None
    plan: Plan | None = None
    tx_hashes: list[str] = field(default_factory=list)
    symbols: dict[str, str] = field(default_factory=dict)
    """Token address → symbol, for the plan's actions."""
    repeated: bool = False
    """True when this outcome repeats one reported in an earlier cycle (a standing plan seen again, the same
    signer error): ``xmargin run`` need not print it again."""


def _policy(cfg: KeeperConfig, execute: bool, signer: str | None) -> dict[str, Any]:
    """What of the configuration decides a plan's outcome, besides its venues' targets (in the document too)."""
    return {"execute": execute, "signer": signer, "max_action_usd": cfg.max_action_usd,
            "max_daily_usd": cfg.max_daily_usd, "buffer": cfg.buffer, "max_fee_gwei": cfg.max_fee_gwei,
            "max_priority_fee_gwei": cfg.max_priority_fee_gwei, "max_gas_per_tx": cfg.max_gas_per_tx}


def _plan_document(state: WalletState, plan: Plan, policy: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": plan.status,
        "message": plan.message,
        "block": state.block_number,
        "actions": [
            {"kind": a.kind, "venue": a.venue, "token": a.token,
             "symbol": state.tokens[a.token].symbol if a.token in state.tokens else a.token,
             "amount": a.amount, "usd": a.usd}
            for a in plan.actions
        ],
        "health_before": _finite_map(plan.health_before),
        "health_after": _finite_map(plan.health_after),
        "targets": {v.name: {"target": v.target, "offset": v.offset} for v in state.venues},
        "surplus_before_usd": plan.surplus_before_usd,
        "surplus_after_usd": plan.surplus_after_usd,
        "policy": policy,
    }


def _finite_map(values: dict[str, float | None]) -> dict[str, float | None]:
    return {k: (v if v is not None and math.isfinite(v) else None) for k, v in values.items()}


def moved_usd(actions: Sequence[Action]) -> float:
    """USD a plan moves, each transfer counted once: a withdrawal re-supplied elsewhere is one movement, so the
    larger of what leaves the venues and what enters them."""
    out = sum(a.usd for a in actions if a.kind == "withdraw")
    into = sum(a.usd for a in actions if a.kind in ("repay", "supply"))
    return float(max(out, into))


def _plan_key(state: WalletState, doc: dict[str, Any], status: str) -> str:
    """The plan's identity: where and when, what it does, its outcome, and the configuration that decided it."""
    body = json.dumps({"wallet": state.wallet, "chain_id": state.chain_id, "block": state.block_number,
                       "actions": doc["actions"], "status": doc["status"], "stored": status,
                       "refusal": doc.get("refusal"), "targets": doc["targets"], "policy": doc["policy"]},
                      sort_keys=True)
    return "0x" + hashlib.sha256(body.encode()).hexdigest()


def _same_plan(row: PlanRow, doc: dict[str, Any], error: str | None) -> bool:
    """Whether the stored ``row`` is the plan ``doc`` seen again (see :data:`SAME_PLAN_TOLERANCE`)."""
    old = row.plan
    if old.get("policy") != doc["policy"] or old.get("targets") != doc["targets"]:
        return False
    if old.get("refusal") != doc.get("refusal"):
        return False
    if row.status == "simulation_failed" and row.error != error:
        return False
    before, now = list(old.get("actions", ())), doc["actions"]
    if len(before) != len(now):
        return False
    for a, b in zip(before, now, strict=True):
        if (a.get("kind"), a.get("venue"), a.get("token")) != (b["kind"], b["venue"], b["token"]):
            return False
        for k in ("amount", "usd"):
            x, y = float(a.get(k, 0.0)), float(b[k])
            if abs(x - y) > SAME_PLAN_TOLERANCE * max(abs(x), abs(y)):
                return False
    return True


def _raw(amount: float, decimals: int, *, up: bool) -> int:
    scaled = Decimal(repr(amount)).scaleb(decimals)
    return int(scaled.to_integral_value(rounding=ROUND_CEILING if up else ROUND_FLOOR))


class Keeper:
    """Runs keeper cycles for one configuration. Close it when done."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        signer: Signer | None = None,
        clock: Callable[[], datetime] | None = None,
        dry_run: bool = False,
        quiet: bool = False,
    ) -> None:
        """``dry_run``: plan and simulate only — no signer is loaded, no stored plan is reconciled or sent
        (``xmargin keeper plan``). ``quiet``: the caller reports the outcomes (``xmargin keeper plan``), so a
        wallet's failure, refusal or failed simulation is logged at DEBUG, not ERROR. ``signer``: use this one
        instead of the configured key (which is otherwise loaded when first needed, only to execute)."""
        self.settings = settings
        self.cfg = settings.keeper
        self.store = store
        self.dry_run = dry_run
        self._signer = signer
        self._signer_loaded = signer is not None
        self.signer_error: str | None = None
        """Why the configured signer could not be loaded (then nothing is planned or executed)."""
        self._signer_error_reported = False
        self._loud = logging.DEBUG if quiet else logging.ERROR
        self._healthy_since_plan: set[tuple[str, int]] = set()
        self._clock = clock or (lambda: datetime.now(UTC))
        self._started_at = self._clock()
        self._rpcs: dict[str, RpcClient] = {}
        self._targets: dict[tuple[str, str | None], ActionTarget] = {}
        self.policy = GasPolicy(
            max_fee_per_gas_wei=int(self.cfg.max_fee_gwei * GWEI),
            max_priority_fee_per_gas_wei=int(self.cfg.max_priority_fee_gwei * GWEI),
            max_gas_per_tx=self.cfg.max_gas_per_tx,
        )

    @property
    def signer(self) -> Signer | None:
        """The signer; ``None`` in a dry run (the key is never read) or when it cannot be loaded
        (:attr:`signer_error` says why, logged once). Loaded once, when first needed."""
        if self.dry_run or not self.cfg.execute:
            return None
        if not self._signer_loaded:
            self._signer_loaded = True
            try:
                self._signer = signer_from_config(self.cfg)
            except SignerError as exc:
                self.signer_error = f"keeper cannot execute: {exc}"
                log.log(self._loud, "%s", self.signer_error)
        return self._signer

    def close(self) -> None:
        for rpc in self._rpcs.values():
            rpc.close()
        self._rpcs.clear()

    def __enter__(self) -> Keeper:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _rpc(self, chain: ChainConfig) -> RpcClient:
        if chain.name not in self._rpcs:
            self._rpcs[chain.name] = RpcClient(chain.resolve_rpc_url(), timeout_s=chain.timeout_s,
                                               max_retries=chain.max_retries)
        return self._rpcs[chain.name]

    def _chains(self) -> list[ChainConfig]:
        """The chains with a venue the keeper can act on (its connector declares actions)."""
        acting = {v.chain for v in self.settings.venues if venue_actions(v.type)}
        return [c for c in self.settings.chains if c.name in acting]

    # -- the cycle ------------------------------------------------------------------------------------------------

    def run(self, wallets: Sequence[str] | None = None) -> list[KeeperOutcome]:
        """One keeper cycle over the managed wallets (or ``wallets``); every wallet's failure is its own."""
        if not self.cfg.enabled:
            return []
        targets = [checksum(w) for w in (wallets if wallets is not None else self.cfg.wallets)]
        if not self.dry_run:
            try:
                self.abandon_interrupted()
            except Exception:  # housekeeping: never stops the keeper
                log.exception("keeper: closing interrupted plans failed")
            try:
                self.reconcile()
            except Exception:  # one stuck plan must not stop the keeper for every wallet
                log.exception("keeper: reconciling open plans failed")
        out = []
        if not self.dry_run and self.cfg.execute and self.signer is None:
            log.debug("%s", self.signer_error)  # logged at ERROR once, when the load failed
            repeated, self._signer_error_reported = self._signer_error_reported, True
            return [KeeperOutcome(wallet=w, status="error", message=self.signer_error or "no signer",
                                  repeated=repeated) for _ in self._chains() for w in targets]
        for chain in self._chains():
            for wallet in targets:
                try:
                    out.append(self.run_wallet(wallet, chain))
                except (ConnectorError, KeeperChainError, StateError, ValueError) as exc:
                    log.log(self._loud, "keeper: %s on %s: %s", wallet, chain.name, exc)
                    out.append(KeeperOutcome(wallet=wallet, status="error", message=str(exc)))
                except Exception as exc:  # a bug for one wallet is logged with its trace; the others go on
                    log.exception("keeper: %s on %s failed", wallet, chain.name)
                    out.append(KeeperOutcome(wallet=wallet, status="error", message=f"{type(exc).__name__}: {exc}"))
        return out

    def run_wallet(self, wallet: str, chain: ChainConfig) -> KeeperOutcome:
        """Plan, check, simulate and (when configured) execute for one wallet on one chain."""
        if self.store.executing_plans(wallet):
            return KeeperOutcome(wallet=wallet, status="busy", message="a plan is still executing")
        rpc = self._rpc(chain)
        state = wallet_state(self.store, self.settings, wallet, rpc, chain.name)
        landed = self._last_execution_block(wallet, state.chain_id)
        if landed is not None and landed > state.block_number:
            return KeeperOutcome(wallet=wallet, status="waiting",
                                 message=f"the newest sync (block {state.block_number}) predates the last executed "
                                         f"plan (block {landed}); waiting for the next sync")
        head = rpc.get_block("latest")
        age = head.timestamp - state.block_timestamp
        if age > self.cfg.max_state_age_s:
            return KeeperOutcome(wallet=wallet, status="stale",
                                 message=f"the newest sync (block {state.block_number}) is {age} s behind the chain; "
                                         "no plan from stale state")
        # Perp reductions need the venue's own order signing, which the keeper does not do: perps are left out
        # of the plan (their health is the venue's business; a perp below target never blocks a lending repair).
        venues = [v for v in state.venues if not isinstance(v, PerpVenue)]
        plan = plan_rebalance(venues, state.balances(), buffer=self.cfg.buffer, allow_reduce=False)
        if plan.status == "noop":
            self._healthy_since_plan.add((wallet, state.chain_id))
            return KeeperOutcome(wallet=wallet, status="healthy", plan=plan)
        signer = self.signer
        execute = not self.dry_run and self.cfg.execute and signer is not None and signer.address == wallet
        signer_address = signer.address if signer is not None else None
        doc = _plan_document(state, plan, _policy(self.cfg, execute, signer_address))
        now = self._clock()
        symbols = {a: t.symbol for a, t in state.tokens.items()}
        common: dict[str, Any] = {"wallet": wallet, "chain_id": state.chain_id, "block_number": state.block_number,
                                  "execute": execute, "signer": signer_address,
                                  "usd_total": moved_usd(plan.actions), "plan": doc, "now": now}
        if plan.status == "infeasible":
            return self._standing(state, plan, common, symbols, "infeasible", plan.message)
        refusal = self._check_limits(plan, now, common["usd_total"])
        if refusal is not None:
            doc["refusal"], why = refusal
            return self._standing(state, plan, common, symbols, "refused", why)
        if not execute:
            simulation, error, _, _ = self._simulate(state, plan, rpc, chain, wallet)
            if error is not None:
                return self._standing(state, plan, common, symbols, "simulation_failed", error, simulation=simulation)
            if signer is None:
                why = "dry run"
            else:
                why = f"not executed: the keeper's signer {signer.address} is not this wallet {wallet}"
            return self._standing(state, plan, common, symbols, "simulated", None, simulation=simulation,
                                  message=why)
        assert signer is not None
        row = self.store.insert_plan(plan_key=_plan_key(state, doc, "planned"), status="planned", **common)
        self._healthy_since_plan.discard((wallet, state.chain_id))
        if row is None:
            return KeeperOutcome(wallet=wallet, status="duplicate", message="this plan is already stored", plan=plan,
                                 symbols=symbols)
        simulation, error, calls, gas_used = self._simulate(state, plan, rpc, chain, signer.address)
        if error is not None:
            self.store.update_plan(row.id, "simulation_failed", now=self._clock(), simulation=simulation,
                                   error=error, expect=["planned"])
            log.log(self._loud, "keeper: plan %d for %s failed simulation: %s", row.id, wallet, error)
            return KeeperOutcome(wallet=wallet, status="simulation_failed", message=error, plan_id=row.id,
                                 plan=plan, symbols=symbols)
        if not self.store.update_plan(row.id, "simulated", now=self._clock(), simulation=simulation,
                                      expect=["planned"]):
            return KeeperOutcome(wallet=wallet, status="busy", message="plan abandoned while it was simulated",
                                 plan_id=row.id, symbols=symbols)
        signed = sign_calls(signer, rpc, calls, gas_used, self.policy)
        txs = [NewTx(seq=t.seq, description=t.description, to_address=t.to, nonce=t.nonce, tx_hash=t.tx_hash,
                     raw_tx=t.raw) for t in signed]
        if not self.store.begin_execution(row.id, txs, now=self._clock()):
            return KeeperOutcome(wallet=wallet, status="busy", message="plan already started", plan_id=row.id,
                                 symbols=symbols)
        nonces = f"nonce {txs[0].nonce}" if len(txs) == 1 else f"nonces {txs[0].nonce}–{txs[-1].nonce}" if txs else ""
        log.info("keeper: plan %d for %s executing: %d transaction(s) signed by %s (%s, $%s)", row.id, wallet,
                 len(txs), signer.address, nonces, f"{common['usd_total']:,.0f}")
        status, message, hashes = self._send(row.id)
        return KeeperOutcome(wallet=wallet, status=status, message=message, plan_id=row.id, plan=plan,
                             tx_hashes=hashes, symbols=symbols)

    def _simulate(
        self, state: WalletState, plan: Plan, rpc: RpcClient, chain: ChainConfig, sender: str
    ) -> tuple[dict[str, Any], str | None, list[Any], tuple[int, ...]]:
        """Simulate the plan's calls (approvals included) from ``sender`` and judge every lending venue's health
        after them: (the simulation's record, the error or ``None`` when it passed, the calls, their gas)."""
        specs = self._action_specs(state, plan, rpc, chain)
        calls = build_calls(specs, self._allowances(rpc, state.wallet, specs))
        reads, judge = self._health_reads(state, rpc, chain)
        sim = simulate(rpc, sender, calls, reads)
        verdict = judge(sim.reads) if sim.ok else {}
        short = {k: v for k, v in verdict.items() if v["health"] is not None and v["health"] < v["target"]}
        simulation = {"ok": sim.ok and not short, "gas_used": list(sim.gas_used), "error": sim.error,
                      "failed_index": sim.failed_index, "health": verdict,
                      "calls": [c.description for c in calls]}
        error = None
        if not sim.ok:
            error = sim.error or "a simulated call failed"
        elif short:
            error = f"simulated health below target on {', '.join(sorted(short))}"
        return simulation, error, list(calls), sim.gas_used

    def _standing(
        self, state: WalletState, plan: Plan, common: dict[str, Any], symbols: dict[str, str], status: str,
        error: str | None, *, simulation: dict[str, Any] | None = None, message: str | None = None,
    ) -> KeeperOutcome:
        """Store a plan that is not executed — or, while it stands, see the stored one again (module docstring)."""
        wallet, doc = state.wallet, common["plan"]
        episode = (wallet, state.chain_id)
        ended = episode in self._healthy_since_plan  # the wallet was healthy since: a new episode, a new row
        row, new = self.store.record_plan(
            same=lambda r: not ended and _same_plan(r, doc, error), plan_key=_plan_key(state, doc, status),
            status=status, error=error, simulation=simulation, **common)
        self._healthy_since_plan.discard(episode)
        text = message or error or ""
        if row is None:
            return KeeperOutcome(wallet=wallet, status="duplicate", message="this plan is already stored", plan=plan,
                                 symbols=symbols)
        if not new:
            log.debug("keeper: plan %d for %s still %s at block %d (seen %d times since block %d): %s", row.id,
                      wallet, status, state.block_number, row.seen_count, row.block_number, text)
        elif status == "simulated":
            log.log(logging.INFO if doc["policy"]["signer"] is None else logging.WARNING,
                    "keeper: plan %d for %s simulated (%s)", row.id, wallet, text)
        elif status == "infeasible":
            log.log(self._loud, "keeper: plan %d: no plan brings %s to its targets: %s", row.id, wallet, text)
        elif status == "refused":
            log.log(self._loud, "keeper: plan %d for %s refused: %s", row.id, wallet, text)
        else:
            log.log(self._loud, "keeper: plan %d for %s failed simulation: %s", row.id, wallet, text)
        return KeeperOutcome(wallet=wallet, status=status, message=text, plan_id=row.id, plan=plan, symbols=symbols,
                             repeated=not new)

    def _last_execution_block(self, wallet: str, chain_id: int) -> int | None:
        """The block of the last transaction of the wallet's newest executed or failed plan on the chain — on the
        chain now behind that chain id: a plan executed on a chain since replaced (a reset devnet, a fork) says
        nothing about the block numbers of this one."""
        current = self.store.current_chain(chain_id)
        since = current.created_at if current is not None else None
        for plan in self.store.list_plans(wallet, limit=20):
            if since is not None and plan.created_at < since:
                break  # newest first: the rest were made on an earlier chain
            if plan.chain_id == chain_id and plan.status in ("executed", "failed"):
                blocks = [t.block_number for t in self.store.plan_txs(plan.id) if t.block_number is not None]
                if blocks:
                    return max(blocks)
        return None

    def _check_limits(self, plan: Plan, now: datetime, total: float) -> tuple[str, str] | None:
        """``(the limit, why)`` when the plan is over a limit, else ``None``."""
        over = [a for a in plan.actions if a.usd > self.cfg.max_action_usd]
        if over:
            a = over[0]
            return "max_action_usd", (f"{a.kind} of ${a.usd:,.0f} on {a.venue} is over the per-action limit "
                                      f"${self.cfg.max_action_usd:,.0f}")
        signer = self.signer.address if self.signer is not None else None
        spent = self.store.executed_usd_since(now - timedelta(days=1), signer=signer)
        if spent + total > self.cfg.max_daily_usd:
            return "max_daily_usd", (f"plan of ${total:,.0f} with ${spent:,.0f} already moved in 24 h is over the "
                                     f"daily limit ${self.cfg.max_daily_usd:,.0f}")
        return None

    # -- transactions ------------------------------------------------------------------------------------------

    def _venue_config(self, name: str) -> Any:
        return next(v for v in self.settings.venues if v.name == name)

    def _target(self, rpc: RpcClient, chain: ChainConfig, planned: PlannedVenue) -> ActionTarget:
        """Where actions on ``planned`` go (its venue's keeper part reads it once per keeper: it is immutable)."""
        key = (planned.venue, planned.market_key)
        if key not in self._targets:
            link = ChainLink(chain, rpc, Multicall(rpc))
            cfg = self._venue_config(planned.venue)
            self._targets[key] = venue_keeper(planned.protocol).target(cfg, planned, link)
        return self._targets[key]

    def _action_specs(self, state: WalletState, plan: Plan, rpc: RpcClient, chain: ChainConfig) -> list[ActionSpec]:
        """Planner actions in on-chain terms: raw amounts (repay and supply rounded up, withdraw down, each capped
        by what the wallet owes, holds or has supplied), the contract, the market."""
        available = dict(state.idle_raw)
        specs = []
        for action in plan.actions:
            planned = state.mapping[action.venue]
            token = state.tokens[action.token]
            spec_kind = action.kind
            if spec_kind == "reduce":
                raise ValueError("perp reductions are planned only with allow_reduce; the keeper cannot execute them")
            if spec_kind not in venue_actions(planned.protocol):
                raise ValueError(f"{planned.venue}: the keeper cannot {spec_kind} on {planned.protocol} (its connector "
                                 f"declares {', '.join(venue_actions(planned.protocol)) or 'no actions'})")
            amount = _raw(action.amount, token.decimals, up=spec_kind != "withdraw")
            if spec_kind == "withdraw":
                amount = min(amount, planned.collateral_raw.get(action.token, 0))
                available[action.token] = available.get(action.token, 0) + amount
            else:
                if spec_kind == "repay":
                    amount = min(amount, planned.debt_raw.get(action.token, amount))
                amount = min(amount, available.get(action.token, 0))
                available[action.token] = available.get(action.token, 0) - amount
            if amount <= 0:
                continue
            target = self._target(rpc, chain, planned)
            specs.append(ActionSpec(kind=spec_kind, protocol=planned.protocol,
                                    venue=planned.venue, wallet=state.wallet, token=action.token,
                                    symbol=token.symbol, decimals=token.decimals, amount_raw=amount,
                                    target=target.to, market=target.market))
        return specs

    @staticmethod
    def _allowances(rpc: RpcClient, wallet: str, specs: Sequence[ActionSpec]) -> dict[tuple[str, str], int]:
        pairs = sorted({(s.token, s.target) for s in specs if s.kind in ("repay", "supply")})
        if not pairs:
            return {}
        answers = rpc.batch([("eth_call", RpcClient.call_params(t, allowance_call_data(wallet, spender), "latest"))
                             for t, spender in pairs])
        return {pair: int(str(a), 16) for pair, a in zip(pairs, answers, strict=True)}

    def _health_reads(
        self, state: WalletState, rpc: RpcClient, chain: ChainConfig
    ) -> tuple[list[Read], Callable[[Sequence[bytes]], dict[str, dict[str, Any]]]]:
        """Reads appended to the simulation, and the function that turns their results into the simulated health
        (the venue's own figures, from its keeper part) of every venue the keeper acts on, beside its target."""
        reads: list[Read] = []
        judged: list[tuple[str, float, int, HealthReads]] = []
        for venue in state.venues:
            planned = state.mapping[venue.name]
            if not venue_actions(planned.protocol):
                continue  # planned around, never acted on
            target = self._target(rpc, chain, planned)
            health = venue_keeper(planned.protocol).health_reads(planned, target, state.wallet)
            judged.append((venue.name, venue.target, len(reads), health))
            reads += health.reads

        def judge(results: Sequence[bytes]) -> dict[str, dict[str, Any]]:
            return {name: {"health": health.health(results[start:]), "target": target}
                    for name, target, start, health in judged}

        return reads, judge

    def _send(self, plan_id: int) -> tuple[str, str, list[str]]:
        """Send a started plan's stored transactions in order (the stored bytes, never re-signed), each awaited;
        close the plan ``executed`` or ``failed``.

        A transaction the chain has never seen is sent only within ``resend_window_s`` of the plan's start: after
        that the state it was simulated against is old, so it and the rest of the plan are ``dropped`` and the
        plan ``failed`` (the next sync plans afresh). A nonce taken by another transaction drops it too.
        """
        plan = self.store.get_plan(plan_id)
        assert plan is not None
        chain = next(c for c in self.settings.chains if c.chain_id == plan.chain_id)
        rpc = self._rpc(chain)
        hashes: list[str] = []
        txs = self.store.plan_txs(plan_id)
        for i, tx in enumerate(txs):
            hashes.append(tx.tx_hash)
            if tx.status == "confirmed":
                continue
            if tx.status in ("reverted", "dropped"):
                error = f"transaction {tx.seq} ({tx.description}) {tx.status}"
                return self._close(plan_id, "failed", error), error, hashes
            try:
                receipt = get_receipt(rpc, tx.tx_hash)
                if receipt is None:
                    known = rpc.request("eth_getTransactionByHash", [tx.tx_hash]) is not None
                    if not known:
                        age = (self._clock() - plan.updated_at).total_seconds()
                        if tx.status == "sent" or age > self.cfg.resend_window_s:
                            why = ("was sent but the node no longer knows it" if tx.status == "sent"
                                   else f"was not broadcast within {self.cfg.resend_window_s:g} s of the plan's start")
                            return self._drop(plan_id, txs[i:], f"transaction {tx.seq} ({tx.description}) {why}"), \
                                why, hashes
                        try:
                            send_raw(rpc, SignedTx(seq=tx.seq, description=tx.description, to=tx.to_address,
                                                   nonce=tx.nonce, gas_limit=0, max_fee_per_gas=0, raw=tx.raw_tx,
                                                   tx_hash=tx.tx_hash))
                        except SendError as exc:
                            if "used by another transaction" in str(exc):
                                return self._drop(plan_id, txs[i:], str(exc)), str(exc), hashes
                            raise
                        self.store.update_tx(tx.id, "sent", now=self._clock())
                        log.info("keeper: plan %d for %s: transaction %d of %d sent: %s nonce %d (%s)", plan_id,
                                 plan.wallet, tx.seq + 1, len(txs), tx.tx_hash, tx.nonce, tx.description)
                    else:
                        log.info("keeper: plan %d for %s: transaction %d of %d already broadcast: %s nonce %d; "
                                 "awaiting its receipt", plan_id, plan.wallet, tx.seq + 1, len(txs), tx.tx_hash,
                                 tx.nonce)
                    receipt = wait_receipt(rpc, tx.tx_hash, timeout_s=self.cfg.receipt_timeout_s)
            except (KeeperChainError, ConnectorError) as exc:
                # Unknown outcome: the plan stays executing; the next cycle reconciles it (never re-signs).
                log.error("keeper: plan %d transaction %d: %s", plan_id, tx.seq, exc)
                return "executing", f"transaction {tx.seq} pending: {exc}", hashes
            status = "confirmed" if receipt.status == 1 else "reverted"
            self.store.update_tx(tx.id, status, now=self._clock(), block_number=receipt.block_number,
                                 gas_used=receipt.gas_used)
            log.info("keeper: plan %d for %s: transaction %d of %d %s in block %d (gas %d): %s", plan_id, plan.wallet,
                     tx.seq + 1, len(txs), status, receipt.block_number, receipt.gas_used, tx.tx_hash)
            if status == "reverted":
                error = f"transaction {tx.seq} ({tx.description}) reverted"
                return self._close(plan_id, "failed", error), error, hashes
        return self._close(plan_id, "executed", ""), "", hashes

    def _drop(self, plan_id: int, txs: Sequence[TxRow], error: str) -> str:
        for tx in txs:
            self.store.update_tx(tx.id, "dropped", now=self._clock())
        return self._close(plan_id, "failed", error)

    def _close(self, plan_id: int, status: str, error: str) -> str:
        self.store.update_plan(plan_id, status, now=self._clock(), error=error or None, expect=["executing"])
        if status == "executed":
            log.warning("keeper: plan %d executed", plan_id)
        else:
            log.error("keeper: plan %d %s: %s", plan_id, status, error)
        return status

    def abandon_interrupted(self) -> list[int]:
        """Plans a previous process stored and never simulated (it was killed in between) are closed as
        ``simulation_failed``: nothing of theirs was signed or sent, and the next sync plans afresh."""
        out = []
        for plan in self.store.list_plans(status="planned", limit=1_000):
            if plan.created_at < self._started_at and self.store.update_plan(
                plan.id, "simulation_failed", now=self._clock(), error="interrupted before its simulation (restart)",
                expect=["planned"],
            ):
                log.warning("keeper: plan %d was interrupted before its simulation; closed", plan.id)
                out.append(plan.id)
        return out

    def reconcile(self) -> list[tuple[int, str]]:
        """Finish plans a previous run left ``executing`` (see the module docstring)."""
        done = []
        for plan in self.store.executing_plans():
            if not any(c.chain_id == plan.chain_id for c in self.settings.chains):
                continue
            status, _, _ = self._send(plan.id)
            done.append((plan.id, status))
        return done
