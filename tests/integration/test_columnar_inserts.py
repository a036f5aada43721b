"""insert_columns on both backends (ClickHouse 18.16 through clickhouse-driver's columnar inserts,
chDB 26.x through Arrow): what goes in column by column reads back as the same values inserted row
by row, for every kind of column the tables use and LowCardinality besides, and the worker's
Sink retries a columnar insert as it does a row insert."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from schemas.ddl import DATABASE
from schemas.messages import BalanceRecord, RecordBatchMessage, TxnRecord
from services.storage import StorageError
from services.storage import metrics as storage_metrics
from services.storage.async_storage import AsyncStorage
from services.storage.base import Scaled
from streams.rows import Columns, message_columns
from streams.sink import Sink

pytestmark = pytest.mark.integration

PROBE_COLUMNS = """(
    id String,
    label LowCardinality(String),
    maybe_label LowCardinality(Nullable(String)),
    name Nullable(String),
    kind Enum8('debit' = 1, 'credit' = 2),
    amount Decimal(18, 2),
    maybe_amount Nullable(Decimal(18, 2)),
    at DateTime('UTC'),
    maybe_at Nullable(DateTime('UTC')),
    tags Array(String),
    n UInt32,
    ratio Float64
)"""

WHEN = datetime(2026, 11, 25, 1, 2, 3, tzinfo=UTC)
# (label, maybe_label, name, kind, cents, maybe_cents, at, maybe_at, tags, n, ratio)
VALUES = [
    ("a", None, None, "debit", -1, None, WHEN, None, [], 0, 0.5),
    ("b", "x", "Zhang San", "credit", 99_999_999_999_999_99, 0, datetime(2000, 1, 1, tzinfo=UTC), WHEN,
     ["p", "q"], 4_294_967_295, -1.25),
    ("a", "", "", "credit", 1_234_56, -12_50, datetime(1970, 8, 23, 9, 20, 2, tzinfo=UTC),
     datetime(2106, 2, 7, 6, 28, 15, tzinfo=UTC), ["only"], 7, 1e-9),
]  # fmt: skip


def _decimal(cents: int | None) -> Decimal | None:
    return None if cents is None else Decimal(cents).scaleb(-2)


def _create(request, storage, ddl: str) -> None:
    """DDL the production schema does without: LowCardinality is experimental on 18.16 and
    needs a setting that the storage interface does not pass, so it goes through a client of its own."""
    if storage.kind != "clickhouse":
        storage.execute(ddl)
        return
    from clickhouse_driver import Client

    server = request.getfixturevalue("clickhouse_server")
    client = Client("127.0.0.1", port=server.tcp_port)
    try:
        client.execute(ddl, settings={"allow_experimental_low_cardinality_type": 1})
    finally:
        client.disconnect()


@pytest.fixture
def probe_table(request, storage):
    table = f"{DATABASE}.columnar_probe_{uuid.uuid4().hex[:12]}"
    _create(request, storage, f"CREATE TABLE {table} {PROBE_COLUMNS} ENGINE = MergeTree() ORDER BY id")
    yield table
    storage.execute(f"DROP TABLE IF EXISTS {table}")


def test_columns_read_back_as_the_same_rows_inserted_row_by_row(storage, probe_table):
    names = ("id", "label", "maybe_label", "name", "kind", "amount", "maybe_amount", "at", "maybe_at", "tags",
             "n", "ratio")  # fmt: skip
    rows = [
        [f"row-{i}", *value[:4], _decimal(value[4]), _decimal(value[5]), *value[6:]]
        for i, value in enumerate(VALUES)
    ]
    storage.insert(probe_table, names, rows)
    columns = list(zip(*VALUES, strict=True))
    inserted = storage.insert_columns(
        probe_table,
        {
            "id": [f"col-{i}" for i in range(len(VALUES))],
            "label": list(columns[0]),
            "maybe_label": list(columns[1]),
            "name": list(columns[2]),
            "kind": list(columns[3]),
            "amount": Scaled(list(columns[4]), 2),
            "maybe_amount": Scaled(list(columns[5]), 2),
            # the hot paths' DateTime values: whole epoch seconds
            "at": [int(at.timestamp()) for at in columns[6]],
            "maybe_at": [None if at is None else int(at.timestamp()) for at in columns[7]],
            "tags": list(columns[8]),
            "n": list(columns[9]),
            "ratio": list(columns[10]),
        },
    )
    assert inserted == len(VALUES)
    read = storage.query_dicts(f"SELECT * FROM {probe_table} ORDER BY id")
    by_kind = {
        kind: [{k: v for k, v in row.items() if k != "id"} for row in read if row["id"].startswith(kind)]
        for kind in ("row-", "col-")
    }
    assert len(by_kind["row-"]) == len(VALUES)
    assert by_kind["col-"] == by_kind["row-"]
    assert by_kind["col-"][1]["amount"] == Decimal("99999999999999.99")
    assert by_kind["col-"][1]["maybe_at"] == WHEN


def test_datetimes_go_in_as_datetimes_too(storage, probe_table):
    storage.insert_columns(
        probe_table,
        {"id": ["d"], "kind": ["credit"], "amount": [Decimal("1.50")], "at": [WHEN], "maybe_at": [None]},
    )
    assert storage.query(f"SELECT amount, at, maybe_at FROM {probe_table}") == [(Decimal("1.50"), WHEN, None)]


def test_a_take_of_the_worker_reads_back_as_its_rows(storage):
    """The worker's four tables, written column by column, hold what the rows say."""
    suffix = uuid.uuid4().hex[:12]
    account = f"col-{suffix}"
    records = [
        TxnRecord(
            f"{suffix}-1",
            account,
            True,
            1_234_56,
            1_764_000_100,
            "6217",
            "B002",
            "HVPS",
            "CNY",
            "Zhang San",
            "INS-1",
            "subscription",
            "P-1",
            -5_00,
        ),  # fmt: skip
        TxnRecord(
            f"{suffix}-2",
            account,
            False,
            1,
            1_764_003_700,
            "6218",
            "B002",
            "BEPS",
            "USD",
            None,
            None,
            None,
            None,
            None,
        ),  # fmt: skip
        BalanceRecord(f"{suffix}-3", account, 1_764_000_200, -12_50, None, "CNY"),
        BalanceRecord(f"{suffix}-4", account, 1_764_000_300, 0, 99_999_999_999_99, "CNY"),
    ]
    columns = Columns()
    message_columns(
        RecordBatchMessage(f"m-{suffix}", "B001", "b", 1_764_000_000, records),
        lambda a: (f"I-{suffix}", "customer_custody", "220102") if a == account else ("", "", ""),
        columns,
    )
    for table, block in columns.tables.items():
        assert storage.insert_columns(table, block.columns()) == len(block)
        key = block.names[0]
        read = storage.query(
            f"SELECT {', '.join(block.names)} FROM {table} WHERE msg_id = %(m)s AND {key} = %(k)s",
            {"m": f"m-{suffix}", "k": block.values[key][0]},
        )
        expected = [tuple(_as_read(name, value) for name, value in zip(block.names, row, strict=True))
                    for row in block.rows()]  # fmt: skip
        assert sorted(read, key=repr) == sorted(expected, key=repr), table


def _as_read(name: str, value):
    """A row's value as a query returns it: epoch seconds as datetimes, arrays as lists."""
    if name in ("booked_at", "as_of", "received_at", "window_start"):
        return datetime.fromtimestamp(value, UTC)
    return value


def test_the_sink_retries_a_columnar_insert_until_clickhouse_takes_it(request, storage):
    table = f"{DATABASE}.columnar_later_{uuid.uuid4().hex[:12]}"
    name = table.rsplit(".", 1)[-1]
    wrapped = AsyncStorage(storage)
    sink = Sink(wrapped, alerts_topic=None)

    async def scenario() -> None:
        # the first attempt finds no table; it is created while the sink waits to retry
        writing = asyncio.ensure_future(
            sink.insert_columns(table, {"id": ["x", "y"], "maybe_amount": Scaled([1, None], 2)})
        )
        await asyncio.sleep(0.2)
        assert not writing.done()
        _create(request, storage, f"CREATE TABLE {table} {PROBE_COLUMNS} ENGINE = MergeTree() ORDER BY id")
        await asyncio.wait_for(writing, timeout=30)

    errors = storage_metrics.CLICKHOUSE_ERRORS.labels(name)._value.get()
    try:
        asyncio.run(scenario())
        assert storage_metrics.CLICKHOUSE_ERRORS.labels(name)._value.get() >= errors + 1
        assert storage_metrics.CLICKHOUSE_ROWS.labels(name)._value.get() == 2
        assert storage.query(f"SELECT id, maybe_amount FROM {table} ORDER BY id") == [
            ("x", Decimal("0.01")),
            ("y", None),
        ]
    finally:
        wrapped._executor.shutdown(wait=True)  # the backend itself belongs to the session fixture
        storage.execute(f"DROP TABLE IF EXISTS {table}")


def test_columns_of_different_lengths_are_refused(storage, probe_table):
    with pytest.raises(StorageError, match="different lengths"):
        storage.insert_columns(probe_table, {"id": ["a", "b"], "n": [1]})
    assert storage.insert_columns(probe_table, {"id": [], "n": []}) == 0
    assert storage.query(f"SELECT count() FROM {probe_table}") == [(0,)]
