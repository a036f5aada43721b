"""A take's records for the institution agent: one message per institution partition per take.

The transactions of each records message that institution-level detectors need
(models/institution_detection.institution_records) go on to the institution topic, stamped with
the bank that pushed them, on their institution's partition. Sent as one message per records
message and partition, a take of 64 records messages made about 250 sends, each a pass through
Faust's and the Kafka client's send path on the worker's one thread, and as many messages for
the institution agent to decode and take. One message per partition per take carries the same
parts, each named by the records message it came from (``<records msg_id>/i``, the id a part had
as a message of its own): the institution agent skips a part it has applied by that id, so a
records message redelivered in another take is still recognised, and marks each records
message's part on that partition handled (streams/institutions.py).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from models.detectors import DetectContext
from models.institution_detection import institution_records
from schemas.messages import InstitutionMessage, InstitutionPart, encode_institution_message, partition_for

FORWARDED = "/i"  # the suffix of a records message's id on the institution topic
# A take's parts for one partition are split over several messages above this size: well under
# the largest message the broker takes (services/kafka_io.py), and a message the institution
# agent decodes in a few milliseconds.
FORWARD_MAX_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class Forward:
    partition: int
    msg_id: str  # the first part's id: the message's key
    value: bytes  # an encoded InstitutionMessage


def forwarded_id(msg_id: str) -> str:
    return msg_id + FORWARDED


def take_forwards(
    context: DetectContext, messages: Sequence[Any], partitions: int
) -> tuple[list[Forward], list[int]]:
    """The institution messages of a take's records messages, in partition order, and for each
    records message (in the take's order) how many partitions its records went to: its parts,
    which its done mark counts (streams/sink.py mark_done)."""
    by_partition: dict[int, list[InstitutionPart]] = defaultdict(list)
    received: dict[int, int] = {}
    spread: list[int] = []
    for message in messages:
        touched: set[int] = set()
        part_id = forwarded_id(message.msg_id)
        for institution_id, records in sorted(institution_records(context, message.records).items()):
            if message.bank_code:
                records = [msgspec.structs.replace(record, bank_code=message.bank_code) for record in records]
            partition = partition_for(institution_id, partitions)
            by_partition[partition].append(
                InstitutionPart(institution_id=institution_id, records=records, msg_id=part_id)
            )
            received[partition] = max(received.get(partition, 0), message.received_at)
            touched.add(partition)
        spread.append(len(touched))
    forwards: list[Forward] = []
    for partition in sorted(by_partition):
        forwards.extend(_encoded(partition, by_partition[partition], received[partition]))
    return forwards, spread


def _encoded(partition: int, parts: list[InstitutionPart], received_at: int) -> list[Forward]:
    """``parts`` as one message, or in order over several when one would be too large."""
    value = encode_institution_message(
        InstitutionMessage(msg_id=parts[0].msg_id, received_at=received_at, parts=parts)
    )
    if len(value) <= FORWARD_MAX_BYTES or len(parts) == 1:
        return [Forward(partition, parts[0].msg_id, value)]
    half = len(parts) // 2
    return _encoded(partition, parts[:half], received_at) + _encoded(partition, parts[half:], received_at)
