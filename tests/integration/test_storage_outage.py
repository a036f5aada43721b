"""ClickHouse away in the middle of a push (README, Operations: "ClickHouse unavailable").

Production shape: a `fundwatch gateway` and a `fundwatch worker` process against a Tansu broker and
a clickhouse-server of this module's own, which the test stops (SIGTERM) after some batches were
accepted and starts again, on the same data, OUTAGE_S later. A bank keeps pushing throughout, as a
bank does: each batch until it is answered 202, re-sent with the same batch_id after the
Retry-After of each 503.

While ClickHouse is away the gateway answers 503 with a Retry-After (it takes no batch it cannot
make durable) and stays up; /readyz says not ready. Afterwards every batch is taken once, the
worker's held-back inserts go through, and each account's flows equal what was pushed, to the
cent. No log line of either process names an account.
"""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.error
import urllib.request
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.support import ProdStack, call, wait_until

pytestmark = pytest.mark.integration

ADMIN = "so-admin-" + uuid.uuid4().hex
BANK = "B071"
OUTAGE_S = 60.0  # as the issue asks; the module stays under 2 minutes on 2 cores (see docs/reliability.md)
BATCHES, RECORDS = 40, 250
STOP_AFTER = 8  # batches answered 202 before ClickHouse is stopped
RETRY_AFTER_CAP_S = 5.0  # the pusher honours Retry-After up to this


def _post(url: str, token: str, body: dict) -> tuple[int, dict[str, str], Any]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    request.add_header("Content-Type", "application/json")
    request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read() or b"null")


def _get(url: str, token: str | None = None) -> tuple[int, dict[str, str]]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers)


def _batches() -> tuple[list[dict], dict[str, tuple[Decimal, Decimal, int, int]]]:
    rng = random.Random(71)
    accounts = ["62220" + "".join(rng.choice("0123456789") for _ in range(14)) for _ in range(50)]
    sums = {a: [Decimal(0), Decimal(0), 0, 0] for a in accounts}
    batches = []
    for b in range(BATCHES):
        records = []
        for r in range(RECORDS):
            account, cents, credit = rng.choice(accounts), rng.randint(1, 90_000_000), rng.random() < 0.6
            amount = f"{cents // 100}.{cents % 100:02d}"
            records.append({
                "kind": "transaction", "record_id": f"so-{b}-{r}", "account_id": account,
                "direction": "credit" if credit else "debit", "amount": amount, "currency": "CNY",
                "booked_at": f"2026-11-{1 + b % 28:02d}T{r % 24:02d}:{r % 60:02d}:00+08:00",
                "counterparty_account": "62300000" + f"{r:06d}", "counterparty_bank": "B998", "channel": "BEPS",
            })  # fmt: skip
            row = sums[account]
            row[0 if credit else 1] += Decimal(amount)
            row[2 if credit else 3] += 1
        batches.append({"batch_id": f"so-{b}", "bank_code": BANK, "records": records})
    return batches, {a: tuple(v) for a, v in sums.items() if v[2] or v[3]}


@pytest.fixture(scope="module")
def outage(tmp_path_factory) -> dict[str, Any]:
    """The push with ClickHouse stopped in its middle; what every answer was, and when."""
    began = time.monotonic()
    root: Path = tmp_path_factory.mktemp("outage")
    stack = ProdStack(root, ADMIN, commands=("gateway", "worker"))
    batches, expected = _batches()
    answers: list[dict[str, Any]] = []  # every answer to a batch: status, Retry-After, in the outage
    reads: list[tuple[str, int, dict]] = []  # other calls made while ClickHouse was away
    window = {"down": 0.0, "up": 0.0}
    try:
        stack.start()
        status, answer = call(
            "POST", f"{stack.base}/v1/admin/tokens", ADMIN, {"role": "bank", "bank_code": BANK}
        )
        assert status == 201, answer
        token = answer["token"]
        accepted = threading.Event()
        done: list[int] = []

        def push() -> None:
            for batch in batches:
                while True:
                    status, headers, body = _post(f"{stack.base}/v1/batches", token, batch)
                    down = window["down"] > 0 and not window["up"]
                    answers.append({"batch": batch["batch_id"], "status": status, "down": down,
                                    "retry_after": headers.get("Retry-After"), "body": body})  # fmt: skip
                    if status == 202:
                        assert body["accepted"] + body["duplicates"] == RECORDS and not body["rejected"], body
                        done.append(1)
                        if len(done) == STOP_AFTER:
                            accepted.set()
                        break
                    assert status == 503, (status, body)
                    time.sleep(min(float(headers.get("Retry-After") or 1), RETRY_AFTER_CAP_S))
                time.sleep(0.1)

        pusher = threading.Thread(target=push, daemon=True)
        pusher.start()
        assert accepted.wait(60), "the first batches were not accepted"
        stack.clickhouse.stop()
        window["down"] = time.monotonic()
        time.sleep(2.0)  # the gateway's and the worker's next calls meet the closed port
        for name, url in (("readyz", f"{stack.base}/readyz"),
                          ("flows", f"{stack.base}/v1/accounts/{next(iter(expected))}/flows")):  # fmt: skip
            status, headers = _get(url, ADMIN)
            reads.append((name, status, headers))
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - window["down"])))
        stack.clickhouse.start()
        window["up"] = time.monotonic()
        pusher.join(180)
        assert not pusher.is_alive(), "the push did not finish after ClickHouse came back"
        assert stack.processes["gateway"].process.poll() is None, "the gateway died in the outage"
        assert stack.processes["worker"].process.poll() is None, "the worker died in the outage"

        def flows() -> dict[str, tuple]:
            got = {}
            for account in expected:
                status, answer = call(
                    "GET", f"{stack.base}/v1/accounts/{account}/flows?grain=day&limit=1", ADMIN
                )
                if status != 200:
                    got[account] = status
                    continue
                t = answer["totals"]["CNY"]
                got[account] = (Decimal(t["inflow"]), Decimal(t["outflow"]), t["credits"], t["debits"])
            return got

        last: dict[str, Any] = {}

        def drained() -> bool:
            last["flows"] = flows()
            return last["flows"] == expected

        wait_until(drained, 90, interval=1.0, what="every account's flows to equal what was pushed")
        drained_after = time.monotonic() - window["up"]
        logs = "\n".join(path.read_text(errors="replace") for path in root.glob("*.log"))
    except AssertionError:
        if "flows" in locals().get("last", {}):
            wrong = {a: (v, expected[a]) for a, v in last["flows"].items() if v != expected[a]}
            print(
                f"\naccounts whose flows differ (got, pushed): {len(wrong)}, e.g. {list(wrong.items())[:3]}"
            )
        raise
    finally:
        stack.stop()
    outage_answers = [a for a in answers if a["down"]]
    print(
        f"\nstorage outage: records pushed={BATCHES * RECORDS} batches={BATCHES} outage={OUTAGE_S:.0f}s "
        f"answers={len(answers)} 503s={sum(a['status'] == 503 for a in answers)} "
        f"202s in the outage={sum(a['status'] == 202 for a in outage_answers)} "
        f"drained {drained_after:.0f}s after ClickHouse returned; accounts={len(expected)} "
        f"took={time.monotonic() - began:.0f}s"
    )
    return {"answers": answers, "reads": reads, "expected": expected, "logs": logs}


def test_nothing_accepted_is_lost_and_every_batch_is_taken_once(outage):
    answers = outage["answers"]
    taken = [a for a in answers if a["status"] == 202]
    assert len(taken) == BATCHES  # one 202 per batch: the pusher moves on after it
    # each batch's records were accepted once: a batch that met 503s was taken whole afterwards
    assert sum(a["body"]["accepted"] for a in taken) == BATCHES * RECORDS
    assert any(a["status"] == 503 for a in answers if a["down"]), "no batch met the outage"
    # the flows equal what was pushed (the fixture waited for it); every account is there
    assert outage["expected"]


def test_while_clickhouse_is_away_the_gateway_says_503_and_not_ready(outage):
    refused = [a for a in outage["answers"] if a["status"] == 503]
    assert refused and all(a["body"]["error"]["code"] == "unavailable" for a in refused), refused[:2]
    reads = {name: (status, headers) for name, status, headers in outage["reads"]}
    assert reads["readyz"][0] == 503
    assert reads["flows"][0] == 503, reads["flows"]


def test_every_503_carries_a_retry_after(outage):
    refused = [a for a in outage["answers"] if a["status"] == 503]
    assert refused
    assert all(a["retry_after"] and a["retry_after"].isdigit() for a in refused), refused[:2]
    reads = {name: (status, headers) for name, status, headers in outage["reads"]}
    assert reads["flows"][1].get("Retry-After", "").isdigit(), reads["flows"]


def test_no_log_line_names_an_account(outage):
    found = [a for a in outage["expected"] if a in outage["logs"]]
    assert "clickhouse" in outage["logs"].lower()  # the outage is in the logs, by ids and counts
    assert not found, found[:5]
