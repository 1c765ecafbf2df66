"""Notify's own metrics; events and the outbox are covered by services.infra.telemetry."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CHANNELS = ("email", "webhook", "sms")
OUTCOMES = ("delivered", "retry", "failed", "skipped")

DELIVERIES = Counter(
    "lapor_notify_deliveries_total",
    "Delivery attempts by channel and what came of them (retry = will try again)",
    ["channel", "outcome"])
SEND_SECONDS = Histogram(
    "lapor_notify_send_duration_seconds",
    "Time spent sending one attempt (SMTP conversation or webhook request)",
    ["channel"], buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
PENDING = Gauge(
    "lapor_notify_pending_deliveries", "Deliveries not yet delivered, failed or skipped")
OLDEST_PENDING_AGE = Gauge(
    "lapor_notify_oldest_pending_age_seconds", "Age of the oldest pending delivery")

for _channel in CHANNELS:
    SEND_SECONDS.labels(_channel)
    for _outcome in OUTCOMES:
        DELIVERIES.labels(_channel, _outcome)
