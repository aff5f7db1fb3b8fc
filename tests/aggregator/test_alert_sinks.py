"""Alert sinks: the webhook signature scheme, delivery to a real loopback receiver with retries, redaction of
secrets in errors and logs, and the log sink."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import socket
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from aggregator.alerts import (
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    AlertEvent,
    LogSink,
    Sink,
    WebhookSink,
    canonical_body,
    sign,
    verify,
)
from tests.timing import scaled
from tests.webhook_receiver import WebhookReceiver

SECRET = "whsec-Kq7vT2xN"
T0 = 1_700_000_000


def make_event(**overrides: Any) -> AlertEvent:
    fields: dict[str, Any] = {
        "event_id": "rule-12-episode-3",
        "rule_id": 12,
        "wallet": "0x00000000000000000000000000000000000000aa",
        "kind": "venue_health_below",
        "severity": "warning",
        "message": "aave_v3 health 1.08 < 1.10",
        "value": 1.08,
        "threshold": 1.1,
        "chain_id": 1,
        "block_number": 19_000_000,
        "fired_at": datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC),
        "details": {"venue": "aave_v3", "assets": ["WETH", "USDC"]},
    }
    fields.update(overrides)
    return AlertEvent(**fields)


class FakeTime:
    """A clock near the real time (the receiver verifies timestamps against it) that ``sleep`` advances."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def rx() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(SECRET) as receiver:
        yield receiver


@pytest.fixture
def make_sink(fake_time: FakeTime) -> Iterator[Callable[..., WebhookSink]]:
    sinks: list[WebhookSink] = []

    def make(url: str, **kwargs: Any) -> WebhookSink:
        kwargs.setdefault("sleep", fake_time.sleep)
        kwargs.setdefault("clock", fake_time.clock)
        kwargs.setdefault("timeout_s", 2.0)
        kwargs.setdefault("rng", random.Random(7))
        sink = WebhookSink(url, SECRET, **kwargs)
        sinks.append(sink)
        return sink

    yield make
    for sink in sinks:
        sink.close()


# --- signing ----------------------------------------------------------------------------------------------


def test_sign_is_hmac_sha256_over_timestamp_dot_body() -> None:
    body = b'{"a":1}'
    expected = hmac.new(SECRET.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign(SECRET, T0, body) == "sha256=" + expected
    assert sign(SECRET.encode(), T0, body) == sign(SECRET, T0, body)


def test_sign_verify_round_trip() -> None:
    body = canonical_body(make_event())
    signature = sign(SECRET, T0, body)
    assert verify(SECRET, str(T0), body, signature, now=T0 + 10)
    assert verify(SECRET.encode(), T0, body, signature, now=T0 - 10)


@pytest.mark.parametrize(
    ("secret", "timestamp", "body", "signature"),
    [
        pytest.param(SECRET, str(T0), b'{"a":2}', None, id="tampered-body"),
        pytest.param("other-secret", str(T0), b'{"a":1}', None, id="wrong-secret"),
        pytest.param(SECRET, str(T0 + 1), b'{"a":1}', None, id="timestamp-not-the-signed-one"),
    ],
)
def test_verify_rejects_tampering(secret: str, timestamp: str, body: bytes, signature: str | None) -> None:
    good = sign(SECRET, T0, b'{"a":1}')
    assert not verify(secret, timestamp, body, signature or good, now=T0)


def test_verify_rejects_timestamps_outside_tolerance() -> None:
    body = b"{}"
    for ts, ok in [(T0 - 300, True), (T0 - 301, False), (T0 + 300, True), (T0 + 301, False), (T0 - 86_400, False)]:
        assert verify(SECRET, ts, body, sign(SECRET, ts, body), now=T0) is ok, ts
    assert not verify(SECRET, T0 - 60, body, sign(SECRET, T0 - 60, body), now=T0, tolerance_s=30)
    # the default "now" is the system clock
    stale = int(time.time()) - 3600
    assert not verify(SECRET, stale, body, sign(SECRET, stale, body))


@pytest.mark.parametrize(
    "signature",
    [
        "",
        "sha256=",
        "sha256",
        "sha1=" + "0" * 40,
        "SHA256=" + "0" * 64,
        "sha256=" + "z" * 64,
        "sha256=" + "é" * 64,
        "sha256=abc",
        " sha256=" + "0" * 64,
    ],
)
def test_verify_rejects_malformed_signatures(signature: str) -> None:
    assert not verify(SECRET, T0, b"{}", signature, now=T0)


def test_verify_rejects_malformed_signature_header_of_the_right_digest() -> None:
    digest = sign(SECRET, T0, b"{}").removeprefix("sha256=")
    assert not verify(SECRET, T0, b"{}", digest, now=T0)  # prefix missing
    assert not verify(SECRET, T0, b"{}", "sha256=" + digest + "00", now=T0)  # trailing junk
    assert verify(SECRET, T0, b"{}", "sha256=" + digest, now=T0)


@pytest.mark.parametrize("timestamp", ["", "abc", "1700000000.5", "-1700000000", " 1700000000", "1e9", "١٧٠٠"])
def test_verify_rejects_malformed_timestamps(timestamp: str) -> None:
    assert not verify(SECRET, timestamp, b"{}", sign(SECRET, T0, b"{}"), now=T0)


def test_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="secret"):
        sign("", T0, b"{}")
    with pytest.raises(ValueError, match="secret"):
        verify(b"", T0, b"{}", "sha256=" + "0" * 64)
    with pytest.raises(ValueError, match="secret"):
        WebhookSink("http://127.0.0.1:9/hook", "")


# --- the event --------------------------------------------------------------------------------------------


def test_event_json_is_versioned_utc_and_plain_json() -> None:
    cest = timezone(timedelta(hours=2))
    details: dict[str, object] = {"hf": float("inf"), "nested": {"x": (1, float("nan"))}}
    event = make_event(fired_at=datetime(2024, 5, 1, 14, 0, tzinfo=cest), value=float("inf"), details=details)
    details["late"] = "mutation"  # the event keeps its own copy
    doc = event.to_json()
    assert doc["version"] == 1
    assert doc["fired_at"] == "2024-05-01T12:00:00+00:00"
    assert doc["value"] is None
    assert doc["details"] == {"hf": None, "nested": {"x": [1, None]}}
    body = canonical_body(event)
    assert json.loads(body) == doc
    assert body == json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"fired_at": datetime(2024, 5, 1, 12, 0)}, "timezone-aware"),
        ({"severity": "fatal"}, "severity"),
        ({"event_id": ""}, "event_id"),
    ],
)
def test_event_rejects_invalid_fields(overrides: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make_event(**overrides)


def test_sinks_satisfy_the_protocol() -> None:
    sinks: list[Sink] = [LogSink(), WebhookSink("https://hooks.example/x", SECRET)]
    try:
        assert all(isinstance(s, Sink) for s in sinks)
        assert [s.name for s in sinks] == ["log", "webhook"]
    finally:
        for s in sinks:
            s.close()


# --- webhook delivery -------------------------------------------------------------------------------------


def test_delivery_to_a_real_receiver_is_signed_and_complete(
    rx: WebhookReceiver, make_sink: Callable[..., WebhookSink]
) -> None:
    event = make_event()
    result = make_sink(rx.url, name="ops-hook").deliver(event)
    assert result.ok, result
    assert (result.sink, result.attempts, result.status_code, result.error) == ("ops-hook", 1, 200, None)
    [req] = rx.wait_for(1, timeout=2)
    assert req.signature_ok
    assert req.method == "POST"
    assert req.path == "/hook"
    assert req.header("content-type") == "application/json"
    assert (req.header("user-agent") or "").startswith("xmargin/")
    assert req.event_id == "rule-12-episode-3"
    assert req.body == canonical_body(event)
    assert req.json == {
        "version": 1,
        "event_id": "rule-12-episode-3",
        "rule_id": 12,
        "wallet": "0x00000000000000000000000000000000000000aa",
        "kind": "venue_health_below",
        "severity": "warning",
        "message": "aave_v3 health 1.08 < 1.10",
        "value": 1.08,
        "threshold": 1.1,
        "chain_id": 1,
        "block_number": 19_000_000,
        "fired_at": "2024-05-01T12:00:00+00:00",
        "details": {"venue": "aave_v3", "assets": ["WETH", "USDC"]},
    }
    # the receiver's check is not vacuous: another secret fails it
    assert req.timestamp is not None
    assert req.signature is not None
    assert not verify("not-" + SECRET, req.timestamp, req.body, req.signature)


def test_retry_after_503_then_success(
    rx: WebhookReceiver, make_sink: Callable[..., WebhookSink], fake_time: FakeTime
) -> None:
    rx.script([503])
    result = make_sink(rx.url, backoff_s=0.5).deliver(make_event())
    assert result.ok
    assert result.attempts == 2
    assert result.status_code == 200
    first, second = rx.received
    assert first.status == 503
    assert second.status == 200
    assert first.signature_ok
    assert second.signature_ok
    assert first.event_id == second.event_id == "rule-12-episode-3"
    assert first.body == second.body
    [wait] = fake_time.sleeps
    assert 0 <= wait <= 0.5  # full jitter below the first backoff step


def test_every_attempt_is_signed_with_a_fresh_timestamp(
    rx: WebhookReceiver, make_sink: Callable[..., WebhookSink], fake_time: FakeTime
) -> None:
    rx.script([(503, {"Retry-After": "3"}), (503, {"Retry-After": "4"})])
    result = make_sink(rx.url).deliver(make_event())
    assert (result.ok, result.attempts) == (True, 3)
    assert fake_time.sleeps == [3.0, 4.0]
    stamps = [int(r.timestamp or "0") for r in rx.received]
    assert stamps[1] == stamps[0] + 3
    assert stamps[2] == stamps[1] + 4
    assert len({r.signature for r in rx.received}) == 3
    assert all(r.signature_ok for r in rx.received)


@pytest.mark.parametrize(
    ("retry_after", "max_backoff_s", "expected_wait"),
    [
        pytest.param("1", 10.0, 1.0, id="seconds"),
        pytest.param("0", 10.0, 0.0, id="zero"),
        pytest.param("3600", 2.0, 2.0, id="capped-at-max-backoff"),
    ],
)
def test_429_retry_after_is_honoured(
    rx: WebhookReceiver,
    make_sink: Callable[..., WebhookSink],
    fake_time: FakeTime,
    retry_after: str,
    max_backoff_s: float,
    expected_wait: float,
) -> None:
    rx.script([(429, {"Retry-After": retry_after})])
    result = make_sink(rx.url, max_backoff_s=max_backoff_s).deliver(make_event())
    assert (result.ok, result.attempts) == (True, 2)
    assert fake_time.sleeps == [expected_wait]
    assert [r.status for r in rx.received] == [429, 200]


def test_retry_after_as_an_http_date(
    rx: WebhookReceiver, make_sink: Callable[..., WebhookSink], fake_time: FakeTime
) -> None:
    when = datetime.fromtimestamp(fake_time.now + 7, tz=UTC)
    rx.script([(429, {"Retry-After": format_datetime(when, usegmt=True)})])
    result = make_sink(rx.url).deliver(make_event())
    assert (result.ok, result.attempts) == (True, 2)
    assert fake_time.sleeps == [7.0]


@pytest.mark.parametrize("status", [500, 502, 504, 408, 429])
def test_transient_statuses_are_retried(
    rx: WebhookReceiver, make_sink: Callable[..., WebhookSink], status: int
) -> None:
    rx.script([status])
    result = make_sink(rx.url).deliver(make_event())
    assert (result.ok, result.attempts, result.status_code) == (True, 2, 200)
    assert [r.status for r in rx.received] == [status, 200]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 422, 301])
def test_other_answers_fail_at_once(
    rx: WebhookReceiver, make_sink: Callable[..., WebhookSink], fake_time: FakeTime, status: int
) -> None:
    rx.script([(status, {"Location": "http://127.0.0.1:9/elsewhere"})] if status == 301 else [status])
    result = make_sink(rx.url).deliver(make_event())
    assert not result.ok
    assert result.attempts == 1
    assert result.status_code == status
    assert result.error is not None
    assert f"HTTP {status}" in result.error
    assert len(rx.received) == 1
    assert fake_time.sleeps == []


def test_a_hanging_receiver_times_out_and_is_retried(
    rx: WebhookReceiver, make_sink: Callable[..., WebhookSink]
) -> None:
    rx.script(["hang"])
    started = time.monotonic()
    result = make_sink(rx.url, timeout_s=scaled(0.3), max_attempts=3).deliver(make_event())
    elapsed = time.monotonic() - started
    assert result.ok
    assert result.attempts == 2
    assert [r.status for r in rx.received] == [None, 200]
    assert 0.25 <= elapsed < scaled(5)


def test_timeouts_count_as_attempts_until_giving_up(
    rx: WebhookReceiver, make_sink: Callable[..., WebhookSink], fake_time: FakeTime
) -> None:
    rx.script(["hang", "hang"])
    result = make_sink(rx.url, timeout_s=0.2, max_attempts=2).deliver(make_event())
    assert not result.ok
    assert result.attempts == 2
    assert result.status_code is None
    assert result.error is not None
    assert "timed out after 0.2 s" in result.error
    assert len(rx.received) == 2
    assert len(fake_time.sleeps) == 1  # no wait after the last attempt


def test_a_dropped_connection_is_retried(rx: WebhookReceiver, make_sink: Callable[..., WebhookSink]) -> None:
    rx.script(["drop"])
    result = make_sink(rx.url).deliver(make_event())
    assert (result.ok, result.attempts, result.status_code) == (True, 2, 200)
    assert [r.status for r in rx.received] == [None, 200]
    assert rx.received[0].signature_ok


def test_backoff_is_exponential_with_full_jitter_and_capped() -> None:
    class Top(random.Random):
        def uniform(self, a: float, b: float) -> float:
            return b

    sleeps: list[float] = []
    calls: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(500)

    with WebhookSink(
        "https://hooks.example/x",
        SECRET,
        max_attempts=5,
        backoff_s=1.0,
        max_backoff_s=4.0,
        transport=httpx.MockTransport(answer),
        sleep=sleeps.append,
        rng=Top(),
    ) as sink:
        result = sink.deliver(make_event())
    assert (result.ok, result.attempts, result.status_code) == (False, 5, 500)
    assert len(calls) == 5
    assert sleeps == [1.0, 2.0, 4.0, 4.0]

    jittered: list[float] = []
    with WebhookSink(
        "https://hooks.example/x",
        SECRET,
        max_attempts=5,
        backoff_s=1.0,
        max_backoff_s=4.0,
        transport=httpx.MockTransport(lambda r: httpx.Response(503)),
        sleep=jittered.append,
        rng=random.Random(1),
    ) as sink:
        sink.deliver(make_event())
    assert all(0 <= w <= cap for w, cap in zip(jittered, [1.0, 2.0, 4.0, 4.0], strict=True))
    assert jittered != [1.0, 2.0, 4.0, 4.0]


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


PASSWORD = "pw-Zq81hunter"
TOKEN = "tok-abc-9f3e"


@pytest.mark.parametrize("target", ["receiver-500", "connection-refused"])
def test_failure_error_and_logs_leak_no_secret_nor_url_credentials(
    rx: WebhookReceiver,
    make_sink: Callable[..., WebhookSink],
    caplog: pytest.LogCaptureFixture,
    target: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    port = rx.port if target == "receiver-500" else _unused_port()
    if target == "receiver-500":
        rx.script([500, 500, 500])
    url = f"http://alice:{PASSWORD}@127.0.0.1:{port}/hook/{TOKEN}?token={TOKEN}"
    sink = make_sink(url, max_attempts=3)
    result = sink.deliver(make_event())
    assert not result.ok
    assert result.attempts == 3
    assert result.error is not None
    assert f"http://127.0.0.1:{port}" in result.error
    assert "gave up after 3 attempts" in result.error
    if target == "receiver-500":
        assert result.status_code == 500
        assert "HTTP 500" in result.error
        assert len(rx.received) == 3
        assert rx.received[0].path == f"/hook/{TOKEN}?token={TOKEN}"  # the full URL was used
    else:
        assert result.status_code is None
        assert "ConnectError" in result.error
    assert "alert sink webhook: attempt 1/3" in caplog.text  # the retries were logged...
    assert "delivery failed" in caplog.text
    for leaked in (PASSWORD, TOKEN, SECRET, "alice"):  # ...without secrets
        assert leaked not in result.error
        assert leaked not in caplog.text
        assert leaked not in repr(sink)
        assert leaked not in repr(result)


@pytest.mark.parametrize(
    "url", [f"ftp://alice:{PASSWORD}@127.0.0.1/x?token={TOKEN}", f"file:///etc/{TOKEN}", "not a url", "http:///x"]
)
def test_construction_refuses_non_http_urls_without_echoing_them(url: str) -> None:
    with pytest.raises(ValueError, match="URL") as info:
        WebhookSink(url, SECRET)
    assert PASSWORD not in str(info.value)
    assert TOKEN not in str(info.value)


def test_an_unserializable_event_fails_without_a_request(
    rx: WebhookReceiver, make_sink: Callable[..., WebhookSink]
) -> None:
    result = make_sink(rx.url).deliver(make_event(details={"when": datetime(2024, 1, 1, tzinfo=UTC)}))
    assert (result.ok, result.attempts) == (False, 0)
    assert result.error is not None
    assert "JSON" in result.error
    assert rx.received == []


def test_receiver_dedupes_events_and_wait_for_times_out(
    rx: WebhookReceiver, make_sink: Callable[..., WebhookSink]
) -> None:
    sink = make_sink(rx.url)
    event = make_event()
    assert sink.deliver(event).ok
    assert sink.deliver(event).ok  # at least once: a redelivery carries the same id
    assert sink.deliver(make_event(event_id="rule-12-episode-4")).ok
    assert len(rx.accepted) == 3
    assert [e["event_id"] for e in rx.events() if isinstance(e, dict)] == ["rule-12-episode-3", "rule-12-episode-4"]
    with pytest.raises(TimeoutError, match="3 of 4"):
        rx.wait_for(4, timeout=0.05)


def test_receiver_does_not_accept_unsigned_or_badly_signed_requests(rx: WebhookReceiver) -> None:
    body = canonical_body(make_event())
    ts = str(int(time.time()))
    httpx.post(rx.url, content=body)
    httpx.post(rx.url, content=body, headers={TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: sign("wrong", int(ts), body)})
    httpx.post(
        rx.url,
        content=body,
        headers={TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: sign(SECRET, int(ts), body), EVENT_ID_HEADER: "x"},
    )
    assert [r.signature_ok for r in rx.received] == [False, False, True]
    assert [r.event_id for r in rx.accepted] == ["x"]


# --- log sink ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("severity", "level"), [("info", logging.WARNING), ("warning", logging.WARNING), ("critical", logging.ERROR)]
)
def test_log_sink_logs_one_line_at_the_severity_level(
    caplog: pytest.LogCaptureFixture, severity: str, level: int
) -> None:
    caplog.set_level(logging.DEBUG, logger="xmargin.alerts")
    event = make_event(severity=severity, message="health 1.08 < 1.10\nforged: line")
    result = LogSink().deliver(event)
    assert (result.sink, result.ok, result.attempts, result.error) == ("log", True, 1, None)
    [record] = caplog.records
    assert record.name == "xmargin.alerts"
    assert record.levelno == level
    text = record.getMessage()
    assert "health 1.08 < 1.10\\nforged: line" in text
    assert "\n" not in text
    assert "venue_health_below" in text
    assert "rule-12-episode-3" in text
    assert record.__dict__["alert"]["event_id"] == "rule-12-episode-3"
