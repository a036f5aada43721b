"""The gateway's memory of what it has accepted: record keys and first answers per batch.

Both are written to ClickHouse before a batch is answered and read back at start, so a re-sent
record stays a duplicate and a re-sent batch_id gets its first answer after any restart.
"""

from __future__ import annotations

from schemas.ddl import DATABASE
from services.storage.async_storage import AsyncStorage


class RecordKeys:
    """Every (bank_code, record_id) ever accepted."""

    def __init__(self) -> None:
        self._by_bank: dict[str, set[str]] = {}

    def __len__(self) -> int:
        return sum(len(ids) for ids in self._by_bank.values())

    def bank(self, bank_code: str) -> set[str]:
        return self._by_bank.setdefault(bank_code, set())

    def release(self, bank_code: str, record_ids: list[str]) -> None:
        self.bank(bank_code).difference_update(record_ids)

    async def load(self, storage: AsyncStorage) -> int:
        rows = await storage.query(f"SELECT bank_code, record_id FROM {DATABASE}.ingest_keys")
        for bank_code, record_id in rows:
            self.bank(bank_code).add(record_id)
        return len(rows)


class BatchAnswers:
    """The first answer given to each (bank_code, batch_id), as the JSON bytes sent."""

    def __init__(self) -> None:
        self._answers: dict[tuple[str, str], bytes] = {}

    def get(self, bank_code: str, batch_id: str) -> bytes | None:
        return self._answers.get((bank_code, batch_id))

    def put(self, bank_code: str, batch_id: str, answer: bytes) -> None:
        self._answers[(bank_code, batch_id)] = answer

    def __len__(self) -> int:
        return len(self._answers)

    async def load(self, storage: AsyncStorage) -> int:
        rows = await storage.query(f"SELECT bank_code, batch_id, answer FROM {DATABASE}.batch_answers FINAL")
        for bank_code, batch_id, answer in rows:
            self._answers[(bank_code, batch_id)] = answer.encode("utf-8")
        return len(rows)
