"""Logs carry ids and counts only (README, Operations; DOMAIN.md, personal data): no account
number, no holder or counterparty name, no token, no webhook secret, in any line.

`fundwatch run` runs with its built-in simulator (a province of 24 institutions, seed 7, pushed
through the API with each bank's own token) for LOG_WINDOW_S, shared with the access matrix so
that its traffic (every role, bad tokens, refusals, 404s naming account numbers in their paths)
is in the same log. On top, this test drives the paths where data is most likely to be echoed:
records rejected field by field, records of another bank's account, a batch_id re-sent with other
records, a bad token, webhook subscriptions, a secret rotation, deliveries to a receiver that
fails first. Every line of stdout and stderr is then searched for each value.
"""

from __future__ import annotations

import re
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from schemas.fields import BEIJING
from services.simulator import build_province
from services.simulator.push import default_start, parse_metric_total
from tests.support import call, wait_until

pytestmark = pytest.mark.e2e

LOG_WINDOW_S = 60.0  # the simulator pushes about 500 records/s meanwhile
SIMULATOR_SEED, SIMULATOR_INSTITUTIONS = 7, 24  # what `fundwatch run` simulates (services/runner.py)
# whatever has the shape of a token or a webhook secret, whoever made it (the simulator's bank
# tokens are made inside the process and never shown to this test)
SHAPES = re.compile(r"fw_(?:admin|bank|desk)_[A-Za-z0-9_-]{20,}|whsec_[A-Za-z0-9+/=]{20,}")


def _province_data() -> tuple[dict[str, set[str]], list[str]]:
    """The simulated province's personal data, as `fundwatch run` builds it today, and the
    accounts registered at its bank B001."""
    province = build_province(
        SIMULATOR_SEED, SIMULATOR_INSTITUTIONS, as_of=default_start().astimezone(BEIJING).date()
    )
    at_b001 = sorted(a.account_id for a in province.accounts if a.bank_code == "B001")
    return {
        "accounts": {a.account_id for a in province.accounts}
        | {acc for p in province.related_parties for acc in p.accounts},
        "names": {a.holder_name for a in province.accounts} | {p.name for p in province.related_parties},
        "counterparty accounts": {e.account_id for e in province.externals},
        "counterparty names": {e.name for e in province.externals},
    }, at_b001


def _exercise(stack, accounts: list[str]) -> str:
    """Requests whose answers name fields of records that hold personal data."""
    bank = stack.token({"role": "bank", "bank_code": "B001"})
    other = stack.token({"role": "bank", "bank_code": "B002"})
    desk = stack.token({"role": "desk", "region": "12"})  # a province with no institution
    rid = uuid.uuid4().hex[:10]

    def record(i: int, account: str, **change) -> dict:
        return {"kind": "transaction", "record_id": f"lp-{rid}-{i}", "account_id": account, "direction": "debit",
                "amount": "880.00", "currency": "CNY", "booked_at": "2026-11-20T10:00:00+08:00",
                "counterparty_account": accounts[-1], "counterparty_bank": "B003",
                "counterparty_name": "李某某", "channel": "IBPS", **change}  # fmt: skip

    stack.note("names", "李某某")
    bad = [
        record(0, accounts[0], amount="12.345"),
        record(1, accounts[1], booked_at="2031-01-01T00:00:00+08:00"),
        record(2, accounts[2], channel="PIGEON"),
        record(3, accounts[3], account_id=""),
        record(4, accounts[4], purpose="x" * 5000),
        record(5, accounts[5]),  # registered at another bank, or not at all
    ]
    for token, code in ((bank, "B001"), (other, "B002")):
        status, answer = call("POST", f"{stack.base}/v1/batches", token,
                              {"batch_id": f"lp-{rid}-{code}", "bank_code": code, "records": bad})  # fmt: skip
        assert status == 202 and answer["rejected"], answer
        # the same batch_id with other records: refused whole
        status, answer = call("POST", f"{stack.base}/v1/batches", token,
                              {"batch_id": f"lp-{rid}-{code}", "bank_code": code, "records": bad[:2]})  # fmt: skip
        assert status in {202, 409}, answer
    assert (
        call(
            "POST", f"{stack.base}/v1/batches", bank, {"batch_id": "x", "bank_code": "B002", "records": bad}
        )[0]
        == 403
    )
    assert (
        call("POST", f"{stack.base}/v1/batches", bank, raw=b'{"batch_id": "' + accounts[6].encode())[0] == 400
    )
    for account in accounts[:5]:
        assert call("GET", f"{stack.base}/v1/accounts/{account}/flows", desk)[0] == 404
    assert call("GET", f"{stack.base}/v1/alerts", "fw_desk_" + uuid.uuid4().hex)[0] == 401
    stack.note("tokens", bank, other, desk)
    # a subscriber that fails its first attempts, and a secret rotated while messages flow
    name = f"privacy-{rid}"
    status, sub = call("POST", f"{stack.base}/v1/subscriptions", stack.admin,
                       {"url": stack.receivers.url(name), "filter": {"typologies": ["large_value", "misappropriation"]}})  # fmt: skip
    assert status == 201, sub
    stack.receivers[name].secret = sub["secret"]
    stack.receivers[name].fail_first = 2
    status, rotated = call("POST", f"{stack.base}/v1/subscriptions/{sub['id']}/rotate-secret", stack.admin)
    assert status == 200, rotated
    stack.receivers[name].secret = rotated["secret"]
    stack.note("secrets", sub["secret"], rotated["secret"])
    an_hour_ago = (datetime.now(BEIJING) - timedelta(hours=1)).isoformat(timespec="seconds")
    large = record(9, accounts[7], direction="credit", amount="2600000.00", booked_at=an_hour_ago)
    call(
        "POST",
        f"{stack.base}/v1/batches",
        bank,
        {"batch_id": f"lp-{rid}-large", "bank_code": "B001", "records": [large]},
    )
    return name


def test_no_log_line_holds_an_account_a_name_a_token_or_a_secret(simulated_province):
    stack = simulated_province
    data, at_b001 = _province_data()
    # the province searched for is the one the simulator registered
    for account in at_b001[:3]:
        wait_until(lambda a=account: call("GET", f"{stack.base}/v1/accounts/{a}/flows", stack.admin)[0] == 200,
                   30, what=f"the simulator's account {account}")  # fmt: skip
    receiver = _exercise(stack, at_b001)
    # the simulator has been pushing meanwhile; the rest of the window, then the deliveries
    time.sleep(max(0.0, LOG_WINDOW_S - (time.monotonic() - stack.started_at)))
    wait_until(
        lambda: stack.receivers[receiver].attempts, 30, what="webhook attempts to the failing receiver"
    )

    log = Path(stack.process.log_path).read_text("utf-8", errors="replace").splitlines()
    broker_log = stack.root / "data" / "broker.log"
    lines = log + (
        broker_log.read_text("utf-8", errors="replace").splitlines() if broker_log.exists() else []
    )
    wanted = {kind: set(values) for kind, values in data.items()}
    for kind, values in stack.sensitive.items():
        wanted.setdefault(kind, set()).update(values)
    # each value as it is; a name of two Chinese characters cannot match the ASCII a log line
    # should be, so names are searched whatever their length, other values from 6 characters
    values = {v: kind for kind, vs in wanted.items() for v in vs if len(v) >= (2 if "names" in kind else 6)}
    pattern = re.compile("|".join(re.escape(v) for v in sorted(values, key=len, reverse=True)))

    found = []
    for number, line in enumerate(lines, 1):
        for match in pattern.finditer(line):
            found.append(f"line {number}: {values[match.group(0)]}: {line[:200]}")
        if SHAPES.search(line):
            found.append(f"line {number}: a token or secret: {line[:200]}")
    assert pattern.search(f"x={next(iter(values))} y"), "the search finds nothing: the pattern is broken"
    counts = {kind: len(vs) for kind, vs in wanted.items()}
    endpoint = stack.receivers[receiver]
    print(f"\nlog privacy: lines scanned={len(lines)} (fundwatch run {len(log)}, broker {len(lines) - len(log)}) "
          f"over {time.monotonic() - stack.started_at:.0f} s; values searched={len(values)} {counts}; "
          f"webhook attempts={sum(endpoint.attempts.values())} delivered={len(endpoint.delivered())}")  # fmt: skip
    assert len(log) > 20, "the log is too short to say anything"
    assert not found, "\n".join(found[:20])


def test_the_simulated_feed_is_accepted(simulated_province):
    """What the log privacy test scanned is only worth as much as the traffic behind it: the
    simulator's records must be taken, not rejected (at most 1 % besides this module's own bad
    records)."""
    status, text = call("GET", f"{simulated_province.base}/metrics")
    assert status == 200
    received = parse_metric_total(text, "fundwatch_records_received_total")
    accepted = parse_metric_total(text, "fundwatch_records_accepted_total")
    rejected = {line.split("{", 1)[1].split("}", 1)[0]: float(line.rsplit(" ", 1)[1])
                for line in text.splitlines() if line.startswith("fundwatch_records_rejected_total{")}  # fmt: skip
    print(
        f"\nsimulated feed: records received={received:.0f} accepted={accepted:.0f} rejected by field={rejected}"
    )
    assert received > 1000
    assert accepted >= 0.99 * received - 100, (
        f"{received - accepted:.0f} of {received:.0f} records not accepted: {rejected}"
    )
