"""Desk actions and suppressions from outside (CONTRACT.md §2 `POST /v1/alerts/{id}/actions`,
`/v1/suppressions`; §4 `status`; §5), on `fundwatch run --no-simulator` with a real webhook
receiver: a desk of the institution's region acknowledges and disposes an alert, the alert and its
audit trail show it, other regions get 404, the next figures update keeps the status, a worsening
reopens it, and a suppression marks the alert and keeps it from the subscriber until removed.

One scenario in steps, each a test, in order: each step starts from where the one before left the
alert (the module's tests share one stack and one alert).
"""

from __future__ import annotations

import os
import uuid
from datetime import datetime, timedelta

import pytest

from schemas.fields import BEIJING
from tests.support import FundwatchProcess, call, free_port, wait_ready, wait_until

pytestmark = pytest.mark.e2e

SUFFIX = uuid.uuid4().hex[:6].upper()
INSTITUTION = {
    "institution_id": f"AA-P2P-{SUFFIX}", "name": "长春某网络借贷信息中介有限公司", "uscc": "91220101MA14TXQ23K",
    "type": "p2p_lending", "region": "220102", "business_scope": "网络借贷信息中介服务", "licences": ["ICP"],
    "status": "active",
}  # fmt: skip
ACCOUNT = f"62170{SUFFIX}00001"
DAY = (datetime.now(BEIJING).date() - timedelta(days=2)).isoformat()


def credit(n: int, amount: str) -> dict:
    """A credit into the custody account on one Beijing day: together one large_value report, low
    below CNY 20,000,000 that day, medium from it."""
    return {
        "kind": "transaction", "record_id": f"aa-{SUFFIX}-{n}", "account_id": ACCOUNT, "direction": "credit",
        "amount": amount, "currency": "CNY", "booked_at": f"{DAY}T10:{n:02d}:00+08:00",
        "counterparty_account": f"62300000{n:08d}", "counterparty_bank": "B777", "channel": "HVPS",
    }  # fmt: skip


class World:
    def __init__(self, root, receivers) -> None:
        self.root = root
        self.base = f"http://127.0.0.1:{free_port()}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("FUNDWATCH_")}
        env["FUNDWATCH_LOG_LEVEL"] = os.environ.get("FW_TEST_LOG_LEVEL", "INFO")
        self.process = FundwatchProcess(
            ["run", "--no-simulator", "--data-dir", str(root), "--http-port", self.base.rsplit(":", 1)[1]],
            env,
            root / "run.log",
        )
        self.receivers = receivers
        self.tokens: dict[str, dict] = {}
        self.alert_id = ""
        self.suppression_id = ""

    @property
    def admin(self) -> str:
        return (self.root / "admin-token").read_text().strip()

    def token(self, name: str, body: dict) -> str:
        status, answer = call("POST", f"{self.base}/v1/admin/tokens", self.admin, body)
        assert status == 201, answer
        self.tokens[name] = answer
        return answer["token"]

    def desk(self, name: str = "desk 2201") -> str:
        return self.tokens[name]["token"]

    def push(self, batch: str, *records: dict) -> None:
        status, answer = call("POST", f"{self.base}/v1/batches", self.tokens["bank"]["token"],
                              {"batch_id": f"aa-{SUFFIX}-{batch}", "bank_code": "B001", "records": list(records)})  # fmt: skip
        assert status == 202 and answer["accepted"] == len(records), answer

    def alert(self, token: str | None = None) -> dict:
        status, answer = call("GET", f"{self.base}/v1/alerts/{self.alert_id}", token or self.admin)
        assert status == 200, answer
        return answer

    def act(self, body: dict, token: str | None = None) -> tuple[int, dict]:
        return call("POST", f"{self.base}/v1/alerts/{self.alert_id}/actions", token or self.desk(), body)

    def delivered(self) -> dict[int, dict]:
        """What the subscriber got of the alert, by revision."""
        return {
            r.data["revision"]: r.data
            for r in self.receivers["desk-actions"].delivered().values()
            if r.data["alert_id"] == self.alert_id
        }


@pytest.fixture(scope="module")
def world(tmp_path_factory, receivers):
    w = World(tmp_path_factory.mktemp("actions"), receivers)
    try:
        w.process.start()
        wait_ready(w.base, timeout=120, process=w.process.process)
        w.token("bank", {"role": "bank", "bank_code": "B001"})
        w.token("desk 2201", {"role": "desk", "region": "2201"})
        w.token("desk 11", {"role": "desk", "region": "11"})
        account = {"account_id": ACCOUNT, "bank_code": "B001", "institution_id": INSTITUTION["institution_id"],
                   "role": "customer_custody", "holder_name": "客户资金存管户"}  # fmt: skip
        for kind, item in (("institutions", INSTITUTION), ("accounts", account)):
            status, answer = call("PUT", f"{w.base}/v1/reference/{kind}", w.admin, [item])
            assert status == 200 and answer["upserted"] == 1, answer
        status, sub = call("POST", f"{w.base}/v1/subscriptions", w.admin,
                           {"url": receivers.url("desk-actions"), "filter": {"typologies": ["large_value"]}})  # fmt: skip
        assert status == 201, sub
        receivers["desk-actions"].secret = sub["secret"]
        w.push("1", credit(1, "2500000.00"))

        def found() -> str | None:
            status, answer = call(
                "GET", f"{w.base}/v1/alerts?institution_id={INSTITUTION['institution_id']}", w.admin
            )
            assert status == 200, answer
            return next((a["alert_id"] for a in answer["alerts"] if a["typology"] == "large_value"), None)

        w.alert_id = wait_until(found, 60, interval=0.3, what="the large-value alert")
        yield w
        w.process.stop()
    finally:
        w.process.kill()


def test_a_desk_of_the_region_acknowledges_and_disposes_with_a_note(world: World) -> None:
    assert world.alert()["status"] == "open"
    status, acknowledged = world.act({"action": "acknowledge"})
    assert status == 200 and acknowledged["status"] == "acknowledged", acknowledged
    status, disposed = world.act({"action": "dispose", "disposition": "rectify", "note": "限期30日整改"})
    assert status == 200, disposed
    assert (disposed["status"], disposed["disposition"], disposed["revision"]) == ("disposed", "rectify", 3)
    desk_id = world.tokens["desk 2201"]["token_id"]
    trail = [(a["action"], a["previous_status"], a["new_status"], a["actor"]["token_id"], a["actor"]["role"])
             for a in disposed["actions"]]  # fmt: skip
    assert trail == [("acknowledge", "open", "acknowledged", desk_id, "desk"),
                     ("dispose", "acknowledged", "disposed", desk_id, "desk")]  # fmt: skip
    assert (
        disposed["actions"][1]["disposition"] == "rectify"
        and disposed["actions"][1]["note"] == "限期30日整改"
    )
    assert world.desk() not in str(disposed)  # who acted is the token's id, never the token
    assert world.alert(world.desk())["actions"] == disposed["actions"]
    # the status changes reached the subscriber
    got = wait_until(
        lambda: (d := world.delivered()) and {2, 3} <= set(d) and d, 30, what="status changes delivered"
    )
    assert (got[2]["status"], got[3]["status"], got[3]["disposition"]) == (
        "acknowledged",
        "disposed",
        "rectify",
    )


def test_a_desk_of_another_region_gets_404_and_a_refused_action_names_its_field(world: World) -> None:
    for method, path, body in (("GET", "", None), ("POST", "/actions", {"action": "reopen"})):
        status, answer = call(
            method, f"{world.base}/v1/alerts/{world.alert_id}{path}", world.desk("desk 11"), body
        )
        assert status == 404, answer
        assert INSTITUTION["institution_id"] not in str(answer) and "220102" not in str(answer)
    status, answer = world.act({"action": "dispose", "disposition": "ignore"})
    assert status == 422 and answer["error"]["field"] == "disposition", answer
    status, answer = world.act({"action": "dispose", "disposition": "close"})  # disposed already
    assert status == 409 and answer["error"]["field"] == "action", answer
    status, answer = world.act({"action": "acknowledge"}, token=world.tokens["bank"]["token"])
    assert status == 403, answer
    assert len(world.alert()["actions"]) == 2  # nothing refused is on the trail


def test_the_next_figures_update_keeps_the_status(world: World) -> None:
    world.push("2", credit(2, "1000000.00"))  # the day's total grows; still a low report
    updated = wait_until(lambda: (a := world.alert())["amount"] == "3500000.00" and a, 60, what="the update")
    assert (updated["status"], updated["disposition"], updated["severity"]) == ("disposed", "rectify", "low")
    assert updated["revision"] == 4  # after the two actions' revisions, never one of them again


def test_a_disposed_alert_that_worsens_reopens_and_says_why(world: World) -> None:
    world.push("3", credit(3, "20000000.00"))  # past 10 x the line: the report becomes medium
    reopened = wait_until(
        lambda: (a := world.alert())["severity"] == "medium" and a, 60, what="the worsening"
    )
    assert (reopened["status"], reopened["disposition"]) == ("open", None)
    assert reopened["reopened_reason"] == "severity rose from low to medium after disposal"
    last = reopened["actions"][-1]
    assert (last["actor"]["role"], last["action"], last["previous_status"], last["new_status"]) == (
        "system", "reopen", "disposed", "open")  # fmt: skip


def test_a_suppression_marks_the_alert_and_keeps_it_from_the_subscriber_until_removed(world: World) -> None:
    until = (datetime.now(BEIJING) + timedelta(days=7)).isoformat(timespec="seconds")
    ask = {"typology": "large_value", "institution_id": INSTITUTION["institution_id"], "until": until,
           "reason": "核实为正常结算业务"}  # fmt: skip
    status, answer = call("POST", f"{world.base}/v1/suppressions", world.desk("desk 11"), ask)
    assert status == 403 and answer["error"]["field"] == "institution_id", answer
    status, made = call("POST", f"{world.base}/v1/suppressions", world.desk(), ask)
    assert status == 201 and made["active"] and made["region"] == "220102", made
    world.suppression_id = made["id"]
    status, listed = call("GET", f"{world.base}/v1/suppressions", world.desk())
    assert status == 200 and made["id"] in {s["id"] for s in listed["suppressions"]}
    status, listed = call("GET", f"{world.base}/v1/suppressions", world.desk("desk 11"))
    assert status == 200 and made["id"] not in {s["id"] for s in listed["suppressions"]}
    status, alerts = call(
        "GET", f"{world.base}/v1/alerts?institution_id={INSTITUTION['institution_id']}", world.desk()
    )
    [marked] = [a for a in alerts["alerts"] if a["alert_id"] == world.alert_id]
    assert (marked["suppressed"], marked["suppression_id"]) == (True, made["id"])

    # a status change while suppressed is stored, but the subscriber hears nothing of it
    status, held = world.act({"action": "acknowledge", "note": "抑制期间"})
    assert status == 200 and held["suppressed"] is True and held["status"] == "acknowledged", held
    held_revision = held["revision"]

    status, _ = call("DELETE", f"{world.base}/v1/suppressions/{made['id']}", world.desk("desk 11"))
    assert status == 404
    status, _ = call("DELETE", f"{world.base}/v1/suppressions/{made['id']}", world.desk())
    assert status == 204
    status, listed = call("GET", f"{world.base}/v1/suppressions", world.desk())
    assert made["id"] not in {s["id"] for s in listed["suppressions"]}
    assert world.alert()["suppressed"] is False

    # the next change is delivered again; the dispatcher reads the alerts topic in order, so
    # once it is delivered, the held revision was read before it and skipped
    status, assigned = world.act({"action": "assign", "assignee": "officer-7"})
    assert status == 200 and assigned["suppressed"] is False, assigned
    wait_until(lambda: assigned["revision"] in world.delivered(), 30, what="the change after the suppression")
    assert held_revision not in world.delivered()


def test_after_a_restart_the_case_holds_through_the_next_update(world: World) -> None:
    before = world.alert()
    assert (before["status"], before["assignee"]) == ("assigned", "officer-7")
    world.process.stop()  # the embedded broker goes with it, and every topic with the broker
    world.process.start()
    wait_ready(world.base, timeout=120, process=world.process.process)
    world.push("4", credit(4, "100.00"))
    updated = wait_until(lambda: (a := world.alert())["amount"] == "23500100.00" and a, 60, what="the update")
    assert (updated["status"], updated["assignee"], updated["severity"]) == (
        "assigned",
        "officer-7",
        "medium",
    )
    assert updated["revision"] > before["revision"]
    assert updated["actions"] == before["actions"]
