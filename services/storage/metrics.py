"""ClickHouse write metrics, counted where every process writes: AsyncStorage.insert."""

from __future__ import annotations

from prometheus_client import Counter

CLICKHOUSE_ROWS = Counter(
    "fundwatch_clickhouse_insert_rows_total", "Rows inserted into ClickHouse", ["table"]
)
CLICKHOUSE_ERRORS = Counter(
    "fundwatch_clickhouse_insert_errors_total", "Failed ClickHouse inserts", ["table"]
)
