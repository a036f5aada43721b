"""Batch intake (CONTRACT.md §2 `POST /v1/batches`, §3 records).

Order of work for one batch, and why:
1. The envelope is decoded and checked whole (bank scope, size): a batch that fails here changes
   nothing and is not remembered, so it can be corrected and re-sent under the same batch_id.
2. A batch_id seen before gets its first answer back, byte for byte.
3. Each record is validated on its own; a bad record is rejected by index, the others go on.
4. Accepted record keys are reserved in memory before any await, so two concurrent batches can
   never both accept the same record.
5. The records messages (one per partition), the keys and the answer are written to ClickHouse
   (services/gateway/outbox.py): from here the batch survives a kill of every process.
6. The messages are published; the batch is answered 202.
If 5 fails the reservation is released and the bank gets a 503 to retry with the same batch_id.
If 6 fails the batch is durable already: it is answered 202 and the outbox publishes the messages
once the broker takes them.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections import defaultdict

import msgspec

from schemas.fields import amount_to_cents, epoch_seconds
from schemas.messages import (
    BalanceRecord,
    RecordBatchMessage,
    TxnRecord,
    encode_batch,
    partition_for,
)
from schemas.records import (
    MAX_RECORDS_PER_BATCH,
    Balance,
    Batch,
    BatchAnswer,
    Direction,
    Record,
    Rejection,
    Transaction,
)
from schemas.validation import ValidationFailure, decode, explain
from services.auth import Principal
from services.gateway import metrics
from services.gateway.dedup import BatchAnswers, RecordKeys
from services.gateway.errors import ApiError
from services.gateway.group_commit import GroupCommit
from services.gateway.outbox import Outbox, OutboxMessage, outbox_rows
from services.kafka_io import Publisher
from services.storage.async_storage import AsyncStorage
from services.storage.base import StorageError

log = logging.getLogger("fundwatch.gateway")

_record_decoder = msgspec.json.Decoder(Record)
_loose_decoder = msgspec.json.Decoder()
_answer_encoder = msgspec.json.Encoder()


def to_message_record(record: Transaction | Balance) -> TxnRecord | BalanceRecord:
    """The validated record in the form workers consume: cents and epoch seconds.

    Positional arguments in the fields' order: this runs once per accepted record."""
    if type(record) is Transaction:
        balance_after = record.balance_after
        return TxnRecord(
            record.record_id,
            record.account_id,
            record.direction is Direction.credit,
            amount_to_cents(record.amount),
            epoch_seconds(record.booked_at),
            record.counterparty_account,
            record.counterparty_bank,
            record.channel.value,
            record.currency,
            record.counterparty_name,
            record.instruction_id,
            record.purpose,
            record.product_id,
            None if balance_after is None else amount_to_cents(balance_after),
        )
    liabilities = record.customer_liabilities
    return BalanceRecord(
        record.record_id,
        record.account_id,
        epoch_seconds(record.as_of),
        amount_to_cents(record.balance),
        None if liabilities is None else amount_to_cents(liabilities),
        record.currency,
    )


def _record_id_of(raw: bytes) -> str | None:
    """The record_id of a record that failed validation, when one can be read at all."""
    try:
        loose = _loose_decoder.decode(raw)
    except msgspec.DecodeError:
        return None
    rid = loose.get("record_id") if isinstance(loose, dict) else None
    return rid if isinstance(rid, str) else None


def parse_batch(body: bytes, principal: Principal) -> Batch:
    """The envelope, checked whole; raises ApiError for anything that rejects the whole batch."""
    try:
        batch = decode(body, Batch)
    except ValidationFailure as failure:
        status = 400 if failure.message.startswith("is not valid JSON") else 422
        raise ApiError(status, "invalid_batch", str(failure), failure.field) from None
    if principal.role != "bank":
        raise ApiError(403, "forbidden", "only a bank token may push batches")
    if batch.bank_code != principal.bank_code:
        raise ApiError(
            403,
            "forbidden",
            f"this token pushes for bank {principal.bank_code!r}, not {batch.bank_code!r}",
            "bank_code",
        )
    if len(batch.records) > MAX_RECORDS_PER_BATCH:
        raise ApiError(
            413, "too_many_records",
            f"a batch holds at most {MAX_RECORDS_PER_BATCH} records, this one {len(batch.records)}", "records",
        )  # fmt: skip
    return batch


class BatchIntake:
    def __init__(self, storage: AsyncStorage, publisher: Publisher, partitions: int) -> None:
        self.storage = storage
        self.publisher = publisher
        self.partitions = partitions
        self.keys = RecordKeys()
        self.answers = BatchAnswers()
        self.commits = GroupCommit(storage)
        self.outbox = Outbox(storage, publisher)
        # One lock per batch in flight, so a batch sent twice at once is answered once; a lock
        # lives only while a request holds it.
        self._locks: weakref.WeakValueDictionary[tuple[str, str], asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    async def load(self) -> None:
        keys = await self.keys.load(self.storage)
        answers = await self.answers.load(self.storage)
        log.info("de-duplication memory loaded record_keys=%d batch_answers=%d", keys, answers)

    async def submit(self, batch: Batch) -> bytes:
        key = (batch.bank_code, batch.batch_id)
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        async with lock:
            return await self._submit(batch)

    async def _submit(self, batch: Batch) -> bytes:
        first = self.answers.get(batch.bank_code, batch.batch_id)
        if first is not None:
            metrics.BATCHES.labels("replayed").inc()
            return first

        received_at = int(time.time())
        seen = self.keys.bank(batch.bank_code)
        rejected: list[Rejection] = []
        accepted: list[TxnRecord | BalanceRecord] = []
        reserved: list[str] = []
        duplicates = 0
        for index, raw in enumerate(batch.records):
            try:
                record = _record_decoder.decode(raw)
            except (msgspec.ValidationError, msgspec.DecodeError) as error:
                failure = explain(error)
                rejected.append(Rejection(index, _record_id_of(raw), str(failure)))
                metrics.RECORDS_REJECTED.labels(failure.field or "record").inc()
                continue
            if record.record_id in seen:
                duplicates += 1
                continue
            seen.add(record.record_id)
            reserved.append(record.record_id)
            accepted.append(to_message_record(record))
        metrics.RECORDS_RECEIVED.inc(len(batch.records))

        answer = _answer_encoder.encode(BatchAnswer(batch.batch_id, len(accepted), duplicates, rejected))
        messages = self._messages(batch, accepted, received_at)
        try:
            await self._remember(batch, reserved, answer, received_at, messages)
        except StorageError as error:
            self.keys.release(batch.bank_code, reserved)
            metrics.BATCHES.labels("failed").inc()
            log.error(
                "batch not taken bank=%s batch=%s records=%d error=%s",
                batch.bank_code,
                batch.batch_id,
                len(accepted),
                error,
            )
            raise ApiError(
                503,
                "unavailable",
                "the pipeline could not take the batch now; re-send it with the same batch_id",
            ) from None
        self.answers.put(batch.bank_code, batch.batch_id, answer)
        await self.outbox.publish(messages)
        metrics.RECORDS_ACCEPTED.inc(len(accepted))
        metrics.RECORDS_DUPLICATE.inc(duplicates)
        metrics.BATCHES.labels("accepted").inc()
        log.debug(
            "batch accepted bank=%s batch=%s accepted=%d duplicates=%d rejected=%d",
            batch.bank_code, batch.batch_id, len(accepted), duplicates, len(rejected),
        )  # fmt: skip
        return answer

    def _messages(
        self, batch: Batch, records: list[TxnRecord | BalanceRecord], received_at: int
    ) -> list[OutboxMessage]:
        """The batch's records as messages: one per partition, each id stable for the batch."""
        by_partition: dict[int, list[TxnRecord | BalanceRecord]] = defaultdict(list)
        for record in records:
            by_partition[partition_for(record.account_id, self.partitions)].append(record)
        messages = []
        for partition, part in sorted(by_partition.items()):
            msg_id = f"{batch.bank_code}/{batch.batch_id}/{partition}"
            value = encode_batch(
                RecordBatchMessage(msg_id, batch.bank_code, batch.batch_id, received_at, part)
            )
            messages.append(OutboxMessage(msg_id, partition, value))
        return messages

    async def _remember(
        self, batch: Batch, record_ids: list[str], answer: bytes, received_at: int, messages: list[OutboxMessage]
    ) -> None:
        # DateTime columns take epoch seconds as they are (services/storage/base.py)
        await self.commits.write(
            outbox_rows(messages, received_at),
            [[batch.bank_code, rid, batch.batch_id, received_at] for rid in record_ids],
            [batch.bank_code, batch.batch_id, answer.decode("utf-8"), received_at],
        )
