"""Batch intake (CONTRACT.md §2 `POST /v1/batches`, §3 records).

Order of work for one batch, and why:
1. The envelope is decoded and checked whole (bank scope, size): a batch that fails here changes
   nothing and is not remembered, so it can be corrected and re-sent under the same batch_id.
2. A batch_id seen before gets its first answer back, byte for byte, if its records are the same
   (their digest, dedup.py); with other records it is refused, 409 naming `batch_id`.
3. Each record is validated on its own; a bad record is rejected by index, the others go on. A
   record dated more than ``max_future_s`` after the gateway's clock is rejected too: its time is
   wrong, and workers would seal real days behind it.
4. Each record's account is looked up (registry.py): one registered to another bank is rejected
   naming `account_id`, one registered nowhere is accepted with a warning. Accounts this gateway
   does not know as the bank's are asked of ClickHouse first, one query for the batch.
5. Accepted record keys are reserved in memory, after the last await before the write, so two
   concurrent batches can never both accept the same record.
6. The records messages (one per partition), the keys, the digest and the answer are written to
   ClickHouse (services/gateway/outbox.py): from here the batch survives a kill of every process.
7. The messages are published; the batch is answered 202.
If 4 or 6 fails the reservation is released and the bank gets a 503 (with Retry-After) to retry
with the same batch_id. If 7 fails the batch is durable already: it is answered 202 and the outbox
publishes the messages once the broker takes them.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections import defaultdict
from datetime import UTC, datetime
from operator import attrgetter

import msgspec

from schemas.messages import (
    BalanceRecord,
    RecordBatchMessage,
    TxnRecord,
    encode_batch,
    partition_for,
)
from schemas.records import (
    MAX_RECORDS_PER_BATCH,
    Batch,
    BatchAnswer,
    RecordDecoder,
    Rejection,
)
from schemas.records import Warning as RecordWarning
from schemas.validation import ValidationFailure, decode, explain
from services.auth import Principal
from services.gateway import metrics
from services.gateway.batch_reader import read_batch
from services.gateway.dedup import BatchAnswers, RecordKeys, batch_digest
from services.gateway.errors import ApiError, unavailable
from services.gateway.group_commit import GroupCommit
from services.gateway.outbox import Outbox, OutboxMessage, outbox_rows
from services.gateway.reader import RecordReader, to_message_record  # noqa: F401 (its former home)
from services.gateway.registry import AccountOwners
from services.kafka_io import Publisher
from services.storage.async_storage import AsyncStorage
from services.storage.base import StorageError

log = logging.getLogger("fundwatch.gateway")

# reads a record into its message form, and refuses one naming a key twice (which a plain
# decoder settles silently by the last value)
_reader = RecordReader()
# the strict decoder alone, for callers that want the record as the bank wrote it (its former name)
_record_decoder = RecordDecoder()
_loose_decoder = msgspec.json.Decoder()
_answer_encoder = msgspec.json.Encoder()

DEFAULT_MAX_FUTURE_S = 3600
FOREIGN_ACCOUNT = "`account_id`: is registered to another bank"
UNREGISTERED_ACCOUNT = (
    "`account_id`: is not in the reference data; the record is accepted, but it cannot be "
    "attributed to an institution until the account is registered"
)

# Accounts whose partition is remembered at most: a bank's accounts recur batch after batch, and
# the CRC of each account id was about a quarter of building the messages. Beyond it the memory
# starts over.
_PARTITIONS_KEPT = 1 << 16

# the valid records' indexes in the batch, and the records: two lists, not a tuple per record
_Valid = tuple[list[int], list[TxnRecord | BalanceRecord]]
_Taken = tuple[list[TxnRecord | BalanceRecord], list[str], int, list[RecordWarning]]


def _span(seconds: int) -> str:
    """3600 -> "1 hour", 300 -> "5 minutes", 90 -> "90 seconds"."""
    for unit, size in (("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return f"{seconds} second{'' if seconds == 1 else 's'}"


def too_late(field: str, max_future_s: int, latest: int) -> str:
    """The rejection of a record whose ``field`` lies after ``latest`` (epoch seconds)."""
    at = datetime.fromtimestamp(latest, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"`{field}`: must be no later than {_span(max_future_s)} after the gateway's clock ({at})"


def _time_of(record: TxnRecord | BalanceRecord) -> int:
    return record.booked_at if type(record) is TxnRecord else record.as_of


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
    def __init__(
        self,
        storage: AsyncStorage,
        publisher: Publisher,
        partitions: int,
        max_future_s: int = DEFAULT_MAX_FUTURE_S,
        owners: AccountOwners | None = None,
    ) -> None:
        self.storage = storage
        self.publisher = publisher
        self.partitions = partitions
        self.max_future_s = max_future_s
        # shared with the reference service, which teaches it every account upsert
        self.owners = owners if owners is not None else AccountOwners.of(storage)
        self.keys = RecordKeys()
        self.answers = BatchAnswers()
        self.commits = GroupCommit(storage)
        self.outbox = Outbox(storage, publisher, partitions)
        # account_id -> its partition, for ``_partitions_for`` partitions
        self._partition_of: dict[str, int] = {}
        self._partitions_for = partitions
        # One lock per batch in flight, so a batch sent twice at once is answered once; a lock
        # lives only while a request holds it.
        self._locks: weakref.WeakValueDictionary[tuple[str, str], asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    async def load(self) -> None:
        keys = await self.keys.load(self.storage)
        answers = await self.answers.load(self.storage)
        accounts = await self.owners.load()
        log.info(
            "de-duplication memory loaded record_keys=%d batch_answers=%d accounts=%d",
            keys, answers, accounts,
        )  # fmt: skip

    async def submit(self, batch: Batch) -> bytes:
        key = (batch.bank_code, batch.batch_id)
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        async with lock:
            return await self._submit(batch)

    async def _submit(self, batch: Batch) -> bytes:
        digest = batch_digest(batch.records)
        first = self._first_answer(batch, digest)
        if first is not None:
            return first

        received_at = int(time.time())
        rejected: list[Rejection] = []
        valid = self._validate(batch, received_at, rejected)
        metrics.RECORDS_RECEIVED.inc(len(batch.records))
        try:
            await self._ask_owners(batch.bank_code, valid)
        except StorageError as error:
            metrics.BATCHES.labels("failed").inc()
            log.error("batch not taken bank=%s batch=%s error=%s", batch.bank_code, batch.batch_id, error)
            raise unavailable(
                "the reference data cannot be read now; re-send the batch with the same batch_id"
            ) from None
        # no await from here to the write: the keys are reserved in one go
        accepted, reserved, duplicates, warnings = self._take(batch.bank_code, valid, rejected)

        answer = _answer_encoder.encode(
            BatchAnswer(batch.batch_id, len(accepted), duplicates, rejected, warnings)
        )
        messages = self._messages(batch, accepted, received_at)
        try:
            await self._remember(batch, reserved, answer, received_at, messages, digest)
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
            raise unavailable(
                "the pipeline could not take the batch now; re-send it with the same batch_id"
            ) from None
        self.answers.put(batch.bank_code, batch.batch_id, answer, digest)
        await self.outbox.publish(messages)
        metrics.RECORDS_ACCEPTED.inc(len(accepted))
        metrics.RECORDS_DUPLICATE.inc(duplicates)
        if warnings:
            metrics.RECORDS_UNREGISTERED.labels(batch.bank_code).inc(len(warnings))
        metrics.BATCHES.labels("accepted").inc()
        log.debug(
            "batch accepted bank=%s batch=%s accepted=%d duplicates=%d rejected=%d warnings=%d",
            batch.bank_code, batch.batch_id, len(accepted), duplicates, len(rejected), len(warnings),
        )  # fmt: skip
        return answer

    def _first_answer(self, batch: Batch, digest: str) -> bytes | None:
        """The first answer to this batch_id if it was answered, for the same records; 409 for
        other records. An answer stored without a digest (before digests were kept) is returned
        whatever the records: it cannot be told apart."""
        first = self.answers.get(batch.bank_code, batch.batch_id)
        if first is None:
            return None
        known = self.answers.digest(batch.bank_code, batch.batch_id)
        if known is not None and known != digest:
            metrics.BATCHES.labels("conflict").inc()
            raise ApiError(
                409,
                "batch_id_conflict",
                f"`batch_id`: {batch.batch_id!r} was answered before for other records; a re-send must "
                "carry the same records, and other records need a batch_id of their own",
                "batch_id",
            )
        metrics.BATCHES.labels("replayed").inc()
        return first

    def _validate(self, batch: Batch, received_at: int, rejected: list[Rejection]) -> _Valid:
        """Each record read into its message form and judged on its own (reader.py); a bad one
        joins ``rejected``. The usual batch, every record plainly within the rules and none dated
        too far ahead, is read whole (batch_reader.py), to the same records."""
        max_future_s = self.max_future_s
        latest = received_at + max_future_s
        read_whole = read_batch(batch.records)
        if read_whole is not None and max(map(_time_of, read_whole)) <= latest:
            return list(range(len(read_whole))), read_whole
        read = _reader.read
        indexes: list[int] = []
        records: list[TxnRecord | BalanceRecord] = []
        for index, raw in enumerate(batch.records):
            try:
                record = read(raw)
            except (msgspec.ValidationError, msgspec.DecodeError) as error:
                failure = explain(error)
                rejected.append(Rejection(index, _record_id_of(raw), str(failure)))
                metrics.RECORDS_REJECTED.labels(failure.field or "record").inc()
                continue
            if type(record) is TxnRecord:
                field, at = "booked_at", record.booked_at
            else:
                field, at = "as_of", record.as_of
            if at > latest:
                rejected.append(Rejection(index, record.record_id, too_late(field, max_future_s, latest)))
                metrics.RECORDS_REJECTED.labels(field).inc()
                continue
            indexes.append(index)
            records.append(record)
        return indexes, records

    async def _ask_owners(self, bank_code: str, valid: _Valid) -> None:
        """Ask ClickHouse, in one go, for the accounts of the batch not known as the bank's."""
        doubtful = self.owners.doubtful(bank_code, {record.account_id for record in valid[1]})
        if doubtful:
            await self.owners.ask(doubtful)

    def _take(self, bank_code: str, valid: _Valid, rejected: list[Rejection]) -> _Taken:
        """The records to accept, their keys (reserved now), the duplicates and the warnings."""
        owner_of = self.owners.banks.get
        seen = self.keys.bank(bank_code)
        accepted: list[TxnRecord | BalanceRecord] = []
        reserved: list[str] = []
        warnings: list[RecordWarning] = []
        duplicates = foreign = 0
        for index, record in zip(*valid, strict=True):
            owner = owner_of(record.account_id)
            if owner is not None and owner != bank_code:
                rejected.append(Rejection(index, record.record_id, FOREIGN_ACCOUNT))
                foreign += 1
                continue
            record_id = record.record_id
            if record_id in seen:
                duplicates += 1
                continue
            seen.add(record_id)
            reserved.append(record_id)
            accepted.append(record)
            if owner is None:
                warnings.append(RecordWarning(index, record_id, UNREGISTERED_ACCOUNT))
        if foreign:
            metrics.RECORDS_REJECTED.labels("account_id").inc(foreign)
            rejected.sort(key=attrgetter("index"))  # the answer lists rejections in the batch's order
        return accepted, reserved, duplicates, warnings

    def _messages(
        self, batch: Batch, records: list[TxnRecord | BalanceRecord], received_at: int
    ) -> list[OutboxMessage]:
        """The batch's records as messages: one per partition, each id stable for the batch."""
        partitions = self.partitions
        partition_of = self._partition_of
        if len(partition_of) > _PARTITIONS_KEPT or self._partitions_for != partitions:
            partition_of.clear()
            self._partitions_for = partitions
        by_partition: dict[int, list[TxnRecord | BalanceRecord]] = defaultdict(list)
        for record in records:
            account_id = record.account_id
            partition = partition_of.get(account_id)
            if partition is None:
                partition = partition_of[account_id] = partition_for(account_id, partitions)
            by_partition[partition].append(record)
        messages = []
        for partition, part in sorted(by_partition.items()):
            msg_id = f"{batch.bank_code}/{batch.batch_id}/{partition}"
            value = encode_batch(
                RecordBatchMessage(msg_id, batch.bank_code, batch.batch_id, received_at, part)
            )
            messages.append(OutboxMessage(msg_id, partition, value))
        return messages

    async def _remember(
        self,
        batch: Batch,
        record_ids: list[str],
        answer: bytes,
        received_at: int,
        messages: list[OutboxMessage],
        digest: str,
    ) -> None:
        # DateTime columns take epoch seconds as they are (services/storage/base.py)
        await self.commits.write_batch(
            outbox_rows(messages, received_at), batch.bank_code, batch.batch_id, record_ids,
            answer.decode("utf-8"), digest, received_at,
        )  # fmt: skip
