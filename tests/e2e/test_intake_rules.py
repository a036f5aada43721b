"""The batch-intake and reference-data rules of CONTRACT.md §2, from outside: a real `fundwatch run`
(and `fundwatch worker` / `dispatcher` for their ports), spoken to over HTTP only."""

from __future__ import annotations

import base64
import os
import signal
import socket
import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.support import FundwatchProcess, call, free_port, wait_ready, wait_until

pytestmark = pytest.mark.e2e

INSTITUTION = {
    "institution_id": "IR-P2P-1", "name": "吉林某网络借贷信息中介有限公司", "uscc": "91220101MA14TXQ23K",
    "type": "p2p_lending", "region": "220102",
}  # fmt: skip


def account(account_id: str, bank_code: str, institution_id: str | None = "IR-P2P-1") -> dict:
    return {"account_id": account_id, "bank_code": bank_code, "institution_id": institution_id,
            "role": "customer_custody", "holder_name": "客户资金存管户"}  # fmt: skip


def txn(record_id: str, account_id: str, amount: str = "10.00", **changes: object) -> dict:
    record = {
        "kind": "transaction", "record_id": record_id, "account_id": account_id, "direction": "credit",
        "amount": amount, "booked_at": "2026-11-20T10:00:00+08:00", "counterparty_account": "6222000011112222",
        "counterparty_bank": "B009", "channel": "IBPS",
    }  # fmt: skip
    record.update(changes)
    return record


def rfc3339(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Run:
    def __init__(self, root, port: int) -> None:
        self.root = root
        self.base = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("FUNDWATCH_")}
        env["FUNDWATCH_LOG_LEVEL"] = os.environ.get("FW_TEST_LOG_LEVEL", "INFO")
        self.process = FundwatchProcess(
            ["run", "--no-simulator", "--data-dir", str(root), "--http-port", str(port)], env, root / "run.log"
        )

    def start(self) -> None:
        self.process.start()
        wait_ready(self.base, timeout=120, process=self.process.process)

    @property
    def admin(self) -> str:
        return (self.root / "admin-token").read_text().strip()

    def token(self, bank_code: str) -> str:
        status, answer = call("POST", f"{self.base}/v1/admin/tokens", self.admin, {"role": "bank", "bank_code": bank_code})
        assert status == 201, answer
        return answer["token"]

    def push(self, token: str, bank_code: str, batch_id: str, records: list[dict]):
        body = {"batch_id": batch_id, "bank_code": bank_code, "records": records}
        return call("POST", f"{self.base}/v1/batches", token, body)

    def accounts(self, token: str, items: list[dict]):
        return call("PUT", f"{self.base}/v1/reference/accounts", token, items)

    def inflow(self, account_id: str) -> str | None:
        status, answer = call("GET", f"{self.base}/v1/accounts/{account_id}/flows?grain=day", self.admin)
        return answer["totals"].get("CNY", {}).get("inflow") if status == 200 else None


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    running = Run(tmp_path_factory.mktemp("intake-rules"), free_port())
    try:
        running.start()
        status, _ = call("PUT", f"{running.base}/v1/reference/institutions", running.admin, [INSTITUTION])
        assert status == 200
        yield running
        running.process.stop()
    finally:
        running.process.kill()


@pytest.fixture(scope="module")
def banks(run):
    return {code: run.token(code) for code in ("B001", "B002")}


def test_the_api_address_is_printed_at_start(run):
    assert f"fundwatch api listening on {run.base}" in run.process.log()


def test_a_batch_id_resent_with_other_records_is_409_also_after_a_restart(run, banks):
    assert run.accounts(banks["B001"], [account("IR-409", "B001")])[0] == 200
    records = [txn("c409-1", "IR-409", "1.00"), txn("c409-2", "IR-409", "2.00")]
    status, first = run.push(banks["B001"], "B001", "conflict-1", records)
    assert status == 202 and first["accepted"] == 2 and first["warnings"] == []
    other = [records[0], txn("c409-3", "IR-409", "4.00")]
    status, refused = run.push(banks["B001"], "B001", "conflict-1", other)
    assert status == 409 and refused["error"]["field"] == "batch_id", refused
    assert run.push(banks["B001"], "B001", "conflict-1", records) == (202, first)

    assert run.process.stop(signal.SIGTERM) == 0
    run.start()
    assert run.push(banks["B001"], "B001", "conflict-1", other)[0] == 409
    assert run.push(banks["B001"], "B001", "conflict-1", records) == (202, first)
    # the refused record was never taken: it is new under a batch_id of its own
    status, answer = run.push(banks["B001"], "B001", "conflict-2", [other[1]])
    assert (status, answer["accepted"], answer["duplicates"]) == (202, 1, 0)
    wait_until(lambda: run.inflow("IR-409") == "7.00", 60, what="7.00 in IR-409")


def test_records_dated_more_than_an_hour_ahead_are_rejected_naming_the_field(run, banks):
    now = datetime.now(UTC)
    records = [
        txn("fut-ok", "IR-FUT", booked_at=rfc3339(now + timedelta(minutes=30))),
        txn("fut-txn", "IR-FUT", booked_at=rfc3339(now + timedelta(hours=2))),
        {"kind": "balance", "record_id": "fut-bal", "account_id": "IR-FUT",
         "as_of": rfc3339(now + timedelta(days=3)), "balance": "1.00"},
    ]  # fmt: skip
    status, answer = run.push(banks["B001"], "B001", "future-1", records)
    assert status == 202 and answer["accepted"] == 1
    named = {r["record_id"]: r["error"] for r in answer["rejected"]}
    assert set(named) == {"fut-txn", "fut-bal"}
    assert named["fut-txn"].startswith("`booked_at`: must be no later than 1 hour after the gateway's clock (")
    assert named["fut-bal"].startswith("`as_of`: must be no later than 1 hour after the gateway's clock (")


def test_a_record_of_an_unregistered_account_is_accepted_with_a_warning_and_counted(run, banks):
    records = [txn("unreg-1", "IR-NOWHERE"), txn("unreg-2", "IR-NOWHERE")]
    status, answer = run.push(banks["B001"], "B001", "unregistered-1", records)
    assert status == 202 and (answer["accepted"], answer["rejected"]) == (2, [])
    assert [(w["index"], w["record_id"]) for w in answer["warnings"]] == [(0, "unreg-1"), (1, "unreg-2")]
    assert all("`account_id`" in w["warning"] for w in answer["warnings"])
    status, text = call("GET", f"{run.base}/metrics")
    counted = [line for line in text.splitlines()
               if line.startswith('fundwatch_records_unregistered_account_total{bank_code="B001"}')]  # fmt: skip
    assert counted and float(counted[0].split()[-1]) >= 2


def test_a_record_of_another_banks_account_is_rejected_and_moves_none_of_its_flows(run, banks):
    assert run.accounts(banks["B002"], [account("IR-THEIRS", "B002")]) == (200, {"upserted": 1, "rejected": []})
    status, answer = run.push(banks["B001"], "B001", "foreign-1", [txn("foreign-a", "IR-THEIRS", "500.00")])
    assert status == 202 and answer["accepted"] == 0
    assert answer["rejected"] == [
        {"index": 0, "record_id": "foreign-a", "error": "`account_id`: is registered to another bank"}
    ]
    # the owner's own record goes through, and is all the account's flows hold
    status, answer = run.push(banks["B002"], "B002", "own-1", [txn("own-a", "IR-THEIRS", "3.00")])
    assert (status, answer["accepted"], answer["warnings"]) == (202, 1, [])
    wait_until(lambda: run.inflow("IR-THEIRS") == "3.00", 60, what="3.00 in IR-THEIRS")
    time.sleep(1.0)
    assert run.inflow("IR-THEIRS") == "3.00"


def test_a_bank_cannot_take_over_another_banks_account_and_an_admin_can_move_it(run, banks):
    assert run.accounts(banks["B002"], [account("IR-TAKE", "B002")])[0] == 200
    status, refused = run.accounts(banks["B001"], [account("IR-TAKE-MINE", "B001"), account("IR-TAKE", "B001")])
    assert status == 403 and refused["error"]["field"] == "account_id", refused
    assert "B002" not in refused["error"]["message"]
    # nothing of that request applied: the account is still B002's, the other one does not exist
    status, answer = run.push(banks["B002"], "B002", "take-1", [txn("take-a", "IR-TAKE")])
    assert (answer["accepted"], answer["warnings"]) == (1, [])
    status, answer = run.push(banks["B001"], "B001", "take-2", [txn("take-b", "IR-TAKE-MINE")])
    assert answer["accepted"] == 1 and len(answer["warnings"]) == 1
    # an admin moves it; from then on it is B001's
    assert run.accounts(run.admin, [account("IR-TAKE", "B001")]) == (200, {"upserted": 1, "rejected": []})
    status, answer = run.push(banks["B001"], "B001", "take-3", [txn("take-c", "IR-TAKE")])
    assert (answer["accepted"], answer["rejected"], answer["warnings"]) == (1, [], [])


def test_an_account_must_name_a_known_institution(run, banks):
    for token in (run.admin, banks["B001"]):
        status, answer = run.accounts(token, [account("IR-INST-1", "B001", "IR-NO-SUCH"), account("IR-INST-2", "B001", None)])
        assert status == 200 and answer["upserted"] == 1
        assert answer["rejected"][0]["index"] == 0 and "`institution_id`" in answer["rejected"][0]["error"]


# --- each process kind on a port of its own ----------------------------------------------------


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_worker_and_dispatcher_listen_on_ports_of_their_own_by_default(tmp_path, broker, clickhouse_server):
    if not (_port_free(8081) and _port_free(8082)):
        pytest.skip("8081 or 8082 is taken on this machine")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNDWATCH_")}
    env.update(FUNDWATCH_KAFKA_BOOTSTRAP=broker, FUNDWATCH_CLICKHOUSE_URL=clickhouse_server.url,
               FUNDWATCH_APP_ID=f"fw-ports-{os.urandom(3).hex()}", FUNDWATCH_DATA_DIR=str(tmp_path),
               FUNDWATCH_SECRET_KEY=base64.b64encode(os.urandom(32)).decode())  # fmt: skip
    processes = {
        name: FundwatchProcess([name], env, tmp_path / f"{name}.log") for name in ("worker", "dispatcher")
    }
    try:
        for process in processes.values():
            process.start()
        for name, port in (("worker", 8081), ("dispatcher", 8082)):
            wait_until(lambda p=port: _healthy(p), 120, what=f"fundwatch {name} on {port}")
            assert f"fundwatch probes listening on http://127.0.0.1:{port}" in processes[name].log()
    finally:
        for process in processes.values():
            try:
                process.stop(timeout=30)
            finally:
                process.kill()


def _healthy(port: int) -> bool:
    try:
        return call("GET", f"http://127.0.0.1:{port}/healthz", timeout=2)[0] == 200
    except OSError:
        return False


def test_after_a_record_dated_years_ahead_the_accounts_alerts_still_come(run, banks):
    """The far-future record is refused naming `booked_at`; the account's detectors are not blinded:
    a CNY 2,600,000 credit still raises its large-value report and an uninstructed custody debit
    its misappropriation alert. (Before: the 2031 record was taken and neither alert came.)"""
    status, answer = run.accounts(run.admin, [account("IR-FAR", "B001")])
    assert status == 200 and answer["upserted"] == 1, answer
    now = datetime.now(UTC)
    ahead = [
        txn("far-2031", "IR-FAR", booked_at="2031-01-01T00:00:00+08:00"),
        txn("far-50min", "IR-FAR", booked_at=rfc3339(now + timedelta(minutes=50))),  # within the allowance
    ]
    status, answer = run.push(banks["B001"], "B001", "far-1", ahead)
    assert status == 202 and answer["accepted"] == 1, answer
    assert [r["record_id"] for r in answer["rejected"]] == ["far-2031"]
    assert answer["rejected"][0]["error"].startswith("`booked_at`: ")
    later = [
        txn("far-big", "IR-FAR", amount="2600000.00", booked_at=rfc3339(now - timedelta(minutes=5))),
        txn("far-out", "IR-FAR", amount="150000.00", direction="debit", booked_at=rfc3339(now - timedelta(minutes=4))),
    ]  # fmt: skip
    status, answer = run.push(banks["B001"], "B001", "far-2", later)
    assert status == 202 and answer["accepted"] == 2, answer

    def typologies() -> set[str]:
        status, found = call("GET", f"{run.base}/v1/alerts?institution_id=IR-P2P-1&limit=100", run.admin)
        assert status == 200, found
        return {a["typology"] for a in found["alerts"] if "IR-FAR" in a["accounts"]}

    assert wait_until(lambda: {"large_value", "misappropriation"} <= typologies(), 90, what="the account's alerts")
