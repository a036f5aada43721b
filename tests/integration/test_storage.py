"""The storage interface on both backends: a real clickhouse-server (18.16) and chDB (26.x)."""

from __future__ import annotations

import asyncio
import threading
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from schemas.ddl import DATABASE, MIGRATIONS
from services.storage import StorageError, migrate, open_storage
from services.storage.async_storage import AsyncStorage

pytestmark = pytest.mark.integration


def test_migrations_are_recorded_once(storage):
    assert migrate(storage) == []  # already applied by the fixture; a second start applies nothing
    versions = [
        row[0]
        for row in storage.query(f"SELECT version FROM {DATABASE}.schema_migrations FINAL ORDER BY version")
    ]
    assert versions == [m.version for m in MIGRATIONS]


def test_every_table_of_the_contract_exists(storage):
    tables = {
        row[0]
        for row in storage.query("SELECT name FROM system.tables WHERE database = %(db)s", {"db": DATABASE})
    }
    for needed in ("raw_transactions", "raw_balances", "agg_account_ccy", "agg_institution_ccy", "alerts", "alert_events",
                   "deliveries", "subscriptions", "tokens", "batch_answers", "ingest_keys", "ref_institutions",
                   "ref_accounts", "ref_related_parties", "ref_products", "account_state"):  # fmt: skip
        assert needed in tables, needed


def test_values_round_trip_with_their_python_types(storage):
    account = f"acc-{uuid.uuid4().hex}"
    when = datetime(2026, 11, 25, 1, 2, 3, tzinfo=UTC)
    storage.insert(
        f"{DATABASE}.raw_balances",
        ("bank_code", "record_id", "account_id", "as_of", "balance", "customer_liabilities", "currency",
         "batch_id", "msg_id", "received_at", "institution_id", "account_role", "region"),
        [["B1", "r1", account, when, Decimal("-12.50"), None, "CNY", "b", "m", when, "", "", ""],
         ["B1", "r2", account, when, Decimal("99999999999.99"), Decimal("0.01"), "CNY", "b", "m", when, "I", "x", "22"]],
    )  # fmt: skip
    rows = storage.query_dicts(
        f"SELECT record_id, as_of, balance, customer_liabilities FROM {DATABASE}.raw_balances "
        "WHERE account_id = %(a)s ORDER BY record_id",
        {"a": account},
    )
    assert rows == [
        {"record_id": "r1", "as_of": when, "balance": Decimal("-12.50"), "customer_liabilities": None},
        {
            "record_id": "r2",
            "as_of": when,
            "balance": Decimal("99999999999.99"),
            "customer_liabilities": Decimal("0.01"),
        },
    ]


def test_datetimes_go_in_as_epoch_seconds_too(storage):
    # the hot paths write DateTime values as whole epoch seconds (services/storage/base.py)
    account = f"acc-{uuid.uuid4().hex}"
    cases = {
        "r1": datetime(2026, 11, 25, 1, 2, 3, tzinfo=UTC),
        "r2": datetime(2000, 1, 1, tzinfo=UTC),  # nine digits: not read as a YYYYMMDD date
        "r3": datetime(1970, 8, 23, 9, 20, 2, tzinfo=UTC),  # 20251202 seconds
    }
    storage.insert(
        f"{DATABASE}.raw_balances",
        ("bank_code", "record_id", "account_id", "as_of", "balance", "currency", "batch_id", "msg_id",
         "received_at", "institution_id", "account_role", "region"),
        [["B1", rid, account, int(when.timestamp()), Decimal("1.00"), "CNY", "b", "m", when, "", "", ""]
         for rid, when in cases.items()],
    )  # fmt: skip
    rows = storage.query(
        f"SELECT record_id, as_of FROM {DATABASE}.raw_balances WHERE account_id = %(a)s ORDER BY record_id",
        {"a": account},
    )
    assert rows == sorted(cases.items())


def test_decimal_sums_are_exact(storage):
    account = f"acc-{uuid.uuid4().hex}"
    when = datetime(2026, 11, 25, tzinfo=UTC)
    amounts = [Decimal("0.10")] * 1000 + [Decimal("1234567.89"), Decimal("0.01")]
    storage.insert(
        f"{DATABASE}.agg_account_ccy",
        (
            "account_id",
            "grain",
            "window_start",
            "currency",
            "msg_id",
            "institution_id",
            "inflow",
            "outflow",
            "n_in",
            "n_out",
            "counterparties",
        ),
        [
            [account, "day", when, "CNY", f"m{i}", "", amount, Decimal("0"), 1, 0, [f"c{i % 7}"]]
            for i, amount in enumerate(amounts)
        ],
    )
    ((total, distinct),) = storage.query(
        f"SELECT sum(inflow), length(groupUniqArrayArray(counterparties)) FROM {DATABASE}.agg_account_ccy FINAL "
        "WHERE account_id = %(a)s",
        {"a": account},
    )
    assert total == Decimal("1234667.90")  # floats would give 1234667.8999999...
    assert distinct == 7


def test_replacing_tables_collapse_rewrites_of_the_same_key(storage):
    """What makes a replayed Kafka message harmless: the same rows under the same key collapse."""
    account = f"acc-{uuid.uuid4().hex}"
    when = datetime(2026, 11, 25, tzinfo=UTC)
    row = [account, "hour", when, "CNY", "msg-1", "", Decimal("10.00"), Decimal("0"), 1, 0, ["c"]]
    columns = (
        "account_id",
        "grain",
        "window_start",
        "currency",
        "msg_id",
        "institution_id",
        "inflow",
        "outflow",
        "n_in",
        "n_out",
        "counterparties",
    )
    storage.insert(f"{DATABASE}.agg_account_ccy", columns, [row])
    storage.insert(f"{DATABASE}.agg_account_ccy", columns, [row])
    ((total,),) = storage.query(
        f"SELECT sum(inflow) FROM {DATABASE}.agg_account_ccy FINAL WHERE account_id = %(a)s", {"a": account}
    )
    assert total == Decimal("10.00")


def test_parameters_are_escaped_not_spliced(storage):
    hostile = "x'); DROP TABLE fundwatch.tokens; --\\\n"
    rows = storage.query("SELECT %(v)s, length(%(v)s)", {"v": hostile})
    assert rows == [(hostile, len(hostile.encode("utf-8")))]
    assert storage.query(
        f"SELECT count() FROM system.tables WHERE database = '{DATABASE}' AND name = 'tokens'"
    ) == [(1,)]


def test_errors_name_the_backend_and_the_cause(storage):
    with pytest.raises(StorageError) as caught:
        storage.query("SELECT no_such_column FROM system.one")
    assert "no_such_column" in str(caught.value)


def test_unknown_url_scheme_is_refused():
    with pytest.raises(StorageError, match="clickhouse:// or chdb://"):
        open_storage("mysql://localhost/db")


def test_embedded_tables_write_small_parts_packed(storage):
    """chDB: every MergeTree table stores a small insert as one packed part (tune_tables, run by
    migrate); the server's tables are left as its configuration makes them."""
    if storage.kind != "chdb":
        pytest.skip("a clickhouse-server keeps its operators' settings")
    untuned = storage.query(
        "SELECT name FROM system.tables WHERE database = %(db)s AND engine LIKE '%%MergeTree'"
        " AND position(create_table_query, 'min_bytes_for_full_part_storage') = 0",
        {"db": DATABASE},
    )
    assert untuned == []
    account = f"acc-{uuid.uuid4().hex}"
    when = datetime(2026, 11, 25, 1, 2, 3, tzinfo=UTC)
    storage.insert(
        f"{DATABASE}.raw_balances",
        ("bank_code", "record_id", "account_id", "as_of", "balance", "customer_liabilities", "currency",
         "batch_id", "msg_id", "received_at", "institution_id", "account_role", "region"),
        [["B1", "r1", account, when, Decimal("1.00"), None, "CNY", "b", "m", when, "", "", ""]],
    )  # fmt: skip
    kinds = storage.query(
        "SELECT DISTINCT part_storage_type FROM system.parts WHERE database = %(db)s"
        " AND table = 'raw_balances' AND active",
        {"db": DATABASE},
    )
    assert kinds == [("Packed",)]


def test_large_inserts_read_back_exactly_as_small_ones(storage):
    # on chDB an insert of a quarter of a megabyte or more goes in as RowBinary from a file
    # (services/storage/rowbinary.py), a smaller one inline as JSON: the same values either way
    tag = uuid.uuid4().hex
    payload = '{"records":[["t","R-1","红",true,125,"\\u0000"]],"q":"\'\\\\"}' * 400
    rows = [[f"{tag}/{i}", i, payload if i % 2 else "", 1_764_000_000 + i] for i in range(40)]
    storage.insert(f"{DATABASE}.outbox", ("msg_id", "partition", "payload", "received_at"), rows)
    storage.insert(f"{DATABASE}.outbox", ("msg_id", "partition", "payload", "received_at"), [[f"{tag}/x", 7, payload, 1]])
    stored = storage.query(
        f"SELECT msg_id, partition, payload, toUnixTimestamp(received_at) FROM {DATABASE}.outbox "
        "WHERE startsWith(msg_id, %(tag)s) ORDER BY partition, msg_id",
        {"tag": tag},
    )
    expected = sorted([tuple(row) for row in rows] + [(f"{tag}/x", 7, payload, 1)], key=lambda r: (r[1], r[0]))
    assert stored == expected
    if storage.kind == "chdb":  # the large insert went through its file, which is gone
        inserts = Path(storage.path) / "fundwatch-inserts"
        assert inserts.is_dir() and not any(inserts.iterdir())
    ids = [f"{tag}-{i}" for i in range(20_000)]
    storage.insert(
        f"{DATABASE}.batches", ("bank_code", "batch_id", "answer", "digest", "record_ids", "received_at"),
        [["B1", tag, '{"accepted":20000}', "d", ids, 1_764_000_000]],
    )  # fmt: skip
    assert storage.query(
        f"SELECT record_ids FROM {DATABASE}.batches WHERE batch_id = %(tag)s", {"tag": tag}
    ) == [(ids,)]


def test_several_inserts_in_one_call_are_written_in_order_and_stop_at_the_first_failure(storage):
    tag = uuid.uuid4().hex
    outbox = (f"{DATABASE}.outbox", ("msg_id", "partition", "payload", "received_at"))
    batches = (f"{DATABASE}.batches", ("bank_code", "batch_id", "answer", "digest", "record_ids", "received_at"))
    threads: set[int] = set()
    insert = storage.insert

    def noting_thread(*args):
        threads.add(threading.get_ident())
        return insert(*args)

    async def work(wrapped):
        counts = await wrapped.insert_all(
            [(*outbox, [[f"{tag}/1", 1, "{}", 0], [f"{tag}/2", 2, "{}", 0]]), (*batches, [["B1", tag, "{}", "", [], 0]])]
        )
        with pytest.raises(StorageError):
            await wrapped.insert_all(
                [(*outbox, [[f"{tag}/3", 3, "{}", 0]]), (f"{DATABASE}.no_such_table", ("x",), [[1]]),
                 (*batches, [["B1", f"{tag}-after", "{}", "", [], 0]])]
            )  # fmt: skip
        return counts

    storage.insert = noting_thread
    wrapped = AsyncStorage(storage)
    try:
        counts = asyncio.run(work(wrapped))
    finally:
        wrapped._executor.shutdown(wait=True)
        del storage.insert
    assert counts == [2, 1]
    assert len(threads) == 1 and threading.get_ident() not in threads  # the storage thread, once
    assert storage.query(
        f"SELECT msg_id FROM {DATABASE}.outbox WHERE startsWith(msg_id, %(tag)s) ORDER BY msg_id", {"tag": tag}
    ) == [(f"{tag}/1",), (f"{tag}/2",), (f"{tag}/3",)]
    assert storage.query(
        f"SELECT batch_id FROM {DATABASE}.batches WHERE startsWith(batch_id, %(tag)s)", {"tag": tag}
    ) == [(tag,)]
