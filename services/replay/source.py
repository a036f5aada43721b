"""Reading back what the workers stored: the reference data, and the raw records of a period as
the messages the workers took them in, a slice at a time. Only SELECTs: a replay writes nothing.

A raw row keeps its message (``bank_code``, ``batch_id``, ``msg_id``, ``received_at``;
streams/rows.py), so the messages come back whole. Two things the rows do not keep:

- the order of messages received in the same second (``received_at`` is whole seconds): they
  follow their msg_id (``<bank>/<batch_id>/<partition>``), the partition compared as a number;
- the order of records within a message: they follow their event time, then record_id. A
  message is judged once, after all its records (models/stepping.judge_messages), and an alert's
  evidence lists its record ids sorted; shuffling the records within every message of three
  simulated days of a province (673 alerts) changed no alert's figures.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec

from schemas.ddl import DATABASE
from schemas.fields import amount_to_cents
from schemas.messages import BalanceRecord, RecordBatchMessage, TxnRecord
from schemas.reference import REFERENCE_KINDS
from services.storage.base import Storage, StorageError

RAW_TABLES = ("raw_transactions", "raw_balances")

# Columns in the order _txn() and _balance() take them; times as epoch seconds and amounts as
# text, which both backends hand over without a per-value conversion.
_MESSAGE_COLUMNS = "bank_code, batch_id, msg_id, toUInt32(received_at)"
_TXN_SQL = f"""SELECT {_MESSAGE_COLUMNS}, record_id, account_id, direction = 'credit', toString(amount),
           toUInt32(booked_at), counterparty_account, counterparty_bank, channel, currency,
           counterparty_name, instruction_id, purpose, product_id, toString(balance_after)
    FROM {DATABASE}.raw_transactions FINAL
    WHERE booked_at >= %(since)s AND booked_at < %(until)s
      AND received_at >= %(first)s AND received_at < %(end)s"""
_BALANCE_SQL = f"""SELECT {_MESSAGE_COLUMNS}, record_id, account_id, toUInt32(as_of), toString(balance),
           toString(customer_liabilities), currency
    FROM {DATABASE}.raw_balances FINAL
    WHERE as_of >= %(since)s AND as_of < %(until)s
      AND received_at >= %(first)s AND received_at < %(end)s"""
_EVENT_TIME = {"raw_transactions": "booked_at", "raw_balances": "as_of"}

log = logging.getLogger("fundwatch.replay")


class ReadOnly:
    """The storage as a replay sees it: queries only. It has no write method at all, so a write
    cannot reach ClickHouse through it, whatever the Storage interface grows."""

    def __init__(self, inner: Storage) -> None:
        self._inner = inner
        self.kind = inner.kind

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple]:
        if not sql.lstrip().upper().startswith("SELECT"):
            raise StorageError("fundwatch replay only reads: a statement other than SELECT was refused")
        return self._inner.query(sql, params)


def check_tables(storage: ReadOnly) -> None:
    """Raise, naming them, when the tables a replay reads are missing (a store no FundWatch
    process has migrated: the replay does not create them)."""
    needed = {*RAW_TABLES, *(kind.table for kind in REFERENCE_KINDS.values())}
    present = {
        row[0]
        for row in storage.query("SELECT name FROM system.tables WHERE database = %(db)s", {"db": DATABASE})
    }
    missing = sorted(needed - present)
    if missing:
        raise StorageError(
            f"no {', '.join(f'{DATABASE}.{t}' for t in missing)} in this store: "
            "is it the ClickHouse (or chDB directory) FundWatch writes?"
        )


def load_references(storage: ReadOnly) -> dict[str, list[dict[str, Any]]]:
    """Every reference item as stored now (the newest upsert of each), by kind: the documents the
    gateway publishes to the workers (services/gateway/reference.py)."""
    return {path: _items(storage, kind) for path, kind in REFERENCE_KINDS.items()}


def _items(storage: ReadOnly, kind: Any) -> list[dict[str, Any]]:
    """The stored documents of one kind that name their item; another row (an empty or removed
    document) is no item and is left out, counted in the log."""
    items, other = [], 0
    for (doc,) in storage.query(f"SELECT doc FROM {DATABASE}.{kind.table} FINAL"):
        item = msgspec.json.decode(doc) if doc else None
        if isinstance(item, dict) and item.get(kind.key):
            items.append(item)
        else:
            other += 1
    if other:
        log.warning("reference rows without an item left out kind=%s rows=%d", kind.path, other)
    return items


def _utc(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def records_per_second(storage: ReadOnly, since: datetime, until: datetime) -> list[tuple[int, int]]:
    """(received_at second, records) of the raw records whose event time lies in [since, until),
    in time order: what the slices are cut from."""
    sizes: dict[int, int] = defaultdict(int)
    for table in RAW_TABLES:
        event = _EVENT_TIME[table]
        rows = storage.query(
            f"""SELECT toUInt32(received_at) AS at, count() FROM {DATABASE}.{table} FINAL
                WHERE {event} >= %(since)s AND {event} < %(until)s GROUP BY at""",
            {"since": since, "until": until},
        )
        for at, count in rows:
            sizes[int(at)] += int(count)
    return sorted(sizes.items())


def plan_slices(sizes: Sequence[tuple[int, int]], records: int) -> list[tuple[int, int, int]]:
    """Runs of whole seconds of ``sizes`` (sorted) holding at most ``records`` records each, or
    one second when that second alone holds more: (first second, end second exclusive, records).
    A second is never split, so no message is (its records share their received_at)."""
    slices: list[tuple[int, int, int]] = []
    first, last, held = None, 0, 0
    for at, count in sizes:
        if first is not None and held + count > records:
            slices.append((first, last + 1, held))
            first, held = None, 0
        if first is None:
            first = at
        last, held = at, held + count
    if first is not None:
        slices.append((first, last + 1, held))
    return slices


def _cents(text: str | None) -> int | None:
    return None if text is None else amount_to_cents(text)


def _txn(row: Sequence[Any]) -> TxnRecord:
    return TxnRecord(
        row[4], row[5], bool(row[6]), amount_to_cents(row[7]), int(row[8]), row[9], row[10], row[11],
        row[12], row[13], row[14], row[15], row[16], _cents(row[17]),
    )  # fmt: skip


def _balance(row: Sequence[Any]) -> BalanceRecord:
    return BalanceRecord(row[4], row[5], int(row[6]), amount_to_cents(row[7]), _cents(row[8]), row[9])


def _event_time(record: TxnRecord | BalanceRecord) -> int:
    return record.booked_at if type(record) is TxnRecord else record.as_of


def message_order(message: RecordBatchMessage) -> tuple[int, str, int]:
    """Messages as the workers took them: by received_at, then msg_id with its partition (the
    last part) as a number, so partition 10 follows partition 9 as the gateway sent them."""
    head, _, tail = message.msg_id.rpartition("/")
    if tail.isdigit():
        return (message.received_at, head, int(tail))
    return (message.received_at, message.msg_id, -1)


def assemble(
    txn_rows: Sequence[Sequence[Any]], balance_rows: Sequence[Sequence[Any]]
) -> list[RecordBatchMessage]:
    """The messages the rows of both raw tables came in, in the order the workers took them."""
    messages: dict[str, RecordBatchMessage] = {}
    for rows, build in ((txn_rows, _txn), (balance_rows, _balance)):
        for row in rows:
            msg_id = row[2]
            message = messages.get(msg_id)
            if message is None:
                message = messages[msg_id] = RecordBatchMessage(msg_id, row[0], row[1], int(row[3]), [])
            message.records.append(build(row))
    ordered = sorted(messages.values(), key=message_order)
    for message in ordered:
        message.records.sort(key=lambda r: (_event_time(r), r.record_id))
    return ordered


def read_slice(
    storage: ReadOnly, since: datetime, until: datetime, first: int, end: int
) -> list[RecordBatchMessage]:
    """The messages received in seconds [first, end), with their records of [since, until)."""
    params = {"since": since, "until": until, "first": _utc(first), "end": _utc(end)}
    return assemble(storage.query(_TXN_SQL, params), storage.query(_BALANCE_SQL, params))


def read_messages(
    storage: ReadOnly, since: datetime, until: datetime, slices: Sequence[tuple[int, int, int]]
) -> Iterator[list[RecordBatchMessage]]:
    """Each slice's messages in turn: a week of a province is never in memory at once."""
    for first, end, _ in slices:
        yield read_slice(storage, since, until, first, end)
