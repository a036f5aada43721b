"""Alerts delivered by signed webhook (CONTRACT.md §2, §4, §5), in the production shape:
`fundwatch gateway`, `fundwatch worker` and `fundwatch dispatcher` as processes against a Tansu
broker and a ClickHouse server, with real HTTP receivers that verify signatures with the
`standardwebhooks` package and parse events with the `cloudevents` SDK."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import time
import urllib.request
import uuid

import pytest

from schemas.ddl import DATABASE
from tests.support import (
    ClickHouseServer,
    FundwatchProcess,
    call,
    free_port,
    promtool,
    wait_ready,
    wait_until,
)

pytestmark = pytest.mark.e2e

ADMIN = "wh-admin-" + uuid.uuid4().hex
# the gateway and the dispatcher must share it: each refuses to start without one
SECRET_KEY = base64.b64encode(os.urandom(32)).decode()
BANK = "B001"
INSTITUTIONS = {
    "220102": {"institution_id": "WH-JL-1", "uscc": "91220101MA14TXQ23K", "account": "6217000011112201"},
    "110101": {"institution_id": "WH-BJ-1", "uscc": "91110101MA14TXQ23K", "account": "6217000099991101"},
}
RETRY_BASE_S = 0.25
DEAD_WINDOW_S = 8.0  # the dead-letter phase: a receiver down longer than this ends dead
LONG_WINDOW_S = 300.0  # the restart phase: nothing may die while the dispatcher is away
TIMEOUT_S = 1.0


def _institution(region: str) -> dict:
    inst = INSTITUTIONS[region]
    return {
        "institution_id": inst["institution_id"], "name": f"某网络借贷信息中介有限公司{region}", "uscc": inst["uscc"],
        "type": "p2p_lending", "region": region, "business_scope": "网络借贷信息中介服务", "licences": ["ICP"],
        "status": "active",
    }  # fmt: skip


def _account(region: str) -> dict:
    inst = INSTITUTIONS[region]
    return {
        "account_id": inst["account"], "bank_code": BANK, "institution_id": inst["institution_id"],
        "role": "customer_custody", "holder_name": "客户资金存管户",
    }  # fmt: skip


def _large_credit(region: str, day: int) -> dict:
    """A credit over the non-natural-person line on its own Beijing day: one large_value alert."""
    return {
        "kind": "transaction", "record_id": f"wh-{region}-{day}", "account_id": INSTITUTIONS[region]["account"],
        "direction": "credit", "amount": "2500000.00", "currency": "CNY",
        "booked_at": f"2026-11-{day:02d}T10:00:00+08:00", "counterparty_account": f"6230000000{day:06d}",
        "counterparty_bank": "B777", "channel": "HVPS",
    }  # fmt: skip


class Stack:
    def __init__(self, root, bootstrap: str, clickhouse_url: str) -> None:
        self.root = root
        self.clickhouse_url = clickhouse_url
        self.gateway_port, self.worker_port, self.dispatcher_port = free_port(), free_port(), free_port()
        self.base = f"http://127.0.0.1:{self.gateway_port}"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("FUNDWATCH_")},
            "FUNDWATCH_KAFKA_BOOTSTRAP": bootstrap,
            "FUNDWATCH_CLICKHOUSE_URL": clickhouse_url,
            "FUNDWATCH_ADMIN_TOKEN": ADMIN,
            "FUNDWATCH_SECRET_KEY": SECRET_KEY,
            "FUNDWATCH_DATA_DIR": str(root),
            "FUNDWATCH_APP_ID": f"fw-wh-{uuid.uuid4().hex[:8]}",
            "FUNDWATCH_WEBHOOK_ALLOW_PRIVATE": "1",  # the receivers listen on loopback
            "FUNDWATCH_WEBHOOK_RETRY_BASE_S": str(RETRY_BASE_S),
            "FUNDWATCH_WEBHOOK_TIMEOUT_S": str(TIMEOUT_S),
            "FUNDWATCH_LOG_LEVEL": os.environ.get("FW_TEST_LOG_LEVEL", "INFO"),
        }
        self.gateway = FundwatchProcess(
            ["gateway", "--http-port", str(self.gateway_port)], self.env, root / "gateway.log"
        )
        self.worker = FundwatchProcess(
            ["worker", "--http-port", str(self.worker_port)], self.env, root / "worker.log"
        )
        self.dispatcher: FundwatchProcess | None = None
        self.dispatchers_started = 0

    @property
    def dispatcher_url(self) -> str:
        return f"http://127.0.0.1:{self.dispatcher_port}"

    def start_dispatcher(self, window_s: float) -> None:
        self.dispatchers_started += 1
        env = {**self.env, "FUNDWATCH_WEBHOOK_RETRY_WINDOW_S": str(window_s)}
        self.dispatcher = FundwatchProcess(
            ["dispatcher", "--http-port", str(self.dispatcher_port)],
            env,
            self.root / f"dispatcher-{self.dispatchers_started}.log",
        )
        self.dispatcher.start()
        wait_ready(self.dispatcher_url, process=self.dispatcher.process)

    def processes(self) -> list[FundwatchProcess]:
        return [p for p in (self.gateway, self.worker, self.dispatcher) if p is not None]

    def token(self, body: dict) -> str:
        status, answer = call("POST", f"{self.base}/v1/admin/tokens", ADMIN, body)
        assert status == 201, answer
        return answer["token"]

    def subscribe(self, token: str, url: str, **filter_) -> dict:
        status, answer = call("POST", f"{self.base}/v1/subscriptions", token, {"url": url, "filter": filter_})
        assert status == 201, answer
        return answer

    def push(self, token: str, records: list[dict]) -> None:
        batch = {"batch_id": f"wh-{uuid.uuid4().hex}", "bank_code": BANK, "records": records}
        status, answer = call("POST", f"{self.base}/v1/batches", token, batch)
        assert status == 202 and answer["accepted"] == len(records), answer

    def alerts(self) -> dict[str, dict]:
        status, answer = call("GET", f"{self.base}/v1/alerts?limit=1000", ADMIN)
        assert status == 200, answer
        return {a["alert_id"]: a for a in answer["alerts"]}

    def stored_subscription(self, subscription_id: str) -> list[str]:
        """Every version of a subscription's row in ClickHouse as stored, newest last."""
        from services.storage import open_storage

        storage = open_storage(self.clickhouse_url)
        try:
            rows = storage.query(
                f"""SELECT subscription_id, owner_token_id, url, doc FROM {DATABASE}.subscriptions
                    WHERE subscription_id = %(id)s ORDER BY version""",
                {"id": subscription_id},
            )
        finally:
            storage.close()
        return ["\t".join(row) for row in rows]

    def deliveries(self, subscription_id: str, token: str = ADMIN, status: str = "") -> list[dict]:
        query = f"?limit=1000&status={status}" if status else "?limit=1000"
        code, answer = call("GET", f"{self.base}/v1/subscriptions/{subscription_id}/deliveries{query}", token)
        assert code == 200, answer
        return answer["deliveries"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory, receivers):
    from services.broker import EmbeddedBroker

    root = tmp_path_factory.mktemp("webhooks")
    broker = EmbeddedBroker(root / "broker.log")
    clickhouse = ClickHouseServer(root / "clickhouse")
    running = None
    try:
        bootstrap = broker.start()
        clickhouse.start()
        running = Stack(root, bootstrap, clickhouse.url)
        running.gateway.start()
        running.worker.start()
        wait_ready(running.base, process=running.gateway.process)
        wait_ready(f"http://127.0.0.1:{running.worker_port}", process=running.worker.process)
        running.start_dispatcher(LONG_WINDOW_S)
        status, answer = call("PUT", f"{running.base}/v1/reference/institutions", ADMIN,
                              [_institution(r) for r in INSTITUTIONS])  # fmt: skip
        assert status == 200 and answer["upserted"] == 2, answer
        status, answer = call("PUT", f"{running.base}/v1/reference/accounts", ADMIN,
                              [_account(r) for r in INSTITUTIONS])  # fmt: skip
        assert status == 200 and answer["upserted"] == 2, answer
        running.bank = running.token({"role": "bank", "bank_code": BANK})
        yield running
        for process in running.processes():
            assert process.stop() == 0, process.log()[-3000:]
    finally:
        if running is not None:
            for process in running.processes():
                process.kill()
        clickhouse.stop()
        broker.stop()


def _wait_delivered(stack: Stack, subscription_id: str, count: int, timeout: float = 60.0) -> list[dict]:
    def done():
        log = stack.deliveries(subscription_id)
        return log if len(log) >= count and all(d["state"] == "delivered" for d in log) else None

    return wait_until(done, timeout, interval=0.3, what=f"{count} deliveries to {subscription_id}")


def _wait_alerts(stack: Stack, count: int) -> dict[str, dict]:
    def enough():
        alerts = stack.alerts()
        return alerts if len(alerts) >= count else None

    return wait_until(enough, 60, what=f"{count} alerts")


def _wait_state(stack: Stack, subscription_id: str, state: str, timeout: float = 30.0) -> list[dict]:
    def reached():
        log = stack.deliveries(subscription_id)
        return log if log and all(d["state"] == state for d in log) else None

    return wait_until(reached, timeout, what=f"messages of {subscription_id} {state}")


def test_desks_and_banks_are_confined_when_subscribing(stack, receivers):
    desk = stack.token({"role": "desk", "region": "22"})
    status, answer = call("POST", f"{stack.base}/v1/subscriptions", desk,
                          {"url": receivers.url("elsewhere"), "filter": {"region": "11"}})  # fmt: skip
    assert status == 403 and answer["error"]["field"] == "filter.region"
    status, answer = call(
        "POST", f"{stack.base}/v1/subscriptions", stack.bank, {"url": receivers.url("bank")}
    )
    assert status == 403
    status, answer = call("GET", f"{stack.base}/v1/alerts", stack.bank)
    assert status == 403
    status, answer = call("POST", f"{stack.base}/v1/subscriptions", ADMIN,
                          {"url": receivers.url("x"), "filter": {"min_severity": "severe"}})  # fmt: skip
    assert status == 422 and answer["error"]["field"] == "filter.min_severity"


def test_every_alert_reaches_every_subscriber_signed_masked_and_deduplicable(stack, receivers):
    desk = stack.token({"role": "desk", "region": "22"})
    # large-value reports go only to subscriptions that name them (CONTRACT.md §5)
    reports = {"typologies": ["large_value"]}
    subs = {
        "healthy": stack.subscribe(ADMIN, receivers.url("healthy"), **reports),
        "flaky": stack.subscribe(ADMIN, receivers.url("flaky"), **reports),
        "desk": stack.subscribe(desk, receivers.url("desk"), **reports),  # forced into region 22
        "gone": stack.subscribe(ADMIN, receivers.url("gone"), **reports),
        "unfiltered": stack.subscribe(ADMIN, receivers.url("unfiltered")),
    }
    for name, sub in subs.items():
        receivers[name].secret = sub["secret"]
    receivers["flaky"].fail_first = 2
    receivers["gone"].status = 410
    status, listed = call("GET", f"{stack.base}/v1/subscriptions", desk)
    assert status == 200 and [s["id"] for s in listed["subscriptions"]] == [subs["desk"]["id"]]
    assert listed["subscriptions"][0]["filter"]["region"] == "22"
    assert "secret" not in listed["subscriptions"][0]

    stack.push(stack.bank, [_large_credit(region, day) for region in INSTITUTIONS for day in range(1, 5)])
    alerts = _wait_alerts(stack, 8)
    in_22 = {aid for aid, a in alerts.items() if a["region"].startswith("22")}
    assert len(in_22) == 4

    _wait_delivered(stack, subs["healthy"]["id"], len(alerts))
    flaky = _wait_delivered(stack, subs["flaky"]["id"], len(alerts))
    desk_log = _wait_delivered(stack, subs["desk"]["id"], len(in_22))
    got = {(r.data["alert_id"], r.data.get("revision", 1)) for r in receivers["healthy"].delivered().values()}
    assert got == {(aid, a.get("revision", 1)) for aid, a in alerts.items()}
    # the desk's subscription carries its own region's alerts and nothing else
    assert {r.data["alert_id"] for r in receivers["desk"].delivered().values()} == in_22
    assert len(desk_log) == 4
    # a subscription that does not name large_value hears of none of them
    assert receivers["unfiltered"].received == [] and stack.deliveries(subs["unfiltered"]["id"]) == []

    # a failing receiver gets every alert in the end, each message under one webhook-id
    for message in flaky:
        assert [a.get("status") for a in message["attempts"]] == [503, 503, 200]
    ids_seen = {}
    for received in receivers["flaky"].received:
        ids_seen.setdefault(received.webhook_id, set()).add(received.data["alert_id"])
    assert all(len(seen) == 1 for seen in ids_seen.values())
    assert set(ids_seen) == {m["webhook_id"] for m in flaky}
    assert {received.data["alert_id"] for received in receivers["flaky"].delivered().values()} == set(alerts)

    # CloudEvents shape, and account numbers masked to their last 4 characters
    for received in receivers["healthy"].delivered().values():
        assert received.event.get_type() == "fundwatch.alert.large_value"
        assert received.event.get_specversion() == "1.0"
        assert received.event.get_subject() in {i["institution_id"] for i in INSTITUTIONS.values()}
        for inst in INSTITUTIONS.values():
            assert inst["account"].encode() not in received.body
        assert all(a.startswith("****") for a in received.data["accounts"])
    assert not any(receivers[name].bad for name in subs)

    # the desk reads its own log; another desk cannot see it at all
    other = stack.token({"role": "desk", "region": "11"})
    code, _ = call("GET", f"{stack.base}/v1/subscriptions/{subs['desk']['id']}/deliveries", other)
    assert code == 404
    assert len(stack.deliveries(subs["desk"]["id"], token=desk, status="delivered")) == 4
    code, _ = call("DELETE", f"{stack.base}/v1/subscriptions/{subs['desk']['id']}", other)
    assert code == 404

    # a 410 disables the subscription: no attempt after the first answer (those already in flight,
    # at most the per-subscriber concurrency, may meet it too), and its messages are dead
    gone = _wait_state(stack, subs["gone"]["id"], "dead")
    assert 1 <= sum(len(d["attempts"]) for d in gone) <= 4
    assert {d["dead_reason"] for d in gone} == {"subscription_gone"}
    status, listed = call("GET", f"{stack.base}/v1/subscriptions", ADMIN)
    state = {s["id"]: s["state"] for s in listed["subscriptions"]}
    assert state[subs["gone"]["id"]] == "disabled" and state[subs["healthy"]["id"]] == "active"
    # and it gets no message for an alert raised since
    stack.push(stack.bank, [_large_credit("220102", 9)])
    _wait_delivered(stack, subs["healthy"]["id"], len(alerts) + 1)
    assert len(stack.deliveries(subs["gone"]["id"])) == len(gone)


def test_after_a_rotation_messages_carry_both_signatures(stack, receivers):
    from standardwebhooks.webhooks import Webhook

    sub = stack.subscribe(ADMIN, receivers.url("rotating"), region="22", typologies=["large_value"])
    old = receivers["rotating"].secret = sub["secret"]
    status, answer = call("POST", f"{stack.base}/v1/subscriptions/{sub['id']}/rotate-secret", ADMIN)
    assert status == 200 and answer["secret"].startswith("whsec_") and answer["secret"] != old
    status, listed = call("GET", f"{stack.base}/v1/subscriptions", ADMIN)
    (shown,) = [s for s in listed["subscriptions"] if s["id"] == sub["id"]]
    assert "previous_secret_valid_until" in shown and "previous_secret" not in shown
    # at rest both keys are encrypted, in every version of the row
    stored = stack.stored_subscription(sub["id"])
    assert len(stored) == 2
    for key in (old, answer["secret"]):
        assert not any(key.removeprefix("whsec_") in row for row in stored)
    doc = json.loads(stored[-1].split("\t")[3])
    assert doc["secret"].startswith("v1:") and doc["previous_secret"].startswith("v1:")
    stack.push(stack.bank, [_large_credit("220102", 10)])
    _wait_delivered(stack, sub["id"], 1)
    (received,) = receivers["rotating"].delivered().values()
    assert received.signatures == 2
    # a receiver on either key accepts the same message
    for key in (old, answer["secret"]):
        Webhook(key).verify(received.body, received.headers)
    status, _ = call("DELETE", f"{stack.base}/v1/subscriptions/{sub['id']}", ADMIN)
    assert status == 204
    status, listed = call("GET", f"{stack.base}/v1/subscriptions", ADMIN)
    assert sub["id"] not in {s["id"] for s in listed["subscriptions"]}
    status, _ = call("POST", f"{stack.base}/v1/subscriptions/{sub['id']}/rotate-secret", ADMIN)
    assert status == 404


def test_a_dispatcher_killed_mid_retry_loses_no_message(stack, receivers):
    sub = stack.subscribe(ADMIN, receivers.url("recovering"), region="11", typologies=["large_value"])
    receivers["recovering"].secret = sub["secret"]
    receivers["recovering"].status = 500
    stack.push(stack.bank, [_large_credit("110101", day) for day in (11, 12, 13)])

    def retrying():
        log = stack.deliveries(sub["id"])
        return log if len(log) == 3 and all(len(d["attempts"]) >= 2 for d in log) else None

    before = wait_until(retrying, 60, what="three messages in retry")
    assert {d["state"] for d in before} == {"pending"}
    assert stack.dispatcher.stop(signal.SIGKILL) == -signal.SIGKILL
    # alerts raised while the dispatcher is away wait on the topic
    stack.push(stack.bank, [_large_credit("110101", day) for day in (14, 15)])
    wait_until(lambda: len([a for a in stack.alerts().values() if a["region"] == "110101" and a["typology"] == "large_value"]) >= 9, 60,
               what="the alerts raised meanwhile")  # fmt: skip
    receivers["recovering"].status = 200
    stack.start_dispatcher(LONG_WINDOW_S)

    after = _wait_delivered(stack, sub["id"], 5, timeout=90)
    assert len(after) == 5, [(d["typology"], d["alert_id"], d["created_at"]) for d in after]
    assert {d["webhook_id"] for d in before} <= {d["webhook_id"] for d in after}
    delivered = receivers["recovering"].delivered()
    assert set(delivered) == {d["webhook_id"] for d in after}
    days = sorted(int(r.data["window_start"][8:10]) for r in delivered.values())
    assert len(days) == 5
    for message in after:
        if message["webhook_id"] in {d["webhook_id"] for d in before}:
            assert len(message["attempts"]) >= 3  # the attempts before the kill are in the log


def test_a_receiver_down_past_the_retry_window_ends_dead_while_others_stay_on_time(stack, receivers):
    stack.dispatcher.stop()
    stack.start_dispatcher(DEAD_WINDOW_S)
    slow = stack.subscribe(ADMIN, receivers.url("down"), region="22", typologies=["large_value"])
    receivers["down"].secret = slow["secret"]
    receivers["down"].delay_s = TIMEOUT_S * 3  # never answers in time
    prompt = stack.subscribe(ADMIN, receivers.url("prompt"), region="22", typologies=["large_value"])
    receivers["prompt"].secret = prompt["secret"]
    stack.push(stack.bank, [_large_credit("220102", day) for day in (21, 22, 23)])

    on_time = _wait_delivered(stack, prompt["id"], 3, timeout=60)
    down_now = stack.deliveries(slow["id"])
    assert down_now and {d["state"] for d in down_now} == {"pending"}  # still being retried meanwhile
    for message in on_time:
        delivered_at = time.mktime(time.strptime(message["delivered_at"][:19], "%Y-%m-%dT%H:%M:%S"))
        created_at = time.mktime(time.strptime(message["created_at"][:19], "%Y-%m-%dT%H:%M:%S"))
        assert delivered_at - created_at <= 2.0

    def dead():
        log = stack.deliveries(slow["id"], status="dead")
        return log if len(log) == 3 else None

    letters = wait_until(dead, DEAD_WINDOW_S * 4, what="the down receiver's messages dead-lettered")
    for message in letters:
        assert message["dead_reason"] == "retries_exhausted"
        assert len(message["attempts"]) >= 3
        assert {a.get("error", "")[:9] for a in message["attempts"]} == {"no answer"}


@pytest.mark.parametrize("process", ["gateway", "worker", "dispatcher"])
def test_promtool_accepts_the_metrics_of_each_process(stack, process):
    url = {
        "gateway": stack.base,
        "worker": f"http://127.0.0.1:{stack.worker_port}",
        "dispatcher": stack.dispatcher_url,
    }[process]
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read()
    checked = subprocess.run([promtool(), "check", "metrics"], input=text, capture_output=True, timeout=60)
    assert checked.returncode == 0, checked.stdout.decode() + checked.stderr.decode()
    # families by name; a counter's family is named with its _total in the text format
    names = {
        line.split()[2].removesuffix("_total")
        for line in text.decode().splitlines()
        if line.startswith("# TYPE")
    }
    expected = {
        "gateway": {"fundwatch_records_received", "fundwatch_records_rejected", "fundwatch_http_requests"},
        "worker": {"fundwatch_records_processed", "fundwatch_consumer_lag_messages", "fundwatch_alerts",
                   "fundwatch_clickhouse_insert_rows", "fundwatch_message_processing_seconds"},
        "dispatcher": {"fundwatch_webhook_attempts", "fundwatch_webhook_dead_letters",
                       "fundwatch_webhook_delivery_latency_seconds", "fundwatch_webhook_pending_messages"},
    }[process]  # fmt: skip
    assert expected <= names
    # the figures are there, not only their declarations: each process has counted real work
    samples = {
        line.split("{")[0].split()[0] for line in text.decode().splitlines() if line and line[0] != "#"
    }
    counted = {
        "gateway": {"fundwatch_records_received_total", "fundwatch_records_accepted_total"},
        "worker": {"fundwatch_records_processed_total", "fundwatch_consumer_lag_messages",
                   "fundwatch_clickhouse_insert_rows_total", "fundwatch_alerts_total"},
        "dispatcher": {"fundwatch_webhook_attempts_total", "fundwatch_webhook_successes_total",
                       "fundwatch_webhook_dead_letters_total", "fundwatch_consumer_lag_messages"},
    }[process]  # fmt: skip
    assert counted <= samples


def test_desks_see_only_their_region_and_banks_no_alert(stack):
    alerts = stack.alerts()
    assert {a["region"][:2] for a in alerts.values()} >= {"22", "11"}
    desk = stack.token({"role": "desk", "region": "2201"})
    status, answer = call("GET", f"{stack.base}/v1/alerts?limit=1000", desk)
    assert status == 200 and answer["alerts"]
    assert all(a["region"].startswith("2201") for a in answer["alerts"])
    assert {a["alert_id"] for a in answer["alerts"]} == {
        i for i, a in alerts.items() if a["region"].startswith("2201")
    }
    # asking for another region by filter or by id finds nothing
    status, answer = call("GET", f"{stack.base}/v1/alerts?region=11", desk)
    assert status == 403 and answer["error"]["field"] == "region"
    other = next(i for i, a in alerts.items() if a["region"].startswith("11"))
    assert call("GET", f"{stack.base}/v1/alerts/{other}", desk)[0] == 404
    assert call("GET", f"{stack.base}/v1/alerts/{other}", stack.bank)[0] == 403
    assert call("GET", f"{stack.base}/v1/alerts", stack.bank)[0] == 403


def test_a_secret_stored_in_clear_before_encryption_still_signs_and_is_encrypted_when_next_written(
    stack, receivers
):
    from services.storage import open_storage

    sub_id, plain = str(uuid.uuid4()), "whsec_" + base64.b64encode(os.urandom(32)).decode()
    doc = {"id": sub_id, "url": receivers.url("legacy"), "filter": {"typologies": ["large_value"], "region": "22"},
           "owner": {"token_id": "legacy-admin", "role": "admin"},
           "created_at": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()), "secret": plain}  # fmt: skip
    storage = open_storage(stack.clickhouse_url)
    try:  # as a release without encryption wrote it
        storage.insert(f"{DATABASE}.subscriptions", ("subscription_id", "owner_token_id", "url", "doc", "deleted", "version"),
                       [[sub_id, "legacy-admin", doc["url"], json.dumps(doc), 0, 1]])  # fmt: skip
    finally:
        storage.close()
    receivers["legacy"].secret = plain
    time.sleep(2.0)  # the dispatcher reads subscriptions again every second
    stack.push(stack.bank, [_large_credit("220102", 26)])
    _wait_delivered(stack, sub_id, 1)
    assert receivers["legacy"].delivered() and not receivers["legacy"].bad  # signed with the old key
    status, answer = call("POST", f"{stack.base}/v1/subscriptions/{sub_id}/rotate-secret", ADMIN)
    assert status == 200
    newest = stack.stored_subscription(sub_id)[-1]
    assert (
        plain.removeprefix("whsec_") not in newest and answer["secret"].removeprefix("whsec_") not in newest
    )
    stored = json.loads(newest.split("\t")[3])
    assert stored["secret"].startswith("v1:") and stored["previous_secret"].startswith("v1:")
    assert call("DELETE", f"{stack.base}/v1/subscriptions/{sub_id}", ADMIN)[0] == 204
