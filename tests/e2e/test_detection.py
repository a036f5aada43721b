"""Detection from outside: a small labelled province pushed through the HTTP API of `fundwatch run`
finds its alerts in ClickHouse (`GET /v1/alerts`, which reads it) and on the alerts topic, with
their evidence; re-sending the data or replaying it in another order changes no alert.

Each stack here has a broker of its own (a Tansu child process), so the alerts topic holds only
this province's alerts and can be read from the start.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import msgspec
import pytest
from kafka import KafkaConsumer, TopicPartition

from models.evaluation import fold_alert_events, score
from schemas.messages import ALERTS_TOPIC
from services.broker import EmbeddedBroker
from services.simulator import build_province, plan_violations, write_files
from services.simulator.push import REFERENCE_ORDER, parse_metric_total
from tests.support import FundwatchProcess, call, free_port, wait_ready, wait_until

pytestmark = pytest.mark.e2e

SEED = 41
HOURS = 24.0
# Typologies a day of data can show (rapid growth needs days of trend: see `fundwatch eval`).
NEEDS_HISTORY = {"rapid_growth"}


class DetectStack:
    """`fundwatch run --no-simulator` on a broker of its own."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.broker = EmbeddedBroker(root / "broker.log")
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.admin = uuid.uuid4().hex
        self.process: FundwatchProcess | None = None

    def start(self) -> None:
        bootstrap = self.broker.start()
        env = {k: v for k, v in os.environ.items() if not k.startswith("FUNDWATCH_")}
        env.update(
            FUNDWATCH_LOG_LEVEL=os.environ.get("FW_TEST_LOG_LEVEL", "INFO"),
            FUNDWATCH_KAFKA_BOOTSTRAP=bootstrap,
            FUNDWATCH_ADMIN_TOKEN=self.admin,
        )
        self.process = FundwatchProcess(
            ["run", "--no-simulator", "--data-dir", str(self.root / "data"), "--http-port", str(self.port)],
            env,
            self.root / "run.log",
        )
        self.process.start()
        wait_ready(self.base, timeout=120, process=self.process.process)

    def stop(self) -> None:
        if self.process is not None:
            try:
                self.process.stop()
            finally:
                self.process.kill()
        self.broker.stop()

    # -- the contract ---------------------------------------------------------------------

    def push_province(self, files: Path, bank_order: list[str] | None = None, batch_suffix: str = "") -> int:
        """Reference data, then every batch with its bank's token; returns the records accepted.

        By default the banks' batches go as the simulator wrote them, bank by bank in name order;
        ``bank_order`` pushes the banks in another order (each bank's own batches keep theirs)."""
        for kind in REFERENCE_ORDER:
            items = json.loads((files / "reference" / f"{kind}.json").read_text("utf-8"))
            status, answer = call("PUT", f"{self.base}/v1/reference/{kind}", self.admin, items, timeout=120)
            assert status == 200 and not answer["rejected"], answer
        paths = {path.stem: path for path in (files / "batches").glob("*.jsonl")}
        batches = []
        for bank in bank_order or sorted(paths):
            batches += [json.loads(line) for line in paths[bank].read_text("utf-8").splitlines() if line]
        tokens: dict[str, str] = {}
        accepted = 0
        for batch in batches:
            bank = batch["bank_code"]
            if bank not in tokens:
                status, answer = call(
                    "POST", f"{self.base}/v1/admin/tokens", self.admin, {"role": "bank", "bank_code": bank}
                )
                assert status == 201, answer
                tokens[bank] = answer["token"]
            batch = {**batch, "batch_id": batch["batch_id"] + batch_suffix}
            status, answer = call("POST", f"{self.base}/v1/batches", tokens[bank], batch, timeout=120)
            assert status == 202 and not answer["rejected"], answer
            accepted += answer["accepted"]
        return accepted

    def counters(self) -> tuple[int, int, int]:
        status, text = call("GET", f"{self.base}/metrics")
        assert status == 200
        return (
            int(parse_metric_total(text)),
            int(parse_metric_total(text, "fundwatch_institution_messages_sent_total")),
            int(parse_metric_total(text, "fundwatch_institution_messages_handled_total")),
        )

    def wait_processed(self, accepted_total: int) -> None:
        """Every accepted record and every institution message processed, and nothing moving."""
        seen: list[tuple[int, int, int]] = []

        def settled() -> bool:
            now = self.counters()
            seen.append(now)
            processed, sent, handled = now
            return processed >= accepted_total and handled >= sent and seen[-6:] == [now] * 6

        wait_until(settled, timeout=300, interval=0.5, what="the pipeline to process the province")

    def alerts(self) -> dict[str, dict[str, Any]]:
        status, answer = call("GET", f"{self.base}/v1/alerts?limit=1000", self.admin)
        assert status == 200, answer
        assert len(answer["alerts"]) < 1000, "more alerts than one page: raise the limit"
        return {alert["alert_id"]: alert for alert in answer["alerts"]}

    def topic_events(self) -> list[dict[str, Any]]:
        consumer = KafkaConsumer(
            bootstrap_servers=self.broker.bootstrap, group_id=None, enable_auto_commit=False
        )
        try:
            partitions = [
                TopicPartition(ALERTS_TOPIC, p) for p in sorted(consumer.partitions_for_topic(ALERTS_TOPIC))
            ]
            consumer.assign(partitions)
            consumer.seek_to_beginning(*partitions)
            ends = consumer.end_offsets(partitions)
            events: list[dict[str, Any]] = []
            while any(consumer.position(tp) < end for tp, end in ends.items()):
                for messages in consumer.poll(timeout_ms=1000, max_records=5000).values():
                    events += [msgspec.json.decode(m.value) for m in messages]
            return events
        finally:
            consumer.close()


def figures(alert: dict[str, Any]) -> dict[str, Any]:
    """What a violation's alert says, without when it was written or how often it changed."""
    return {
        k: v
        for k, v in alert.items()
        if k not in {"created_at", "updated_at", "revision", "status", "history"}
    }


@pytest.fixture(scope="module")
def province(tmp_path_factory) -> tuple[Path, list[dict[str, Any]]]:
    root = tmp_path_factory.mktemp("province")
    built = build_province(SEED, 24)
    plan = plan_violations(built, SEED, days=HOURS / 24)
    write_files(built, root, hours=HOURS, seed=SEED, violations=plan)
    labels = [json.loads(line) for line in (root / "labels.jsonl").read_text("utf-8").splitlines() if line]
    return root, labels


@pytest.fixture(scope="module")
def pushed(province, tmp_path_factory):
    files, labels = province
    stack = DetectStack(tmp_path_factory.mktemp("detect"))
    try:
        stack.start()
        accepted = stack.push_province(files)
        stack.wait_processed(accepted)
        yield stack, accepted
    finally:
        stack.stop()


def test_the_labelled_violations_raise_alerts_in_clickhouse_and_on_the_topic(province, pushed):
    _, labels = province
    stack, _ = pushed
    stored = stack.alerts()
    events = stack.topic_events()
    on_topic = {alert.alert_id: alert for alert in fold_alert_events(e["data"] for e in events)}

    # the same alerts in both places, the topic's latest revision being what ClickHouse holds
    assert set(on_topic) == set(stored)
    for alert_id, alert in stored.items():
        assert on_topic[alert_id].data.get("revision", 1) == alert.get("revision", 1)
        assert figures(dict(on_topic[alert_id].data)) == figures(alert)
    for event in events:
        assert (
            event["specversion"] == "1.0" and event["type"] == f"fundwatch.alert.{event['data']['typology']}"
        )
        assert event["id"] == event["data"]["alert_id"]

    scores = score(labels, on_topic.values())
    expected = {label["typology"] for label in labels if label["kind"] == "positive"} - NEEDS_HISTORY
    assert expected >= {"misappropriation", "fund_pool", "large_value", "self_financing", "commingling"}
    for typology in expected:
        s = scores[typology]
        assert s.recall == 1.0, (typology, s.missed)
        assert s.precision == 1.0, (typology, [stored[a] for a in s.false_alerts[:3]])
    for typology, s in scores.items():
        assert s.hard_negatives_flagged == 0, typology

    pushed_ids = {
        r["record_id"]
        for path in (province[0] / "batches").glob("*.jsonl")
        for line in path.read_text("utf-8").splitlines()
        for r in json.loads(line)["records"]
    }
    for alert in stored.values():
        assert set(alert["evidence"]["record_ids"]) <= pushed_ids
        assert alert["evidence"]["thresholds"] and alert["evidence"]["metrics"]
        assert alert["explanation"]["zh"] and alert["explanation"]["en"]
        assert alert["detector"]["name"] == alert["typology"] and alert["detector"]["version"]
        if alert["typology"] != "large_value":
            assert alert["region"] and alert["institution_id"], (alert["typology"], alert["accounts"])
        else:
            # a reporting duty on any monitored account: one tied to no institution (an investor's
            # own account) has no institution and no region, so only admins see it
            assert bool(alert["region"]) == bool(alert["institution_id"])
        if alert["typology"] not in {"excess_return", "maturity_mismatch", "investor_cap_breach"}:
            assert alert["evidence"]["record_ids"], alert["typology"]


def test_one_alert_read_with_its_history_and_region_scoping(pushed):
    stack, _ = pushed
    alerts = stack.alerts()
    # a reporting duty on an investor's own account has no region: scoping needs one that has
    alert = next(a for a in alerts.values() if a["region"])
    status, one = call("GET", f"{stack.base}/v1/alerts/{alert['alert_id']}", stack.admin)
    assert status == 200 and one["alert_id"] == alert["alert_id"]
    assert one["history"][0]["event"] == "created" and len(one["history"]) >= 1

    region = alert["region"]
    status, desk = call(
        "POST", f"{stack.base}/v1/admin/tokens", stack.admin, {"role": "desk", "region": region[:4]}
    )
    assert status == 201
    status, seen = call("GET", f"{stack.base}/v1/alerts?limit=1000", desk["token"])
    assert status == 200 and seen["alerts"]
    assert all(a["region"].startswith(region[:4]) for a in seen["alerts"])
    other = next((a for a in alerts.values() if not a["region"].startswith(region[:4])), None)
    if other is not None:
        status, _ = call("GET", f"{stack.base}/v1/alerts/{other['alert_id']}", desk["token"])
        assert status == 404
    status, answer = call("GET", f"{stack.base}/v1/alerts?region=99", desk["token"])
    assert status == 403 and "region" in answer["error"]["message"]
    status, bank = call(
        "POST", f"{stack.base}/v1/admin/tokens", stack.admin, {"role": "bank", "bank_code": "B001"}
    )
    status, answer = call("GET", f"{stack.base}/v1/alerts", bank["token"])
    assert status == 403
    status, answer = call("GET", f"{stack.base}/v1/alerts?severity=urgent", stack.admin)
    assert status == 422 and "severity" in answer["error"]["message"]


def test_resending_the_same_data_changes_no_alert(province, pushed):
    files, _ = province
    stack, accepted = pushed
    before = stack.alerts()
    events_before = len(stack.topic_events())
    processed_before = stack.counters()[0]
    # the same batches again (their answers are replayed), then under new batch ids (every record
    # is then a duplicate by its record id)
    assert stack.push_province(files) == accepted
    assert stack.push_province(files, batch_suffix="-again") == 0
    stack.wait_processed(processed_before)
    assert stack.alerts() == before
    assert len(stack.topic_events()) == events_before


def test_the_same_data_in_another_order_gives_the_same_alerts(province, pushed, tmp_path):
    """Banks report late: each bank's day arrives whole, in reverse order of the banks, into a
    stack of its own; it must raise the same alerts with the same figures. (Records of one
    account in another order than booked are the detectors' unit tests' business:
    ``check_order_independent``.)"""
    files, _ = province
    stack, _ = pushed
    expected = {alert_id: figures(alert) for alert_id, alert in stack.alerts().items()}
    other = DetectStack(tmp_path)
    try:
        other.start()
        banks = sorted(path.stem for path in (files / "batches").glob("*.jsonl"))
        # the last bank's whole day first: every other bank's records arrive late, after it
        accepted = other.push_province(files, bank_order=banks[::-1])
        other.wait_processed(accepted)
        replayed = {alert_id: figures(alert) for alert_id, alert in other.alerts().items()}
    finally:
        other.stop()
    extra = sorted((replayed[a]["typology"], a) for a in set(replayed) - set(expected))
    missing = sorted((expected[a]["typology"], a) for a in set(expected) - set(replayed))
    assert not extra and not missing, (extra, missing)
    for alert_id, alert in expected.items():
        assert replayed[alert_id] == alert, alert_id
