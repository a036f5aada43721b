"""The production shape: `fundwatch gateway` and `fundwatch worker` as separate processes against a
real Kafka-protocol broker (Tansu) and a real ClickHouse server."""

from __future__ import annotations

import base64
import json
import os
import random
import signal
import uuid
from decimal import Decimal

import pytest

from schemas.ddl import DATABASE
from tests.support import FundwatchProcess, call, free_port, wait_ready, wait_until

pytestmark = pytest.mark.integration

ADMIN = "it-admin-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def stack(broker, clickhouse_server, server_storage, tmp_path_factory):
    root = tmp_path_factory.mktemp("prod")
    port = free_port()
    env = {
        **os.environ,
        "FUNDWATCH_KAFKA_BOOTSTRAP": broker,
        "FUNDWATCH_CLICKHOUSE_URL": clickhouse_server.url,
        "FUNDWATCH_ADMIN_TOKEN": ADMIN,
        "FUNDWATCH_SECRET_KEY": base64.b64encode(os.urandom(32)).decode(),  # the gateway needs one
        "FUNDWATCH_HTTP_PORT": str(port),
        "FUNDWATCH_DATA_DIR": str(root),
        "FUNDWATCH_APP_ID": f"fw-it-{uuid.uuid4().hex[:8]}",
        "FUNDWATCH_LOG_LEVEL": os.environ.get("FW_TEST_LOG_LEVEL", "INFO"),
    }
    worker_port = free_port()
    worker = FundwatchProcess(["worker", "--http-port", str(worker_port)], env, root / "worker.log")
    gateway = FundwatchProcess(["gateway"], env, root / "gateway.log")
    worker.start()
    gateway.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, process=gateway.process)
        wait_ready(f"http://127.0.0.1:{worker_port}", process=worker.process)
        yield {
            "base": base,
            "worker": worker,
            "gateway": gateway,
            "storage": server_storage,
            "worker_url": f"http://127.0.0.1:{worker_port}",
        }
    finally:
        for process in (gateway, worker):
            try:
                if process.process and process.process.poll() is None:
                    process.stop()
            finally:
                process.kill()


def _token(base: str, bank: str) -> str:
    status, answer = call("POST", f"{base}/v1/admin/tokens", ADMIN, {"role": "bank", "bank_code": bank})
    assert status == 201, answer
    return answer["token"]


def _txn(record_id: str, account: str, amount: str, direction: str = "credit", hour: int = 9) -> dict:
    return {
        "kind": "transaction", "record_id": record_id, "account_id": account, "direction": direction,
        "amount": amount, "booked_at": f"2026-11-20T{hour:02d}:15:00+08:00", "counterparty_account": f"cp-{record_id[-1]}",
        "counterparty_bank": "B999", "channel": "IBPS",
    }  # fmt: skip


def _sums(storage, accounts: list[str]) -> dict[str, tuple[Decimal, Decimal, int]]:
    rows = storage.query(
        f"""SELECT account_id, sumIf(amount, direction = 'credit'), sumIf(amount, direction = 'debit'), count()
            FROM {DATABASE}.raw_transactions FINAL WHERE account_id IN %(accounts)s GROUP BY account_id""",
        {"accounts": tuple(accounts)},
    )
    return {a: (i, o, n) for a, i, o, n in rows}


def _agg_sums(storage, accounts: list[str]) -> dict[str, tuple[Decimal, Decimal]]:
    rows = storage.query(
        f"""SELECT account_id, currency, sum(inflow), sum(outflow) FROM {DATABASE}.agg_account_ccy FINAL
            WHERE account_id IN %(accounts)s AND grain = 'day' GROUP BY account_id, currency""",
        {"accounts": tuple(accounts)},
    )
    assert {c for _, c, _, _ in rows} <= {"CNY"}  # the records pushed name no currency: CNY
    return {a: (i, o) for a, _, i, o in rows}


def test_sums_in_clickhouse_equal_the_sums_pushed_exactly(stack):
    base, storage = stack["base"], stack["storage"]
    token = _token(base, "B100")
    rng = random.Random(42)
    accounts = [f"it-sum-{uuid.uuid4().hex[:6]}-{i}" for i in range(12)]
    expected: dict[str, list[Decimal]] = {a: [Decimal(0), Decimal(0)] for a in accounts}
    counts = {a: 0 for a in accounts}
    batches = []
    for b in range(6):
        records = []
        for r in range(400):
            account = rng.choice(accounts)
            cents = rng.randint(1, 10_000_000)
            amount = f"{cents // 100}.{cents % 100:02d}"
            direction = rng.choice(["credit", "debit"])
            records.append(_txn(f"s{b}-{r}", account, amount, direction, hour=rng.randint(0, 23)))
            expected[account][0 if direction == "credit" else 1] += Decimal(amount)
            counts[account] += 1
        batches.append({"batch_id": f"sum-{b}", "bank_code": "B100", "records": records})
    for batch in batches:
        status, answer = call("POST", f"{base}/v1/batches", token, batch)
        assert status == 202 and answer["accepted"] == 400, answer
    # a record pushed again, in another batch, is counted once
    status, answer = call(
        "POST",
        f"{base}/v1/batches",
        token,
        {"batch_id": "sum-again", "bank_code": "B100", "records": batches[0]["records"][:5]},
    )
    assert (status, answer["accepted"], answer["duplicates"]) == (202, 0, 5)

    want = {a: (v[0], v[1], counts[a]) for a, v in expected.items() if counts[a]}
    wait_until(lambda: _sums(storage, accounts) == want, 60, what="raw sums to match")
    wait_until(
        lambda: _agg_sums(storage, accounts) == {a: (v[0], v[1]) for a, v in want.items()},
        30,
        what="aggregate sums to match",
    )


def test_records_are_enriched_with_reference_data(stack):
    base, storage = stack["base"], stack["storage"]
    suffix = uuid.uuid4().hex[:6]
    institution = {
        "institution_id": f"I-{suffix}",
        "name": "长春某网贷信息中介有限公司",
        "uscc": "91220101MA17X4KQ3B",
        "type": "p2p_lending",
        "region": "220102",
        "business_scope": "网络借贷信息中介",
        "licences": [],
    }
    account = {
        "account_id": f"it-ref-{suffix}",
        "bank_code": "B101",
        "institution_id": f"I-{suffix}",
        "role": "customer_custody",
        "holder_name": "某网贷客户资金存管户",
    }
    assert call("PUT", f"{base}/v1/reference/institutions", ADMIN, [institution])[1] == {
        "upserted": 1,
        "rejected": [],
    }
    token = _token(base, "B101")
    assert call("PUT", f"{base}/v1/reference/accounts", token, [account])[1] == {
        "upserted": 1,
        "rejected": [],
    }

    def enriched() -> tuple | None:
        # reference data reaches workers asynchronously; push until a record comes back enriched
        rid = f"e-{uuid.uuid4().hex[:8]}"
        call(
            "POST",
            f"{base}/v1/batches",
            token,
            {"batch_id": rid, "bank_code": "B101", "records": [_txn(rid, account["account_id"], "1.00")]},
        )
        rows = storage.query(
            f"SELECT institution_id, account_role, region FROM {DATABASE}.raw_transactions FINAL "
            "WHERE account_id = %(a)s AND institution_id != ''",
            {"a": account["account_id"]},
        )
        return rows[0] if rows else None

    assert wait_until(enriched, 60, interval=1.0, what="an enriched record") == (
        f"I-{suffix}",
        "customer_custody",
        "220102",
    )


def test_a_killed_worker_resumes_without_losing_or_doubling(stack, tmp_path):
    base, storage, worker = stack["base"], stack["storage"], stack["worker"]
    token = _token(base, "B102")
    accounts = [f"it-kill-{uuid.uuid4().hex[:6]}-{i}" for i in range(5)]
    total = {a: Decimal(0) for a in accounts}

    def push(prefix: str, n: int) -> None:
        records = []
        for i in range(n):
            account = accounts[i % len(accounts)]
            records.append(_txn(f"{prefix}-{i}", account, "3.33"))
            total[account] += Decimal("3.33")
        status, answer = call(
            "POST", f"{base}/v1/batches", token, {"batch_id": prefix, "bank_code": "B102", "records": records}
        )
        assert status == 202 and answer["accepted"] == n, answer

    push("k1", 500)
    worker.stop(signal.SIGKILL)
    push("k2", 500)  # accepted while no worker runs: Kafka holds them
    worker.start()
    push("k3", 500)
    expected = {a: (v, Decimal(0), 300) for a, v in total.items()}
    wait_until(
        lambda: _sums(storage, accounts) == expected, 90, interval=0.5, what="sums after the worker restart"
    )
    wait_until(
        lambda: _agg_sums(storage, accounts) == {a: (v, Decimal(0)) for a, v in total.items()},
        30,
        what="aggregates after the worker restart",
    )


def test_the_worker_serves_its_own_metrics(stack):
    status, text = call("GET", f"{stack['worker_url']}/metrics")
    assert status == 200 and "fundwatch_records_processed_total" in text
    assert call("GET", f"{stack['worker_url']}/healthz")[0] == 200


def test_a_restarted_gateway_remembers_batches_and_records(stack):
    base, gateway = stack["base"], stack["gateway"]
    token = _token(base, "B103")
    batch = {
        "batch_id": "remember-1",
        "bank_code": "B103",
        "records": [_txn("m-1", "it-mem-1", "5.00"), _txn("m-2", "it-mem-1", "6.00")],
    }
    status, first = call("POST", f"{base}/v1/batches", token, batch)
    assert status == 202 and first["accepted"] == 2
    gateway.stop()
    gateway.start()
    wait_ready(base, process=gateway.process)
    assert call("POST", f"{base}/v1/batches", token, batch) == (202, first)
    status, other = call("POST", f"{base}/v1/batches", token, {**batch, "batch_id": "remember-2"})
    assert (status, other["accepted"], other["duplicates"]) == (202, 0, 2)


def _alerts_on_topic(bootstrap: str, institution_id: str) -> list[dict]:
    """Every alert event of one institution on the alerts topic, read from the beginning."""
    import asyncio
    import json

    from aiokafka import AIOKafkaConsumer

    async def read() -> list[dict]:
        consumer = AIOKafkaConsumer("fw.alerts", bootstrap_servers=bootstrap, group_id=None,
                                    auto_offset_reset="earliest", enable_auto_commit=False)  # fmt: skip
        await consumer.start()
        try:
            found = []
            batches = await consumer.getmany(timeout_ms=3000, max_records=10_000)
            for messages in batches.values():
                for message in messages:
                    event = json.loads(message.value)
                    if event["subject"] == institution_id:
                        found.append(event)
            return found
        finally:
            await consumer.stop()

    return asyncio.run(read())


def test_an_uninstructed_custody_debit_raises_one_alert_in_clickhouse_and_on_the_topic(stack, broker):
    base, storage = stack["base"], stack["storage"]
    suffix = uuid.uuid4().hex[:6]
    institution_id = f"I-MIS-{suffix}"
    custody, own = f"it-mis-cust-{suffix}", f"it-mis-own-{suffix}"
    institution = {"institution_id": institution_id, "name": "长春某网贷信息中介有限公司", "uscc": "91220101MA17X4KQ3B",
                   "type": "p2p_lending", "region": "220103", "business_scope": "网络借贷信息中介"}  # fmt: skip
    accounts = [
        {"account_id": custody, "bank_code": "B104", "institution_id": institution_id, "role": "customer_custody",
         "holder_name": "客户资金存管户"},
        {"account_id": own, "bank_code": "B104", "institution_id": institution_id, "role": "own_operating",
         "holder_name": "某网贷信息中介有限公司"},
    ]  # fmt: skip
    assert call("PUT", f"{base}/v1/reference/institutions", ADMIN, [institution])[1]["upserted"] == 1
    assert call("PUT", f"{base}/v1/reference/accounts", ADMIN, accounts)[1]["upserted"] == 2
    token = _token(base, "B104")

    def debit(record_id: str) -> dict:
        record = _txn(record_id, custody, "250000.00", direction="debit", hour=11)
        record["counterparty_account"] = own
        record["counterparty_bank"] = "B104"
        return record

    def alerts() -> list:
        return storage.query(
            f"SELECT alert_id, typology, severity, amount, doc FROM {DATABASE}.alerts FINAL "
            "WHERE institution_id = %(inst)s",
            {"inst": institution_id},
        )

    # reference data reaches the worker asynchronously: wait for it by pushing until enriched
    def enriched() -> bool:
        rid = f"probe-{uuid.uuid4().hex[:8]}"
        call("POST", f"{base}/v1/batches", token,
             {"batch_id": rid, "bank_code": "B104", "records": [_txn(rid, custody, "1.00")]})  # fmt: skip
        return bool(storage.query(
            f"SELECT 1 FROM {DATABASE}.raw_transactions FINAL WHERE account_id = %(a)s AND institution_id != ''",
            {"a": custody},
        ))  # fmt: skip

    wait_until(enriched, 60, interval=1.0, what="reference data at the worker")
    status, answer = call("POST", f"{base}/v1/batches", token,
                          {"batch_id": f"mis-{suffix}", "bank_code": "B104", "records": [debit("mis-1")]})  # fmt: skip
    assert status == 202 and answer["accepted"] == 1
    rows = wait_until(alerts, 60, interval=0.5, what="a misappropriation alert")
    assert [(r[1], r[3]) for r in rows] == [("misappropriation", Decimal("250000.00"))]
    doc = json.loads(rows[0][4])
    assert "mis-1" in doc["evidence"]["record_ids"]
    assert doc["explanation"]["zh"] and doc["explanation"]["en"] and doc["detector"]["version"]
    events = wait_until(
        lambda: _alerts_on_topic(broker, institution_id), 30, interval=1.0, what="the alert on the topic"
    )
    assert {e["type"] for e in events} == {"fundwatch.alert.misappropriation"}
    assert {e["id"] for e in events} == {rows[0][0]}

    # the same record again, in a new batch: a duplicate; no new alert, no changed figure
    call("POST", f"{base}/v1/batches", token,
         {"batch_id": f"mis-again-{suffix}", "bank_code": "B104", "records": [debit("mis-1")]})  # fmt: skip
    revisions = storage.query(
        f"SELECT count() FROM {DATABASE}.alert_events WHERE alert_id = %(id)s", {"id": rows[0][0]}
    )
    assert revisions == [(1,)]
    assert [(r[0], r[3]) for r in alerts()] == [(rows[0][0], Decimal("250000.00"))]
