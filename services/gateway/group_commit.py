"""Outbox messages and what is remembered of each batch (its answer, the digest of its records
and the keys it accepted), of concurrent batches, written to ClickHouse together.

Each batch is answered only once its own messages and its batch row are written (so all survive
any restart), but the banks pushing at the same time need not each pay a ClickHouse insert of
their own: what arrives while one write is under way goes in the next one. Under load that is two
inserts for several batches; a lone batch waits for nobody.

Within a round the outbox goes first: keys without their messages would make a re-sent batch a
duplicate of records that exist nowhere, while messages without keys are merely accepted again
(the same message ids, which collapse). The answer, the digest and the keys of a batch are one row
of ``batches`` (schemas/ddl.py migration 9): one insert makes one part, so none of them is ever
stored without the others (an answer without its digest would be given back to a re-send of other
records), and a round costs two parts instead of four. A part's fixed cost, not its rows, was most
of a round's: about 3 ms of chDB's CPU a part however small, and the merges each part brings.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from schemas.ddl import DATABASE
from services.gateway.outbox import OUTBOX_COLUMNS
from services.storage.async_storage import AsyncStorage

# the rows write() takes, as the tables before migration 9 had them
KEY_COLUMNS = ("bank_code", "record_id", "batch_id", "accepted_at")
ANSWER_COLUMNS = ("bank_code", "batch_id", "answer", "received_at")
DIGEST_COLUMNS = ("bank_code", "batch_id", "digest", "received_at")
# what is written: one row per batch
BATCH_COLUMNS = ("bank_code", "batch_id", "answer", "digest", "record_ids", "received_at")
NO_DIGEST = ""  # the digest column of a batch written without one

_Rows = Sequence[Sequence[Any]]


def batch_row(key_rows: _Rows, answer_row: Sequence[Any], digest_row: Sequence[Any] | None) -> list[Any]:
    """The ``batches`` row of one batch, from its key rows, its answer row and its digest row
    (each in the columns above). Every key row must be the answer's batch's."""
    bank_code, batch_id, answer, received_at = answer_row
    record_ids = []
    for key_bank, record_id, key_batch, _ in key_rows:
        if key_bank != bank_code or key_batch != batch_id:
            raise ValueError(
                f"a key of batch {key_bank}/{key_batch} given with the answer of {bank_code}/{batch_id}"
            )
        record_ids.append(record_id)
    if digest_row is not None and (digest_row[0], digest_row[1]) != (bank_code, batch_id):
        raise ValueError(
            f"the digest of {digest_row[0]}/{digest_row[1]} given with the answer of {bank_code}/{batch_id}"
        )
    digest = NO_DIGEST if digest_row is None else digest_row[2]
    return [bank_code, batch_id, answer, digest, record_ids, received_at]


class GroupCommit:
    def __init__(self, storage: AsyncStorage) -> None:
        self.storage = storage
        # each waiting batch's outbox rows, its batches row, and the future it waits on
        self._waiting: list[tuple[_Rows, list[Any], asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None
        self.writes = 0  # ClickHouse write rounds, for tests and the curious

    async def write(
        self,
        outbox_rows: _Rows,
        key_rows: _Rows,
        answer_row: Sequence[Any],
        digest_row: Sequence[Any] | None = None,
    ) -> None:
        """Return once these rows are written; raise what the write raised (StorageError)."""
        await self._write(outbox_rows, batch_row(key_rows, answer_row, digest_row))

    async def write_batch(
        self,
        outbox_rows: _Rows,
        bank_code: str,
        batch_id: str,
        record_ids: list[str],
        answer: str,
        digest: str | None,
        received_at: int,
    ) -> None:
        """``write`` given the batch's accepted record ids rather than a key row each."""
        row = [bank_code, batch_id, answer, NO_DIGEST if digest is None else digest, record_ids, received_at]
        await self._write(outbox_rows, row)

    async def _write(self, outbox_rows: _Rows, row: list[Any]) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((outbox_rows, row, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_rounds())
        # shield: a client that hangs up must not cancel a write other batches wait for
        await asyncio.shield(done)

    async def _write_rounds(self) -> None:
        while self._waiting:
            taken, self._waiting = self._waiting, []
            messages = [message for outbox_rows, _, _ in taken for message in outbox_rows]
            batches = [row for _, row, _ in taken]
            try:
                if messages:
                    await self.storage.insert(f"{DATABASE}.outbox", OUTBOX_COLUMNS, messages)
                await self.storage.insert(f"{DATABASE}.batches", BATCH_COLUMNS, batches)
            except Exception as error:  # every batch of this round is refused; the next round may pass
                for *_, done in taken:
                    if not done.done():
                        done.set_exception(error)
                continue
            finally:
                self.writes += 1
            for *_, done in taken:
                if not done.done():
                    done.set_result(None)
