"""Gateway metrics (Prometheus conventions: base units, _total for counters)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

RECORDS_RECEIVED = Counter(
    "fundwatch_records_received_total", "Records received in batches, before validation"
)
RECORDS_ACCEPTED = Counter(
    "fundwatch_records_accepted_total", "Records accepted and published to the pipeline"
)
RECORDS_DUPLICATE = Counter(
    "fundwatch_records_duplicate_total", "Records whose (bank_code, record_id) was accepted before"
)
RECORDS_REJECTED = Counter(
    "fundwatch_records_rejected_total", "Records rejected, by the field that broke a rule", ["field"]
)
BATCHES = Counter("fundwatch_batches_total", "Batches by outcome", ["outcome"])
REFERENCE_ITEMS = Counter(
    "fundwatch_reference_items_total", "Reference items by kind and outcome", ["kind", "outcome"]
)
HTTP_REQUESTS = Counter(
    "fundwatch_http_requests_total", "HTTP requests by route and status", ["route", "method", "status"]
)
HTTP_SECONDS = Histogram(
    "fundwatch_http_request_duration_seconds",
    "HTTP request handling time",
    ["route"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
RECORDS_UNREGISTERED = Counter(
    "fundwatch_records_unregistered_account_total",
    "Records accepted with a warning: their account is not in the reference data",
    ["bank_code"],
)
