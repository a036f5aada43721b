"""Outbox messages, record keys and batch answers of concurrent batches written to ClickHouse
together.

Each batch is answered only once its own messages, keys and answer are written (so all survive
any restart), but the banks pushing at the same time need not each pay a ClickHouse insert of
their own: what arrives while one write is under way goes in the next one. Under load that is one
insert per table for several batches; a lone batch waits for nobody.

Within a round the outbox goes first: keys without their messages would make a re-sent batch a
duplicate of records that exist nowhere, while messages without keys are merely accepted again
(the same message ids, which collapse). The digests of the batches' records go just before their
answers: an answer without its digest would be given back to a re-send of other records.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from schemas.ddl import DATABASE
from services.gateway.outbox import OUTBOX_COLUMNS
from services.storage.async_storage import AsyncStorage

KEY_COLUMNS = ("bank_code", "record_id", "batch_id", "accepted_at")
ANSWER_COLUMNS = ("bank_code", "batch_id", "answer", "received_at")
DIGEST_COLUMNS = ("bank_code", "batch_id", "digest", "received_at")

_Rows = Sequence[Sequence[Any]]
# outbox rows, key rows, answer row, digest row, and the future its batch waits on
_Waiting = tuple[_Rows, _Rows, Sequence[Any], Sequence[Any] | None, "asyncio.Future[None]"]


class GroupCommit:
    def __init__(self, storage: AsyncStorage) -> None:
        self.storage = storage
        self._waiting: list[_Waiting] = []
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
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((outbox_rows, key_rows, answer_row, digest_row, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_rounds())
        # shield: a client that hangs up must not cancel a write other batches wait for
        await asyncio.shield(done)

    async def _write_rounds(self) -> None:
        while self._waiting:
            taken, self._waiting = self._waiting, []
            messages = [row for outbox_rows, *_ in taken for row in outbox_rows]
            keys = [row for _, key_rows, *_ in taken for row in key_rows]
            answers = [answer_row for _, _, answer_row, *_ in taken]
            digests = [digest_row for *_, digest_row, _ in taken if digest_row is not None]
            try:
                if messages:
                    await self.storage.insert(f"{DATABASE}.outbox", OUTBOX_COLUMNS, messages)
                if keys:
                    await self.storage.insert(f"{DATABASE}.ingest_keys", KEY_COLUMNS, keys)
                if digests:
                    await self.storage.insert(f"{DATABASE}.batch_digests", DIGEST_COLUMNS, digests)
                await self.storage.insert(f"{DATABASE}.batch_answers", ANSWER_COLUMNS, answers)
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
