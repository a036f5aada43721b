"""`fundwatch run` from outside: only the HTTP contract (CONTRACT.md §2–3), the process, its files.

One embedded stack is started for the module and restarted on the same data dir where a test
needs to see what survives a restart.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import uuid
from decimal import Decimal

import pytest

from tests.support import (
    FundwatchProcess,
    call,
    child_pids,
    free_port,
    pid_alive,
    promtool,
    wait_ready,
    wait_until,
)

pytestmark = pytest.mark.e2e

INSTITUTION = {
    "institution_id": "E2E-P2P-1",
    "name": "吉林某网络借贷信息中介有限公司",
    "uscc": "91220101MA14TXQ23K",
    "type": "p2p_lending",
    "region": "220102",
    "business_scope": "网络借贷信息中介服务",
    "licences": ["ICP"],
    "status": "active",
}
CUSTODY = {
    "account_id": "E2E-CUST-1",
    "bank_code": "B001",
    "institution_id": "E2E-P2P-1",
    "role": "customer_custody",
    "holder_name": "客户资金存管户",
}


class Stack:
    def __init__(self, root, port: int) -> None:
        self.root = root
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("FUNDWATCH_")}
        env["FUNDWATCH_LOG_LEVEL"] = os.environ.get("FW_TEST_LOG_LEVEL", "INFO")
        self.process = FundwatchProcess(
            ["run", "--no-simulator", "--data-dir", str(root), "--http-port", str(port)],
            env,
            root / "run.log",
        )

    def start(self) -> None:
        self.process.start()
        wait_ready(self.base, timeout=120, process=self.process.process)

    @property
    def admin(self) -> str:
        return (self.root / "admin-token").read_text().strip()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    running = Stack(tmp_path_factory.mktemp("run"), free_port())
    try:
        running.start()
        yield running
        running.process.stop()
    finally:
        running.process.kill()


@pytest.fixture
def lone_stack(tmp_path):
    """A stack of its own, for tests that stop or break it."""
    running = Stack(tmp_path, free_port())
    try:
        running.start()
        yield running
    finally:
        running.process.kill()


@pytest.fixture(scope="module")
def bank(stack):
    status, answer = call(
        "POST", f"{stack.base}/v1/admin/tokens", stack.admin, {"role": "bank", "bank_code": "B001"}
    )
    assert status == 201 and answer["role"] == "bank" and answer["bank_code"] == "B001"
    return answer["token"]


def txn(record_id: str, amount: str = "100.00", account: str = "E2E-CUST-1", **extra) -> dict:
    record = {
        "kind": "transaction",
        "record_id": record_id,
        "account_id": account,
        "direction": "credit",
        "amount": amount,
        "currency": "CNY",
        "booked_at": "2026-11-20T10:00:00+08:00",
        "counterparty_account": "6222000011112222",
        "counterparty_bank": "B002",
        "channel": "IBPS",
    }
    record.update(extra)
    return record


def push(stack, token, batch_id, records, bank_code="B001"):
    return call(
        "POST",
        f"{stack.base}/v1/batches",
        token,
        {"batch_id": batch_id, "bank_code": bank_code, "records": records},
    )


def flows(stack, account):
    status, answer = call("GET", f"{stack.base}/v1/accounts/{account}/flows?grain=day", stack.admin)
    assert status == 200, answer
    return answer


def cny(stack, account) -> dict:
    """An account's CNY totals; empty while the account is unknown (an unregistered account is
    404 until a worker has stored its first record)."""
    status, answer = call("GET", f"{stack.base}/v1/accounts/{account}/flows?grain=day", stack.admin)
    if status == 404:
        return {}
    assert status == 200, answer
    return answer["totals"].get("CNY", {})


# --- process and files ---------------------------------------------------------------------


def test_admin_token_is_generated_and_kept_private(stack):
    path = stack.root / "admin-token"
    assert path.exists() and oct(path.stat().st_mode & 0o777) == "0o600"
    assert "Admin token" in stack.process.log()


def test_the_webhook_secrets_key_is_generated_once_and_kept_private(stack):
    path = stack.root / "secret-key"
    assert path.exists() and oct(path.stat().st_mode & 0o777) == "0o600"
    assert len(base64.b64decode(path.read_text().strip(), validate=True)) == 32


def test_health_readiness_metrics_and_openapi_need_no_token(stack):
    assert call("GET", f"{stack.base}/healthz")[0] == 200
    status, ready = call("GET", f"{stack.base}/readyz")
    assert status == 200 and ready["checks"] == {
        "broker": True,
        "storage": True,
        "workers": True,
        "dispatcher": True,
    }
    status, text = call("GET", f"{stack.base}/metrics")
    assert status == 200 and "fundwatch_records_received_total" in text
    # a poller may ask for the metrics it watches alone (Prometheus's name[] parameter)
    status, only = call("GET", f"{stack.base}/metrics?name%5B%5D=fundwatch_records_received_total")
    samples = [line for line in only.splitlines() if line and not line.startswith("#")]
    assert status == 200 and samples and len(only) < len(text)
    assert all(line.startswith("fundwatch_records_received_total") for line in samples)
    status, spec = call("GET", f"{stack.base}/v1/openapi.json")
    assert status == 200 and spec["openapi"].startswith("3.1")
    assert "/v1/batches" in spec["paths"]


# --- authentication ------------------------------------------------------------------------


def test_missing_or_wrong_token_is_401(stack):
    batch = {"batch_id": "x", "bank_code": "B001", "records": []}
    for token in (None, "fw_bank_not-a-real-token"):
        status, answer = call("POST", f"{stack.base}/v1/batches", token, batch)
        assert status == 401 and answer["error"]["code"] == "unauthorized"


def test_tokens_without_the_right_are_403(stack, bank):
    status, _ = call("POST", f"{stack.base}/v1/admin/tokens", bank, {"role": "admin"})
    assert status == 403
    status, _ = call("PUT", f"{stack.base}/v1/reference/institutions", bank, [INSTITUTION])
    assert status == 403
    status, desk = call(
        "POST", f"{stack.base}/v1/admin/tokens", stack.admin, {"role": "desk", "region": "2201"}
    )
    assert status == 201 and desk["region"] == "2201"
    status, _ = call(
        "POST",
        f"{stack.base}/v1/batches",
        desk["token"],
        {"batch_id": "d", "bank_code": "B001", "records": []},
    )
    assert status == 403


def test_a_bank_pushing_another_banks_batch_is_403_and_nothing_is_kept(stack, bank):
    status, answer = push(stack, bank, "other-bank-1", [txn("ob-1")], bank_code="B002")
    assert status == 403 and answer["error"]["field"] == "bank_code"
    # nothing was remembered: the record is new when its own bank sends it
    status, answer = push(stack, bank, "other-bank-1", [txn("ob-1", account="E2E-OB")])
    assert status == 202 and answer["accepted"] == 1


def test_token_requests_name_the_missing_field(stack):
    status, answer = call("POST", f"{stack.base}/v1/admin/tokens", stack.admin, {"role": "bank"})
    assert status == 422 and answer["error"]["field"] == "bank_code"
    status, answer = call(
        "POST", f"{stack.base}/v1/admin/tokens", stack.admin, {"role": "desk", "region": "22x"}
    )
    assert status == 422 and answer["error"]["field"] == "region"
    status, answer = call("POST", f"{stack.base}/v1/admin/tokens", stack.admin, {"role": "king"})
    assert status == 422 and answer["error"]["field"] == "role"


# --- reference data ------------------------------------------------------------------------


def test_reference_upserts_answer_per_item(stack, bank):
    bad = {**INSTITUTION, "institution_id": "E2E-BAD", "uscc": "123", "region": "22"}
    status, answer = call("PUT", f"{stack.base}/v1/reference/institutions", stack.admin, [INSTITUTION, bad])
    assert status == 200 and answer["upserted"] == 1
    assert answer["rejected"][0]["index"] == 1 and answer["rejected"][0]["id"] == "E2E-BAD"
    assert "`uscc`" in answer["rejected"][0]["error"]

    foreign = {**CUSTODY, "account_id": "E2E-FOREIGN", "bank_code": "B009"}
    status, answer = call("PUT", f"{stack.base}/v1/reference/accounts", bank, [CUSTODY, foreign])
    assert status == 200 and answer["upserted"] == 1
    assert answer["rejected"][0]["index"] == 1 and "bank_code" in answer["rejected"][0]["error"]

    product = {"product_id": "E2E-PR-1", "institution_id": "E2E-P2P-1", "name": "月月盈", "declared_annual_yield": "0.085",
               "term_days": 30, "underlying_project_rate": "0.12", "underlying_term_days": 360, "investor_cap": 200}  # fmt: skip
    party = {"party_id": "E2E-RP-1", "institution_id": "E2E-P2P-1", "name": "某控股集团", "relation": "shareholder",
             "accounts": ["E2E-RP-ACC"]}  # fmt: skip
    assert call("PUT", f"{stack.base}/v1/reference/products", stack.admin, [product])[1]["upserted"] == 1
    assert call("PUT", f"{stack.base}/v1/reference/related-parties", stack.admin, [party])[1]["upserted"] == 1
    status, answer = call("PUT", f"{stack.base}/v1/reference/products", stack.admin, {"not": "an array"})
    assert status == 422


# --- batches -------------------------------------------------------------------------------


def test_each_rejected_record_names_its_field_and_the_rest_are_accepted(stack, bank):
    records = [
        txn("rj-ok-1", "10.00"),
        txn("rj-amount", "10.001"),
        txn("rj-zero", "0.00"),
        txn("rj-time", booked_at="2026-11-20 10:00:00"),
        txn("rj-dir", direction="sideways"),
        txn("rj-channel", channel="SWIFT"),
        {k: v for k, v in txn("rj-missing").items() if k != "counterparty_bank"},
        {
            "kind": "balance",
            "record_id": "rj-bal",
            "account_id": "E2E-CUST-1",
            "as_of": "2026-11-20T18:00:00+08:00",
            "balance": "5.00",
            "customer_liabilities": "-1.00",
        },  # fmt: skip
        {"kind": "loan", "record_id": "rj-kind"},
        txn("rj-float", 10.5),
        txn("rj-ok-2", "20.00"),
    ]
    status, answer = push(stack, bank, "rejects-1", records)
    assert status == 202 and answer["accepted"] == 2 and answer["duplicates"] == 0
    named = {r["record_id"]: (r["index"], r["error"]) for r in answer["rejected"]}
    expect = {"rj-amount": "amount", "rj-zero": "amount", "rj-time": "booked_at", "rj-dir": "direction",
              "rj-channel": "channel", "rj-missing": "counterparty_bank", "rj-bal": "customer_liabilities",
              "rj-kind": "kind", "rj-float": "amount"}  # fmt: skip
    assert set(named) == set(expect)
    for record_id, field in expect.items():
        index, error = named[record_id]
        assert records[index]["record_id"] == record_id
        assert f"`{field}`" in error, (record_id, error)


def test_a_resent_batch_id_returns_the_first_answer_and_changes_nothing(stack, bank):
    records = [txn(f"idem-{i}", "1.10", account="E2E-IDEM") for i in range(3)]
    first = push(stack, bank, "idem-1", records)
    assert first[0] == 202 and first[1]["accepted"] == 3
    assert push(stack, bank, "idem-1", records) == first
    # other records under the same batch_id are refused (409), not answered as the first batch
    status, refused = push(stack, bank, "idem-1", records + [txn("idem-extra", "9.99", account="E2E-IDEM")])
    assert status == 409 and refused["error"]["field"] == "batch_id"
    wait_until(lambda: cny(stack, "E2E-IDEM").get("inflow") == "3.30", 30, what="3.30 in E2E-IDEM")
    assert cny(stack, "E2E-IDEM").get("credits") == 3


def test_a_record_already_accepted_is_a_duplicate_and_counted_once(stack, bank):
    status, first = push(
        stack,
        bank,
        "dup-1",
        [txn("dup-a", "7.00", account="E2E-DUP"), txn("dup-b", "8.00", account="E2E-DUP")],
    )
    assert first["accepted"] == 2
    status, second = push(
        stack,
        bank,
        "dup-2",
        [txn("dup-a", "7.00", account="E2E-DUP"), txn("dup-c", "9.00", account="E2E-DUP")],
    )
    assert (second["accepted"], second["duplicates"]) == (1, 1)
    status, inner = push(
        stack,
        bank,
        "dup-3",
        [txn("dup-d", "1.00", account="E2E-DUP"), txn("dup-d", "1.00", account="E2E-DUP")],
    )
    assert (inner["accepted"], inner["duplicates"]) == (1, 1)
    wait_until(lambda: cny(stack, "E2E-DUP").get("inflow") == "25.00", 30, what="25.00 in E2E-DUP")


def test_batch_limits_are_413_and_reject_the_whole_batch(stack, bank):
    status, answer = push(
        stack, bank, "too-many", [txn(f"tm-{i}", account="E2E-LIMIT") for i in range(10_001)]
    )
    assert status == 413 and answer["error"]["code"] == "too_many_records"
    status, answer = call(
        "POST", f"{stack.base}/v1/batches", bank, raw=b"{" + b" " * (8 * 1024 * 1024) + b"}"
    )
    assert status == 413 and answer["error"]["code"] == "body_too_large"
    # exactly the limit is taken
    status, answer = push(
        stack, bank, "at-limit", [txn(f"al-{i}", "0.01", account="E2E-LIMIT") for i in range(10_000)]
    )
    assert status == 202 and answer["accepted"] == 10_000
    # the rejected batches left nothing behind: their record ids are still new
    status, answer = push(stack, bank, "too-many", [txn("tm-0", "0.01", account="E2E-LIMIT2")])
    assert status == 202 and answer["accepted"] == 1


def test_malformed_batches_are_rejected_whole_naming_the_field(stack, bank):
    status, answer = call("POST", f"{stack.base}/v1/batches", bank, raw=b"{not json")
    assert status == 400
    status, answer = call(
        "POST", f"{stack.base}/v1/batches", bank, {"bank_code": "B001", "records": [txn("mf-1")]}
    )
    assert status == 422 and answer["error"]["field"] == "batch_id"
    status, answer = call(
        "POST", f"{stack.base}/v1/batches", bank, {"batch_id": "mf", "bank_code": "B001", "records": {}}
    )
    assert status == 422 and answer["error"]["field"] == "records"
    # none of it was applied: the same ids are new afterwards
    status, answer = push(stack, bank, "mf", [txn("mf-1", account="E2E-MF")])
    assert status == 202 and answer["accepted"] == 1


def test_sums_per_account_are_exact_decimals(stack, bank):
    amounts = ["0.10", "0.20", "1234567.89", "0.01", "99999.99"] * 40
    records = [txn(f"ex-{i}", amount, account="E2E-EXACT") for i, amount in enumerate(amounts)]
    records += [txn(f"ex-out-{i}", "0.07", account="E2E-EXACT", direction="debit") for i in range(3)]
    assert push(stack, bank, "exact-1", records)[1]["accepted"] == len(records)
    inflow = sum(Decimal(a) for a in amounts)
    wait_until(lambda: cny(stack, "E2E-EXACT").get("inflow") == f"{inflow:.2f}", 30, what="exact inflow")
    assert cny(stack, "E2E-EXACT").get("outflow") == "0.21"


def test_desk_sees_flows_only_in_its_region(stack, bank):
    push(stack, bank, "scope-1", [txn("scope-a", "5.00")])
    wait_until(lambda: cny(stack, "E2E-CUST-1").get("credits", 0) >= 1, 30, what="custody flows")
    near = call("POST", f"{stack.base}/v1/admin/tokens", stack.admin, {"role": "desk", "region": "2201"})[1][
        "token"
    ]
    far = call("POST", f"{stack.base}/v1/admin/tokens", stack.admin, {"role": "desk", "region": "2202"})[1][
        "token"
    ]
    assert call("GET", f"{stack.base}/v1/accounts/E2E-CUST-1/flows", near)[0] == 200
    assert call("GET", f"{stack.base}/v1/accounts/E2E-CUST-1/flows", far)[0] == 404


def test_flows_are_per_currency_and_an_unknown_account_is_404_for_every_role(stack, bank):
    # 1,000.00 CNY and 10.00 USD on one account once read as an inflow of 1010.00
    records = [txn("ccy-cny", "1000.00", account="E2E-CCY"),
               txn("ccy-usd", "10.00", account="E2E-CCY", currency="USD")]  # fmt: skip
    assert push(stack, bank, "ccy-1", records)[1]["accepted"] == 2
    wait_until(lambda: cny(stack, "E2E-CCY").get("inflow") == "1000.00", 30, what="the CNY inflow")
    answer = flows(stack, "E2E-CCY")
    assert {c: t["inflow"] for c, t in answer["totals"].items()} == {"CNY": "1000.00", "USD": "10.00"}
    assert sorted((w["currency"], w["inflow"]) for w in answer["windows"]) == [
        ("CNY", "1000.00"),
        ("USD", "10.00"),
    ]
    desk = call("POST", f"{stack.base}/v1/admin/tokens", stack.admin, {"role": "desk", "region": "22"})[1][
        "token"
    ]
    for token in (stack.admin, bank, desk):
        status, answer = call("GET", f"{stack.base}/v1/accounts/E2E-NO-SUCH-ACCOUNT/flows", token)
        assert status == 404 and answer["error"]["code"] == "not_found", answer


# --- webhooks ------------------------------------------------------------------------------


def large_credit(record_id: str, day: int) -> dict:
    """Over the CNY 2,000,000 daily line of a non-natural person: one large_value alert a day."""
    return txn(record_id, "2500000.00", booked_at=f"2026-11-{day:02d}T11:00:00+08:00", channel="HVPS")


def delivered_alerts(receivers, name: str) -> set[str]:
    return {r.data["alert_id"] for r in receivers[name].delivered().values()}


def test_the_embedded_stack_delivers_alerts_by_signed_webhook(stack, bank, receivers):
    # `fundwatch run` allows loopback subscribers, so a receiver on this machine can subscribe
    status, sub = call("POST", f"{stack.base}/v1/subscriptions", stack.admin,
                       {"url": receivers.url("run"), "filter": {"typologies": ["large_value"]}})  # fmt: skip
    assert status == 201 and sub["secret"].startswith("whsec_"), sub
    receivers["run"].secret = sub["secret"]
    assert push(stack, bank, "hook-1", [large_credit("hook-a", 21)])[1]["accepted"] == 1
    wait_until(lambda: delivered_alerts(receivers, "run"), 60, what="the alert delivered")
    (received,) = receivers["run"].delivered().values()
    assert received.event.get_type() == "fundwatch.alert.large_value"
    assert received.data["institution_id"] == "E2E-P2P-1" and received.data["accounts"] == ["****ST-1"]
    assert not receivers["run"].bad

    def logged():  # the log is written a moment after the answer came
        status, log = call("GET", f"{stack.base}/v1/subscriptions/{sub['id']}/deliveries", stack.admin)
        assert status == 200
        return log["deliveries"] if [d["state"] for d in log["deliveries"]] == ["delivered"] else None

    assert wait_until(logged, 10, what="the delivery logged")[0]["webhook_id"] == received.webhook_id


def test_promtool_accepts_the_embedded_stacks_metrics(stack):
    status, text = call("GET", f"{stack.base}/metrics")
    assert status == 200
    checked = subprocess.run(
        [promtool(), "check", "metrics"], input=text.encode(), capture_output=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout.decode() + checked.stderr.decode()
    for family in ("fundwatch_records_received_total", "fundwatch_records_processed_total",
                   "fundwatch_webhook_attempts_total", "fundwatch_consumer_lag_messages"):  # fmt: skip
        assert f"# TYPE {family} " in text


# --- restart -------------------------------------------------------------------------------


def test_after_a_restart_tokens_answers_and_duplicates_are_remembered(stack, bank):
    records = [txn(f"rs-{i}", "2.50", account="E2E-RESTART") for i in range(4)]
    status, first = push(stack, bank, "restart-1", records)
    assert status == 202 and first["accepted"] == 4
    assert stack.process.stop(signal.SIGTERM) == 0
    stack.start()
    # the bank's token, the batch's answer and the record keys came back from ClickHouse
    assert push(stack, bank, "restart-1", records) == (202, first)
    status, answer = push(stack, bank, "restart-2", records)
    assert (status, answer["accepted"], answer["duplicates"]) == (202, 0, 4)
    # reference data is back with the workers: a new record is enriched, and counted once
    status, answer = push(stack, bank, "restart-3", [txn("rs-new", "1.00", account="E2E-RESTART")])
    assert answer["accepted"] == 1
    wait_until(lambda: cny(stack, "E2E-RESTART").get("inflow") == "11.00", 30, what="11.00 after restart")


def test_after_a_restart_subscriptions_still_deliver(stack, bank, receivers):
    status, listed = call("GET", f"{stack.base}/v1/subscriptions", stack.admin)
    assert status == 200 and [s["url"] for s in listed["subscriptions"]] == [receivers.url("run")]
    before = delivered_alerts(receivers, "run")
    assert push(stack, bank, "hook-2", [large_credit("hook-b", 22)])[1]["accepted"] == 1
    wait_until(lambda: len(delivered_alerts(receivers, "run")) == len(before) + 1, 60,
               what="an alert raised after the restart delivered")  # fmt: skip


def test_sigterm_stops_everything_and_leaves_no_orphan(lone_stack):
    stack = lone_stack
    pid = stack.process.process.pid
    children = child_pids(pid)
    assert children, "the embedded broker runs as a child process"
    assert stack.process.stop(signal.SIGTERM) == 0
    wait_until(lambda: not any(pid_alive(c) for c in children), 15, what="children to exit")


def test_ctrl_c_at_the_terminal_stops_cleanly(lone_stack):
    """Ctrl-C sends SIGINT to the whole foreground process group, the broker's too if it shared it."""
    stack = lone_stack
    process = stack.process.process
    children = child_pids(process.pid)
    os.killpg(process.pid, signal.SIGINT)
    assert process.wait(30) == 0
    assert "drained" in stack.process.log()
    wait_until(lambda: not any(pid_alive(c) for c in children), 15, what="children to exit")


def test_losing_the_broker_stops_the_stack(lone_stack):
    stack = lone_stack
    process = stack.process.process
    (broker_pid,) = child_pids(process.pid)
    os.kill(broker_pid, signal.SIGKILL)
    assert process.wait(40) != 0
    assert "the embedded broker exited" in stack.process.log()


def test_a_killed_run_leaves_no_broker_behind(lone_stack):
    stack = lone_stack
    children = child_pids(stack.process.process.pid)
    stack.process.stop(signal.SIGKILL)
    wait_until(lambda: not any(pid_alive(c) for c in children), 15, what="the broker to follow its parent")


def test_a_second_run_on_the_same_data_dir_is_refused(stack):
    other = FundwatchProcess(
        ["run", "--no-simulator", "--data-dir", str(stack.root), "--http-port", str(free_port())],
        {k: v for k, v in os.environ.items() if not k.startswith("FUNDWATCH_")},
        stack.root / f"second-{uuid.uuid4().hex[:6]}.log",
    )
    other.start()
    try:
        assert other.process.wait(60) != 0
        assert "another fundwatch process" in other.log()
    finally:
        other.kill()


def test_logs_carry_no_account_numbers_or_names(stack):
    text = stack.process.log()
    for secret in ("6222000011112222", "客户资金存管户", "吉林某网络借贷"):
        assert secret not in text
    assert json.dumps("6222000011112222") not in text
