"""The worker's ClickHouse write alone: the bench's province records, made into the messages a
gateway publishes, built into the worker's columns (streams/rows.py), and their raw transactions
inserted into chDB (in a temporary directory) and into a local clickhouse-server (when installed),
each step timed apart (docs/benchmarks.md, "Columnar inserts").

    python -m services.bench.inserts [--records 60000] [--repeat 3] [--rows]

``--rows`` also times the row insert (``Storage.insert``, Decimal values) of the same block.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from schemas.messages import RecordBatchMessage, partition_for
from schemas.records import Batch, RecordDecoder
from schemas.reference import REFERENCE_KINDS
from services.bench.suite import DEFAULT_SEED, machine
from services.bench.workload import Workload, build_workload
from services.gateway.reader import to_message_record
from services.storage import Storage, migrate, open_storage
from services.storage.local_server import LocalClickHouse, clickhouse_server_binary
from streams.reference import ReferenceView
from streams.rows import RAW_TXN_TABLE, Columns, TableColumns, message_columns


def gateway_messages(workload: Workload, partitions: int = 4) -> list[RecordBatchMessage]:
    """Each batch's records as the gateway publishes them: converted, one message per partition."""
    decode_batch = msgspec.json.Decoder(Batch).decode
    decode_record = RecordDecoder().decode
    messages = []
    for number, (bank, body, _) in enumerate(workload.batches):
        batch = decode_batch(body)
        by_partition = defaultdict(list)
        for raw in batch.records:
            record = to_message_record(decode_record(raw))
            by_partition[partition_for(record.account_id, partitions)].append(record)
        for partition, records in sorted(by_partition.items()):
            msg_id = f"{bank}/{batch.batch_id}/{partition}"
            messages.append(RecordBatchMessage(msg_id, bank, batch.batch_id, 1_764_000_000 + number, records))
    return messages


def reference_view(workload: Workload) -> ReferenceView:
    view = ReferenceView()
    for kind, items in workload.reference.items():
        key = REFERENCE_KINDS[kind].key
        for item in items:
            view.apply(kind, str(item[key]).encode(), msgspec.json.encode(item))
    return view


@dataclass
class Timings:
    """Wall and CPU seconds of repeated runs of one step. CPU time is this process's, all its
    threads (chDB's included, not a server's): on a machine shared with other work it moves
    less than wall time does."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def run(self, step: Callable[[], object]) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        step()
        self.wall.append(time.perf_counter() - wall)
        self.cpu.append(time.process_time() - cpu)

    def per(self, count: int) -> str:
        """µs per item: the range of wall times over the runs, then the range of CPU times."""

        def span(seconds: list[float]) -> str:
            return f"{min(seconds) / count * 1e6:.2f}–{max(seconds) / count * 1e6:.2f}"

        each = ", ".join(f"{s * 1e3:.0f}" for s in self.wall)
        return f"{span(self.wall)} µs wall ({each} ms), {span(self.cpu)} µs CPU"


@contextlib.contextmanager
def backends(root: Path) -> Iterator[list[Storage]]:
    """chDB, and a clickhouse-server as a child process when one is installed, both migrated."""
    opened = [open_storage(f"chdb://{root / 'chdb'}")]
    server = LocalClickHouse(root / "clickhouse") if clickhouse_server_binary() else None
    try:
        if server is not None:
            opened.append(open_storage(server.start().url))
        for storage in opened:
            migrate(storage)
        yield opened
    finally:
        for storage in opened:
            storage.close()
        if server is not None:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=60_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rows", action="store_true", help="also time the row insert of the same block")
    args = parser.parse_args()
    workload = build_workload(DEFAULT_SEED, 24, args.records)
    messages = gateway_messages(workload)
    enrich = reference_view(workload).enrich
    records = sum(len(message.records) for message in messages)
    print(f"machine: {machine()}")
    print(f"{len(messages)} messages, {records} records")

    def build() -> Columns:
        columns = Columns()
        for message in messages:
            message_columns(message, enrich, columns)
        return columns

    building = Timings()
    for _ in range(args.repeat):
        building.run(build)
    print(f"building the columns, per record: {building.per(records)}")
    block = build().tables[RAW_TXN_TABLE]
    rows = block.rows() if args.rows else None
    with tempfile.TemporaryDirectory(prefix="fw-inserts-") as tmp, backends(Path(tmp)) as opened:
        for storage in opened:
            time_inserts(storage, block, rows, args.repeat)


def time_inserts(storage: Storage, block: TableColumns, rows: list[list[Any]] | None, repeat: int) -> None:
    """The block into an emptied raw_transactions, column-wise (and row-wise, given ``rows``), the
    kinds taking turns so that a machine's changing load weighs on each alike. One untimed insert
    of each kind first: a process's first one also pays for imports and the table's description."""
    inserts: dict[str, Callable[[], object]] = {
        "columns": lambda: storage.insert_columns(RAW_TXN_TABLE, block.columns())
    }
    if rows is not None:
        inserts["rows"] = lambda: storage.insert(RAW_TXN_TABLE, block.names, rows)
    timings = {kind: Timings() for kind in inserts}
    for turn in range(repeat + 1):
        for kind, insert in inserts.items():
            storage.execute(f"TRUNCATE TABLE {RAW_TXN_TABLE}")
            if turn:
                timings[kind].run(insert)
            else:
                insert()
            (stored,) = storage.query(f"SELECT count() FROM {RAW_TXN_TABLE}")
            if stored != (len(block),):
                raise RuntimeError(f"{storage.kind}: {stored[0]} rows stored of {len(block)}")
    for kind, taken in timings.items():
        print(
            f"{storage.kind} insert of {len(block)} raw transactions, {kind}, per row: {taken.per(len(block))}"
        )


if __name__ == "__main__":
    main()
