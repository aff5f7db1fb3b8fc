"""The alert engine: after every sync, evaluate every enabled rule on its wallet's newest data, store what fired
(with the rules' new state, in one transaction), then deliver every alert not yet delivered to every sink.

Delivery is at-least-once with a stable event id: an alert is stored once per event (rule + episode), and a
restart delivers the alerts a crash left undelivered. An alert is ``delivered`` when every sink took it. When a
sink gives up after its own retries the alert stays ``fired`` (its error kept) and is tried again by the
following runs until ``retry_for_s`` after it fired; then it is ``failed`` for good. A sink that took it on an
earlier run gets it again on a retry (receivers dedupe on the event id).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aggregator.alerts.rules import evaluate_rule, event_id, observe, validate_params
from aggregator.alerts.sinks import AlertEvent, DeliveryResult, LogSink, Sink, WebhookSink
from aggregator.config import AlertsConfig
from db import AlertRow, NewAlert, RuleRow, RuleUpdate, Store

__all__ = ["AlertEngine", "AlertReport", "UnknownAssetError", "check_rule", "sinks_from_config", "to_event"]

log = logging.getLogger(__name__)


def sinks_from_config(config: AlertsConfig) -> list[Sink]:
    """The sinks the configuration names (webhook URLs and secrets resolved from the environment)."""
    sinks: list[Sink] = [LogSink()] if config.log else []
    for hook in config.webhooks:
        url, secret = hook.resolve()
        sinks.append(WebhookSink(url, secret, name=hook.name, timeout_s=hook.timeout_s,
                                 max_attempts=hook.max_attempts))
    return sinks


def to_event(alert: AlertRow, kind: str) -> AlertEvent:
    """The delivered form of a stored alert."""
    return AlertEvent(
        event_id=alert.event_id, rule_id=alert.rule_id, wallet=alert.wallet, kind=kind,
        severity=alert.severity,  # type: ignore[arg-type]
        message=alert.message, value=alert.value, threshold=alert.threshold, chain_id=alert.chain_id,
        block_number=alert.block_number, fired_at=alert.fired_at, details=dict(alert.payload),
    )


@dataclass
class AlertReport:
    """One run of the engine: rules evaluated, alerts fired (newly stored), and delivery outcomes."""

    evaluated: int = 0
    fired: list[AlertRow] = field(default_factory=list)
    deliveries: list[tuple[AlertRow, tuple[DeliveryResult, ...]]] = field(default_factory=list)


class AlertEngine:
    """Evaluates rules and delivers alerts; one per process, reused across scheduled runs."""

    def __init__(
        self,
        store: Store,
        sinks: Sequence[Sink],
        clock: Callable[[], datetime] | None = None,
        *,
        retry_for_s: float = 3_600.0,
    ) -> None:
        self.store = store
        self.sinks = list(sinks)
        self.retry_for_s = retry_for_s
        self._clock = clock or (lambda: datetime.now(UTC))

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()

    def evaluate(self, wallets: Sequence[str] | None = None) -> tuple[int, list[AlertRow]]:
        """Evaluate the enabled rules (of ``wallets``, default all); store state and new alerts; return
        (rules evaluated, alerts newly fired)."""
        rules = self.store.list_rules(enabled_only=True)
        if wallets is not None:
            wanted = {w.lower() for w in wallets}
            rules = [r for r in rules if r.wallet.lower() in wanted]
        by_wallet: dict[str, list[RuleRow]] = {}
        for rule in rules:
            by_wallet.setdefault(rule.wallet, []).append(rule)
        now = self._clock()
        updates: list[RuleUpdate] = []
        alerts: list[NewAlert] = []
        for wallet, wallet_rules in by_wallet.items():
            obs = observe(wallet, self.store.latest_health(wallet), self.store.latest_risk(wallet))
            for rule in wallet_rules:
                try:
                    ev = evaluate_rule(rule, obs, now)
                except ValueError as exc:  # a rule stored before its kind's parameters changed: say so, go on
                    log.error("rule %d (%s) cannot be evaluated: %s", rule.id, rule.kind, exc)
                    continue
                stored = ev.value if ev.value is not None and math.isfinite(ev.value) else None
                updates.append(RuleUpdate(rule.id, active=ev.active, episode=ev.episode, last_value=stored,
                                          last_block=obs.block_number, last_fired_at=ev.last_fired_at,
                                          version=rule.version))
                if ev.fires:
                    alerts.append(NewAlert(
                        event_id=event_id(rule.id, ev.episode), rule_id=rule.id, wallet=wallet, episode=ev.episode,
                        fired_at=now, chain_id=obs.chain_id, block_number=obs.block_number, value=ev.value,
                        threshold=ev.threshold, severity=rule.severity, message=ev.message,
                        payload={"kind": rule.kind, "params": dict(rule.params), "venue_health": dict(
                            obs.venue_health), "unified_health": obs.unified_health,
                            "oracle_problems": {k: list(v) for k, v in obs.oracle_problems.items()}},
                    ))
        fired = self.store.record_evaluation(updates, alerts)
        return len(updates), fired

    def deliver(self) -> list[tuple[AlertRow, tuple[DeliveryResult, ...]]]:
        """Send every undelivered alert to every sink and record the outcome."""
        out = []
        for alert in self.store.undelivered_alerts():
            event = to_event(alert, str(alert.payload.get("kind", "unknown")))  # the rule's kind, stored with it
            results = tuple(sink.deliver(event) for sink in self.sinks)
            ok = all(r.ok for r in results)
            errors = "; ".join(f"{r.sink}: {r.error}" for r in results if not r.ok) or None
            now = self._clock()
            give_up = (now - alert.fired_at).total_seconds() >= self.retry_for_s
            state = "delivered" if ok else "failed" if give_up else "fired"
            self.store.mark_alert(alert.id, state, attempts=max((r.attempts for r in results), default=0),
                                  error=errors, delivered_at=now if ok else None)
            if not ok:
                log.error("alert %s not delivered%s: %s", alert.event_id,
                          " (given up)" if give_up else " (retried next run)", errors)
            out.append((alert, results))
        return out

    def run(self, wallets: Sequence[str] | None = None) -> AlertReport:
        """Evaluate, then deliver (including alerts an earlier run left undelivered)."""
        evaluated, fired = self.evaluate(wallets)
        return AlertReport(evaluated=evaluated, fired=fired, deliveries=self.deliver())


class UnknownAssetError(ValueError):
    """A rule names an asset the store holds no price of: it could never fire."""


def check_rule(kind: str, params: dict[str, object], *, assets: Collection[str] | None = None,
               venues: Collection[str] = ()) -> dict[str, object]:
    """Validate a rule's parameters for storing (the CLI's and the API's entry point).

    ``assets``: the symbols the store holds prices of (``Store.priced_symbols``). Given, the ``asset`` of a
    ``price_cross`` or ``oracle_invalid`` rule must be one of them (or, for ``oracle_invalid``, one of ``venues``,
    whose health it then watches), matched without regard to case and stored as the store spells it; else
    :class:`UnknownAssetError` names the known ones. A rule on another asset would never fire.
    """
    checked = validate_params(kind, params).stored()
    asset = checked.get("asset")
    if assets is None or not isinstance(asset, str) or kind not in ("price_cross", "oracle_invalid"):
        return checked
    by_name: dict[str, str] = {}
    for symbol in sorted(assets, reverse=True):  # the exact spelling wins over another case of it
        by_name.setdefault(symbol.casefold(), symbol)
    if asset in assets:
        return checked
    if asset.casefold() in by_name:
        return {**checked, "asset": by_name[asset.casefold()]}
    if kind == "oracle_invalid" and asset in venues:
        return checked
    shown = asset if len(asset) <= 40 else asset[:40] + "…"
    if not assets:
        raise UnknownAssetError(f"unknown asset {shown!r}: the store holds no prices yet, so no asset can be "
                                "watched (sync first: xmargin sync --once)")
    raise UnknownAssetError(f"unknown asset {shown!r}; the store knows: {', '.join(sorted(set(assets)))}")
