"""services/gateway/reference.py: who may register or change an account (CONTRACT.md §2), and that
an account names a known institution. ClickHouse and the broker are in-memory fakes."""

from __future__ import annotations

import asyncio
import json

import pytest

from schemas.reference import REFERENCE_KINDS
from services.auth import Principal
from services.gateway.errors import ApiError
from services.gateway.intake import BatchIntake, parse_batch
from services.gateway.reference import ReferenceService
from services.gateway.registry import AccountOwners
from tests.unit.gateway_fakes import FakePublisher, FakeStorage

ADMIN = Principal("tok-admin", "admin")
B1 = Principal("tok-b1", "bank", bank_code="B1")
B2 = Principal("tok-b2", "bank", bank_code="B2")
INSTITUTION = {
    "institution_id": "I-1", "name": "某网络借贷信息中介有限公司", "uscc": "91220101MA14TXQ23K",
    "type": "p2p_lending", "region": "220102",
}  # fmt: skip


def account(account_id: str, bank_code: str, institution_id: str | None = "I-1") -> dict:
    return {"account_id": account_id, "bank_code": bank_code, "institution_id": institution_id,
            "role": "customer_custody", "holder_name": "存管户"}  # fmt: skip


class Gateway:
    """The reference service and the intake of one gateway, sharing one account map."""

    def __init__(self, storage: FakeStorage | None = None) -> None:
        self.storage = storage or FakeStorage()
        self.publisher = FakePublisher()
        owners = AccountOwners(self.storage)
        self.reference = ReferenceService(self.storage, self.publisher, 4, owners=owners)
        self.intake = BatchIntake(self.storage, self.publisher, 4, owners=owners)

    def upsert(self, kind: str, items: list, principal: Principal):
        async def run():
            return await self.reference.upsert(REFERENCE_KINDS[kind], json.dumps(items).encode(), principal)

        try:
            return asyncio.run(run())
        except ApiError as error:
            return error

    def stored_accounts(self) -> dict[str, str]:
        return {row["account_id"]: row["bank_code"] for row in self.storage.rows("ref_accounts")}


@pytest.fixture
def gateway() -> Gateway:
    gateway = Gateway()
    assert gateway.upsert("institutions", [INSTITUTION], ADMIN)["upserted"] == 1
    assert gateway.upsert("accounts", [account("ACC-2", "B2")], B2)["upserted"] == 1
    return gateway


def test_a_bank_cannot_take_over_another_banks_account_and_nothing_of_the_request_applies(gateway):
    before = list(gateway.storage.tables["ref_accounts"])
    refused = gateway.upsert("accounts", [account("ACC-1-NEW", "B1"), account("ACC-2", "B1")], B1)
    assert isinstance(refused, ApiError) and (refused.status, refused.field) == (403, "account_id")
    assert "`account_id`" in refused.message and "'ACC-2' (index 1)" in refused.message
    assert "registered to another bank" in refused.message and "B2" not in refused.message
    assert json.loads(refused.response().body)["error"]["field"] == "account_id"
    assert gateway.storage.tables["ref_accounts"] == before  # not even the new account
    assert gateway.stored_accounts()["ACC-2"] == "B2"


def test_a_bank_cannot_touch_another_banks_account_whatever_bank_code_it_sends(gateway):
    refused = gateway.upsert("accounts", [account("ACC-2", "B2", institution_id=None)], B1)
    assert isinstance(refused, ApiError) and refused.status == 403


def test_a_bank_registers_and_updates_its_own_accounts(gateway):
    assert gateway.upsert("accounts", [account("ACC-1", "B1")], B1) == {"upserted": 1, "rejected": []}
    assert gateway.upsert("accounts", [account("ACC-1", "B1", institution_id=None)], B1)["upserted"] == 1
    assert gateway.upsert("accounts", [account("ACC-2", "B2", institution_id=None)], B2)["upserted"] == 1


def test_a_bank_registering_an_account_for_another_bank_code_is_rejected_by_item(gateway):
    answer = gateway.upsert("accounts", [account("ACC-1", "B1"), account("ACC-9", "B9")], B1)
    assert answer["upserted"] == 1
    assert answer["rejected"][0]["index"] == 1 and "`bank_code`" in answer["rejected"][0]["error"]


def test_an_admin_moves_an_account_between_banks_and_batches_follow(gateway):
    assert gateway.upsert("accounts", [account("ACC-2", "B1")], ADMIN)["upserted"] == 1
    assert gateway.stored_accounts()["ACC-2"] == "B1"
    batch = json.dumps({"batch_id": "b", "bank_code": "B1", "records": [{
        "kind": "balance", "record_id": "r1", "account_id": "ACC-2", "as_of": "2026-11-20T10:00:00Z",
        "balance": "1.00"}]}).encode()  # fmt: skip
    answer = json.loads(asyncio.run(gateway.intake.submit(parse_batch(batch, B1))))
    assert (answer["accepted"], answer["rejected"], answer["warnings"]) == (1, [], [])
    # and B2 may not take it back itself
    assert gateway.upsert("accounts", [account("ACC-2", "B2")], B2).status == 403


def test_an_account_upserted_here_is_judged_so_by_the_next_batch_without_asking_clickhouse(gateway):
    asked = gateway.storage.queried["ref_accounts"]
    batch = json.dumps({"batch_id": "b", "bank_code": "B1", "records": [{
        "kind": "balance", "record_id": "r1", "account_id": "ACC-2", "as_of": "2026-11-20T10:00:00Z",
        "balance": "1.00"}]}).encode()  # fmt: skip
    answer = json.loads(asyncio.run(gateway.intake.submit(parse_batch(batch, B1))))
    assert answer["rejected"][0]["error"] == "`account_id`: is registered to another bank"
    # ACC-2 was taught by the upsert; a foreign account is asked again only after RECHECK_S
    assert gateway.storage.queried["ref_accounts"] <= asked + 1


def test_a_bank_sees_an_account_another_gateway_registered(gateway):
    gateway.storage.put("ref_accounts", account_id="ACC-ELSEWHERE", bank_code="B2", institution_id="", role="other")
    refused = gateway.upsert("accounts", [account("ACC-ELSEWHERE", "B1")], B1)
    assert isinstance(refused, ApiError) and refused.status == 403


@pytest.mark.parametrize("principal", [ADMIN, B1])
def test_an_account_naming_an_unknown_institution_is_rejected_naming_institution_id(gateway, principal):
    answer = gateway.upsert(
        "accounts", [account("ACC-1", "B1", "I-NOPE"), account("ACC-3", "B1"), account("ACC-4", "B1", None)],
        principal,
    )  # fmt: skip
    assert answer["upserted"] == 2
    (rejection,) = answer["rejected"]
    assert (rejection["index"], rejection["id"]) == (0, "ACC-1")
    assert rejection["error"].startswith("`institution_id`: names no known institution")
    assert set(gateway.stored_accounts()) == {"ACC-2", "ACC-3", "ACC-4"}


def test_an_institution_stored_by_another_gateway_is_known(gateway):
    gateway.storage.put("ref_institutions", institution_id="I-ELSEWHERE", region="220102", type="payment")
    assert gateway.upsert("accounts", [account("ACC-5", "B1", "I-ELSEWHERE")], B1)["upserted"] == 1


def test_rejections_are_listed_in_the_requests_order(gateway):
    answer = gateway.upsert("accounts", [account("A", "B1", "I-NOPE"), {"account_id": "B"}, account("C", "B1")], B1)
    assert [r["index"] for r in answer["rejected"]] == [0, 1]


def test_storage_down_is_503_with_retry_after(gateway):
    gateway.storage.fail_queries = True
    refused = gateway.upsert("accounts", [account("ACC-1", "B1")], B1)
    assert refused.status == 503 and refused.response().headers["Retry-After"]
    gateway.storage.fail_queries = False
    gateway.storage.fail_inserts = True
    refused = gateway.upsert("institutions", [INSTITUTION], ADMIN)
    assert refused.status == 503 and refused.response().headers["Retry-After"]
