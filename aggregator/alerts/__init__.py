"""Alert delivery sinks (see :mod:`aggregator.alerts.sinks` for the signed-webhook protocol)."""

from aggregator.alerts.sinks import (
    ALERTS_LOGGER,
    EVENT_ID_HEADER,
    PROTOCOL_VERSION,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    AlertEvent,
    DeliveryResult,
    LogSink,
    Severity,
    Sink,
    WebhookSink,
    canonical_body,
    sign,
    verify,
)

__all__ = [
    "ALERTS_LOGGER",
    "EVENT_ID_HEADER",
    "PROTOCOL_VERSION",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "AlertEvent",
    "DeliveryResult",
    "LogSink",
    "Severity",
    "Sink",
    "WebhookSink",
    "canonical_body",
    "sign",
    "verify",
]
