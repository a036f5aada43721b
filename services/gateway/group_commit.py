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

# one row per batch
BATCH_COLUMNS = ("bank_code", "batch_id", "answer", "digest", "record_ids", "received_at")
NO_DIGEST = ""  # the digest column of a batch written without one

_Rows = Sequence[Sequence[Any]]


class GroupCommit:
    def __init__(self, storage: AsyncStorage) -> None:
        self.storage = storage
        # each waiting batch's outbox rows, its batches row, and the future it waits on
        self._waiting: list[tuple[_Rows, list[Any], asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None
        self.writes = 0  # ClickHouse write rounds, for tests and the curious

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
        """Return once the batch's outbox rows and its ``batches`` row (answer, digest, accepted
        record ids) are written; raise what the write raised (StorageError)."""
        row = [bank_code, batch_id, answer, NO_DIGEST if digest is None else digest, record_ids, received_at]
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
            inserts = [(f"{DATABASE}.outbox", OUTBOX_COLUMNS, messages)] if messages else []
            inserts.append((f"{DATABASE}.batches", BATCH_COLUMNS, batches))
            try:
                await self.storage.insert_all(inserts)
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
