"""The plain Faust way, as the baseline the pipeline is measured against: one record per Kafka
message, decoded from JSON into a faust.Record, and one table update per record (a running
balance per account). Run as ``python -m services.bench.naive BOOTSTRAP TOPIC COUNT PARTITIONS
OUT``: it writes to OUT, as JSON, the records it counted and the seconds from the first to the last
(a file, since Faust's worker writes terminal controls to stdout).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import faust

NAIVE_TOPIC = "bench.naive"


class NaiveRecord(faust.Record, serializer="json"):
    record_id: str
    account_id: str
    credit: bool
    amount_cents: int
    booked_at: int


def run(bootstrap: str, topic: str, count: int, partitions: int, datadir: Path) -> dict[str, Any]:
    app = faust.App(
        f"fw-bench-naive-{uuid.uuid4().hex[:8]}",
        datadir=str(datadir),  # Faust's default is a directory in the working directory
        broker=f"kafka://{bootstrap}",
        store="memory://",
        web_enabled=False,
        topic_partitions=partitions,
        topic_replication_factor=1,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=10.0,
        broker_rebalance_timeout=10.0,
        autodiscover=False,
    )
    source = app.topic(topic, value_type=NaiveRecord, partitions=partitions)
    balances = app.Table("balances", default=int, partitions=partitions)
    seen = {"n": 0, "first": 0.0, "last": 0.0}

    @app.agent(source)
    async def fold(records: Any) -> None:
        async for record in records:
            if not seen["n"]:
                seen["first"] = time.perf_counter()
            delta = record.amount_cents if record.credit else -record.amount_cents
            balances[record.account_id] += delta
            seen["n"] += 1
            if seen["n"] >= count:
                seen["last"] = time.perf_counter()
                asyncio.ensure_future(worker.stop())

    worker = faust.Worker(app, quiet=True, loglevel="WARNING", redirect_stdouts=False)
    try:
        worker.execute_from_commandline()
    except SystemExit:
        pass
    return {"records": seen["n"], "seconds": max(1e-9, seen["last"] - seen["first"])}


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.WARNING)
    bootstrap, topic, count, partitions, out = argv[0], argv[1], int(argv[2]), int(argv[3]), argv[4]
    figures = run(bootstrap, topic, count, partitions, Path(out).parent / "naive-faust")
    with open(out, "w", encoding="utf-8") as handle:
        json.dump(figures, handle)
    return 0 if figures["records"] >= count else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
