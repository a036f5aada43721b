"""Worker metrics (Prometheus conventions: base units, _total for counters)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from models.stepping import observe_late

RECORDS_PROCESSED = Counter(
    "fundwatch_records_processed_total",
    "Records folded into state and written to ClickHouse by workers",
    ["kind"],
)
MESSAGES_PROCESSED = Counter(
    "fundwatch_messages_processed_total", "Record sub-batch messages processed by workers"
)
MESSAGES_REPLAYED = Counter(
    "fundwatch_messages_replayed_total",
    "Messages seen again after a redelivery, whose state was already applied",
)
MESSAGES_UNREADABLE = Counter(
    "fundwatch_messages_unreadable_total",
    "Messages a worker could not decode and left out (logged with their topic and key)",
    ["topic"],
)
PROCESSING_SECONDS = Histogram(
    "fundwatch_message_processing_seconds",
    "Time to process the records messages taken together (up to 64), from decode to alerts out",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
RECORD_LAG_SECONDS = Histogram(
    "fundwatch_record_ingest_lag_seconds",
    "From the gateway accepting a batch to a worker having written its records",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
ALERTS = Counter(
    "fundwatch_alerts_total", "Alerts raised or updated by workers", ["typology", "severity", "event"]
)
INSTITUTION_MESSAGES_SENT = Counter(
    "fundwatch_institution_messages_sent_total",
    "Messages re-keyed by institution for the product- and institution-level detectors",
)
INSTITUTION_MESSAGES_HANDLED = Counter(
    "fundwatch_institution_messages_handled_total",
    "Institution messages (re-keyed records and product reviews) processed by workers",
)
LAST_TAKE_DONE = Gauge(
    "fundwatch_last_take_done_timestamp_seconds",
    "When (Unix seconds) an agent of this worker last finished a take of messages: the end of a "
    "backlog to the second, for what polls the counters less often",
)
INSTITUTION_PROCESSING_SECONDS = Histogram(
    "fundwatch_institution_message_processing_seconds",
    "Time to process the institution messages taken together through the institution-level detectors",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
CONSUMER_LAG = Gauge(
    "fundwatch_consumer_lag_messages",
    "Messages on a partition not yet consumed by this process's consumer group",
    ["group", "topic", "partition"],
)
CONSUMER_STALLS = Counter(
    "fundwatch_consumer_stalls_total",
    "Partitions a worker found stalled: committed offset standing still below the position, nothing moving",
    ["group", "topic"],
)
MESSAGES_OUT_OF_ORDER = Counter(
    "fundwatch_messages_out_of_order_total",
    "Times an agent was handed a message past one never handed on, held it back and fetched the "
    "partition again from the missing one (streams/order_guard.py)",
    ["agent"],
)
STATE_BYTES = Counter(
    "fundwatch_state_bytes_written_total",
    "Bytes of account and institution state written: to the account table's changelog, and as "
    "snapshots to ClickHouse",
    ["target"],
)
STATE_HELD_BYTES = Gauge(
    "fundwatch_state_held_bytes",
    "Encoded size of the account and institution states this worker holds, as last snapshotted",
    ["scope"],
)
SNAPSHOTS_PENDING = Gauge(
    "fundwatch_snapshot_queue_states",
    "Account and institution states waiting to be snapshotted to ClickHouse",
)
LATE_RECORDS = Counter(
    "fundwatch_late_records_total",
    "Records that reached an account's or an institution's detectors after their Beijing day was "
    "sealed (the slowest of its banks more than 2 days past the day's end): still judged, their "
    "findings marked late",
    ["bank_code", "scope"],
)


def _count_late(bank_code: str, scope: str, count: int) -> None:
    LATE_RECORDS.labels(bank_code, scope).inc(count)


observe_late(_count_late)
