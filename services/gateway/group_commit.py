"""Record keys and batch answers of concurrent batches written to ClickHouse together.

Each batch is answered only once its own keys and answer are written (so both survive any
restart), but the banks pushing at the same time need not each pay a ClickHouse insert of their
own: what arrives while one write is under way goes in the next one. Under load that is one
insert per table for several batches; a lone batch waits for nobody.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from schemas.ddl import DATABASE
from services.storage.async_storage import AsyncStorage

KEY_COLUMNS = ("bank_code", "record_id", "batch_id", "accepted_at")
ANSWER_COLUMNS = ("bank_code", "batch_id", "answer", "received_at")


class GroupCommit:
    def __init__(self, storage: AsyncStorage) -> None:
        self.storage = storage
        self._waiting: list[tuple[Sequence[Sequence[Any]], Sequence[Any], asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None
        self.writes = 0  # ClickHouse write rounds, for tests and the curious

    async def write(self, key_rows: Sequence[Sequence[Any]], answer_row: Sequence[Any]) -> None:
        """Return once these rows are written; raise what the write raised (StorageError)."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((key_rows, answer_row, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_rounds())
        # shield: a client that hangs up must not cancel a write other batches wait for
        await asyncio.shield(done)

    async def _write_rounds(self) -> None:
        while self._waiting:
            taken, self._waiting = self._waiting, []
            keys = [row for key_rows, _, _ in taken for row in key_rows]
            answers = [answer_row for _, answer_row, _ in taken]
            try:
                if keys:
                    await self.storage.insert(f"{DATABASE}.ingest_keys", KEY_COLUMNS, keys)
                await self.storage.insert(f"{DATABASE}.batch_answers", ANSWER_COLUMNS, answers)
            except Exception as error:  # every batch of this round is refused; the next round may pass
                for _, _, done in taken:
                    if not done.done():
                        done.set_exception(error)
                continue
            finally:
                self.writes += 1
            for _, _, done in taken:
                if not done.done():
                    done.set_result(None)
