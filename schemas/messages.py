"""What travels on the records topic: sub-batches of already validated records.

One Kafka message carries every accepted record of one batch that falls on one partition
(hundreds to thousands), because the cost of a stream processor is per message and per state
write, not per byte (DESIGN.md, Performance). The gateway has parsed amounts and times already,
so workers get integer cents and epoch seconds and never parse text on the hot path.
Records are encoded as arrays, not objects, to keep messages small and decoding fast.
"""

from __future__ import annotations

import zlib

import msgspec

RECORDS_TOPIC = "fw.records"
ALERTS_TOPIC = "fw.alerts"
# Records re-keyed by institution for the product- and institution-level detectors, and product
# reviews after reference changes: every record of an institution meets its state in one place.
INSTITUTION_TOPIC = "fw.institution-records"


# Records carry strings, numbers and None only, so they can never be part of a reference cycle:
# gc=False keeps them out of the cyclic collector, which would otherwise count and walk every
# record of a take (tens of thousands at a time) on its way to the states that outlive it.
class TxnRecord(msgspec.Struct, array_like=True, tag="t", gc=False):
    record_id: str
    account_id: str
    credit: bool
    amount_cents: int
    booked_at: int  # epoch seconds, UTC
    counterparty_account: str
    counterparty_bank: str
    channel: str
    currency: str
    counterparty_name: str | None
    instruction_id: str | None
    purpose: str | None
    product_id: str | None
    balance_after_cents: int | None
    # The bank that pushed the record, stamped by the worker on the records it re-keys by
    # institution (streams/records.py): an institution's detectors follow each bank's progress
    # (models/detectors/common.advance_sources). Empty on the records topic, where the message's
    # bank_code says it; a trailing default, so older messages decode as they are.
    bank_code: str = ""


class BalanceRecord(msgspec.Struct, array_like=True, tag="b", gc=False):
    record_id: str
    account_id: str
    as_of: int  # epoch seconds, UTC
    balance_cents: int
    customer_liabilities_cents: int | None
    currency: str


class RecordBatchMessage(msgspec.Struct, array_like=True):
    msg_id: str  # "<bank_code>/<batch_id>/<partition>": stable if the gateway ever re-sends it
    bank_code: str
    batch_id: str
    received_at: int  # epoch seconds, UTC
    records: list[TxnRecord | BalanceRecord]


class InstitutionPart(msgspec.Struct, array_like=True):
    institution_id: str
    records: list[TxnRecord]
    # Products just upserted (a review): newer than the worker's reference view may be yet.
    products: list[dict] = []
    # The id the institution agent knows these records by ("<records msg_id>/i"), when the
    # message carries the parts of several records messages (a take's forward,
    # streams/forwards.py); empty: the message's own id.
    msg_id: str = ""


class InstitutionMessage(msgspec.Struct, array_like=True):
    # "<records msg_id>/i" for one records message's records, the first part's id for a take's
    # forward, "review/<digest>" for a review
    msg_id: str
    received_at: int  # epoch seconds, UTC
    parts: list[InstitutionPart]


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(RecordBatchMessage)
_institution_decoder = msgspec.json.Decoder(InstitutionMessage)


def encode_batch(message: RecordBatchMessage) -> bytes:
    return _encoder.encode(message)


def decode_batch(data: bytes) -> RecordBatchMessage:
    return _decoder.decode(data)


def encode_institution_message(message: InstitutionMessage) -> bytes:
    return _encoder.encode(message)


def decode_institution_message(data: bytes) -> InstitutionMessage:
    return _institution_decoder.decode(data)


def partition_for(account_id: str, partitions: int) -> int:
    """The partition that owns an account: every record and all state of it live there.

    CRC32 is stable across processes and Python versions, unlike ``hash()``.
    """
    return zlib.crc32(account_id.encode("utf-8")) % partitions
