"""Webhook secrets at rest on both backends: the raw ClickHouse row holds neither the current nor
the previous secret, and the store reads them back in clear."""

from __future__ import annotations

import asyncio
import json
import os
import uuid

import pytest

from schemas.ddl import DATABASE
from services.secret_box import SecretBox
from services.storage.async_storage import AsyncStorage
from services.webhooks.signing import new_secret
from services.webhooks.store import SubscriptionStore

pytestmark = pytest.mark.integration


@pytest.fixture
def store(storage):
    wrapped = AsyncStorage(storage)
    yield SubscriptionStore(wrapped, SecretBox(os.urandom(32)))
    wrapped._executor.shutdown(wait=True)  # the backend itself belongs to the session fixture


def raw_rows(storage, subscription_id: str) -> list[tuple]:
    """Every version of the row, every column, as ClickHouse holds it."""
    return storage.query(
        f"SELECT * FROM {DATABASE}.subscriptions WHERE subscription_id = %(id)s ORDER BY version",
        {"id": subscription_id},
    )


def test_the_raw_row_holds_no_secret_and_the_store_reads_them_in_clear(storage, store):
    sub_id, current, previous = str(uuid.uuid4()), new_secret(), new_secret()
    doc = {"id": sub_id, "url": "https://hooks.example.org/fw", "filter": {}, "created_at": "2026-11-20T00:00:00.000Z",
           "owner": {"token_id": "t1", "role": "admin"}, "secret": current, "previous_secret": previous,
           "previous_expires": 1.0}  # fmt: skip
    asyncio.run(store.save("t1", doc))
    (row,) = raw_rows(storage, sub_id)
    text = repr(row)
    for key in (current, previous):
        assert key.removeprefix("whsec_") not in text
    stored = json.loads(row[3])
    assert stored["secret"].startswith("v1:") and stored["previous_secret"].startswith("v1:")
    owner, read = asyncio.run(store.get(sub_id))
    assert (owner, read) == ("t1", doc)
    assert [d for d in asyncio.run(store.live("t1")) if d["id"] == sub_id] == [doc]


def test_a_row_written_in_clear_is_read_and_encrypted_on_its_next_write(storage, store):
    sub_id, plain = str(uuid.uuid4()), new_secret()
    doc = {"id": sub_id, "url": "https://hooks.example.org/old", "filter": {},
           "created_at": "2026-11-20T00:00:00.000Z", "owner": {"token_id": "t2", "role": "admin"}, "secret": plain}  # fmt: skip
    storage.insert(f"{DATABASE}.subscriptions", ("subscription_id", "owner_token_id", "url", "doc", "deleted", "version"),
                   [[sub_id, "t2", doc["url"], json.dumps(doc), 0, 1]])  # fmt: skip
    owner, read = asyncio.run(store.get(sub_id))
    assert read["secret"] == plain
    asyncio.run(store.save(owner, {**read, "disabled_at": "2026-11-21T00:00:00.000Z"}))
    newest = raw_rows(storage, sub_id)[-1]
    assert plain.removeprefix("whsec_") not in repr(newest)
    assert asyncio.run(store.get(sub_id))[1]["secret"] == plain
