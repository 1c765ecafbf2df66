"""Notify's own metrics; events and the outbox are covered by services.infra.telemetry."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CHANNELS = ("email", "webhook", "sms", "whatsapp")
# The channels a reporter can be reached on, in no particular order.
REPORTER_CHANNELS = ("email", "sms", "whatsapp")
OUTCOMES = ("delivered", "retry", "failed", "skipped")

DELIVERIES = Counter(
    "lapor_notify_deliveries_total",
    "Delivery attempts by channel and what came of them (retry = will try again)",
    ["channel", "outcome"])
SEND_SECONDS = Histogram(
    "lapor_notify_send_duration_seconds",
    "Time spent sending one attempt (SMTP conversation or webhook request)",
    ["channel"], buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
FALLBACKS = Counter(
    "lapor_notify_fallbacks_total",
    "Reporter notices sent again on the next channel after one failed for good or could not "
    "be used (no gateway, no address, opted out)",
    ["from_channel", "to_channel"])
SMS_PARTS = Counter(
    "lapor_notify_sms_parts_total",
    "SMS parts handed to the gateway (what the operator is billed for)")
PENDING = Gauge(
    "lapor_notify_pending_deliveries", "Deliveries not yet delivered, failed or skipped")
OLDEST_PENDING_AGE = Gauge(
    "lapor_notify_oldest_pending_age_seconds", "Age of the oldest pending delivery")

for _from in REPORTER_CHANNELS:
    for _to in REPORTER_CHANNELS:
        if _from != _to:
            FALLBACKS.labels(_from, _to)

for _channel in CHANNELS:
    SEND_SECONDS.labels(_channel)
    for _outcome in OUTCOMES:
        DELIVERIES.labels(_channel, _outcome)
