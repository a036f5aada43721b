"""Dispatcher metrics (Prometheus conventions: base units, _total for counters)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ALERTS_CONSUMED = Counter(
    "fundwatch_webhook_alerts_consumed_total", "Alert events read from the alerts topic by the dispatcher"
)
MESSAGES_CREATED = Counter(
    "fundwatch_webhook_messages_created_total",
    "Webhook messages created: alert revisions the notification policy sends to a matching subscription",
)
NOTICES = Counter(
    "fundwatch_webhook_notices_total",
    "Alert revisions the notification policy decided to send, by reason (new, status, severity, "
    "figures, interval_end, window_closed)",
    ["reason"],
)
HELD = Gauge(
    "fundwatch_webhook_held_updates",
    "Figures-only alert updates held back until their notification interval ends",
)
ATTEMPTS = Counter("fundwatch_webhook_attempts_total", "Webhook POST attempts")
SUCCESSES = Counter("fundwatch_webhook_successes_total", "Webhook attempts answered with a 2xx")
FAILURES = Counter(
    "fundwatch_webhook_failures_total",
    "Webhook attempts that failed, by reason (status class, timeout, connection, refused URL)",
    ["reason"],
)
DEAD_LETTERS = Counter(
    "fundwatch_webhook_dead_letters_total",
    "Webhook messages given up, by reason (retries exhausted, subscription gone or deleted)",
    ["reason"],
)
DELIVERY_SECONDS = Histogram(
    "fundwatch_webhook_delivery_latency_seconds",
    "From a webhook message's creation to its successful delivery, retries included",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0),
)
REQUEST_SECONDS = Histogram(
    "fundwatch_webhook_request_duration_seconds",
    "Duration of one webhook POST, answered or not",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
PENDING = Gauge("fundwatch_webhook_pending_messages", "Webhook messages waiting for delivery or a retry")
SUBSCRIPTIONS = Gauge(
    "fundwatch_webhook_subscriptions", "Subscriptions known to the dispatcher, by state", ["state"]
)
