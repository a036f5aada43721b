"""services/gateway/intake.py: the batch rules of CONTRACT.md §2 that need the gateway's memory or
clock: a batch_id re-sent with other records, records dated too far ahead, accounts missing from
the reference data or registered to another bank. ClickHouse and the broker are in-memory fakes.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from prometheus_client import REGISTRY

from services.auth import Principal
from services.gateway import registry
from services.gateway.errors import ApiError
from services.gateway.intake import BatchIntake, parse_batch
from services.gateway.registry import AccountOwners
from tests.unit.gateway_fakes import FakePublisher, FakeStorage

BANK = Principal("tok-1", "bank", bank_code="B001")
NOW = 1_796_400_000  # 2026-12-04T16:00:00Z, the gateway's clock in these tests


def txn(record_id: str, account: str = "ACC-1", **changes: object) -> dict:
    record = {
        "kind": "transaction", "record_id": record_id, "account_id": account, "direction": "credit",
        "amount": "10.00", "booked_at": "2026-12-04T09:00:00+08:00", "counterparty_account": "CP-1",
        "counterparty_bank": "B002", "channel": "BEPS",
    }  # fmt: skip
    record.update(changes)
    return record


def balance(record_id: str, as_of: str, account: str = "ACC-1") -> dict:
    return {"kind": "balance", "record_id": record_id, "account_id": account, "as_of": as_of, "balance": "1.00"}


def batch(batch_id: str, records: list[dict], raw: bytes | None = None):
    body = raw or json.dumps({"batch_id": batch_id, "bank_code": "B001", "records": records}).encode()
    return parse_batch(body, BANK)


@pytest.fixture
def clock(monkeypatch):
    monkeypatch.setattr(time, "time", lambda: NOW + 0.25)


def stack(storage: FakeStorage | None = None, **kwargs) -> tuple[BatchIntake, FakeStorage, FakePublisher]:
    storage = storage or FakeStorage()
    publisher = FakePublisher()
    intake = BatchIntake(storage, publisher, 4, owners=AccountOwners(storage), **kwargs)
    return intake, storage, publisher


def submit(intake: BatchIntake, *batches) -> list:
    """Each batch's answer (decoded) or the ApiError it raised, in order."""

    async def run() -> list:
        out = []
        for one in batches:
            try:
                out.append(json.loads(await intake.submit(one)))
            except ApiError as error:
                out.append(error)
        return out

    return asyncio.run(run())


def registered(storage: FakeStorage, account: str, bank_code: str) -> None:
    storage.put("ref_accounts", account_id=account, bank_code=bank_code, institution_id="", role="other")


# --- a batch_id re-sent ------------------------------------------------------------------------


def test_a_batch_id_resent_with_other_records_is_409_naming_it_and_takes_nothing(clock):
    intake, storage, publisher = stack()
    first, again = submit(intake, batch("B-1", [txn("r1"), txn("r2")]), batch("B-1", [txn("r1"), txn("r3")]))
    assert first["accepted"] == 2
    assert isinstance(again, ApiError) and (again.status, again.field) == (409, "batch_id")
    assert "`batch_id`" in again.message and "other records" in again.message
    assert json.loads(again.response().body)["error"]["field"] == "batch_id"
    # r3 was not taken: nothing published for it, and it is new to the next batch
    assert all(b"r3" not in value for *_, value in publisher.sent)
    (later,) = submit(intake, batch("B-2", [txn("r3")]))
    assert (later["accepted"], later["duplicates"]) == (1, 0)


@pytest.mark.parametrize(
    "other",
    [
        [txn("r1")],  # a record left out
        [txn("r1"), txn("r2"), txn("r3")],  # a record added
        [txn("r2"), txn("r1")],  # the same records in another order
        [txn("r1"), txn("r2", amount="10.01")],  # one value changed
    ],
)
def test_any_other_content_under_the_same_batch_id_is_409(clock, other):
    intake, _, _ = stack()
    first, again = submit(intake, batch("B-1", [txn("r1"), txn("r2")]), batch("B-1", other))
    assert first["accepted"] == 2 and isinstance(again, ApiError) and again.status == 409


def test_the_same_records_get_the_first_answer_byte_for_byte(clock):
    intake, _, publisher = stack()
    records = [txn("r1"), txn("r2", amount="1.234")]

    async def run():
        return [await intake.submit(batch("B-1", records)) for _ in range(3)]

    answers = asyncio.run(run())
    assert answers[0] == answers[1] == answers[2]
    assert len(publisher.sent) == 1  # one partition's message, once


def test_the_digest_is_written_with_the_answer_and_survives_a_restart(clock):
    storage = FakeStorage()
    intake, _, _ = stack(storage)
    (first,) = submit(intake, batch("B-1", [txn("r1")]))
    (digest_row,) = storage.rows("batches")
    assert (digest_row["bank_code"], digest_row["batch_id"]) == ("B001", "B-1")
    assert len(digest_row["digest"]) == 32

    restarted, _, _ = stack(storage)
    asyncio.run(restarted.load())
    same, other = submit(restarted, batch("B-1", [txn("r1")]), batch("B-1", [txn("r9")]))
    assert same == first
    assert isinstance(other, ApiError) and other.status == 409


def test_an_answer_stored_before_digests_were_kept_is_returned_to_any_resend(clock):
    storage = FakeStorage()
    answer = '{"batch_id":"OLD","accepted":1,"duplicates":0,"rejected":[]}'
    storage.put("batch_answers", bank_code="B001", batch_id="OLD", answer=answer, received_at=0)
    intake, _, publisher = stack(storage)
    asyncio.run(intake.load())
    (again,) = submit(intake, batch("OLD", [txn("r-new")]))
    assert again == json.loads(answer) and not publisher.sent


# --- records dated too far ahead ---------------------------------------------------------------


def test_booked_at_and_as_of_more_than_an_hour_ahead_are_rejected_naming_field_and_rule(clock):
    intake, _, _ = stack()
    records = [
        txn("at-limit", booked_at="2026-12-04T17:00:00Z"),  # NOW + 3600: allowed
        txn("past-limit", booked_at="2026-12-05T01:00:01+08:00"),  # NOW + 3601
        balance("bal-ok", "2026-12-04T16:59:59Z"),
        balance("bal-late", "2026-12-06T00:00:00Z"),
    ]
    (answer,) = submit(intake, batch("F-1", records))
    assert answer["accepted"] == 2
    assert answer["rejected"] == [
        {"index": 1, "record_id": "past-limit",
         "error": "`booked_at`: must be no later than 1 hour after the gateway's clock (2026-12-04T17:00:00Z)"},
        {"index": 3, "record_id": "bal-late",
         "error": "`as_of`: must be no later than 1 hour after the gateway's clock (2026-12-04T17:00:00Z)"},
    ]  # fmt: skip


def test_the_allowance_is_configurable(clock):
    intake, _, _ = stack(max_future_s=300)
    (answer,) = submit(intake, batch("F-2", [txn("a", booked_at="2026-12-04T16:05:01Z"), txn("b")]))
    assert answer["accepted"] == 1
    assert answer["rejected"][0]["error"] == (
        "`booked_at`: must be no later than 5 minutes after the gateway's clock (2026-12-04T16:05:00Z)"
    )


def test_a_record_rejected_for_its_date_is_not_remembered(clock):
    intake, _, _ = stack()
    later = txn("late", booked_at="2026-12-04T20:00:00Z")
    (first,) = submit(intake, batch("F-3", [later]))
    assert first["accepted"] == 0
    (fixed,) = submit(intake, batch("F-4", [txn("late")]))
    assert (fixed["accepted"], fixed["duplicates"]) == (1, 0)


# --- accounts and the reference data -----------------------------------------------------------


def _unregistered_count(bank_code: str) -> float:
    value = REGISTRY.get_sample_value("fundwatch_records_unregistered_account_total", {"bank_code": bank_code})
    return value or 0.0


def test_a_record_of_an_unregistered_account_is_accepted_with_a_warning_and_counted(clock):
    intake, storage, _ = stack()
    registered(storage, "ACC-OWN", "B001")
    asyncio.run(intake.load())
    before = _unregistered_count("B001")
    records = [txn("w1", account="ACC-NEW"), txn("w2", account="ACC-OWN"), txn("w3", account="ACC-NEW")]
    (answer,) = submit(intake, batch("W-1", records))
    assert (answer["accepted"], answer["rejected"]) == (3, [])
    assert [(w["index"], w["record_id"]) for w in answer["warnings"]] == [(0, "w1"), (2, "w3")]
    assert all(w["warning"].startswith("`account_id`: is not in the reference data") for w in answer["warnings"])
    assert _unregistered_count("B001") == before + 2


def test_a_record_of_an_account_registered_to_another_bank_is_rejected_naming_account_id(clock):
    intake, storage, publisher = stack()
    registered(storage, "ACC-THEIRS", "B002")
    registered(storage, "ACC-OWN", "B001")
    asyncio.run(intake.load())
    records = [txn("f1", account="ACC-THEIRS"), {"kind": "loan"}, txn("f2", account="ACC-OWN")]
    (answer,) = submit(intake, batch("X-1", records))
    assert (answer["accepted"], answer["warnings"]) == (1, [])
    assert [r["index"] for r in answer["rejected"]] == [0, 1]  # in the batch's order
    assert answer["rejected"][0] == {
        "index": 0, "record_id": "f1", "error": "`account_id`: is registered to another bank"
    }
    assert all(b"ACC-THEIRS" not in value for *_, value in publisher.sent)
    # not remembered: once the account is the bank's, the record is new
    registered(storage, "ACC-THEIRS", "B001")
    intake.owners.learn("ACC-THEIRS", "B001")
    (moved,) = submit(intake, batch("X-2", [txn("f1", account="ACC-THEIRS")]))
    assert (moved["accepted"], moved["duplicates"]) == (1, 0)


def test_accounts_the_map_does_not_know_are_asked_of_clickhouse_once_per_batch(clock):
    intake, storage, _ = stack()
    asyncio.run(intake.load())
    assert storage.queried["ref_accounts"] == 1  # the load
    # registered by another gateway after this one started
    registered(storage, "ACC-LATE-THEIRS", "B002")
    registered(storage, "ACC-LATE-OWN", "B001")
    records = [txn(f"q{i}", account=f"ACC-{i % 7}") for i in range(40)]
    records += [txn("q-theirs", account="ACC-LATE-THEIRS"), txn("q-own", account="ACC-LATE-OWN")]
    (answer,) = submit(intake, batch("Q-1", records))
    assert storage.queried["ref_accounts"] == 2
    assert [r["record_id"] for r in answer["rejected"]] == ["q-theirs"]
    assert len(answer["warnings"]) == 40 and answer["accepted"] == 41
    # what was learned is cached: the next batch of the same accounts asks nothing
    (again,) = submit(intake, batch("Q-2", [txn("q-more", account="ACC-1"), txn("q-own2", account="ACC-LATE-OWN")]))
    assert storage.queried["ref_accounts"] == 2 and len(again["warnings"]) == 1


def test_an_account_found_missing_is_asked_again_after_a_while(clock, monkeypatch):
    intake, storage, _ = stack()
    submit(intake, batch("R-1", [txn("r1", account="ACC-R")]))
    registered(storage, "ACC-R", "B002")  # registered elsewhere meanwhile
    monkeypatch.setattr(registry, "RECHECK_S", 0.0)
    (answer,) = submit(intake, batch("R-2", [txn("r2", account="ACC-R")]))
    assert answer["rejected"][0]["error"] == "`account_id`: is registered to another bank"


def test_an_account_moved_to_this_bank_elsewhere_is_asked_before_its_records_are_rejected(clock):
    intake, storage, _ = stack()
    registered(storage, "ACC-M", "B002")
    asyncio.run(intake.load())
    registered(storage, "ACC-M", "B001")  # an admin moved it, through another gateway
    (answer,) = submit(intake, batch("M-1", [txn("m1", account="ACC-M")]))
    assert (answer["accepted"], answer["rejected"], answer["warnings"]) == (1, [], [])


# --- storage down ------------------------------------------------------------------------------


def test_a_failed_write_is_503_with_retry_after_and_releases_the_records(clock):
    intake, storage, _ = stack()
    storage.fail_inserts = True
    (refused,) = submit(intake, batch("D-1", [txn("d1")]))
    assert isinstance(refused, ApiError) and refused.status == 503
    assert int(refused.response().headers["Retry-After"]) > 0
    storage.fail_inserts = False
    (answer,) = submit(intake, batch("D-1", [txn("d1")]))
    assert answer["accepted"] == 1


def test_reference_data_unreadable_is_503_with_retry_after(clock):
    intake, storage, _ = stack()
    storage.fail_queries = True
    (refused,) = submit(intake, batch("D-2", [txn("d2", account="ACC-UNKNOWN")]))
    assert isinstance(refused, ApiError) and refused.status == 503
    assert refused.response().headers["Retry-After"]
    storage.fail_queries = False
    (answer,) = submit(intake, batch("D-2", [txn("d2", account="ACC-UNKNOWN")]))
    assert answer["accepted"] == 1


# --- a key given twice -------------------------------------------------------------------------


def test_a_record_naming_a_key_twice_is_rejected_naming_it(clock):
    intake, _, _ = stack()
    twice = (
        b'{"kind": "transaction", "record_id": "dup-key", "account_id": "ACC-1", "direction": "credit",'
        b' "amount": "1.00", "amount": "1000000.00", "booked_at": "2026-12-04T09:00:00+08:00",'
        b' "counterparty_account": "CP-1", "counterparty_bank": "B002", "channel": "BEPS"}'
    )
    body = b'{"batch_id": "K-1", "bank_code": "B001", "records": [' + twice + b", " + json.dumps(txn("ok")).encode() + b"]}"
    (answer,) = submit(intake, batch("K-1", [], raw=body))
    assert answer["accepted"] == 1
    (rejection,) = answer["rejected"]
    assert (rejection["index"], rejection["record_id"]) == (0, "dup-key")
    assert rejection["error"].startswith("`amount`:")
