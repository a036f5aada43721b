"""SIGKILL in the middle of a push, then a restart and a re-send of every batch: nothing accepted
is lost or counted twice, and the alerts are those of a run nobody killed.

Production shape: a Tansu broker, Debian's clickhouse-server and separate `fundwatch gateway`,
`fundwatch worker` and `fundwatch dispatcher` processes, with a real webhook receiver subscribed
to every typology. Each run (the unkilled reference, then one run per killed process) has a
broker and a ClickHouse server of its own, so each starts from an empty database.

The data is a small labelled province from the simulator: 7 institutions (one of each type),
7 simulated days, every typology injected, institution-level ones included, so that the
institution state's durability is under test too.

Each run pushes the province day by day, bank by bank. The target gets SIGKILL once the batch
with the first legs of the province's disguised clearing is answered 202 and is started again at once; when the push is over, every batch is
sent again with its batch_id. The gateway and the dispatcher are killed 50 ms after that answer,
with the next batch in flight. The worker is killed at the moment its state is most at risk: the
push pauses until every state so far is snapshotted, then that batch (one bank's legs of the
province's disguised clearing) goes, and the worker dies as soon as it has committed the batch's
offsets. (On the code before institution states were changelogged, this moment lost the disguised
clearing alert and raised two excess_return alerts the reference run has not.)

The embedded stack (`fundwatch run`) is killed whole, with its process group, right after its
third 202, and started again on the same data directory. (Before the gateway's outbox, the
records of the batches answered before the kill were lost.)
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from models.findings import TYPOLOGIES
from services.simulator import build_province, plan_violations, write_files
from services.simulator.push import REFERENCE_ORDER, parse_metric_total
from tests.support import FundwatchProcess, ProdStack, call, free_port, wait_ready, wait_until

pytestmark = pytest.mark.e2e

ADMIN = "k9-admin-" + uuid.uuid4().hex
SEED = 3
INSTITUTIONS = 7  # one of each type: the smallest province the simulator builds
HOURS = 168.0  # rapid_growth compares a day with at least 5 days of history
INTENSITY = 300.0  # records per simulated peak hour: about 23,000 records in all
BATCH_RECORDS = 2000
INSTITUTION_TYPOLOGIES = {
    "investor_cap_breach", "excess_return", "rapid_growth", "disguised_clearing", "maturity_mismatch",
}  # fmt: skip


# -- the data ------------------------------------------------------------------------------


class Province:
    """The simulator's files, re-cut into one batch per bank and day, and the sums each account
    must end with."""

    def __init__(self, root: Path) -> None:
        built = build_province(SEED, INSTITUTIONS)
        plan = plan_violations(built, SEED, days=HOURS / 24)
        write_files(built, root, hours=HOURS, seed=SEED, violations=plan, intensity=INTENSITY)
        self.reference = {
            kind: json.loads((root / "reference" / f"{kind}.json").read_text("utf-8"))
            for kind in REFERENCE_ORDER
        }
        self.labels = [
            json.loads(line) for line in (root / "labels.jsonl").read_text("utf-8").splitlines() if line
        ]
        # one batch per bank and Beijing day (at most BATCH_RECORDS), day by day: the banks'
        # records interleave in time as they would arrive, which the cross-bank detectors need
        by_day: dict[tuple[str, str], list[dict]] = defaultdict(list)
        sums: dict[str, list] = defaultdict(lambda: [Decimal(0), Decimal(0), 0, 0])
        for path in sorted((root / "batches").glob("*.jsonl")):
            for line in path.read_text("utf-8").splitlines():
                for record in json.loads(line)["records"] if line else ():
                    by_day[(record.get("booked_at") or record["as_of"])[:10], path.stem].append(record)
                    if record["kind"] != "transaction":
                        continue
                    assert record.get("currency", "CNY") == "CNY"  # flows add amounts of one currency
                    row = sums[record["account_id"]]
                    credit = record["direction"] == "credit"
                    row[0 if credit else 1] += Decimal(record["amount"])
                    row[2 if credit else 3] += 1
        self.batches: list[dict[str, Any]] = []
        for (day, bank), records in sorted(by_day.items()):
            for start in range(0, len(records), BATCH_RECORDS):
                self.batches.append({
                    "batch_id": f"k9-{bank}-{day}-{start // BATCH_RECORDS}", "bank_code": bank,
                    "records": records[start : start + BATCH_RECORDS],
                })  # fmt: skip
        self.expected = {account: tuple(row) for account, row in sums.items()}
        self.records = sum(len(b["records"]) for b in self.batches)
        kinds = [r["kind"] for b in self.batches for r in b["records"]]
        self.kinds = (kinds.count("transaction"), kinds.count("balance"))  # as ClickHouse counts them
        self.banks = sorted({b["bank_code"] for b in self.batches})
        self.kill_after = self._first_clearing_batch()

    def _first_clearing_batch(self) -> str:
        """The batch the target dies after: the first of the labelled disguised clearing's (its
        first bank's legs); the other bank's legs come in a later batch and are matched against
        the institution state the first ones made."""
        label = next(
            x for x in self.labels if x["typology"] == "disguised_clearing" and x["kind"] == "positive"
        )
        legs = {tuple(leg) for leg in label["records"]}
        return next(
            b["batch_id"]
            for b in self.batches
            if any((b["bank_code"], r["record_id"]) in legs for r in b["records"])
        )


@pytest.fixture(scope="module")
def province(tmp_path_factory) -> Province:
    return Province(tmp_path_factory.mktemp("k9-province"))


# -- one run -------------------------------------------------------------------------------


class Run:
    """One production-shape stack with the province's reference data, a bank token per bank and
    a subscription to every typology."""

    def __init__(self, root: Path, province: Province, receivers, name: str) -> None:
        self.province = province
        self.stack = ProdStack(root, ADMIN, env={"FUNDWATCH_WEBHOOK_RETRY_BASE_S": "0.5"})
        self.receivers = receivers
        self.name = name
        self.answers: dict[str, dict] = {}
        self.failed_pushes = 0

    def start(self) -> None:
        self.stack.start()
        base = self.stack.base
        # subscribed first: a product's yield or term is judged when it is registered
        status, sub = call("POST", f"{base}/v1/subscriptions", ADMIN,
                           {"url": self.receivers.url(self.name), "filter": {"typologies": list(TYPOLOGIES)}})  # fmt: skip
        assert status == 201, sub
        self.subscription = sub["id"]
        self.receivers[self.name].secret = sub["secret"]
        wait_until(lambda: _metric(self.stack.url("dispatcher"), 'fundwatch_webhook_subscriptions{state="active"}') == 1,
                   30, what="the dispatcher to know the subscription")  # fmt: skip
        for kind in REFERENCE_ORDER:
            status, answer = call(
                "PUT", f"{base}/v1/reference/{kind}", ADMIN, self.province.reference[kind], timeout=120
            )
            assert status == 200 and not answer["rejected"], answer
        self.tokens = {}
        for bank in self.province.banks:
            status, answer = call(
                "POST", f"{base}/v1/admin/tokens", ADMIN, {"role": "bank", "bank_code": bank}
            )
            assert status == 201, answer
            self.tokens[bank] = answer["token"]

    def push(self, batch: dict) -> tuple[int, Any]:
        try:
            return call(
                "POST", f"{self.stack.base}/v1/batches", self.tokens[batch["bank_code"]], batch, timeout=60
            )
        except OSError as error:  # the gateway is dead or was killed while it held the request
            return 0, str(error)

    def push_all(self, on_accepted=None, before=None) -> None:
        """Every batch once, in order; a batch that gets no 202 is counted and left for the re-send."""
        for batch in self.province.batches:
            if before is not None:
                before(batch["batch_id"])
            status, answer = self.push(batch)
            if status == 202:
                assert not answer["rejected"], answer["rejected"][:3]
                self.answers[batch["batch_id"]] = answer
                if on_accepted is not None:
                    on_accepted(batch["batch_id"])
            else:
                self.failed_pushes += 1

    def resend_all(self) -> None:
        for batch in self.province.batches:
            status, answer = wait_until(lambda b=batch: _taken(self.push(b)), 60, interval=0.5,
                                        what=f"202 for {batch['batch_id']}")  # fmt: skip
            first = self.answers.setdefault(batch["batch_id"], answer)
            assert answer == first, (batch["batch_id"], answer, first)  # the first answer, again

    def settle(self, timeout: float = 180.0) -> None:
        """Wait until ClickHouse holds every record pushed, the worker has handled every
        institution message it sent, and for 3 s the alerts, the pending deliveries (none) and
        the deliveries received have not changed.

        Not by consumer offsets: the embedded broker's end offsets and the offsets its consumers
        commit are not always counted alike, so "committed up to the end" proved no drain signal."""
        from schemas.ddl import DATABASE
        from services.storage import open_storage

        storage = open_storage(self.stack.clickhouse.url)
        last: dict[str, Any] = {}

        def stored() -> bool:
            last["stored"] = (
                storage.query(f"SELECT count() FROM {DATABASE}.raw_transactions FINAL")[0][0],
                storage.query(f"SELECT count() FROM {DATABASE}.raw_balances FINAL")[0][0],
            )
            return last["stored"] == self.province.kinds

        seen: list[Any] = []

        def quiet() -> bool:
            text = call("GET", f"{self.stack.url('worker')}/metrics")[1]
            sent = parse_metric_total(text, "fundwatch_institution_messages_sent_total")
            handled = parse_metric_total(text, "fundwatch_institution_messages_handled_total")
            status, pending = call("GET", f"{self.stack.base}/v1/subscriptions/{self.subscription}/deliveries"
                                          "?status=pending&limit=1000", ADMIN)  # fmt: skip
            assert status == 200, pending
            now = (
                handled >= sent,
                len(pending["deliveries"]),
                len(self.receivers[self.name].received),
                self.alerts(),
            )
            seen.append(now)
            last["quiet"] = now[:3] + (len(now[3]),)
            return now[0] and now[1] == 0 and seen[-7:] == [now] * 7

        try:
            wait_until(stored, timeout, interval=0.5, what="every record in ClickHouse")
            wait_until(quiet, timeout, interval=0.5, what="the alerts and deliveries to settle")
        except AssertionError as error:
            raise AssertionError(f"the {self.name} run did not settle: {last}") from error
        finally:
            storage.close()

    def alerts(self) -> dict[str, dict]:
        status, answer = call("GET", f"{self.stack.base}/v1/alerts?limit=1000", ADMIN)
        assert status == 200, answer
        assert len(answer["alerts"]) < 1000, "more alerts than one page: raise the limit"
        return {a["alert_id"]: figures(a) for a in answer["alerts"]}

    def delivered(self) -> set[str]:
        endpoint = self.receivers[self.name]
        assert not endpoint.bad, endpoint.bad[:3]
        return {r.data["alert_id"] for r in endpoint.delivered().values()}


def _metric(base: str, name: str) -> float:
    return parse_metric_total(call("GET", f"{base}/metrics")[1], name)


def _diff(want: Any, got: Any, at: str = "") -> list[str]:
    """Where two alert documents differ, as paths with both values (short)."""
    if isinstance(want, dict) and isinstance(got, dict):
        return [d for k in sorted(set(want) | set(got)) for d in _diff(want.get(k), got.get(k), f"{at}.{k}")]
    if want != got:
        return [f"{at}: {str(want)[:120]} != {str(got)[:120]}"]
    return []


def _taken(answer: tuple[int, Any]) -> tuple[int, Any] | None:
    return answer if answer[0] == 202 else None


def figures(alert: dict[str, Any]) -> dict[str, Any]:
    """What a violation's alert says, without when it was written or how often it changed."""
    return {
        k: v
        for k, v in alert.items()
        if k not in {"created_at", "updated_at", "revision", "status", "history"}
    }


def flows(base: str, accounts: list[str]) -> dict[str, tuple[Decimal, Decimal, int, int]]:
    """Each account's totals as `GET /v1/accounts/{id}/flows` gives them."""

    def one(account: str) -> tuple[str, tuple]:
        status, answer = call("GET", f"{base}/v1/accounts/{account}/flows?grain=day&limit=1", ADMIN)
        assert status == 200, answer
        assert set(answer["totals"]) <= {"CNY"}, answer["totals"]  # totals by currency
        t = answer["totals"].get("CNY") or {"inflow": "0", "outflow": "0", "credits": 0, "debits": 0}
        return account, (Decimal(t["inflow"]), Decimal(t["outflow"]), t["credits"], t["debits"])

    with ThreadPoolExecutor(4) as pool:
        return dict(pool.map(one, accounts))


def assert_flows_equal(base: str, expected: dict[str, tuple], wait_s: float = 30.0) -> None:
    """Every account's flows as expected; a raw record's aggregate row is written in an insert of
    its own, so they get a few seconds to agree."""
    last: dict[str, Any] = {}

    def same() -> bool:
        got = flows(base, sorted(expected))
        last["wrong"] = {a: (got[a], want) for a, want in expected.items() if got[a] != want}
        return not last["wrong"]

    try:
        wait_until(same, wait_s, interval=1.0, what="the flows")
    except AssertionError:
        wrong = last["wrong"]
        raise AssertionError(
            f"{len(wrong)} of {len(expected)} accounts differ (got, pushed), e.g. {list(wrong.items())[:3]}"
        ) from None


@pytest.fixture(scope="module")
def reference(province, receivers, tmp_path_factory) -> dict[str, Any]:
    """The same province on a stack nobody kills: the alerts every killed run must end with."""
    began = time.monotonic()
    run = Run(tmp_path_factory.mktemp("k9-reference"), province, receivers, "reference")
    try:
        run.start()
        run.push_all()
        assert len(run.answers) == len(province.batches) and run.failed_pushes == 0
        run.settle()
        assert_flows_equal(run.stack.base, province.expected)
        alerts = run.alerts()
        delivered = run.delivered()
    finally:
        run.stack.stop()
    typologies = {a["typology"] for a in alerts.values()}
    assert INSTITUTION_TYPOLOGIES <= typologies, INSTITUTION_TYPOLOGIES - typologies
    assert set(alerts) <= delivered
    print(
        f"\nkill9 reference: records pushed={province.records} batches={len(province.batches)} "
        f"accounts={len(province.expected)} alerts={len(alerts)} alerts delivered={len(delivered)} "
        f"typologies={len(typologies)} took={time.monotonic() - began:.0f}s"
    )
    return {"alerts": alerts, "delivered": delivered}


@pytest.mark.parametrize("target", ["gateway", "worker", "dispatcher"])
def test_a_process_killed_mid_push_loses_nothing_and_raises_the_same_alerts(
    target, province, reference, receivers, tmp_path
):
    began = time.monotonic()
    run = Run(tmp_path, province, receivers, f"killed-{target}")
    try:
        run.start()
        killed = threading.Event()

        def worker_caught_up() -> bool:
            return not any(run.stack.committed_behind(dispatcher=False).values())

        def quiet_before(batch_id: str) -> None:
            if target == "worker" and batch_id == province.kill_after:
                # every state made so far committed and snapshotted (SNAPSHOT_INTERVAL_S is 2 s), so
                # that this batch's changes are the only ones a lagging snapshot could miss
                wait_until(worker_caught_up, 60, interval=0.1, what="the worker to catch up")
                time.sleep(3.0)

        def kill_and_restart() -> None:
            run.stack.kill(target)
            run.stack.start_process(target, wait=False)  # at once, as a supervisor would
            killed.set()

        def kill_now(batch_id: str) -> None:
            if batch_id != province.kill_after:
                return
            if target == "worker":
                # the moment a worker's state is most at risk: it has just committed the offsets of
                # this batch's messages, and the states they made are at most a commit interval old
                wait_until(worker_caught_up, 60, interval=0.05, what="the worker to commit the batch")
                kill_and_restart()
            else:
                # a moment later, so that the next batch is in flight and the pipeline busy
                threading.Timer(0.05, kill_and_restart).start()

        run.push_all(on_accepted=kill_now, before=quiet_before)
        assert killed.wait(30), f"fundwatch {target} was not killed"
        run.stack.wait_ready(target)
        run.resend_all()
        pushed_at = time.monotonic()
        run.settle()
        settled_at = time.monotonic()

        # (a) every account's flows, to the cent, as pushed
        assert_flows_equal(run.stack.base, province.expected)
        # (b) the same alerts, with the same figures, as the run nobody killed
        alerts = run.alerts()
        missing = sorted(
            (reference["alerts"][a]["typology"], a) for a in set(reference["alerts"]) - set(alerts)
        )
        extra = sorted((alerts[a]["typology"], a) for a in set(alerts) - set(reference["alerts"]))
        assert not missing and not extra, (missing, extra)
        changed = [a for a in alerts if alerts[a] != reference["alerts"][a]]
        assert not changed, [
            (alerts[a]["typology"], a, _diff(reference["alerts"][a], alerts[a])) for a in changed
        ]
        # (c) every alert reached the subscriber at least once
        delivered = run.delivered()
        assert set(alerts) <= delivered, sorted(set(alerts) - delivered)[:5]
    finally:
        run.stack.stop()
    print(
        f"\nkill9 {target}: records pushed={province.records} batches={len(province.batches)} "
        f"pushes without 202={run.failed_pushes} processes killed=1 alerts compared={len(alerts)} "
        f"alerts delivered={len(delivered)} deliveries={len(run.receivers[run.name].delivered())} "
        f"took={time.monotonic() - began:.0f}s (settling {settled_at - pushed_at:.0f}s)"
    )


# -- the embedded stack --------------------------------------------------------------------

EMBEDDED_BATCHES = 10
EMBEDDED_RECORDS = 2000
EMBEDDED_KILL_AFTER = 3


def _embedded_batches() -> tuple[list[dict], dict[str, tuple]]:
    import random

    rng = random.Random(9)
    accounts = [f"k9e-{i:04d}" for i in range(200)]
    sums: dict[str, list] = {a: [Decimal(0), Decimal(0), 0, 0] for a in accounts}
    batches = []
    for b in range(EMBEDDED_BATCHES):
        records = []
        for r in range(EMBEDDED_RECORDS):
            account, cents, credit = rng.choice(accounts), rng.randint(1, 50_000_000), rng.random() < 0.5
            amount = f"{cents // 100}.{cents % 100:02d}"
            records.append({
                "kind": "transaction", "record_id": f"k9e-{b}-{r}", "account_id": account,
                "direction": "credit" if credit else "debit", "amount": amount,
                "booked_at": f"2026-11-{10 + b:02d}T{r % 24:02d}:{r % 60:02d}:00+08:00",
                "counterparty_account": f"62300000{r % 97:04d}", "counterparty_bank": "B999", "channel": "IBPS",
            })  # fmt: skip
            row = sums[account]
            row[0 if credit else 1] += Decimal(amount)
            row[2 if credit else 3] += 1
        batches.append({"batch_id": f"k9e-{b}", "bank_code": "B061", "records": records})
    return batches, {a: tuple(v) for a, v in sums.items() if v[2] or v[3]}


def test_the_embedded_stack_killed_after_a_202_loses_no_accepted_record(tmp_path):
    began = time.monotonic()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNDWATCH_")}
    env.update(FUNDWATCH_ADMIN_TOKEN=ADMIN, FUNDWATCH_LOG_LEVEL=os.environ.get("FW_TEST_LOG_LEVEL", "INFO"))
    args = ["run", "--no-simulator", "--data-dir", str(tmp_path / "data"), "--http-port", str(port)]
    batches, expected = _embedded_batches()
    first = FundwatchProcess(args, env, tmp_path / "run-1.log")
    second = FundwatchProcess(args, env, tmp_path / "run-2.log")
    try:
        first.start()
        wait_ready(base, timeout=120, process=first.process)
        status, answer = call("POST", f"{base}/v1/admin/tokens", ADMIN, {"role": "bank", "bank_code": "B061"})
        assert status == 201, answer
        token = answer["token"]
        answers = {}
        for batch in batches[:EMBEDDED_KILL_AFTER]:
            status, answer = call("POST", f"{base}/v1/batches", token, batch, timeout=60)
            assert status == 202 and answer["accepted"] == EMBEDDED_RECORDS, answer
            answers[batch["batch_id"]] = answer
        os.killpg(first.process.pid, signal.SIGKILL)  # right after the third 202: the whole group
        first.process.wait(10)

        second.start()
        wait_ready(base, timeout=120, process=second.process)
        new = 0
        for batch in batches:
            status, answer = call("POST", f"{base}/v1/batches", token, batch, timeout=60)
            assert status == 202, answer
            if batch["batch_id"] in answers:
                assert answer == answers[batch["batch_id"]]  # a re-send gets the first answer
            else:
                new += answer["accepted"]
        assert new == (EMBEDDED_BATCHES - EMBEDDED_KILL_AFTER) * EMBEDDED_RECORDS

        # settled: this process processed at least what it accepted, and nothing moves any more
        seen: list[int] = []

        def processed() -> bool:
            seen.append(int(parse_metric_total(call("GET", f"{base}/metrics")[1])))
            return seen[-1] >= new and seen[-6:] == [seen[-1]] * 6

        wait_until(processed, 120, interval=0.5, what="the restarted stack to process its records")
        assert_flows_equal(base, expected)
    finally:
        for process in (first, second):
            if process.process is not None and process.process.poll() is None:
                process.stop()
            process.kill()
    print(
        f"\nkill9 embedded: records pushed={EMBEDDED_BATCHES * EMBEDDED_RECORDS} processes killed=1 "
        f"(process group) accounts compared={len(expected)} took={time.monotonic() - began:.0f}s"
    )
