"""The gateway's memory on both backends (a clickhouse-server 18.16 and chDB 26.x): batch digests
(DDL migration 6) written by the group commit and read back at start, the batches written before
and after migration 9 read back alike, and the look-ups of the account map and the known
institutions."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from schemas.ddl import DATABASE
from services.gateway.dedup import BatchAnswers, RecordKeys
from services.gateway.group_commit import GroupCommit
from services.gateway.registry import AccountOwners, KnownInstitutions
from services.storage.async_storage import AsyncStorage

pytestmark = pytest.mark.integration


def _run(storage, work):
    """``work(async_storage)`` on an AsyncStorage over the session's storage, left open for others."""
    wrapped = AsyncStorage(storage)
    try:
        return asyncio.run(work(wrapped))
    finally:
        wrapped._executor.shutdown(wait=True)


def test_a_batch_digest_is_written_with_its_answer_and_read_back(storage):
    batch_id = f"digest-{uuid.uuid4().hex}"

    async def work(wrapped):
        await GroupCommit(wrapped).write_batch(
            [], "BD1", batch_id, [f"{batch_id}-r1"], '{"accepted":1}', "0123456789abcdef0123456789abcdef", 0
        )
        answers = BatchAnswers()
        await answers.load(wrapped)
        return answers

    answers = _run(storage, work)
    assert answers.get("BD1", batch_id) == b'{"accepted":1}'
    assert answers.digest("BD1", batch_id) == "0123456789abcdef0123456789abcdef"


def test_batches_answered_before_migration_9_are_read_back_with_those_answered_after(storage):
    """Rows of the tables each batch was written to before ``batches`` existed (an upgraded
    gateway's database) are still its memory: their keys, answers and digests, beside the new."""
    tag = uuid.uuid4().hex[:12]
    old, new, undigested = f"old-{tag}", f"new-{tag}", f"bare-{tag}"
    storage.insert(f"{DATABASE}.ingest_keys", ("bank_code", "record_id", "batch_id", "accepted_at"),
                   [["BM1", f"{old}-r1", old, 0], ["BM1", f"{old}-r2", old, 0]])  # fmt: skip
    storage.insert(f"{DATABASE}.batch_digests", ("bank_code", "batch_id", "digest", "received_at"),
                   [["BM1", old, "d" * 32, 0]])  # fmt: skip
    storage.insert(f"{DATABASE}.batch_answers", ("bank_code", "batch_id", "answer", "received_at"),
                   [["BM1", old, '{"old":1}', 0], ["BM1", undigested, '{"bare":1}', 0]])  # fmt: skip

    async def work(wrapped):
        commits = GroupCommit(wrapped)
        await commits.write_batch([], "BM1", new, [f"{new}-r1"], '{"new":1}', "e" * 32, 0)
        await commits.write_batch([], "BM1", f"none-{tag}", [], '{"none":1}', None, 0)
        keys, answers = RecordKeys(), BatchAnswers()
        await keys.load(wrapped)
        await answers.load(wrapped)
        return keys, answers

    keys, answers = _run(storage, work)
    assert {f"{old}-r1", f"{old}-r2", f"{new}-r1"} <= keys.bank("BM1")
    assert answers.get("BM1", old) == b'{"old":1}' and answers.digest("BM1", old) == "d" * 32
    assert answers.get("BM1", new) == b'{"new":1}' and answers.digest("BM1", new) == "e" * 32
    # an answer kept without a digest is returned to any re-send, as before
    assert answers.get("BM1", undigested) == b'{"bare":1}' and answers.digest("BM1", undigested) is None
    assert answers.get("BM1", f"none-{tag}") == b'{"none":1}' and answers.digest("BM1", f"none-{tag}") is None


def test_the_account_map_asks_for_what_it_does_not_know_and_the_newest_upsert_wins(storage):
    tag = uuid.uuid4().hex[:8]
    columns = ("account_id", "bank_code", "institution_id", "role", "doc", "version")
    storage.insert(
        f"{DATABASE}.ref_accounts",
        columns,
        [[f"A-{tag}-1", "B1", "", "other", "{}", 1], [f"A-{tag}-2", "B2", "", "other", "{}", 1],
         [f"A-{tag}-1", "B3", "", "other", "{}", 2]],  # moved to B3 by a later upsert
    )  # fmt: skip

    async def work(wrapped):
        owners = AccountOwners(wrapped)
        await owners.ask([f"A-{tag}-1"])  # one id: still a tuple to the IN
        await owners.ask([f"A-{tag}-2", f"A-{tag}-missing", "it's \\ odd"])
        loaded = AccountOwners(wrapped)
        await loaded.load()
        return owners, loaded

    owners, loaded = _run(storage, work)
    assert owners.banks == {f"A-{tag}-1": "B3", f"A-{tag}-2": "B2"}
    assert owners.doubtful("B1", [f"A-{tag}-missing"]) == []  # just asked: trusted for a while
    assert loaded.banks[f"A-{tag}-1"] == "B3" and loaded.banks[f"A-{tag}-2"] == "B2"


def test_known_institutions_are_the_stored_ones(storage):
    tag = uuid.uuid4().hex[:8]
    storage.insert(
        f"{DATABASE}.ref_institutions",
        ("institution_id", "region", "type", "doc", "version"),
        [[f"I-{tag}", "220102", "payment", "{}", time.time_ns()]],
    )

    async def work(wrapped):
        return await KnownInstitutions(wrapped).unknown([f"I-{tag}", f"I-{tag}-nope"])

    assert _run(storage, work) == {f"I-{tag}-nope"}
