"""The notification policy from outside (CONTRACT.md §5): `fundwatch run` with a short
FUNDWATCH_NOTIFY_INTERVAL_S and real receivers. A burst of figures updates of one alert reaches a
subscriber as a bounded number of messages, the last with the newest revision; a severity change
goes at once; an update held back when the stack is killed is sent after the restart; one held
when the alert's window closes goes at once; large-value reports reach only the subscription that
names them; the alert's history keeps what changed, not every tick."""

from __future__ import annotations

import math
import os
import signal
import time
import uuid
from datetime import datetime

import pytest

from tests.support import FundwatchProcess, call, free_port, wait_ready, wait_until

pytestmark = pytest.mark.e2e

INTERVAL_S = 8.0
TICKS = 30
TICK_EVERY_S = 0.4
ACCOUNT = "NP-CUST-0001"
DAY = "2026-11-20"


def _record(record_id: str, amount: str, direction: str = "credit", day: str = DAY, minute: int = 0) -> dict:
    return {
        "kind": "transaction", "record_id": record_id, "account_id": ACCOUNT, "direction": direction,
        "amount": amount, "currency": "CNY", "booked_at": f"{day}T{10 + minute // 60:02d}:{minute % 60:02d}:00+08:00",
        "counterparty_account": "6230000000123456", "counterparty_bank": "B777", "channel": "HVPS",
    }  # fmt: skip


class Stack:
    def __init__(self, root) -> None:
        self.root = root
        self.base = f"http://127.0.0.1:{free_port()}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("FUNDWATCH_")}
        env["FUNDWATCH_LOG_LEVEL"] = os.environ.get("FW_TEST_LOG_LEVEL", "INFO")
        env["FUNDWATCH_NOTIFY_INTERVAL_S"] = str(INTERVAL_S)
        port = self.base.rsplit(":", 1)[1]
        self.process = FundwatchProcess(
            ["run", "--no-simulator", "--data-dir", str(root), "--http-port", port], env, root / "run.log"
        )

    def start(self) -> None:
        self.process.start()
        wait_ready(self.base, timeout=120, process=self.process.process)

    @property
    def admin(self) -> str:
        return (self.root / "admin-token").read_text().strip()

    def push(self, token: str, *records: dict) -> None:
        batch = {"batch_id": f"np-{uuid.uuid4().hex}", "bank_code": "B001", "records": list(records)}
        status, answer = call("POST", f"{self.base}/v1/batches", token, batch)
        assert status == 202 and answer["accepted"] == len(records), answer

    def alert(self, alert_id: str) -> dict:
        status, answer = call("GET", f"{self.base}/v1/alerts/{alert_id}", self.admin)
        assert status == 200, answer
        return answer

    def alerts(self) -> list[dict]:
        status, answer = call("GET", f"{self.base}/v1/alerts?limit=1000", self.admin)
        assert status == 200, answer
        return answer["alerts"]

    def log(self, subscription_id: str) -> dict[str, dict]:
        status, answer = call(
            "GET", f"{self.base}/v1/subscriptions/{subscription_id}/deliveries?limit=1000", self.admin
        )
        assert status == 200, answer
        return {d["webhook_id"]: d for d in answer["deliveries"]}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    running = Stack(tmp_path_factory.mktemp("notify"))
    try:
        running.start()
        yield running
        assert running.process.stop() == 0, running.process.log()[-3000:]
    finally:
        running.process.kill()


def _messages(receivers, name: str, alert_id: str | None = None) -> list:
    """Messages a receiver accepted, once per webhook-id, in the order they first came."""
    seen: dict[str, object] = {}
    for received in receivers[name].received:
        if received.ok and received.webhook_id not in seen:
            if alert_id is None or received.data["alert_id"] == alert_id:
                seen[received.webhook_id] = received
    return list(seen.values())


def _at(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_a_burst_of_figures_updates_reaches_a_subscriber_as_a_few_messages_with_the_newest_last(
    stack, receivers
):
    admin = stack.admin
    institution = {
        "institution_id": "NP-P2P-1", "name": "吉林某网络借贷信息中介有限公司", "uscc": "91220101MA14TXQ23K",
        "type": "p2p_lending", "region": "220102", "business_scope": "网络借贷信息中介服务", "licences": ["ICP"],
        "status": "active",
    }  # fmt: skip
    account = {"account_id": ACCOUNT, "bank_code": "B001", "institution_id": "NP-P2P-1",
               "role": "customer_custody", "holder_name": "客户资金存管户"}  # fmt: skip
    assert call("PUT", f"{stack.base}/v1/reference/institutions", admin, [institution])[0] == 200
    assert call("PUT", f"{stack.base}/v1/reference/accounts", admin, [account])[0] == 200
    status, answer = call(
        "POST", f"{stack.base}/v1/admin/tokens", admin, {"role": "bank", "bank_code": "B001"}
    )
    assert status == 201, answer
    bank = answer["token"]
    status, answer = call("POST", f"{stack.base}/v1/admin/tokens", admin, {"role": "desk", "region": "22"})
    desk = answer["token"]
    subs = {}
    for name, token, filter_doc in (
        ("reports", admin, {"typologies": ["large_value"]}),
        ("everything", admin, {}),
        ("desk", desk, {}),
    ):
        status, sub = call("POST", f"{stack.base}/v1/subscriptions", token,
                           {"url": receivers.url(name), "filter": filter_doc})  # fmt: skip
        assert status == 201, sub
        receivers[name].secret = sub["secret"]
        subs[name] = sub["id"]
    time.sleep(1.5)  # the dispatcher reads the subscriptions again every second

    # an early warning first: an uninstructed debit from the custody account reaches the
    # unfiltered subscriptions (they are live), not the one that asked for large-value reports
    stack.push(bank, _record("np-debit", "100000.00", direction="debit", minute=1))
    wait_until(lambda: _messages(receivers, "everything") and _messages(receivers, "desk"), 60,
               what="the misappropriation alert at the unfiltered subscriptions")  # fmt: skip

    # the burst: a credit over the CNY 2,000,000 line, then 30 more records on the same day
    began = time.monotonic()
    stack.push(bank, _record("np-0", "2500000.00", minute=2))
    for i in range(1, TICKS + 1):
        time.sleep(TICK_EVERY_S)
        stack.push(bank, _record(f"np-{i}", "10000.00", minute=2 + i))
    burst_s = time.monotonic() - began

    def settled() -> dict | None:
        found = [a for a in stack.alerts() if a["typology"] == "large_value"]
        return found[0] if found and found[0]["amount"] == "2800000.00" else None

    alert_id = wait_until(settled, 60, what="the day's total in the alert")["alert_id"]
    newest = stack.alert(alert_id)["revision"]
    assert newest >= 10, f"the burst made only {newest} revisions: it tests nothing"
    wait_until(lambda: any(m.data["revision"] == newest for m in _messages(receivers, "reports", alert_id)),
               INTERVAL_S * 2 + 30, what="the newest revision delivered")  # fmt: skip
    time.sleep(INTERVAL_S + 2)  # nothing more comes
    messages = _messages(receivers, "reports", alert_id)
    revisions = [m.data["revision"] for m in messages]
    bound = 2 + math.ceil(burst_s / INTERVAL_S)
    print(
        f"\nnotify burst: records={TICKS + 1} over {burst_s:.1f}s interval={INTERVAL_S:g}s "
        f"revisions={newest} messages={len(messages)} (bound {bound}) revisions_sent={revisions}"
    )
    assert revisions == sorted(set(revisions)) and revisions[0] == 1 and revisions[-1] == newest
    assert 2 <= len(messages) <= bound
    log = stack.log(subs["reports"])
    made = sorted(_at(d["created_at"]) for d in log.values() if d["alert_id"] == alert_id)
    assert all(later - earlier >= INTERVAL_S - 0.01 for earlier, later in zip(made, made[1:], strict=False))
    assert {d["reason"] for d in log.values() if d["alert_id"] == alert_id} <= {
        "new",
        "figures",
        "interval_end",
    }
    # the history keeps the creation, not the ticks (one amount band, one severity, one status)
    detail = stack.alert(alert_id)
    assert [h["event"] for h in detail["history"]] == ["created"] and detail["amount"] == "2800000.00"

    # a tick after a quiet interval goes at once; a severity change right after it too
    stack.push(bank, _record("np-quiet", "10000.00", minute=50))
    wait_until(lambda: len(_messages(receivers, "reports", alert_id)) == len(messages) + 1, 30,
               what="the figures update after a quiet interval")  # fmt: skip
    pushed = time.time()
    stack.push(bank, _record("np-big", "20000000.00", minute=51))  # 10x the line: medium

    def severe() -> object | None:
        found = [m for m in _messages(receivers, "reports", alert_id) if m.data["severity"] == "medium"]
        return found[0] if found else None

    changed = wait_until(severe, 30, what="the severity change")
    assert changed.at - pushed < INTERVAL_S, "a severity change must not wait for the interval"
    assert stack.log(subs["reports"])[changed.webhook_id]["reason"] == "severity"

    # an update held back when everything is killed is sent after the restart
    stack.push(bank, _record("np-held", "10000.00", minute=52))
    held = wait_until(lambda: (a := stack.alert(alert_id))["amount"] == "22820000.00" and a, 30,
                      what="the held update stored")  # fmt: skip
    assert held["revision"] == changed.data["revision"] + 1
    # The worker's states reach their snapshots about SNAPSHOT_INTERVAL_S (2 s) after a change; a
    # kill before that replays the records into an older state, whose alert revisions count again
    # from where that state was (a worker matter, not the policy's). Killed after it, still well
    # within the interval.
    time.sleep(3.5)
    assert time.time() - changed.at < INTERVAL_S - 1
    assert not any(m.data["revision"] == held["revision"] for m in _messages(receivers, "reports", alert_id))
    assert stack.process.stop(signal.SIGKILL) == -signal.SIGKILL
    stack.start()
    after = wait_until(
        lambda: next((m for m in _messages(receivers, "reports", alert_id) if m.data["revision"] == held["revision"]), None),
        INTERVAL_S * 2 + 60, what="the held update after the restart",
    )  # fmt: skip
    assert after.data["amount"] == "22820000.00"
    assert stack.log(subs["reports"])[after.webhook_id]["reason"] in {"figures", "interval_end"}

    # held again, then the window closes (a record three days later moves event time past the
    # day's end plus the allowed lateness): the held update goes at once
    stack.push(bank, _record("np-last", "10000.00", minute=53))
    last = wait_until(lambda: (a := stack.alert(alert_id))["amount"] == "22830000.00" and a, 30,
                      what="the last update stored")  # fmt: skip
    assert not any(m.data["revision"] == last["revision"] for m in _messages(receivers, "reports", alert_id))
    stack.push(bank, _record("np-later", "2500000.00", day="2026-11-24"))
    final = wait_until(
        lambda: next((m for m in _messages(receivers, "reports", alert_id) if m.data["revision"] == last["revision"]), None),
        30, what="the final update when the window closed",
    )  # fmt: skip
    assert final.at - after.at < INTERVAL_S, "a closing window must not wait for the interval"
    assert stack.log(subs["reports"])[final.webhook_id]["reason"] == "window_closed"

    # large-value reports reached only the subscription that names them
    alerts = stack.alerts()
    reports = {a["alert_id"] for a in alerts if a["typology"] == "large_value"}
    assert len(reports) == 2
    assert {m.data["alert_id"] for m in _messages(receivers, "reports")} == reports
    for name in ("everything", "desk"):
        assert {m.data["typology"] for m in _messages(receivers, name)} == {"misappropriation"}
    assert not any(receivers[name].bad for name in subs)
    # webhook ids stay unique per message: one id, one revision, however often it came
    for name in subs:
        by_id: dict[str, set] = {}
        for received in receivers[name].received:
            by_id.setdefault(received.webhook_id, set()).add(
                (received.data["alert_id"], received.data["revision"])
            )
        assert all(len(v) == 1 for v in by_id.values())
    history = stack.alert(alert_id)["history"]
    counts = {name: len(_messages(receivers, name)) for name in subs}
    print(
        f"notify totals: alerts={len(alerts)} revisions_of_busy_alert={last['revision']} "
        f"messages={counts} messages_for_busy_alert={len(_messages(receivers, 'reports', alert_id))} "
        f"history={[(h['event'], h['revision'], h['severity']) for h in history]}"
    )
    assert [(h["event"], h["severity"]) for h in history] == [("created", "low"), ("updated", "medium")]
